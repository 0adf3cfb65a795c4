//! rossl's built-in encoders: `resnet18-cifar` (torchvision's ResNet-18 with a 3x3 stride-1 stem
//! and no max-pool, the paper's backbone) and `resnet-small` (the same design, narrower and
//! shallower, for CPU runs), each followed by the EMP-SSL head.
#![warn(missing_docs)]

mod block;
mod dual_norm;
mod fused;
pub mod registered;
pub mod resnet;
