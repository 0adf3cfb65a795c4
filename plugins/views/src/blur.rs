//! Gaussian blur with a separable kernel of radius ceil(3 sigma) and reflected borders.
//!
//! The reference pipeline blurs with PIL's `GaussianBlur(radius=sigma)`, which approximates the
//! Gaussian with three box blurs; rossl uses the exact sampled Gaussian (as torchvision's
//! tensor `gaussian_blur`), which differs from PIL's by a few grey levels at most.

/// The normalised 1-D kernel for `sigma`: weights for offsets -r..=r, r = max(1, ceil(3 sigma)).
pub fn kernel(sigma: f64) -> Vec<f32> {
    let radius = ((3.0 * sigma).ceil() as usize).max(1);
    let weights: Vec<f64> = (-(radius as i64)..=radius as i64)
        .map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| (w / total) as f32).collect()
}

/// Reflects index `i` into `0..n` (`reflect` padding: the edge pixel is not repeated).
fn reflect(mut i: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Blurs each (height, width) plane of `image` in place.
pub fn gaussian_blur(image: &mut [f32], height: usize, width: usize, sigma: f64) {
    let k = kernel(sigma);
    let r = (k.len() / 2) as i64;
    let mut tmp = vec![0.0f32; height * width];
    for plane in image.chunks_exact_mut(height * width) {
        for y in 0..height {
            for x in 0..width {
                tmp[y * width + x] = k
                    .iter()
                    .enumerate()
                    .map(|(j, w)| w * plane[y * width + reflect(x as i64 + j as i64 - r, width)])
                    .sum();
            }
        }
        for y in 0..height {
            for x in 0..width {
                plane[y * width + x] = k
                    .iter()
                    .enumerate()
                    .map(|(j, w)| w * tmp[reflect(y as i64 + j as i64 - r, height) * width + x])
                    .sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_of_a_single_bright_pixel() {
        // sigma 1, radius 3: sum = 1 + 2 (e^-0.5 + e^-2 + e^-4.5) = 2.5059499;
        // w0 = 1 / sum = 0.3990503, w1 = e^-0.5 / sum = 0.2420362, w2 = e^-2 / sum = 0.0540056.
        // Centre = w0^2 = 0.1592411; one step away = w0 w1 = 0.0965846; diagonal w1^2 = 0.0585815;
        // two steps away = w0 w2 = 0.0215509. The total is preserved (1) far from the borders.
        let (h, w) = (15, 15);
        let mut image = vec![0.0f32; h * w];
        image[7 * w + 7] = 1.0;
        gaussian_blur(&mut image, h, w, 1.0);
        let at = |y: usize, x: usize| image[y * w + x];
        assert!((at(7, 7) - 0.159_241_1).abs() < 1e-6, "{}", at(7, 7));
        assert!((at(7, 8) - 0.096_584_6).abs() < 1e-6);
        assert!((at(6, 7) - 0.096_584_6).abs() < 1e-6);
        assert!((at(8, 8) - 0.058_581_5).abs() < 1e-6);
        assert!((at(7, 9) - 0.021_550_9).abs() < 1e-6);
        assert!((image.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn reflection_never_leaves_the_image() {
        for i in -40..40 {
            assert!(reflect(i, 5) < 5);
        }
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(0, 1), 0);
    }
}
