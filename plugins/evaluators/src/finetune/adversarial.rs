//! The fine-tuning's training attacks: PGD on cross-entropy (uniform random start) and TRADES'
//! KL ascent (start x + 0.001 N(0, 1)), both L-infinity sign steps with batch norm in evaluation
//! mode, projected to the eps-ball and to [0, 1] after every step.

use super::Model;
use candle_core::{Tensor, Var, D};
use rossl_api::components::Mode;
use rossl_api::rng::Rng;
use rossl_api::{Error, Result};
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

/// Sign-gradient ascent of `objective` from `start`, in the eps-ball around `x` and in [0, 1].
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
        let input = Var::from_tensor(&current)?;
        let grads = objective(input.as_tensor())?.backward()?;
        let gradient = grads.get(input.as_tensor()).ok_or_else(|| {
            Error::msg("the fine-tuning attack's objective has no gradient to its input")
        })?;
        let stepped = (&current + (gradient.sign()? * settings.step)?)?;
        current = stepped.maximum(&low)?.minimum(&high)?.detach();
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
