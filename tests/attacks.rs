//! Attacks on non-linear objectives whose answers are known: APGD must halve its step to reach an
//! interior maximum, and PGD's restarts must be chosen per example; APGD reads success from the
//! forward pass of its gradients, and stops once every example succeeded.

mod common;
use candle_core::{Device, Tensor, D};
use rossl::rossl_api::components::{Attack, BuildContext, Objective};
use rossl::rossl_api::norm::Norm;
use rossl::rossl_api::registry;
use rossl::rossl_api::rng::Rng;
use rossl::rossl_api::Result;
use std::cell::RefCell;

fn attack(name: &str, params: &str) -> Box<dyn Attack> {
    registry::build::<dyn Attack>(name, params, &BuildContext::cpu(0)).unwrap()
}

#[test]
fn apgd_halves_its_step_to_reach_an_interior_maximum() {
    // f(x) = -|x - c|^2 per example, c strictly inside the ball around x and inside [0, 1]: the
    // answer is c. Signed steps of APGD's initial 2 eps oscillate around it; only step halving
    // (with restarts from the best point) gets close.
    let dev = Device::Cpu;
    let eps = 0.1;
    let mut rng = Rng::new(5);
    let n = 4 * 64;
    let x: Vec<f32> = (0..n).map(|_| rng.uniform_range(0.3, 0.7) as f32).collect();
    let offset: Vec<f32> = (0..n)
        .map(|_| rng.uniform_range(-0.8 * eps, 0.8 * eps) as f32)
        .collect();
    let x = Tensor::from_vec(x, (4, 1, 8, 8), &dev).unwrap();
    let c = (&x + Tensor::from_vec(offset, (4, 1, 8, 8), &dev).unwrap()).unwrap();
    let queries = RefCell::new(Vec::new());
    let mut objective = |input: &Tensor| -> Result<Tensor> {
        queries.borrow_mut().push(input.detach());
        Ok((input - &c)?
            .sqr()?
            .flatten_from(1)?
            .sum(D::Minus1)?
            .neg()?)
    };
    let adv = attack("apgd", "eps = 0.1\nsteps = 100")
        .perturb(&x, &mut objective, &mut Rng::new(6))
        .unwrap();
    let error = common::max_abs_diff(&adv, &c);
    assert!(
        error < (eps / 20.0) as f32,
        "APGD ended {error} from the maximum (eps {eps})"
    );
    // the step halved: late moves are a small fraction of the first ones
    let queries = queries.into_inner();
    let moves: Vec<f32> = queries
        .windows(2)
        .map(|w| common::max_abs_diff(&w[1], &w[0]))
        .collect();
    let early = moves[..5].iter().copied().fold(0.0, f32::max);
    let late = moves[moves.len() - 5..].iter().copied().fold(0.0, f32::max);
    assert!(
        late < early / 8.0,
        "the step did not shrink: early moves {early}, late moves {late}"
    );
}

#[test]
fn pgd_keeps_the_best_restart_of_each_example() {
    // One pixel per example, f(x) = (x - m)^2 with m = x0 + 0.2 eps: ascent runs to the corner of
    // the ball on the side of its random start, and the far corner x0 - eps (1.2 eps from m)
    // beats the near one (0.8 eps). A start above m (probability 0.4) ends at the near corner.
    let dev = Device::Cpu;
    let eps = 0.1;
    let rows = 32;
    let x = Tensor::full(0.5f32, (rows, 1, 1, 1), &dev).unwrap();
    let m = (0.5 + 0.2 * eps) as f32;
    let objective = || {
        move |input: &Tensor| -> Result<Tensor> {
            Ok((input - f64::from(m))?
                .sqr()?
                .flatten_from(1)?
                .sum(D::Minus1)?)
        }
    };
    let far = (0.5 - eps) as f32;
    let ends = |restarts: usize| -> Vec<f32> {
        let params = format!(
            "eps = 0.1\nstep = 0.05\nsteps = 5\nrandom_start = true\nrestarts = {restarts}"
        );
        attack("pgd-linf", &params)
            .perturb(&x, &mut objective(), &mut Rng::new(11))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let single = ends(1);
    let wrong = single.iter().filter(|v| (**v - far).abs() > 1e-6).count();
    assert!(
        wrong > 0 && wrong < rows,
        "one run should end at the near corner for some examples only: {single:?}"
    );
    // ten runs: each example keeps its own best run, so all reach the far corner
    let best = ends(10);
    for (i, v) in best.iter().enumerate() {
        assert!(
            (v - far).abs() < 1e-6,
            "example {i} ended at {v}, not {far}"
        );
    }
}

/// Counts the calls of each `Objective` method on `f(x) = sum of x` per example; success is a sum
/// above `threshold`.
struct CountingObjective {
    threshold: f32,
    loss_calls: usize,
    succeeded_calls: usize,
    combined_calls: usize,
}

impl CountingObjective {
    fn success(&self, loss: &Tensor) -> Result<Option<Vec<bool>>> {
        let values = loss.detach().to_vec1::<f32>()?;
        Ok(Some(values.iter().map(|v| *v > self.threshold).collect()))
    }
}

impl Objective for CountingObjective {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        self.loss_calls += 1;
        Ok(x.flatten_from(1)?.sum(D::Minus1)?)
    }

    fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
        self.succeeded_calls += 1;
        let loss = x.flatten_from(1)?.sum(D::Minus1)?;
        self.success(&loss)
    }

    fn loss_and_success(&mut self, x: &Tensor) -> Result<(Tensor, Option<Vec<bool>>)> {
        self.combined_calls += 1;
        let loss = x.flatten_from(1)?.sum(D::Minus1)?;
        let success = self.success(&loss)?;
        Ok((loss, success))
    }
}

#[test]
fn apgd_reads_success_from_the_forward_pass_of_each_gradient() {
    // 4 examples of 16 pixels at 0.5: sum 8 at x, at most 8 + 16 eps = 9.6 in the ball. Success
    // (a sum above 9) is reachable: APGD must return a successful point for every example, and
    // ask the objective once per iterate (the start and each of its steps), never a second time
    // for the success alone.
    let dev = Device::Cpu;
    let x = Tensor::full(0.5f32, (4, 1, 4, 4), &dev).unwrap();
    let mut objective = CountingObjective {
        threshold: 9.0,
        loss_calls: 0,
        succeeded_calls: 0,
        combined_calls: 0,
    };
    let steps = 10;
    let adv = attack("apgd", &format!("eps = 0.1\nsteps = {steps}"))
        .perturb(&x, &mut objective, &mut Rng::new(7))
        .unwrap();
    // every example succeeded before the last step, so APGD stopped early
    assert!(
        objective.combined_calls < steps + 1,
        "{} calls",
        objective.combined_calls
    );
    assert_eq!(objective.succeeded_calls, 0);
    assert_eq!(objective.loss_calls, 0);
    let sums = adv.flatten_from(1).unwrap().sum(D::Minus1).unwrap();
    assert_eq!(
        objective.success(&sums).unwrap(),
        Some(vec![true; 4]),
        "sums {sums}"
    );
}

#[test]
fn apgd_stops_once_every_example_succeeded_with_the_result_of_the_whole_run() {
    // the 4 examples of the test above reach success; a fifth, at 0, cannot (its sum stays below
    // 1.6), so the run with it goes through every step. Rows are independent: the first four rows
    // of the whole run are what the run that stopped early returned, bit for bit.
    let dev = Device::Cpu;
    let counting = || CountingObjective {
        threshold: 9.0,
        loss_calls: 0,
        succeeded_calls: 0,
        combined_calls: 0,
    };
    let steps = 10;
    let apgd = attack("apgd", &format!("eps = 0.1\nsteps = {steps}"));
    let four = Tensor::full(0.5f32, (4, 1, 4, 4), &dev).unwrap();
    let five = Tensor::cat(
        &[
            &four,
            &Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &dev).unwrap(),
        ],
        0,
    )
    .unwrap();
    let (mut early, mut whole) = (counting(), counting());
    let stopped = apgd.perturb(&four, &mut early, &mut Rng::new(7)).unwrap();
    let full = apgd.perturb(&five, &mut whole, &mut Rng::new(7)).unwrap();
    assert!(
        early.combined_calls < steps + 1,
        "{} calls",
        early.combined_calls
    );
    assert_eq!(whole.combined_calls, steps + 1);
    let bits = |t: &Tensor| -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(bits(&stopped), bits(&full.narrow(0, 0, 4).unwrap()));
}

#[test]
fn an_objective_without_a_combined_pass_gets_loss_then_success() {
    // the default `loss_and_success`: `loss` on the tracked input, then `succeeded`
    struct TwoPasses(Vec<&'static str>);
    impl Objective for TwoPasses {
        fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
            self.0.push("loss");
            Ok(x.flatten_from(1)?.sum(D::Minus1)?)
        }
        fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
            self.0.push("succeeded");
            let sums = x.flatten_from(1)?.sum(D::Minus1)?.to_vec1::<f32>()?;
            Ok(Some(sums.iter().map(|s| *s > 1.0).collect()))
        }
    }
    let x = Tensor::new(&[[0.2f32, 0.3], [0.9, 0.8]], &Device::Cpu).unwrap();
    let mut objective = TwoPasses(Vec::new());
    let (loss, gradient, success) =
        rossl::rossl_api::adversarial::input_gradient_and_success(&mut objective, &x).unwrap();
    assert_eq!(objective.0, ["loss", "succeeded"]);
    // d(sum x)/dx = 1 everywhere; sums 0.5 and 1.7
    assert_eq!(loss.to_vec1::<f32>().unwrap(), [0.5, 1.7]);
    assert_eq!(gradient.to_vec2::<f32>().unwrap(), [[1.0, 1.0], [1.0, 1.0]]);
    assert_eq!(success, Some(vec![false, true]));
}

#[test]
fn pgd_takes_either_norm_and_pgd_linf_refuses_l2() {
    // `pgd` with the default norm is `pgd-linf`, number for number
    let x = Tensor::full(0.5f32, (2, 1, 4, 4), &Device::Cpu).unwrap();
    let params = "eps = 0.1\nstep = 0.03\nsteps = 4\nrandom_start = true\nrestarts = 2";
    let run = |name: &str, params: &str| {
        let mut objective = |input: &Tensor| -> Result<Tensor> {
            Ok(input.sqr()?.flatten_from(1)?.sum(D::Minus1)?)
        };
        attack(name, params)
            .perturb(&x, &mut objective, &mut Rng::new(3))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(run("pgd", params), run("pgd-linf", params));
    assert_eq!(
        run("pgd", &format!("{params}\nnorm = \"linf\"")),
        run("pgd-linf", params)
    );
    // an L2 run stays in the L2 ball, and differs
    let l2 = run("pgd", &format!("{params}\nnorm = \"l2\""));
    for row in l2.chunks(16) {
        let size = row.iter().map(|v| (v - 0.5).powi(2)).sum::<f32>().sqrt();
        assert!(size <= 0.1 + 1e-5 && size > 0.05, "{l2:?}");
    }
    assert_ne!(l2, run("pgd", params));
    // every built-in attack reads `norm`; `pgd-linf` refuses L2 and names `pgd`
    for name in ["pgd", "fgsm", "apgd", "square"] {
        assert!(
            registry::build::<dyn Attack>(name, "norm = \"l2\"", &BuildContext::cpu(0)).is_ok()
        );
    }
    let refused = registry::build::<dyn Attack>("pgd-linf", "norm = \"l2\"", &BuildContext::cpu(0));
    let message = common::error_of(refused.map(|_| ()));
    assert!(
        message.contains("norm") && message.contains("`pgd`"),
        "{message}"
    );
    let unknown = registry::build::<dyn Attack>("pgd", "norm = \"l1\"", &BuildContext::cpu(0));
    assert!(unknown.is_err());
}

/// Records the first point it is asked about; a flat loss, never a success.
struct FirstPoint(Option<Tensor>);

impl Objective for FirstPoint {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.0.is_none() {
            self.0 = Some(x.detach());
        }
        Ok((x.flatten_from(1)?.sum(D::Minus1)? * 0.0)?)
    }
}

#[test]
fn apgd_starts_on_the_l2_sphere_as_autoattack() {
    // AutoAttack's L2 APGD starts at x + eps t / ||t||_2 (t Gaussian): every example at distance
    // eps (x in the interior, so clipping to [0, 1] takes nothing off)
    let x = Tensor::full(0.5f32, (3, 3, 8, 8), &Device::Cpu).unwrap();
    let mut objective = FirstPoint(None);
    attack("apgd", "eps = 0.5\nsteps = 2\nnorm = \"l2\"")
        .perturb(&x, &mut objective, &mut Rng::new(3))
        .unwrap();
    let start = objective.0.expect("queried");
    let delta = (start - &x).unwrap();
    for size in Norm::L2.distances(&delta).unwrap() {
        assert!(
            (size - 0.5).abs() < 1e-5,
            "start at L2 distance {size}, not eps"
        );
    }
}
