//! The basic block of a CIFAR-style ResNet, with one or two batch-norm branches.

use crate::dual_norm::DualNorm;
use candle_core::{Device, Tensor};
use rossl_api::components::{BnBranch, Mode};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::{kaiming_normal_fan_out, BatchNorm, Conv2d, Module};

/// conv3x3 - bn - ReLU - conv3x3 - bn, plus the shortcut (a 1x1 convolution and batch norm when
/// the shape changes), then ReLU.
pub(crate) struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: DualNorm,
    pub conv2: Conv2d,
    pub bn2: DualNorm,
    pub downsample: Option<(Conv2d, DualNorm)>,
}

/// Where a block sits and what it maps: its name, input and output channels, stride.
pub(crate) struct BlockShape<'a> {
    pub name: &'a str,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
}

impl BasicBlock {
    /// A block with PyTorch's initialisation, drawn from `rng`; `dual` gives every batch norm an
    /// adversarial branch.
    pub fn new(shape: BlockShape<'_>, dual: bool, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let BlockShape {
            name,
            cin,
            cout,
            stride,
        } = shape;
        let k3 = kaiming_normal_fan_out(cout, 9);
        let downsample = if stride != 1 || cin != cout {
            Some((
                Conv2d::new(
                    &format!("{name}.downsample.0"),
                    cin,
                    cout,
                    1,
                    stride,
                    0,
                    kaiming_normal_fan_out(cout, 1),
                    rng,
                    dev,
                )?,
                DualNorm::new(&format!("{name}.downsample.1"), cout, dual, dev)?,
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: Conv2d::new(
                &format!("{name}.conv1"),
                cin,
                cout,
                3,
                stride,
                1,
                k3,
                rng,
                dev,
            )?,
            bn1: DualNorm::new(&format!("{name}.bn1"), cout, dual, dev)?,
            conv2: Conv2d::new(&format!("{name}.conv2"), cout, cout, 3, 1, 1, k3, rng, dev)?,
            bn2: DualNorm::new(&format!("{name}.bn2"), cout, dual, dev)?,
            downsample,
        })
    }

    /// Channels-last in and out.
    pub fn forward(&self, x: &Tensor, mode: Mode, branch: BnBranch) -> Result<Tensor> {
        let y = self
            .bn1
            .forward(&self.conv1.forward(x, mode)?, mode, true, branch)?;
        let y = self
            .bn2
            .forward(&self.conv2.forward(&y, mode)?, mode, false, branch)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv.forward(x, mode)?, mode, false, branch)?,
            None => x.clone(),
        };
        Ok((y + shortcut)?.relu()?)
    }

    /// (convolution, batch norm of `branch`) pairs in forward order: conv1, conv2, downsample.
    pub fn layers(&self, branch: BnBranch) -> Vec<(&Conv2d, &BatchNorm)> {
        let mut out = vec![
            (&self.conv1, self.bn1.pick(branch)),
            (&self.conv2, self.bn2.pick(branch)),
        ];
        if let Some((conv, bn)) = &self.downsample {
            out.push((conv, bn.pick(branch)));
        }
        out
    }

    /// Its modules (both batch-norm branches).
    pub fn modules(&self) -> Vec<&dyn Module> {
        let mut m: Vec<&dyn Module> = vec![&self.conv1];
        m.extend(self.bn1.modules());
        m.push(&self.conv2);
        m.extend(self.bn2.modules());
        if let Some((conv, bn)) = &self.downsample {
            m.push(conv);
            m.extend(bn.modules());
        }
        m
    }
}
