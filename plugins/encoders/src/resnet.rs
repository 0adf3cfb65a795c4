//! A CIFAR-style ResNet with the EMP-SSL head.
//!
//! Backbone: `conv1` (3x3, stride 1) - `bn1` - ReLU, then stages `layer1..layer4` of basic blocks
//! (the first block of every stage after the first halves the resolution), global average
//! pooling. Head: `pre_feature` = Linear(width, hidden) - BatchNorm1d - ReLU (the feature that
//! probes read), `projection` = Linear(hidden, hidden) - BatchNorm1d - ReLU - Linear(hidden, z),
//! then L2 normalisation. Parameter names are those of the reference `encoder` module
//! (`backbone.layer1.0.conv1.weight`, `pre_feature.0.weight`, `projection.3.bias`, ...), so that
//! weights can be exchanged with PyTorch through safetensors.
//!
//! With dual batch norm (ACL's dual stream) every batch norm has a second, adversarial branch
//! (`backbone.bn1.adversarial.weight`, ...); [`Encoder::select_branch`] picks the one that
//! forward passes run through.

use crate::block::{BasicBlock, BlockShape};
use crate::dual_norm::DualNorm;
use crate::fused::{
    BackboneDesc, BackboneOp, BlockDesc, BnDesc, ConvDesc, FlatGradient, WindowedBackbone,
};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use rossl_api::components::{
    BnBranch, Buffer, Embedding, Encoder, Mode, Parameter, Window, WindowedPass,
};
use rossl_api::rng::{stream, Rng};
use rossl_api::{Error, Result};
use rossl_nn::{l2_normalize, uniform_fan_in, BatchNorm, Conv2d, Linear, Module};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The shape of a ResNet encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ResNetSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Channels of each stage (the stem has the first).
    pub widths: Vec<usize>,
    /// Basic blocks of each stage.
    pub blocks: Vec<usize>,
    /// Width of the head's hidden layers (the probed feature).
    pub hidden: usize,
    /// Width of the projection.
    pub z_dim: usize,
}

/// A ResNet backbone with the EMP-SSL head.
pub struct ResNetEncoder {
    spec: ResNetSpec,
    /// L2-normalise the projection.
    normalize_projection: bool,
    /// Every batch norm has an adversarial branch.
    dual: bool,
    /// The adversarial branch is selected (only ever true with `dual`).
    adversarial: AtomicBool,
    /// The fused CPU backbone of each branch (clean, then adversarial), or none.
    fused: Vec<Fused>,
    conv1: Conv2d,
    bn1: DualNorm,
    stages: Vec<Vec<BasicBlock>>,
    pre_linear: Linear,
    pre_bn: DualNorm,
    proj_linear1: Linear,
    proj_bn: DualNorm,
    proj_linear2: Linear,
}

/// The fused CPU backbone of one batch-norm branch: its description, the flat gradient sink, the slot its backward
/// passes leave the flat gradient in, and where each parameter's gradient sits in it.
struct Fused {
    desc: Arc<BackboneDesc>,
    sink: Var,
    flat_grad: FlatGradient,
    slices: Vec<(Var, usize)>,
    norms: Vec<BatchNorm>,
}

fn conv_desc(conv: &Conv2d) -> ConvDesc {
    let (stride, pad) = conv.geometry();
    ConvDesc {
        weight: conv.weight_var().as_tensor().clone(),
        stride,
        pad,
    }
}

fn bn_desc(bn: &BatchNorm) -> BnDesc {
    let [gamma, beta, mean, var] = bn.vars();
    BnDesc {
        gamma: gamma.as_tensor().clone(),
        beta: beta.as_tensor().clone(),
        running_mean: mean.as_tensor().clone(),
        running_var: var.as_tensor().clone(),
        eps: bn.eps(),
    }
}

impl ResNetEncoder {
    /// The fused backbones, one per branch; none off the CPU or in another precision.
    fn build_fused(&self) -> Result<Vec<Fused>> {
        let device = self.conv1.weight_var().device();
        if !device.is_cpu() || self.conv1.weight_var().dtype() != DType::F32 {
            return Ok(Vec::new());
        }
        let mut branches = vec![BnBranch::Clean];
        if self.dual {
            branches.push(BnBranch::Adversarial);
        }
        branches
            .into_iter()
            .map(|branch| self.build_fused_branch(branch, device))
            .collect()
    }

    fn build_fused_branch(&self, branch: BnBranch, device: &Device) -> Result<Fused> {
        let blocks = self
            .stages
            .iter()
            .flatten()
            .map(|b| BlockDesc {
                conv1: conv_desc(&b.conv1),
                bn1: bn_desc(b.bn1.pick(branch)),
                conv2: conv_desc(&b.conv2),
                bn2: bn_desc(b.bn2.pick(branch)),
                down: b
                    .downsample
                    .as_ref()
                    .map(|(c, n)| (conv_desc(c), bn_desc(n.pick(branch)))),
            })
            .collect();
        let desc = Arc::new(BackboneDesc {
            conv1: conv_desc(&self.conv1),
            bn1: bn_desc(self.bn1.pick(branch)),
            blocks,
        });
        let mut pairs: Vec<(&Conv2d, &BatchNorm)> = vec![(&self.conv1, self.bn1.pick(branch))];
        for b in self.stages.iter().flatten() {
            pairs.extend(b.layers(branch));
        }
        let mut slices = Vec::new();
        let mut offset = 0;
        for (conv, bn) in &pairs {
            let [gamma, beta, _, _] = bn.vars();
            for var in [conv.weight_var(), gamma, beta] {
                slices.push((var.clone(), offset));
                offset += var.elem_count();
            }
        }
        let sink = Var::from_tensor(&Tensor::zeros(offset, DType::F32, device)?)?;
        let norms = pairs.iter().map(|(_, bn)| (*bn).clone()).collect();
        Ok(Fused {
            desc,
            sink,
            flat_grad: FlatGradient::default(),
            slices,
            norms,
        })
    }

    /// The branch that forward passes run through now.
    fn branch(&self) -> BnBranch {
        if self.adversarial.load(Ordering::Relaxed) {
            BnBranch::Adversarial
        } else {
            BnBranch::Clean
        }
    }

    /// Uses (or not) the fused CPU backbone; the layered one is the reference implementation.
    pub fn set_fused(&mut self, on: bool) -> Result<()> {
        self.fused = if on { self.build_fused()? } else { Vec::new() };
        Ok(())
    }

    fn fused_backbone(&self, fused: &Fused, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let op = BackboneOp::new(
            fused.desc.clone(),
            mode.batch_statistics(),
            fused.flat_grad.clone(),
        );
        let moments = op.moments.clone();
        let pooled = if mode.tracks_weights() {
            // a gradient left by a backward pass that was never routed belongs to no later step
            drop(fused.flat_grad.take());
            x.contiguous()?.apply_op2(fused.sink.as_tensor(), op)?
        } else {
            x.contiguous()?.apply_op1(op)?
        };
        if mode == Mode::Train {
            let moments = moments
                .lock()
                .map_err(|_| Error::msg("fused backbone: poisoned statistics"))?;
            for (bn, (mean, var, count)) in fused.norms.iter().zip(moments.iter()) {
                bn.update_running(mean, var, *count)?;
            }
        }
        Ok(pooled)
    }

    /// A freshly initialised encoder (PyTorch's initialisations, drawn from the run's seed).
    pub fn new(spec: ResNetSpec, seed: u64, device: &Device) -> Result<Self> {
        Self::with_dual_batch_norm(spec, seed, device, false)
    }

    /// A freshly initialised encoder, with dual batch norm when `dual`: every batch norm gets an
    /// adversarial branch, initialised as the clean one (the other weights draw the same values
    /// as without).
    pub fn with_dual_batch_norm(
        spec: ResNetSpec,
        seed: u64,
        device: &Device,
        dual: bool,
    ) -> Result<Self> {
        if spec.widths.is_empty() || spec.widths.len() != spec.blocks.len() {
            return Err(Error::msg(format!(
                "resnet: {} stage widths but {} block counts",
                spec.widths.len(),
                spec.blocks.len()
            )));
        }
        let mut rng = Rng::derive(seed, &[stream::INIT]);
        let dev = device;
        let w0 = spec.widths[0];
        // The CIFAR stem replaces torchvision's conv1 after construction: PyTorch's default init.
        let conv1 = Conv2d::new(
            "backbone.conv1",
            spec.in_channels,
            w0,
            3,
            1,
            1,
            uniform_fan_in(spec.in_channels * 9),
            &mut rng,
            dev,
        )?;
        let bn1 = DualNorm::new("backbone.bn1", w0, dual, dev)?;
        let mut stages = Vec::new();
        let mut cin = w0;
        for (s, (&width, &count)) in spec.widths.iter().zip(&spec.blocks).enumerate() {
            let mut blocks = Vec::new();
            for b in 0..count {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let name = format!("backbone.layer{}.{b}", s + 1);
                let shape = BlockShape {
                    name: &name,
                    cin,
                    cout: width,
                    stride,
                };
                blocks.push(BasicBlock::new(shape, dual, &mut rng, dev)?);
                cin = width;
            }
            stages.push(blocks);
        }
        let pre_linear = Linear::new("pre_feature.0", cin, spec.hidden, &mut rng, dev)?;
        let pre_bn = DualNorm::new("pre_feature.1", spec.hidden, dual, dev)?;
        let proj_linear1 = Linear::new("projection.0", spec.hidden, spec.hidden, &mut rng, dev)?;
        let proj_bn = DualNorm::new("projection.1", spec.hidden, dual, dev)?;
        let proj_linear2 = Linear::new("projection.3", spec.hidden, spec.z_dim, &mut rng, dev)?;
        let mut encoder = ResNetEncoder {
            spec,
            normalize_projection: true,
            dual,
            adversarial: AtomicBool::new(false),
            fused: Vec::new(),
            conv1,
            bn1,
            stages,
            pre_linear,
            pre_bn,
            proj_linear1,
            proj_bn,
            proj_linear2,
        };
        encoder.fused = encoder.build_fused()?;
        Ok(encoder)
    }

    /// L2-normalise the projection (the default; EMP-SSL, SimCLR) or leave it as the head's
    /// last layer gives it (VICReg and Barlow Twins, whose losses depend on its scale).
    pub fn set_normalize_projection(&mut self, on: bool) {
        self.normalize_projection = on;
    }

    /// Its shape.
    pub fn spec(&self) -> &ResNetSpec {
        &self.spec
    }

    /// The pooled backbone output (B, last width) of images (B, C, H, W). The backbone computes
    /// channels-last internally (the layout of the fast CPU kernels).
    pub fn backbone(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let branch = self.branch();
        let fused = self.fused.get(usize::from(branch == BnBranch::Adversarial));
        if let Some(fused) = fused {
            if x.device().is_cpu() && x.dtype() == DType::F32 {
                return self.fused_backbone(fused, x, mode);
            }
        }
        let x = x.permute((0, 2, 3, 1))?.contiguous()?;
        let mut h = self
            .bn1
            .forward(&self.conv1.forward(&x, mode)?, mode, true, branch)?;
        for block in self.stages.iter().flatten() {
            h = block.forward(&h, mode, branch)?;
        }
        Ok(h.mean((1, 2))?)
    }

    /// The probed feature (the head's first layer) of pooled backbone outputs, through the
    /// batch-norm branch `branch`.
    fn feature_of_pooled(&self, pooled: &Tensor, mode: Mode, branch: BnBranch) -> Result<Tensor> {
        self.pre_bn
            .forward(&self.pre_linear.forward(pooled, mode)?, mode, true, branch)
    }

    fn modules(&self) -> Vec<&dyn Module> {
        let mut m: Vec<&dyn Module> = vec![&self.conv1];
        m.extend(self.bn1.modules());
        for block in self.stages.iter().flatten() {
            m.extend(block.modules());
        }
        m.push(&self.pre_linear);
        m.extend(self.pre_bn.modules());
        m.push(&self.proj_linear1);
        m.extend(self.proj_bn.modules());
        m.push(&self.proj_linear2);
        m
    }
}

impl Encoder for ResNetEncoder {
    fn forward(&self, images: &Tensor, mode: Mode) -> Result<Embedding> {
        let feature = self.features(images, mode)?;
        let h = self.proj_bn.forward(
            &self.proj_linear1.forward(&feature, mode)?,
            mode,
            true,
            self.branch(),
        )?;
        let z = self.proj_linear2.forward(&h, mode)?;
        Ok(Embedding {
            projection: if self.normalize_projection {
                l2_normalize(&z)?
            } else {
                z
            },
            feature,
        })
    }

    fn features(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        self.feature_of_pooled(&self.backbone(images, mode)?, mode, self.branch())
    }

    fn feature_dim(&self) -> usize {
        self.spec.hidden
    }

    fn projection_dim(&self) -> usize {
        self.spec.z_dim
    }

    fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        for m in self.modules() {
            m.collect_parameters(&mut out);
        }
        out
    }

    fn buffers(&self) -> Vec<Buffer> {
        let mut out = Vec::new();
        for m in self.modules() {
            m.collect_buffers(&mut out);
        }
        out
    }

    fn route_gradients(&self, grads: &mut GradStore) -> Result<()> {
        for fused in &self.fused {
            let Some(flat) = fused.flat_grad.take() else {
                continue;
            };
            for (var, offset) in &fused.slices {
                let g = flat
                    .narrow(0, *offset, var.elem_count())?
                    .reshape(var.shape())?;
                let total = match grads.remove(var.as_tensor()) {
                    Some(existing) => (existing + g)?,
                    None => g,
                };
                grads.insert(var.as_tensor(), total);
            }
        }
        Ok(())
    }

    fn dual_batch_norm(&self) -> bool {
        self.dual
    }

    fn select_branch(&self, branch: BnBranch) {
        self.adversarial.store(
            self.dual && branch == BnBranch::Adversarial,
            Ordering::Relaxed,
        );
    }

    fn windowed(&self, base: &Tensor) -> Result<Option<Box<dyn WindowedPass + '_>>> {
        let fused = self
            .fused
            .get(usize::from(self.branch() == BnBranch::Adversarial));
        let Some(fused) = fused.filter(|_| base.device().is_cpu() && base.dtype() == DType::F32)
        else {
            return Ok(None);
        };
        let dims = base.dims4()?;
        let values = base.flatten_all()?.to_vec1::<f32>()?;
        let backbone = WindowedBackbone::new(fused.desc.clone(), &values, dims)?;
        Ok(Some(Box::new(WindowedFeatures {
            encoder: self,
            backbone,
            branch: self.branch(),
        })))
    }
}

/// The encoder's features, in evaluation mode, of images changed inside one window each from a
/// base batch: the fused backbone recomputes what each window reaches, the head runs as usual.
struct WindowedFeatures<'a> {
    encoder: &'a ResNetEncoder,
    backbone: WindowedBackbone,
    /// The batch-norm branch the backbone's maps were computed through; the head's too.
    branch: BnBranch,
}

impl WindowedPass for WindowedFeatures<'_> {
    fn run(&mut self, images: &Tensor, rows: &[usize], windows: &[Window]) -> Result<Tensor> {
        let values = images.flatten_all()?.to_vec1::<f32>()?;
        let pooled = self.backbone.pooled(&values, rows, windows)?;
        let width = self.backbone.width();
        let pooled = Tensor::from_vec(pooled, (rows.len(), width), images.device())?;
        self.encoder
            .feature_of_pooled(&pooled, Mode::Eval, self.branch)
    }

    fn keep(&mut self, rows: &[usize]) -> Result<()> {
        Ok(self.backbone.keep(rows)?)
    }
}

#[cfg(test)]
mod windowed_tests;
