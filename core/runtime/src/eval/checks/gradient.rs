//! Input gradients are finite and large enough to attack with.

use super::{verdict, CheckContext, SanityCheck};
use crate::eval::classifier_objective::ClassifierObjective;
use crate::eval::report::CheckResult;
use crate::eval::streams;
use crate::Result;
use candle_core::D;
use rossl_api::adversarial::input_gradient;
use rossl_api::batch::image_batch;
use rossl_api::components::AttackLoss;
use rossl_api::norm::Norm;
use rossl_api::rng::{stream, Rng};
use rossl_nn::classify::labels_tensor;

/// The smallest first-order change of the cross-entropy that one steepest step of size eps can
/// make (`eps * |grad|_1` under L-infinity, `eps * |grad|_2` under L2), for a gradient to count as usable: below it, f32 has rounded the
/// softmax to one (a saturated softmax) or the gradient is masked.
pub const MIN_LOSS_CHANGE: f64 = 1e-6;

/// The share of check images whose gradient must be usable.
pub const MIN_USABLE_SHARE: f64 = 0.9;

/// The cross-entropy input gradient is finite everywhere, and usable (one signed step of size
/// eps changes the loss by at least [`MIN_LOSS_CHANGE`] to first order) on at least 90% of the
/// check images. Fails for masked gradients: a saturated softmax, a non-differentiable step.
pub struct GradientsUsable;

impl SanityCheck for GradientsUsable {
    fn name(&self) -> &'static str {
        "input gradients are finite and large enough to attack with"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let inputs = cx.inputs;
        let norm = inputs.config.norm;
        let index = cx.index as u64;
        let eps = cx.max_eps().max(1.0 / 255.0);
        let mut finite = true;
        let mut changes = Vec::new();
        for (b, part) in cx.images.chunks(cx.batch).enumerate() {
            let b = b as u64;
            let (x, labels) = image_batch(inputs.test, part, inputs.device)?;
            let mut objective = ClassifierObjective {
                classifier: cx.classifier,
                labels: labels_tensor(&labels, inputs.device)?,
                label_values: labels.clone(),
                loss: AttackLoss::CrossEntropy,
                eot_samples: inputs.config.eot_samples,
                draws: Rng::derive(
                    inputs.seed,
                    &[stream::EVAL, index, streams::GRADIENT_DRAWS, b],
                ),
                prediction_rng: Rng::derive(
                    inputs.seed,
                    &[stream::EVAL, index, streams::GRADIENT_PREDICTION, b],
                ),
                targets: None,
            };
            let (_, gradient) = input_gradient(&mut objective, &x)?;
            let rows = gradient.dim(0)?;
            let flat = gradient.reshape((rows, ()))?;
            // the dual norm: a step of size eps in the threat model's norm changes the loss by
            // eps times it, to first order
            let dual = match norm {
                Norm::Linf => flat.abs()?.sum(D::Minus1)?,
                Norm::L2 => flat.sqr()?.sum(D::Minus1)?.sqrt()?,
            };
            let dual = dual.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
            finite &= dual.iter().all(|v| v.is_finite());
            changes.extend(dual.iter().map(|g| g * eps));
        }
        let usable = changes.iter().filter(|c| **c >= MIN_LOSS_CHANGE).count();
        let share = usable as f64 / changes.len().max(1) as f64;
        let mut sorted = changes.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        Ok(verdict(
            self.name(),
            finite && share >= MIN_USABLE_SHARE,
            format!(
                "cross-entropy input gradient on {} images: {}; eps * |grad|_{} >= {MIN_LOSS_CHANGE:e} for {:.1}% of them ({:.0}% needed), median {median:.3e}",
                changes.len(),
                if finite { "all finite" } else { "NOT all finite" },
                match norm {
                    Norm::Linf => "1",
                    Norm::L2 => "2",
                },
                100.0 * share,
                100.0 * MIN_USABLE_SHARE
            ),
        ))
    }
}
