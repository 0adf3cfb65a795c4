//! What an evaluation runs on: the trained encoder, the images, the device, the seed and the
//! settings.

use crate::config::EvalConfig;
use candle_core::Device;
use rossl_api::components::{BuildContext, Encoder, EncoderCopier, ImageSet};

/// What an evaluation runs on.
pub struct EvalInputs<'a> {
    /// The trained encoder (frozen for evaluation).
    pub encoder: &'a dyn Encoder,
    /// Labelled training images for fitting probes.
    pub train: &'a ImageSet,
    /// Test images.
    pub test: &'a ImageSet,
    /// The device.
    pub device: &'a Device,
    /// The run's seed.
    pub seed: u64,
    /// The evaluation settings.
    pub config: &'a EvalConfig,
    /// How attacks are built.
    pub ctx: &'a BuildContext,
    /// Trainable copies of the encoder, for evaluators that fine-tune it.
    pub copy_encoder: Option<&'a EncoderCopier<'a>>,
}
