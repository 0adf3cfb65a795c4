//! Training: the standard, PGD and free regimes over the same multi-view SSL objective, with
//! metrics, per-epoch checkpoints, resumption and pass accounting.
//!
//! - `standard`: one forward and one backward pass per batch.
//! - `pgd`: the training attack (K steps on the method's own objective, one perturbation per
//!   view, attack passes in [`Mode::Attack`]: batch statistics, running statistics untouched,
//!   weights detached) then one update on the perturbed views: K + 1 forward and K + 1 backward
//!   passes per batch; with `train.pgd.clean_weight` (ACL), the update adds the loss of the
//!   clean views (one more forward pass), and a loss that compares with the clean views (TRADES,
//!   DeACL) sees their embedding (two more: a detached one for the attack, one in the update).
//! - `free`: each batch replayed m times; each replay is one forward and one backward pass whose
//!   gradients give both the weight update (descent) and the perturbation step (ascent, signed,
//!   clipped to the ball and the pixel range). The perturbation persists across batches and
//!   epochs. ceil(N / m) passes over the data: m forward and m backward passes per batch.
//!
//!
//! A loss that regresses onto a target network gets one ([`target::TargetNetwork`]), one more
//! forward pass per step: an exponential moving average of the encoder, updated after each
//! optimiser step and kept in the checkpoint (BYOL), or a frozen teacher from a finished run
//! folder (`train.target.from`, DeACL).
//!
//! [`Mode::Attack`]: rossl_api::components::Mode::Attack

mod encoder_tensors;
mod options;
mod plan;
pub mod regimes;
mod splits;
pub mod target;
mod teacher;
mod trainer;

pub use crate::run_dir::{MetricsWriter, StepRecord, TrainPlan, TrainSummary};
pub use encoder_tensors::{
    encoder_tensors, init_encoder_from, loss_tensors, restore_encoder, restore_loss,
};
pub use options::{StepObserver, TrainOptions};
pub use plan::plan;
pub use splits::{load_split, subset_of, TrainingData};
pub use trainer::{train, train_loaded, train_observed, train_with};
