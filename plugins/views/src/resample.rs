//! Bilinear resampling of a crop to the output size, with PIL's filter (the interpolation that
//! the reference pipeline uses through torchvision on PIL images): a triangle filter whose support
//! widens when downscaling (antialiasing), pixel centres at half-integers, weights normalised.

use crate::crop::CropBox;

/// Filter taps of one output coordinate: the first input index and the weights.
#[derive(Clone, Debug)]
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

/// PIL's `precompute_coeffs` for the bilinear filter, over input positions
/// `offset .. offset + in_size` of an axis, for `out_size` outputs.
fn coefficients(offset: usize, in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the bilinear filter's support is 1
    (0..out_size)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (lo..hi)
                .map(|x| {
                    let t = ((x as f64 - centre + 0.5) / filter_scale).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Taps {
                start: offset + lo,
                weights: weights.into_iter().map(|w| w as f32).collect(),
            }
        })
        .collect()
}

/// Resamples `crop` of a (channels, height, width) image into `out`, (channels, out_h, out_w).
pub fn resized_crop(
    image: &[f32],
    (channels, height, width): (usize, usize, usize),
    crop: CropBox,
    (out_h, out_w): (usize, usize),
    out: &mut [f32],
) {
    debug_assert!(crop.top + crop.height <= height && crop.left + crop.width <= width);
    let xs = coefficients(crop.left, crop.width, out_w);
    let ys = coefficients(crop.top, crop.height, out_h);
    // horizontal pass over the rows the crop covers, then vertical
    let mut rows = vec![0.0f32; crop.height * out_w];
    for c in 0..channels {
        let plane = &image[c * height * width..(c + 1) * height * width];
        for (r, row) in rows.chunks_exact_mut(out_w).enumerate() {
            let src = &plane[(crop.top + r) * width..(crop.top + r + 1) * width];
            for (o, taps) in xs.iter().enumerate() {
                row[o] = taps
                    .weights
                    .iter()
                    .zip(&src[taps.start..])
                    .map(|(w, v)| w * v)
                    .sum();
            }
        }
        let dst = &mut out[c * out_h * out_w..(c + 1) * out_h * out_w];
        for (o, taps) in ys.iter().enumerate() {
            let line = &mut dst[o * out_w..(o + 1) * out_w];
            line.fill(0.0);
            for (k, w) in taps.weights.iter().enumerate() {
                let r = taps.start - crop.top + k;
                for (d, s) in line.iter_mut().zip(&rows[r * out_w..(r + 1) * out_w]) {
                    *d += w * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_sizes_match() {
        let image: Vec<f32> = (0..2 * 4 * 5).map(|v| v as f32 / 40.0).collect();
        let mut out = vec![0.0; image.len()];
        let crop = CropBox {
            top: 0,
            left: 0,
            height: 4,
            width: 5,
        };
        resized_crop(&image, (2, 4, 5), crop, (4, 5), &mut out);
        for (a, b) in image.iter().zip(&out) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn upsampling_two_pixels_interpolates_with_half_pixel_centres() {
        // PIL: a 2-pixel row [0, 1] resized to 4 pixels gives [0, 0.25, 0.75, 1]
        let image = [0.0f32, 1.0];
        let mut out = [0.0f32; 4];
        let crop = CropBox {
            top: 0,
            left: 0,
            height: 1,
            width: 2,
        };
        resized_crop(&image, (1, 1, 2), crop, (1, 4), &mut out);
        let expected = [0.0, 0.25, 0.75, 1.0];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn downsampling_averages() {
        // halving a row of [0, 1, 0, 1] with the widened triangle gives the pair means
        // (PIL: weights 1/8, 3/8, 3/8, 1/8 at the first output => 0*... ) computed by hand:
        // output 0 centre 1.0, support 2: taps x=0..2 (t = 0.25, 0.25, 0.75) weights .75 .75 .25
        // normalised 3/7 3/7 1/7 -> 0*3/7 + 1*3/7 + 0*1/7 = 3/7
        let image = [0.0f32, 1.0, 0.0, 1.0];
        let mut out = [0.0f32; 2];
        let crop = CropBox {
            top: 0,
            left: 0,
            height: 1,
            width: 4,
        };
        resized_crop(&image, (1, 1, 4), crop, (1, 2), &mut out);
        assert!((out[0] - 3.0 / 7.0).abs() < 1e-6, "{out:?}");
    }
}

/// The interpolation of one axis as a dense (out_len x full_len) matrix: output position `o` is
/// the weighted sum of the input positions of the crop `offset .. offset + crop_len` that the
/// bilinear filter reaches; with `flip`, outputs are mirrored. Row-major. Used to crop, resize and
/// flip differentiably, as matrix products.
pub fn interpolation_matrix(
    offset: usize,
    crop_len: usize,
    out_len: usize,
    full_len: usize,
    flip: bool,
) -> Vec<f32> {
    let taps = coefficients(offset, crop_len, out_len);
    let mut matrix = vec![0.0f32; out_len * full_len];
    for (o, t) in taps.iter().enumerate() {
        let row = if flip { out_len - 1 - o } else { o };
        for (k, w) in t.weights.iter().enumerate() {
            matrix[row * full_len + t.start + k] += w;
        }
    }
    matrix
}

#[cfg(test)]
mod matrix_tests {
    use super::*;

    #[test]
    fn matrix_product_equals_resized_crop() {
        let (c, h, w) = (2, 6, 7);
        let image: Vec<f32> = (0..c * h * w)
            .map(|v| ((v * 37) % 11) as f32 / 10.0)
            .collect();
        let crop = CropBox {
            top: 1,
            left: 2,
            height: 4,
            width: 3,
        };
        let (oh, ow) = (5, 6);
        let mut expected = vec![0.0; c * oh * ow];
        resized_crop(&image, (c, h, w), crop, (oh, ow), &mut expected);
        let ry = interpolation_matrix(crop.top, crop.height, oh, h, false);
        let rx = interpolation_matrix(crop.left, crop.width, ow, w, false);
        for ch in 0..c {
            for y in 0..oh {
                for x in 0..ow {
                    let mut v = 0.0;
                    for i in 0..h {
                        for j in 0..w {
                            v += ry[y * h + i] * image[(ch * h + i) * w + j] * rx[x * w + j];
                        }
                    }
                    assert!((v - expected[(ch * oh + y) * ow + x]).abs() < 1e-5);
                }
            }
        }
    }
}
