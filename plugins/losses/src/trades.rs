//! `trades`: TRADES (Zhang et al., ICML 2019), supervised adversarial training that trades
//! accuracy for robustness. A linear classifier that the loss owns (`loss.trades.head.weight` and
//! `.bias`) maps features to logits; with p = softmax(head(clean feature)) and
//! q = softmax(head(perturbed feature)):
//! L = CE(head(clean), y) + beta * mean over rows of KL(p || q),  KL(p || q) = sum_c p_c (log p_c - log q_c),
//! as `trades.py` (`nn.KLDivLoss(size_average=False)` divided by the batch). It needs the clean
//! views (`uses_clean`): under the `pgd` regime the attack maximises L over the perturbation
//! with the clean side fixed (so it maximises the KL term, as TRADES' inner loop does) and the
//! update minimises it with gradients through both sides.

use crate::head::{labels_per_view, ClassifierHead};
use candle_core::{Tensor, D};
use rossl_api::components::{BuildContext, LossInput, Parameter, SslLoss};
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};
use rossl_nn::classify::{cross_entropy, log_softmax};

rossl_api::params! {
    /// Parameters of `trades`. Defaults: TRADES' CIFAR-10 beta.
    pub struct TradesParams {
        /// Weight of the KL (robustness) term.
        pub beta: f64 = 6.0,
        /// Number of classes (0: the dataset's).
        pub classes: usize = 0,
    }
}

impl Params for TradesParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(ParamError::new("beta", "must be >= 0 and finite"));
        }
        Ok(())
    }
}

/// The TRADES loss with its classifier head.
#[derive(Debug)]
pub struct Trades {
    head: ClassifierHead,
    beta: f64,
}

impl Trades {
    /// Builds the loss in `ctx` (which must know the encoder's feature width and, unless
    /// `classes` is set, the dataset's classes).
    pub fn build(params: &TradesParams, ctx: &BuildContext) -> Result<Self> {
        Ok(Trades {
            head: ClassifierHead::build("trades", params.classes, ctx)?,
            beta: params.beta,
        })
    }
}

impl SslLoss for Trades {
    fn loss(&self, _z: &Tensor, _views: usize) -> Result<Tensor> {
        Err(Error::msg(
            "the `trades` loss needs the labels and the clean views: call `loss_of`",
        ))
    }

    fn loss_of(&self, input: &LossInput<'_>) -> Result<Tensor> {
        let clean = input.clean.ok_or_else(|| {
            Error::msg(
                "the `trades` loss compares perturbed views with the clean ones and got no clean \
                 views: train it with `train.regime = \"pgd\"` or `\"free\"`",
            )
        })?;
        let rows = input.feature.dim(0)?;
        let labels = labels_per_view("trades", input.labels, input.views, rows)?;
        let clean_logits = self.head.logits(&clean.feature)?;
        let perturbed_logits = self.head.logits(input.feature)?;
        let natural = cross_entropy(&clean_logits, &labels)?.mean_all()?;
        let log_p = log_softmax(&clean_logits)?;
        let log_q = log_softmax(&perturbed_logits)?;
        let kl = (log_p.exp()? * (&log_p - &log_q)?)?
            .sum(D::Minus1)?
            .mean_all()?;
        Ok((natural + (kl * self.beta)?)?)
    }

    fn uses_labels(&self) -> bool {
        true
    }

    fn uses_clean(&self) -> bool {
        true
    }

    fn parameters(&self) -> Vec<Parameter> {
        self.head.parameters()
    }
}

rossl_api::register! {
    kind: loss,
    name: "trades",
    summary: "TRADES: cross-entropy on clean views + beta x KL(clean || perturbed) of a linear head (Zhang et al. 2019; pgd or free regime)",
    params: TradesParams,
    build: |p, ctx| Ok(Box::new(Trades::build(&p, ctx)?)),
}
