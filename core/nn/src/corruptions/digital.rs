//! Digital corruptions: contrast, saturate, elastic transform, pixelate and JPEG.

use super::filters::{gaussian_filter, Border};
use super::resample::{affine_from_points, box_resize, map_reflect, warp_affine};
use super::weather::map_hsv;
use super::Img;
use rossl_api::rng::Rng;

/// Per-severity factor of `contrast`.
const CONTRAST: [f64; 5] = [0.75, 0.5, 0.4, 0.3, 0.15];
/// Per-severity (scale, shift) of the HSV saturation in `saturate`.
const SATURATE: [(f64, f64); 5] = [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)];
/// Per-severity (displacement scale, field σ, affine jitter) of `elastic_transform`, as
/// fractions of the image side (the reference writes `32 × fraction`).
const ELASTIC: [(f64, f64, f64); 5] = [
    (0.0, 0.0, 0.08),
    (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05),
    (0.1, 0.03, 0.03),
];
/// Per-severity size fraction of `pixelate`.
const PIXELATE: [f64; 5] = [0.95, 0.9, 0.85, 0.75, 0.65];
/// Per-severity JPEG quality of `jpeg_compression`.
const JPEG: [u8; 5] = [80, 65, 58, 50, 40];

/// `(x - mean) c + mean` with the mean per channel over the image (deterministic).
pub(crate) fn contrast(img: &Img, s: usize) -> Img {
    let c = CONTRAST[s];
    img.map_planes(|p| {
        let mean = p.iter().sum::<f64>() / p.len() as f64;
        p.iter().map(|v| (v - mean) * c + mean).collect()
    })
}

/// HSV saturation `S c0 + c1`, clipped (deterministic); images of other than three channels are
/// returned unchanged (grey has no hue to saturate).
pub(crate) fn saturate(img: &Img, s: usize) -> Img {
    let (scale, shift) = SATURATE[s];
    if img.c != 3 {
        return img.clone();
    }
    map_hsv(img, |h, sat, v| {
        (h, (sat * scale + shift).clamp(0.0, 1.0), v)
    })
}

/// Random affine warp (OpenCV, mirrored border) then a bilinear remap along a smoothed random
/// displacement field (SciPy). Draws, all [`Rng::uniform_range`]: 6 affine jitters in
/// `[-j, j)` (three points, x then y), then `height × width` values in `[-1, 1)` for the column
/// displacement, then as many for the row displacement (row-major). Sizes in pixels are
/// `min(height, width) ×` the per-severity fractions.
pub(crate) fn elastic(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let side = img.h.min(img.w) as f64;
    let (alpha, sigma, jitter) = (
        ELASTIC[s].0 * side,
        ELASTIC[s].1 * side,
        ELASTIC[s].2 * side,
    );
    let (h, w, n) = (img.h, img.w, img.h * img.w);
    // The reference's anchor points, from (height // 2, width // 2) and min(height, width) // 3.
    let (cy, cx) = ((h / 2) as f64, (w / 2) as f64);
    let sq = (h.min(w) / 3) as f64;
    let src = [[cy + sq, cx + sq], [cy + sq, cx - sq], [cy - sq, cx - sq]];
    let mut dst = src;
    for p in dst.iter_mut() {
        for v in p.iter_mut() {
            *v = f64::from((*v + rng.uniform_range(-jitter, jitter) as f32 as f64) as f32);
        }
    }
    let m = affine_from_points(&src, &dst);
    let warped = img.map_planes(|p| warp_affine(p, h, w, &m));
    let field = |rng: &mut Rng| -> Vec<f64> {
        let u: Vec<f64> = (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        gaussian_filter(&u, h, w, sigma, 3.0, Border::Reflect)
            .into_iter()
            .map(|v| f64::from((v * alpha) as f32))
            .collect()
    };
    let dx = field(rng);
    let dy = field(rng);
    warped.map_planes(|p| {
        (0..n)
            .map(|i| {
                let (y, x) = ((i / w) as f64, (i % w) as f64);
                map_reflect(p, h, w, y + dy[i], x + dx[i])
            })
            .collect()
    })
}

/// PIL BOX resize of the 8-bit image to `floor(c h) × floor(c w)` and back (deterministic).
pub(crate) fn pixelate(img: &Img, s: usize) -> Img {
    let c = PIXELATE[s];
    let (h, w, n) = (img.h, img.w, img.h * img.w);
    let (sh, sw) = (((h as f64) * c) as usize, ((w as f64) * c) as usize);
    let bytes = img.to_u8();
    let mut out = Img::new(img.c, h, w);
    for ch in 0..img.c {
        let small = box_resize(&bytes[ch * n..(ch + 1) * n], h, w, sh.max(1), sw.max(1));
        let back = box_resize(&small, sh.max(1), sw.max(1), h, w);
        for (o, b) in out.plane_mut(ch).iter_mut().zip(back) {
            *o = f64::from(b) / 255.0;
        }
    }
    out
}

/// JPEG compression of the 8-bit image at the reference's quality (deterministic): the lossy
/// path of libjpeg's baseline codec with PIL's defaults, in integer arithmetic ([`super::jpeg`]);
/// three-channel images as RGB with 4:2:0 chroma, others channel by channel as grey.
pub(crate) fn jpeg(img: &Img, s: usize) -> Img {
    let (h, w, n) = (img.h, img.w, img.h * img.w);
    let bytes = img.to_u8();
    let quality = u32::from(JPEG[s]);
    let planes: Vec<Vec<u8>> = if img.c == 3 {
        let [r, g, b] = super::jpeg::rgb(
            [&bytes[..n], &bytes[n..2 * n], &bytes[2 * n..]],
            h,
            w,
            quality,
        );
        vec![r, g, b]
    } else {
        (0..img.c)
            .map(|ch| super::jpeg::grey(&bytes[ch * n..(ch + 1) * n], h, w, quality))
            .collect()
    };
    let mut out = Img::new(img.c, h, w);
    for (ch, plane) in planes.into_iter().enumerate() {
        for (o, v) in out.plane_mut(ch).iter_mut().zip(plane) {
            *o = f64::from(v) / 255.0;
        }
    }
    out
}
