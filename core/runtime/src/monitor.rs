//! The online monitor: during training, a linear probe's clean and PGD accuracy on a held-out
//! labelled slice of the training split, every `train.monitor.every` steps.
//!
//! solo-learn trains its online linear probe on every batch; rossl, whose training batches carry
//! no labels, fits a fresh `linear-probe` (the registered evaluator) on detached features of half
//! of the slice at each report, and measures it on the other half, clean and under `pgd-linf`
//! (random start, step eps/4) through the frozen encoder. A robust accuracy that collapses within
//! a few reports is the signature of catastrophic overfitting in free or single-step training.

use crate::assembly::Assembly;
use crate::config::MonitorConfig;
use crate::eval::{fraction, predict, AttackRun, PlannedAttack};
use crate::run_dir::MonitorRecord;
use crate::train::{load_split, StepObserver};
use crate::Result;
use rossl_api::batch::image_batch;
use rossl_api::components::{
    AttackLoss, BuildContext, Encoder, Evaluator, FitContext, FrozenEncoder, ImageSet,
    PresetAttack, Split, Stage,
};
use rossl_api::registry;
use rossl_api::rng::{stream, Rng};
use std::time::Instant;

/// The monitor's random sub-streams: the second counter of every `Rng::derive` path under
/// `stream::MONITOR`. Their values are part of every monitored run's metrics: changing one
/// changes the numbers.
mod substream {
    /// The images the monitor fits and measures on (`[MONITOR, IMAGES]`).
    pub const IMAGES: u64 = 0;
    /// The probe's fit at each report (`[MONITOR, FIT, step]`).
    pub const FIT: u64 = 1;
    /// The prediction draw per batch (`[MONITOR, PREDICTION, step, batch]`).
    pub const PREDICTION: u64 = 2;
    /// The attack's randomness per batch (`[MONITOR, ATTACK, step, batch]`).
    pub const ATTACK: u64 = 3;
}

/// The monitor of a run.
pub struct Monitor {
    config: MonitorConfig,
    fit: ImageSet,
    measure: ImageSet,
    probe: Box<dyn Evaluator>,
    attack: PlannedAttack,
    seed: u64,
}

impl Monitor {
    /// The monitor of `asm`'s run (`train.monitor`), or `None` when it is off.
    pub fn for_run(asm: &Assembly) -> Result<Option<Self>> {
        let config = &asm.config.run.train.monitor;
        if config.every == 0 {
            return Ok(None);
        }
        let train_set = load_split(asm, Split::Train)?;
        Self::new(config, &train_set, asm.config.run.seed)
    }

    /// The monitor `config` asks for over `train_set`, or `None` when it is off.
    pub fn new(config: &MonitorConfig, train_set: &ImageSet, seed: u64) -> Result<Option<Self>> {
        if config.every == 0 {
            return Ok(None);
        }
        let mut rng = Rng::derive(seed, &[stream::MONITOR, substream::IMAGES]);
        let slice = train_set.balanced_subset(config.images.min(train_set.len()), &mut rng);
        let order = rng.permutation(slice.len());
        let (fit, measure) = order.split_at(slice.len() / 2);
        let ctx = BuildContext::cpu(seed);
        let probe = registry::build::<dyn Evaluator>(
            "linear-probe",
            &format!("epochs = {}", config.probe_epochs),
            &ctx,
        )?;
        let params: toml::Table = [
            ("eps", toml::Value::Float(config.eps)),
            ("step", toml::Value::Float((config.eps / 4.0).max(1e-6))),
            ("steps", toml::Value::Integer(config.steps.max(1) as i64)),
            ("random_start", toml::Value::Boolean(true)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let attack = PlannedAttack::build(
            PresetAttack {
                label: "monitor pgd-linf/ce".into(),
                attack: "pgd-linf".into(),
                loss: AttackLoss::CrossEntropy,
                params,
                stage: Stage::AllPoints,
                targets: 0,
            },
            "`train.monitor`",
            &ctx,
        )?;
        Ok(Some(Monitor {
            config: config.clone(),
            fit: slice.select(fit),
            measure: slice.select(measure),
            probe,
            attack,
            seed,
        }))
    }

    /// Whether a report is due after optimiser step `step`.
    pub fn due(&self, step: usize) -> bool {
        step.is_multiple_of(self.config.every)
    }

    /// Fits the probe on the encoder as it is now and measures it.
    pub fn report(&self, encoder: &dyn Encoder, step: usize) -> Result<MonitorRecord> {
        let started = Instant::now();
        let device = candle_core::Device::Cpu;
        let device = match encoder.parameters().first() {
            Some(p) => p.var.device().clone(),
            None => device,
        };
        let fit = FitContext {
            encoder: FrozenEncoder::new(encoder),
            train: &self.fit,
            device: &device,
            seed: Rng::derive(self.seed, &[stream::MONITOR, substream::FIT, step as u64])
                .next_u64(),
            copy_encoder: None,
        };
        let classifier = self.probe.fit(&fit)?;
        let rows: Vec<usize> = (0..self.measure.len()).collect();
        let (mut clean, mut robust) = (Vec::new(), Vec::new());
        for (b, part) in rows.chunks(256).enumerate() {
            let (x, labels) = image_batch(&self.measure, part, &device)?;
            let prediction = Rng::derive(
                self.seed,
                &[
                    stream::MONITOR,
                    substream::PREDICTION,
                    step as u64,
                    b as u64,
                ],
            );
            let predicted = predict(classifier.as_ref(), &x, &prediction)?;
            clean.extend(predicted.iter().zip(&labels).map(|(p, l)| p == l));
            let run = AttackRun {
                classifier: classifier.as_ref(),
                eot_samples: 1,
                draws: prediction.clone(),
                attack_rng: Rng::derive(
                    self.seed,
                    &[stream::MONITOR, substream::ATTACK, step as u64, b as u64],
                ),
                prediction_rng: prediction,
            };
            robust.extend(run.run(&self.attack, &x, &labels)?.0);
        }
        Ok(MonitorRecord {
            step,
            clean: fraction(&clean),
            pgd: fraction(&robust),
            eps: self.config.eps,
            images: self.measure.len(),
            seconds: started.elapsed().as_secs_f64(),
            train_seconds: 0.0,
        })
    }
}

impl StepObserver for Monitor {
    fn after_step(&mut self, encoder: &dyn Encoder, step: usize) -> Result<Option<MonitorRecord>> {
        if !self.due(step) {
            return Ok(None);
        }
        let record = self.report(encoder, step)?;
        tracing::info!(
            "monitor at step {step}: clean {:.4}, PGD-{} at eps {} {:.4} ({:.1} s)",
            record.clean,
            self.config.steps,
            crate::run_dir::eps_label(record.eps),
            record.pgd,
            record.seconds
        );
        Ok(Some(record))
    }
}
