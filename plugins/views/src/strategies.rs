//! The registered view strategies.

use crate::augment::{emp_ssl, Augmentation};
use crate::crop::{sample_crop, CropBox};
use crate::resample::resized_crop;
use rossl_api::components::{ImageRef, ViewStrategy};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use serde::{Deserialize, Serialize};

/// How views are cut from an image before augmentation.
#[derive(Clone, Debug, PartialEq)]
pub enum Cut {
    /// torchvision's RandomResizedCrop with these scale and ratio ranges.
    Random {
        /// Area fraction range.
        scale: [f64; 2],
        /// Aspect ratio (width / height) range.
        ratio: [f64; 2],
    },
    /// The whole image.
    Whole,
    /// torchvision's `RandomCrop(size, padding)`: the image zero-padded by `padding` pixels on
    /// every side, then a crop of the image's size at a uniformly random offset (the supervised
    /// CIFAR augmentation).
    Padded {
        /// Zero padding on each side, in pixels.
        padding: usize,
    },
}

/// Views made by cutting, resizing to `size` and augmenting.
#[derive(Clone, Debug)]
pub struct CropViews {
    views: usize,
    size: Option<(usize, usize)>,
    cut: Cut,
    augment: Vec<Augmentation>,
}

impl CropViews {
    /// A strategy with `views` views per image, output `size` (None: the input size).
    pub fn new(
        views: usize,
        size: Option<(usize, usize)>,
        cut: Cut,
        augment: Vec<Augmentation>,
    ) -> Self {
        CropViews {
            views,
            size,
            cut,
            augment,
        }
    }
}

impl ViewStrategy for CropViews {
    fn views_per_image(&self) -> usize {
        self.views
    }

    fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        self.size.unwrap_or((height, width))
    }

    fn render(&self, image: ImageRef<'_>, rng: &mut Rng, out: &mut [f32]) {
        let (h, w) = (image.height, image.width);
        let (oh, ow) = self.output_size(h, w);
        let whole = CropBox {
            top: 0,
            left: 0,
            height: h,
            width: w,
        };
        match self.cut {
            Cut::Padded { padding } => padded_crop(image, padding, rng, out),
            Cut::Random { scale, ratio } => {
                let crop = sample_crop(h, w, scale, ratio, rng);
                resized_crop(image.pixels, (image.channels, h, w), crop, (oh, ow), out);
            }
            Cut::Whole => resized_crop(image.pixels, (image.channels, h, w), whole, (oh, ow), out),
        }
        for step in &self.augment {
            step.apply(out, (image.channels, oh, ow), rng);
        }
    }

    fn at_strength(&self, strength: f64) -> Option<Box<dyn ViewStrategy>> {
        Some(Box::new(self.weakened(strength)))
    }
}

impl CropViews {
    /// This strategy at augmentation `strength` in [0, 1] (see [`ViewStrategy::at_strength`]):
    /// the augmentations as [`Augmentation::at_strength`] says, and a random crop's smallest area
    /// fraction moved toward its largest, from `low` at strength 1 to `high` at 0:
    /// `low + (high - low) (1 - strength)` (DynACL: scale (1 - 0.9 s, 1) from (0.1, 1)). A
    /// fixed-scale patch, the padded crop and the whole image keep their cut.
    pub fn weakened(&self, strength: f64) -> CropViews {
        let cut = match self.cut {
            Cut::Random { scale, ratio } => {
                let low = scale[0] + (scale[1] - scale[0]) * (1.0 - strength);
                Cut::Random {
                    scale: [low.min(scale[1]), scale[1]],
                    ratio,
                }
            }
            ref other => other.clone(),
        };
        CropViews {
            views: self.views,
            size: self.size,
            cut,
            augment: self
                .augment
                .iter()
                .map(|a| a.at_strength(strength))
                .collect(),
        }
    }
}

/// `image` zero-padded by `padding` on every side, cropped back to its size at a random offset
/// (rows first, then columns, each uniform in 0..=2 * padding), into `out`.
fn padded_crop(image: ImageRef<'_>, padding: usize, rng: &mut Rng, out: &mut [f32]) {
    let (c, h, w) = (image.channels, image.height, image.width);
    let top = rng.below(2 * padding as u64 + 1) as isize - padding as isize;
    let left = rng.below(2 * padding as u64 + 1) as isize - padding as isize;
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y as isize + top, x as isize + left);
                let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                out[(ch * h + y) * w + x] = if inside {
                    image.pixels[(ch * h + sy as usize) * w + sx as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

fn check_range(key: &'static str, range: [f64; 2], max: f64) -> Result<(), ParamError> {
    if !(range[0] > 0.0 && range[0] <= range[1] && range[1] <= max) {
        return Err(ParamError::new(
            key,
            format!("range {range:?} must satisfy 0 < low <= high <= {max}"),
        ));
    }
    Ok(())
}

fn check_common(views: usize, augment: &[Augmentation]) -> Result<(), ParamError> {
    if views == 0 {
        return Err(ParamError::new("views", "needs at least one view"));
    }
    for (i, step) in augment.iter().enumerate() {
        step.validate(&format!("augment[{i}]"))?;
    }
    Ok(())
}

fn size(size: usize) -> Option<(usize, usize)> {
    (size > 0).then_some((size, size))
}

rossl_api::params! {
    /// Parameters of `multi-crop`. Defaults: EMP-SSL's 16 crops of scale 0.08-1 and ratio 3/4-4/3
    /// with its augmentations.
    pub struct MultiCropParams {
        /// Views per image.
        pub views: usize = 16,
        /// Output side in pixels (0: the input size).
        pub size: usize = 0,
        /// Range of the crop's area as a fraction of the image.
        pub scale: [f64; 2] = [0.08, 1.0],
        /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
        pub ratio: [f64; 2] = [3.0 / 4.0, 4.0 / 3.0],
        /// Augmentations, in order.
        pub augment: Vec<Augmentation> = emp_ssl(),
    }
}

impl Params for MultiCropParams {
    fn validate(&self) -> Result<(), ParamError> {
        check_common(self.views, &self.augment)?;
        check_range("scale", self.scale, 1.0)?;
        check_range("ratio", self.ratio, f64::MAX)
    }
}

rossl_api::params! {
    /// Parameters of `patches`: fixed-scale square crops at random places (EMP-SSL's patches: a
    /// quarter of the image, 16x16 of 32x32, resized to 32x32).
    pub struct PatchParams {
        /// Views per image.
        pub views: usize = 16,
        /// Output side in pixels (0: the input size).
        pub size: usize = 0,
        /// The patch's area as a fraction of the image.
        pub scale: f64 = 0.25,
        /// The patch's aspect ratio (width / height).
        pub ratio: f64 = 1.0,
        /// Augmentations, in order.
        pub augment: Vec<Augmentation> = emp_ssl(),
    }
}

impl Params for PatchParams {
    fn validate(&self) -> Result<(), ParamError> {
        check_common(self.views, &self.augment)?;
        check_range("scale", [self.scale, self.scale], 1.0)?;
        check_range("ratio", [self.ratio, self.ratio], f64::MAX)
    }
}

/// Parameters of `single`: the whole image, resized to `size` if given, optionally augmented.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SingleParams {
    /// Output side in pixels (0: the input size).
    pub size: usize,
    /// Augmentations, in order (none by default).
    pub augment: Vec<Augmentation>,
}

impl Params for SingleParams {
    fn validate(&self) -> Result<(), ParamError> {
        check_common(1, &self.augment)
    }
}

rossl_api::register! {
    kind: views,
    name: "multi-crop",
    summary: "n random resized crops (torchvision RandomResizedCrop sampling, bilinear) with an augmentation list",
    params: MultiCropParams,
    build: |p, _ctx| Ok(Box::new(CropViews::new(
        p.views,
        size(p.size),
        Cut::Random { scale: p.scale, ratio: p.ratio },
        p.augment,
    ))),
}

rossl_api::register! {
    kind: views,
    name: "patches",
    summary: "n fixed-scale patches at random places (the paper's patch-based views), resized, augmented",
    params: PatchParams,
    build: |p, _ctx| Ok(Box::new(CropViews::new(
        p.views,
        size(p.size),
        Cut::Random { scale: [p.scale, p.scale], ratio: [p.ratio, p.ratio] },
        p.augment,
    ))),
}

rossl_api::params! {
    /// Parameters of `pad-crop`. Defaults: the supervised CIFAR augmentation (RandomCrop(32,
    /// padding=4) and a horizontal flip).
    pub struct PadCropParams {
        /// Views per image.
        pub views: usize = 1,
        /// Zero padding on each side before the crop, in pixels.
        pub padding: usize = 4,
        /// Augmentations, in order.
        pub augment: Vec<Augmentation> = vec![Augmentation::HorizontalFlip { p: 0.5 }],
    }
}

impl Params for PadCropParams {
    fn validate(&self) -> Result<(), ParamError> {
        check_common(self.views, &self.augment)
    }
}

rossl_api::register! {
    kind: views,
    name: "pad-crop",
    summary: "n crops of the image's size from it zero-padded on every side (torchvision RandomCrop with padding), augmented",
    params: PadCropParams,
    build: |p, _ctx| Ok(Box::new(CropViews::new(
        p.views,
        None,
        Cut::Padded { padding: p.padding },
        p.augment,
    ))),
}

rossl_api::register! {
    kind: views,
    name: "single",
    summary: "the whole image as one view (for probes), optionally resized and augmented",
    params: SingleParams,
    build: |p, _ctx| Ok(Box::new(CropViews::new(1, size(p.size), Cut::Whole, p.augment))),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ACL's (and DynACL's) views: crops of scale (0.1, 1), flip, colour jitter, grayscale.
    fn acl() -> CropViews {
        let augment = vec![
            Augmentation::HorizontalFlip { p: 0.5 },
            Augmentation::ColorJitter {
                p: 0.8,
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.4,
                hue: 0.1,
            },
            Augmentation::Grayscale { p: 0.2 },
        ];
        let cut = Cut::Random {
            scale: [0.1, 1.0],
            ratio: [0.75, 4.0 / 3.0],
        };
        CropViews::new(2, None, cut, augment)
    }

    /// 40 renderings (seeds 0..40) of a 3 x 8 x 8 image by `views`.
    fn renders(views: &dyn ViewStrategy, image: &[f32]) -> Vec<Vec<f32>> {
        let image = ImageRef {
            pixels: image,
            channels: 3,
            height: 8,
            width: 8,
        };
        (0..40)
            .map(|seed| {
                let mut out = vec![0.0f32; image.pixels.len()];
                views.render(image, &mut Rng::new(seed), &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn strength_one_renders_the_same_views_and_zero_only_flips_of_the_whole_image() {
        let mut rng = Rng::new(11);
        let image: Vec<f32> = (0..3 * 8 * 8).map(|_| rng.uniform() as f32).collect();
        let views = acl();
        let original = renders(&views, &image);
        let full = views.at_strength(1.0).expect("multi-crop has a strength");
        assert_eq!(renders(full.as_ref(), &image), original);
        // at strength 0 the crop is the whole image and no colour step fires: every view is the
        // image or its mirror
        let mut mirror = image.clone();
        crate::colour::horizontal_flip(&mut mirror, 8);
        let plain = |v: &Vec<f32>| *v == image || *v == mirror;
        let weakest = renders(views.at_strength(0.0).unwrap().as_ref(), &image);
        assert!(weakest.iter().all(plain));
        assert!(weakest.contains(&image) && weakest.contains(&mirror));
        // ... which the full strength is not
        assert!(original.iter().filter(|v| plain(v)).count() < 10);
    }

    #[test]
    fn strength_scales_the_crop_and_the_colour_steps_but_not_the_flip() {
        let half = acl().weakened(0.5);
        let Cut::Random { scale, .. } = half.cut else {
            panic!("a random crop stays one")
        };
        assert_eq!(scale, [0.55, 1.0]);
        assert_eq!(half.augment[0], Augmentation::HorizontalFlip { p: 0.5 });
        assert_eq!(
            half.augment[1],
            Augmentation::ColorJitter {
                p: 0.4,
                brightness: 0.2,
                contrast: 0.2,
                saturation: 0.2,
                hue: 0.05,
            }
        );
        assert_eq!(half.augment[2], Augmentation::Grayscale { p: 0.1 });
    }
}
