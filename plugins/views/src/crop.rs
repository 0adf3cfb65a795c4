//! Crop sampling, following torchvision's `RandomResizedCrop.get_params`.

use rossl_api::rng::Rng;

/// A crop: top row, left column, height and width, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    /// Top row.
    pub top: usize,
    /// Left column.
    pub left: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// Python's `int(round(x))`: round half to even.
fn round_half_even(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// Draws a crop of an `height` x `width` image whose area fraction is uniform in `scale` and whose
/// aspect ratio (width / height) is log-uniform in `ratio`. Up to ten tries, then torchvision's
/// fallback: the central crop clamped to the ratio range (or the whole image).
pub fn sample_crop(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut Rng,
) -> CropBox {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target_area = area * rng.uniform_range(scale[0], scale[1]);
        let aspect = rng.uniform_range(log_lo, log_hi).exp();
        let w = round_half_even((target_area * aspect).sqrt());
        let h = round_half_even((target_area / aspect).sqrt());
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.below((height - h + 1) as u64) as usize;
            let left = rng.below((width - w + 1) as u64) as usize;
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        (round_half_even(width as f64 / ratio[0]), width)
    } else if in_ratio > ratio[1] {
        (height, round_half_even(height as f64 * ratio[1]))
    } else {
        (height, width)
    };
    let (h, w) = (h.clamp(1, height), w.clamp(1, width));
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(3.49), 3);
    }

    #[test]
    fn fallback_is_central_and_clamped_to_the_ratio() {
        // an impossible scale (> 1) forces the fallback
        let c = sample_crop(10, 40, [2.0, 3.0], [0.75, 4.0 / 3.0], &mut Rng::new(0));
        assert_eq!((c.height, c.width), (10, 13));
        assert_eq!((c.top, c.left), (0, 13));
        let c = sample_crop(32, 32, [2.0, 3.0], [0.75, 4.0 / 3.0], &mut Rng::new(0));
        assert_eq!(
            c,
            CropBox {
                top: 0,
                left: 0,
                height: 32,
                width: 32
            }
        );
    }
}
