//! The typed configuration of a run, with the built-in defaults.
//!
//! Tables that choose a component (`data`, `views`, `encoder`, `loss`, `train.attack`, `eval`)
//! are *slots*: besides their own keys they hold one section per component name, with that
//! component's parameters. Those sections are checked against the registry, not here.

pub use rossl_api::components::{AttackLoss, Preset};
pub use rossl_nn::optim::{LarsConfig, OptimConfig, ScheduleHorizon, ScheduleKind};
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
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PgdConfig {
    /// Let attack passes update batch-norm running statistics, as the reference code does.
    pub attack_updates_bn_stats: bool,
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
}

impl Default for FreeConfig {
    fn default() -> Self {
        FreeConfig {
            replays: 3,
            eps: 8.0 / 255.0,
            step: 0.01,
            clamp_input: true,
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
        }
    }
}

/// The evaluation (slot of kind `evaluator`; parameters in `[eval.<name>]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EvalConfig {
    /// The evaluators to run.
    pub evaluators: Vec<String>,
    /// The attack preset: `strong` (default), `paper` (the reference protocol) or `none`.
    pub preset: Preset,
    /// The radii attacked.
    pub eps: Vec<f64>,
    /// Evaluate at the end of `rossl run`.
    pub after_training: bool,
    /// Images per evaluation batch.
    pub batch_size: usize,
    /// Draws averaged per gradient when attacking a random classifier (expectation over
    /// transformation).
    pub eot_samples: usize,
    /// Make a failed sanity check an error exit.
    pub strict: bool,
    /// Iterations of the strong preset's PGD.
    pub steps: usize,
    /// Runs of the strong preset's PGD (per example, the best is kept).
    pub restarts: usize,
    /// Iterations of the paper preset's PGD (the reference evaluation's `--iter`).
    pub paper_steps: usize,
    /// Iterations of APGD in the strong preset (100: Croce and Hein's own count).
    pub apgd_steps: usize,
    /// Include APGD-CE and APGD-DLR in the strong preset.
    pub apgd: bool,
    /// Include FGSM (one step of size eps from the clean image, cross-entropy) in the strong
    /// preset.
    pub fgsm: bool,
    /// Include the black-box Square attack (Andriushchenko et al. 2020) in the strong preset, run
    /// on the points that every white-box attack left correctly classified: it needs logits only,
    /// so it finds what masked gradients hide.
    pub square: bool,
    /// Queries per image of the Square attack.
    pub square_queries: usize,
    /// Attacks run at every radius in addition to the preset's (any registered attack,
    /// a plugin's included): their accuracies join the report and the per-example worst case.
    pub extra_attacks: Vec<ExtraAttack>,
    /// Test images the sanity checks use (0: all).
    pub check_images: usize,
    /// The "very large" radius of the sanity check that accuracy falls to near 0.
    pub large_eps: f64,
    /// The accuracy at `large_eps` above which that check fails.
    pub large_eps_max_accuracy: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            evaluators: vec!["linear-probe".into()],
            preset: Preset::Strong,
            eps: vec![4.0 / 255.0, 8.0 / 255.0],
            after_training: true,
            batch_size: 256,
            eot_samples: 8,
            strict: false,
            steps: 20,
            restarts: 2,
            paper_steps: 2,
            apgd_steps: 100,
            apgd: true,
            fgsm: true,
            square: true,
            square_queries: 1000,
            extra_attacks: Vec::new(),
            check_images: 256,
            large_eps: 0.5,
            large_eps_max_accuracy: 0.05,
        }
    }
}

/// An attack added to the evaluation preset: in configs,
/// `{ name = "pgd-linf", loss = "margin", params = { steps = 50, step = 0.002 } }`.
/// `eps` is set to each radius of `eval.eps` and cannot be given in `params`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraAttack {
    /// The registered attack.
    pub name: String,
    /// What it maximises: `cross-entropy` (or `ce`, the default) or `margin`.
    #[serde(default)]
    pub loss: AttackLoss,
    /// The attack's parameters other than `eps`.
    #[serde(default)]
    pub params: toml::Table,
}

impl ExtraAttack {
    /// The attack at radius `eps`, as a suite entry; `index` is its place in
    /// `eval.extra_attacks` (its label is numbered, so that it cannot share one with a preset
    /// attack or another extra).
    pub fn planned(
        &self,
        index: usize,
        eps: f64,
    ) -> crate::Result<rossl_api::components::PresetAttack> {
        if self.params.contains_key("eps") {
            return Err(crate::Error::Config(format!(
                "`eval.extra_attacks[{index}]`: `eps` is set by `eval.eps`, remove it from `params`"
            )));
        }
        let mut params = self.params.clone();
        params.insert("eps".into(), toml::Value::Float(eps));
        Ok(rossl_api::components::PresetAttack {
            label: format!("{}/{} (extra {})", self.name, self.loss.short(), index + 1),
            attack: self.name.clone(),
            loss: self.loss,
            params,
            stage: rossl_api::components::Stage::AllPoints,
        })
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
