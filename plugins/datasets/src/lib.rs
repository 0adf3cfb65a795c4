//! rossl's built-in datasets: `cifar10`, `cifar100` (official binary files), `fashion-mnist` and
//! `mnist` (IDX files, gzipped or not), `stl10` (official binary files, labelled splits and
//! predefined folds), `cifar10-c` (one corruption and severity of the published CIFAR-10-C or
//! CIFAR-100-C arrays), `embedded` (a Fashion-MNIST subset inside the binary) and `synthetic`
//! (procedural images of any size).
//!
//! Every dataset yields images as f32 in [0, 1], channel-major, with integer labels. Missing,
//! truncated and corrupt files are errors that name the file and say what was wrong.
#![warn(missing_docs)]

pub mod cifar;
pub mod cifar_c;
pub mod cifar_c_dataset;
pub mod embedded;
pub mod idx;
pub mod mnist;
pub mod stl10;
pub mod synthetic;

mod files;
