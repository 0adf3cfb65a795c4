//! The splits a run trains and is evaluated on (with the configured subsets), and the background
//! loader of its training views.

use crate::assembly::Assembly;
use crate::loader::{Loader, LoaderSettings};
use crate::run_dir::TrainPlan;
use crate::Result;
use rossl_api::components::{ImageSet, Split};
use rossl_api::rng::{stream, Rng};
use std::sync::Arc;

/// Loads the split of the configured dataset, with its class-balanced subset if configured.
pub fn load_split(asm: &Assembly, split: Split) -> Result<ImageSet> {
    let set = asm.dataset.load(split)?;
    let (size, split_id) = match split {
        Split::Train => (asm.config.run.data.train_subset, 0),
        Split::Test => (asm.config.run.data.test_subset, 1),
    };
    Ok(subset_of(set, size, asm.config.run.seed, split_id))
}

/// The class-balanced subset of `size` images of `set` (all of it for 0) drawn from sub-stream
/// `split_id` of [`stream::SUBSET`] under `seed`: 0 and 1 for the run's training and test
/// splits, 2 and 3 for a transfer dataset's.
pub fn subset_of(set: ImageSet, size: usize, seed: u64, split_id: u64) -> ImageSet {
    if size == 0 {
        return set;
    }
    let mut rng = Rng::derive(seed, &[stream::SUBSET, split_id]);
    set.balanced_subset(size, &mut rng)
}

/// The background loader of the run's training views.
pub(super) fn loader(asm: &Assembly, train_set: Arc<ImageSet>) -> Result<Loader> {
    let run = &asm.config.run;
    let workers = match run.data.workers {
        0 => rayon::current_num_threads(),
        n => n,
    };
    Loader::new(
        train_set,
        asm.views.clone(),
        LoaderSettings {
            batch_size: run.data.batch_size,
            workers,
            prefetch: run.data.prefetch,
            seed: run.seed,
            max_batches: run.train.max_batches,
        },
    )
}

/// A run's training data, loaded, with its view loader and plan: what training needs before it
/// writes anything, so that a run whose data cannot be loaded leaves no run folder behind.
pub struct TrainingData {
    pub(super) train_set: Arc<ImageSet>,
    pub(super) loader: Loader,
    pub(super) plan: TrainPlan,
}

impl TrainingData {
    /// Loads the configured training split and starts its view loader.
    pub fn load(asm: &Assembly) -> Result<Self> {
        let train_set = Arc::new(load_split(asm, Split::Train)?);
        let loader = loader(asm, train_set.clone())?;
        let plan = super::plan::plan(&asm.config.run, loader.batches_per_epoch());
        let loader = loader.with_anneal(&asm.config.run.train.anneal, plan.passes)?;
        Ok(TrainingData {
            train_set,
            loader,
            plan,
        })
    }
}
