//! The regimes' inner steps: free training ascends and keeps its perturbation in the ball and
//! across batches, the PGD training attack raises the loss, and a PGD step leaks nothing from its
//! attack passes into the update.

mod common;
use candle_core::{Device, Tensor};
use common::{assemble, step_context, temp_dir};
use rossl::rossl_api::components::{Attack, BuildContext};
use rossl::rossl_api::registry;
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::optim::SgdLars;
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::train::encoder_tensors;
use rossl::rossl_runtime::train::regimes::{self, FreeState, Passes, PgdStep, StepContext};
use rossl::rossl_runtime::train::target::TargetNetwork;

/// One step of the `pgd` regime with `attack` (update weights `clean` and `adversarial`) on `x`
/// at learning rate `lr`, random starts from seed `seed`: the outcome and the passes it made.
fn pgd_once(
    ctx: &StepContext<'_>,
    optimizer: &mut SgdLars,
    attack: &dyn Attack,
    [clean, adversarial]: [f64; 2],
    (x, lr, seed): (&Tensor, f64, u64),
) -> (regimes::StepOutcome, Passes) {
    let mut passes = Passes::default();
    let step = pgd_step(attack, clean, adversarial);
    let outcome = regimes::pgd(
        ctx,
        optimizer,
        &step,
        (x, lr),
        &mut Rng::new(seed),
        &mut passes,
    )
    .unwrap();
    (outcome, passes)
}

/// The `pgd` regime's settings with `attack` in attack mode and these update weights.
fn pgd_step(attack: &dyn Attack, clean_weight: f64, adversarial_weight: f64) -> PgdStep<'_> {
    PgdStep {
        attack,
        attack_mode: rossl::rossl_api::components::Mode::Attack,
        clean_weight,
        adversarial_weight,
    }
}

#[test]
fn each_free_replay_ascends_the_loss_of_the_batch_it_replays() {
    let dir = temp_dir("free-ascent");
    let asm = assemble(&dir, &["train.regime=\"free\""]);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let ctx = step_context(&asm);
    // a small step, so that each ascent step raises the loss to first order
    let mut state = FreeState {
        delta: None,
        eps: 8.0 / 255.0,
        step: 1e-3,
        clamp_input: true,
        clean_weight: 0.0,
        adversarial_weight: 1.0,
    };
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    // learning rate 0: the weights stay put, so only the perturbation changes the loss
    let losses: Vec<f64> = (0..5)
        .map(|_| {
            regimes::free_replay(
                &ctx,
                &mut optimizer,
                &mut state,
                &x,
                0.0,
                &mut Passes::default(),
            )
            .unwrap()
            .loss
        })
        .collect();
    for pair in losses.windows(2) {
        assert!(
            pair[1] > pair[0],
            "a replay lowered the loss it ascends: {losses:?}"
        );
    }
}

#[test]
fn the_pgd_training_attack_raises_the_ssl_loss() {
    let dir = temp_dir("pgd-raises");
    let asm = assemble(&dir, &[]);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let ctx = step_context(&asm);
    let attack =
        registry::build::<dyn Attack>("pgd-linf", "steps = 5\nstep = 0.005", &BuildContext::cpu(0))
            .unwrap();
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    // learning rate 0 for both: the same weights see the clean and the attacked views
    let clean = regimes::standard(&ctx, &mut optimizer, &x, 0.0, &mut Passes::default())
        .unwrap()
        .loss;
    let (attacked, _) = pgd_once(
        &ctx,
        &mut optimizer,
        attack.as_ref(),
        [0.0, 1.0],
        (&x, 0.0, 2),
    );
    let attacked = attacked.loss;
    assert!(
        attacked > clean,
        "the attack lowered the SSL loss: clean {clean}, attacked {attacked}"
    );
}

#[test]
fn a_pgd_step_equals_a_standard_step_on_the_perturbed_batch() {
    let dir = temp_dir("pgd-leak");
    let a = assemble(&dir, &[]);
    let b = assemble(&dir, &[]);
    let params = "steps = 4\nrandom_start = true";
    let attack = registry::build::<dyn Attack>("pgd-linf", params, &BuildContext::cpu(0)).unwrap();
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let mut opt_a = SgdLars::new(a.encoder.parameters(), &a.config.run.optim);
    let mut opt_b = SgdLars::new(b.encoder.parameters(), &b.config.run.optim);
    let ctx_a = StepContext {
        encoder: a.encoder.as_ref(),
        objective: &a.objective,
        views: 4,
        labels: None,
        target: None,
    };
    let ctx_b = StepContext {
        encoder: b.encoder.as_ref(),
        objective: &b.objective,
        views: 4,
        labels: None,
        target: None,
    };
    let (outcome, passes) = pgd_once(
        &ctx_a,
        &mut opt_a,
        attack.as_ref(),
        [0.0, 1.0],
        (&x, 0.3, 2),
    );
    assert_eq!(
        passes,
        Passes {
            forward: 5,
            backward: 5
        },
        "K + 1 passes each"
    );
    let perturbed = outcome.input.unwrap();
    assert!(common::max_abs_diff(&perturbed, &x) > 0.0);
    regimes::standard(&ctx_b, &mut opt_b, &perturbed, 0.3, &mut Passes::default()).unwrap();
    for ((name, ta), (_, tb)) in encoder_tensors(a.encoder.as_ref())
        .iter()
        .zip(encoder_tensors(b.encoder.as_ref()))
    {
        let same = ta
            .flatten_all()
            .unwrap()
            .eq(&tb.flatten_all().unwrap())
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .min_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(
            same, 1.0,
            "`{name}` differs: attack passes leaked into the update"
        );
    }
}

#[test]
fn a_pgd_step_with_a_clean_weight_minimises_the_weighted_clean_and_perturbed_losses() {
    // ACL's update: 1 x the loss of the clean views + 1 x the loss of the perturbed views
    let dir = temp_dir("pgd-clean-weight");
    let asm = assemble(&dir, &[]);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let ctx = step_context(&asm);
    let params = "steps = 3\nrandom_start = true";
    let attack = registry::build::<dyn Attack>("pgd-linf", params, &BuildContext::cpu(0)).unwrap();
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    // learning rate 0: the weights that saw the step see the checks below
    let (outcome, passes) = pgd_once(
        &ctx,
        &mut optimizer,
        attack.as_ref(),
        [1.0, 0.5],
        (&x, 0.0, 3),
    );
    assert_eq!(
        passes,
        Passes {
            forward: 5,
            backward: 4
        },
        "K attack passes, then a forward pass of each of the clean and perturbed views and one backward"
    );
    let perturbed = outcome.input.unwrap();
    let mut loss_of = |v: &Tensor| {
        regimes::standard(&ctx, &mut optimizer, v, 0.0, &mut Passes::default())
            .unwrap()
            .loss
    };
    let expected = loss_of(&x) + 0.5 * loss_of(&perturbed);
    assert!(
        (outcome.loss - expected).abs() < 1e-4 * expected.abs().max(1.0),
        "{} vs 1 x clean + 0.5 x perturbed = {expected}",
        outcome.loss
    );
    assert!(outcome.terms.iter().any(|(n, _)| n.starts_with("clean ")));
}

#[test]
fn the_trades_attack_raises_its_loss_with_more_steps_and_is_refused_under_standard() {
    let dir = temp_dir("trades");
    let trades = "loss.terms=[{ name = \"trades\" }]";
    let asm = assemble(&dir, &[trades, "train.regime=\"pgd\""]);
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    // 4 views of 8 images, view-major
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2, 3], &Device::Cpu).unwrap();
    let ctx = StepContext {
        labels: Some(&labels),
        ..step_context(&asm)
    };
    let loss_after = |steps: usize, optimizer: &mut SgdLars| {
        let params = format!("steps = {steps}\nstep = 0.01\nrandom_start = true");
        let attack =
            registry::build::<dyn Attack>("pgd-linf", &params, &BuildContext::cpu(0)).unwrap();
        pgd_once(&ctx, optimizer, attack.as_ref(), [0.0, 1.0], (&x, 0.0, 4))
            .0
            .loss
    };
    // one step from the random start against ten (learning rate 0: the same weights): the KL
    // term, the only one the perturbation changes, grows with the attack
    let short = loss_after(1, &mut optimizer);
    let long = loss_after(10, &mut optimizer);
    assert!(
        long > short,
        "TRADES loss after 1 step {short}, after 10 {long}"
    );
    // under the standard regime there are no clean views to compare with: refused by name
    let resolved = common::resolve(
        &[common::write(&dir, "tiny.toml", common::TINY)],
        &[trades, "train.regime=\"standard\""],
    )
    .unwrap();
    let cpu =
        rossl::rossl_runtime::device::select_device(rossl::rossl_runtime::config::DeviceSpec::Cpu)
            .unwrap();
    let message = match Assembly::build(resolved, cpu) {
        Ok(_) => panic!("TRADES under the standard regime was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("`trades`") && message.contains("train.regime = \"pgd\""),
        "{message}"
    );
}

#[test]
fn the_target_network_averages_the_encoder_with_byol_s_momentum() {
    let dir = temp_dir("target-ema");
    let asm = assemble(
        &dir,
        &[
            "loss.terms=[{ name = \"byol\" }]",
            "loss.byol.hidden=8",
            "train.target.momentum=0.9",
        ],
    );
    let target = TargetNetwork::new(&asm, 10).unwrap();
    // tau(k) = 1 - (1 - 0.9) (cos(pi k / 10) + 1) / 2: 0.9 at the first step, 1 at the end
    assert!((target.momentum(0) - 0.9).abs() < 1e-12);
    assert!((target.momentum(5) - 0.95).abs() < 1e-12);
    assert!((target.momentum(10) - 1.0).abs() < 1e-12);
    // copies: the target's variables are updated in place
    let before: Vec<(String, Tensor)> = encoder_tensors(target.encoder())
        .into_iter()
        .map(|(n, t)| (n, t.copy().unwrap()))
        .collect();
    assert_eq!(
        before.len(),
        encoder_tensors(asm.encoder.as_ref()).len(),
        "a copy of the encoder"
    );
    // move the online encoder: one step of its optimiser on a batch
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let ctx = StepContext {
        target: Some(&target.embed(&x).unwrap()),
        ..step_context(&asm)
    };
    regimes::standard(&ctx, &mut optimizer, &x, 0.5, &mut Passes::default()).unwrap();
    target.update(asm.encoder.as_ref(), 5).unwrap();
    let online: std::collections::HashMap<String, Tensor> =
        encoder_tensors(asm.encoder.as_ref()).into_iter().collect();
    let parameters: Vec<String> = asm
        .encoder
        .parameters()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let mut moved = 0;
    for ((name, old), (_, new)) in before.iter().zip(encoder_tensors(target.encoder())) {
        let expected = if parameters.contains(name) {
            // theta' <- 0.95 theta' + 0.05 theta
            ((old * 0.95).unwrap() + (&online[name] * 0.05).unwrap()).unwrap()
        } else {
            // buffers are the target's own (its forward pass in training mode), not averaged
            new.clone()
        };
        assert!(
            common::max_abs_diff(&new, &expected) < 1e-6,
            "`{name}` is not the average"
        );
        moved += usize::from(common::max_abs_diff(&new, old) > 0.0);
    }
    assert!(moved > 0, "the average moved nothing");
}

#[test]
fn a_frozen_teacher_stays_bit_identical_while_its_student_trains() {
    use rossl::rossl_runtime::checkpoint;
    use rossl::rossl_runtime::run_dir::{files, RunDir};
    // the teacher: a finished run
    let teacher = assemble(&temp_dir("teacher-run"), &[]);
    let run_dir = RunDir::for_config(&teacher.config).unwrap();
    run_dir.create().unwrap();
    rossl::rossl_runtime::train::train(&teacher, &run_dir, None).unwrap();
    // as `rossl run` leaves it
    let config = teacher.config.to_toml(true).unwrap();
    run_dir.write(files::CONFIG, &config).unwrap();
    let from = format!(
        "train.target.from={:?}",
        run_dir.path().display().to_string()
    );
    let student = assemble(
        &temp_dir("teacher-student"),
        &[
            "loss.terms=[{ name = \"deacl\" }]",
            "train.regime=\"pgd\"",
            &from,
        ],
    );
    let target = TargetNetwork::for_run(&student, 3).unwrap();
    assert!(target.is_frozen());
    // it is the finished run's encoder
    let ckpt = checkpoint::load(&run_dir.file(files::CHECKPOINT), &Device::Cpu).unwrap();
    let before: Vec<(String, Tensor)> = encoder_tensors(target.encoder())
        .into_iter()
        .map(|(n, t)| (n, t.copy().unwrap()))
        .collect();
    for (name, t) in &before {
        assert_eq!(common::max_abs_diff(t, &ckpt.tensors[name]), 0.0, "{name}");
    }
    // three PGD steps of the student, the teacher "updated" after each as the trainer does
    let mut optimizer = SgdLars::new(student.encoder.parameters(), &student.config.run.optim);
    let attack =
        registry::build::<dyn Attack>("pgd-linf", "steps = 2", &BuildContext::cpu(0)).unwrap();
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let online_before = encoder_tensors(student.encoder.as_ref())[0]
        .1
        .copy()
        .unwrap();
    for k in 0..3 {
        let teacher_embedding = target.embed(&x).unwrap();
        let ctx = StepContext {
            target: Some(&teacher_embedding),
            ..step_context(&student)
        };
        let (outcome, _) = pgd_once(
            &ctx,
            &mut optimizer,
            attack.as_ref(),
            [0.0, 1.0],
            (&x, 0.5, k),
        );
        assert!(outcome.loss.is_finite());
        target.update(student.encoder.as_ref(), k as usize).unwrap();
    }
    for ((name, old), (_, new)) in before.iter().zip(encoder_tensors(target.encoder())) {
        assert_eq!(
            common::max_abs_diff(old, &new),
            0.0,
            "the teacher's `{name}` changed"
        );
    }
    let online_after = &encoder_tensors(student.encoder.as_ref())[0].1;
    assert!(
        common::max_abs_diff(&online_before, online_after) > 0.0,
        "the student did not train"
    );
    assert!(
        target.tensors().is_empty(),
        "a frozen teacher is not checkpointed"
    );
}
