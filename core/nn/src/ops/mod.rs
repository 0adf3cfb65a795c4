//! Tensor operations that candle lacks or that rossl computes faster: the log-determinant of
//! symmetric positive-definite matrices (for the coding rate), channels-last convolution, fully
//! connected layers and batch normalisation with fast CPU kernels (candle's own operations on other devices), and the
//! perturbation update of adversarial training in one parallel pass.

mod batch_norm;
mod conv;
mod conv_gemm;
mod dense;
mod logdet;
mod perturbation;
mod storage;

pub use batch_norm::{batch_norm_eval, batch_norm_train, batch_norm_train_reference, Moments};
pub use conv::{conv2d_nhwc, conv2d_nhwc_reference};
pub use conv_gemm::conv2d_nhwc_gemm;
pub use dense::{dense, dense_reference};
pub use logdet::logdet_spd;
pub use perturbation::{signed_step, signed_step_reference};
