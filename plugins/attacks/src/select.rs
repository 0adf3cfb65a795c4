//! Keeping, per example, the best perturbation found over restarts.

use candle_core::{DType, Tensor};
use rossl_api::components::Objective;
use rossl_api::Result;

/// The best perturbation per example so far: a successful one (when the objective reports
/// success) or the one with the highest loss.
pub struct Best {
    x: Option<Tensor>,
    loss: Option<Tensor>,
    success: Option<Vec<bool>>,
}

impl Best {
    /// Nothing found yet.
    pub fn new() -> Self {
        Best {
            x: None,
            loss: None,
            success: None,
        }
    }

    /// Offers `candidate`; keeps it for the examples where it is better.
    pub fn offer(&mut self, candidate: Tensor, objective: &mut dyn Objective) -> Result<()> {
        let loss = objective.loss(&candidate)?.detach().to_dtype(DType::F32)?;
        let success = objective.succeeded(&candidate)?;
        let (Some(best_x), Some(best_loss)) = (&self.x, &self.loss) else {
            self.x = Some(candidate);
            self.loss = Some(loss);
            self.success = success;
            return Ok(());
        };
        if loss.rank() == 0 {
            // one value for the whole batch: keep the candidate if it is better overall
            if loss.to_scalar::<f32>()? > best_loss.to_scalar::<f32>()? {
                self.x = Some(candidate);
                self.loss = Some(loss);
            }
            return Ok(());
        }
        let mut better: Vec<u8> = (loss.gt(best_loss)?).to_vec1::<u8>()?;
        if let (Some(new), Some(old)) = (&success, &mut self.success) {
            for i in 0..better.len() {
                better[i] = u8::from(match (new[i], old[i]) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => better[i] == 1,
                });
                old[i] = old[i] || new[i];
            }
        }
        let n = better.len();
        let mask = Tensor::from_vec(better, n, candidate.device())?;
        let mut shape = vec![n];
        shape.extend(std::iter::repeat_n(1, candidate.rank() - 1));
        let mask_x = mask
            .reshape(shape.as_slice())?
            .broadcast_as(candidate.shape())?;
        self.x = Some(mask_x.where_cond(&candidate, best_x)?);
        self.loss = Some(mask.where_cond(&loss, best_loss)?);
        Ok(())
    }

    /// The best perturbed input.
    pub fn into_inner(self) -> Option<Tensor> {
        self.x
    }
}
