//! The fine-tuning's training augmentation: a random crop with zero padding and a horizontal
//! flip with probability 1/2, per image (torchvision's `RandomCrop(size, padding)` and
//! `RandomHorizontalFlip()`).

use candle_core::{Device, Tensor};
use rossl_api::components::ImageSet;
use rossl_api::rng::Rng;
use rossl_api::Result;

/// The images at `indices`, each cropped at a random offset from itself padded by `padding`
/// zeros and flipped with probability 1/2 (no change at all with `padding` 0), as a (B, C, H, W)
/// tensor, with their labels.
pub fn batch(
    set: &ImageSet,
    indices: &[usize],
    padding: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let mut pixels = Vec::with_capacity(indices.len() * set.image_len());
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let image = set.image(i);
        labels.push(set.labels[i]);
        if padding == 0 {
            pixels.extend_from_slice(image);
            continue;
        }
        let dy = rng.below(2 * padding as u64 + 1) as isize - padding as isize;
        let dx = rng.below(2 * padding as u64 + 1) as isize - padding as isize;
        let flip = rng.bernoulli(0.5);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x } as isize + dx;
                    let sy = y as isize + dy;
                    let inside = sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h;
                    pixels.push(if inside {
                        image[(ch * h + sy as usize) * w + sx as usize]
                    } else {
                        0.0
                    });
                }
            }
        }
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
        let (same, _) = batch(&set, &[0], 0, &mut Rng::new(1), &Device::Cpu).unwrap();
        assert_eq!(
            same.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            set.pixels
        );
        for seed in 0..20 {
            let (x, _) = batch(&set, &[0], 1, &mut Rng::new(seed), &Device::Cpu).unwrap();
            let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // a shift by at most one pixel: every non-zero value is an original pixel, and at
            // least 3x3 of the 16 survive
            assert!(v.iter().all(|p| *p == 0.0 || (1.0..=16.0).contains(p)));
            assert!(v.iter().filter(|p| **p != 0.0).count() >= 9);
        }
    }
}
