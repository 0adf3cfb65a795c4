//! Small models and data for evaluation tests.

use candle_core::Tensor;
use rossl::rossl_api::components::{
    Buffer, BuildContext, Dataset, Embedding, Encoder, ImageSet, InputShape, Mode, Parameter, Split,
};
use rossl::rossl_api::registry;
use rossl::rossl_api::Result;
use std::sync::Arc;

/// An "encoder" whose feature is the flattened image (no weights): classes of separable data
/// stay separable, so probes must reach near 100%.
pub struct Flatten;
impl Encoder for Flatten {
    fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding> {
        let feature = self.features(images, mode)?;
        Ok(Embedding {
            projection: feature.clone(),
            feature,
        })
    }
    fn features(&self, images: &Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(images.flatten_from(1)?)
    }
    fn feature_dim(&self) -> usize {
        16 * 16
    }
    fn projection_dim(&self) -> usize {
        16 * 16
    }
    fn parameters(&self) -> Vec<Parameter> {
        Vec::new()
    }
    fn buffers(&self) -> Vec<Buffer> {
        Vec::new()
    }
}

/// Synthetic 1x16x16 images of 4 classes (200 train, 80 test) with pixel noise `noise`.
pub fn synthetic(noise: f64) -> (ImageSet, ImageSet) {
    let params = format!("channels = 1\nheight = 16\nwidth = 16\nclasses = 4\ntrain_size = 200\ntest_size = 80\nnoise = {noise}\nmax_shift = 0");
    let d = registry::build::<dyn Dataset>("synthetic", &params, &BuildContext::cpu(0)).unwrap();
    (d.load(Split::Train).unwrap(), d.load(Split::Test).unwrap())
}

/// A small resnet-small (widths 4 and 8) for 1x16x16 images of 4 classes.
pub fn small_encoder() -> Arc<dyn Encoder> {
    let shape = InputShape {
        channels: 1,
        height: 16,
        width: 16,
        classes: 4,
    };
    let ctx = BuildContext::cpu(3).with_input(shape);
    Arc::from(
        registry::build::<dyn Encoder>(
            "resnet-small",
            "widths = [4, 8]\nhidden = 16\nz_dim = 8",
            &ctx,
        )
        .expect("resnet-small"),
    )
}
