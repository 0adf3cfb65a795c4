//! `finetune`: fine-tunes a copy of the encoder with a linear head on labels, the third way the
//! robust-SSL literature evaluates an encoder (after standard and adversarial linear
//! fine-tuning). Three modes (`eval.finetune.mode`):
//!
//! - `standard`: cross-entropy on clean images;
//! - `pgd`: adversarial training on PGD examples (Madry et al.: cross-entropy on the examples
//!   alone);
//! - `trades` (the default): TRADES, CE(f(x), y) + beta KL(f(x) || f(x')), with x' from KL ascent
//!   started at x + 0.001 N(0, 1): the robust-SSL benchmark's adversarial full fine-tuning (AFF).
//!
//! The defaults are the benchmark's AFF schedule (GodXuxilie/RobustSSL_Benchmark,
//! `setup_hyperparameter`, the DynACL and DeACL rows): SGD with momentum 0.9, weight decay 2e-4 on
//! every parameter, learning rate 0.1 divided by 10 at epochs 15 and 20, 25 epochs, batch 128,
//! random crop (padding 4) and horizontal flip, and an attack of radius 8/255, step 2/255, 10
//! steps. Batch norm is in training mode for the update and in evaluation mode inside the
//! attack. The attacked classifier is the fine-tuned copy; the evaluated encoder and its
//! checkpoint are never touched.

mod adversarial;
mod augment;

use crate::training::LinearHead;
use adversarial::{kl_ascent, pgd_examples, trades_kl, AscentSettings};
use candle_core::Tensor;
use rossl_api::components::{
    Classifier, Encoder, Evaluator, FitContext, FitCost, Mode, ParamRole, Parameter,
};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::{Error, Result};
use rossl_nn::classify::{cross_entropy, labels_tensor};
use rossl_nn::optim::{LarsConfig, OptimConfig, SgdLars};

rossl_api::params! {
    /// Parameters of `finetune` (defaults: the robust-SSL benchmark's adversarial full
    /// fine-tuning).
    pub struct FinetuneParams {
        /// `standard` (cross-entropy), `pgd` (adversarial training on PGD examples) or `trades`.
        pub mode: String = "trades".into(),
        /// Epochs over the training images.
        pub epochs: usize = 25,
        /// Batch size.
        pub batch_size: usize = 128,
        /// Learning rate of SGD.
        pub lr: f64 = 0.1,
        /// Momentum of SGD.
        pub momentum: f64 = 0.9,
        /// L2 weight decay, on every parameter (as PyTorch's SGD over `model.parameters()`).
        pub weight_decay: f64 = 2e-4,
        /// Epochs at which the learning rate is multiplied by `gamma`.
        pub milestones: Vec<usize> = vec![15, 20],
        /// The factor at each milestone.
        pub gamma: f64 = 0.1,
        /// Random crop with this zero padding, and a horizontal flip with probability 1/2, on
        /// every training image (0: no augmentation).
        pub crop_padding: usize = 4,
        /// Radius of the training attack (L-infinity).
        pub eps: f64 = 8.0 / 255.0,
        /// Step of the training attack.
        pub step: f64 = 2.0 / 255.0,
        /// Steps of the training attack.
        pub steps: usize = 10,
        /// Weight of TRADES' KL term.
        pub beta: f64 = 6.0,
    }
}

impl Params for FinetuneParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if FinetuneMode::parse(&self.mode).is_none() {
            return Err(ParamError::new(
                "mode",
                format!(
                    "`{}` is not a fine-tuning mode: use \"standard\", \"pgd\" or \"trades\"",
                    self.mode
                ),
            ));
        }
        if !rossl_api::registry::positive(self.lr) {
            return Err(ParamError::new("lr", "must be > 0"));
        }
        if self.batch_size == 0 {
            return Err(ParamError::new("batch_size", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(ParamError::new(
                "epochs",
                "must be at least 1 (0 would attack an untrained head)",
            ));
        }
        for (key, value) in [("eps", self.eps), ("step", self.step)] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(ParamError::new(key, "must be >= 0 and finite"));
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(ParamError::new("weight_decay", "must be >= 0 and finite"));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(ParamError::new("gamma", "must be in (0, 1]"));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(ParamError::new("beta", "must be >= 0 and finite"));
        }
        if !(self.momentum >= 0.0 && self.momentum < 1.0) {
            return Err(ParamError::new("momentum", "must be in [0, 1)"));
        }
        Ok(())
    }
}

/// The fine-tuning modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FinetuneMode {
    Standard,
    Pgd,
    Trades,
}

impl FinetuneMode {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "standard" => Some(FinetuneMode::Standard),
            "pgd" => Some(FinetuneMode::Pgd),
            "trades" => Some(FinetuneMode::Trades),
            _ => None,
        }
    }
}

/// The fine-tuning evaluator.
pub struct Finetune {
    params: FinetuneParams,
    mode: FinetuneMode,
}

impl Finetune {
    /// The evaluator of checked parameters `params`.
    pub fn new(params: FinetuneParams) -> Result<Self> {
        let mode = FinetuneMode::parse(&params.mode)
            .ok_or_else(|| Error::msg(format!("unknown fine-tuning mode `{}`", params.mode)))?;
        Ok(Finetune { params, mode })
    }
}

/// The fine-tuned copy of the encoder and its head.
pub struct FinetunedClassifier {
    encoder: Box<dyn Encoder>,
    head: LinearHead,
    cost: FitCost,
}

impl Classifier for FinetunedClassifier {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        self.head
            .logits_detached(&self.encoder.features(images, Mode::Eval)?)
    }

    /// The head as `fc.weight` and `fc.bias`, and the fine-tuned encoder under `encoder.` and
    /// its own names: a `state_dict` of a module holding `encoder` and `fc`.
    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .head
            .tensors()
            .into_iter()
            .map(|(name, t)| (format!("fc.{name}"), t))
            .collect();
        let encoder = self
            .encoder
            .parameters()
            .into_iter()
            .map(|p| (p.name, p.var));
        let buffers = self.encoder.buffers().into_iter().map(|b| (b.name, b.var));
        out.extend(
            encoder
                .chain(buffers)
                .map(|(name, var)| (format!("encoder.{name}"), var.as_tensor().clone())),
        );
        out
    }

    fn fit_cost(&self) -> Option<FitCost> {
        Some(self.cost)
    }
}

impl Finetune {
    fn optimizer(&self, encoder: &dyn Encoder, head: &LinearHead) -> SgdLars {
        let p = &self.params;
        let config = OptimConfig {
            lr: p.lr,
            momentum: p.momentum,
            nesterov: false,
            weight_decay: p.weight_decay,
            lars: LarsConfig {
                enabled: false,
                exclude_bias_and_norm: false,
                ..LarsConfig::default()
            },
            ..OptimConfig::default()
        };
        let mut params = encoder.parameters();
        for (name, var) in [("fc.weight", &head.weight), ("fc.bias", &head.bias)] {
            params.push(Parameter {
                name: name.into(),
                var: var.clone(),
                role: ParamRole::Weight,
            });
        }
        SgdLars::new(params, &config)
    }

    /// The learning rate of epoch `epoch`: `lr` times `gamma` per milestone reached.
    fn lr_at(&self, epoch: usize) -> f64 {
        let p = &self.params;
        let reached = p.milestones.iter().filter(|&&m| epoch >= m).count();
        p.lr * p.gamma.powi(reached as i32)
    }

    /// The loss of one batch (images `x`, labels `y`) in `mode`, counting its passes in `cost`.
    fn batch_loss(
        &self,
        model: &Model<'_>,
        x: &Tensor,
        y: &Tensor,
        rng: &mut Rng,
        cost: &mut FitCost,
    ) -> Result<Tensor> {
        let p = &self.params;
        let ascent = AscentSettings {
            eps: p.eps,
            step: p.step,
            steps: p.steps,
        };
        let count = |cost: &mut FitCost, forward: u64, backward: u64| {
            cost.forward_passes += forward;
            cost.backward_passes += backward;
        };
        match self.mode {
            FinetuneMode::Standard => {
                count(cost, 1, 1);
                Ok(cross_entropy(&model.logits(x, Mode::Train)?, y)?.mean_all()?)
            }
            FinetuneMode::Pgd => {
                let adversarial = pgd_examples(model, x, y, &ascent, rng)?;
                count(cost, p.steps as u64 + 1, p.steps as u64 + 1);
                Ok(cross_entropy(&model.logits(&adversarial, Mode::Train)?, y)?.mean_all()?)
            }
            FinetuneMode::Trades => {
                let clean = model.logits(x, Mode::Eval)?.detach();
                let adversarial = kl_ascent(model, x, &clean, &ascent, rng)?;
                count(cost, p.steps as u64 + 3, p.steps as u64 + 2);
                let natural = model.logits(x, Mode::Train)?;
                let perturbed = model.logits(&adversarial, Mode::Train)?;
                let ce = cross_entropy(&natural, y)?.mean_all()?;
                let kl = trades_kl(&natural, &perturbed)?;
                Ok((ce + (kl * p.beta)?)?)
            }
        }
    }
}

/// The encoder copy and the head being fine-tuned, end to end.
pub(crate) struct Model<'a> {
    encoder: &'a dyn Encoder,
    head: &'a LinearHead,
}

impl Model<'_> {
    /// Logits of `images` with batch norm in `mode`, with gradients to the encoder, the head and
    /// the input.
    pub(crate) fn logits(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        self.head.logits(&self.encoder.features(images, mode)?)
    }
}

impl Evaluator for Finetune {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let copy = ctx.copy_encoder.ok_or_else(|| {
            Error::msg(
                "`finetune` trains a copy of the encoder and this caller provides none (the \
                 training monitor probes with frozen encoders: use `linear-probe` there)",
            )
        })?;
        let encoder = copy()?;
        let p = &self.params;
        let head = LinearHead::zeros(encoder.feature_dim(), ctx.train.classes, ctx.device)?;
        let mut optimizer = self.optimizer(encoder.as_ref(), &head);
        let model = Model {
            encoder: encoder.as_ref(),
            head: &head,
        };
        let mut rng = Rng::new(ctx.seed);
        let mut cost = FitCost::default();
        let views = augment::pad_crop(p.crop_padding, ctx.seed)?;
        let started = std::time::Instant::now();
        for epoch in 0..p.epochs {
            let lr = self.lr_at(epoch);
            let order = rng.permutation(ctx.train.len());
            // summed on the device, read once per epoch: no host round trip per step
            let mut loss_sum = Tensor::zeros((), candle_core::DType::F32, ctx.device)?;
            for part in order.chunks(p.batch_size) {
                let (x, labels) =
                    augment::batch(ctx.train, part, views.as_deref(), &mut rng, ctx.device)?;
                let y = labels_tensor(&labels, ctx.device)?;
                let loss = self.batch_loss(&model, &x, &y, &mut rng, &mut cost)?;
                loss_sum = (loss_sum + (loss.detach() * part.len() as f64)?)?;
                let mut grads = loss.backward()?;
                encoder.route_gradients(&mut grads)?;
                optimizer.step(&grads, lr)?;
                cost.steps += 1;
            }
            cost.epochs += 1;
            tracing::info!(
                "finetune ({}): epoch {}/{}, loss {:.4}, lr {lr}, {:.1} s",
                p.mode,
                epoch + 1,
                p.epochs,
                f64::from(loss_sum.to_scalar::<f32>()?) / ctx.train.len().max(1) as f64,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(Box::new(FinetunedClassifier {
            encoder,
            head,
            cost,
        }))
    }
}

rossl_api::register! {
    kind: evaluator,
    name: "finetune",
    summary: "fine-tunes a copy of the encoder and a linear head: standard, pgd or trades (adversarial full fine-tuning, the default)",
    params: FinetuneParams,
    build: |p, _ctx| Ok(Box::new(Finetune::new(p)?)),
}
