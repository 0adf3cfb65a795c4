//! rossl's built-in view strategies (the `views` kind): `multi-crop` (torchvision's
//! RandomResizedCrop), `patches` (fixed-scale crops, the paper's patch-based views) and `single`
//! (the whole image), each with a configurable augmentation list following torchvision's
//! semantics.
//!
//! On one-channel images the colour steps that need colour are skipped, as torchvision does:
//! saturation and hue jitter leave a grey image unchanged, grayscale is a no-op; brightness and
//! contrast apply.
#![warn(missing_docs)]

pub mod augment;
pub mod blur;
pub mod colour;
pub mod crop;
pub mod resample;
pub mod strategies;
