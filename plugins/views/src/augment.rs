//! The augmentation steps of a view strategy, each applied with its probability, in list order.

use crate::{blur, colour};
use rossl_api::registry::ParamError;
use rossl_api::rng::Rng;
use serde::{Deserialize, Serialize};

/// One augmentation step. In configs: `{ op = "color-jitter", p = 0.8, brightness = 0.4, ... }`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Augmentation {
    /// Mirror left-right with probability `p` (torchvision `RandomHorizontalFlip`).
    HorizontalFlip {
        /// Probability.
        p: f64,
    },
    /// With probability `p`, jitter brightness, contrast, saturation and hue in a random order
    /// (torchvision `RandomApply([ColorJitter(b, c, s, h)], p)`): factors uniform in
    /// [max(0, 1 - x), 1 + x], hue shift uniform in [-hue, hue].
    ColorJitter {
        /// Probability.
        p: f64,
        /// Brightness strength.
        brightness: f64,
        /// Contrast strength.
        contrast: f64,
        /// Saturation strength.
        saturation: f64,
        /// Hue strength, at most 0.5.
        hue: f64,
    },
    /// Convert to grey with probability `p` (torchvision `RandomGrayscale`).
    Grayscale {
        /// Probability.
        p: f64,
    },
    /// Gaussian blur with probability `p`, sigma uniform in `sigma`.
    GaussianBlur {
        /// Probability.
        p: f64,
        /// Range of sigma, in pixels.
        sigma: [f64; 2],
    },
    /// Invert values at or above `threshold` with probability `p` (PIL `solarize`, 128/255).
    Solarize {
        /// Probability.
        p: f64,
        /// Threshold in [0, 1].
        threshold: f64,
    },
}

impl Augmentation {
    fn probability(&self) -> f64 {
        match self {
            Augmentation::HorizontalFlip { p }
            | Augmentation::ColorJitter { p, .. }
            | Augmentation::Grayscale { p }
            | Augmentation::GaussianBlur { p, .. }
            | Augmentation::Solarize { p, .. } => *p,
        }
    }

    /// Checks probabilities and strengths; `key` names the step in errors.
    pub fn validate(&self, key: &str) -> Result<(), ParamError> {
        let p = self.probability();
        if !(0.0..=1.0).contains(&p) {
            return Err(ParamError::new(
                key,
                format!("probability {p} is not in [0, 1]"),
            ));
        }
        match self {
            Augmentation::ColorJitter {
                brightness,
                contrast,
                saturation,
                hue,
                ..
            } => {
                if [brightness, contrast, saturation]
                    .iter()
                    .any(|v| v.is_nan() || **v < 0.0)
                {
                    return Err(ParamError::new(key, "jitter strengths must be >= 0"));
                }
                if !(0.0..=0.5).contains(hue) {
                    return Err(ParamError::new(
                        key,
                        format!("hue {hue} is not in [0, 0.5]"),
                    ));
                }
            }
            Augmentation::GaussianBlur { sigma, .. }
                if !(sigma[0] > 0.0 && sigma[0] <= sigma[1] && sigma[1] <= 64.0) =>
            {
                return Err(ParamError::new(
                    key,
                    format!("sigma range {sigma:?} must satisfy 0 < low <= high <= 64"),
                ));
            }
            Augmentation::Solarize { threshold, .. } if !(0.0..=1.0).contains(threshold) => {
                return Err(ParamError::new(
                    key,
                    format!("threshold {threshold} is not in [0, 1]"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The step at augmentation `strength` in [0, 1] (DynACL's annealing): colour jitter's
    /// probability and its four strengths, and the probabilities of grayscale, blur and
    /// solarize, are multiplied by `strength`; a horizontal flip is never weakened. The random
    /// draws are the same at every strength (a step draws whether it fires, then its factors),
    /// and at strength 1 the step is unchanged.
    pub fn at_strength(&self, strength: f64) -> Augmentation {
        let s = strength;
        match *self {
            Augmentation::HorizontalFlip { p } => Augmentation::HorizontalFlip { p },
            Augmentation::ColorJitter {
                p,
                brightness,
                contrast,
                saturation,
                hue,
            } => Augmentation::ColorJitter {
                p: p * s,
                brightness: brightness * s,
                contrast: contrast * s,
                saturation: saturation * s,
                hue: hue * s,
            },
            Augmentation::Grayscale { p } => Augmentation::Grayscale { p: p * s },
            Augmentation::GaussianBlur { p, sigma } => {
                Augmentation::GaussianBlur { p: p * s, sigma }
            }
            Augmentation::Solarize { p, threshold } => Augmentation::Solarize {
                p: p * s,
                threshold,
            },
        }
    }

    /// Applies the step to a (channels, height, width) image, drawing from `rng`.
    pub fn apply(
        &self,
        image: &mut [f32],
        (channels, height, width): (usize, usize, usize),
        rng: &mut Rng,
    ) {
        if !rng.bernoulli(self.probability()) {
            return;
        }
        match *self {
            Augmentation::HorizontalFlip { .. } => colour::horizontal_flip(image, width),
            Augmentation::ColorJitter {
                brightness,
                contrast,
                saturation,
                hue,
                ..
            } => {
                let mut order = [0usize, 1, 2, 3];
                rng.shuffle(&mut order);
                let factor =
                    |rng: &mut Rng, s: f64| rng.uniform_range((1.0 - s).max(0.0), 1.0 + s) as f32;
                let b = factor(rng, brightness);
                let c = factor(rng, contrast);
                let s = factor(rng, saturation);
                let h = rng.uniform_range(-hue, hue) as f32;
                for step in order {
                    match step {
                        0 if brightness > 0.0 => colour::brightness(image, b),
                        1 if contrast > 0.0 => colour::contrast(image, channels, c),
                        2 if saturation > 0.0 => colour::saturation(image, channels, s),
                        3 if hue > 0.0 => colour::hue(image, channels, h),
                        _ => {}
                    }
                }
            }
            Augmentation::Grayscale { .. } => colour::grayscale(image, channels),
            Augmentation::GaussianBlur { sigma, .. } => {
                let s = rng.uniform_range(sigma[0], sigma[1]);
                blur::gaussian_blur(image, height, width, s);
            }
            Augmentation::Solarize { threshold, .. } => colour::solarize(image, threshold as f32),
        }
    }
}

/// The EMP-SSL pipeline after the crop (paper-spec section 3): flip 0.5, colour jitter
/// (0.4, 0.4, 0.4, 0.2) with p 0.8, grayscale 0.2, blur sigma 0.1-2 with p 0.1, solarize 0.1.
pub fn emp_ssl() -> Vec<Augmentation> {
    vec![
        Augmentation::HorizontalFlip { p: 0.5 },
        Augmentation::ColorJitter {
            p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.2,
        },
        Augmentation::Grayscale { p: 0.2 },
        Augmentation::GaussianBlur {
            p: 0.1,
            sigma: [0.1, 2.0],
        },
        Augmentation::Solarize {
            p: 0.1,
            threshold: 128.0 / 255.0,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizontal_flip_mirrors_every_row_of_every_channel() {
        // 2 channels of 2 x 3: each row reversed, rows and channels in place
        let mut image: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let flip = Augmentation::HorizontalFlip { p: 1.0 };
        flip.apply(&mut image, (2, 2, 3), &mut Rng::new(0));
        assert_eq!(
            image,
            vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 8.0, 7.0, 6.0, 11.0, 10.0, 9.0]
        );
    }

    #[test]
    fn a_step_fires_with_its_probability() {
        // 20,000 Bernoulli(0.3) draws: standard deviation of the rate is 0.0032, so 0.3 +- 0.02
        // is more than 6 of them
        let flip = Augmentation::HorizontalFlip { p: 0.3 };
        let mut rng = Rng::new(7);
        let draws = 20_000;
        let mut fired = 0;
        for _ in 0..draws {
            let mut image = vec![0.0f32, 1.0];
            flip.apply(&mut image, (1, 1, 2), &mut rng);
            if image[0] == 1.0 {
                fired += 1;
            }
        }
        let rate = fired as f64 / draws as f64;
        assert!((rate - 0.3).abs() < 0.02, "fired in {rate} of the draws");
        // p = 0 never fires, p = 1 always does
        for (p, expected) in [(0.0, 0.0f32), (1.0, 1.0)] {
            let mut image = vec![0.0f32, 1.0];
            Augmentation::HorizontalFlip { p }.apply(&mut image, (1, 1, 2), &mut rng);
            assert_eq!(image[0], expected);
        }
    }
}
