//! The training loop: a plan of passes over the data, each batch stepped as the regime says,
//! metrics and a checkpoint after every pass, a clear stop on a NaN loss.

use super::encoder_tensors::{
    encoder_tensors, init_encoder_from, loss_tensors, restore_encoder, restore_loss,
};
use super::options::{StepObserver, TrainOptions};
use super::regimes::{FreeState, Passes, StepOutcome};
use super::splits::TrainingData;
use super::target::TargetNetwork;
use crate::assembly::Assembly;
use crate::checkpoint::{self, Checkpoint, TrainingState};
use crate::config::Scheduled;
use crate::loader::{Loader, ViewBatch};
use crate::progress::Progress;
use crate::run_dir::{
    files, EpochRecord, MetricsRecord, MetricsWriter, RunDir, StepRecord, TrainPlan, TrainSummary,
};
use crate::{Error, Result};
use candle_core::Tensor;
use rossl_nn::optim::{LrSchedule, SgdLars};
use std::time::Instant;

mod steps;

/// The state of a training run between steps.
struct Loop<'a> {
    asm: &'a Assembly,
    run_dir: &'a RunDir,
    plan: TrainPlan,
    optimizer: SgdLars,
    schedule: LrSchedule,
    free: FreeState,
    passes: Passes,
    steps: usize,
    start_epoch: usize,
    seconds: f64,
    loader_wait: f64,
    metrics: MetricsWriter,
    config_text: String,
    last_loss: Option<f64>,
    images: u64,
    /// Wall-clock start of this session, and the seconds earlier sessions spent (less the time
    /// the observer took).
    clock: (Instant, f64),
    /// Seconds the observer took in all.
    observer_seconds: f64,
    /// The target network, when a loss term uses one.
    target: Option<TargetNetwork>,
    /// The values `train.anneal` schedules for the current pass, when it schedules any.
    scheduled: Option<Scheduled>,
}

/// The mean loss of the steps of one pass.
#[derive(Default)]
struct PassLoss {
    total: f64,
    steps: usize,
}

impl<'a> Loop<'a> {
    /// A loop for `plan`, from scratch or from the checkpoint `resume`.
    fn new(
        asm: &'a Assembly,
        run_dir: &'a RunDir,
        plan: TrainPlan,
        resume: Option<&Checkpoint>,
    ) -> Result<Self> {
        let run = &asm.config.run;
        let mut state = Loop {
            asm,
            run_dir,
            optimizer: SgdLars::new(trained_parameters(asm), &run.optim),
            schedule: LrSchedule::new(&run.optim, plan.horizon),
            plan,
            free: FreeState {
                delta: None,
                eps: run.train.free.eps,
                step: run.train.free.step,
                clamp_input: run.train.free.clamp_input,
                clean_weight: run.train.free.clean_weight,
                adversarial_weight: run.train.free.adversarial_weight,
            },
            passes: Passes::default(),
            steps: 0,
            start_epoch: 0,
            seconds: 0.0,
            loader_wait: 0.0,
            metrics: MetricsWriter::open(run_dir, resume.map(|c| c.state.steps))?,
            config_text: asm.config.to_toml(false)?,
            last_loss: None,
            images: 0,
            clock: (Instant::now(), 0.0),
            observer_seconds: 0.0,
            target: None,
            scheduled: None,
        };
        if asm.objective.uses_target() {
            let target = TargetNetwork::for_run(asm, state.plan.total_steps)?;
            if run.train.target.init_from_teacher && resume.is_none() {
                let teacher: std::collections::HashMap<String, Tensor> =
                    encoder_tensors(target.encoder()).into_iter().collect();
                init_encoder_from(asm.encoder.as_ref(), &teacher).map_err(|e| {
                    Error::Config(format!(
                        "`train.target.init_from_teacher`: the teacher's encoder does not fit this one: {e}"
                    ))
                })?;
            }
            state.target = Some(target);
        }
        if let Some(ckpt) = resume {
            state.restore(ckpt)?;
        }
        Ok(state)
    }

    /// Continues from a checkpoint: weights, optimiser, perturbation, counters.
    fn restore(&mut self, ckpt: &Checkpoint) -> Result<()> {
        restore_encoder(self.asm.encoder.as_ref(), &ckpt.tensors)?;
        restore_loss(&self.asm.objective, &ckpt.tensors)?;
        if let Some(target) = &self.target {
            target.restore(&ckpt.tensors)?;
        }
        self.optimizer
            .load_state(&|name| ckpt.tensors.get(name).cloned())?;
        self.free.delta = ckpt.tensors.get("free.delta").cloned();
        self.start_epoch = ckpt.state.epochs_done;
        self.steps = ckpt.state.steps;
        self.passes = Passes {
            forward: ckpt.state.forward_passes,
            backward: ckpt.state.backward_passes,
        };
        self.seconds = ckpt.state.train_seconds;
        self.loader_wait = ckpt.state.loader_wait_seconds;
        tracing::info!(
            epoch = self.start_epoch,
            step = self.steps,
            "resuming from the checkpoint"
        );
        Ok(())
    }

    fn checkpoint(&self, epochs_done: usize, complete: bool) -> Result<()> {
        let mut tensors = encoder_tensors(self.asm.encoder.as_ref());
        tensors.extend(loss_tensors(&self.asm.objective));
        if let Some(target) = &self.target {
            tensors.extend(target.tensors());
        }
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

    /// Counts, logs and reports one finished optimiser step.
    fn finish_step(
        &mut self,
        outcome: &StepOutcome,
        epoch: usize,
        batch: &ViewBatch,
        per_step: f64,
        bar: &mut Progress,
    ) -> Result<()> {
        self.steps += 1;
        self.seconds = self.clock.1 + self.clock.0.elapsed().as_secs_f64();
        let views = (batch.views * batch.batch) as u64;
        self.images += views;
        let images_per_s = views as f64 / per_step.max(1e-9);
        self.last_loss = Some(outcome.loss);
        if self
            .steps
            .is_multiple_of(self.asm.config.run.train.log_every)
            || self.steps == self.plan.total_steps
        {
            self.record(outcome, epoch, batch.index, images_per_s)?;
        }
        bar.set_message(format!(
            "loss {:.4} | {images_per_s:.0} img/s | pass {}/{}",
            outcome.loss,
            epoch + 1,
            self.plan.passes
        ));
        bar.inc(1);
        Ok(())
    }

    fn record(
        &mut self,
        outcome: &StepOutcome,
        epoch: usize,
        batch: usize,
        images_per_s: f64,
    ) -> Result<()> {
        let record = StepRecord {
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
        self.metrics.write(&MetricsRecord::Step(record))
    }

    /// Lets the observer look after the latest step; its line goes into the metrics and its time
    /// out of the training wall time.
    fn observe(&mut self, observer: &mut Option<&mut dyn StepObserver>) -> Result<()> {
        let Some(observer) = observer.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let line = observer.after_step(self.asm.encoder.as_ref(), self.steps)?;
        let took = started.elapsed().as_secs_f64();
        self.observer_seconds += took;
        self.clock.1 -= took;
        if let Some(mut record) = line {
            record.train_seconds = self.seconds;
            self.metrics.write(&MetricsRecord::Monitor(record))?;
        }
        Ok(())
    }

    /// One pass over the data: every batch stepped; the wait for each batch is counted.
    fn run_pass(
        &mut self,
        loader: &Loader,
        epoch: usize,
        bar: &mut Progress,
        observer: &mut Option<&mut dyn StepObserver>,
    ) -> Result<PassLoss> {
        let mut pass = PassLoss::default();
        self.begin_pass(epoch, loader.strength(epoch));
        let mut batches = loader.epoch(epoch);
        loop {
            if self.steps >= self.plan.total_steps {
                return Ok(pass);
            }
            let requested = Instant::now();
            let Some(batch) = batches.next() else {
                return Ok(pass);
            };
            self.loader_wait += requested.elapsed().as_secs_f64();
            let x = batch.tensor(&self.asm.device.device)?;
            let labels = if self.asm.objective.uses_labels() {
                Some(Tensor::new(
                    batch.labels.as_slice(),
                    &self.asm.device.device,
                )?)
            } else {
                None
            };
            // each step (each free-training replay) is timed, counted and recorded on its own
            for _ in 0..self.steps_for_batch() {
                let started = Instant::now();
                let outcome = self.step(&x, labels.as_ref()).map_err(|e| {
                    stopped(e, epoch, batch.index, self.steps + 1, self.run_dir, epoch)
                })?;
                let per_step = started.elapsed().as_secs_f64();
                self.finish_step(&outcome, epoch, &batch, per_step, bar)?;
                self.observe(observer)?;
                pass.total += outcome.loss;
                pass.steps += 1;
            }
        }
    }

    /// After a pass: the checkpoint, the pass's metrics line and log line.
    fn end_pass(&mut self, epoch: usize, pass: &PassLoss) -> Result<()> {
        self.checkpoint(epoch + 1, epoch + 1 == self.plan.passes)?;
        let mean = pass.total / pass.steps.max(1) as f64;
        self.metrics.write(&MetricsRecord::Epoch(EpochRecord {
            epoch,
            step: self.steps,
            mean_loss: mean,
            forward_passes: self.passes.forward,
            backward_passes: self.passes.backward,
            seconds: self.seconds,
            loader_wait_seconds: self.loader_wait,
            view_strength: self.scheduled.map(|s| s.view_strength),
            clean_weight: self.scheduled_weights().map(|w| w.0),
            adversarial_weight: self.scheduled_weights().map(|w| w.1),
        }))?;
        tracing::info!(
            "pass {}/{}: mean loss {mean:.4}, {} steps, {:.1} s{}",
            epoch + 1,
            self.plan.passes,
            self.steps,
            self.seconds,
            self.schedule_note()
        );
        Ok(())
    }

    /// What training did, `complete` when every planned pass was made.
    fn summary(self, complete: bool) -> TrainSummary {
        let run = &self.asm.config.run;
        let wall = self.clock.0.elapsed().as_secs_f64();
        TrainSummary {
            method: run.method.name.clone(),
            regime: run.train.regime,
            epochs_budget: run.train.epochs,
            epochs: self.plan.passes,
            steps: self.steps,
            forward_passes: self.passes.forward,
            backward_passes: self.passes.backward,
            seconds: self.seconds,
            loader_wait_seconds: self.loader_wait,
            monitor_seconds: self.observer_seconds,
            final_loss: self.last_loss,
            images_per_s: if wall > 0.0 {
                self.images as f64 / wall
            } else {
                0.0
            },
            device: self.asm.device.description.clone(),
            complete,
            plan: self.plan,
        }
    }
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
    train_observed(asm, run_dir, resume, options, None)
}

/// [`train_with`] with an observer called after every step (the online monitor).
pub fn train_observed(
    asm: &Assembly,
    run_dir: &RunDir,
    resume: Option<&Checkpoint>,
    options: &TrainOptions,
    observer: Option<&mut dyn StepObserver>,
) -> Result<TrainSummary> {
    train_loaded(
        asm,
        TrainingData::load(asm)?,
        run_dir,
        resume,
        options,
        observer,
    )
}

/// [`train_observed`] on data already loaded with [`TrainingData::load`].
pub fn train_loaded(
    asm: &Assembly,
    data: TrainingData,
    run_dir: &RunDir,
    resume: Option<&Checkpoint>,
    options: &TrainOptions,
    mut observer: Option<&mut dyn StepObserver>,
) -> Result<TrainSummary> {
    let run = &asm.config.run;
    let TrainingData {
        train_set,
        loader,
        plan,
    } = data;
    let mut state = Loop::new(asm, run_dir, plan.clone(), resume)?;
    if plan.total_steps == 0 {
        state.checkpoint(plan.passes, true)?;
    }
    tracing::info!(
        method = %run.method.name,
        regime = %run.train.regime,
        passes = plan.passes,
        batches = plan.batches_per_pass,
        steps = plan.total_steps,
        device = %asm.device.description,
        "training: {} images x {} views, {} steps",
        train_set.len(),
        loader.views_per_image(),
        plan.total_steps
    );
    let mut bar = crate::progress::bar(plan.total_steps as u64, "train");
    bar.set_position(state.steps as u64);
    // wall-clock time from the first batch request on, added to what earlier sessions spent
    state.clock = (Instant::now(), state.seconds);
    let end = options
        .stop_after_passes
        .map_or(plan.passes, |n| n.min(plan.passes));
    for epoch in state.start_epoch..end {
        let pass = state.run_pass(&loader, epoch, &mut bar, &mut observer)?;
        state.end_pass(epoch, &pass)?;
    }
    bar.finish();
    let summary = state.summary(end == plan.passes);
    if !summary.complete {
        tracing::info!(
            "stopped after {end} of {} passes as asked; continue with `rossl run --resume {}`",
            summary.plan.passes,
            run_dir.path().display()
        );
        return Ok(summary);
    }
    run_dir.write_summary(&summary)?;
    Ok(summary)
}

/// What the optimiser trains: the encoder's parameters and the weights the loss terms own.
fn trained_parameters(asm: &Assembly) -> Vec<rossl_api::components::Parameter> {
    let mut parameters = asm.encoder.parameters();
    parameters.extend(asm.objective.parameters());
    parameters
}

/// The error that stops training at `step`, saying which checkpoint is kept.
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
