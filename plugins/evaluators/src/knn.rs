//! `knn`: local-mean k-nearest-neighbour classification on L2-normalised features (Mitani and
//! Hamamoto 2006): the score of class c is the mean cosine similarity of an image's feature to
//! its k nearest training features *of class c*, divided by a temperature; the prediction is the
//! highest score.
//!
//! Every class has a score that moves smoothly with the input, so the cross-entropy of these
//! logits keeps a usable gradient even where all of an image's nearest neighbours share its
//! class: a vote count over one neighbourhood would be flat there (and its log saturates the
//! softmax), which masks gradient attacks instead of measuring robustness.

use candle_core::{DType, Tensor};
use rossl_api::components::{Classifier, Evaluator, FitContext, FrozenEncoder};
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;
use rossl_nn::classify::extract_features;
use rossl_nn::l2_normalize;

rossl_api::params! {
    /// Parameters of `knn`.
    pub struct KnnParams {
        /// Nearest training features of each class averaged into its score.
        pub k: usize = 10,
        /// Temperature T of the logits (mean similarity / T).
        pub temperature: f64 = 0.1,
        /// Batch size for feature extraction.
        pub batch_size: usize = 256,
    }
}

impl Params for KnnParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.k == 0 {
            return Err(ParamError::new("k", "needs at least one neighbour"));
        }
        if !rossl_api::registry::positive(self.temperature) {
            return Err(ParamError::new("temperature", "must be > 0"));
        }
        Ok(())
    }
}

/// The kNN evaluator.
pub struct Knn {
    params: KnnParams,
}

/// A local-mean kNN classifier over stored training features, differentiable with respect to the
/// input through the similarities of the neighbours it selects.
pub struct KnnClassifier<'a> {
    encoder: FrozenEncoder<'a>,
    bank: Tensor,
    labels: Vec<u32>,
    /// Indices of the bank's rows of each class.
    by_class: Vec<Vec<usize>>,
    k: usize,
    temperature: f64,
}

impl KnnClassifier<'_> {
    /// For each image and class, the bank rows of that class's `k` nearest neighbours (repeating
    /// the last one for a class with fewer than `k` training images; row 0 for a class with none).
    fn neighbours(&self, similarity: &[Vec<f32>]) -> Vec<u32> {
        let classes = self.by_class.len();
        let mut index = Vec::with_capacity(similarity.len() * classes * self.k);
        for row in similarity {
            for members in &self.by_class {
                let mut order = members.clone();
                let k = self.k.min(order.len());
                if k > 0 && k < order.len() {
                    order.select_nth_unstable_by(k - 1, |a, b| row[*b].total_cmp(&row[*a]));
                }
                order.truncate(k);
                let last = order.last().copied().unwrap_or(0);
                order.resize(self.k, last);
                index.extend(order.iter().map(|&i| i as u32));
            }
        }
        index
    }
}

impl Classifier for KnnClassifier<'_> {
    fn logits(&self, images: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let features = l2_normalize(&self.encoder.features(images)?)?;
        let similarity = features.matmul(&self.bank.t()?)?; // (B, N)
        let b = similarity.dim(0)?;
        let classes = self.by_class.len();
        let host = similarity.detach().to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let index = Tensor::from_vec(
            self.neighbours(&host),
            (b, classes * self.k),
            images.device(),
        )?;
        let mean = similarity
            .gather(&index, 1)?
            .reshape((b, classes, self.k))?
            .mean(2)?;
        let scores = (mean / self.temperature)?;
        // a class without training images scores below any possible mean similarity
        let empty: Vec<u8> = self
            .by_class
            .iter()
            .map(|m| u8::from(m.is_empty()))
            .collect();
        if empty.iter().all(|&e| e == 0) {
            return Ok(scores);
        }
        let floor = (scores.zeros_like()? - (1.0 / self.temperature + 1.0))?;
        let mask =
            Tensor::from_vec(empty, (1, classes), images.device())?.broadcast_as((b, classes))?;
        Ok(mask.where_cond(&floor, &scores)?)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let labels = Tensor::from_slice(&self.labels, self.labels.len(), self.bank.device());
        let mut out = vec![("bank".to_string(), self.bank.clone())];
        if let Ok(labels) = labels {
            out.push(("labels".to_string(), labels));
        }
        out
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
        let mut by_class = vec![Vec::new(); ctx.train.classes];
        for (i, &label) in ctx.train.labels.iter().enumerate() {
            if let Some(members) = by_class.get_mut(label as usize) {
                members.push(i);
            }
        }
        Ok(Box::new(KnnClassifier {
            encoder: ctx.encoder,
            bank,
            labels: ctx.train.labels.clone(),
            by_class,
            k: self.params.k,
            temperature: self.params.temperature,
        }))
    }
}

rossl_api::register! {
    kind: evaluator,
    name: "knn",
    summary: "local-mean kNN: per class, the mean cosine similarity to its 10 nearest training features / 0.1; attackable (no flat votes)",
    params: KnnParams,
    build: |p, _ctx| Ok(Box::new(Knn { params: p })),
}
