//! `robust-linear-probe`: adversarial linear fine-tuning (ALF). The head is first trained on clean
//! features, then on PGD examples made end to end through the frozen encoder and the current head
//! (the reference: PGD eps 8/255, step 0.01, 5 steps, training on adversarial examples only).

use crate::linear::LinearClassifier;
use crate::training::{train_on_features, HeadOptimizer, HeadTraining, LinearHead};
use rossl_api::batch::image_batch;
use rossl_api::components::{BuildContext, Classifier, Evaluator, FitContext};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::{cross_entropy, extract_features, labels_tensor};
use std::path::PathBuf;

rossl_api::params! {
    /// Parameters of `robust-linear-probe`.
    pub struct RobustProbeParams {
        /// Optimiser (`adam` or `sgd`).
        pub optimizer: String = "adam".into(),
        /// Learning rate.
        pub lr: f64 = 3e-4,
        /// Epochs on clean features first.
        pub clean_epochs: usize = 5,
        /// Epochs on adversarial examples.
        pub adversarial_epochs: usize = 5,
        /// Batch size.
        pub batch_size: usize = 256,
        /// Radius of the training attack.
        pub eps: f64 = 8.0 / 255.0,
        /// Step of the training attack.
        pub step: f64 = 0.01,
        /// Steps of the training attack.
        pub steps: usize = 5,
        /// Random start of the training attack.
        pub random_start: bool = false,
    }
}

impl RobustProbeParams {
    fn training(&self, epochs: usize) -> HeadTraining {
        HeadTraining {
            optimizer: self.optimizer.clone(),
            lr: self.lr,
            epochs,
            batch_size: self.batch_size,
            weight_decay: 0.0,
        }
    }
}

impl Params for RobustProbeParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        self.training(1).validate()?;
        if !(self.eps >= 0.0 && self.step >= 0.0) {
            return Err(ParamError::new("eps", "radius and step must be >= 0"));
        }
        Ok(())
    }
}

/// The robust probe.
pub struct RobustProbe {
    params: RobustProbeParams,
}

impl Evaluator for RobustProbe {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let p = &self.params;
        let mut rng = Rng::new(ctx.seed);
        let head = LinearHead::new(
            ctx.encoder.feature_dim(),
            ctx.train.classes,
            &mut rng,
            ctx.device,
        )?;
        if p.clean_epochs > 0 {
            let features = extract_features(ctx.encoder, ctx.train, p.batch_size, ctx.device)?;
            train_on_features(
                &head,
                &features,
                &ctx.train.labels,
                &p.training(p.clean_epochs),
                &mut rng,
            )?;
        }
        let build = BuildContext {
            device: ctx.device.clone(),
            seed: ctx.seed,
            input: None,
            base_dir: PathBuf::from("."),
            feature_dim: None,
            projection_dim: None,
        };
        use toml::Value::{Boolean, Float, Integer};
        let attack_params: toml::Table = [
            ("eps".to_string(), Float(p.eps)),
            ("step".to_string(), Float(p.step)),
            ("steps".to_string(), Integer(p.steps as i64)),
            ("random_start".to_string(), Boolean(p.random_start)),
        ]
        .into_iter()
        .collect();
        let attack = rossl_api::registry::build_from_table::<dyn rossl_api::components::Attack>(
            "pgd-linf",
            attack_params,
            "`robust-linear-probe`'s training attack",
            &build,
        )?;
        let mut optimizer = HeadOptimizer::new(
            &p.training(p.adversarial_epochs),
            &head,
            p.adversarial_epochs,
        )?;
        let started = std::time::Instant::now();
        for epoch in 0..p.adversarial_epochs {
            tracing::info!(
                "robust-linear-probe: adversarial epoch {}/{}, {:.1} s",
                epoch + 1,
                p.adversarial_epochs,
                started.elapsed().as_secs_f64()
            );
            let order = rng.permutation(ctx.train.len());
            for part in order.chunks(p.batch_size) {
                let (x, labels) = image_batch(ctx.train, part, ctx.device)?;
                let y = labels_tensor(&labels, ctx.device)?;
                let mut objective = |input: &candle_core::Tensor| -> Result<candle_core::Tensor> {
                    cross_entropy(&head.logits_detached(&ctx.encoder.features(input)?)?, &y)
                };
                let adversarial =
                    rossl_nn::on_pool(|| attack.perturb(&x, &mut objective, &mut rng))?;
                let features = ctx.encoder.features(&adversarial)?.detach();
                let loss = cross_entropy(&head.logits(&features)?, &y)?.mean_all()?;
                optimizer.step(&loss, epoch)?;
            }
        }
        Ok(Box::new(LinearClassifier {
            encoder: ctx.encoder,
            head,
        }))
    }
}

rossl_api::register! {
    kind: evaluator,
    name: "robust-linear-probe",
    summary: "adversarial linear fine-tuning: head trained on PGD examples through the frozen encoder",
    params: RobustProbeParams,
    build: |p, _ctx| Ok(Box::new(RobustProbe { params: p })),
}
