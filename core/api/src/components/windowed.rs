//! Passes over images that differ from a base batch only inside one square window each: what a
//! score-based attack's query changes (Square under L-infinity sets one window of each image).
//! A component that can recompute only the part of its output such a window reaches offers a
//! [`WindowedPass`]; the others offer none and are run whole.

use crate::Result;
use candle_core::Tensor;

/// A square window of an image: rows `top..top + side` and columns `left..left + side`, every
/// channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first row.
    pub top: usize,
    /// The first column.
    pub left: usize,
    /// Rows and columns it spans.
    pub side: usize,
}

/// Outputs (features or logits, in evaluation mode) of images that differ from a base batch
/// only inside one [`Window`] each. The base batch is the one the pass was made from; an image
/// becomes the base of its row when [`WindowedPass::keep`] keeps it.
pub trait WindowedPass {
    /// The outputs (R, ...) of `images` (R, C, H, W): image `j` is the base image of row
    /// `rows[j]` (ascending, each below the base batch's size) with only the pixels inside
    /// `windows[j]` changed. The outputs are those of a pass over the whole images, up to
    /// rounding (the part a window reaches may be computed by another kernel).
    fn run(&mut self, images: &Tensor, rows: &[usize], windows: &[Window]) -> Result<Tensor>;

    /// Makes the images of the last [`WindowedPass::run`] at `rows` (rows of the base batch, a
    /// subset of that call's) the base images of those rows.
    fn keep(&mut self, rows: &[usize]) -> Result<()>;
}

/// An objective's score (loss and success, as [`crate::components::Objective::score_rows`]
/// gives them) of images that differ from a base batch only inside one [`Window`] each.
pub trait WindowedScore {
    /// The loss (shape `[R]`) and per-image success of `images`, the rows `rows` of the batch
    /// with only `windows` changed from their base images, as [`WindowedPass::run`] takes them.
    fn score_rows(
        &mut self,
        images: &Tensor,
        rows: &[usize],
        windows: &[Window],
    ) -> Result<(Tensor, Option<Vec<bool>>)>;

    /// Makes the images of the last [`WindowedScore::score_rows`] at `rows` the base images of
    /// those rows ([`WindowedPass::keep`]).
    fn keep(&mut self, rows: &[usize]) -> Result<()>;
}
