//! Adapting an [`ImageSet`] to another encoder's input: resizing as torchvision's `Resize` does on
//! PIL images, and converting between grey and colour as PIL's `convert` does.

use super::dataset::ImageSet;
use crate::{Error, Result};

/// Pillow's resampling coefficients along one axis (`precompute_coeffs` in `Resample.c`, with the
/// bilinear filter and the whole input as the box): for each output position, the first input
/// position it reads and the normalised weights of the inputs from there on.
struct Coefficients {
    /// Per output position: the first input position read.
    first: Vec<usize>,
    /// Per output position: the weights of inputs `first..first + weights.len()`.
    weights: Vec<Vec<f64>>,
}

/// The bilinear (triangle) filter of support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

impl Coefficients {
    /// The coefficients mapping `input` positions onto `output` ones, centre-aligned; when
    /// downscaling, the filter is stretched by the scale factor (antialiasing).
    fn bilinear(input: usize, output: usize) -> Coefficients {
        let scale = input as f64 / output as f64;
        let filter_scale = scale.max(1.0);
        let support = filter_scale; // the triangle's support (1) times the filter scale
        let mut first = Vec::with_capacity(output);
        let mut weights = Vec::with_capacity(output);
        for out in 0..output {
            let centre = (out as f64 + 0.5) * scale;
            // Pillow rounds with `(int)(v + 0.5)`, which truncates towards zero
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).clamp(0, input as i64) as usize;
            let mut w: Vec<f64> = (lo..hi)
                .map(|x| triangle((x as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            first.push(lo);
            weights.push(w);
        }
        Coefficients { first, weights }
    }

    /// Resamples `count` lines of `src`, each read from `offset(line, position)`, into `dst`
    /// written at `out_index(line, output position)`. Sums in f64, stores f32 as Pillow does.
    fn apply(
        &self,
        src: &[f32],
        count: usize,
        offset: impl Fn(usize, usize) -> usize,
        dst: &mut [f32],
        out_index: impl Fn(usize, usize) -> usize,
    ) {
        for line in 0..count {
            for (out, (&lo, w)) in self.first.iter().zip(&self.weights).enumerate() {
                let sum: f64 = w
                    .iter()
                    .enumerate()
                    .map(|(k, &wk)| f64::from(src[offset(line, lo + k)]) * wk)
                    .sum();
                dst[out_index(line, out)] = sum as f32;
            }
        }
    }
}

/// Resizes `height` x `width` planes to `out_h` x `out_w`, with the coefficients computed once:
/// the horizontal pass first, then the vertical one, each skipped when its size does not change
/// (Pillow's order).
struct PlaneResizer {
    from: (usize, usize),
    to: (usize, usize),
    horizontal: Option<Coefficients>,
    vertical: Option<Coefficients>,
}

impl PlaneResizer {
    fn new((height, width): (usize, usize), (out_h, out_w): (usize, usize)) -> Self {
        PlaneResizer {
            from: (height, width),
            to: (out_h, out_w),
            horizontal: (out_w != width).then(|| Coefficients::bilinear(width, out_w)),
            vertical: (out_h != height).then(|| Coefficients::bilinear(height, out_h)),
        }
    }

    /// Appends the resized `plane` to `out`.
    fn resize_into(&self, plane: &[f32], out: &mut Vec<f32>) {
        let ((height, width), (out_h, out_w)) = (self.from, self.to);
        let rows = match &self.horizontal {
            None => plane.to_vec(),
            Some(coefficients) => {
                let mut rows = vec![0.0; height * out_w];
                let (src, dst) = (|y, x| y * width + x, |y, x| y * out_w + x);
                coefficients.apply(plane, height, src, &mut rows, dst);
                rows
            }
        };
        match &self.vertical {
            None => out.extend(rows),
            Some(coefficients) => {
                let start = out.len();
                out.resize(start + out_h * out_w, 0.0);
                let index = |x, y| y * out_w + x;
                coefficients.apply(&rows, out_w, index, &mut out[start..], index);
            }
        }
    }
}

impl ImageSet {
    /// A copy of the set with every image resized to `height` x `width` by bilinear resampling
    /// with antialias, as torchvision's `Resize` does on PIL images: a separable triangle filter,
    /// centre-aligned, whose support grows with the downscale factor, with Pillow's
    /// `ImagingResample` coefficients. It matches Pillow's `resize(..., BILINEAR)` on float
    /// (mode "F") images to within 1e-4 (Pillow rounds to 8 bits on ordinary images; this does
    /// not). Each channel is resized on its own; labels and classes are kept. A zero size is an
    /// error.
    pub fn resized(&self, height: usize, width: usize) -> Result<ImageSet> {
        if height == 0 || width == 0 || self.height == 0 || self.width == 0 {
            return Err(Error::msg(format!(
                "resize: cannot resize {}x{} images to {height}x{width}: both sizes must be above 0",
                self.height, self.width
            )));
        }
        let resizer = PlaneResizer::new((self.height, self.width), (height, width));
        let mut pixels = Vec::with_capacity(self.len() * self.channels * height * width);
        for plane in self.pixels.chunks_exact(self.height * self.width) {
            resizer.resize_into(plane, &mut pixels);
        }
        Ok(ImageSet {
            pixels,
            labels: self.labels.clone(),
            height,
            width,
            ..*self
        })
    }

    /// A copy of the set with `channels` channels: 1 -> 3 repeats the grey channel; 3 -> 1 is
    /// PIL's `convert("L")` luma, `L = R * 299/1000 + G * 587/1000 + B * 114/1000`, computed on
    /// the floats (no 8-bit rounding); the same count returns an unchanged copy. Any other pair of
    /// counts is an error naming both.
    pub fn with_channels(&self, channels: usize) -> Result<ImageSet> {
        let plane = self.height * self.width;
        let pixels: Vec<f32> = match (self.channels, channels) {
            (from, to) if from == to => self.pixels.clone(),
            (from, to) if plane == 0 => {
                return Err(Error::msg(format!(
                    "channels: cannot convert {from}-channel images of {}x{} to {to} channels: \
                     the images hold no pixel",
                    self.height, self.width
                )))
            }
            (1, 3) => self
                .pixels
                .chunks_exact(plane)
                .flat_map(|grey| grey.iter().chain(grey).chain(grey).copied())
                .collect(),
            (3, 1) => self
                .pixels
                .chunks_exact(3 * plane)
                .flat_map(|rgb| {
                    let (r, gb) = rgb.split_at(plane);
                    let (g, b) = gb.split_at(plane);
                    r.iter().zip(g).zip(b).map(|((&r, &g), &b)| {
                        (f64::from(r) * 0.299 + f64::from(g) * 0.587 + f64::from(b) * 0.114) as f32
                    })
                })
                .collect(),
            (from, to) => {
                return Err(Error::msg(format!(
                    "channels: cannot convert {from}-channel images to {to} channels: only 1 -> 3 \
                     (grey repeated) and 3 -> 1 (luma) are defined"
                )))
            }
        };
        Ok(ImageSet {
            pixels,
            labels: self.labels.clone(),
            channels,
            ..*self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input images of tests/reference/pil_resize.py.
    fn pattern(h: usize, w: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                let a = ((7 * x + 13 * y) % 17) as f64 / 16.0 * 0.5;
                let b = ((x * y) % 11) as f64 / 32.0;
                v.push((a + b) as f32);
            }
        }
        v
    }

    fn grey(pixels: Vec<f32>, h: usize, w: usize) -> ImageSet {
        ImageSet::new(pixels, vec![0], (1, h, w), 1).unwrap()
    }

    #[test]
    fn resizing_matches_pillow_s_bilinear_on_float_images() {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/pil_resize.json")).unwrap();
        let cases = json["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 5);
        for case in cases {
            let dim = |key: &str, i: usize| case[key][i].as_u64().unwrap() as usize;
            let (h, w, oh, ow) = (dim("in", 0), dim("in", 1), dim("out", 0), dim("out", 1));
            let expected: Vec<f64> = case["pixels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = grey(pattern(h, w), h, w).resized(oh, ow).unwrap();
            assert_eq!((got.height, got.width, got.pixels.len()), (oh, ow, oh * ow));
            for (i, (&g, &e)) in got.pixels.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(g) - e).abs() < 1e-4,
                    "{h}x{w} -> {oh}x{ow}: pixel {i} (row {}, col {}) is {g}, Pillow gives {e}",
                    i / ow,
                    i % ow
                );
            }
        }
    }

    #[test]
    fn downscaling_by_three_weighs_inputs_with_a_stretched_triangle() {
        // 6 -> 2 by 3: output 0 is centred at 1.5 with support 3; Pillow's window is inputs 0..5,
        // pixel x (centre x + 0.5) weighs the triangle at (x - 1) / 3: 2/3, 1, 2/3, 1/3, 0 (sum
        // 8/3), so output 0 is (1/3) / (8/3) = 1/8 and, by symmetry, output 1 is 7/8 (what
        // Pillow 13 gives on this row in mode "F")
        let row = grey(vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 1, 6);
        let out = row.resized(1, 2).unwrap();
        assert!((out.pixels[0] - 0.125).abs() < 1e-6, "{:?}", out.pixels);
        assert!((out.pixels[1] - 0.875).abs() < 1e-6, "{:?}", out.pixels);
    }

    #[test]
    fn resizing_keeps_constants_labels_and_channels_apart() {
        let pixels: Vec<f32> = [0.25f32, 0.5, 0.75, 1.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, 9 * 7))
            .collect();
        let set = ImageSet::new(pixels, vec![1, 0], (2, 9, 7), 2).unwrap();
        let out = set.resized(4, 11).unwrap();
        assert_eq!(
            (out.len(), out.channels, out.height, out.width),
            (2, 2, 4, 11)
        );
        assert_eq!(out.labels, vec![1, 0]);
        for (plane, v) in out.pixels.chunks_exact(44).zip([0.25f32, 0.5, 0.75, 1.0]) {
            assert!(plane.iter().all(|p| (p - v).abs() < 1e-6), "{plane:?}");
        }
        let same = set.resized(9, 7).unwrap();
        assert_eq!(same.pixels, set.pixels);
        let err = set.resized(0, 7).unwrap_err().to_string();
        assert!(err.contains("9x7") && err.contains("0x7"), "{err}");
    }

    #[test]
    fn grey_becomes_three_equal_planes_and_colour_becomes_luma() {
        let g = ImageSet::new(vec![0.1, 0.2, 0.3, 0.4], vec![0, 1], (1, 1, 2), 2).unwrap();
        let rgb = g.with_channels(3).unwrap();
        assert_eq!(rgb.channels, 3);
        assert_eq!(
            rgb.pixels,
            vec![0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.3, 0.4, 0.3, 0.4, 0.3, 0.4]
        );
        assert_eq!(rgb.labels, vec![0, 1]);
        // one image of 2 pixels: pure red then pure green; a second image pure blue then white
        let colour = ImageSet::new(
            vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0],
            vec![0, 1],
            (3, 1, 2),
            2,
        )
        .unwrap();
        let l = colour.with_channels(1).unwrap();
        assert_eq!(l.channels, 1);
        let want = [0.299f32, 0.587, 0.114, 1.0];
        for (got, want) in l.pixels.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{:?}", l.pixels);
        }
        assert_eq!(g.with_channels(1).unwrap().pixels, g.pixels);
        let err = colour.with_channels(2).unwrap_err().to_string();
        assert!(
            err.contains("3-channel") && err.contains("to 2 channels"),
            "{err}"
        );
    }
}
