//! What each evaluator fits and is tested on: the run's images, or another dataset's adapted to
//! the run's image shape (transfer), with the share of training labels it asks for
//! (`[eval.<evaluator>] dataset`, `resize`, `channels`, `label_fraction`).

use super::report::EvaluationData;
use crate::assembly::Assembly;
use crate::config::EvaluatorData;
use crate::train::subset_of;
use crate::Result;
use rossl_api::components::{Dataset, ImageSet, Split};
use rossl_api::rng::{stream, Rng};
use std::borrow::Cow;

/// The images one evaluator fits on and is tested on, and their description for the report.
pub struct EvaluatorSets<'a> {
    /// Labelled training images (after the label share).
    pub train: Cow<'a, ImageSet>,
    /// Test images.
    pub test: Cow<'a, ImageSet>,
    /// What they are, for `results.json` and the result card.
    pub record: EvaluationData,
}

/// The sets of evaluator `name` of `asm`'s run, whose own splits are `train` and `test`.
pub fn evaluator_sets<'a>(
    asm: &Assembly,
    name: &str,
    train: &'a ImageSet,
    test: &'a ImageSet,
) -> Result<EvaluatorSets<'a>> {
    let data = asm.config.evaluator_data(name)?;
    let run = &asm.config.run;
    let (train, test, dataset, adaptation) = if data.dataset.is_empty() {
        (
            Cow::Borrowed(train),
            Cow::Borrowed(test),
            run.data.name.clone(),
            Vec::new(),
        )
    } else {
        let (train, test, adaptation) = transfer_sets(asm, name, &data)?;
        (
            Cow::Owned(train),
            Cow::Owned(test),
            data.dataset.clone(),
            adaptation,
        )
    };
    let train = match labelled_share(&train, data.label_fraction, run.seed) {
        Some(share) => Cow::Owned(share),
        None => train,
    };
    let record = EvaluationData {
        dataset,
        adaptation,
        label_fraction: data.label_fraction,
        train_images: train.len(),
    };
    Ok(EvaluatorSets {
        train,
        test,
        record,
    })
}

/// The class-balanced share `fraction` of `set`'s labelled images (at least one per class),
/// drawn with `seed` and the fraction alone, so that every evaluator asking for the same share
/// of the same images fits on the same images; `None` for the whole set.
pub fn labelled_share(set: &ImageSet, fraction: f64, seed: u64) -> Option<ImageSet> {
    if fraction >= 1.0 {
        return None;
    }
    let size = ((fraction * set.len() as f64).round() as usize).max(set.classes);
    let mut rng = Rng::derive(seed, &[stream::SUBSET, LABEL_SHARE, fraction.to_bits()]);
    Some(set.balanced_subset(size, &mut rng))
}

/// The sub-stream of [`stream::SUBSET`] the label shares draw from (0 and 1 are the run's
/// training and test subsets, 2 and 3 a transfer dataset's).
const LABEL_SHARE: u64 = 4;

/// Evaluator `name`'s transfer dataset `data.dataset`: both splits, subset as the run's own
/// (`data.train_subset`, `data.test_subset`), adapted to the run's image shape where `resize`
/// and `channels` allow; the adaptations made, said in words.
fn transfer_sets(
    asm: &Assembly,
    name: &str,
    data: &EvaluatorData,
) -> Result<(ImageSet, ImageSet, Vec<String>)> {
    let ctx = Assembly::context(&asm.config, &asm.device);
    let dataset: Box<dyn Dataset> = asm.config.build("data", &data.dataset, &ctx)?;
    let run = &asm.config.run;
    let target = &asm.info;
    let adaptation = data.adaptation(name, &dataset.info(), target, &run.data.name)?;
    let load = |split: Split, size: usize, id: u64| -> Result<ImageSet> {
        let set = subset_of(dataset.load(split)?, size, run.seed, id);
        let set = if set.channels != target.channels {
            set.with_channels(target.channels)?
        } else {
            set
        };
        if (set.height, set.width) != (target.height, target.width) {
            Ok(set.resized(target.height, target.width)?)
        } else {
            Ok(set)
        }
    };
    let train = load(Split::Train, run.data.train_subset, 2)?;
    let test = load(Split::Test, run.data.test_subset, 3)?;
    Ok((train, test, adaptation))
}
