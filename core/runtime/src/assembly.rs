//! Turning a checked configuration into components.

use crate::config::{Precision, Regime, ResolvedConfig, TrainConfig};
use crate::device::SelectedDevice;
use crate::ssl_loss::{Term, WeightedSslLoss};
use crate::{Error, Result};
use rossl_api::components::{
    Attack, BnBranch, BuildContext, Dataset, DatasetInfo, Encoder, InputShape, SslLoss,
    ViewStrategy,
};
use std::path::PathBuf;
use std::sync::Arc;

/// The components of a run, built from its configuration.
pub struct Assembly {
    /// The configuration.
    pub config: ResolvedConfig,
    /// The device and why it was chosen.
    pub device: SelectedDevice,
    /// The dataset (not loaded yet).
    pub dataset: Box<dyn Dataset>,
    /// What the dataset holds.
    pub info: DatasetInfo,
    /// The training view strategy.
    pub views: Arc<dyn ViewStrategy>,
    /// The encoder, freshly initialised.
    pub encoder: Box<dyn Encoder>,
    /// The method's weighted SSL loss (what training minimises).
    pub objective: WeightedSslLoss,
    /// The PGD regime's attack.
    pub train_attack: Option<Box<dyn Attack>>,
}

impl Assembly {
    /// The build context for components of this run.
    pub fn context(config: &ResolvedConfig, device: &SelectedDevice) -> BuildContext {
        BuildContext {
            device: device.device.clone(),
            seed: config.run.seed,
            input: None,
            base_dir: PathBuf::from("."),
            feature_dim: None,
            projection_dim: None,
        }
    }

    /// Builds every component that training needs.
    pub fn build(config: ResolvedConfig, device: SelectedDevice) -> Result<Self> {
        let run = &config.run;
        let ctx = Self::context(&config, &device);
        let dataset: Box<dyn Dataset> = config.build("data", &run.data.name, &ctx)?;
        let info = dataset.info();
        let views: Box<dyn ViewStrategy> = config.build("views", &run.views.name, &ctx)?;
        if run.train.anneal.anneals_views() && views.at_strength(1.0).is_none() {
            return Err(crate::loader::no_strength(Some(&run.views.name)));
        }
        let (height, width) = views.output_size(info.height, info.width);
        check_batch_memory(
            &config,
            views.views_per_image(),
            info.channels * height * width,
        )?;
        let input = InputShape {
            channels: info.channels,
            height,
            width,
            classes: info.classes,
        };
        let encoder: Box<dyn Encoder> = run.precision.wrap(config.build(
            "encoder",
            &run.encoder.name,
            &ctx.clone().with_input(input),
        )?);
        let loss_ctx = ctx
            .clone()
            .with_input(input)
            .with_encoder_dims(encoder.feature_dim(), encoder.projection_dim());
        let mut terms = Vec::new();
        for term in &run.loss.terms {
            let loss: Box<dyn SslLoss> = config.build("loss", &term.name, &loss_ctx)?;
            terms.push(Term {
                name: term.name.clone(),
                weight: term.weight,
                loss,
            });
        }
        check_loss_needs(&terms, &run.train)?;
        check_batch_norm_branches(encoder.as_ref(), &terms, &config)?;
        warn_on_cpu_bf16(&config, &device);
        check_transfer_datasets(&config, &ctx, &info)?;
        let train_attack = if run.train.regime == Regime::Pgd {
            Some(config.build::<dyn Attack>("train.attack", &run.train.attack.name, &ctx)?)
        } else {
            None
        };
        Ok(Assembly {
            objective: WeightedSslLoss::new(terms)?,
            dataset,
            info,
            views: Arc::from(views),
            encoder,
            train_attack,
            device,
            config,
        })
    }

    /// Another encoder built from this run's configuration (a target network), initialised as
    /// the run's encoder was, computing its training passes in the run's `precision`.
    pub fn build_encoder(&self) -> Result<Box<dyn Encoder>> {
        self.build_encoder_in(self.config.run.precision)
    }

    /// [`Self::build_encoder`] computing its training passes in `precision` (the evaluation's
    /// trainable copies compute in f32, as the whole evaluation does).
    pub fn build_encoder_in(&self, precision: Precision) -> Result<Box<dyn Encoder>> {
        let ctx = Self::context(&self.config, &self.device).with_input(self.input_shape());
        let encoder = self
            .config
            .build("encoder", &self.config.run.encoder.name, &ctx)?;
        Ok(precision.wrap(encoder))
    }

    /// The shape of the views the encoder sees.
    pub fn input_shape(&self) -> InputShape {
        let (height, width) = self.views.output_size(self.info.height, self.info.width);
        InputShape {
            channels: self.info.channels,
            height,
            width,
            classes: self.info.classes,
        }
    }
}

/// Warns that `precision = "bf16"` on the CPU takes candle's layered operations instead of the
/// fused f32 kernels: correct, and many times slower (15 times on `rossl bench`'s small
/// workload); bf16 is meant for GPUs.
fn warn_on_cpu_bf16(config: &ResolvedConfig, device: &SelectedDevice) {
    if config.run.precision != Precision::F32 && device.device.is_cpu() {
        tracing::warn!(
            "`precision = \"{}\"` (in {}) on the CPU computes through candle's layered \
             operations, not rossl's fused f32 kernels: many times slower than f32; bf16 is meant \
             for GPUs",
            config.run.precision,
            config.source_of("precision")
        );
    }
}

/// The share of this machine's memory that the input batches of one step (the batch being
/// stepped and the loader's prefetched ones) may take: one eighth, leaving the rest to the
/// encoder's activations and gradients, which are many times larger.
const BATCH_MEMORY_SHARE: u64 = 8;

/// Refuses a batch of views (or an evaluation batch) whose input tensors alone would exhaust
/// this machine's memory, naming the keys that size it, before anything is allocated or written:
/// an allocation of that size would abort the process.
fn check_batch_memory(config: &ResolvedConfig, views: usize, values_per_view: usize) -> Result<()> {
    let Some(total) = crate::device::total_memory_bytes() else {
        return Ok(());
    };
    let limit = total / BATCH_MEMORY_SHARE;
    let run = &config.run;
    let gib = |b: u128| b as f64 / f64::from(1u32 << 30);
    // (images per batch, batches held at once, what sizes it)
    let batches = [
        (
            run.data.batch_size.saturating_mul(views),
            run.data.prefetch + 1,
            format!(
                "`data.batch_size` ({}, in {}) x the views per image of `views.{}` ({views}) x (`data.prefetch` + 1 = {}) batches",
                run.data.batch_size,
                config.source_of("data.batch_size"),
                run.views.name,
                run.data.prefetch + 1
            ),
        ),
        (
            run.eval.batch_size,
            run.eval.eot_samples.max(1),
            format!(
                "`eval.batch_size` ({}, in {}) x `eval.eot_samples` ({}) images",
                run.eval.batch_size,
                config.source_of("eval.batch_size"),
                run.eval.eot_samples
            ),
        ),
    ];
    for (images, copies, sized_by) in batches {
        let bytes = images as u128 * values_per_view as u128 * 4 * copies as u128;
        if bytes > u128::from(limit) {
            return Err(crate::Error::Config(format!(
                "{sized_by} of {values_per_view} values need {:.1} GiB of input tensors alone; the limit on this machine is {:.1} GiB (1/{BATCH_MEMORY_SHARE} of its {:.1} GiB)",
                gib(bytes),
                gib(u128::from(limit)),
                gib(u128::from(total)),
            )));
        }
    }
    Ok(())
}

/// What the loss terms need of the training configuration: a loss that compares with the clean
/// views trains under the `pgd` regime; a teacher is named only for a loss that uses a target
/// network, and must be named when a loss distils one or the encoder starts from it.
fn check_loss_needs(terms: &[Term], train: &TrainConfig) -> Result<()> {
    if let Some(term) = terms.iter().find(|t| t.loss.uses_clean()) {
        if train.regime == Regime::Standard {
            return Err(Error::Config(format!(
                "the loss `{}` (in `loss.terms`) compares perturbed views with clean ones and \
                 trains only under `train.regime = \"pgd\"` or `\"free\"`, not `{}`",
                term.name, train.regime
            )));
        }
    }
    let target = &train.target;
    let uses_target = terms.iter().any(|t| t.loss.uses_target());
    if !uses_target && (target.names_teacher() || target.init_from_teacher) {
        return Err(Error::Config(
            "`train.target` names a teacher, but no loss in `loss.terms` uses a target network"
                .into(),
        ));
    }
    if let Some(term) = terms.iter().find(|t| t.loss.needs_teacher()) {
        if !target.names_teacher() {
            return Err(Error::Config(format!(
                "the loss `{}` distils a frozen teacher: set `train.target.from` to a finished run folder (e.g. one that `rossl run configs/methods/simclr.toml` made), or `train.target.teacher_config` to the teacher's config files (rossl trains it first)",
                term.name
            )));
        }
    }
    if target.init_from_teacher && !target.names_teacher() {
        return Err(Error::Config(
            "`train.target.init_from_teacher` needs a teacher: set `train.target.from` to a finished run folder, or `train.target.teacher_config` to the teacher's config files".into(),
        ));
    }
    Ok(())
}

/// An encoder with dual batch norm trains both branches only under an adversarial regime with a
/// clean stream (`train.pgd.clean_weight` or `train.free.clean_weight` > 0, or a loss that
/// compares with the clean views): any other configuration leaves one branch untrained.
/// `eval.bn_branch = "adversarial"` needs dual batch norm.
fn check_batch_norm_branches(
    encoder: &dyn Encoder,
    terms: &[Term],
    config: &ResolvedConfig,
) -> Result<()> {
    let run = &config.run;
    let key = format!("encoder.{}.dual_batch_norm", run.encoder.name);
    if encoder.dual_batch_norm() {
        let clean_weight = match run.train.regime {
            Regime::Pgd => run.train.pgd.clean_weight,
            Regime::Free => run.train.free.clean_weight,
            Regime::Standard => 0.0,
        };
        let clean_stream = clean_weight > 0.0 || terms.iter().any(|t| t.loss.uses_clean());
        if run.train.regime == Regime::Standard || !clean_stream {
            return Err(Error::Config(format!(
                "`{key} = true` (in {}) trains a clean and an adversarial branch, which needs \
                 `train.regime = \"pgd\"` or `\"free\"` with a clean stream \
                 (`train.<regime>.clean_weight` > 0); this run has regime `{}` and clean weight \
                 {clean_weight}, so one branch would never train",
                config.source_of(&key),
                run.train.regime
            )));
        }
    } else if run.eval.bn_branch == BnBranch::Adversarial {
        return Err(Error::Config(format!(
            "`eval.bn_branch = \"adversarial\"` (in {}) needs an encoder with dual batch norm \
             (`{key} = true`); this encoder has one batch norm",
            config.source_of("eval.bn_branch")
        )));
    }
    Ok(())
}

/// Checks, before anything trains, that every evaluator's transfer dataset
/// (`eval.<evaluator>.dataset`) is registered and its images can be adapted to the run's
/// (`resize`, `channels`); nothing is loaded.
fn check_transfer_datasets(
    config: &ResolvedConfig,
    ctx: &BuildContext,
    run_info: &DatasetInfo,
) -> Result<()> {
    for name in &config.run.eval.evaluators {
        let data = config.evaluator_data(name)?;
        if data.dataset.is_empty() {
            continue;
        }
        let key = format!("eval.{name}.dataset");
        if data.dataset == config.run.data.name {
            return Err(Error::Config(format!(
                "`{key}` = \"{}\" is the run's own dataset: leave `{key}` out (a transfer \
                 dataset is another one)",
                data.dataset
            )));
        }
        if !config.run.eval.corruptions.files.as_os_str().is_empty() {
            return Err(Error::Config(format!(
                "`{key}` transfers `{name}` to \"{}\" and `eval.corruptions.files` reads the \
                 published CIFAR-C arrays, whose labels are CIFAR's: measure the transfer's \
                 corruptions computed (leave `eval.corruptions.files` empty)",
                data.dataset
            )));
        }
        let dataset: Box<dyn Dataset> = config.build("data", &data.dataset, ctx)?;
        data.adaptation(name, &dataset.info(), run_info, &config.run.data.name)?;
    }
    Ok(())
}
