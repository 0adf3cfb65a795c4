//! Seeded, reproducible randomness owned by the run.
//!
//! candle's CPU device cannot be seeded, so every random choice in rossl (weight initialisation,
//! shuffling, crops and augmentations, attack starts) draws from [`Rng`]. Streams are derived
//! from the run's seed and a path of counters ([`Rng::derive`]), so that the randomness of, say,
//! view 3 of image 17 in epoch 2 does not depend on which thread produced it or in which order.

/// A small, fast generator (xoshiro256++) with a SplitMix64 seeding scheme.
#[derive(Clone, Debug)]
pub struct Rng {
    state: [u64; 4],
    /// When set ([`Rng::for_batch_rows`]): the rows of a whole batch that a tensor's rows are.
    batch_rows: Option<std::sync::Arc<BatchRows>>,
}

/// Which rows of a whole batch the rows of a tensor are (see [`Rng::for_batch_rows`]).
#[derive(Debug)]
pub struct BatchRows {
    /// The rows of the whole batch, one per row of the tensor.
    pub rows: Vec<usize>,
    /// The rows of the whole batch.
    pub batch_len: usize,
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = seed;
        let state = [
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
        ];
        Rng {
            state,
            batch_rows: None,
        }
    }

    /// This generator, marked as drawing for the rows `rows` of a batch of `batch_len` rows:
    /// per-row random draws ([`crate::norm::Norm::random_delta`]) are then those the whole batch
    /// would get, read at `rows`, so that an attack on some rows of a batch starts each of them
    /// where an attack on the whole batch would have (the draws of the other rows are made and
    /// discarded). An attack that draws all along its run (Square) reads [`Rng::batch_rows`] to
    /// give each row a stream of its own keyed to its batch row. Draws for a tensor of another
    /// row count ignore the mark.
    pub fn for_batch_rows(mut self, rows: Vec<usize>, batch_len: usize) -> Self {
        self.batch_rows = Some(std::sync::Arc::new(BatchRows { rows, batch_len }));
        self
    }

    /// The batch rows this generator draws for, if it was marked ([`Rng::for_batch_rows`]).
    pub fn batch_rows(&self) -> Option<std::sync::Arc<BatchRows>> {
        self.batch_rows.clone()
    }

    /// An independent stream for `seed` and a path of counters, e.g.
    /// `Rng::derive(seed, &[STREAM_VIEWS, epoch, image, view])`.
    pub fn derive(seed: u64, path: &[u64]) -> Self {
        let mut h = seed ^ 0x5851_F42D_4C95_7F2D;
        let mut acc = splitmix64(&mut h);
        for &p in path {
            let mut x = acc ^ p.wrapping_mul(0x2545_F491_4F6C_DD1D);
            acc = splitmix64(&mut x);
        }
        Rng::new(acc)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high).
    pub fn uniform_range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// `true` with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }
}

/// Names of the independent random streams of a run, used as the first counter of
/// [`Rng::derive`] so that streams never overlap.
pub mod stream {
    /// Weight initialisation.
    pub const INIT: u64 = 1;
    /// Per-epoch shuffling of the training set.
    pub const SHUFFLE: u64 = 2;
    /// Crops and augmentations of the views.
    pub const VIEWS: u64 = 3;
    /// Random starts of attacks.
    pub const ATTACK: u64 = 4;
    /// Subsets of datasets.
    pub const SUBSET: u64 = 5;
    /// Evaluation (probe initialisation, probe shuffling, evaluation views).
    pub const EVAL: u64 = 6;
    /// Synthetic data.
    pub const SYNTHETIC: u64 = 7;
    /// The online monitor's slice of labelled images and its probe.
    pub const MONITOR: u64 = 8;
    /// Initialisation of the weights a loss owns (a classifier or predictor head).
    pub const LOSS: u64 = 9;
    /// Common corruptions of test images (per family, severity and image, the same for every
    /// evaluator).
    pub const CORRUPTIONS: u64 = 10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_derived_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::derive(7, &[1, 2, 3]);
        let mut y = Rng::derive(7, &[1, 2, 4]);
        let mut z = Rng::derive(7, &[1, 2, 3]);
        let (vx, vy, vz) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert_ne!(vx, vy);
        assert_eq!(vx, vz);
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let u: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "uniform mean {mean}");
        assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
        let g: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let gm = g.iter().sum::<f64>() / n as f64;
        let gv = g.iter().map(|v| (v - gm).powi(2)).sum::<f64>() / n as f64;
        assert!(
            gm.abs() < 0.01 && (gv - 1.0).abs() < 0.02,
            "normal {gm} {gv}"
        );
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Rng::new(3).permutation(1000);
        p.sort_unstable();
        assert!(p.iter().enumerate().all(|(i, &v)| i == v));
    }
}
