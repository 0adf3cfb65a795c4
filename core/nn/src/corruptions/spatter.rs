//! Spatter: water drops (severities 1-3, through OpenCV's Canny edges, distance transform,
//! histogram equalisation and an emboss kernel) or mud (severities 4-5).

use super::filters::{border_index, gaussian_filter, Border};
use super::Img;
use rossl_api::rng::Rng;

/// Per-severity (mean, std, blur σ, threshold, intensity or mud σ, mud?) of `spatter`.
const SPATTER: [(f64, f64, f64, f64, f64, bool); 5] = [
    (0.62, 0.1, 0.7, 0.7, 0.5, false),
    (0.65, 0.1, 0.8, 0.7, 0.5, false),
    (0.65, 0.3, 1.0, 0.69, 0.5, false),
    (0.65, 0.1, 0.7, 0.69, 0.6, true),
    (0.65, 0.1, 0.5, 0.68, 0.6, true),
];
/// Pale turquoise, added to channels 0, 1, 2 as the reference writes it.
const WATER: [f64; 3] = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
/// Mud brown.
const MUD: [f64; 3] = [63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0];

/// OpenCV's 3×3 Sobel derivatives along x and y, replicated border.
fn sobel(img: &[u8], h: usize, w: usize) -> (Vec<i64>, Vec<i64>) {
    let p = |y: isize, x: isize| {
        let (y, x) = (
            border_index(y, h, Border::Nearest),
            border_index(x, w, Border::Nearest),
        );
        i64::from(img[y * w + x])
    };
    let mut dx = vec![0i64; h * w];
    let mut dy = vec![0i64; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            dx[i] = p(y - 1, x + 1) + 2 * p(y, x + 1) + p(y + 1, x + 1)
                - p(y - 1, x - 1)
                - 2 * p(y, x - 1)
                - p(y + 1, x - 1);
            dy[i] = p(y + 1, x - 1) + 2 * p(y + 1, x) + p(y + 1, x + 1)
                - p(y - 1, x - 1)
                - 2 * p(y - 1, x)
                - p(y - 1, x + 1);
        }
    }
    (dx, dy)
}

/// OpenCV's `Canny(img, low, high)` with a 3×3 Sobel (replicated border) and the L1 magnitude:
/// non-maximum suppression in four directions (tan 22.5° in 15-bit fixed point), then hysteresis
/// over the 8-neighbourhood.
fn canny(img: &[u8], h: usize, w: usize, low: i64, high: i64) -> Vec<bool> {
    let (dx, dy) = sobel(img, h, w);
    // Magnitudes with a zero border, as OpenCV's suppression reads them.
    let mag = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0
        } else {
            let i = y as usize * w + x as usize;
            dx[i].abs() + dy[i].abs()
        }
    };
    let mut state = vec![1u8; h * w]; // 1 no edge, 0 candidate, 2 edge
    let mut stack = Vec::new();
    for y in 0..h as isize {
        for x in 0..w as isize {
            let (i, m) = (y as usize * w + x as usize, mag(y, x));
            if m <= low {
                continue;
            }
            let (xs, ys) = (dx[i], dy[i]);
            let (ax, ay) = (xs.abs(), ys.abs() << 15);
            let tg22x = ax * 13573;
            let keep = if ay < tg22x {
                m > mag(y, x - 1) && m >= mag(y, x + 1)
            } else if ay > tg22x + (ax << 16) {
                m > mag(y - 1, x) && m >= mag(y + 1, x)
            } else {
                let s = if (xs ^ ys) < 0 { -1 } else { 1 };
                m > mag(y - 1, x - s) && m > mag(y + 1, x + s)
            };
            if keep && m > high {
                state[i] = 2;
                stack.push((y, x));
            } else if keep {
                state[i] = 0;
            }
        }
    }
    while let Some((y, x)) = stack.pop() {
        for ny in y - 1..=y + 1 {
            for nx in x - 1..=x + 1 {
                if ny >= 0
                    && nx >= 0
                    && (ny as usize) < h
                    && (nx as usize) < w
                    && state[ny as usize * w + nx as usize] == 0
                {
                    state[ny as usize * w + nx as usize] = 2;
                    stack.push((ny, nx));
                }
            }
        }
    }
    state.into_iter().map(|s| s == 2).collect()
}

/// OpenCV's `distanceTransform(img, DIST_L2, 5)`: distance to the nearest zero pixel by the
/// two-pass 5×5 chamfer (1, 1.4, 2.1969 in 16-bit fixed point).
fn distance(img: &[u8], h: usize, w: usize) -> Vec<f32> {
    let (hv, diag, long) = (65536i64, 91750i64, 143976i64);
    let (tw, big) = (w + 4, i64::from(i32::MAX));
    let mut t = vec![big; (h + 4) * tw];
    let fwd = [
        (-2, -1, long),
        (-2, 1, long),
        (-1, -2, long),
        (-1, -1, diag),
        (-1, 0, hv),
        (-1, 1, diag),
        (-1, 2, long),
        (0, -1, hv),
    ];
    let at = |y: usize, x: usize, dy: isize, dx: isize| {
        ((y as isize + 2 + dy) as usize) * tw + (x as isize + 2 + dx) as usize
    };
    for y in 0..h {
        for x in 0..w {
            let v = if img[y * w + x] == 0 {
                0
            } else {
                fwd.iter()
                    .map(|&(dy, dx, d)| t[at(y, x, dy, dx)] + d)
                    .min()
                    .unwrap_or(big)
            };
            t[at(y, x, 0, 0)] = v;
        }
    }
    let mut out = vec![0f32; h * w];
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let mut t0 = t[at(y, x, 0, 0)];
            if t0 > hv {
                t0 = fwd
                    .iter()
                    .map(|&(dy, dx, d)| t[at(y, x, -dy, -dx)] + d)
                    .fold(t0, i64::min);
                t[at(y, x, 0, 0)] = t0;
            }
            out[y * w + x] = t0 as f32 * (1.0f32 / 65536.0);
        }
    }
    out
}

/// The 3×3 neighbourhood sum of a plane with a kernel (OpenCV's `BORDER_REFLECT_101`).
fn conv3(plane: &[f64], h: usize, w: usize, kernel: &[f64; 9]) -> Vec<f64> {
    (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as isize, (i % w) as isize);
            let mut acc = 0.0;
            for (k, kv) in kernel.iter().enumerate() {
                let yy = border_index(y + k as isize / 3 - 1, h, Border::Reflect101);
                let xx = border_index(x + k as isize % 3 - 1, w, Border::Reflect101);
                acc += kv * plane[yy * w + xx];
            }
            acc
        })
        .collect()
}

/// OpenCV's `equalizeHist`.
fn equalize(img: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    img.iter().for_each(|&v| hist[usize::from(v)] += 1);
    let Some(first) = hist.iter().position(|&c| c > 0) else {
        return img.to_vec();
    };
    if hist[first] == img.len() {
        return vec![first as u8; img.len()];
    }
    let scale = 255.0f32 / (img.len() - hist[first]) as f32;
    let mut lut = [0u8; 256];
    let mut sum = 0usize;
    for j in first + 1..256 {
        sum += hist[j];
        lut[j] = (sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    img.iter().map(|&v| lut[usize::from(v)]).collect()
}

/// The water mask: the thresholded layer times an embossed, equalised distance to its edges,
/// normalised to peak 1 (all zero when the layer is empty), times the intensity.
fn water_mask(layer: &[f64], h: usize, w: usize, intensity: f64) -> Vec<f64> {
    let bytes: Vec<u8> = layer
        .iter()
        .map(|&v| ((v * 255.0).floor() as i64).rem_euclid(256) as u8)
        .collect();
    let edges = canny(&bytes, h, w, 50, 150);
    let not_edges: Vec<u8> = edges.iter().map(|&e| if e { 0 } else { 255 }).collect();
    let dist: Vec<f64> = distance(&not_edges, h, w)
        .into_iter()
        .map(|d| f64::from(d.min(20.0)))
        .collect();
    let blurred: Vec<u8> = conv3(&dist, h, w, &[1.0; 9])
        .into_iter()
        .map(|s| (s / 9.0) as f32 as u8)
        .collect();
    let eq: Vec<f64> = equalize(&blurred).into_iter().map(f64::from).collect();
    let emboss = [-2.0, -1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0];
    let embossed: Vec<f64> = conv3(&eq, h, w, &emboss)
        .into_iter()
        .map(|v| v.round_ties_even().clamp(0.0, 255.0))
        .collect();
    let dist: Vec<f64> = conv3(&embossed, h, w, &[1.0; 9])
        .into_iter()
        .map(|s| (s / 9.0).round_ties_even().clamp(0.0, 255.0))
        .collect();
    let m: Vec<f64> = bytes
        .iter()
        .zip(&dist)
        .map(|(&b, &d)| f64::from(f32::from(b) * d as f32))
        .collect();
    let peak = m.iter().copied().fold(0.0, f64::max);
    m.into_iter()
        .map(|v| {
            if peak > 0.0 {
                v / peak * intensity
            } else {
                0.0
            }
        })
        .collect()
}

/// Draws `height × width` normals ([`Rng::normal`], row-major) for the liquid layer, blurs and
/// thresholds it; severities 1-3 add pale-turquoise water along an embossed distance to the
/// layer's edges, 4-5 paint blurred mud. Images of other than three channels get the colour's
/// mean over its components.
pub(crate) fn spatter(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let (mean, std, sigma, threshold, intensity, mud) = SPATTER[s];
    let (h, w, n) = (img.h, img.w, img.h * img.w);
    let layer: Vec<f64> = (0..n).map(|_| mean + std * rng.normal()).collect();
    let layer: Vec<f64> = gaussian_filter(&layer, h, w, sigma, 4.0, Border::Nearest)
        .into_iter()
        .map(|v| if v < threshold { 0.0 } else { v })
        .collect();
    let colour = |palette: [f64; 3], ch: usize| {
        if img.c == 3 {
            palette[ch]
        } else {
            palette.iter().sum::<f64>() / 3.0
        }
    };
    let mut out = img.clone();
    if !mud {
        let m = water_mask(&layer, h, w, intensity);
        for ch in 0..img.c {
            for (o, mv) in out.plane_mut(ch).iter_mut().zip(&m) {
                *o = (*o + mv * colour(WATER, ch)).clamp(0.0, 1.0);
            }
        }
        return out;
    }
    let mask: Vec<f64> = layer
        .iter()
        .map(|&v| if v > threshold { 1.0 } else { 0.0 })
        .collect();
    let m: Vec<f64> = gaussian_filter(&mask, h, w, intensity, 4.0, Border::Nearest)
        .into_iter()
        .map(|v| if (v as f32) < 0.8 { 0.0 } else { v })
        .collect();
    for ch in 0..img.c {
        for (o, mv) in out.plane_mut(ch).iter_mut().zip(&m) {
            *o = (*o * (1.0 - mv) + colour(MUD, ch) * mv).clamp(0.0, 1.0);
        }
    }
    out
}
