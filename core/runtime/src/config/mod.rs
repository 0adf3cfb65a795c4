//! Layered configuration with figment.
//!
//! Later layers win: built-in defaults ([`RunConfig::default`]), then each config file in the
//! order given, then `ROSSL_`-prefixed environment variables (`__` between levels, e.g.
//! `ROSSL_TRAIN__EPOCHS=5`), then each `--set key=value` (TOML value syntax).
//!
//! Components are chosen by name in a *slot* table (`[encoder] name = "resnet-small"`) and read
//! their parameters from a section named after them (`[encoder.resnet-small] widths = [...]`), so
//! that parameters of one component can never leak into another when a later layer switches the
//! name. Every key is checked before anything runs; every error names the key and the file,
//! variable or command-line argument its value came from.

mod anneal;
mod corruptions;
mod difference;
mod evaluation;
mod evaluator_data;
mod explain;
mod fields;
mod layers;
mod libraries;
mod machine;
mod resolve;
mod schema;
mod target;
mod training;
mod values;

pub use corruptions::CorruptionsConfig;
pub use evaluation::NOT_PROTOCOL;
pub use evaluator_data::EvaluatorData;
pub use explain::{inline as inline_value, inline_table};
pub use fields::struct_fields;
pub use layers::{ConfigSources, ENV_PREFIX};
pub use libraries::{plugin_libraries, PluginLibrary};
pub use resolve::{ChosenComponent, ResolvedConfig};
pub use rossl_api::provenance::{describe_source, from_figment};
pub use rossl_api::section::ComponentConfig;
pub use schema::{
    AnnealConfig, AttackLoss, Baseline, CompareConfig, CpuIsa, DataConfig, DeviceSpec, EvalConfig,
    ExtraAttack, FreeConfig, LarsConfig, LossConfig, LossTerm, MethodInfo, MonitorConfig,
    OptimConfig, PgdConfig, PluginsConfig, PoolWait, Precision, Preset, ProtocolMode, Regime,
    RunConfig, ScheduleHorizon, ScheduleKind, Scheduled, SlotConfig, TargetConfig, TrainConfig,
};
pub use training::{
    first_difference, training_keys_of_text, KeyDifference, NOT_TRAINING, NOT_TRAINING_NESTED,
};
