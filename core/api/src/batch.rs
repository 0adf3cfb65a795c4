//! Batches of whole images as tensors (for probes and evaluation; training views are batched by
//! the runtime's loader).

use crate::components::ImageSet;
use crate::Result;
use candle_core::{Device, Tensor};

/// Images `indices` of `set` as a (len, C, H, W) tensor on `device`, with their labels.
pub fn image_batch(
    set: &ImageSet,
    indices: &[usize],
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    let n = set.image_len();
    let mut pixels = Vec::with_capacity(indices.len() * n);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        pixels.extend_from_slice(set.image(i));
        labels.push(set.labels[i]);
    }
    let tensor = Tensor::from_vec(
        pixels,
        (indices.len(), set.channels, set.height, set.width),
        device,
    )?;
    Ok((tensor, labels))
}

/// A (N, C, H, W) tensor from view-major pixels.
pub fn images_tensor(
    pixels: Vec<f32>,
    (n, c, h, w): (usize, usize, usize, usize),
    device: &Device,
) -> Result<Tensor> {
    Ok(Tensor::from_vec(pixels, (n, c, h, w), device)?)
}
