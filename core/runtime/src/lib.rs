//! # rossl-runtime
//!
//! What runs a rossl experiment, on top of the plugin API (rossl-api) and the layers and
//! optimisers (rossl-nn):
//!
//! - [`config`]: the layered configuration (defaults, files, `ROSSL_` environment, `--set`),
//!   checked against the registry before anything runs;
//! - [`assembly`]: a configuration turned into components; [`ssl_loss`]: the weighted SSL loss;
//! - [`train`]: the training loop and its regimes (standard, PGD, free), metrics and resuming;
//! - [`eval`]: the evaluation harness, its attack suites and sanity checks;
//! - [`checkpoint`]: checkpoints; [`run_dir`]: run folders, and the type, reader and writer of
//!   each of their files (summary, results, metrics, probe heads);
//! - [`loader`]: the background loader of view batches; [`device`]: devices and threads;
//! - [`monitor`]: the online probe that reports robust accuracy during training;
//! - [`plugins`]: dynamic plugin libraries; [`progress`]: progress bars and the log writer.

pub mod assembly;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod eval;
pub mod loader;
pub mod monitor;
pub mod plugins;
pub mod progress;
pub mod run_dir;
pub mod ssl_loss;
pub mod train;

pub use rossl_api::{Error, Result};
