//! The training loop.

use super::metrics::{MetricsWriter, StepRecord};
use super::regimes::{self, FreeState, Passes, StepContext, StepOutcome};
use super::state::{encoder_tensors, restore_encoder};
use crate::assembly::Assembly;
use crate::checkpoint::{self, Checkpoint, TrainingState};
use crate::config::{Regime, RunConfig, ScheduleHorizon};
use crate::data::{Loader, LoaderSettings};
use crate::run_dir::{files, RunDir};
use crate::{Error, Result};
use rossl_api::components::{ImageSet, Mode, Split};
use rossl_api::rng::{stream, Rng};
use rossl_nn::optim::{LrSchedule, SgdLars};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// How long a run trains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainPlan {
    /// Passes over the data: N for standard and PGD, ceil(N / m) for free training.
    pub passes: usize,
    /// Batches per pass.
    pub batches_per_pass: usize,
    /// Optimiser steps per batch (m for free training, else 1).
    pub steps_per_batch: usize,
    /// Every optimiser step the run takes.
    pub total_steps: usize,
    /// The learning-rate schedule's horizon.
    pub horizon: usize,
}

/// The plan of `config` with `batches_per_pass` batches per pass over the data.
pub fn plan(config: &RunConfig, batches_per_pass: usize) -> TrainPlan {
    let train = &config.train;
    let (passes, steps_per_batch) = match train.regime {
        Regime::Free => (
            train.epochs.div_ceil(train.free.replays),
            train.free.replays,
        ),
        _ => (train.epochs, 1),
    };
    let total_steps = passes * batches_per_pass * steps_per_batch;
    let horizon = match config.optim.horizon {
        ScheduleHorizon::AllSteps => total_steps,
        ScheduleHorizon::Batches => passes * batches_per_pass,
    };
    TrainPlan {
        passes,
        batches_per_pass,
        steps_per_batch,
        total_steps,
        horizon,
    }
}

/// What training did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    /// The method's name.
    pub method: String,
    /// The regime.
    pub regime: String,
    /// The plan that was followed.
    pub plan: TrainPlan,
    /// The budget N in standard epochs (`train.epochs`).
    pub epochs_budget: usize,
    /// Passes over the data made.
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Encoder forward passes.
    pub forward_passes: u64,
    /// Encoder backward passes.
    pub backward_passes: u64,
    /// Wall-clock seconds of training: from the first batch request to the last optimiser step
    /// (checkpoints included, evaluation not), summed over resumed sessions.
    pub seconds: f64,
    /// The part of `seconds` spent waiting for the loader's batches.
    #[serde(default)]
    pub loader_wait_seconds: f64,
    /// The objective at the last step.
    pub final_loss: Option<f64>,
    /// Views processed per second, over the whole run.
    pub images_per_s: f64,
    /// The device.
    pub device: String,
    /// `false` when training stopped early as asked (the run can be resumed).
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

impl TrainSummary {
    /// Passes over the data completed (fewer than planned when stopped early).
    pub fn epochs_done(&self) -> usize {
        if self.plan.batches_per_pass == 0 || self.plan.steps_per_batch == 0 {
            return self.epochs;
        }
        self.steps / (self.plan.batches_per_pass * self.plan.steps_per_batch)
    }
}

/// Loads the split of the configured dataset, with its class-balanced subset if configured.
pub fn load_split(asm: &Assembly, split: Split) -> Result<ImageSet> {
    let set = asm.dataset.load(split)?;
    let size = match split {
        Split::Train => asm.config.run.data.train_subset,
        Split::Test => asm.config.run.data.test_subset,
    };
    if size == 0 {
        return Ok(set);
    }
    let split_id = match split {
        Split::Train => 0,
        Split::Test => 1,
    };
    let mut rng = Rng::derive(asm.config.run.seed, &[stream::SUBSET, split_id]);
    Ok(set.balanced_subset(size, &mut rng))
}

struct Loop<'a> {
    asm: &'a Assembly,
    run_dir: &'a RunDir,
    optimizer: SgdLars,
    schedule: LrSchedule,
    free: FreeState,
    passes: Passes,
    steps: usize,
    seconds: f64,
    loader_wait: f64,
    metrics: MetricsWriter,
    config_text: String,
    last_loss: Option<f64>,
    images: u64,
}

impl Loop<'_> {
    fn checkpoint(&self, epochs_done: usize, complete: bool) -> Result<()> {
        let mut tensors = encoder_tensors(self.asm.encoder.as_ref());
        tensors.extend(self.optimizer.state());
        if let Some(delta) = &self.free.delta {
            tensors.push(("free.delta".into(), delta.clone()));
        }
        let state = TrainingState {
            epochs_done,
            steps: self.steps,
            forward_passes: self.passes.forward,
            backward_passes: self.passes.backward,
            train_seconds: self.seconds,
            loader_wait_seconds: self.loader_wait,
            complete,
            rossl_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        checkpoint::save(
            &self.run_dir.file(files::CHECKPOINT),
            &tensors,
            &self.config_text,
            &state,
        )
    }

    fn record(
        &mut self,
        outcome: &StepOutcome,
        epoch: usize,
        batch: usize,
        images_per_s: f64,
    ) -> Result<()> {
        let record = StepRecord {
            kind: "step".into(),
            step: self.steps,
            epoch,
            batch,
            loss: outcome.loss,
            terms: outcome.terms.iter().cloned().collect(),
            lr: outcome.report.lr,
            grad_norm: outcome.report.grad_norm,
            perturbation_linf: outcome.perturbation.map(|p| p.0),
            perturbation_l2: outcome.perturbation.map(|p| p.1),
            images_per_s,
            forward_passes: self.passes.forward,
            backward_passes: self.passes.backward,
            seconds: self.seconds,
        };
        self.metrics.write(&record)
    }
}

/// Options of a training call that are not part of the run's configuration.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Stop (as if interrupted) after this many passes over the data in total; the run can be
    /// continued with `--resume`.
    pub stop_after_passes: Option<usize>,
}

/// Trains `asm.encoder` as its configuration says, writing metrics and checkpoints into `run_dir`,
/// continuing from `resume` when given. A NaN or infinite loss stops the run with an error; the
/// last checkpoint (end of the last complete epoch) is kept.
pub fn train(
    asm: &Assembly,
    run_dir: &RunDir,
    resume: Option<&Checkpoint>,
) -> Result<TrainSummary> {
    train_with(asm, run_dir, resume, &TrainOptions::default())
}

/// [`train`] with options.
pub fn train_with(
    asm: &Assembly,
    run_dir: &RunDir,
    resume: Option<&Checkpoint>,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let run = &asm.config.run;
    let train_set = Arc::new(load_split(asm, Split::Train)?);
    let workers = if run.data.workers == 0 {
        rayon::current_num_threads()
    } else {
        run.data.workers
    };
    let loader = Loader::new(
        train_set.clone(),
        asm.views.clone(),
        LoaderSettings {
            batch_size: run.data.batch_size,
            workers,
            prefetch: run.data.prefetch,
            seed: run.seed,
            max_batches: run.train.max_batches,
        },
    )?;
    let plan = plan(run, loader.batches_per_epoch());
    let views = loader.views_per_image();
    let mut optimizer = SgdLars::new(asm.encoder.parameters(), &run.optim);
    let mut free = FreeState {
        delta: None,
        eps: run.train.free.eps,
        step: run.train.free.step,
        clamp_input: run.train.free.clamp_input,
    };
    let mut start_epoch = 0;
    let mut passes = Passes::default();
    let (mut steps, mut seconds, mut loader_wait) = (0, 0.0, 0.0);
    if let Some(ckpt) = resume {
        restore_encoder(asm.encoder.as_ref(), &ckpt.tensors)?;
        optimizer.load_state(&|name| ckpt.tensors.get(name).cloned())?;
        free.delta = ckpt.tensors.get("free.delta").cloned();
        start_epoch = ckpt.state.epochs_done;
        steps = ckpt.state.steps;
        passes = Passes {
            forward: ckpt.state.forward_passes,
            backward: ckpt.state.backward_passes,
        };
        seconds = ckpt.state.train_seconds;
        loader_wait = ckpt.state.loader_wait_seconds;
        tracing::info!(
            epoch = start_epoch,
            step = steps,
            "resuming from the checkpoint"
        );
    }
    let metrics =
        MetricsWriter::open(&run_dir.file(files::METRICS), resume.map(|c| c.state.steps))?;
    let mut state = Loop {
        asm,
        run_dir,
        schedule: LrSchedule::new(&run.optim, plan.horizon),
        optimizer,
        free,
        passes,
        steps,
        seconds,
        loader_wait,
        metrics,
        config_text: asm.config.to_toml(false)?,
        last_loss: None,
        images: 0,
    };
    if plan.total_steps == 0 {
        state.checkpoint(plan.passes, true)?;
    }
    let ctx = StepContext {
        encoder: asm.encoder.as_ref(),
        objective: &asm.objective,
        views,
    };
    let attack_mode = if run.train.pgd.attack_updates_bn_stats {
        Mode::Train
    } else {
        Mode::Attack
    };
    tracing::info!(
        method = %run.method.name,
        regime = %run.train.regime,
        passes = plan.passes,
        batches = plan.batches_per_pass,
        steps = plan.total_steps,
        device = %asm.device.description,
        "training: {} images x {views} views, {} steps",
        train_set.len(),
        plan.total_steps
    );
    let mut bar = crate::progress::bar(plan.total_steps as u64, "train");
    bar.set_position(state.steps as u64);
    // wall-clock time from the first batch request on, added to what earlier sessions spent
    let run_start = Instant::now();
    let earlier_seconds = state.seconds;
    let end = options
        .stop_after_passes
        .map_or(plan.passes, |n| n.min(plan.passes));
    for epoch in start_epoch..end {
        let mut epoch_loss = 0.0;
        let mut epoch_steps = 0usize;
        let mut batches = loader.epoch(epoch);
        loop {
            let requested = Instant::now();
            let Some(batch) = batches.next() else {
                break;
            };
            state.loader_wait += requested.elapsed().as_secs_f64();
            let started = Instant::now();
            let x = batch.tensor(&asm.device.device)?;
            let outcomes = match run.train.regime {
                Regime::Standard => {
                    let lr = state.schedule.lr(state.steps);
                    vec![regimes::standard(
                        &ctx,
                        &mut state.optimizer,
                        &x,
                        lr,
                        &mut state.passes,
                    )]
                }
                Regime::Pgd => {
                    let lr = state.schedule.lr(state.steps);
                    let attack = asm
                        .train_attack
                        .as_deref()
                        .ok_or_else(|| Error::msg("the pgd regime has no attack"))?;
                    let mut rng = Rng::derive(run.seed, &[stream::ATTACK, state.steps as u64]);
                    vec![regimes::pgd(
                        &ctx,
                        &mut state.optimizer,
                        attack,
                        attack_mode,
                        &x,
                        lr,
                        &mut rng,
                        &mut state.passes,
                    )]
                }
                Regime::Free => {
                    let mut out = Vec::new();
                    for replay in 0..plan.steps_per_batch {
                        let lr = state.schedule.lr(state.steps + replay);
                        let outcome = regimes::free_replay(
                            &ctx,
                            &mut state.optimizer,
                            &mut state.free,
                            &x,
                            lr,
                            &mut state.passes,
                        );
                        let failed = outcome.is_err();
                        out.push(outcome);
                        if failed {
                            break;
                        }
                    }
                    out
                }
            };
            let per_step = started.elapsed().as_secs_f64() / outcomes.len().max(1) as f64;
            for outcome in outcomes {
                let outcome = outcome
                    .map_err(|e| stopped(e, epoch, batch.index, state.steps + 1, run_dir, epoch))?;
                state.steps += 1;
                state.seconds = earlier_seconds + run_start.elapsed().as_secs_f64();
                state.images += (batch.views * batch.batch) as u64;
                let images_per_s = (batch.views * batch.batch) as f64 / per_step.max(1e-9);
                epoch_loss += outcome.loss;
                epoch_steps += 1;
                state.last_loss = Some(outcome.loss);
                if state.steps.is_multiple_of(run.train.log_every)
                    || state.steps == plan.total_steps
                {
                    state.record(&outcome, epoch, batch.index, images_per_s)?;
                }
                bar.set_message(format!(
                    "loss {:.4} | {:.0} img/s | pass {}/{}",
                    outcome.loss,
                    images_per_s,
                    epoch + 1,
                    plan.passes
                ));
                bar.inc(1);
            }
        }
        state.checkpoint(epoch + 1, epoch + 1 == plan.passes)?;
        let mean = epoch_loss / epoch_steps.max(1) as f64;
        state.metrics.write(&serde_json::json!({
            "kind": "epoch", "epoch": epoch, "step": state.steps, "mean_loss": mean,
            "forward_passes": state.passes.forward, "backward_passes": state.passes.backward,
            "seconds": state.seconds, "loader_wait_seconds": state.loader_wait,
        }))?;
        tracing::info!(
            "pass {}/{}: mean loss {mean:.4}, {} steps, {:.1} s",
            epoch + 1,
            plan.passes,
            state.steps,
            state.seconds
        );
    }
    bar.finish();
    let complete = end == plan.passes;
    let wall = run_start.elapsed().as_secs_f64();
    let summary = TrainSummary {
        method: run.method.name.clone(),
        regime: run.train.regime.to_string(),
        epochs_budget: run.train.epochs,
        epochs: plan.passes,
        steps: state.steps,
        forward_passes: state.passes.forward,
        backward_passes: state.passes.backward,
        seconds: state.seconds,
        loader_wait_seconds: state.loader_wait,
        final_loss: state.last_loss,
        images_per_s: if wall > 0.0 {
            state.images as f64 / wall
        } else {
            0.0
        },
        device: asm.device.description.clone(),
        complete,
        plan,
    };
    if !complete {
        tracing::info!(
            "stopped after {end} of {} passes as asked; continue with `rossl run --resume {}`",
            summary.plan.passes,
            run_dir.path().display()
        );
        return Ok(summary);
    }
    run_dir.write(
        files::SUMMARY,
        &serde_json::to_string_pretty(&summary).map_err(|e| Error::msg(e.to_string()))?,
    )?;
    Ok(summary)
}

fn stopped(
    error: Error,
    epoch: usize,
    batch: usize,
    step: usize,
    run_dir: &RunDir,
    epochs_done: usize,
) -> Error {
    let kept = if epochs_done == 0 {
        "no checkpoint had been written yet".to_string()
    } else {
        format!(
            "the last good checkpoint, after {epochs_done} pass(es), is kept at {}",
            run_dir.file(files::CHECKPOINT).display()
        )
    };
    match error {
        Error::Numerical(message) => Error::Numerical(format!(
            "{message} at pass {}, batch {batch}, step {step}; training stopped and {kept}",
            epoch + 1
        )),
        other => Error::msg(format!(
            "training stopped at pass {}, batch {batch}, step {step} ({kept}): {other}",
            epoch + 1
        )),
    }
}
