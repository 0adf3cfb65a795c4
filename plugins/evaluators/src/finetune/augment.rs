//! The fine-tuning's training augmentation: the registered `pad-crop` views (torchvision's
//! `RandomCrop(size, padding)` then `RandomHorizontalFlip()`), one view per image.

use candle_core::{Device, Tensor};
use rossl_api::components::{BuildContext, ImageRef, ImageSet, ViewStrategy};
use rossl_api::rng::Rng;
use rossl_api::Result;

/// The `pad-crop` views with `padding` (a random crop from the image zero-padded by `padding`,
/// then a horizontal flip with probability 1/2); `None` for `padding` 0, no augmentation at all.
pub fn pad_crop(padding: usize, seed: u64) -> Result<Option<Box<dyn ViewStrategy>>> {
    if padding == 0 {
        return Ok(None);
    }
    let views = rossl_api::registry::build::<dyn ViewStrategy>(
        "pad-crop",
        &format!("views = 1\npadding = {padding}"),
        &BuildContext::cpu(seed),
    )?;
    Ok(Some(views))
}

/// The images at `indices`, each rendered by `views` (as they are without), as a (B, C, H, W)
/// tensor, with their labels.
pub fn batch(
    set: &ImageSet,
    indices: &[usize],
    views: Option<&dyn ViewStrategy>,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    let Some(views) = views else {
        return rossl_api::batch::image_batch(set, indices, device);
    };
    let (c, h, w) = (set.channels, set.height, set.width);
    let n = set.image_len();
    let mut pixels = vec![0f32; indices.len() * n];
    let mut labels = Vec::with_capacity(indices.len());
    for (out, &i) in pixels.chunks_exact_mut(n).zip(indices) {
        let image = ImageRef {
            pixels: set.image(i),
            channels: c,
            height: h,
            width: w,
        };
        views.render(image, rng, out);
        labels.push(set.labels[i]);
    }
    let tensor = Tensor::from_vec(pixels, (indices.len(), c, h, w), device)?;
    Ok((tensor, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_shifted_copies_and_zero_padding_keeps_pixels() {
        // one 1x4x4 image with distinct pixels
        let set =
            ImageSet::new((1..=16).map(|v| v as f32).collect(), vec![0], (1, 4, 4), 1).unwrap();
        let (same, _) = batch(&set, &[0], None, &mut Rng::new(1), &Device::Cpu).unwrap();
        assert_eq!(
            same.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            set.pixels
        );
        let views = pad_crop(1, 0).unwrap();
        for seed in 0..20 {
            let (x, _) = batch(
                &set,
                &[0],
                views.as_deref(),
                &mut Rng::new(seed),
                &Device::Cpu,
            )
            .unwrap();
            let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // a shift by at most one pixel: every non-zero value is an original pixel, and at
            // least 3x3 of the 16 survive
            assert!(v.iter().all(|p| *p == 0.0 || (1.0..=16.0).contains(p)));
            assert!(v.iter().filter(|p| **p != 0.0).count() >= 9);
        }
    }
}
