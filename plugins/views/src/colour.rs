//! Colour operations on float images in [0, 1], following torchvision's tensor functions.

/// Luma weights of torchvision's `rgb_to_grayscale` (ITU-R 601-2).
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// The grey value of each pixel of a (3, H, W) image.
pub fn grey_plane(image: &[f32], plane: usize) -> Vec<f32> {
    (0..plane)
        .map(|i| LUMA[0] * image[i] + LUMA[1] * image[plane + i] + LUMA[2] * image[2 * plane + i])
        .collect()
}

/// `factor * image`, clamped: torchvision's `adjust_brightness`.
pub fn brightness(image: &mut [f32], factor: f32) {
    image
        .iter_mut()
        .for_each(|v| *v = (factor * *v).clamp(0.0, 1.0));
}

/// Blend with the mean grey level, clamped: torchvision's `adjust_contrast`.
pub fn contrast(image: &mut [f32], channels: usize, factor: f32) {
    let plane = image.len() / channels;
    let mean = if channels == 3 {
        grey_plane(image, plane).iter().sum::<f32>() / plane as f32
    } else {
        image.iter().sum::<f32>() / image.len() as f32
    };
    image
        .iter_mut()
        .for_each(|v| *v = (factor * *v + (1.0 - factor) * mean).clamp(0.0, 1.0));
}

/// Blend with the grey image, clamped: torchvision's `adjust_saturation` (grey images unchanged).
pub fn saturation(image: &mut [f32], channels: usize, factor: f32) {
    if channels != 3 {
        return;
    }
    let plane = image.len() / 3;
    let grey = grey_plane(image, plane);
    for c in 0..3 {
        for (v, g) in image[c * plane..(c + 1) * plane].iter_mut().zip(&grey) {
            *v = (factor * *v + (1.0 - factor) * g).clamp(0.0, 1.0);
        }
    }
}

/// RGB to (hue, saturation, value), hue in [0, 1): torchvision's `_rgb2hsv`.
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let equal = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if equal { 1.0 } else { maxc };
    let divisor = if equal { 1.0 } else { cr };
    let rc = (maxc - r) / divisor;
    let gc = (maxc - g) / divisor;
    let bc = (maxc - b) / divisor;
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (h / 6.0 + 1.0).rem_euclid(1.0);
    (h, s, maxc)
}

/// (hue, saturation, value) to RGB: torchvision's `_hsv2rgb`.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let i = (i as i64).rem_euclid(6);
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match i {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Rotates the hue by `shift` (a fraction of the circle, in [-0.5, 0.5]): torchvision's
/// `adjust_hue` (grey images unchanged).
pub fn hue(image: &mut [f32], channels: usize, shift: f32) {
    if channels != 3 {
        return;
    }
    let plane = image.len() / 3;
    for i in 0..plane {
        let (h, s, v) = rgb_to_hsv(image[i], image[plane + i], image[2 * plane + i]);
        let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
        image[i] = r;
        image[plane + i] = g;
        image[2 * plane + i] = b;
    }
}

/// Replaces each channel of a colour image by its grey value (grey images unchanged).
pub fn grayscale(image: &mut [f32], channels: usize) {
    if channels != 3 {
        return;
    }
    let plane = image.len() / 3;
    let grey = grey_plane(image, plane);
    for c in 0..3 {
        image[c * plane..(c + 1) * plane].copy_from_slice(&grey);
    }
}

/// Inverts every value at or above `threshold`: PIL's `ImageOps.solarize`.
pub fn solarize(image: &mut [f32], threshold: f32) {
    image.iter_mut().for_each(|v| {
        if *v >= threshold {
            *v = 1.0 - *v;
        }
    });
}

/// Mirrors each row.
pub fn horizontal_flip(image: &mut [f32], width: usize) {
    image.chunks_exact_mut(width).for_each(<[f32]>::reverse);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn hue_shift_of_known_colours() {
        // pure red rotated by a third of the circle is pure green, by two thirds pure blue
        let mut red = vec![1.0, 0.0, 0.0];
        hue(&mut red, 3, 1.0 / 3.0);
        assert!(
            close(red[0], 0.0) && close(red[1], 1.0) && close(red[2], 0.0),
            "{red:?}"
        );
        let mut red = vec![1.0, 0.0, 0.0];
        hue(&mut red, 3, -1.0 / 3.0);
        assert!(
            close(red[0], 0.0) && close(red[1], 0.0) && close(red[2], 1.0),
            "{red:?}"
        );
        // orange (1, 0.5, 0): hue 1/12; +1/12 gives yellow (1, 1, 0)
        let mut orange = vec![1.0, 0.5, 0.0];
        hue(&mut orange, 3, 1.0 / 12.0);
        assert!(
            close(orange[0], 1.0) && close(orange[1], 1.0) && close(orange[2], 0.0),
            "{orange:?}"
        );
        // a grey image is unchanged
        let mut grey = vec![0.3];
        hue(&mut grey, 1, 0.4);
        assert_eq!(grey, vec![0.3]);
    }

    #[test]
    fn hsv_round_trip() {
        for &(r, g, b) in &[
            (0.2f32, 0.4f32, 0.9f32),
            (0.9, 0.1, 0.5),
            (0.5, 0.5, 0.5),
            (0.0, 0.7, 0.2),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!(
                close(r, r2) && close(g, g2) && close(b, b2),
                "{r} {g} {b} -> {r2} {g2} {b2}"
            );
        }
    }

    #[test]
    fn solarize_inverts_at_and_above_the_threshold() {
        let t = 128.0 / 255.0;
        let mut v = vec![127.0 / 255.0, t, 200.0 / 255.0];
        solarize(&mut v, t);
        assert!(close(v[0], 127.0 / 255.0));
        assert!(close(v[1], 127.0 / 255.0)); // 1 - 128/255
        assert!(close(v[2], 55.0 / 255.0));
    }

    #[test]
    fn brightness_contrast_saturation_grayscale_by_hand() {
        let mut v = vec![0.2, 0.6];
        brightness(&mut v, 2.0);
        assert!(close(v[0], 0.4) && close(v[1], 1.0));
        // contrast 0.5 on a grey image [0.2, 0.6] (mean 0.4): 0.5 * x + 0.2
        let mut v = vec![0.2, 0.6];
        contrast(&mut v, 1, 0.5);
        assert!(close(v[0], 0.3) && close(v[1], 0.5));
        // saturation 0 and grayscale both give the luma 0.299 * 1 = 0.299 for pure red
        let mut red = vec![1.0, 0.0, 0.0];
        saturation(&mut red, 3, 0.0);
        assert!(red.iter().all(|&c| close(c, 0.299)), "{red:?}");
        let mut red = vec![1.0, 0.0, 0.0];
        grayscale(&mut red, 3);
        assert!(red.iter().all(|&c| close(c, 0.299)), "{red:?}");
    }
}
