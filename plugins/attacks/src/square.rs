//! `square`: the Square attack (Andriushchenko, Croce, Flammarion and Hein 2020, "Square Attack:
//! a query-efficient black-box adversarial attack via random search"), in its L-infinity and L2
//! versions.
//!
//! Score-based: it reads the objective's value only, never a gradient, so masked or obfuscated
//! gradients do not stop it. Per query it proposes a change of one random square window of each
//! image, and keeps the proposal where it raises the objective or where the objective reports
//! it misclassified (as AutoAttack's reference does). It makes `queries` proposals after its
//! initial point (AutoAttack's `n_queries`). The window's share of the image starts at `p_init`
//! and halves on the paper's schedule (after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000
//! of 10,000 queries, rescaled to the budget), read at each proposal's index from 0. An image
//! stops being queried once the objective reports it misclassified: where the objective scores
//! part of its batch ([`Objective::score_rows`]), each query scores only the images still to
//! fool, as AutoAttack's `idx_to_fool`, and its cost falls as images break.
//!
//! - L-infinity (`norm = "linf"`, the default): it starts from vertical stripes of +-eps, and a
//!   proposal sets the window to +-eps around the clean image (one sign per channel).
//! - L2 (`norm = "l2"`, the paper's Algorithm 3 as AutoAttack's `square.py` runs it): it starts
//!   from a grid of blocks each holding a centred "meta pseudo-gaussian" pattern (nested
//!   rectangles weighted 1/k^2, positive on one half and negative on the other) with a random
//!   sign per channel, scaled onto the L2 sphere of radius eps. A proposal draws two windows of
//!   the same side (at least 3 pixels, odd): the perturbation's mass on both windows over all
//!   c channels (m), plus that lost to clipping at [0, 1] (lost), moves into the first, each
//!   channel's window becoming a fresh pattern of random sign added to its current direction, of
//!   size sqrt(lost / c + m^2); the second window is emptied, and the whole perturbation is
//!   rescaled onto the sphere before clipping to [0, 1].
//!
//! Each image draws its start and its windows from a stream of its own, keyed to its row of the
//! whole batch when the generator is marked with the rows the images are
//! ([`Rng::for_batch_rows`]): an image's attack is the same whichever other images are attacked
//! with it (the survivors of a cascade, a check's subset, the whole batch) and whenever they
//! stop being queried.
//!
//! A window's corner is drawn anywhere it fits (rows 0 to h - side inclusive). AutoAttack's
//! reference draws it below h - side, so that it never moves the last row and column; on small
//! images (8x8) its L2 start puts part of the budget there, which then stays unused for good.

use candle_core::{DType, Tensor};
use rossl_api::adversarial::check_budget;
use rossl_api::components::{Attack, AttackSpec, Objective, Window, WindowedScore};
use rossl_api::norm::Norm;
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

mod l2;

rossl_api::params! {
    /// Parameters of `square`.
    pub struct SquareParams {
        /// Radius of the ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Queries per image: proposals after the initial point, as AutoAttack's `n_queries`
        /// (at most `queries + 1` objective evaluations per image, the start included).
        pub queries: usize = 1000,
        /// Initial share of the image's pixels that a window covers.
        pub p_init: f64 = 0.8,
        /// Rescale the window schedule (written for 10,000 queries) to `queries` (true, the
        /// Square class's default), or read it at the raw query count (false: AutoAttack's
        /// "standard" suite, whose windows with 5000 queries never shrink past p_init / 128).
        #[serde(skip_serializing_if = "is_true")]
        pub rescale_schedule: bool = true,
        /// The threat model: `linf` (L-infinity ball) or `l2` (L2 sphere of radius eps, per
        /// image, before clipping to [0, 1]).
        #[serde(skip_serializing_if = "Norm::is_linf")]
        pub norm: Norm = Norm::Linf,
    }
}

/// Whether `value` is set: serde skips a default `rescale_schedule`, so that configurations
/// written before it existed keep their digests.
fn is_true(value: &bool) -> bool {
    *value
}

impl Params for SquareParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_budget(self.eps, 0.0).map_err(|e| ParamError::new("eps", e.to_string()))?;
        if self.queries == 0 {
            return Err(ParamError::new("queries", "needs at least one query"));
        }
        if !(self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(ParamError::new("p_init", "must be in (0, 1]"));
        }
        Ok(())
    }
}

/// The Square attack.
#[derive(Clone, Debug)]
pub struct Square {
    params: SquareParams,
}

impl Square {
    /// The attack with these settings.
    pub fn new(params: SquareParams) -> Self {
        Square { params }
    }
}

/// The window's share of the image at query `query` of `total` (the paper's schedule for 10,000
/// queries, rescaled).
pub fn window_share(p_init: f64, query: usize, total: usize) -> f64 {
    let at = (query as f64 / total.max(1) as f64 * 10_000.0) as usize;
    let halvings = match at {
        0..=10 => 0,
        11..=50 => 1,
        51..=200 => 2,
        201..=500 => 3,
        501..=1000 => 4,
        1001..=2000 => 5,
        2001..=4000 => 6,
        4001..=6000 => 7,
        6001..=8000 => 8,
        _ => 9,
    };
    p_init / f64::from(1u32 << halvings)
}

/// The side of the query's window for a share `share` of an `h` x `w` image: under L-infinity
/// `round(sqrt(share h w))` in [1, min(h, w) - 1]; under L2 (as AutoAttack) at least 3 and odd,
/// at most min(h, w).
pub fn window_side(norm: Norm, share: f64, h: usize, w: usize) -> usize {
    let side = (share * (h * w) as f64).sqrt().round() as usize;
    match norm {
        Norm::Linf => side.clamp(1, h.min(w).saturating_sub(1).max(1)),
        Norm::L2 => {
            let side = side.max(3);
            (side + 1 - side % 2).min(h.min(w))
        }
    }
}

/// One random stream per image of a batch of `rows`, all from one draw of `rng`: image `i`'s is
/// keyed to its row of the whole batch when `rng` is marked with the rows the images are
/// ([`Rng::for_batch_rows`]), else to `i`.
fn row_streams(rng: &mut Rng, rows: usize) -> Vec<Rng> {
    let base = rng.next_u64();
    let keys: Vec<usize> = match rng.batch_rows() {
        Some(batch) if batch.rows.len() == rows => batch.rows.clone(),
        _ => (0..rows).collect(),
    };
    keys.into_iter()
        .map(|row| Rng::derive(base, &[row as u64]))
        .collect()
}

/// Images as host rows: (rows, channels, height, width) and the values.
struct Batch {
    shape: (usize, usize, usize, usize),
    values: Vec<f32>,
}

impl Batch {
    fn image_len(&self) -> usize {
        self.shape.1 * self.shape.2 * self.shape.3
    }

    /// The images `rows`, in that order.
    fn rows(&self, rows: &[usize]) -> Batch {
        let len = self.image_len();
        let (_, c, h, w) = self.shape;
        Batch {
            shape: (rows.len(), c, h, w),
            values: rows
                .iter()
                .flat_map(|&r| self.values[r * len..(r + 1) * len].iter().copied())
                .collect(),
        }
    }

    fn to_tensor(&self, like: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = self.shape;
        Ok(
            Tensor::from_slice(&self.values, (b, c, h, w), like.device())?
                .to_dtype(like.dtype())?,
        )
    }
}

/// The loss and success (when the objective reports it) of each image of `candidate`, scored on
/// the images `rows` alone (ascending: those still to fool) where the objective can
/// ([`Objective::score_rows`]), else on the whole batch. Both have one entry per image of the
/// batch; an image not in `rows` gets the loss -inf and no success when only `rows` were scored.
fn score_active(
    objective: &mut dyn Objective,
    candidate: &Batch,
    rows: &[usize],
    like: &Tensor,
) -> Result<(Vec<f32>, Option<Vec<bool>>)> {
    let b = candidate.shape.0;
    if rows.len() < b {
        if let Some((loss, success)) =
            objective.score_rows(&candidate.rows(rows).to_tensor(like)?, rows)?
        {
            return spread(&loss, success, rows, b);
        }
    }
    let (loss, success) = objective.score(&candidate.to_tensor(like)?)?;
    Ok((per_example(&loss, b)?, success.filter(|s| s.len() == b)))
}

/// The loss and success of the images `rows` (ascending) as entries of a batch of `b`: -inf and
/// no success for the images not scored.
fn spread(
    loss: &Tensor,
    success: Option<Vec<bool>>,
    rows: &[usize],
    b: usize,
) -> Result<(Vec<f32>, Option<Vec<bool>>)> {
    let mut full_loss = vec![f32::NEG_INFINITY; b];
    for (&r, value) in rows.iter().zip(per_example(loss, rows.len())?) {
        full_loss[r] = value;
    }
    let full_success = success.filter(|s| s.len() == rows.len()).map(|s| {
        let mut full = vec![false; b];
        for (&r, fooled) in rows.iter().zip(s) {
            full[r] = fooled;
        }
        full
    });
    Ok((full_loss, full_success))
}

fn per_example(loss: &Tensor, rows: usize) -> Result<Vec<f32>> {
    let values = loss.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(if values.len() == rows {
        values
    } else {
        // one value for the whole batch: every image shares it
        vec![values.iter().sum(); rows]
    })
}

impl Square {
    /// Vertical stripes of +-eps around the clean image (one sign per image, channel and column;
    /// image `i` draws from `rngs[i]`).
    fn stripes(&self, clean: &Batch, rngs: &mut [Rng]) -> Batch {
        let (b, c, h, w) = clean.shape;
        let eps = self.params.eps as f32;
        let mut values = clean.values.clone();
        for (i, rng) in rngs.iter_mut().enumerate().take(b) {
            for ch in 0..c {
                for col in 0..w {
                    let sign = if rng.uniform() < 0.5 { -eps } else { eps };
                    for row in 0..h {
                        let at = ((i * c + ch) * h + row) * w + col;
                        values[at] = (clean.values[at] + sign).clamp(0.0, 1.0);
                    }
                }
            }
        }
        Batch {
            shape: clean.shape,
            values,
        }
    }

    /// Proposes, for each image marked `active`, one square window of side `side` set to
    /// +-eps around the clean image; a proposal equal to the current window is drawn again.
    /// Image `i` draws from `rngs[i]`. Also returns each image's window (the whole image's
    /// first pixel for those not active).
    fn propose(
        &self,
        clean: &Batch,
        best: &Batch,
        active: &[bool],
        side: usize,
        rngs: &mut [Rng],
    ) -> (Batch, Vec<Window>) {
        let (_, c, h, w) = clean.shape;
        let eps = self.params.eps as f32;
        let mut values = best.values.clone();
        let len = clean.image_len();
        let mut windows = vec![
            Window {
                top: 0,
                left: 0,
                side: 1
            };
            active.len()
        ];
        for (i, _) in active.iter().enumerate().filter(|(_, a)| **a) {
            let rng = &mut rngs[i];
            let top = rng.below((h - side + 1) as u64) as usize;
            let left = rng.below((w - side + 1) as u64) as usize;
            windows[i] = Window { top, left, side };
            for _attempt in 0..10 {
                let mut changed = false;
                for ch in 0..c {
                    let sign = if rng.uniform() < 0.5 { -eps } else { eps };
                    for row in top..top + side {
                        for col in left..left + side {
                            let at = i * len + (ch * h + row) * w + col;
                            let value = (clean.values[at] + sign).clamp(0.0, 1.0);
                            changed |= value != best.values[at];
                            values[at] = value;
                        }
                    }
                }
                if changed {
                    break;
                }
            }
        }
        let proposal = Batch {
            shape: clean.shape,
            values,
        };
        (proposal, windows)
    }
}

impl Attack for Square {
    fn spec(&self) -> AttackSpec {
        AttackSpec {
            eps: self.params.eps,
            steps: self.params.queries,
            step_size: Some(self.params.eps),
            restarts: 1,
            random_start: true,
        }
    }

    fn perturb(&self, x: &Tensor, objective: &mut dyn Objective, rng: &mut Rng) -> Result<Tensor> {
        let x = x.detach();
        if self.params.eps == 0.0 || x.elem_count() == 0 {
            return Ok(x);
        }
        let (b, c, h, w) = x.dims4()?;
        let clean = Batch {
            shape: (b, c, h, w),
            values: x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
        };
        let norm = self.params.norm;
        let mut rngs = row_streams(rng, b);
        let best = match norm {
            Norm::Linf => self.stripes(&clean, &mut rngs),
            Norm::L2 => self.l2_start(&clean, &mut rngs),
        };
        let (loss, success) = objective.score(&best.to_tensor(&x)?)?;
        let search = Search {
            x: &x,
            best_loss: per_example(&loss, b)?,
            fooled: success.filter(|s| s.len() == b).unwrap_or(vec![false; b]),
            clean,
            best,
            rngs,
        };
        // under L-infinity a proposal changes one window of each image: an objective that can
        // recompute only what a window reaches scores it so
        if norm == Norm::Linf && search.fooled.iter().any(|f| !f) {
            if let Some(windowed) = objective.windowed(&search.best.to_tensor(&x)?)? {
                return self.search(search, &mut ByWindow(windowed));
            }
        }
        self.search(search, &mut Whole(objective))
    }
}

/// Square's state between queries: the images, the best point so far and its loss, the images
/// fooled, each image's stream.
struct Search<'x> {
    x: &'x Tensor,
    clean: Batch,
    best: Batch,
    best_loss: Vec<f32>,
    fooled: Vec<bool>,
    rngs: Vec<Rng>,
}

impl Square {
    /// The queries from the start in `state`, each proposal scored by `scorer`; the best point.
    fn search(&self, mut state: Search, scorer: &mut dyn Scorer) -> Result<Tensor> {
        let (b, _, h, w) = state.clean.shape;
        let norm = self.params.norm;
        let schedule_length = if self.params.rescale_schedule {
            self.params.queries
        } else {
            10_000
        };
        // as AutoAttack's `for i_iter in range(n_queries)`: `queries` proposals after the start,
        // the window schedule read at the proposal's index from 0
        for query in 0..self.params.queries {
            let active: Vec<bool> = state.fooled.iter().map(|f| !f).collect();
            if !active.iter().any(|&a| a) {
                break;
            }
            let share = window_share(self.params.p_init, query, schedule_length);
            let side = window_side(norm, share, h, w);
            let (clean, best) = (&state.clean, &state.best);
            let (candidate, windows) = match norm {
                Norm::Linf => self.propose(clean, best, &active, side, &mut state.rngs),
                Norm::L2 => (
                    self.propose_l2(clean, best, &active, side, &mut state.rngs),
                    Vec::new(),
                ),
            };
            let rows: Vec<usize> = (0..b).filter(|&i| active[i]).collect();
            let (loss, success) = scorer.score(&candidate, &rows, &windows, state.x)?;
            let len = state.clean.image_len();
            let misclassified = |i: usize| success.as_ref().is_some_and(|s| s[i]);
            // as AutoAttack's square.py (`idx_improved = max(idx_improved, idx_miscl)`): a
            // proposal that misclassifies is kept even where it does not raise the loss (under
            // EOT the loss is an average over other draws than the prediction's)
            let kept: Vec<usize> = (0..b)
                .filter(|&i| active[i] && (loss[i] > state.best_loss[i] || misclassified(i)))
                .collect();
            scorer.keep(&kept)?;
            for &i in &kept {
                state.best_loss[i] = state.best_loss[i].max(loss[i]);
                state.best.values[i * len..(i + 1) * len]
                    .copy_from_slice(&candidate.values[i * len..(i + 1) * len]);
                state.fooled[i] |= misclassified(i);
            }
        }
        state.best.to_tensor(state.x)
    }
}

/// How the queries' proposals are scored: each image's loss and success (one entry per image of
/// the batch; an image not in `rows` gets the loss -inf and no success), and which proposals
/// became the best points.
trait Scorer {
    /// The scores of `candidate`'s images `rows` (ascending: those still to fool), each changed
    /// from the best point inside its window of `windows` (one per image of the batch, or none
    /// when a proposal changes the whole image).
    fn score(
        &mut self,
        candidate: &Batch,
        rows: &[usize],
        windows: &[Window],
        like: &Tensor,
    ) -> Result<(Vec<f32>, Option<Vec<bool>>)>;

    /// The images of the last scored proposal that became the best points.
    fn keep(&mut self, rows: &[usize]) -> Result<()>;
}

/// Whole images through the objective ([`score_active`]).
struct Whole<'o>(&'o mut dyn Objective);

impl Scorer for Whole<'_> {
    fn score(
        &mut self,
        candidate: &Batch,
        rows: &[usize],
        _windows: &[Window],
        like: &Tensor,
    ) -> Result<(Vec<f32>, Option<Vec<bool>>)> {
        score_active(self.0, candidate, rows, like)
    }

    fn keep(&mut self, _rows: &[usize]) -> Result<()> {
        Ok(())
    }
}

/// The objective's windowed score: only what each image's window reaches is recomputed.
struct ByWindow<'o>(Box<dyn WindowedScore + 'o>);

impl Scorer for ByWindow<'_> {
    fn score(
        &mut self,
        candidate: &Batch,
        rows: &[usize],
        windows: &[Window],
        like: &Tensor,
    ) -> Result<(Vec<f32>, Option<Vec<bool>>)> {
        let picked: Vec<Window> = rows.iter().map(|&r| windows[r]).collect();
        let images = candidate.rows(rows).to_tensor(like)?;
        let (loss, success) = self.0.score_rows(&images, rows, &picked)?;
        spread(&loss, success, rows, candidate.shape.0)
    }

    fn keep(&mut self, rows: &[usize]) -> Result<()> {
        self.0.keep(rows)
    }
}

rossl_api::register! {
    kind: attack,
    name: "square",
    summary: "Square attack (Andriushchenko et al. 2020): score-based random search in squares, no gradients; detects gradient masking; L-infinity or L2 (`norm`), window schedule rescaled to the budget unless `rescale_schedule = false`",
    params: SquareParams,
    build: |p, _ctx| Ok(Box::new(Square::new(p))),
}

#[cfg(test)]
mod tests;
