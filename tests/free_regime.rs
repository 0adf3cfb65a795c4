//! Free adversarial training's replays keep their perturbation in the ball, in the pixel
//! range, and across batches.

mod common;
use candle_core::{Device, Tensor};
use common::{assemble, temp_dir};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::optim::SgdLars;
use rossl::rossl_runtime::train::regimes::{self, FreeState, Passes};

#[test]
fn free_training_keeps_its_perturbation_in_the_ball_and_the_pixel_range() {
    let dir = temp_dir("free-ball");
    let asm = assemble(&dir, &["train.regime=\"free\""]);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let ctx = common::step_context(&asm);
    let eps = 8.0 / 255.0;
    let mut state = FreeState {
        delta: None,
        eps,
        step: 0.01,
        clamp_input: true,
        clean_weight: 0.0,
        adversarial_weight: 1.0,
    };
    let mut passes = Passes::default();
    let mut rng = Rng::new(1);
    let mut previous: Option<Tensor> = None;
    for batch in 0..5 {
        // each batch new images, some at the pixel range's ends
        let values: Vec<f32> = (0..32 * 144)
            .map(|i| {
                if i % 7 == 0 {
                    (batch % 2) as f32
                } else {
                    rng.uniform() as f32
                }
            })
            .collect();
        let x = Tensor::from_vec(values, (32, 1, 12, 12), &Device::Cpu).unwrap();
        for replay in 0..3 {
            let outcome =
                regimes::free_replay(&ctx, &mut optimizer, &mut state, &x, 0.1, &mut passes)
                    .unwrap();
            if replay == 0 {
                // the perturbation persists across batches: a new batch starts from the last
                // batch's perturbation, not from zero
                let expected = match &previous {
                    Some(delta) => (&x + delta).unwrap().clamp(0.0, 1.0).unwrap(),
                    None => x.clone(),
                };
                assert_eq!(
                    common::max_abs_diff(outcome.input.as_ref().unwrap(), &expected),
                    0.0,
                    "batch {batch} did not start from the previous perturbation"
                );
            }
            let delta = state.delta.as_ref().unwrap();
            let linf = common::max_abs(delta);
            assert!(linf <= eps as f32 + 1e-6, "|delta| = {linf}");
            let moved = (&x + delta).unwrap();
            assert!(moved.min_all().unwrap().to_scalar::<f32>().unwrap() >= -1e-6);
            assert!(moved.max_all().unwrap().to_scalar::<f32>().unwrap() <= 1.0 + 1e-6);
        }
        let delta = state.delta.clone().unwrap();
        assert!(common::max_abs(&delta) > 0.0);
        previous = Some(delta);
    }
    assert_eq!(
        passes,
        Passes {
            forward: 15,
            backward: 15
        }
    );
}

/// Free ACL: with a clean weight, each replay also runs the clean views, in two forward passes
/// and one backward, and its loss is the weighted sum of the two losses. (With dual batch norm,
/// as here, both branches start alike, so this does not see the routing: the replay shares the
/// PGD step's update, whose routing tests/dual_batch_norm.rs checks.)
#[test]
fn a_free_replay_with_a_clean_weight_minimises_the_weighted_clean_and_perturbed_losses() {
    let dir = temp_dir("free-clean-weight");
    let sets = [
        "train.regime=\"free\"",
        "train.free.clean_weight=1",
        "encoder.resnet-small.dual_batch_norm=true",
    ];
    let asm = assemble(&dir, &sets);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let ctx = common::step_context(&asm);
    let x = Tensor::rand(0.1f32, 0.9f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let delta = Tensor::rand(-0.03f32, 0.03f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let mut state = FreeState {
        delta: Some(delta.clone()),
        eps: 8.0 / 255.0,
        step: 0.01,
        clamp_input: true,
        clean_weight: 1.0,
        adversarial_weight: 0.5,
    };
    let mut passes = Passes::default();
    // learning rate 0: the losses below see the weights the replay saw
    let outcome =
        regimes::free_replay(&ctx, &mut optimizer, &mut state, &x, 0.0, &mut passes).unwrap();
    assert_eq!(
        passes,
        Passes {
            forward: 2,
            backward: 1
        }
    );
    let mut loss_of = |v: &Tensor| {
        regimes::standard(&ctx, &mut optimizer, v, 0.0, &mut Passes::default())
            .unwrap()
            .loss
    };
    let perturbed = (&x + &delta).unwrap();
    let expected = loss_of(&x) + 0.5 * loss_of(&perturbed);
    assert!(
        (outcome.loss - expected).abs() < 1e-4 * expected.abs().max(1.0),
        "{} vs 1 x clean + 0.5 x perturbed = {expected}",
        outcome.loss
    );
    assert!(outcome.terms.iter().any(|(n, _)| n.starts_with("clean ")));
}
