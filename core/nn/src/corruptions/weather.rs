//! Weather corruptions: snow, fog and brightness.

use super::filters::{hsv_to_rgb, motion_blur_u8, rgb_to_hsv};
use super::resample::clipped_zoom;
use super::Img;
use rossl_api::rng::Rng;

/// Per-severity (layer mean, layer std, zoom, threshold, motion radius, motion σ, blend) of `snow`.
const SNOW: [[f64; 7]; 5] = [
    [0.1, 0.2, 1.0, 0.6, 8.0, 3.0, 0.95],
    [0.1, 0.2, 1.0, 0.5, 10.0, 4.0, 0.9],
    [0.15, 0.3, 1.75, 0.55, 10.0, 4.0, 0.9],
    [0.25, 0.3, 2.25, 0.6, 12.0, 6.0, 0.85],
    [0.3, 0.3, 1.25, 0.65, 14.0, 12.0, 0.8],
];
/// Per-severity (amount, wibble decay) of `fog`.
const FOG: [(f64, f64); 5] = [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)];
/// Per-severity value shift of `brightness`.
const BRIGHTNESS: [f64; 5] = [0.05, 0.1, 0.15, 0.2, 0.3];

/// Applies `f` to the HSV triple of every pixel of a three-channel image.
pub(crate) fn map_hsv(img: &Img, f: impl Fn(f64, f64, f64) -> (f64, f64, f64)) -> Img {
    let n = img.h * img.w;
    let mut out = img.clone();
    for i in 0..n {
        let (h, s, v) = rgb_to_hsv(img.data[i], img.data[n + i], img.data[2 * n + i]);
        let (h, s, v) = f(h, s, v);
        let (r, g, b) = hsv_to_rgb(h, s, v);
        out.data[i] = r;
        out.data[n + i] = g;
        out.data[2 * n + i] = b;
    }
    out
}

/// HSV value + c, clipped to [0, 1] (deterministic); on images of other than three channels each
/// channel is a grey level, whose HSV value it is.
pub(crate) fn brightness(img: &Img, s: usize) -> Img {
    let c = BRIGHTNESS[s];
    if img.c == 3 {
        return map_hsv(img, |h, sat, v| (h, sat, (v + c).clamp(0.0, 1.0)));
    }
    let mut out = img.clone();
    out.data
        .iter_mut()
        .for_each(|v| *v = (*v + c).clamp(0.0, 1.0));
    out
}

/// Draws `height × width` normals (row-major, [`Rng::normal`]) for the snow layer, then the
/// motion angle uniform in [-135°, -45°). The layer is zoomed, thresholded, truncated to 8 bits,
/// motion-blurred (ImageMagick), and added with its 180° rotation to the image blended towards
/// `max(x, 1.5 grey + 0.5)` (grey = 0.299 R + 0.587 G + 0.114 B on three channels, otherwise
/// each channel itself).
pub(crate) fn snow(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let [mean, std, zoom, threshold, radius, sigma, blend] = SNOW[s];
    let (h, w, n) = (img.h, img.w, img.h * img.w);
    let layer: Vec<f64> = (0..n).map(|_| mean + std * rng.normal()).collect();
    let layer = clipped_zoom(&layer, h, w, zoom);
    let bytes: Vec<u8> = layer
        .iter()
        .map(|&v| if v < threshold { 0.0 } else { v })
        .map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8)
        .collect();
    let angle = rng.uniform_range(-135.0, -45.0);
    let flakes: Vec<f64> = motion_blur_u8(&bytes, h, w, radius, sigma, angle)
        .into_iter()
        .map(|b| f64::from(b) / 255.0)
        .collect();
    let d = &img.data;
    let grey = |ch: usize, i: usize| match img.c {
        3 => 0.299 * d[i] + 0.587 * d[n + i] + 0.114 * d[2 * n + i],
        _ => d[ch * n + i],
    };
    let mut out = img.clone();
    for ch in 0..img.c {
        for i in 0..n {
            let x = d[ch * n + i];
            let blended = blend * x + (1.0 - blend) * x.max(grey(ch, i) * 1.5 + 0.5);
            out.data[ch * n + i] = blended + flakes[i] + flakes[n - 1 - i];
        }
    }
    out
}

/// The reference's diamond-square `plasma_fractal` on a `size × size` map (`size` a power of
/// two), normalised to [0, 1]. Draws one [`Rng::uniform_range`]`(-wibble, wibble)` per filled
/// point, in row-major order within each of the three fills (squares, then the two diamond sets)
/// of each step.
pub(crate) fn plasma_fractal(size: usize, decay: f64, rng: &mut Rng) -> Vec<f64> {
    let mut map = vec![0.0; size * size];
    let mut step = size;
    let mut wibble = 100.0;
    while step >= 2 {
        let (half, m) = (step / 2, size / step);
        let at = |map: &[f64], r: usize, c: usize| map[r * size + c];
        let corner = |map: &[f64], i: usize, j: usize| at(map, (i % m) * step, (j % m) * step);
        let mut fill = |map: &mut Vec<f64>,
                        r0: usize,
                        c0: usize,
                        sum: &dyn Fn(&[f64], usize, usize) -> f64| {
            let vals: Vec<f64> = (0..m * m).map(|k| sum(map, k / m, k % m)).collect();
            for (k, v) in vals.into_iter().enumerate() {
                let noise = wibble * rng.uniform_range(-wibble, wibble);
                map[(r0 + (k / m) * step) * size + c0 + (k % m) * step] = v / 4.0 + noise;
            }
        };
        fill(&mut map, half, half, &|mp, i, j| {
            corner(mp, i, j)
                + corner(mp, i + 1, j)
                + corner(mp, i, j + 1)
                + corner(mp, i + 1, j + 1)
        });
        let dr =
            |mp: &[f64], i: usize, j: usize| at(mp, (i % m) * step + half, (j % m) * step + half);
        fill(&mut map, 0, half, &|mp, i, j| {
            dr(mp, i, j) + dr(mp, i + m - 1, j) + corner(mp, i, j) + corner(mp, i, j + 1)
        });
        fill(&mut map, half, 0, &|mp, i, j| {
            dr(mp, i, j) + dr(mp, i, j + m - 1) + corner(mp, i, j) + corner(mp, i + 1, j)
        });
        step /= 2;
        wibble /= decay;
    }
    let min = map.iter().copied().fold(f64::INFINITY, f64::min);
    map.iter_mut().for_each(|v| *v -= min);
    let max = map.iter().copied().fold(0.0, f64::max);
    map.iter().map(|v| v / max).collect()
}

/// `(x + c fractal) max(x) / (max(x) + c)` with a plasma fractal on the smallest power-of-two map
/// covering the image, cropped to it (drawn as [`plasma_fractal`] says).
pub(crate) fn fog(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let (amount, decay) = FOG[s];
    let size = img.h.max(img.w).next_power_of_two();
    let fractal = plasma_fractal(size, decay, rng);
    let max = img.data.iter().copied().fold(0.0, f64::max);
    let mut out = img.clone();
    let (h, w) = (img.h, img.w);
    for ch in 0..img.c {
        for y in 0..h {
            for x in 0..w {
                let v = &mut out.data[(ch * h + y) * w + x];
                *v = (*v + amount * fractal[y * size + x]) * max / (max + amount);
            }
        }
    }
    out
}
