//! The typed configuration of a run, with the built-in defaults.
//!
//! Tables that choose a component (`data`, `views`, `encoder`, `loss`, `train.attack`, `eval`)
//! are *slots*: besides their own keys they hold one section per component name, with that
//! component's parameters. Those sections are checked against the registry, not here.

pub use super::anneal::{AnnealConfig, Scheduled};
pub use super::evaluation::{EvalConfig, ExtraAttack, ProtocolMode};
pub use super::machine::{CpuIsa, PoolWait};
pub use super::target::TargetConfig;
pub use rossl_api::components::{AttackLoss, Preset};
pub use rossl_nn::optim::{LarsConfig, OptimConfig, ScheduleHorizon, ScheduleKind};
pub use rossl_nn::precision::Precision;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A whole run: what is trained, how, and how it is evaluated.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Seed of every random choice of the run (initialisation, shuffling, views, attacks).
    pub seed: u64,
    /// `cpu`, `cuda:N`, or `auto` (the first GPU when the binary has CUDA and one is present).
    pub device: DeviceSpec,
    /// Worker threads for the CPU backend and data loading; 0 uses every core.
    pub threads: usize,
    /// The widest instruction set rossl's CPU kernels may use: `auto` (the host's widest),
    /// `avx512`, `avx2` or `portable` (to measure a lower path on one host; results are
    /// identical).
    pub cpu_isa: CpuIsa,
    /// What the CPU pool's other threads do while a step runs on one of them: `spin` (poll for
    /// its tasks, as OpenMP's threads do, leaving when another process wants the core) or `park`
    /// (rayon's own waiting). Results are identical. Not written at its default (`spin`).
    #[serde(skip_serializing_if = "PoolWait::is_default")]
    pub pool_wait: PoolWait,
    /// The precision of the encoder's training passes: `f32`, or `bf16` (forward and backward in
    /// bf16 over f32 master weights; losses, the log-determinant and the optimiser in f32 or
    /// f64; evaluation in f32). A training key. Not written at its default (f32), so that the
    /// digests of earlier runs stay as they were.
    #[serde(skip_serializing_if = "Precision::is_default")]
    pub precision: Precision,
    /// Root folder of run folders.
    pub out: PathBuf,
    /// What this configuration is (its name, the paper row it reproduces).
    pub method: MethodInfo,
    /// The dataset and batching.
    pub data: DataConfig,
    /// The view strategy (slot of kind `views`).
    pub views: SlotConfig,
    /// The encoder (slot of kind `encoder`).
    pub encoder: SlotConfig,
    /// The SSL objective (slot of kind `loss`).
    pub loss: LossConfig,
    /// The optimiser and its schedule.
    pub optim: OptimConfig,
    /// The training regime.
    pub train: TrainConfig,
    /// The evaluation.
    pub eval: EvalConfig,
    /// Dynamic plugin libraries to load.
    pub plugins: PluginsConfig,
    /// Baselines that `rossl run` trains and evaluates next to this run.
    pub compare: CompareConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 0,
            device: DeviceSpec::Auto,
            threads: 0,
            cpu_isa: CpuIsa::Auto,
            pool_wait: PoolWait::Spin,
            precision: Precision::F32,
            out: PathBuf::from("runs"),
            method: MethodInfo::default(),
            data: DataConfig::default(),
            views: SlotConfig::named("multi-crop"),
            encoder: SlotConfig::named("resnet-small"),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            plugins: PluginsConfig::default(),
            compare: CompareConfig::default(),
        }
    }
}

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The first CUDA GPU when the binary has CUDA and one is present, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA GPU number N.
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("`{other}` is not a device: use cpu, cuda:N or auto")),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a configuration is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MethodInfo {
    /// Short name, used in run-folder names and tables (e.g. `cf-amc-ssl`).
    pub name: String,
    /// One line describing the method.
    pub description: String,
    /// The row of the paper's table it reproduces, if any.
    pub paper_row: String,
}

/// A slot that chooses one component by name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct SlotConfig {
    /// The registered name of the component.
    pub name: String,
}

impl SlotConfig {
    /// A slot choosing `name`.
    pub fn named(name: &str) -> Self {
        SlotConfig {
            name: name.to_string(),
        }
    }
}

/// The dataset slot, with batching and subsets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DataConfig {
    /// The registered name of the dataset.
    pub name: String,
    /// Images per batch (each with `views` views).
    pub batch_size: usize,
    /// Class-balanced subset of the training split (0 = all of it).
    pub train_subset: usize,
    /// Class-balanced subset of the test split (0 = all of it).
    pub test_subset: usize,
    /// Threads that render views in the background (0 = as many as `threads`).
    pub workers: usize,
    /// Batches prepared ahead of the model (bounds the loader's memory).
    pub prefetch: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            name: "embedded".into(),
            batch_size: 32,
            train_subset: 0,
            test_subset: 0,
            workers: 0,
            prefetch: 2,
        }
    }
}

/// One weighted term of the SSL objective.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossTerm {
    /// The registered name of the loss.
    pub name: String,
    /// Its weight in the objective.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// The objective: a weighted sum of losses (slot of kind `loss`; parameters in `[loss.<name>]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LossConfig {
    /// The terms. EMP-SSL: 200 x invariance + 1 x tcr; SimCLR: 1 x infonce.
    pub terms: Vec<LossTerm>,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            terms: vec![
                LossTerm {
                    name: "invariance".into(),
                    weight: 200.0,
                },
                LossTerm {
                    name: "tcr".into(),
                    weight: 1.0,
                },
            ],
        }
    }
}

/// How the encoder is trained.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Regime {
    /// Clean views.
    #[default]
    Standard,
    /// K attack steps on the SSL loss, then a weight update on the perturbed views.
    Pgd,
    /// Free adversarial training: each batch replayed m times, one backward pass per replay gives
    /// both the weight and the perturbation gradient.
    Free,
}

impl fmt::Display for Regime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Regime::Standard => "standard",
            Regime::Pgd => "pgd",
            Regime::Free => "free",
        })
    }
}

/// Settings of the PGD regime (the attack itself is `[train.attack]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PgdConfig {
    /// Let attack passes update batch-norm running statistics, as the reference code does.
    pub attack_updates_bn_stats: bool,
    /// Attack with the encoder in evaluation mode (running statistics, as ACL, TRADES and DeACL
    /// generate their training attacks) instead of with batch statistics. Not written when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attack_in_eval_mode: bool,
    /// Weight of the loss on the clean views in the update (ACL: 1; 0: the update sees the
    /// perturbed views only, as PGD-AT and the paper's rows). Not written at its default.
    #[serde(skip_serializing_if = "is_zero")]
    pub clean_weight: f64,
    /// Weight of the loss on the perturbed views in the update. Not written at its default (1).
    #[serde(skip_serializing_if = "is_one")]
    pub adversarial_weight: f64,
}

impl Default for PgdConfig {
    fn default() -> Self {
        PgdConfig {
            attack_updates_bn_stats: false,
            attack_in_eval_mode: false,
            clean_weight: 0.0,
            adversarial_weight: 1.0,
        }
    }
}

impl PgdConfig {
    /// The mode of the training attack's passes: training mode when they update batch-norm
    /// statistics, evaluation mode when asked, batch statistics without updates otherwise.
    pub fn attack_mode(&self) -> rossl_api::components::Mode {
        use rossl_api::components::Mode;
        if self.attack_updates_bn_stats {
            Mode::Train
        } else if self.attack_in_eval_mode {
            Mode::Eval
        } else {
            Mode::Attack
        }
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

/// Settings of the free regime.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FreeConfig {
    /// Replays m of each batch.
    pub replays: usize,
    /// Radius of the L-infinity ball.
    pub eps: f64,
    /// Ascent step on the perturbation.
    pub step: f64,
    /// Clamp x + delta to [0, 1] before every forward pass (the reference code skips this on a new
    /// batch; set false to reproduce it).
    pub clamp_input: bool,
    /// Weight of the loss on the clean views in each replay's update (free ACL: each replay also
    /// runs the clean views; 0: the perturbed views only, as the paper's rows). Not written at
    /// its default.
    #[serde(skip_serializing_if = "is_zero")]
    pub clean_weight: f64,
    /// Weight of the loss on the perturbed views. Not written at its default (1).
    #[serde(skip_serializing_if = "is_one")]
    pub adversarial_weight: f64,
}

impl Default for FreeConfig {
    fn default() -> Self {
        FreeConfig {
            replays: 3,
            eps: 8.0 / 255.0,
            step: 0.01,
            clamp_input: true,
            clean_weight: 0.0,
            adversarial_weight: 1.0,
        }
    }
}

/// The online monitor (solo-learn's online linear probe, adapted): every `every` optimiser steps,
/// a linear probe fitted on detached features of a held-out labelled slice of the training split
/// reports its clean and PGD accuracy into `metrics.jsonl`, so that catastrophic overfitting in
/// free or single-step training shows when it happens. Its time is reported and kept out of the
/// training wall time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Steps between reports (0: off).
    pub every: usize,
    /// Labelled training images it uses (class-balanced): half fit the probe, half measure it.
    pub images: usize,
    /// Radius of its PGD.
    pub eps: f64,
    /// Steps of its PGD (step eps/4, random start).
    pub steps: usize,
    /// Epochs of the probe's training.
    pub probe_epochs: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            every: 0,
            images: 512,
            eps: 8.0 / 255.0,
            steps: 5,
            probe_epochs: 20,
        }
    }
}

/// The training regime and its length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// standard, pgd or free.
    pub regime: Regime,
    /// The budget N in standard epochs. standard and pgd make N passes over the data; free makes
    /// ceil(N / replays) passes, each batch replayed `replays` times (Shafahi et al. 2019).
    /// 0 trains nothing: the run evaluates its freshly initialised encoder (a random baseline).
    pub epochs: usize,
    /// Stop each pass after this many batches (0 = the whole training set); for quick checks.
    pub max_batches: usize,
    /// Train for exactly this many optimiser steps instead of `epochs` (0: as `epochs` says);
    /// the last pass over the data stops part-way. Studies set it to give every arm the same
    /// budget of encoder passes or of wall-clock time.
    pub steps: usize,
    /// Write a metrics line every this many optimiser steps.
    pub log_every: usize,
    /// The online monitor: a probe's clean and PGD accuracy during training.
    pub monitor: MonitorConfig,
    /// The PGD regime's settings.
    pub pgd: PgdConfig,
    /// The free regime's settings.
    pub free: FreeConfig,
    /// The attack of the PGD regime (slot of kind `attack`).
    pub attack: SlotConfig,
    /// The target network of losses that use one (BYOL). Not written at its default.
    #[serde(skip_serializing_if = "TargetConfig::is_default")]
    pub target: TargetConfig,
    /// Stepwise schedules of the views' augmentation strength and the PGD loss weights
    /// (DynACL). Not written at its default (none).
    #[serde(skip_serializing_if = "AnnealConfig::is_default")]
    pub anneal: AnnealConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            regime: Regime::Standard,
            epochs: 1,
            max_batches: 0,
            steps: 0,
            log_every: 10,
            monitor: MonitorConfig::default(),
            pgd: PgdConfig::default(),
            free: FreeConfig::default(),
            attack: SlotConfig::named("pgd-linf"),
            target: TargetConfig::default(),
            anneal: AnnealConfig::default(),
        }
    }
}

/// Dynamic plugin libraries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Paths of plugin libraries, relative to the config file that names them.
    pub load: Vec<PathBuf>,
}

/// A baseline of a comparison: the same configuration with some overrides.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Its row label.
    pub label: String,
    /// `key=value` overrides (TOML values), applied after every other layer.
    #[serde(default)]
    pub set: Vec<String>,
}

/// Baselines to run next to this configuration (the quickstart puts CF-AMC-SSL next to a random
/// encoder and standard EMP-SSL).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CompareConfig {
    /// The label of this configuration's own row (default: the method's name).
    pub label: String,
    /// The baselines.
    pub baselines: Vec<Baseline>,
}
