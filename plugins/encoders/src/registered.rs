//! The registered encoders, `resnet18-cifar` and `resnet-small`, and their parameters.

use crate::resnet::{ResNetEncoder, ResNetSpec};
use rossl_api::components::BuildContext;
use rossl_api::registry::{ParamError, Params};
use rossl_api::{Error, Result};

fn is_true(v: &bool) -> bool {
    *v
}

fn in_channels(requested: usize, ctx: &BuildContext) -> Result<usize> {
    match (requested, ctx.input) {
        (0, Some(input)) => Ok(input.channels),
        (0, None) => Ok(3),
        (c, Some(input)) if c != input.channels => Err(Error::Config(format!(
            "the encoder's in_channels = {c} but the data has {} channels; set in_channels = 0 to follow the data",
            input.channels
        ))),
        (c, _) => Ok(c),
    }
}

rossl_api::params! {
    /// Parameters of `resnet18-cifar`.
    pub struct ResNet18Params {
        /// Input channels (0: follow the data).
        pub in_channels: usize = 0,
        /// Width of the head's hidden layers and of the probed feature (EMP-SSL and SimCLR: 4096).
        pub hidden: usize = 4096,
        /// Width of the projection (EMP-SSL: 1024, SimCLR: 128).
        pub z_dim: usize = 1024,
        /// L2-normalise the projection (EMP-SSL, SimCLR); false leaves its scale to the loss
        /// (VICReg, Barlow Twins). Not written at its default.
        #[serde(skip_serializing_if = "is_true")]
        pub normalize_projection: bool = true,
        /// Dual batch norm (ACL's dual stream): every batch norm gets a second branch for
        /// adversarial inputs, which the training attack and the update's perturbed views run
        /// through; evaluations use the clean branch unless `eval.bn_branch` says otherwise. Needs
        /// the `pgd` regime with a clean stream. Not written when false.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub dual_batch_norm: bool = false,
    }
}

impl Params for ResNet18Params {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.hidden == 0 || self.z_dim == 0 {
            return Err(ParamError::new("hidden", "head widths must be at least 1"));
        }
        Ok(())
    }
}

rossl_api::params! {
    /// Parameters of `resnet-small`.
    pub struct ResNetSmallParams {
        /// Input channels (0: follow the data).
        pub in_channels: usize = 0,
        /// Channels of each stage.
        pub widths: Vec<usize> = vec![16, 32, 64, 128],
        /// Basic blocks per stage (one number for every stage).
        pub blocks: usize = 1,
        /// Width of the head's hidden layers (the probed feature).
        pub hidden: usize = 512,
        /// Width of the projection.
        pub z_dim: usize = 128,
        /// L2-normalise the projection (EMP-SSL, SimCLR); false leaves its scale to the loss
        /// (VICReg, Barlow Twins). Not written at its default.
        #[serde(skip_serializing_if = "is_true")]
        pub normalize_projection: bool = true,
        /// Dual batch norm (ACL's dual stream): every batch norm gets a second branch for
        /// adversarial inputs, which the training attack and the update's perturbed views run
        /// through; evaluations use the clean branch unless `eval.bn_branch` says otherwise. Needs
        /// the `pgd` regime with a clean stream. Not written when false.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub dual_batch_norm: bool = false,
    }
}

impl Params for ResNetSmallParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(ParamError::new(
                "widths",
                "needs at least one stage, each at least 1 channel wide",
            ));
        }
        if self.blocks == 0 {
            return Err(ParamError::new(
                "blocks",
                "needs at least one block per stage",
            ));
        }
        if self.hidden == 0 || self.z_dim == 0 {
            return Err(ParamError::new("hidden", "head widths must be at least 1"));
        }
        Ok(())
    }
}

rossl_api::register! {
    kind: encoder,
    name: "resnet18-cifar",
    summary: "torchvision ResNet-18, 3x3 stride-1 stem, no max-pool, + EMP-SSL head (hidden 4096, z 1024)",
    params: ResNet18Params,
    build: |p, ctx| {
        let spec = ResNetSpec {
            in_channels: in_channels(p.in_channels, ctx)?,
            widths: vec![64, 128, 256, 512],
            blocks: vec![2, 2, 2, 2],
            hidden: p.hidden,
            z_dim: p.z_dim,
        };
        let mut encoder =
            ResNetEncoder::with_dual_batch_norm(spec, ctx.seed, &ctx.device, p.dual_batch_norm)?;
        encoder.set_normalize_projection(p.normalize_projection);
        Ok(Box::new(encoder))
    },
}

rossl_api::register! {
    kind: encoder,
    name: "resnet-small",
    summary: "small CIFAR-style ResNet (widths 16/32/64/128, 1 block per stage, head 512/128) for CPU runs",
    params: ResNetSmallParams,
    build: |p, ctx| {
        let spec = ResNetSpec {
            in_channels: in_channels(p.in_channels, ctx)?,
            blocks: vec![p.blocks; p.widths.len()],
            widths: p.widths,
            hidden: p.hidden,
            z_dim: p.z_dim,
        };
        let mut encoder =
            ResNetEncoder::with_dual_batch_norm(spec, ctx.seed, &ctx.device, p.dual_batch_norm)?;
        encoder.set_normalize_projection(p.normalize_projection);
        Ok(Box::new(encoder))
    },
}
