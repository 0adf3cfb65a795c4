//! `multi-crop-probe`: EMP-SSL's bag-of-features probe. An image's feature is the mean of the
//! encoder's features over `views` random resized crops (with random flips); a linear head is
//! trained on those features. Crops are cut, resized and flipped as matrix products, so the
//! classifier is differentiable in its input; being random, it is attacked with expectation over
//! transformation (gradients averaged over `eval.eot_samples` fresh draws of the crops).
//!
//! Unlike the reference evaluation, the test-time views use crops and flips only (no colour
//! jitter, blur or solarisation), so that gradients through them are exact.

use crate::training::{train_on_features, HeadTraining, LinearHead};
use candle_core::{DType, Device, Tensor};
use rossl_api::batch::image_batch;
use rossl_api::components::{Classifier, Evaluator, FitContext, FrozenEncoder};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_views::crop::sample_crop;
use rossl_views::resample::interpolation_matrix;

rossl_api::params! {
    /// Parameters of `multi-crop-probe`.
    pub struct MultiCropProbeParams {
        /// Views averaged per image.
        pub views: usize = 16,
        /// Crop area range.
        pub scale: [f64; 2] = [0.08, 1.0],
        /// Crop aspect ratio range.
        pub ratio: [f64; 2] = [3.0 / 4.0, 4.0 / 3.0],
        /// Mirror each view with probability 0.5.
        pub flip: bool = true,
        /// Optimiser (`adam` or `sgd`).
        pub optimizer: String = "adam".into(),
        /// Learning rate.
        pub lr: f64 = 3e-4,
        /// Epochs.
        pub epochs: usize = 10,
        /// Images per encoder batch when the bag of features is computed (each with `views` views).
        pub batch_size: usize = 64,
        /// Feature vectors per batch when the linear head is trained.
        pub head_batch_size: usize = 256,
    }
}

impl Params for MultiCropProbeParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.views == 0 {
            return Err(ParamError::new("views", "needs at least one view"));
        }
        if !(self.scale[0] > 0.0 && self.scale[0] <= self.scale[1] && self.scale[1] <= 1.0) {
            return Err(ParamError::new(
                "scale",
                "must satisfy 0 < low <= high <= 1",
            ));
        }
        if !(self.ratio[0] > 0.0 && self.ratio[0] <= self.ratio[1]) {
            return Err(ParamError::new("ratio", "must satisfy 0 < low <= high"));
        }
        self.training().validate()
    }
}

impl MultiCropProbeParams {
    fn training(&self) -> HeadTraining {
        HeadTraining {
            optimizer: self.optimizer.clone(),
            lr: self.lr,
            epochs: self.epochs,
            batch_size: self.head_batch_size,
            weight_decay: 0.0,
        }
    }
}

/// Random views of a batch as differentiable matrix products.
struct ViewSampler {
    views: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    flip: bool,
}

impl ViewSampler {
    /// (views * R, C, H, W) views of `x` (R, C, H, W), view-major, where `x` holds the rows
    /// `rows` (ascending) of a batch of `batch_len` images: crops are drawn for the whole batch
    /// (view v of row r is draw number v * batch_len + r) and each image gets those of its row,
    /// so that an image's views do not depend on which other rows are present.
    fn views(&self, x: &Tensor, rows: &[usize], batch_len: usize, rng: &mut Rng) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if rows.len() != b || rows.iter().any(|&r| r >= batch_len) {
            return Err(rossl_api::Error::msg(format!(
                "{b} images at rows {rows:?} of a batch of {batch_len}"
            )));
        }
        let mut present = vec![false; batch_len];
        for &r in rows {
            present[r] = true;
        }
        let n = self.views * b;
        let mut ys = Vec::with_capacity(n * h * h);
        let mut cols = Vec::with_capacity(n * w * w);
        for draw in 0..self.views * batch_len {
            let crop = sample_crop(h, w, self.scale, self.ratio, rng);
            let flip = self.flip && rng.bernoulli(0.5);
            if !present[draw % batch_len] {
                continue;
            }
            ys.extend(interpolation_matrix(crop.top, crop.height, h, h, false));
            // columns: (W_out x W) transposed to (W x W_out) for x @ R^T
            let m = interpolation_matrix(crop.left, crop.width, w, w, flip);
            for j in 0..w {
                for o in 0..w {
                    cols.push(m[o * w + j]);
                }
            }
        }
        let device = x.device();
        let ry = Tensor::from_vec(ys, (n, 1, h, h), device)?.to_dtype(x.dtype())?;
        let rx_t = Tensor::from_vec(cols, (n, 1, w, w), device)?.to_dtype(x.dtype())?;
        let repeated = x
            .unsqueeze(0)?
            .broadcast_as((self.views, b, c, h, w))?
            .reshape((n, c, h, w))?;
        let horizontal = repeated.broadcast_matmul(&rx_t)?; // (n, c, h, w)
        Ok(ry.broadcast_matmul(&horizontal)?)
    }
}

/// The mean feature over the views of `x`, the rows `rows` of a batch of `batch_len` images.
fn mean_features(
    encoder: FrozenEncoder<'_>,
    sampler: &ViewSampler,
    x: &Tensor,
    (rows, batch_len): (&[usize], usize),
    rng: &mut Rng,
) -> Result<Tensor> {
    let b = x.dim(0)?;
    let views = sampler.views(x, rows, batch_len, rng)?;
    let features = encoder.features(&views)?;
    let f = features.dim(1)?;
    Ok(features.reshape((sampler.views, b, f))?.mean(0)?)
}

/// Every row of a batch of `b` images.
fn all_rows(b: usize) -> Vec<usize> {
    (0..b).collect()
}

/// The bag-of-features classifier.
pub struct MultiCropClassifier<'a> {
    encoder: FrozenEncoder<'a>,
    sampler: ViewSampler,
    head: LinearHead,
}

impl Classifier for MultiCropClassifier<'_> {
    fn logits(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let b = images.dim(0)?;
        self.logits_at_rows(images, &all_rows(b), b, rng)
    }

    fn logits_at_rows(
        &self,
        images: &Tensor,
        rows: &[usize],
        batch_len: usize,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let features = mean_features(self.encoder, &self.sampler, images, (rows, batch_len), rng)?;
        self.head.logits_detached(&features)
    }

    fn is_random(&self) -> bool {
        true
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        self.head.tensors()
    }
}

/// The multi-crop probe.
pub struct MultiCropProbe {
    params: MultiCropProbeParams,
}

fn bag_of_features(
    encoder: FrozenEncoder<'_>,
    sampler: &ViewSampler,
    ctx: &FitContext<'_>,
    batch: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<Tensor> {
    let indices: Vec<usize> = (0..ctx.train.len()).collect();
    let mut parts = Vec::new();
    for part in indices.chunks(batch.max(1)) {
        let (x, _) = image_batch(ctx.train, part, device)?;
        parts.push(
            mean_features(
                encoder,
                sampler,
                &x,
                (&all_rows(part.len()), part.len()),
                rng,
            )?
            .detach()
            .to_dtype(DType::F32)?,
        );
    }
    Ok(Tensor::cat(&parts, 0)?)
}

impl Evaluator for MultiCropProbe {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let p = &self.params;
        let sampler = ViewSampler {
            views: p.views,
            scale: p.scale,
            ratio: p.ratio,
            flip: p.flip,
        };
        let mut rng = Rng::new(ctx.seed);
        let features = bag_of_features(
            ctx.encoder,
            &sampler,
            ctx,
            p.batch_size,
            &mut rng,
            ctx.device,
        )?;
        let head = LinearHead::new(
            ctx.encoder.feature_dim(),
            ctx.train.classes,
            &mut rng,
            ctx.device,
        )?;
        train_on_features(&head, &features, &ctx.train.labels, &p.training(), &mut rng)?;
        Ok(Box::new(MultiCropClassifier {
            encoder: ctx.encoder,
            sampler,
            head,
        }))
    }
}

rossl_api::register! {
    kind: evaluator,
    name: "multi-crop-probe",
    summary: "EMP-SSL bag-of-features: features averaged over random crops, linear head; attacked with EOT",
    params: MultiCropProbeParams,
    build: |p, _ctx| Ok(Box::new(MultiCropProbe { params: p })),
}
