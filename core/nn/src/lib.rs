//! # rossl-nn
//!
//! Neural-network pieces on candle for rossl's components:
//!
//! - [`layers`]: convolution, linear and batch-norm layers with PyTorch's parameter names and
//!   initialisations, aware of the encoder mode (re-exported here);
//! - [`ops`]: custom operations that candle lacks or that rossl computes faster (channels-last
//!   convolution and batch normalisation over rossl-kernels, the log-determinant of SPD matrices);
//! - [`optim`]: SGD with momentum and Nesterov in LARS, Adam, the learning-rate schedule, and
//!   their settings;
//! - [`classify`]: per-example losses of logits (cross-entropy, CW margin, DLR), predictions and
//!   features of a frozen encoder;
//! - [`corruptions`]: the common corruptions of Hendrycks and Dietterich (CIFAR-10-C), computed
//!   on the fly;
//! - [`precision`]: mixed precision (bf16 training passes over f32 master weights).

pub mod classify;
pub mod corruptions;
pub mod layers;
pub mod ops;
pub mod optim;
pub mod precision;

pub use layers::*;
pub use rossl_kernels::on_pool;
