//! `deacl`: the second stage of DeACL (Zhang et al., ECCV 2022), as pantheon5100/DeACL computes
//! it (`solo/methods/mocov2_distillation_AT.py`): a student S distils a frozen SSL teacher T
//! (`[train.target] from`, a finished run) on clean views while staying stable under attack:
//! L = -cos(S(x), T(x)) - k cos(S(x'), S(x)) over the features, averaged over the images, with
//! no stop-gradient on S(x) in the second term; the training attack ascends -cos(S(x'), T(x)),
//! pushing the student's adversarial feature away from the teacher's clean one. It needs the
//! clean views (`pgd` regime) and the teacher (`uses_target`).

use crate::invariance::cosine_similarity;
use candle_core::Tensor;
use rossl_api::components::{LossInput, SslLoss};
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};

rossl_api::params! {
    /// Parameters of `deacl`. Default: DeACL's `--trades_k`.
    pub struct DeaclParams {
        /// Weight k of the student's stability term.
        pub k: f64 = 2.0,
    }
}

impl Params for DeaclParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !(self.k >= 0.0 && self.k.is_finite()) {
            return Err(ParamError::new("k", "must be >= 0 and finite"));
        }
        Ok(())
    }
}

/// The DeACL student loss.
#[derive(Clone, Debug)]
pub struct Deacl {
    params: DeaclParams,
}

impl Deacl {
    /// The loss with these settings.
    pub fn new(params: DeaclParams) -> Self {
        Deacl { params }
    }
}

/// -mean cos(a, b) over the rows.
fn minus_cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(cosine_similarity(a, b)?.mean_all()?.neg()?)
}

impl SslLoss for Deacl {
    fn loss(&self, _z: &Tensor, _views: usize) -> Result<Tensor> {
        Err(Error::msg(
            "the `deacl` loss needs the teacher's and the clean views' features: call `loss_of`",
        ))
    }

    fn loss_of(&self, input: &LossInput<'_>) -> Result<Tensor> {
        let teacher = input.target.ok_or_else(|| {
            Error::msg("the `deacl` loss needs a teacher: set `train.target.from` to a finished run folder")
        })?;
        let clean = input.clean.ok_or_else(|| {
            Error::msg("the `deacl` loss compares perturbed views with the clean ones: train it with `train.regime = \"pgd\"` or `\"free\"`")
        })?;
        let (student, width) = (input.feature, teacher.feature.dim(1)?);
        if student.dim(1)? != width {
            return Err(Error::Config(format!(
                "the `deacl` loss compares the student's features ({} wide) with the teacher's ({width} wide): give the encoder the teacher's feature width",
                student.dim(1)?
            )));
        }
        let teacher = teacher.feature.detach();
        if input.attack {
            return minus_cosine(student, &teacher);
        }
        let distil = minus_cosine(&clean.feature, &teacher)?;
        let stable = minus_cosine(student, &clean.feature)?;
        Ok((distil + (stable * self.params.k)?)?)
    }

    fn uses_clean(&self) -> bool {
        true
    }

    fn uses_target(&self) -> bool {
        true
    }

    fn needs_teacher(&self) -> bool {
        true
    }
}

rossl_api::register! {
    kind: loss,
    name: "deacl",
    summary: "DeACL's student: -cos(S(x), T(x)) - k cos(S(x'), S(x)) with a frozen teacher (Zhang et al. 2022; pgd or free regime)",
    params: DeaclParams,
    build: |p, _ctx| Ok(Box::new(Deacl::new(p))),
}
