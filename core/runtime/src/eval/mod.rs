//! Evaluation a robustness reviewer can trust: every evaluator's classifier is measured on clean
//! test images and under an attack suite (per attack and per-example worst case), and every
//! evaluation runs sanity checks whose numbers are reported.

mod checks;
mod harness;
mod pass;
// the shapes of `results.json` live with the run folder's other files
use crate::run_dir::results as report;
mod run;
mod suite;

pub use checks::{all_checks, CheckContext, SanityCheck, Snapshot};
pub use harness::{evaluate, Evaluated};
pub use pass::{fraction, predict, AttackRun, ClassifierObjective, EvalInputs};
pub use report::{CheckResult, EvaluationReport, Results, RobustResult, TrainResults, WorstCase};
pub use run::evaluate_run;
pub use suite::{attack_suite, build_attack, preset_settings, PlannedAttack};
