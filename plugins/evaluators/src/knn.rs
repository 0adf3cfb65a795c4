//! `knn`: weighted k-nearest-neighbour classification on L2-normalised features (EMP-SSL's kNN:
//! cosine similarity, votes weighted by exp(similarity / T)).

use candle_core::Tensor;
use rossl_core::components::{Classifier, Evaluator, FitContext, FrozenEncoder};
use rossl_core::eval::extract_features;
use rossl_core::nn::l2_normalize;
use rossl_core::registry::{ParamError, Params};
use rossl_core::rng::Rng;
use rossl_core::Result;
use serde::{Deserialize, Serialize};

/// Parameters of `knn`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KnnParams {
    /// Neighbours that vote.
    pub k: usize,
    /// Temperature of the vote weights exp(sim / T).
    pub temperature: f64,
    /// Batch size for feature extraction.
    pub batch_size: usize,
}

impl Default for KnnParams {
    fn default() -> Self {
        KnnParams {
            k: 20,
            temperature: 0.07,
            batch_size: 256,
        }
    }
}

impl Params for KnnParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.k == 0 {
            return Err(ParamError::new("k", "needs at least one neighbour"));
        }
        if !rossl_core::registry::positive(self.temperature) {
            return Err(ParamError::new("temperature", "must be > 0"));
        }
        Ok(())
    }
}

/// The kNN evaluator.
pub struct Knn {
    params: KnnParams,
}

/// A kNN classifier over stored training features. Its logits are the log of the class vote
/// totals; they are differentiable with respect to the input through the selected neighbours'
/// similarities.
pub struct KnnClassifier<'a> {
    encoder: FrozenEncoder<'a>,
    bank: Tensor,
    labels: Vec<u32>,
    classes: usize,
    k: usize,
    temperature: f64,
}

impl Classifier for KnnClassifier<'_> {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let features = l2_normalize(&self.encoder.features(images)?)?;
        let similarity = features.matmul(&self.bank.t()?)?; // (B, N)
        let k = self.k.min(self.labels.len());
        let rows = similarity.detach().to_vec2::<f32>()?;
        let b = rows.len();
        let mut index = Vec::with_capacity(b * k);
        let mut one_hot = vec![0.0f32; b * k * self.classes];
        for (i, row) in rows.iter().enumerate() {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.select_nth_unstable_by(k - 1, |a, c| row[*c].total_cmp(&row[*a]));
            for (j, &n) in order[..k].iter().enumerate() {
                index.push(n as u32);
                one_hot[(i * k + j) * self.classes + self.labels[n] as usize] = 1.0;
            }
        }
        let device = images.device();
        let index = Tensor::from_vec(index, (b, k), device)?;
        let nearest = similarity.gather(&index, 1)?; // (B, k)
        let weights = (nearest / self.temperature)?.exp()?;
        let one_hot =
            Tensor::from_vec(one_hot, (b, k, self.classes), device)?.to_dtype(weights.dtype())?;
        let votes = weights.unsqueeze(2)?.broadcast_mul(&one_hot)?.sum(1)?; // (B, C)
        Ok((votes + 1e-12)?.log()?)
    }
}

impl Evaluator for Knn {
    fn fit<'a>(&self, ctx: &FitContext<'a>) -> Result<Box<dyn Classifier + 'a>> {
        let bank = l2_normalize(&extract_features(
            ctx.encoder,
            ctx.train,
            self.params.batch_size,
            ctx.device,
        )?)?;
        Ok(Box::new(KnnClassifier {
            encoder: ctx.encoder,
            bank,
            labels: ctx.train.labels.clone(),
            classes: ctx.train.classes,
            k: self.params.k,
            temperature: self.params.temperature,
        }))
    }
}

rossl_core::register! {
    kind: evaluator,
    name: "knn",
    summary: "k-nearest-neighbour vote on cosine similarity (k 20, weights exp(sim / 0.07)), differentiable for attacks",
    params: KnnParams,
    build: |p, _ctx| Ok(Box::new(Knn { params: p })),
}
