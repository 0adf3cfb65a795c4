//! A method's training loss: a weighted sum of registered SSL losses over the projections of the
//! views. (What an attack maximises is a [`rossl_api::components::Objective`] of the input; the
//! training attack wraps this loss in one, as a closure.)

use crate::{Error, Result};
use candle_core::Tensor;
use rossl_api::components::{LossInput, Parameter, SslLoss};

/// One term of the weighted loss.
pub struct Term {
    /// The loss's registered name.
    pub name: String,
    /// Its weight.
    pub weight: f64,
    /// The loss.
    pub loss: Box<dyn SslLoss>,
}

/// The value of a [`WeightedSslLoss`]: the weighted total (a scalar tensor, differentiable) and
/// each term's unweighted value.
pub struct SslLossValue {
    /// sum_i weight_i * term_i.
    pub total: Tensor,
    /// (name, unweighted value) of each term, detached.
    pub terms: Vec<(String, Tensor)>,
}

impl SslLossValue {
    /// The total as a number; an error naming the terms when it is NaN or infinite.
    pub fn finite_total(&self) -> Result<f64> {
        finite(&self.total, &self.term_values().unwrap_or_default())
    }

    /// Each term's value as a number.
    pub fn term_values(&self) -> Result<Vec<(String, f64)>> {
        self.terms
            .iter()
            .map(|(n, t)| {
                Ok((
                    n.clone(),
                    t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
                ))
            })
            .collect()
    }
}

/// The weighted sum of SSL losses that a method minimises.
pub struct WeightedSslLoss {
    terms: Vec<Term>,
}

impl WeightedSslLoss {
    /// A weighted loss from its terms (at least one).
    pub fn new(terms: Vec<Term>) -> Result<Self> {
        if terms.is_empty() {
            return Err(Error::msg("an SSL objective needs at least one loss term"));
        }
        Ok(WeightedSslLoss { terms })
    }

    /// The terms.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether a term needs the images' labels.
    pub fn uses_labels(&self) -> bool {
        self.terms.iter().any(|t| t.loss.uses_labels())
    }

    /// Whether a term compares adversarial views with the clean ones ([`SslLoss::uses_clean`]).
    pub fn uses_clean(&self) -> bool {
        self.terms.iter().any(|t| t.loss.uses_clean())
    }

    /// Whether a term regresses onto a target network ([`SslLoss::uses_target`]).
    pub fn uses_target(&self) -> bool {
        self.terms.iter().any(|t| t.loss.uses_target())
    }

    /// The trainable weights the terms own (heads), optimised with the encoder's.
    pub fn parameters(&self) -> Vec<Parameter> {
        self.terms
            .iter()
            .flat_map(|t| t.loss.parameters())
            .collect()
    }

    /// The loss of one batch, each term through [`SslLoss::loss_of`].
    pub fn loss(&self, input: &LossInput<'_>) -> Result<SslLossValue> {
        if self.uses_labels() && input.labels.is_none() {
            return Err(Error::msg(
                "a loss term needs the images' labels, and this batch came without them",
            ));
        }
        let mut total: Option<Tensor> = None;
        let mut values = Vec::with_capacity(self.terms.len());
        for term in &self.terms {
            let value = term.loss.loss_of(input)?;
            let weighted = (&value * term.weight)?;
            total = Some(match total {
                Some(t) => (t + weighted)?,
                None => weighted,
            });
            values.push((term.name.clone(), value.detach()));
        }
        Ok(SslLossValue {
            total: total.expect("at least one term"),
            terms: values,
        })
    }
}

/// `total` (a scalar tensor) as a number; an error naming the `terms` when it is NaN or infinite.
pub fn finite(total: &Tensor, terms: &[(String, f64)]) -> Result<f64> {
    let total = total
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    if total.is_finite() {
        return Ok(total);
    }
    let terms = terms
        .iter()
        .map(|(n, v)| format!("{n} = {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::Numerical(format!("the loss is {total} ({terms})")))
}
