//! `fab`: the targeted Fast Adaptive Boundary attack, FAB-T (Croce and Hein 2020, "Minimally
//! distorted adversarial examples with a fast adaptive boundary attack"), in the L-infinity or
//! the L2 norm, as AutoAttack "standard" runs it (one run per target class, no random start).
//!
//! The objective is the margin f(x) = z_t(x) - z_y(x) of the target class t over the true class
//! y (f > 0: the target wins). Each iteration linearises the boundary f = 0 at the current point
//! x1 into the hyperplane {u : g.u = g.x1 - f} (g the gradient of f), projects both x1 and the
//! clean input x0 onto it within the box [0, 1] with the least displacement in the attack's norm
//! (d1, d2), and moves to a convex combination of the two overshot projections,
//! `clamp((1 - a)(x1 + eta d1) + a (x0 + eta d2), 0, 1)` with `a = min(|d1| / (|d1| + |d2|),
//! alpha_max)`, which leans towards the clean input. A successful point is kept when it is the
//! closest to x0 so far, and the search then steps back towards x0 by the factor beta. The
//! result is, per example, the closest successful point when it lies within eps of x0 (projected
//! onto the ball to absorb rounding), else the clean input.
//!
//! The projections run on the host in f64, one example at a time.

use candle_core::{DType, Device, Tensor};
use rossl_api::adversarial::input_gradient;
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::norm::Norm;
use rossl_api::params::{at_least_one, finite_positive, radius, ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::{Error, Result};

mod projection;
use projection::{box_hyperplane_projection, dot, size};

rossl_api::params! {
    /// Parameters of `fab` (defaults: AutoAttack's FAB-T).
    pub struct FabParams {
        /// Radius of the ball: a point farther than this from the input does not count.
        pub eps: f64 = 8.0 / 255.0,
        /// Iterations.
        pub steps: usize = 100,
        /// The norm of the ball and of the projections (`linf` or `l2`).
        #[serde(skip_serializing_if = "Norm::is_linf")]
        pub norm: Norm = Norm::Linf,
        /// The largest weight of the clean input's projection in each step.
        pub alpha_max: f64 = 0.1,
        /// Overshoot of the projections (>= 1).
        pub eta: f64 = 1.05,
        /// Factor of the step back towards the clean input after a success, in (0, 1].
        pub beta: f64 = 0.9,
    }
}

impl Params for FabParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        radius("eps", self.eps)?;
        at_least_one("steps", self.steps)?;
        if !(0.0..=1.0).contains(&self.alpha_max) {
            return Err(ParamError::new("alpha_max", "must be in [0, 1]"));
        }
        finite_positive("eta", self.eta)?;
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return Err(ParamError::new("beta", "must be in (0, 1]"));
        }
        Ok(())
    }
}

/// The targeted Fast Adaptive Boundary attack.
#[derive(Clone, Debug)]
pub struct Fab {
    params: FabParams,
}

impl Fab {
    /// The attack with these settings.
    pub fn new(params: FabParams) -> Self {
        Fab { params }
    }
}

impl Attack for Fab {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.params.eps,
            steps: self.params.steps,
            step_size: None,
            restarts: 1,
            random_start: false,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, _rng: &mut Rng) -> Result<Tensor> {
        let x = x.detach();
        if self.params.eps == 0.0 {
            return Ok(x);
        }
        let mut search = Search::begin(&x)?;
        for _ in 0..self.params.steps {
            search.step(&self.params, objective)?;
        }
        search.result(&self.params)
    }
}

/// Slack on the radius for the closest successful point (rounding of the iterates).
const EPS_TOLERANCE: f64 = 1e-6;

/// Floor of the projections' sizes in the weight of the clean input's projection.
const MIN_SIZE: f64 = 1e-8;

/// One FAB run on the host: the clean rows, the iterate and the closest successful points.
struct Search {
    /// The clean input (its shape, device and dtype are those of every tensor built here).
    x: Tensor,
    /// The clean input, one flattened row per example.
    x0: Vec<Vec<f64>>,
    /// The current iterate.
    x1: Vec<Vec<f64>>,
    /// Per example, the closest successful point so far and its distance to x0 (infinite: none).
    best: Vec<Vec<f64>>,
    best_distance: Vec<f64>,
}

impl Search {
    /// Starts at the clean input.
    fn begin(x: &Tensor) -> Result<Self> {
        if x.rank() == 0 {
            return Err(Error::msg("fab needs a batch of inputs (rank >= 1)"));
        }
        let x0 = rows_of(x)?;
        Ok(Search {
            x: x.clone(),
            x1: x0.clone(),
            best: x0.clone(),
            best_distance: vec![f64::INFINITY; x0.len()],
            x0,
        })
    }

    /// One iteration: the projected step from the current iterate, then the success test, the
    /// update of the closest successful points and the step back.
    fn step(&mut self, p: &FabParams, objective: &mut dyn Objective) -> Result<()> {
        let current = to_tensor(&self.x1, &self.x)?;
        let (f, g) = input_gradient(objective, &current)?;
        let f = per_example(&f, self.x0.len())?;
        let g = rows_of(&g)?;
        for (r, (f, g)) in f.iter().zip(&g).enumerate() {
            if f.is_finite() && g.iter().all(|v| v.is_finite()) {
                self.x1[r] = boundary_step(p, &self.x0[r], &self.x1[r], *f, g);
            }
        }
        let moved = to_tensor(&self.x1, &self.x)?;
        // the rows as the objective sees them (rounded to the input's dtype)
        self.x1 = rows_of(&moved)?;
        let success = successes(objective, &moved, self.x0.len())?;
        for (r, _) in success.iter().enumerate().filter(|(_, s)| **s) {
            let (x0, x1) = (&self.x0[r], &mut self.x1[r]);
            let delta: Vec<f64> = x1.iter().zip(x0).map(|(a, b)| a - b).collect();
            let distance = size(p.norm, &delta);
            if distance < self.best_distance[r] {
                self.best_distance[r] = distance;
                self.best[r] = x1.clone();
            }
            for ((v, o), d) in x1.iter_mut().zip(x0).zip(&delta) {
                *v = o + p.beta * d;
            }
        }
        Ok(())
    }

    /// Per example, the closest successful point when it lies within eps (projected onto the
    /// ball and [0, 1]), else the clean input.
    fn result(self, p: &FabParams) -> Result<Tensor> {
        let rows: Vec<Vec<f64>> = self
            .best
            .into_iter()
            .zip(&self.best_distance)
            .zip(self.x0)
            .map(
                |((best, &d), x0)| {
                    if d <= p.eps + EPS_TOLERANCE {
                        best
                    } else {
                        x0
                    }
                },
            )
            .collect();
        p.norm.project(&self.x, &to_tensor(&rows, &self.x)?, p.eps)
    }
}

/// FAB's step for one example: from the iterate `x1` with margin `f` and gradient `g`, the convex
/// combination of the overshot projections of `x1` and of the clean `x0` onto the linearised
/// boundary, clamped to [0, 1].
fn boundary_step(p: &FabParams, x0: &[f64], x1: &[f64], f: f64, g: &[f64]) -> Vec<f64> {
    let b = dot(g, x1) - f;
    let d1 = box_hyperplane_projection(p.norm, x1, g, b);
    let d2 = box_hyperplane_projection(p.norm, x0, g, b);
    let a1 = size(p.norm, &d1).max(MIN_SIZE);
    let a2 = size(p.norm, &d2).max(MIN_SIZE);
    let alpha = (a1 / (a1 + a2)).max(0.0).min(p.alpha_max);
    x1.iter()
        .zip(&d1)
        .zip(x0.iter().zip(&d2))
        .map(|((u1, d1), (u0, d2))| {
            ((1.0 - alpha) * (u1 + p.eta * d1) + alpha * (u0 + p.eta * d2)).clamp(0.0, 1.0)
        })
        .collect()
}

/// The rows of `t` (dimension 0), flattened, in f64.
fn rows_of(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    let rows = t.dim(0)?;
    let flat = t
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .reshape((rows, ()))?
        .to_vec2::<f32>()?;
    Ok(flat
        .into_iter()
        .map(|row| row.into_iter().map(f64::from).collect())
        .collect())
}

/// A tensor of `like`'s shape, device and dtype holding `rows`.
fn to_tensor(rows: &[Vec<f64>], like: &Tensor) -> Result<Tensor> {
    let values: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    Ok(Tensor::from_vec(values, like.shape(), like.device())?.to_dtype(like.dtype())?)
}

/// The per-example values of the objective's loss (`rows` of them; a scalar counts as one).
fn per_example(loss: &Tensor, rows: usize) -> Result<Vec<f64>> {
    let values: Vec<f64> = loss.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if values.len() != rows {
        return Err(Error::msg(format!(
            "fab needs one margin per example: got {} values for {rows} examples",
            values.len()
        )));
    }
    Ok(values)
}

/// Per-example success at `x`: the objective's own test when it has one, else a positive margin
/// (the target class wins).
fn successes(objective: &mut dyn Objective, x: &Tensor, rows: usize) -> Result<Vec<bool>> {
    if let Some(success) = objective.succeeded(x)? {
        if success.len() == rows {
            return Ok(success);
        }
    }
    let margin = per_example(&objective.loss(x)?.detach(), rows)?;
    Ok(margin.iter().map(|&f| f > 0.0).collect())
}

rossl_api::register! {
    kind: attack,
    name: "fab",
    summary: "FAB-T (Croce & Hein 2020): targeted minimal-distortion attack by projections onto the linearised boundary within [0, 1], L-infinity or L2 (`norm`); AutoAttack's third attack",
    params: FabParams,
    build: |p, _ctx| Ok(Box::new(Fab::new(p))),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The margin objective `f(x) = v_r . x_r + k_r` of example r, as a closure on tensors.
    fn linear_margin(v: &[Vec<f64>], k: &[f64]) -> impl FnMut(&Tensor) -> Result<Tensor> {
        let rows = v.len();
        let flat: Vec<f32> = v.iter().flatten().map(|&a| a as f32).collect();
        let v = Tensor::from_vec(flat, (rows, v[0].len()), &Device::Cpu).unwrap();
        let k: Vec<f32> = k.iter().map(|&a| a as f32).collect();
        let k = Tensor::from_vec(k, rows, &Device::Cpu).unwrap();
        move |x: &Tensor| -> Result<Tensor> {
            Ok(x.flatten_from(1)?.broadcast_mul(&v)?.sum(1)?.add(&k)?)
        }
    }

    /// A linear classifier `z = W x` on 1x4x4 images inside [0.3, 0.7], attacked towards each
    /// example's runner-up class: the inputs, and per example `v = w_t - w_y` and the margin.
    fn linear_problem(rows: usize) -> (Tensor, Vec<Vec<f64>>, Vec<f64>) {
        let (classes, dim) = (4, 16);
        let mut rng = Rng::new(3);
        let w: Vec<Vec<f64>> = (0..classes)
            .map(|_| (0..dim).map(|_| rng.normal()).collect())
            .collect();
        let x: Vec<Vec<f64>> = (0..rows)
            .map(|_| (0..dim).map(|_| rng.uniform_range(0.3, 0.7)).collect())
            .collect();
        let mut v = Vec::new();
        let mut margin = Vec::new();
        for row in &x {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| dot(&w[b], row).total_cmp(&dot(&w[a], row)));
            let (y, t) = (order[0], order[1]);
            let diff: Vec<f64> = w[t].iter().zip(&w[y]).map(|(a, b)| a - b).collect();
            margin.push(dot(&diff, row));
            v.push(diff);
        }
        let flat: Vec<f32> = x.iter().flatten().map(|&a| a as f32).collect();
        let x = Tensor::from_vec(flat, (rows, 1, 4, 4), &Device::Cpu).unwrap();
        (x, v, margin)
    }

    /// Runs FAB with `eps` in `norm` on `x` against the margin `v . x` (no offset).
    fn attack(norm: Norm, eps: f64, x: &Tensor, v: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let fab = Fab::new(FabParams {
            eps,
            norm,
            ..FabParams::default()
        });
        let mut objective = linear_margin(v, &vec![0.0; v.len()]);
        let adversarial = fab.perturb(x, &mut objective, &mut Rng::new(1)).unwrap();
        assert_eq!(adversarial.dims(), x.dims());
        rows_of(&adversarial).unwrap()
    }

    #[test]
    fn on_a_linear_classifier_fab_finds_the_closest_boundary_point() {
        let (x, v, margin) = linear_problem(6);
        let clean = rows_of(&x).unwrap();
        for norm in [Norm::Linf, Norm::L2] {
            let dual = |v: &[f64]| match norm {
                Norm::Linf => v.iter().map(|a| a.abs()).sum::<f64>(),
                Norm::L2 => dot(v, v).sqrt(),
            };
            let least: Vec<f64> = v.iter().zip(&margin).map(|(v, f)| -f / dual(v)).collect();
            // the clean points are correct, and the box never binds (moves of at most `least`)
            assert!(least.iter().all(|&d| d > 0.0 && d < 0.3), "{least:?}");
            let found = attack(norm, 10.0, &x, &v);
            for r in 0..v.len() {
                let delta: Vec<f64> = found[r].iter().zip(&clean[r]).map(|(a, b)| a - b).collect();
                let distance = size(norm, &delta);
                assert!(
                    dot(&v[r], &found[r]) >= -1e-5,
                    "{norm}: not across the boundary"
                );
                assert!(
                    distance >= least[r] - 1e-4 && distance <= 1.06 * least[r],
                    "{norm}: distance {distance} vs least {}",
                    least[r]
                );
            }
            let (low, high) = least
                .iter()
                .fold((f64::MAX, 0.0f64), |(l, h), &d| (l.min(d), h.max(d)));
            // below every boundary: the clean inputs come back
            assert_eq!(attack(norm, 0.9 * low, &x, &v), clean, "{norm}");
            // beyond every boundary: every example is broken, within the ball
            let eps = 1.1 * high;
            for (r, row) in attack(norm, eps, &x, &v).iter().enumerate() {
                let delta: Vec<f64> = row.iter().zip(&clean[r]).map(|(a, b)| a - b).collect();
                assert!(dot(&v[r], row) >= -1e-5, "{norm}: example {r} not broken");
                assert!(size(norm, &delta) <= eps + 1e-6);
            }
        }
    }

    #[test]
    fn the_result_stays_in_the_ball_and_the_box_and_eps_zero_returns_the_input() {
        let rows = 8;
        let mut rng = Rng::new(9);
        // pixels at the bounds included
        let x: Vec<f32> = (0..rows * 16)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => 1.0,
                _ => rng.uniform() as f32,
            })
            .collect();
        let x = Tensor::from_vec(x, (rows, 1, 4, 4), &Device::Cpu).unwrap();
        let v = Tensor::from_vec(
            (0..rows * 16)
                .map(|_| rng.normal() as f32)
                .collect::<Vec<_>>(),
            (rows, 16),
            &Device::Cpu,
        )
        .unwrap();
        let k = Tensor::from_vec(
            (0..rows).map(|r| -0.3 * r as f32).collect::<Vec<_>>(),
            rows,
            &Device::Cpu,
        )
        .unwrap();
        // a nonlinear margin
        let mut objective = move |x: &Tensor| -> Result<Tensor> {
            let s = (x.flatten_from(1)? * 3.0)?.sin()?;
            Ok(s.broadcast_mul(&v)?.sum(1)?.add(&k)?)
        };
        let mut broken = 0;
        for norm in [Norm::Linf, Norm::L2] {
            for eps in [0.0, 0.02, 0.1, 0.5] {
                let fab = Fab::new(FabParams {
                    eps,
                    norm,
                    steps: 30,
                    ..FabParams::default()
                });
                let adversarial = fab.perturb(&x, &mut objective, &mut Rng::new(1)).unwrap();
                if eps == 0.0 {
                    assert_eq!(rows_of(&adversarial).unwrap(), rows_of(&x).unwrap());
                }
                let sizes = norm.distances(&(&adversarial - &x).unwrap()).unwrap();
                assert!(sizes.iter().all(|&s| s <= eps + 1e-6), "{norm}: {sizes:?}");
                let values = adversarial.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
                broken += sizes.iter().filter(|&&s| s > 0.0).count();
            }
        }
        assert!(broken > 0, "no example was ever moved");
    }

    #[test]
    fn settings_are_validated_and_reported() {
        assert!(FabParams::default().validate().is_ok());
        for bad in [
            FabParams {
                eps: -1.0,
                ..FabParams::default()
            },
            FabParams {
                steps: 0,
                ..FabParams::default()
            },
            FabParams {
                alpha_max: 1.5,
                ..FabParams::default()
            },
            FabParams {
                beta: 0.0,
                ..FabParams::default()
            },
            FabParams {
                eta: f64::NAN,
                ..FabParams::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let spec = Fab::new(FabParams::default()).spec();
        assert_eq!(
            (spec.restarts, spec.random_start, spec.step_size),
            (1, false, None)
        );
        assert_eq!(spec.steps, 100);
    }

    #[test]
    fn it_is_registered_with_its_norm_as_a_setting() {
        use rossl_api::components::BuildContext;
        let ctx = BuildContext::cpu(0);
        let fab = rossl_api::registry::build::<dyn Attack>(
            "fab",
            "eps = 0.5\nnorm = \"l2\"\nsteps = 20",
            &ctx,
        )
        .unwrap();
        assert_eq!((fab.spec().eps, fab.spec().steps), (0.5, 20));
        let bad = rossl_api::registry::build::<dyn Attack>("fab", "norm = \"l3\"", &ctx);
        assert!(bad.is_err());
    }

    /// The linear margin, with an objective that never reports success.
    struct NeverSucceeds<F> {
        margin: F,
    }

    impl<F: FnMut(&Tensor) -> Result<Tensor>> Objective for NeverSucceeds<F> {
        fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
            (self.margin)(x)
        }

        fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
            Ok(Some(vec![false; x.dim(0)?]))
        }
    }

    #[test]
    fn success_is_the_objectives_own_test_when_it_has_one() {
        // the margin turns positive, but the objective never reports success: nothing is kept
        let (x, v, _) = linear_problem(4);
        let fab = Fab::new(FabParams {
            eps: 10.0,
            ..FabParams::default()
        });
        let mut objective = NeverSucceeds {
            margin: linear_margin(&v, &vec![0.0; v.len()]),
        };
        let found = fab.perturb(&x, &mut objective, &mut Rng::new(1)).unwrap();
        assert_eq!(rows_of(&found).unwrap(), rows_of(&x).unwrap());
    }
}
