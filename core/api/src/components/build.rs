//! What a component is built from, besides its own parameters.

use candle_core::Device;
use std::path::PathBuf;

/// The shape of the images (after views) and the label set a component will see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    /// Image channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes of the labels.
    pub classes: usize,
}

/// The context in which a component is built: the device, the run's seed, the shape of the data,
/// and the folder that relative paths are resolved against.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Where tensors live.
    pub device: Device,
    /// The run's seed; components derive their own streams from it.
    pub seed: u64,
    /// The shape of the data the component will see, when known (encoders need it).
    pub input: Option<InputShape>,
    /// The folder that relative paths are resolved against when their source is not a file.
    pub base_dir: PathBuf,
    /// The width of the encoder's probed feature, when known (a loss with a head on the
    /// features needs it; losses are built after the encoder).
    pub feature_dim: Option<usize>,
    /// The width of the encoder's projection, when known (a loss with a predictor on the
    /// projections needs it).
    pub projection_dim: Option<usize>,
}

impl BuildContext {
    /// A CPU context with `seed`, no input shape, and the current folder as base.
    pub fn cpu(seed: u64) -> Self {
        BuildContext {
            device: Device::Cpu,
            seed,
            input: None,
            base_dir: PathBuf::from("."),
            feature_dim: None,
            projection_dim: None,
        }
    }

    /// The same context with an input shape.
    pub fn with_input(mut self, input: InputShape) -> Self {
        self.input = Some(input);
        self
    }

    /// The same context with the widths of the encoder's feature and projection.
    pub fn with_encoder_dims(mut self, feature_dim: usize, projection_dim: usize) -> Self {
        self.feature_dim = Some(feature_dim);
        self.projection_dim = Some(projection_dim);
        self
    }
}
