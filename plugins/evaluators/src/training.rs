//! Training a linear head on features.

use candle_core::{Device, Tensor, Var};
use rossl_api::components::{ParamRole, Parameter};
use rossl_api::registry::ParamError;
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::{cross_entropy, labels_tensor};
use rossl_nn::optim::{Adam, LrSchedule, SgdLars};
use rossl_nn::optim::{LarsConfig, OptimConfig};
use rossl_nn::uniform_fan_in;

rossl_api::params! {
    /// How a linear head is trained.
    pub struct HeadTraining {
        /// `adam` (the paper's probe) or `sgd` (momentum 0.9, cosine schedule per epoch, as EMP-SSL's
        /// bag-of-features probe).
        pub optimizer: String = "adam".into(),
        /// Learning rate.
        pub lr: f64 = 3e-4,
        /// Epochs over the training features.
        pub epochs: usize = 10,
        /// Batch size.
        pub batch_size: usize = 256,
        /// L2 weight decay.
        pub weight_decay: f64 = 0.0,
    }
}

impl rossl_api::registry::Params for HeadTraining {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if !matches!(self.optimizer.as_str(), "adam" | "sgd") {
            return Err(ParamError::new(
                "optimizer",
                format!(
                    "`{}` is not an optimiser: use \"adam\" or \"sgd\"",
                    self.optimizer
                ),
            ));
        }
        if !rossl_api::registry::positive(self.lr) {
            return Err(ParamError::new("lr", "must be > 0"));
        }
        if self.batch_size == 0 {
            return Err(ParamError::new("batch_size", "must be at least 1"));
        }
        Ok(())
    }
}

/// A linear head (weight (C, F), bias (C)).
pub struct LinearHead {
    /// Weight.
    pub weight: Var,
    /// Bias.
    pub bias: Var,
}

impl LinearHead {
    /// PyTorch's default initialisation, from `rng`.
    pub fn new(features: usize, classes: usize, rng: &mut Rng, device: &Device) -> Result<Self> {
        let init = uniform_fan_in(features);
        Ok(LinearHead {
            weight: init.var((classes, features), rng, device)?,
            bias: init.var(classes, rng, device)?,
        })
    }

    /// A head of zeros (the robust-SSL benchmark's initialisation of the fine-tuned `fc`).
    pub fn zeros(features: usize, classes: usize, device: &Device) -> Result<Self> {
        Ok(LinearHead {
            weight: Var::zeros((classes, features), candle_core::DType::F32, device)?,
            bias: Var::zeros(classes, candle_core::DType::F32, device)?,
        })
    }

    /// `weight` and `bias`, as an `nn.Linear`'s `state_dict` names them.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".into(), self.weight.as_tensor().clone()),
            ("bias".into(), self.bias.as_tensor().clone()),
        ]
    }

    /// Logits of features (B, F), with gradients to the head's variables.
    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        Ok(features
            .matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?)
    }

    /// Logits with the head detached (for attacks and predictions).
    pub fn logits_detached(&self, features: &Tensor) -> Result<Tensor> {
        Ok(features
            .matmul(&self.weight.as_tensor().detach().t()?)?
            .broadcast_add(&self.bias.as_tensor().detach())?)
    }
}

/// An optimiser for a head.
pub enum HeadOptimizer {
    /// Adam.
    Adam(Adam),
    /// SGD with momentum and a cosine schedule over epochs.
    Sgd(SgdLars, LrSchedule),
}

impl HeadOptimizer {
    /// The optimiser `settings` asks for, over `head`, for `epochs` epochs.
    pub fn new(settings: &HeadTraining, head: &LinearHead, epochs: usize) -> Result<Self> {
        if settings.optimizer == "sgd" {
            let config = OptimConfig {
                lr: settings.lr,
                weight_decay: settings.weight_decay,
                lars: LarsConfig {
                    enabled: false,
                    ..LarsConfig::default()
                },
                nesterov: false,
                ..OptimConfig::default()
            };
            let params = vec![
                Parameter {
                    name: "weight".into(),
                    var: head.weight.clone(),
                    role: ParamRole::Weight,
                },
                Parameter {
                    name: "bias".into(),
                    var: head.bias.clone(),
                    role: ParamRole::Weight,
                },
            ];
            Ok(HeadOptimizer::Sgd(
                SgdLars::new(params, &config),
                LrSchedule::new(&config, epochs),
            ))
        } else {
            Ok(HeadOptimizer::Adam(Adam::new(
                vec![head.weight.clone(), head.bias.clone()],
                settings.lr,
                settings.weight_decay,
            )?))
        }
    }

    /// One step on `loss`, in epoch `epoch`.
    pub fn step(&mut self, loss: &Tensor, epoch: usize) -> Result<()> {
        let grads = loss.backward()?;
        match self {
            HeadOptimizer::Adam(adam) => adam.step(&grads),
            HeadOptimizer::Sgd(sgd, schedule) => sgd.step(&grads, schedule.lr(epoch)).map(|_| ()),
        }
    }
}

/// Trains `head` on precomputed `features` (N, F) with `labels` for `settings.epochs` epochs.
pub fn train_on_features(
    head: &LinearHead,
    features: &Tensor,
    labels: &[u32],
    settings: &HeadTraining,
    rng: &mut Rng,
) -> Result<()> {
    let device = features.device().clone();
    let mut optimizer = HeadOptimizer::new(settings, head, settings.epochs)?;
    let n = labels.len();
    for epoch in 0..settings.epochs {
        let order = rng.permutation(n);
        for part in order.chunks(settings.batch_size) {
            let idx: Vec<u32> = part.iter().map(|&i| i as u32).collect();
            let idx = Tensor::from_vec(idx, part.len(), &device)?;
            let batch = features.index_select(&idx, 0)?;
            let y: Vec<u32> = part.iter().map(|&i| labels[i]).collect();
            let loss =
                cross_entropy(&head.logits(&batch)?, &labels_tensor(&y, &device)?)?.mean_all()?;
            optimizer.step(&loss, epoch)?;
        }
    }
    Ok(())
}
