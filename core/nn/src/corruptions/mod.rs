//! The common corruptions of Hendrycks & Dietterich (ICLR 2019, "CIFAR-10-C"), computed on the fly.
//!
//! [`corrupt`] applies one [`Corruption`] at a severity 1..=5 to one channel-major image with
//! values in [0, 1], with the per-severity parameters of the reference generator
//! (`make_cifar_c.py` of hendrycks/robustness). Every family except frost (which needs photo
//! files) is here.
//!
//! * **Quantisation.** The reference stores `np.uint8(x)` of values in [0, 255], which truncates:
//!   every output here is `floor(clip(v, 0, 1) * 255) / 255` (values within 1e-6 of a whole
//!   number of 255ths count as that number). The families the reference runs
//!   through PIL or ImageMagick (pixelate, JPEG, motion blur, the snow layer) first quantise the
//!   input to `round(255 x)` as the reference's uint8 input is, and compute in integers as those
//!   libraries do: PIL's BOX resampling, libjpeg's baseline lossy path (integer DCTs, 4:2:0, fancy
//!   upsampling; no JPEG file is written, entropy coding being lossless) and ImageMagick 6 Q16's
//!   motion blur: byte-exact against PIL on the reference images, and the motion blur matched
//!   `convert -motion-blur` of ImageMagick 6.9.11-60 Q16 byte for byte in a one-off check.
//! * **Randomness** comes from the given [`Rng`] only, so the same seed gives the same image.
//!   Draws, in order: Gaussian and speckle noise one [`Rng::normal`] per value (channel, row,
//!   column order); shot noise one [`Rng::uniform`] per value (Poisson by CDF inversion); impulse
//!   noise two uniforms per value (flip with probability c, then salt or pepper); glass blur, per
//!   interior pixel from the bottom right, `dx` then `dy` by [`Rng::below`]; motion blur one
//!   angle; snow `height × width` normals then one angle; fog one uniform per plasma point, fill by
//!   fill; elastic 6 affine jitters then two `height × width` fields of uniforms; spatter
//!   `height × width` normals.
//! * **Reference quirks kept.** Glass blur's "swap" on NumPy views copies the displaced pixel
//!   instead of swapping; zoom blur averages 7, 12, 16, 21 and 26 zooms (NumPy's `arange` with the
//!   reference's stops, whose last element is past the step the paper suggests); defocus and
//!   glass use OpenCV and scikit-image border rules as the reference does.
//! * **Image sizes.** Parameters that the reference writes in pixels of a 32×32 image scale with
//!   `s = min(height, width)`: elastic's displacement scale, smoothing σ and affine jitter are
//!   `s × (the reference's fractions of 32)`, and its affine anchor points are placed as the
//!   reference places them; fog's plasma map is the smallest power of two at least
//!   `max(height, width)` (32 for CIFAR and 28×28), cropped; pixelate downsamples to
//!   `floor(c × height) × floor(c × width)`; glass blur's pixel swaps run over the whole interior.
//!   Zoom factors are relative and blur σ / radii stay in pixels.
//! * **Grey images** (one channel) get each family per channel. For the HSV families, grey has
//!   saturation 0: brightness adds to the value (the grey level), and saturate leaves the image
//!   unchanged (its hue is undefined, so the reference's colour shift has no grey meaning).
//!   Snow's greyscale blend uses the grey level itself. Images of other channel counts are treated
//!   channel by channel as grey where colour matters (HSV families, JPEG, snow).

mod blur;
mod digital;
mod filters;
mod jpeg;
mod noise;
mod resample;
mod spatter;
mod weather;

use std::fmt;
use std::str::FromStr;

use rossl_api::rng::Rng;
use rossl_api::{Error, Result};

/// One corruption family of CIFAR-10-C (file stems as in the published `.npy` files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Poisson (shot) noise.
    ShotNoise,
    /// Salt-and-pepper noise.
    ImpulseNoise,
    /// Multiplicative Gaussian noise.
    SpeckleNoise,
    /// Convolution with an anti-aliased disk.
    DefocusBlur,
    /// Gaussian blur, local pixel shuffling, Gaussian blur.
    GlassBlur,
    /// ImageMagick's motion blur at a random angle.
    MotionBlur,
    /// Average of centre zooms.
    ZoomBlur,
    /// Gaussian blur.
    GaussianBlur,
    /// Motion-blurred snow flakes over a greyed image.
    Snow,
    /// Plasma-fractal fog.
    Fog,
    /// HSV value shift.
    Brightness,
    /// Contrast reduction towards the per-channel mean.
    Contrast,
    /// HSV saturation scaling.
    Saturate,
    /// Random affine warp plus smoothed random displacement field.
    ElasticTransform,
    /// Box downsampling and upsampling.
    Pixelate,
    /// JPEG encoding and decoding.
    JpegCompression,
    /// Water drops or mud.
    Spatter,
}

impl Corruption {
    /// Every family implemented here, in the reference generator's order.
    pub const ALL: [Corruption; 18] = [
        Corruption::GaussianNoise,
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::DefocusBlur,
        Corruption::GlassBlur,
        Corruption::MotionBlur,
        Corruption::ZoomBlur,
        Corruption::Snow,
        Corruption::Fog,
        Corruption::Brightness,
        Corruption::Contrast,
        Corruption::ElasticTransform,
        Corruption::Pixelate,
        Corruption::JpegCompression,
        Corruption::SpeckleNoise,
        Corruption::GaussianBlur,
        Corruption::Spatter,
        Corruption::Saturate,
    ];

    /// RobustBench's 15 benchmark corruptions without frost, in RobustBench's order.
    pub fn benchmark() -> [Corruption; 14] {
        [
            Corruption::ShotNoise,
            Corruption::MotionBlur,
            Corruption::Snow,
            Corruption::Pixelate,
            Corruption::GaussianNoise,
            Corruption::DefocusBlur,
            Corruption::Brightness,
            Corruption::Fog,
            Corruption::ZoomBlur,
            Corruption::GlassBlur,
            Corruption::ImpulseNoise,
            Corruption::Contrast,
            Corruption::JpegCompression,
            Corruption::ElasticTransform,
        ]
    }

    /// The file stem of this family in CIFAR-10-C, e.g. `"gaussian_noise"`.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::SpeckleNoise => "speckle_noise",
            Corruption::DefocusBlur => "defocus_blur",
            Corruption::GlassBlur => "glass_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::ZoomBlur => "zoom_blur",
            Corruption::GaussianBlur => "gaussian_blur",
            Corruption::Snow => "snow",
            Corruption::Fog => "fog",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::Saturate => "saturate",
            Corruption::ElasticTransform => "elastic_transform",
            Corruption::Pixelate => "pixelate",
            Corruption::JpegCompression => "jpeg_compression",
            Corruption::Spatter => "spatter",
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corruption {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(c) = Corruption::ALL.iter().find(|c| c.name() == s) {
            return Ok(*c);
        }
        let names: Vec<&str> = Corruption::ALL.iter().map(|c| c.name()).collect();
        let hint = match s {
            "frost" => " (it needs photo files rossl does not ship)",
            _ => "",
        };
        Err(Error::msg(format!(
            "unknown corruption '{s}'{hint}; valid names: {}",
            names.join(", ")
        )))
    }
}

/// A channel-major image in f64 during a corruption.
#[derive(Clone, Debug)]
pub(crate) struct Img {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f64>,
}

impl Img {
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Img {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    pub fn plane(&self, ch: usize) -> &[f64] {
        &self.data[ch * self.h * self.w..(ch + 1) * self.h * self.w]
    }

    pub fn plane_mut(&mut self, ch: usize) -> &mut [f64] {
        let n = self.h * self.w;
        &mut self.data[ch * n..(ch + 1) * n]
    }

    /// Applies `f` to every plane.
    pub fn map_planes(&self, mut f: impl FnMut(&[f64]) -> Vec<f64>) -> Img {
        let mut out = Img::new(self.c, self.h, self.w);
        for ch in 0..self.c {
            let p = f(self.plane(ch));
            out.plane_mut(ch).copy_from_slice(&p);
        }
        out
    }

    /// The image as the reference's uint8 input: `round(255 x)`.
    pub fn to_u8(&self) -> Vec<u8> {
        self.data
            .iter()
            .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect()
    }
}

/// `floor(clip(v, 0, 1) * 255) / 255`, the reference's `np.uint8(np.clip(x, 0, 1) * 255)`;
/// values within 1e-6 of a whole number of 255ths are taken as that number (floating-point
/// round-off, and the exact byte values of the PIL and ImageMagick families).
pub(crate) fn quantise(v: f64) -> f32 {
    let x = v.clamp(0.0, 1.0) * 255.0;
    let r = x.round();
    let q = if (x - r).abs() < 1e-6 { r } else { x.floor() };
    (q / 255.0) as f32
}

/// Checks the severity, 1..=5, and returns its index 0..=4.
fn severity_index(severity: u8) -> Result<usize> {
    if (1..=5).contains(&severity) {
        Ok(usize::from(severity - 1))
    } else {
        Err(Error::msg(format!(
            "corruption severity {severity} is out of range: severities are 1 to 5"
        )))
    }
}

/// Applies `corruption` at `severity` (1..=5) to `image`, channel-major f32 in [0, 1] of shape
/// `(channels, height, width)`, drawing randomness from `rng`. Returns the corrupted image in
/// the same layout, quantised to multiples of 1/255 as the reference's uint8 files are (see the
/// module documentation for the rounding rule, image sizes and grey images).
pub fn corrupt(
    corruption: Corruption,
    severity: u8,
    image: &[f32],
    shape: (usize, usize, usize),
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let s = severity_index(severity)?;
    let (c, h, w) = shape;
    if c == 0 || h < 4 || w < 4 {
        return Err(Error::msg(format!(
            "corruption {corruption}: image shape ({c}, {h}, {w}) is too small (at least 1 channel and 4x4 pixels)"
        )));
    }
    if image.len() != c * h * w {
        return Err(Error::msg(format!(
            "corruption {corruption}: {} values do not make an image of shape ({c}, {h}, {w})",
            image.len()
        )));
    }
    if let Some(v) = image.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::msg(format!(
            "corruption {corruption}: pixel value {v} is outside [0, 1]"
        )));
    }
    let img = Img {
        c,
        h,
        w,
        data: image.iter().map(|&v| f64::from(v)).collect(),
    };
    let out = match corruption {
        Corruption::GaussianNoise => noise::gaussian(&img, s, rng),
        Corruption::ShotNoise => noise::shot(&img, s, rng),
        Corruption::ImpulseNoise => noise::impulse(&img, s, rng),
        Corruption::SpeckleNoise => noise::speckle(&img, s, rng),
        Corruption::DefocusBlur => blur::defocus(&img, s),
        Corruption::GlassBlur => blur::glass(&img, s, rng),
        Corruption::MotionBlur => blur::motion(&img, s, rng),
        Corruption::ZoomBlur => blur::zoom(&img, s),
        Corruption::GaussianBlur => blur::gaussian(&img, s),
        Corruption::Snow => weather::snow(&img, s, rng),
        Corruption::Fog => weather::fog(&img, s, rng),
        Corruption::Brightness => weather::brightness(&img, s),
        Corruption::Contrast => digital::contrast(&img, s),
        Corruption::Saturate => digital::saturate(&img, s),
        Corruption::ElasticTransform => digital::elastic(&img, s, rng),
        Corruption::Pixelate => digital::pixelate(&img, s),
        Corruption::JpegCompression => digital::jpeg(&img, s),
        Corruption::Spatter => spatter::spatter(&img, s, rng),
    };
    Ok(out.data.iter().map(|&v| quantise(v)).collect())
}
