//! Every built-in attack under both threat models (`norm = "linf"` and `"l2"`): results inside
//! the ball and [0, 1], eps 0 returns the input, and the L2 forms reach the known answers of
//! simple objectives (FGM and PGD on a linear one, APGD on an interior maximum, Square on a
//! linear classifier).

use candle_core::{DType, Device, Tensor, D};
use rossl_api::components::{Attack, Objective};
use rossl_api::norm::Norm;
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_attacks::apgd::{Apgd, ApgdParams};
use rossl_attacks::fgsm::{Fgsm, FgsmParams};
use rossl_attacks::pgd::{Pgd, PgdParams};
use rossl_attacks::square::{Square, SquareParams};

/// `rows` images of 3 x 8 x 8 pixels, uniform in [low, high).
fn images(rows: usize, (low, high): (f64, f64), seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..rows * 3 * 64)
        .map(|_| rng.uniform_range(low, high) as f32)
        .collect();
    Tensor::from_vec(values, (rows, 3, 8, 8), &Device::Cpu).unwrap()
}

/// Random weights of the images' shape (standard normal).
fn weights(rows: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..rows * 3 * 64).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(values, (rows, 3, 8, 8), &Device::Cpu).unwrap()
}

/// Per-example sum of the rows of `t`, on the host in f64.
fn row_sums(t: &Tensor) -> Vec<f64> {
    let t = t.to_dtype(DType::F64).unwrap().flatten_from(1).unwrap();
    t.sum(D::Minus1).unwrap().to_vec1::<f64>().unwrap()
}

/// The four attacks with radius `eps` in `norm`, short budgets.
fn all_attacks(norm: Norm, eps: f64) -> Vec<(&'static str, Box<dyn Attack>)> {
    vec![
        (
            "pgd",
            Box::new(Pgd::new(PgdParams {
                eps,
                step: eps / 4.0 + 1e-3,
                steps: 6,
                random_start: true,
                restarts: 2,
                norm,
            })),
        ),
        (
            "fgsm",
            Box::new(Fgsm(FgsmParams {
                eps,
                random_start: true,
                norm,
                ..FgsmParams::default()
            })),
        ),
        (
            "apgd",
            Box::new(Apgd::new(ApgdParams {
                eps,
                steps: 10,
                norm,
                ..ApgdParams::default()
            })),
        ),
        (
            "square",
            Box::new(Square::new(SquareParams {
                eps,
                queries: 30,
                norm,
                ..SquareParams::default()
            })),
        ),
    ]
}

/// A non-linear loss per example, steep enough to push attacks against the box [0, 1].
fn wavy(input: &Tensor) -> Result<Tensor> {
    Ok(((input * 7.0)?.sin()? + input.sqr()?)?
        .flatten_from(1)?
        .sum(D::Minus1)?)
}

#[test]
fn every_attack_stays_in_its_ball_and_in_the_pixel_range() {
    // pixels over all of [0, 1], so that clipping matters; radii large enough to reach the edges
    let x = images(3, (0.0, 1.0), 1);
    for (norm, eps) in [(Norm::Linf, 0.1), (Norm::L2, 1.5)] {
        for (name, attack) in all_attacks(norm, eps) {
            let adv = attack.perturb(&x, &mut wavy, &mut Rng::new(2)).unwrap();
            let sizes = norm.distances(&(&adv - &x).unwrap()).unwrap();
            assert!(
                sizes.iter().all(|&s| s <= eps + 1e-5),
                "{name} ({norm}) left the ball of radius {eps}: {sizes:?}"
            );
            assert!(
                sizes.iter().all(|&s| s > eps / 10.0),
                "{name} ({norm}) hardly moved: {sizes:?}"
            );
            let values = adv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                values.iter().all(|v| (0.0..=1.0).contains(v)),
                "{name} ({norm}) left [0, 1]"
            );
        }
    }
}

#[test]
fn every_attack_returns_the_input_at_eps_zero() {
    let x = images(2, (0.0, 1.0), 3);
    let expected = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for norm in [Norm::Linf, Norm::L2] {
        for (name, attack) in all_attacks(norm, 0.0) {
            let adv = attack.perturb(&x, &mut wavy, &mut Rng::new(4)).unwrap();
            assert_eq!(
                adv.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                expected,
                "{name} ({norm}) moved at eps 0"
            );
        }
    }
}

/// `f(x) = w . x` per example.
fn linear(w: &Tensor) -> impl FnMut(&Tensor) -> Result<Tensor> + '_ {
    move |input: &Tensor| Ok((input * w)?.flatten_from(1)?.sum(D::Minus1)?)
}

#[test]
fn fgm_steps_along_the_normalised_gradient_and_l2_pgd_reaches_the_linear_maximum() {
    // x well inside [0, 1] and eps small enough that no pixel reaches the box: the maximiser of
    // w . x over the L2 ball is x + eps w / ||w||, where f = w . x + eps ||w||
    let (rows, eps) = (4, 0.5);
    let x = images(rows, (0.3, 0.7), 5);
    let w = weights(rows, 6);
    let w_norms = rossl_api::norm::row_norms(&w.to_dtype(DType::F64).unwrap()).unwrap();
    let w_norms = w_norms.to_vec1::<f64>().unwrap();
    let fgm = Fgsm(FgsmParams {
        eps,
        norm: Norm::L2,
        ..FgsmParams::default()
    });
    let adv = fgm.perturb(&x, &mut linear(&w), &mut Rng::new(7)).unwrap();
    let scale = Tensor::from_vec(
        w_norms.iter().map(|n| (eps / n) as f32).collect::<Vec<_>>(),
        (rows, 1, 1, 1),
        &Device::Cpu,
    )
    .unwrap();
    let expected = (&x + w.broadcast_mul(&scale).unwrap()).unwrap();
    let error = (&adv - &expected)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(error < 1e-6, "FGM is {error} from x + eps w / ||w||");

    for random_start in [false, true] {
        let pgd = Pgd::new(PgdParams {
            eps,
            step: 0.1,
            steps: if random_start { 80 } else { 10 },
            random_start,
            restarts: 1,
            norm: Norm::L2,
        });
        let adv = pgd.perturb(&x, &mut linear(&w), &mut Rng::new(8)).unwrap();
        let reached = row_sums(
            &(adv.to_dtype(DType::F64).unwrap() * w.to_dtype(DType::F64).unwrap()).unwrap(),
        );
        let clean =
            row_sums(&(x.to_dtype(DType::F64).unwrap() * w.to_dtype(DType::F64).unwrap()).unwrap());
        for i in 0..rows {
            let best = clean[i] + eps * w_norms[i];
            assert!(
                (reached[i] - best).abs() < 1e-4,
                "PGD (random start {random_start}) reached f = {} of the maximum {best} on example {i}",
                reached[i]
            );
        }
    }
}

#[test]
fn l2_apgd_halves_its_step_to_reach_an_interior_maximum() {
    // f(x) = -||x - c||^2 per example with ||c - x|| = 0.8 eps, c inside [0, 1]: the answer is c.
    // Steps of APGD's initial 2 eps overshoot it; only the halving gets close.
    let (rows, eps) = (4, 0.5);
    let x = images(rows, (0.3, 0.7), 9);
    let direction = weights(rows, 10);
    let norms = rossl_api::norm::row_norms(&direction).unwrap();
    let offset = (direction
        .broadcast_div(&rossl_api::norm::as_rows(&norms, &direction).unwrap())
        .unwrap()
        * (0.8 * eps))
        .unwrap();
    let c = (&x + &offset).unwrap();
    let mut objective = |input: &Tensor| -> Result<Tensor> {
        Ok((input - &c)?
            .sqr()?
            .flatten_from(1)?
            .sum(D::Minus1)?
            .neg()?)
    };
    let apgd = Apgd::new(ApgdParams {
        eps,
        steps: 100,
        norm: Norm::L2,
        ..ApgdParams::default()
    });
    let adv = apgd.perturb(&x, &mut objective, &mut Rng::new(11)).unwrap();
    let errors = Norm::L2.distances(&(&adv - &c).unwrap()).unwrap();
    assert!(
        errors.iter().all(|&e| e < eps / 20.0),
        "APGD ended {errors:?} from the maximum (eps {eps})"
    );
}

/// A linear classifier of three classes on 3 x 8 x 8 images, every image labelled 0: the loss is
/// the margin `max(z_1, z_2) - z_0` (positive: misclassified). Records every queried batch.
struct Classifier {
    weights: [Tensor; 3],
    /// Per image, added to `z_0`.
    bias: Tensor,
    queried: Vec<Tensor>,
}

impl Classifier {
    fn new(bias: &[f32]) -> Self {
        let rows = bias.len();
        Classifier {
            weights: [11, 12, 13]
                .map(|seed| weights(1, seed).broadcast_as((rows, 3, 8, 8)).unwrap()),
            bias: Tensor::new(bias, &Device::Cpu).unwrap(),
            queried: Vec::new(),
        }
    }

    fn margin(&self, x: &Tensor) -> Result<Tensor> {
        let z = |k: usize| -> Result<Tensor> {
            Ok((x * &self.weights[k])?.flatten_from(1)?.sum(D::Minus1)?)
        };
        let z0 = (z(0)? + &self.bias)?;
        Ok((z(1)?.maximum(&z(2)?)? - z0)?)
    }
}

impl Objective for Classifier {
    fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
        self.queried.push(x.detach());
        self.margin(x)
    }

    fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
        let margin = self.margin(x)?.to_vec1::<f32>()?;
        Ok(Some(margin.iter().map(|m| *m > 0.0).collect()))
    }
}

fn l2_square(eps: f64, queries: usize) -> Square {
    Square::new(SquareParams {
        eps,
        queries,
        norm: Norm::L2,
        ..SquareParams::default()
    })
}

#[test]
fn l2_square_raises_the_loss_on_the_sphere() {
    // pixels in [0.3, 0.7) and eps 0.3: no pixel can reach the box, so every query lies on the
    // sphere of radius eps
    let (rows, eps) = (3, 0.3);
    let x = images(rows, (0.3, 0.7), 14);
    let mut objective = Classifier::new(&[1e3; 3]);
    let clean = objective.margin(&x).unwrap().to_vec1::<f32>().unwrap();
    let adv = l2_square(eps, 200)
        .perturb(&x, &mut objective, &mut Rng::new(15))
        .unwrap();
    // the start and 200 proposals (AutoAttack's `n_queries`)
    assert_eq!(objective.queried.len(), 201);
    for (q, input) in objective.queried.iter().enumerate() {
        let sizes = Norm::L2.distances(&(input - &x).unwrap()).unwrap();
        assert!(
            sizes.iter().all(|s| (s - eps).abs() < 1e-5),
            "query {q} is off the sphere of radius {eps}: {sizes:?}"
        );
    }
    let first = objective
        .margin(&objective.queried[0])
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let last = objective.margin(&adv).unwrap().to_vec1::<f32>().unwrap();
    for i in 0..rows {
        assert!(
            last[i] > first[i] && last[i] > clean[i],
            "image {i}: loss {} at the end, {} at the start, {} clean",
            last[i],
            first[i],
            clean[i]
        );
    }
}

#[test]
fn l2_square_stops_querying_a_misclassified_image() {
    // image 0 starts (the attack's first query, its start alone) 0.2 on the right side of the
    // boundary, image 1 far from it
    let (eps, queries) = (0.3, 100);
    let x = images(2, (0.3, 0.7), 16);
    let mut unbiased = Classifier::new(&[0.0, 0.0]);
    let start = l2_square(eps, 1)
        .perturb(&x, &mut unbiased, &mut Rng::new(17))
        .unwrap();
    let margin = unbiased.margin(&start).unwrap().to_vec1::<f32>().unwrap()[0];
    let mut objective = Classifier::new(&[margin + 0.2, 1e3]);
    let adv = l2_square(eps, queries)
        .perturb(&x, &mut objective, &mut Rng::new(17))
        .unwrap();
    let image = |t: &Tensor, i: usize| {
        t.get(i)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let fooled_at = objective
        .queried
        .iter()
        .position(|q| objective.margin(q).unwrap().to_vec1::<f32>().unwrap()[0] > 0.0)
        .expect("image 0 was never misclassified");
    assert!(objective.margin(&adv).unwrap().to_vec1::<f32>().unwrap()[0] > 0.0);
    for q in &objective.queried[fooled_at..] {
        assert_eq!(
            image(q, 0),
            image(&adv, 0),
            "a misclassified image was queried again"
        );
    }
    // image 1, never misclassified, got a fresh proposal at every query to the end: the start
    // and `queries` proposals
    assert_eq!(objective.queried.len(), queries + 1);
    assert!(
        fooled_at > 1 && fooled_at < queries - 2,
        "image 0 was misclassified at query {fooled_at}"
    );
    let last_two = &objective.queried[queries - 2..];
    assert_ne!(image(&last_two[0], 1), image(&last_two[1], 1));
}
