//! Noise corruptions. Every family draws per value in channel-major order (channel, row, column).

use super::Img;
use rossl_api::rng::Rng;

/// Per-severity standard deviations of `gaussian_noise`.
const GAUSSIAN: [f64; 5] = [0.04, 0.06, 0.08, 0.09, 0.10];
/// Per-severity photon counts of `shot_noise`.
const SHOT: [f64; 5] = [500.0, 250.0, 100.0, 75.0, 50.0];
/// Per-severity amounts of `impulse_noise`.
const IMPULSE: [f64; 5] = [0.01, 0.02, 0.03, 0.05, 0.07];
/// Per-severity standard deviations of `speckle_noise`.
const SPECKLE: [f64; 5] = [0.06, 0.10, 0.12, 0.16, 0.20];

fn per_value(img: &Img, mut f: impl FnMut(f64) -> f64) -> Img {
    let mut out = img.clone();
    out.data.iter_mut().for_each(|v| *v = f(*v));
    out
}

/// `x + c N(0, 1)`: one [`Rng::normal`] per value.
pub(crate) fn gaussian(img: &Img, s: usize, rng: &mut Rng) -> Img {
    per_value(img, |x| x + GAUSSIAN[s] * rng.normal())
}

/// `Poisson(c x) / c`: one [`Rng::uniform`] per value, inverted through the Poisson CDF.
pub(crate) fn shot(img: &Img, s: usize, rng: &mut Rng) -> Img {
    let c = SHOT[s];
    per_value(img, |x| poisson(c * x, rng) / c)
}

/// A Poisson draw by inversion of the CDF summed from 0 (one uniform).
pub(crate) fn poisson(lambda: f64, rng: &mut Rng) -> f64 {
    let u = rng.uniform();
    if lambda <= 0.0 {
        return 0.0;
    }
    let mut p = (-lambda).exp();
    let mut cdf = p;
    let mut k = 0.0;
    let cap = 10.0 * lambda + 1000.0;
    while u > cdf && k < cap {
        k += 1.0;
        p *= lambda / k;
        cdf += p;
    }
    k
}

/// scikit-image's salt and pepper (`random_noise(mode='s&p')`): two uniforms per value, `u1`
/// then `u2`; the value becomes 1 if `u1 < c` and `u2 < 0.5`, 0 if `u1 < c` and `u2 >= 0.5`.
pub(crate) fn impulse(img: &Img, s: usize, rng: &mut Rng) -> Img {
    per_value(img, |x| {
        let flipped = rng.uniform() < IMPULSE[s];
        let salted = rng.uniform() < 0.5;
        match (flipped, salted) {
            (true, true) => 1.0,
            (true, false) => 0.0,
            _ => x,
        }
    })
}

/// `x + x c N(0, 1)`: one [`Rng::normal`] per value.
pub(crate) fn speckle(img: &Img, s: usize, rng: &mut Rng) -> Img {
    per_value(img, |x| x + x * SPECKLE[s] * rng.normal())
}
