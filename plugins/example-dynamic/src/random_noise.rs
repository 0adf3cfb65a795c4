//! `random-noise`: the weakest sensible attack, a baseline every real attack must beat. It draws
//! `samples` random points of the ball (L-infinity or L2, its `norm` parameter) around each input
//! and keeps, per example, one the objective reports misclassified, else the one with the highest
//! objective. It reads scores only, never a gradient: a classifier that random noise breaks
//! is not robust, whatever a gradient attack says.

use candle_core::{DType, Tensor};
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::norm::Norm;
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `random-noise`.
    pub struct RandomNoiseParams {
        /// Radius of the ball (per example).
        pub eps: f64 = 8.0 / 255.0,
        /// The ball's norm: `linf` or `l2`.
        #[serde(skip_serializing_if = "Norm::is_linf")]
        pub norm: Norm = Norm::Linf,
        /// Random points tried per example.
        pub samples: usize = 8,
    }
}

impl Params for RandomNoiseParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        rossl_api::params::radius("eps", self.eps)?;
        rossl_api::params::at_least_one("samples", self.samples)
    }
}

/// The attack.
pub struct RandomNoise {
    params: RandomNoiseParams,
}

/// Per example: whether the candidate replaces the best so far (it succeeds where the best does
/// not, or both agree on success and its loss is higher).
fn better(loss: &[f32], success: &[bool], best_loss: &[f32], best_success: &[bool]) -> Vec<bool> {
    (0..loss.len())
        .map(|i| match (success[i], best_success[i]) {
            (true, false) => true,
            (false, true) => false,
            _ => loss[i] > best_loss[i],
        })
        .collect()
}

/// Rows of `a` where `mask` is set, else rows of `b`.
fn select(mask: &[bool], a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let m: Vec<u8> = mask.iter().map(|&v| u8::from(v)).collect();
    let mut shape = vec![m.len()];
    shape.extend(std::iter::repeat_n(1, a.rank() - 1));
    let m = Tensor::from_vec(m, shape.as_slice(), a.device())?.broadcast_as(a.shape())?;
    Ok(m.where_cond(a, b)?)
}

/// The objective's per-example loss and success at `x`.
fn score(objective: &mut dyn Objective, x: &Tensor) -> Result<(Vec<f32>, Vec<bool>)> {
    let (loss, success) = objective.score(x)?;
    let loss = loss.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let rows = x.dim(0)?;
    let loss = if loss.len() == rows {
        loss
    } else {
        // one value for the whole batch: every example shares it
        vec![loss.first().copied().unwrap_or(0.0); rows]
    };
    let success = success
        .filter(|s| s.len() == rows)
        .unwrap_or_else(|| vec![false; rows]);
    Ok((loss, success))
}

impl Attack for RandomNoise {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.params.eps,
            steps: self.params.samples,
            step_size: None,
            restarts: 1,
            random_start: true,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let (x, p) = (x.detach(), &self.params);
        let mut best = x.clone();
        let (mut best_loss, mut best_success) = score(objective, &best)?;
        for _ in 0..p.samples {
            let candidate = p.norm.start(&x, p.eps, true, rng)?;
            let (loss, success) = score(objective, &candidate)?;
            let keep = better(&loss, &success, &best_loss, &best_success);
            best = select(&keep, &candidate, &best)?;
            for (i, k) in keep.iter().enumerate() {
                if *k {
                    best_loss[i] = loss[i];
                    best_success[i] = success[i];
                }
            }
        }
        Ok(best)
    }
}

rossl_api::register! {
    kind: attack,
    name: "random-noise",
    summary: "random points of the L-infinity or L2 ball, the best kept per example: a baseline every attack must beat (example plugin)",
    params: RandomNoiseParams,
    build: |p, _ctx| Ok(Box::new(RandomNoise { params: p })),
}
