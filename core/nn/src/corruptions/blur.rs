//! Blur corruptions: defocus, glass, motion, zoom and Gaussian blur.

use super::filters::{filter2d, gaussian_filter, motion_blur_u8, separable, Border};
use super::resample::clipped_zoom;
use super::Img;
use rossl_api::rng::Rng;

/// Per-severity σ of `gaussian_blur`.
const GAUSSIAN: [f64; 5] = [0.4, 0.6, 0.7, 0.8, 1.0];
/// Per-severity (σ, largest shift, iterations) of `glass_blur`.
const GLASS: [(f64, i64, usize); 5] = [
    (0.05, 1, 1),
    (0.25, 1, 1),
    (0.4, 1, 1),
    (0.25, 1, 2),
    (0.4, 1, 2),
];
/// Per-severity (disk radius, anti-alias σ) of `defocus_blur`.
const DEFOCUS: [(f64, f64); 5] = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)];
/// Per-severity (radius, σ) of `motion_blur`.
const MOTION: [(f64, f64); 5] = [(6.0, 1.0), (6.0, 1.5), (6.0, 2.0), (8.0, 2.0), (9.0, 2.5)];
/// Per-severity zoom count of `zoom_blur`: NumPy's `arange(1, stop, 0.01)` has 7, 12, 16, 21 and
/// 26 elements for the reference's stops 1.06, 1.11, 1.16, 1.21 and 1.26.
const ZOOMS: [usize; 5] = [7, 12, 16, 21, 26];

/// scikit-image's `gaussian` per channel (SciPy, `nearest` border, truncate 4).
fn blur_planes(img: &Img, sigma: f64) -> Img {
    img.map_planes(|p| gaussian_filter(p, img.h, img.w, sigma, 4.0, Border::Nearest))
}

/// Gaussian blur with σ in pixels (deterministic).
pub(crate) fn gaussian(img: &Img, s: usize) -> Img {
    blur_planes(img, GAUSSIAN[s])
}

/// Blur, truncate to 8 bits, then for each iteration and each interior pixel from the bottom
/// right (row `h-d` down to `d+1`, column `w-d` down to `d+1`) draw `dx` then `dy` uniform in
/// `[-d, d)` ([`Rng::below`]) and copy pixel `(row+dy, col+dx)` onto `(row, col)`, then blur.
/// The reference writes a swap, but on NumPy views of RGB pixels it is this copy.
pub(crate) fn glass(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let (sigma, d, iterations) = GLASS[s];
    let mut x = blur_planes(img, sigma);
    x.data
        .iter_mut()
        .for_each(|v| *v = (*v * 255.0).floor() / 255.0);
    let (h, w, n) = (x.h as i64, x.w as i64, x.h * x.w);
    for _ in 0..iterations {
        for row in (d + 1..=h - d).rev() {
            for col in (d + 1..=w - d).rev() {
                let dx = rng.below(2 * d as u64) as i64 - d;
                let dy = rng.below(2 * d as u64) as i64 - d;
                let from = ((row + dy) * w + col + dx) as usize;
                let to = (row * w + col) as usize;
                for ch in 0..x.c {
                    x.data[ch * n + to] = x.data[ch * n + from];
                }
            }
        }
    }
    blur_planes(&x, sigma)
}

/// The reference's `disk`: a 17×17 disk of the given radius normalised to sum 1, smoothed by
/// OpenCV's 3×3 Gaussian (`BORDER_REFLECT_101`).
fn disk(radius: f64, alias_sigma: f64) -> Vec<f64> {
    let side = 17;
    let mut k: Vec<f64> = (0..side * side)
        .map(|i| {
            let (y, x) = ((i / side) as f64 - 8.0, (i % side) as f64 - 8.0);
            if x * x + y * y <= radius * radius {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let g: Vec<f64> = (-1..=1)
        .map(|i: i32| (-f64::from(i * i) / (2.0 * alias_sigma * alias_sigma)).exp())
        .collect();
    let gs: f64 = g.iter().sum();
    let g: Vec<f64> = g.iter().map(|v| v / gs).collect();
    separable(&k, side, side, &g, Border::Reflect101)
}

/// Convolution with the anti-aliased disk per channel (OpenCV `filter2D`); deterministic.
pub(crate) fn defocus(img: &Img, s: usize) -> Img {
    let (radius, alias) = DEFOCUS[s];
    let kernel = disk(radius, alias);
    img.map_planes(|p| filter2d(p, img.h, img.w, &kernel, 17))
}

/// ImageMagick's motion blur of the 8-bit image at an angle drawn uniform in [-45°, 45°) (one
/// [`Rng::uniform_range`]).
pub(crate) fn motion(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let (radius, sigma) = MOTION[s];
    let angle = rng.uniform_range(-45.0, 45.0);
    let bytes = img.to_u8();
    let n = img.h * img.w;
    let mut out = Img::new(img.c, img.h, img.w);
    for ch in 0..img.c {
        let blurred = motion_blur_u8(
            &bytes[ch * n..(ch + 1) * n],
            img.h,
            img.w,
            radius,
            sigma,
            angle,
        );
        for (o, b) in out.plane_mut(ch).iter_mut().zip(blurred) {
            *o = f64::from(b) / 255.0;
        }
    }
    out
}

/// Mean of the image and its clipped zooms by 1, 1.01, 1.02, ... (deterministic), in f32 as the
/// reference computes it.
pub(crate) fn zoom(img: &Img, s: usize) -> Img {
    // NumPy's arange fills start + i * (second - first): the step is (1 + 0.01) - 1.
    let step = (1.0 + 0.01) - 1.0;
    let zooms: Vec<f64> = (0..ZOOMS[s]).map(|i| 1.0 + i as f64 * step).collect();
    let f32_round = |v: f64| f64::from(v as f32);
    img.map_planes(|p| {
        let x: Vec<f64> = p.iter().map(|&v| f32_round(v)).collect();
        let mut acc = vec![0.0f32; x.len()];
        for &z in &zooms {
            let zoomed = clipped_zoom(&x, img.h, img.w, z);
            for (a, v) in acc.iter_mut().zip(zoomed) {
                *a += v as f32;
            }
        }
        let n = (zooms.len() + 1) as f32;
        x.iter()
            .zip(&acc)
            .map(|(&v, &a)| f64::from((v as f32 + a) / n))
            .collect()
    })
}
