//! Dual batch norm under the regimes: a PGD step runs its clean views through the clean branch,
//! its attack and its perturbed views through the adversarial branch.

mod common;
use candle_core::{Device, Tensor};
use common::{assemble, temp_dir};
use rossl::rossl_api::components::{Attack, BuildContext, Mode};
use rossl::rossl_api::registry;
use rossl::rossl_api::rng::Rng;
use rossl::rossl_nn::optim::SgdLars;
use rossl::rossl_runtime::assembly::Assembly;
use rossl::rossl_runtime::train::regimes::{self, Passes, PgdStep};

/// TINY under the `pgd` regime with ACL's clean weight and dual batch norm.
fn dual_acl(name: &str) -> Assembly {
    let dual = [
        "train.regime=\"pgd\"",
        "train.pgd.clean_weight=1",
        "encoder.resnet-small.dual_batch_norm=true",
    ];
    let asm = assemble(&temp_dir(name), &dual);
    assert!(asm.encoder.dual_batch_norm());
    asm
}

/// One PGD step of `asm` (attack passes in `attack_mode`, weights 1 and 1) on `x` with an
/// attack of `steps` steps: the perturbed views it trained on.
fn pgd_step_on(asm: &Assembly, x: &Tensor, attack: &str, attack_mode: Mode) -> Tensor {
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &asm.config.run.optim);
    let attack = registry::build::<dyn Attack>("pgd-linf", attack, &BuildContext::cpu(0)).unwrap();
    let ctx = common::step_context(asm);
    let step = PgdStep {
        attack: attack.as_ref(),
        attack_mode,
        clean_weight: 1.0,
        adversarial_weight: 1.0,
    };
    let mut passes = Passes::default();
    let outcome = regimes::pgd(
        &ctx,
        &mut optimizer,
        &step,
        (x, 0.1),
        &mut Rng::new(5),
        &mut passes,
    )
    .unwrap();
    outcome.input.unwrap()
}

/// ACL's dual stream: with dual batch norm, a PGD step's clean views update the clean branch's
/// running statistics and its perturbed views the adversarial branch's, each as a
/// single-batch-norm encoder of the same seed that ran those views alone. Fails if the regime
/// runs both streams through one branch.
#[test]
fn a_dual_batch_norm_pgd_step_routes_clean_and_perturbed_views_to_their_branches() {
    let dir = temp_dir("pgd-dual-bn-single");
    let asm = dual_acl("pgd-dual-bn");
    let x = Tensor::rand(0f32, 1f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    let perturbed = pgd_step_on(&asm, &x, "steps = 2", Mode::Attack);
    let statistics_after = |views: &Tensor| {
        let single = assemble(&dir, &[]);
        single.encoder.forward(views, Mode::Train).unwrap();
        single.encoder.buffers()
    };
    let mut compared = 0;
    for (views, prefix) in [(&x, ""), (&perturbed, ".adversarial")] {
        for reference in statistics_after(views) {
            let (site, stat) = reference.name.rsplit_once('.').unwrap();
            let name = format!("{site}{prefix}.{stat}");
            let dual = asm.encoder.buffers().into_iter().find(|b| b.name == name);
            let dual = dual.unwrap_or_else(|| panic!("no buffer `{name}`"));
            let f32_of = |v: &candle_core::Var| v.to_dtype(candle_core::DType::F32).unwrap();
            let d = common::max_abs_diff(&f32_of(&dual.var), &f32_of(&reference.var));
            assert!(
                d < 1e-5,
                "`{name}` differs by {d} from its stream's statistics"
            );
            compared += 1;
        }
    }
    assert_eq!(
        compared,
        2 * 3 * 8,
        "two branches of 8 batch norms, 3 buffers each"
    );
}

/// The training attack runs through the adversarial branch: with that branch's first batch norm
/// zeroed (scale and shift 0), the encoder's output on the adversarial branch does not depend on
/// the input, so a PGD without a random start cannot move; zeroing the clean branch's instead
/// leaves the attack free to move. Fails if the attack's passes ran through the clean branch.
#[test]
fn the_training_attack_runs_through_the_adversarial_branch() {
    let x = Tensor::rand(0.2f32, 0.8f32, (32, 1, 12, 12), &Device::Cpu).unwrap();
    for (zeroed, moves) in [
        ("backbone.bn1.adversarial.", false),
        ("backbone.bn1.", true),
    ] {
        let asm = dual_acl(&format!("pgd-dual-attack-{moves}"));
        for p in asm.encoder.parameters() {
            if p.name == format!("{zeroed}weight") || p.name == format!("{zeroed}bias") {
                p.var.set(&p.var.zeros_like().unwrap()).unwrap();
            }
        }
        let attack = "steps = 3\nrandom_start = false";
        let perturbed = pgd_step_on(&asm, &x, attack, Mode::Eval);
        let moved = common::max_abs_diff(&perturbed, &x);
        assert_eq!(
            moved > 0.0,
            moves,
            "{zeroed} zeroed: the attack moved by {moved}"
        );
    }
}
