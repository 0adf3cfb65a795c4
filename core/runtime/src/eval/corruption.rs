//! Accuracy under common corruptions (Hendrycks and Dietterich 2019): every evaluator's
//! classifier on its test images corrupted by each family at each severity
//! (`[eval.corruptions]`), computed on the fly with `rossl_nn::corruptions` or read from the
//! published CIFAR-10-C / CIFAR-100-C arrays.

use super::classifier_objective::predict;
use super::inputs::EvalInputs;
use super::report::{CorruptionAccuracy, CorruptionReport};
use super::streams;
use crate::{Error, Result};
use rayon::prelude::*;
use rossl_api::batch::image_batch;
use rossl_api::components::{Classifier, Dataset, ImageSet, Split};
use rossl_api::rng::{stream, Rng};
use rossl_nn::corruptions::{corrupt, Corruption};

/// The accuracy of `classifier` (evaluator number `index`) under every family and severity of
/// `inputs.config.corruptions`; `None` when it is off.
pub fn measure(
    classifier: &dyn Classifier,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<Option<CorruptionReport>> {
    let config = &inputs.config.corruptions;
    if config.is_off() {
        return Ok(None);
    }
    let families = config.families()?;
    let mut results = Vec::new();
    let mut images = 0;
    for (f, &family) in families.iter().enumerate() {
        for &severity in &config.severities {
            let set = corrupted_set(inputs, family, f, severity)?;
            images = set.len();
            let accuracy = accuracy(classifier, &set, index, inputs)?;
            tracing::debug!(family = family.name(), severity, accuracy, "corruption");
            results.push(CorruptionAccuracy {
                family: family.name().to_string(),
                severity,
                accuracy,
            });
        }
    }
    let mean = results.iter().map(|r| r.accuracy).sum::<f64>() / results.len().max(1) as f64;
    Ok(Some(CorruptionReport {
        source: if config.files.as_os_str().is_empty() {
            "computed on the fly from make_cifar_c.py's definitions".into()
        } else {
            format!("the published arrays in {}", config.files.display())
        },
        images,
        results,
        mean,
    }))
}

/// The test images of `inputs` corrupted by `family` (number `f` of the list) at `severity`,
/// or the published block of that family and severity; the first `images` of them.
fn corrupted_set(
    inputs: &EvalInputs<'_>,
    family: Corruption,
    f: usize,
    severity: u8,
) -> Result<ImageSet> {
    let config = &inputs.config.corruptions;
    let limit = image_limit(inputs);
    if !config.files.as_os_str().is_empty() {
        return published_block(inputs, family, severity, limit);
    }
    let test = inputs.test;
    let n = test.len().min(limit);
    let shape = (test.channels, test.height, test.width);
    let images: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = Rng::derive(
                inputs.seed,
                &[stream::CORRUPTIONS, f as u64, u64::from(severity), i as u64],
            );
            corrupt(family, severity, test.image(i), shape, &mut rng)
        })
        .collect::<rossl_api::Result<_>>()?;
    ImageSet::new(
        images.concat(),
        test.labels[..n].to_vec(),
        shape,
        test.classes,
    )
}

/// The published images of `family` at `severity` (the `cifar10-c` dataset, which reads
/// `eval.corruptions.files`), checked against the test set's shape.
fn published_block(
    inputs: &EvalInputs<'_>,
    family: Corruption,
    severity: u8,
    limit: usize,
) -> Result<ImageSet> {
    use toml::Value::{Integer, String as Text};
    let test = inputs.test;
    if !matches!(test.classes, 10 | 100) {
        return Err(Error::Config(format!(
            "`eval.corruptions.files`: the published arrays are CIFAR-10's or CIFAR-100's (10 or \
             100 classes), the evaluation's test set has {} classes",
            test.classes
        )));
    }
    let params: toml::Table = [
        (
            "root".to_string(),
            Text(inputs.config.corruptions.files.display().to_string()),
        ),
        ("corruption".to_string(), Text(family.name().to_string())),
        ("severity".to_string(), Integer(i64::from(severity))),
        ("classes".to_string(), Integer(test.classes as i64)),
        ("images".to_string(), Integer(limit as i64)),
    ]
    .into_iter()
    .collect();
    let dataset = rossl_api::registry::build_from_table::<dyn Dataset>(
        "cifar10-c",
        params,
        "`eval.corruptions.files`",
        inputs.ctx,
    )?;
    let set = dataset.load(Split::Test)?;
    if (set.channels, set.height, set.width) != (test.channels, test.height, test.width) {
        return Err(Error::Config(format!(
            "`eval.corruptions.files`: the published images are {}x{}x{}, the evaluation's test \
             images {}x{}x{}",
            set.channels, set.height, set.width, test.channels, test.height, test.width
        )));
    }
    let n = set.len().min(limit);
    if let Some(k) = (0..n).find(|&k| set.labels[k] != test.labels[k]) {
        return Err(Error::Config(format!(
            "`eval.corruptions.files`: the published arrays are not the evaluation's test images: \
             test image {k} (counted from 0) is class {} in {}, class {} in the test set. The \
             published images are the CIFAR test set in its published order, so the evaluation \
             must test on all of it, in that order (`data.test_subset = 0`); leave \
             `eval.corruptions.files` unset to corrupt the evaluated images on the fly",
            set.labels[k],
            inputs.config.corruptions.files.join("labels.npy").display(),
            test.labels[k]
        )));
    }
    Ok(set.select(&(0..n).collect::<Vec<_>>()))
}

/// Checks, before anything is computed, that `eval.corruptions.files` (when set) holds arrays
/// that can stand for the evaluation's test images (the first family at the first severity:
/// classes, image shape and labels), so that a wrong source fails before the attacks rather than
/// after them.
pub fn check_source(inputs: &EvalInputs<'_>) -> Result<()> {
    let config = &inputs.config.corruptions;
    if config.is_off() || config.files.as_os_str().is_empty() {
        return Ok(());
    }
    let (Some(&family), Some(&severity)) = (config.families()?.first(), config.severities.first())
    else {
        return Ok(());
    };
    published_block(inputs, family, severity, image_limit(inputs)).map(|_| ())
}

/// The images corrupted: as many as the evaluation's test set, unless fewer are asked for.
fn image_limit(inputs: &EvalInputs<'_>) -> usize {
    match inputs.config.corruptions.images {
        0 => inputs.test.len(),
        n => n.min(inputs.test.len()),
    }
}

/// The clean accuracy of `classifier` on `set`, batch by batch, each batch under its own
/// prediction draw.
fn accuracy(
    classifier: &dyn Classifier,
    set: &ImageSet,
    index: usize,
    inputs: &EvalInputs<'_>,
) -> Result<f64> {
    let rows: Vec<usize> = (0..set.len()).collect();
    let mut correct = 0;
    for (b, part) in rows.chunks(inputs.config.batch_size.max(1)).enumerate() {
        let (x, labels) = image_batch(set, part, inputs.device)?;
        let draw = Rng::derive(
            inputs.seed,
            &[
                stream::EVAL,
                index as u64,
                streams::CORRUPTION_PREDICTION,
                b as u64,
            ],
        );
        let predicted = rossl_nn::on_pool(|| predict(classifier, &x, &draw))?;
        correct += predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
    }
    Ok(correct as f64 / set.len().max(1) as f64)
}
