//! SGD (momentum, Nesterov, weight decay) inside the solo-learn LARS wrapper.
//!
//! For every parameter with a gradient g (paper-spec section 1):
//! - LARS, for weights (and for biases and norms too when `exclude_bias_and_norm` is off): when
//!   |p| and |g| are non-zero, `r = eta |p| / (|g| + wd |p| + 1e-8)`, clipped to `min(r / lr, 1)`,
//!   and `g <- (g + wd p) r`; the SGD step then runs without weight decay. Excluded parameters
//!   get neither scaling nor weight decay.
//! - Without LARS, `g <- g + wd p` (for excluded parameters only when the exclusion is off).
//! - SGD: `buf <- momentum buf + g` (the first buffer is g), `g <- g + momentum buf` with
//!   Nesterov or `g <- buf` without, `p <- p - lr g`.
//!
//! Only the encoder's parameters are optimised: batch-norm running statistics are buffers and
//! never reach the optimiser.

use super::inplace::{self, Direction, MomentumUpdate, ParameterUpdate, PlainUpdate};
use crate::optim::OptimConfig;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rossl_api::components::{ParamRole, Parameter};
use rossl_api::{Error, Result};

/// What one step did, for metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepReport {
    /// The learning rate used.
    pub lr: f64,
    /// L2 norm of all gradients before scaling.
    pub grad_norm: f64,
    /// Parameters that had no gradient and were left unchanged.
    pub skipped: usize,
}

/// The optimiser state.
pub struct SgdLars {
    params: Vec<Parameter>,
    buffers: Vec<Option<Tensor>>,
    config: OptimConfig,
}

fn norm(t: &Tensor) -> Result<f64> {
    if inplace::applies(&[t]) {
        return Ok(inplace::norm(t)?);
    }
    Ok(t.sqr()?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        .sqrt())
}

impl SgdLars {
    /// An optimiser over `params` with the settings of `config` (its `lr` is the schedule's base;
    /// each step receives its own rate).
    pub fn new(params: Vec<Parameter>, config: &OptimConfig) -> Self {
        let buffers = vec![None; params.len()];
        SgdLars {
            params,
            buffers,
            config: config.clone(),
        }
    }

    /// The parameters it updates.
    pub fn parameters(&self) -> &[Parameter] {
        &self.params
    }

    /// One update with learning rate `lr` from the gradients in `grads`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepReport> {
        let mut report = StepReport {
            lr,
            ..StepReport::default()
        };
        let found = self.checked_gradients(grads, &mut report)?;
        for (index, grad, g_norm) in found {
            let direction = self.direction(index, g_norm, lr)?;
            let param = &self.params[index];
            let p = param.var.as_tensor().clone();
            let grad = grad.contiguous()?;
            if inplace::applies(&[&p, &grad]) {
                self.update_in_place(index, &p, &grad, direction, lr)?;
            } else {
                self.update_by_tensors(index, &p, grad, direction, lr)?;
            }
        }
        Ok(report)
    }

    /// Every parameter's gradient with its norm, first, so that a non-finite gradient stops the
    /// step before any parameter changes; fills the report's norm and skipped count.
    fn checked_gradients(
        &self,
        grads: &GradStore,
        report: &mut StepReport,
    ) -> Result<Vec<(usize, Tensor, f64)>> {
        let mut found = Vec::with_capacity(self.params.len());
        let mut grad_sq = 0.0;
        for (index, param) in self.params.iter().enumerate() {
            let Some(grad) = grads.get(param.var.as_tensor()) else {
                report.skipped += 1;
                continue;
            };
            let g_norm = norm(grad)?;
            if !g_norm.is_finite() {
                return Err(Error::Numerical(format!(
                    "the gradient of `{}` is not finite (norm {g_norm}); no parameter was updated",
                    param.name
                )));
            }
            grad_sq += g_norm * g_norm;
            found.push((index, grad.clone(), g_norm));
        }
        report.grad_norm = grad_sq.sqrt();
        Ok(found)
    }

    /// The direction `(g + wd p) rate` of parameter `index`, as LARS (or plain weight decay)
    /// shapes it.
    fn direction(&self, index: usize, g_norm: f64, lr: f64) -> Result<Direction> {
        let c = &self.config;
        let param = &self.params[index];
        let excluded = param.role == ParamRole::BiasOrNorm && c.lars.exclude_bias_and_norm;
        let mut direction = Direction {
            weight_decay: 0.0,
            rate: 1.0,
        };
        if c.lars.enabled {
            if excluded {
                return Ok(direction);
            }
            let p_norm = norm(param.var.as_tensor())?;
            if p_norm != 0.0 && g_norm != 0.0 {
                let mut rate = c.lars.eta * p_norm / (g_norm + p_norm * c.weight_decay + 1e-8);
                if c.lars.clip {
                    rate = (rate / lr).min(1.0);
                }
                direction = Direction {
                    weight_decay: c.weight_decay,
                    rate,
                };
            }
        } else if !excluded && c.weight_decay != 0.0 {
            direction.weight_decay = c.weight_decay;
        }
        Ok(direction)
    }

    /// The update of parameter `index` by the fused in-place kernels (contiguous f32 CPU).
    fn update_in_place(
        &mut self,
        index: usize,
        p: &Tensor,
        grad: &Tensor,
        direction: Direction,
        lr: f64,
    ) -> Result<()> {
        let c = &self.config;
        if c.momentum == 0.0 {
            let update = PlainUpdate {
                direction,
                lr: lr as f32,
            };
            return Ok(p.inplace_op2(grad, &update)?);
        }
        let buf = match self.buffers[index].take() {
            Some(b) => b,
            None => p.zeros_like()?,
        };
        let momentum = c.momentum as f32;
        buf.inplace_op3(
            grad,
            p,
            &MomentumUpdate {
                direction,
                momentum,
            },
        )?;
        p.inplace_op3(
            grad,
            &buf,
            &ParameterUpdate {
                direction,
                momentum,
                nesterov: c.nesterov,
                lr: lr as f32,
            },
        )?;
        self.buffers[index] = Some(buf);
        Ok(())
    }

    /// The same update by tensor operations (other devices and dtypes).
    fn update_by_tensors(
        &mut self,
        index: usize,
        p: &Tensor,
        grad: Tensor,
        direction: Direction,
        lr: f64,
    ) -> Result<()> {
        let c = &self.config;
        let mut g = grad;
        if direction.weight_decay != 0.0 {
            g = (g + (p * direction.weight_decay)?)?;
        }
        if direction.rate != 1.0 {
            g = (g * direction.rate)?;
        }
        if c.momentum != 0.0 {
            let buf = match self.buffers[index].take() {
                Some(b) => ((b * c.momentum)? + &g)?,
                None => g.clone(),
            };
            g = if c.nesterov {
                (g + (&buf * c.momentum)?)?
            } else {
                buf.clone()
            };
            self.buffers[index] = Some(buf);
        }
        let updated = (p - (g * lr)?)?;
        self.params[index].var.set(&updated)?;
        Ok(())
    }

    /// The momentum buffers by parameter name (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .filter_map(|(p, b)| {
                b.as_ref()
                    .map(|b| (format!("momentum.{}", p.name), b.clone()))
            })
            .collect()
    }

    /// Restores momentum buffers saved by [`SgdLars::state`]; `lookup` finds a tensor by name.
    pub fn load_state(&mut self, lookup: &dyn Fn(&str) -> Option<Tensor>) -> Result<()> {
        for (param, buffer) in self.params.iter().zip(self.buffers.iter_mut()) {
            *buffer = match lookup(&format!("momentum.{}", param.name)) {
                Some(t) => {
                    if t.dims() != param.var.dims() {
                        return Err(Error::msg(format!(
                            "checkpoint: momentum of `{}` has shape {:?}, the parameter {:?}",
                            param.name,
                            t.dims(),
                            param.var.dims()
                        )));
                    }
                    Some(t.to_device(param.var.device())?)
                }
                None => None,
            };
        }
        Ok(())
    }
}
