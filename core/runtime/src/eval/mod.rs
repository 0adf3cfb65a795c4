//! Evaluation a robustness reviewer can trust: every evaluator's classifier is measured on clean
//! test images and under an attack suite (per attack and per-example worst case), and every
//! evaluation runs sanity checks whose numbers are reported.
//!
//! [`evaluate_run`] evaluates a run; [`fit_and_measure`] one evaluator: it fits the classifier,
//! runs the main pass (`main_pass`: clean and under each radius's suite, one [`AttackRun`] of a
//! [`ClassifierObjective`] at a time, on [`EvalInputs`]) and the sanity checks ([`all_checks`]).

mod attack_run;
mod batch_rows;
mod card;
mod checks;
mod classifier_objective;
mod corruption;
mod data;
mod harness;
mod inputs;
mod main_pass;
// the shapes of `results.json` live with the run folder's other files
use crate::run_dir::results as report;
mod run;
pub mod streams;
mod suite;

pub use attack_run::AttackRun;
pub use checks::{all_checks, CheckContext, SanityCheck, Snapshot};
pub use classifier_objective::{predict, ClassifierObjective};
pub use data::{evaluator_sets, labelled_share, EvaluatorSets};
pub use harness::{fit_and_measure, Evaluated};
pub use inputs::EvalInputs;
pub use main_pass::fraction;
pub use report::{
    CheckResult, CorruptionAccuracy, CorruptionReport, EvaluationData, EvaluationReport, FitReport,
    Results, RobustResult, TrainResults, WorstCase,
};
pub use run::{ensure_card, evaluate_run, evaluate_run_into};
pub use suite::{attack_suite, build_attack, preset_settings, PlannedAttack};
