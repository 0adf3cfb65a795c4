//! Copies of the encoder's and the classifier's tensors, and the check that evaluation changed
//! none of them.

use super::{verdict, CheckContext, SanityCheck};
use crate::eval::report::CheckResult;
use crate::train::encoder_tensors;
use crate::Result;
use candle_core::Tensor;
use rossl_api::components::Encoder;

/// A copy of named tensors, to prove later that they did not change.
pub struct Snapshot {
    tensors: Vec<(String, Tensor)>,
}

impl Snapshot {
    /// Copies `tensors`.
    pub fn of(tensors: Vec<(String, Tensor)>) -> Result<Self> {
        let tensors = tensors
            .into_iter()
            .map(|(n, t)| Ok((n, t.detach().copy()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Snapshot { tensors })
    }

    /// Copies every parameter and buffer of `encoder`.
    pub fn of_encoder(encoder: &dyn Encoder) -> Result<Self> {
        Self::of(encoder_tensors(encoder))
    }

    /// Names of the tensors of `now` that differ from the copy (by value, shape or presence).
    pub fn changed(&self, now: &[(String, Tensor)]) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        for (name, before) in &self.tensors {
            let same = match now.iter().find(|(n, _)| n == name) {
                Some((_, after)) => {
                    before.dims() == after.dims()
                        && before
                            .flatten_all()?
                            .ne(&after.to_device(before.device())?.flatten_all()?)?
                            .to_dtype(candle_core::DType::F32)?
                            .sum_all()?
                            .to_scalar::<f32>()?
                            == 0.0
                }
                None => false,
            };
            if !same {
                changed.push(name.clone());
            }
        }
        Ok(changed)
    }

    /// How many tensors it holds.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// The encoder's weights and batch-norm statistics (copied before the probe was fitted) and the
/// classifier's own tensors (copied after fitting, before the attacks) are bit-identical after
/// every attack and check.
pub struct StateUnchanged;

impl SanityCheck for StateUnchanged {
    fn name(&self) -> &'static str {
        "evaluation leaves weights, batch-norm statistics and the probe head unchanged"
    }

    fn run(&self, cx: &CheckContext<'_>) -> Result<CheckResult> {
        let [encoder, head] = cx.snapshots;
        let mut changed = encoder.changed(&encoder_tensors(cx.inputs.encoder))?;
        changed.extend(
            head.changed(&cx.classifier.tensors())?
                .into_iter()
                .map(|n| format!("classifier {n}")),
        );
        let detail = if changed.is_empty() {
            format!(
                "{} encoder tensors (from before the probe was fitted) and {} classifier tensors are bit-identical after evaluation",
                encoder.len(),
                head.len()
            )
        } else {
            format!("changed during evaluation: {}", changed.join(", "))
        };
        Ok(verdict(self.name(), changed.is_empty(), detail))
    }
}
