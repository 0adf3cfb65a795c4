//! `synthetic`: procedurally generated, labelled images of any size and channel count.
//!
//! Each class has a prototype made of a few coloured Gaussian blobs at class-specific places; an
//! image is its class prototype, shifted by a few pixels, scaled in brightness, plus Gaussian
//! noise, clamped to [0, 1]. Classes are well separated at low noise (probes reach near 100%) and
//! the images have spatial structure for crops to work on.

use rossl_api::components::{Dataset, DatasetInfo, ImageSet, Split};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::{stream, Rng};
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `synthetic`.
    pub struct SyntheticParams {
        /// Number of classes.
        pub classes: usize = 10,
        /// Image channels.
        pub channels: usize = 3,
        /// Image height.
        pub height: usize = 32,
        /// Image width.
        pub width: usize = 32,
        /// Training images.
        pub train_size: usize = 1000,
        /// Test images.
        pub test_size: usize = 200,
        /// Standard deviation of the pixel noise.
        pub noise: f64 = 0.1,
        /// Largest shift of the prototype, in pixels.
        pub max_shift: usize = 2,
        /// Seed of the data (independent of the run's seed, so runs with different seeds see the same
        /// images).
        pub seed: u64 = 0,
    }
}

impl Params for SyntheticParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.classes < 2 {
            return Err(ParamError::new("classes", "needs at least 2 classes"));
        }
        if self.channels == 0 {
            return Err(ParamError::new(
                "channels",
                "images need at least one channel",
            ));
        }
        for (key, size) in [("height", self.height), ("width", self.width)] {
            if size < 4 {
                return Err(ParamError::new(key, "images need at least 4x4 pixels"));
            }
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(ParamError::new("noise", "must be a finite number >= 0"));
        }
        Ok(())
    }
}

struct Blob {
    cy: f64,
    cx: f64,
    sigma: f64,
    colour: Vec<f64>,
}

/// The synthetic dataset.
#[derive(Clone, Debug)]
pub struct Synthetic {
    params: SyntheticParams,
}

impl Synthetic {
    /// A synthetic dataset with these parameters.
    pub fn new(params: SyntheticParams) -> Self {
        Synthetic { params }
    }

    fn prototypes(&self) -> Vec<Vec<f64>> {
        let p = &self.params;
        (0..p.classes)
            .map(|class| {
                let mut rng = Rng::derive(p.seed, &[stream::SYNTHETIC, 0, class as u64]);
                let blobs: Vec<Blob> = (0..3)
                    .map(|_| Blob {
                        cy: rng.uniform_range(0.15, 0.85) * p.height as f64,
                        cx: rng.uniform_range(0.15, 0.85) * p.width as f64,
                        sigma: rng.uniform_range(0.08, 0.2) * p.height.min(p.width) as f64,
                        colour: (0..p.channels)
                            .map(|_| rng.uniform_range(0.3, 1.0))
                            .collect(),
                    })
                    .collect();
                let mut image = vec![0.0; p.channels * p.height * p.width];
                for c in 0..p.channels {
                    for y in 0..p.height {
                        for x in 0..p.width {
                            let v: f64 = blobs
                                .iter()
                                .map(|b| {
                                    let d2 = (y as f64 - b.cy).powi(2) + (x as f64 - b.cx).powi(2);
                                    b.colour[c] * (-d2 / (2.0 * b.sigma * b.sigma)).exp()
                                })
                                .sum();
                            image[(c * p.height + y) * p.width + x] = v.min(1.0);
                        }
                    }
                }
                image
            })
            .collect()
    }
}

impl Dataset for Synthetic {
    fn info(&self) -> DatasetInfo {
        DatasetInfo {
            channels: self.params.channels,
            height: self.params.height,
            width: self.params.width,
            classes: self.params.classes,
        }
    }

    fn load(&self, split: Split) -> Result<ImageSet> {
        let p = &self.params;
        let (count, split_id) = match split {
            Split::Train => (p.train_size, 1),
            Split::Test => (p.test_size, 2),
        };
        let prototypes = self.prototypes();
        let (h, w) = (p.height as i64, p.width as i64);
        let per_image = p.channels * p.height * p.width;
        let mut pixels = Vec::with_capacity(count * per_image);
        let mut labels = Vec::with_capacity(count);
        let shift = p.max_shift as i64;
        for i in 0..count {
            let class = i % p.classes;
            let mut rng = Rng::derive(p.seed, &[stream::SYNTHETIC, split_id, i as u64]);
            let dy = rng.below(2 * shift as u64 + 1) as i64 - shift;
            let dx = rng.below(2 * shift as u64 + 1) as i64 - shift;
            let gain = rng.uniform_range(0.8, 1.2);
            let proto = &prototypes[class];
            for c in 0..p.channels {
                for y in 0..h {
                    for x in 0..w {
                        let (sy, sx) = (y - dy, x - dx);
                        let base = if (0..h).contains(&sy) && (0..w).contains(&sx) {
                            proto[(c * p.height + sy as usize) * p.width + sx as usize]
                        } else {
                            0.0
                        };
                        let v = base * gain + p.noise * rng.normal();
                        pixels.push(v.clamp(0.0, 1.0) as f32);
                    }
                }
            }
            labels.push(class as u32);
        }
        ImageSet::new(pixels, labels, (p.channels, p.height, p.width), p.classes)
    }
}

rossl_api::register! {
    kind: dataset,
    name: "synthetic",
    summary: "Procedural labelled images (class blob prototypes + shift + noise) of any size and channel count",
    params: SyntheticParams,
    build: |p, _ctx| Ok(Box::new(Synthetic::new(p))),
}
