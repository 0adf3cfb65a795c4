//! Resampling shared by the corruptions: the reference's `clipped_zoom` (SciPy `zoom`, order 1),
//! PIL's BOX resize, SciPy's `map_coordinates` (order 1, `reflect`) and OpenCV's `warpAffine`.

use super::filters::{border_index, Border};

/// Linear interpolation of a plane at `(y, x)`, both inside `[0, h-1] × [0, w-1]`.
fn bilinear(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let y = y.clamp(0.0, (h - 1) as f64);
    let x = x.clamp(0.0, (w - 1) as f64);
    let (y0, x0) = (y.floor() as usize, x.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (fy, fx) = (y - y0 as f64, x - x0 as f64);
    let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
    let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The reference's `clipped_zoom` of one plane: crop the centre `ceil(h/z) × ceil(w/z)`, zoom it
/// with SciPy's `zoom(order=1)` (output `round(size z)`, corners aligned) and cut the centre
/// `h × w` back out.
pub(crate) fn clipped_zoom(plane: &[f64], h: usize, w: usize, zoom: f64) -> Vec<f64> {
    let ch = (h as f64 / zoom).ceil() as usize;
    let cw = (w as f64 / zoom).ceil() as usize;
    let (top, left) = ((h - ch) / 2, (w - cw) / 2);
    let oh = (ch as f64 * zoom).round_ties_even() as usize;
    let ow = (cw as f64 * zoom).round_ties_even() as usize;
    let sy = if oh > 1 {
        (ch - 1) as f64 / (oh - 1) as f64
    } else {
        0.0
    };
    let sx = if ow > 1 {
        (cw - 1) as f64 / (ow - 1) as f64
    } else {
        0.0
    };
    let crop: Vec<f64> = (0..ch)
        .flat_map(|y| (0..cw).map(move |x| (y, x)))
        .map(|(y, x)| plane[(top + y) * w + left + x])
        .collect();
    let (trim_top, trim_left) = (oh.saturating_sub(h) / 2, ow.saturating_sub(w) / 2);
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            let iy = (y + trim_top) as f64 * sy;
            let ix = (x + trim_left) as f64 * sx;
            out[y * w + x] = bilinear(&crop, ch, cw, iy, ix);
        }
    }
    out
}

/// PIL's 8-bit resampling coefficients for the BOX filter, in 22-bit fixed point.
fn box_coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    const PRECISION_BITS: i32 = 32 - 8 - 2;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = (x as f64 - center + 0.5) / filterscale;
                    if t > -0.5 && t <= 0.5 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let sum: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|k| {
                    let k = if sum != 0.0 { k / sum } else { *k };
                    let v = k * f64::from(1u32 << PRECISION_BITS);
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

/// One PIL 8-bit resampling pass along a line.
fn resample_line(line: &[u8], coeffs: &[(usize, Vec<i64>)]) -> Vec<u8> {
    coeffs
        .iter()
        .map(|(xmin, k)| {
            let mut ss: i64 = 1 << 21;
            for (j, kj) in k.iter().enumerate() {
                ss += i64::from(line[xmin + j]) * kj;
            }
            (ss >> 22).clamp(0, 255) as u8
        })
        .collect()
}

/// PIL's `resize(..., BOX)` of one 8-bit plane: horizontal pass, then vertical, each rounded to
/// 8 bits as PIL does.
pub(crate) fn box_resize(plane: &[u8], h: usize, w: usize, oh: usize, ow: usize) -> Vec<u8> {
    let mut mid = plane.to_vec();
    let mut mid_w = w;
    if ow != w {
        let coeffs = box_coefficients(w, ow);
        mid = (0..h)
            .flat_map(|y| resample_line(&plane[y * w..(y + 1) * w], &coeffs))
            .collect();
        mid_w = ow;
    }
    if oh == h {
        return mid;
    }
    let coeffs = box_coefficients(h, oh);
    let mut out = vec![0u8; oh * mid_w];
    for x in 0..mid_w {
        let column: Vec<u8> = (0..h).map(|y| mid[y * mid_w + x]).collect();
        for (y, v) in resample_line(&column, &coeffs).into_iter().enumerate() {
            out[y * mid_w + x] = v;
        }
    }
    out
}

/// SciPy's `map_coordinates(order=1, mode='reflect')` of one plane at `(y, x)`: the coordinate is
/// mirrored about -0.5 and `n - 0.5`, then interpolated with neighbours mirrored the same way.
pub(crate) fn map_reflect(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let fold = |c: f64, n: usize| -> f64 {
        let period = 2.0 * n as f64;
        let m = (c + 0.5).rem_euclid(period);
        let m = if m < n as f64 { m } else { period - m };
        m - 0.5
    };
    bilinear(plane, h, w, fold(y, h), fold(x, w))
}

fn det3(m: [[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// OpenCV's `getAffineTransform`: the 2×3 matrix taking the three `src` points to `dst`
/// (solved by Cramer's rule).
pub(crate) fn affine_from_points(src: &[[f64; 2]; 3], dst: &[[f64; 2]; 3]) -> [f64; 6] {
    let a = src.map(|p| [p[0], p[1], 1.0]);
    let det = det3(a);
    let solve = |u: [f64; 3]| -> [f64; 3] {
        let mut r = [0.0; 3];
        for (col, out) in r.iter_mut().enumerate() {
            let mut m = a;
            for row in 0..3 {
                m[row][col] = u[row];
            }
            *out = det3(m) / det;
        }
        r
    };
    let row0 = solve([dst[0][0], dst[1][0], dst[2][0]]);
    let row1 = solve([dst[0][1], dst[1][1], dst[2][1]]);
    [row0[0], row0[1], row0[2], row1[0], row1[1], row1[2]]
}

/// OpenCV's `invertAffineTransform`.
fn invert_affine(m: &[f64; 6]) -> [f64; 6] {
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22, a12, a21) = (m[4] * d, m[0] * d, -m[1] * d, -m[3] * d);
    let b1 = -a11 * m[2] - a12 * m[5];
    let b2 = -a21 * m[2] - a22 * m[5];
    [a11, a12, b1, a21, a22, b2]
}

/// OpenCV's `warpAffine` (bilinear, `BORDER_REFLECT_101`) of one plane with the forward matrix
/// `m`: source coordinates are computed in 10-bit fixed point and rounded to 1/32 pixel, as
/// OpenCV up to 4.10 does (4.11 and later use floating-point coordinates; make_cifar_c.py ran on
/// the fixed-point versions), and the four neighbours are mirrored at the border.
pub(crate) fn warp_affine(plane: &[f64], h: usize, w: usize, m: &[f64; 6]) -> Vec<f64> {
    let im = invert_affine(m);
    let scale = 1024.0;
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        let x0 = ((im[1] * y as f64 + im[2]) * scale).round_ties_even() as i64 + 16;
        let y0 = ((im[4] * y as f64 + im[5]) * scale).round_ties_even() as i64 + 16;
        for x in 0..w {
            let xs = (x0 + (im[0] * x as f64 * scale).round_ties_even() as i64) >> 5;
            let ys = (y0 + (im[3] * x as f64 * scale).round_ties_even() as i64) >> 5;
            let (xi, fx) = (xs >> 5, (xs & 31) as f64 / 32.0);
            let (yi, fy) = (ys >> 5, (ys & 31) as f64 / 32.0);
            let at = |yy: i64, xx: i64| -> f64 {
                let yy = border_index(yy as isize, h, Border::Reflect101);
                let xx = border_index(xx as isize, w, Border::Reflect101);
                plane[yy * w + xx]
            };
            let top = at(yi, xi) * (1.0 - fx) + at(yi, xi + 1) * fx;
            let bottom = at(yi + 1, xi) * (1.0 - fx) + at(yi + 1, xi + 1) * fx;
            out[y * w + x] = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_from_points_maps_the_points() {
        let src = [[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]];
        let dst = [[27.0, 25.5], [24.0, 7.0], [6.5, 5.0]];
        let m = affine_from_points(&src, &dst);
        for (s, d) in src.iter().zip(&dst) {
            let u = m[0] * s[0] + m[1] * s[1] + m[2];
            let v = m[3] * s[0] + m[4] * s[1] + m[5];
            assert!((u - d[0]).abs() < 1e-9 && (v - d[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn box_resize_to_the_same_size_is_the_identity() {
        let p: Vec<u8> = (0..30u8).collect();
        assert_eq!(box_resize(&p, 5, 6, 5, 6), p);
        let down = box_resize(&[0, 255, 0, 255], 2, 2, 1, 1);
        assert_eq!(down, [128]);
    }
}
