//! A classifier judged on some rows of a batch under the draws of the whole batch.

use candle_core::Tensor;
use rossl_api::components::{Classifier, WindowedPass};
use rossl_api::rng::Rng;
use rossl_api::Result;

/// `classifier` on the rows `rows` of a batch of `batch_len` images: every call of
/// [`Classifier::logits`] goes to [`Classifier::logits_at_rows`], so that a random classifier
/// judges each image under the draw it had in the whole batch (an attack on the survivors of a
/// batch sees the crops of the clean pass).
pub struct BatchRows<'a> {
    /// The classifier.
    pub classifier: &'a dyn Classifier,
    /// The rows of the batch, ascending.
    pub rows: Vec<usize>,
    /// The images of the whole batch.
    pub batch_len: usize,
}

impl Classifier for BatchRows<'_> {
    fn logits(&self, images: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        self.classifier
            .logits_at_rows(images, &self.rows, self.batch_len, rng)
    }

    fn logits_at_rows(
        &self,
        images: &Tensor,
        rows: &[usize],
        _batch_len: usize,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        // rows of these rows: the same images' rows of the whole batch
        let rows: Vec<usize> = rows.iter().map(|&r| self.rows[r]).collect();
        self.classifier
            .logits_at_rows(images, &rows, self.batch_len, rng)
    }

    fn is_random(&self) -> bool {
        self.classifier.is_random()
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        self.classifier.tensors()
    }

    fn windowed(&self, base: &Tensor) -> Result<Option<Box<dyn WindowedPass + '_>>> {
        // a deterministic classifier judges an image whatever its row: the base batch's rows are
        // the rows a windowed pass is asked for; a random one's draws follow the whole batch
        if self.classifier.is_random() {
            return Ok(None);
        }
        self.classifier.windowed(base)
    }
}

/// The rows `rows` of `t` (dimension 0).
pub fn rows_of(t: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let index: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let index = Tensor::from_vec(index, rows.len(), t.device())?;
    Ok(t.index_select(&index, 0)?)
}

/// Rows of `x` and `labels` at `rows`.
pub fn select_rows(x: &Tensor, labels: &[u32], rows: &[usize]) -> Result<(Tensor, Vec<u32>)> {
    Ok((rows_of(x, rows)?, rows.iter().map(|&r| labels[r]).collect()))
}
