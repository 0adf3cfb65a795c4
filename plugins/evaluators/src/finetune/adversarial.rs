//! The fine-tuning's training attacks: PGD on cross-entropy (uniform random start) and TRADES'
//! KL ascent (start x + 0.001 N(0, 1)), both L-infinity sign steps with batch norm in evaluation
//! mode, projected to the eps-ball and to [0, 1] after every step.

use super::Model;
use candle_core::{Tensor, D};
use rossl_api::adversarial::input_gradient;
use rossl_api::components::Mode;
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::{cross_entropy, log_softmax};

/// Radius, step and steps of an attack.
pub struct AscentSettings {
    /// L-infinity radius.
    pub eps: f64,
    /// Step size.
    pub step: f64,
    /// Steps.
    pub steps: usize,
}

/// TRADES' KL term: mean over rows of KL(softmax(natural) || softmax(perturbed)), as
/// `nn.KLDivLoss(size_average=False)(log_softmax(perturbed), softmax(natural)) / batch`.
pub fn trades_kl(natural: &Tensor, perturbed: &Tensor) -> Result<Tensor> {
    let log_p = log_softmax(natural)?;
    let log_q = log_softmax(perturbed)?;
    Ok((log_p.exp()? * (&log_p - &log_q)?)?
        .sum(D::Minus1)?
        .mean_all()?)
}

/// PGD examples on the summed cross-entropy against labels `y`, from a uniform start in the
/// ball.
pub fn pgd_examples(
    model: &Model<'_>,
    x: &Tensor,
    y: &Tensor,
    settings: &AscentSettings,
    rng: &mut Rng,
) -> Result<Tensor> {
    let start = noise(x, rng, |rng| rng.uniform_range(-settings.eps, settings.eps))?;
    ascend(x, &(x + start)?, settings, |input| {
        Ok(cross_entropy(&model.logits(input, Mode::Eval)?, y)?.sum_all()?)
    })
}

/// TRADES' inner maximisation: KL(softmax(clean) || softmax(f(x'))) summed over rows, from
/// x + 0.001 N(0, 1); `clean` are the logits of `x`, detached.
pub fn kl_ascent(
    model: &Model<'_>,
    x: &Tensor,
    clean: &Tensor,
    settings: &AscentSettings,
    rng: &mut Rng,
) -> Result<Tensor> {
    let start = noise(x, rng, |rng| 0.001 * rng.normal())?;
    let log_p = log_softmax(clean)?;
    let p = log_p.exp()?;
    ascend(x, &(x + start)?, settings, |input| {
        let log_q = log_softmax(&model.logits(input, Mode::Eval)?)?;
        Ok((&p * (&log_p - log_q)?)?.sum_all()?)
    })
}

/// A tensor shaped as `x` with entries drawn by `draw`.
fn noise(x: &Tensor, rng: &mut Rng, mut draw: impl FnMut(&mut Rng) -> f64) -> Result<Tensor> {
    let values: Vec<f32> = (0..x.elem_count()).map(|_| draw(rng) as f32).collect();
    Ok(Tensor::from_vec(values, x.dims(), x.device())?)
}

/// Sign-gradient ascent of `objective` from `start`, in the eps-ball around `x` and in [0, 1]
/// (the step clamped between `clamp(x - eps, 0, 1)` and `clamp(x + eps, 0, 1)`: the set
/// `rossl_api::adversarial::project` projects onto, computed without its rounding of
/// `x + (candidate - x)`, as the published CPU-scale study measured it).
fn ascend(
    x: &Tensor,
    start: &Tensor,
    settings: &AscentSettings,
    mut objective: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let low = (x - settings.eps)?.clamp(0f32, 1f32)?;
    let high = (x + settings.eps)?.clamp(0f32, 1f32)?;
    let mut current = start.clamp(0f32, 1f32)?.detach();
    for _ in 0..settings.steps {
        let (_, gradient) = input_gradient(&mut objective, &current)?;
        let stepped = (&current + (gradient.sign()? * settings.step)?)?;
        current = stepped.maximum(&low)?.minimum(&high)?.detach();
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::LinearHead;
    use candle_core::Device;
    use rossl_api::components::{Buffer, Embedding, Encoder, Parameter};

    /// A fixed "encoder": features tanh(W x) of the flattened image (the nonlinearity makes
    /// the attacks' objectives non-trivial).
    struct Fixed(Tensor);
    impl Encoder for Fixed {
        fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding> {
            let feature = self.features(images, mode)?;
            Ok(Embedding {
                projection: feature.clone(),
                feature,
            })
        }
        fn features(&self, images: &Tensor, _mode: Mode) -> Result<Tensor> {
            Ok(images.flatten_from(1)?.matmul(&self.0.t()?)?.tanh()?)
        }
        fn feature_dim(&self) -> usize {
            self.0.dim(0).unwrap_or(0)
        }
        fn projection_dim(&self) -> usize {
            self.feature_dim()
        }
        fn parameters(&self) -> Vec<Parameter> {
            Vec::new()
        }
        fn buffers(&self) -> Vec<Buffer> {
            Vec::new()
        }
    }

    #[test]
    fn training_attacks_stay_in_the_ball_and_raise_their_objectives() {
        let mut rng = Rng::new(3);
        let device = Device::Cpu;
        let draw = |rng: &mut Rng, n: usize, scale: f64| -> Vec<f32> {
            (0..n).map(|_| (scale * rng.normal()) as f32).collect()
        };
        let encoder =
            Fixed(Tensor::from_vec(draw(&mut rng, 8 * 16, 1.0), (8, 16), &device).unwrap());
        let head = LinearHead::new(8, 3, &mut rng, &device).unwrap();
        let model = Model {
            encoder: &encoder,
            head: &head,
        };
        let pixels: Vec<f32> = (0..6 * 16).map(|_| rng.uniform() as f32).collect();
        let x = Tensor::from_vec(pixels, (6, 1, 4, 4), &device).unwrap();
        let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &device).unwrap();
        let settings = AscentSettings {
            eps: 0.05,
            step: 0.02,
            steps: 5,
        };
        let in_ball = |adversarial: &Tensor| {
            let excursion = (adversarial - &x)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let low = adversarial.min_all().unwrap().to_scalar::<f32>().unwrap();
            let high = adversarial.max_all().unwrap().to_scalar::<f32>().unwrap();
            excursion <= 0.05 + 1e-6 && low >= 0.0 && high <= 1.0
        };
        let ce = |input: &Tensor| {
            cross_entropy(&model.logits(input, Mode::Eval).unwrap(), &y)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let adversarial = pgd_examples(&model, &x, &y, &settings, &mut rng).unwrap();
        assert!(in_ball(&adversarial));
        assert!(
            ce(&adversarial) > ce(&x),
            "{} vs {}",
            ce(&adversarial),
            ce(&x)
        );
        let clean = model.logits(&x, Mode::Eval).unwrap().detach();
        let adversarial = kl_ascent(&model, &x, &clean, &settings, &mut rng).unwrap();
        assert!(in_ball(&adversarial));
        let kl = trades_kl(&clean, &model.logits(&adversarial, Mode::Eval).unwrap())
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // from x + 0.001 N(0, 1) the KL is about 1e-6: the ascent must find far more
        assert!(kl > 1e-3, "KL {kl}");
    }

    #[test]
    fn trades_kl_matches_the_expression() {
        // torch: F.kl_div(F.log_softmax(q, 1), F.softmax(p, 1), reduction="sum") / 2
        //   with p = [[1, 2, 0], [0, 0, 0]], q = [[0, 1, 3], [1, 0, 0]]: 0.7608084082603455
        let p = Tensor::new(&[[1f32, 2., 0.], [0., 0., 0.]], &Device::Cpu).unwrap();
        let q = Tensor::new(&[[0f32, 1., 3.], [1., 0., 0.]], &Device::Cpu).unwrap();
        let got = trades_kl(&p, &q).unwrap().to_scalar::<f32>().unwrap();
        let want = 0.760_808_4;
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
    }
}
