//! Free adversarial training's replays keep their perturbation in the ball, in the pixel
//! range, and across batches.

mod common;
use candle_core::{Device, Tensor};
use common::{assemble, temp_dir};
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::optim::SgdLars;
use rossl::rossl_runtime::train::regimes::{self, FreeState, Passes, StepContext};

#[test]
fn free_training_keeps_its_perturbation_in_the_ball_and_the_pixel_range() {
    let dir = temp_dir("free-ball");
    let asm = assemble(&dir, &["train.regime=\"free\""]);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let ctx = StepContext {
        encoder: asm.encoder.as_ref(),
        objective: &asm.objective,
        views: 4,
        labels: None,
        target: None,
    };
    let eps = 8.0 / 255.0;
    let mut state = FreeState {
        delta: None,
        eps,
        step: 0.01,
        clamp_input: true,
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
