//! Filters shared by the corruptions: SciPy's Gaussian filter, OpenCV's `filter2D`, ImageMagick's
//! motion blur and scikit-image's RGB/HSV conversions.

/// How a filter reads outside the image.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Border {
    /// Repeat the edge pixel (SciPy `nearest`, ImageMagick's edge virtual pixels).
    Nearest,
    /// Mirror including the edge pixel, `d c b a | a b c d` (SciPy `reflect`).
    Reflect,
    /// Mirror without repeating the edge pixel, `d c b | a b c d` (OpenCV's default).
    Reflect101,
}

/// The index that `i` reads in a line of `n` samples.
pub(crate) fn border_index(i: isize, n: usize, border: Border) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let r = match border {
        Border::Nearest => i.clamp(0, n - 1),
        Border::Reflect => {
            let period = 2 * n;
            let m = i.rem_euclid(period);
            if m < n {
                m
            } else {
                period - 1 - m
            }
        }
        Border::Reflect101 => {
            let period = 2 * n - 2;
            let m = i.rem_euclid(period);
            if m < n {
                m
            } else {
                period - m
            }
        }
    };
    r as usize
}

/// SciPy's 1-D Gaussian weights: `exp(-x²/2σ²)` for `x` in `-r..=r`, `r = int(truncate σ + 0.5)`,
/// normalised to sum 1.
pub(crate) fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as isize;
    let k: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.into_iter().map(|v| v / sum).collect()
}

/// Correlates a `h × w` plane with `kernel` (odd length, centred) along rows then columns.
pub(crate) fn separable(
    plane: &[f64],
    h: usize,
    w: usize,
    kernel: &[f64],
    border: Border,
) -> Vec<f64> {
    // Axis 0 (down the columns) first, as SciPy filters axis by axis.
    let down = along_axis(plane, h, w, kernel, border, true);
    along_axis(&down, h, w, kernel, border, false)
}

/// Correlates a `h × w` plane with `kernel` (odd length, centred) down its columns (`vertical`)
/// or along its rows.
fn along_axis(
    plane: &[f64],
    h: usize,
    w: usize,
    kernel: &[f64],
    border: Border,
    vertical: bool,
) -> Vec<f64> {
    let r = (kernel.len() / 2) as isize;
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, k) in kernel.iter().enumerate() {
                let offset = j as isize - r;
                let index = if vertical {
                    border_index(y as isize + offset, h, border) * w + x
                } else {
                    y * w + border_index(x as isize + offset, w, border)
                };
                acc += k * plane[index];
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// SciPy's `gaussian_filter` of one plane (scikit-image's `gaussian` per channel); σ ≈ 0 is the
/// identity as in SciPy.
pub(crate) fn gaussian_filter(
    plane: &[f64],
    h: usize,
    w: usize,
    sigma: f64,
    truncate: f64,
    border: Border,
) -> Vec<f64> {
    if sigma <= 1e-15 {
        return plane.to_vec();
    }
    separable(plane, h, w, &gaussian_kernel(sigma, truncate), border)
}

/// OpenCV's `filter2D` (a correlation, anchor at the centre, `BORDER_REFLECT_101`) of one plane
/// with a square kernel of odd side.
pub(crate) fn filter2d(plane: &[f64], h: usize, w: usize, kernel: &[f64], side: usize) -> Vec<f64> {
    let r = (side / 2) as isize;
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for ky in 0..side {
                let yy = border_index(y as isize + ky as isize - r, h, Border::Reflect101);
                for kx in 0..side {
                    let xx = border_index(x as isize + kx as isize - r, w, Border::Reflect101);
                    acc += kernel[ky * side + kx] * plane[yy * w + xx];
                }
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// ImageMagick's `MotionBlurImage` of one 8-bit plane: a one-sided line of
/// `width = 2 ceil(radius) + 1` taps with weights `exp(-i²/2σ²)` (i = 0..width) normalised to
/// sum 1, tap `i` at offset `(ceil(i cos a - 0.5), ceil(i sin a - 0.5))` (x right, y down, `a` the
/// angle in degrees), edge virtual pixels (coordinates clamped), rounded to 16 bits and truncated
/// to 8 as ImageMagick 6 Q16 does (checked against `convert -motion-blur` of ImageMagick
/// 6.9.11-60 Q16: identical bytes on RGB and grey test images at four radius/σ/angle settings).
pub(crate) fn motion_blur_u8(
    plane: &[u8],
    h: usize,
    w: usize,
    radius: f64,
    sigma: f64,
    angle_deg: f64,
) -> Vec<u8> {
    let width = (2.0 * radius.ceil() + 1.0) as usize;
    let sigma = if sigma.abs() < 1e-12 { 1e-12 } else { sigma };
    let mut kernel: Vec<f64> = (0..width)
        .map(|i| {
            (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()
                / ((2.0 * std::f64::consts::PI).sqrt() * sigma)
        })
        .collect();
    let norm: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= norm);
    let a = angle_deg.to_radians();
    let (px, py) = (width as f64 * a.sin(), width as f64 * a.cos());
    let hyp = px.hypot(py);
    let offsets: Vec<(isize, isize)> = (0..width)
        .map(|i| {
            let ox = ((i as f64 * py) / hyp - 0.5).ceil() as isize;
            let oy = ((i as f64 * px) / hyp - 0.5).ceil() as isize;
            (ox, oy)
        })
        .collect();
    let mut out = vec![0u8; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, &(ox, oy)) in kernel.iter().zip(&offsets) {
                let xx = border_index(x as isize + ox, w, Border::Nearest);
                let yy = border_index(y as isize + oy, h, Border::Nearest);
                acc += k * f64::from(plane[yy * w + xx]);
            }
            // ImageMagick Q16: the 8-bit value scaled by 257, the sum rounded to 16 bits
            // (ClampToQuantum), then truncated to 8 bits when written.
            let q16 = (acc * 257.0).round().clamp(0.0, 65535.0);
            out[y * w + x] = (q16 / 257.0).floor() as u8;
        }
    }
    out
}

/// scikit-image's `rgb2hsv` of one pixel: hue in [0, 1), blue's hue formula winning ties over
/// green's over red's, hue and saturation 0 where max = min.
pub(crate) fn rgb_to_hsv(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta == 0.0 {
        return (0.0, 0.0, v);
    }
    let s = delta / v;
    let mut h = 0.0;
    if r == v {
        h = (g - b) / delta;
    }
    if g == v {
        h = 2.0 + (b - r) / delta;
    }
    if b == v {
        h = 4.0 + (r - g) / delta;
    }
    ((h / 6.0).rem_euclid(1.0), s, v)
}

/// scikit-image's `hsv2rgb` of one pixel.
pub(crate) fn hsv_to_rgb(h: f64, s: f64, v: f64) -> (f64, f64, f64) {
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    match (hi as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_mirror_as_scipy_and_opencv_do() {
        let r: Vec<usize> = (-3..7)
            .map(|i| border_index(i, 4, Border::Reflect))
            .collect();
        assert_eq!(r, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        let r: Vec<usize> = (-3..7)
            .map(|i| border_index(i, 4, Border::Reflect101))
            .collect();
        assert_eq!(r, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn hsv_round_trips() {
        for &(r, g, b) in &[
            (0.2, 0.5, 0.9),
            (1.0, 0.0, 0.3),
            (0.4, 0.4, 0.1),
            (0.7, 0.7, 0.7),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-12 && (g - g2).abs() < 1e-12 && (b - b2).abs() < 1e-12);
        }
    }
}
