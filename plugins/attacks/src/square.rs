//! `square`: the Square attack (Andriushchenko, Croce, Flammarion and Hein 2020, "Square Attack:
//! a query-efficient black-box adversarial attack via random search"), in its L-infinity and L2
//! versions.
//!
//! Score-based: it reads the objective's value only, never a gradient, so masked or obfuscated
//! gradients do not stop it. Per query it proposes a change of one random square window of each
//! image, and keeps the proposal where it raises the objective or where the objective reports
//! it misclassified (as AutoAttack's reference does). The window's share of the
//! image starts at `p_init` and halves on the paper's schedule (after 10, 50, 200, 500, 1000,
//! 2000, 4000, 6000 and 8000 of 10,000 queries, rescaled to the budget). An image stops being
//! queried once the objective reports it misclassified.
//!
//! - L-infinity (`norm = "linf"`, the default): it starts from vertical stripes of +-eps, and a
//!   proposal sets the window to +-eps around the clean image (one sign per channel).
//! - L2 (`norm = "l2"`, the paper's Algorithm 3 as AutoAttack's `square.py` runs it): it starts
//!   from a grid of blocks each holding a centred "meta pseudo-gaussian" pattern (nested
//!   rectangles weighted 1/k^2, positive on one half and negative on the other) with a random
//!   sign per channel, scaled onto the L2 sphere of radius eps. A proposal draws two windows of
//!   the same side (at least 3 pixels, odd): per channel, the perturbation's mass on both windows,
//!   plus that lost to clipping at [0, 1], moves into the first, as a fresh pattern of random sign
//!   added to the first window's current direction; the second window is emptied, and the whole
//!   perturbation is rescaled onto the sphere before clipping to [0, 1].
//!
//! A window's corner is drawn anywhere it fits (rows 0 to h - side inclusive). AutoAttack's
//! reference draws it below h - side, so that it never moves the last row and column; on small
//! images (8x8) its L2 start puts part of the budget there, which then stays unused for good.

use candle_core::{DType, Tensor};
use rossl_api::adversarial::check_budget;
use rossl_api::components::{Attack, AttackSpec, Objective};
use rossl_api::norm::Norm;
use rossl_api::registry::{ParamError, Params};
use rossl_api::rng::Rng;
use rossl_api::Result;

rossl_api::params! {
    /// Parameters of `square`.
    pub struct SquareParams {
        /// Radius of the ball.
        pub eps: f64 = 8.0 / 255.0,
        /// Queries (objective evaluations) per image, the initial one included.
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

/// AutoAttack's nested rectangles of `rows` x `cols` (row-major): rectangles of growing size
/// around the centre, the k-th (from 1) adding 1/k^2, scaled to unit L2 norm (zeros when empty).
fn rectangles(rows: usize, cols: usize) -> Vec<f64> {
    let mut pattern = vec![0.0; rows * cols];
    let (centre_row, centre_col) = (rows / 2, cols / 2);
    for k in 0..=centre_row.max(centre_col) {
        let weight = 1.0 / ((k + 1) * (k + 1)) as f64;
        let row_range = centre_row.saturating_sub(k)..(centre_row + k + 1).min(rows);
        for row in row_range {
            for col in centre_col.saturating_sub(k)..(centre_col + k + 1).min(cols) {
                pattern[row * cols + col] += weight;
            }
        }
    }
    scale_to_unit(&mut pattern);
    pattern
}

/// Scales `values` to unit L2 norm (leaves zeros alone).
fn scale_to_unit(values: &mut [f64]) {
    let length = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    if length > 0.0 {
        values.iter_mut().for_each(|v| *v /= length);
    }
}

/// AutoAttack's "meta pseudo-gaussian" window of side `side` (row-major, unit L2 norm): nested
/// rectangles on the top half, their negation on the bottom half, transposed with probability
/// one half.
fn pseudo_gaussian(side: usize, rng: &mut Rng) -> Vec<f64> {
    let top = side / 2;
    let mut pattern = rectangles(top, side);
    pattern.extend(rectangles(side - top, side).iter().map(|v| -v));
    scale_to_unit(&mut pattern);
    if rng.uniform() < 0.5 {
        let mut transposed = vec![0.0; side * side];
        for row in 0..side {
            for col in 0..side {
                transposed[col * side + row] = pattern[row * side + col];
            }
        }
        pattern = transposed;
    }
    pattern
}

/// A random sign.
fn sign(rng: &mut Rng) -> f64 {
    if rng.uniform() < 0.5 {
        -1.0
    } else {
        1.0
    }
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

    fn to_tensor(&self, like: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = self.shape;
        Ok(
            Tensor::from_slice(&self.values, (b, c, h, w), like.device())?
                .to_dtype(like.dtype())?,
        )
    }
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
    /// Vertical stripes of +-eps around the clean image (one sign per image, channel and column).
    fn stripes(&self, clean: &Batch, rng: &mut Rng) -> Batch {
        let (b, c, h, w) = clean.shape;
        let eps = self.params.eps as f32;
        let mut values = clean.values.clone();
        for i in 0..b {
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
    fn propose(
        &self,
        clean: &Batch,
        best: &Batch,
        active: &[bool],
        side: usize,
        rng: &mut Rng,
    ) -> Batch {
        let (_, c, h, w) = clean.shape;
        let eps = self.params.eps as f32;
        let mut values = best.values.clone();
        let len = clean.image_len();
        for (i, _) in active.iter().enumerate().filter(|(_, a)| **a) {
            let top = rng.below((h - side + 1) as u64) as usize;
            let left = rng.below((w - side + 1) as u64) as usize;
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
        Batch {
            shape: clean.shape,
            values,
        }
    }
}

/// One image's perturbation on the host, in f64: `values` is `channels` x `height` x `width`,
/// row-major.
struct Delta<'a> {
    values: &'a mut [f64],
    height: usize,
    width: usize,
}

impl Delta<'_> {
    fn index(&self, channel: usize, row: usize, col: usize) -> usize {
        (channel * self.height + row) * self.width + col
    }

    /// The L2 norm of channel `channel` over the union of the square windows of side `side` at
    /// the corners `windows` (top, left).
    fn window_norm(&self, channel: usize, windows: &[(usize, usize)], side: usize) -> f64 {
        let inside = |row: usize, col: usize| {
            windows.iter().any(|&(top, left)| {
                (top..top + side).contains(&row) && (left..left + side).contains(&col)
            })
        };
        // only the windows' bounding box can hold them
        let rows = windows.iter().map(|w| w.0).min().unwrap_or(0)
            ..windows.iter().map(|w| w.0 + side).max().unwrap_or(0);
        let cols = windows.iter().map(|w| w.1).min().unwrap_or(0)
            ..windows.iter().map(|w| w.1 + side).max().unwrap_or(0);
        let mut sum = 0.0;
        for row in rows {
            for col in cols.clone().filter(|&col| inside(row, col)) {
                sum += self.values[self.index(channel, row, col)].powi(2);
            }
        }
        sum.sqrt()
    }

    /// Sets channel `channel`'s window of side `side` at `(top, left)` to `pattern` times `scale`
    /// (`pattern` row-major; `scale` 0 empties it).
    fn set_window(
        &mut self,
        channel: usize,
        (top, left): (usize, usize),
        side: usize,
        pattern: &[f64],
        scale: f64,
    ) {
        for row in 0..side {
            for col in 0..side {
                let at = self.index(channel, top + row, left + col);
                self.values[at] = pattern.get(row * side + col).copied().unwrap_or(0.0) * scale;
            }
        }
    }

    /// Scales the whole perturbation to L2 norm `eps` (leaves zero alone).
    fn onto_sphere(&mut self, eps: f64) {
        scale_to_unit(self.values);
        self.values.iter_mut().for_each(|v| *v *= eps);
    }
}

/// Writes `clean + delta`, clipped to [0, 1], into `out` (one image).
fn write_clipped(out: &mut [f32], clean: &[f32], delta: &[f64]) {
    for ((o, c), d) in out.iter_mut().zip(clean).zip(delta) {
        *o = (f64::from(*c) + d).clamp(0.0, 1.0) as f32;
    }
}

impl Square {
    /// The L2 start: a centred grid of square blocks (side a fifth of the image's, at least 1),
    /// each holding a pseudo-gaussian pattern with a random sign per channel; per image scaled
    /// onto the sphere of radius eps, then clipped to [0, 1].
    fn l2_start(&self, clean: &Batch, rng: &mut Rng) -> Batch {
        let (b, c, h, w) = clean.shape;
        let side = (h.min(w) / 5).max(1);
        let (blocks_down, blocks_across) = (h / side, w / side);
        let (top0, left0) = ((h - blocks_down * side) / 2, (w - blocks_across * side) / 2);
        let len = clean.image_len();
        let mut values = clean.values.clone();
        let mut delta = vec![0.0; len];
        for i in 0..b {
            delta.iter_mut().for_each(|v| *v = 0.0);
            let mut image = Delta {
                values: &mut delta,
                height: h,
                width: w,
            };
            for block in 0..blocks_down * blocks_across {
                let corner = (
                    top0 + block / blocks_across * side,
                    left0 + block % blocks_across * side,
                );
                let pattern = pseudo_gaussian(side, rng);
                for ch in 0..c {
                    image.set_window(ch, corner, side, &pattern, sign(rng));
                }
            }
            image.onto_sphere(self.params.eps);
            let range = i * len..(i + 1) * len;
            write_clipped(&mut values[range.clone()], &clean.values[range], &delta);
        }
        Batch {
            shape: clean.shape,
            values,
        }
    }

    /// L2 proposals, for each image marked `active`: two random windows of side `side`; per
    /// channel, the mass of both windows plus the share of the budget lost to clipping moves into
    /// the first (a pseudo-gaussian pattern of random sign added to the first window's current
    /// direction), the second is emptied; the perturbation is rescaled onto the sphere of radius
    /// eps and clipped to [0, 1].
    fn propose_l2(
        &self,
        clean: &Batch,
        best: &Batch,
        active: &[bool],
        side: usize,
        rng: &mut Rng,
    ) -> Batch {
        let (_, c, h, w) = clean.shape;
        let eps = self.params.eps;
        let len = clean.image_len();
        let mut values = best.values.clone();
        for (i, _) in active.iter().enumerate().filter(|(_, a)| **a) {
            let range = i * len..(i + 1) * len;
            let mut delta: Vec<f64> = best.values[range.clone()]
                .iter()
                .zip(&clean.values[range.clone()])
                .map(|(a, x)| f64::from(*a) - f64::from(*x))
                .collect();
            let mut corner = || {
                (
                    rng.below((h - side + 1) as u64) as usize,
                    rng.below((w - side + 1) as u64) as usize,
                )
            };
            let (first, second) = (corner(), corner());
            let lost = (eps * eps - delta.iter().map(|v| v * v).sum::<f64>()).max(0.0);
            let pattern = pseudo_gaussian(side, rng);
            let mut image = Delta {
                values: &mut delta,
                height: h,
                width: w,
            };
            for ch in 0..c {
                let first_norm = image.window_norm(ch, &[first], side).max(1e-12);
                let both_norm = image.window_norm(ch, &[first, second], side);
                let channel_sign = sign(rng);
                let mut fresh: Vec<f64> = pattern.iter().map(|v| v * channel_sign).collect();
                for (k, value) in fresh.iter_mut().enumerate() {
                    *value += image.values[image.index(ch, first.0 + k / side, first.1 + k % side)]
                        / first_norm;
                }
                scale_to_unit(&mut fresh);
                let target = (lost / c as f64 + both_norm * both_norm).sqrt();
                image.set_window(ch, second, side, &[], 0.0);
                image.set_window(ch, first, side, &fresh, target);
            }
            image.onto_sphere(eps);
            write_clipped(&mut values[range.clone()], &clean.values[range], &delta);
        }
        Batch {
            shape: clean.shape,
            values,
        }
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
        let mut best = match norm {
            Norm::Linf => self.stripes(&clean, rng),
            Norm::L2 => self.l2_start(&clean, rng),
        };
        let (loss, success) = objective.score(&best.to_tensor(&x)?)?;
        let mut best_loss = per_example(&loss, b)?;
        let mut fooled = success.filter(|s| s.len() == b).unwrap_or(vec![false; b]);
        for query in 1..self.params.queries {
            let active: Vec<bool> = fooled.iter().map(|f| !f).collect();
            if !active.iter().any(|&a| a) {
                break;
            }
            let schedule_length = if self.params.rescale_schedule {
                self.params.queries
            } else {
                10_000
            };
            let share = window_share(self.params.p_init, query, schedule_length);
            let side = window_side(norm, share, h, w);
            let candidate = match norm {
                Norm::Linf => self.propose(&clean, &best, &active, side, rng),
                Norm::L2 => self.propose_l2(&clean, &best, &active, side, rng),
            };
            let (loss, success) = objective.score(&candidate.to_tensor(&x)?)?;
            let loss = per_example(&loss, b)?;
            let len = clean.image_len();
            let success = success.filter(|s| s.len() == b);
            let misclassified = |i: usize| success.as_ref().is_some_and(|s| s[i]);
            // as AutoAttack's square.py (`idx_improved = max(idx_improved, idx_miscl)`): a
            // proposal that misclassifies is kept even where it does not raise the loss (under
            // EOT the loss is an average over other draws than the prediction's)
            let kept: Vec<usize> = (0..b)
                .filter(|&i| active[i] && (loss[i] > best_loss[i] || misclassified(i)))
                .collect();
            for i in kept {
                best_loss[i] = best_loss[i].max(loss[i]);
                best.values[i * len..(i + 1) * len]
                    .copy_from_slice(&candidate.values[i * len..(i + 1) * len]);
                fooled[i] |= misclassified(i);
            }
        }
        best.to_tensor(&x)
    }
}

rossl_api::register! {
    kind: attack,
    name: "square",
    summary: "Square attack (Andriushchenko et al. 2020): score-based random search in squares, no gradients; detects gradient masking",
    params: SquareParams,
    build: |p, _ctx| Ok(Box::new(Square::new(p))),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_schedule_halves_at_the_papers_query_counts() {
        // 10,000 queries: p_init until query 10, then halved at 50, 200, 500, ...
        assert_eq!(window_share(0.8, 10, 10_000), 0.8);
        assert_eq!(window_share(0.8, 11, 10_000), 0.4);
        assert_eq!(window_share(0.8, 200, 10_000), 0.2);
        assert_eq!(window_share(0.8, 201, 10_000), 0.1);
        assert_eq!(window_share(0.8, 9_999, 10_000), 0.8 / 512.0);
        // rescaled: with 100 queries, query 1 is 100 of 10,000
        assert_eq!(window_share(0.8, 1, 100), 0.2);
    }

    /// Reports every image misclassified from its `fooled_at`-th query on, with a loss that
    /// never rises (as an EOT average over other draws than the prediction's can fall).
    struct MisclassifiesLate {
        queries: usize,
        fooled_at: usize,
        fooling_point: Option<Vec<f32>>,
    }

    impl Objective for MisclassifiesLate {
        fn loss(&mut self, x: &Tensor) -> Result<Tensor> {
            Ok(Tensor::zeros(x.dim(0)?, DType::F32, x.device())?)
        }

        fn succeeded(&mut self, x: &Tensor) -> Result<Option<Vec<bool>>> {
            self.queries += 1;
            let fooled = self.queries >= self.fooled_at;
            if fooled && self.fooling_point.is_none() {
                self.fooling_point = Some(x.flatten_all()?.to_vec1::<f32>()?);
            }
            Ok(Some(vec![fooled; x.dim(0)?]))
        }
    }

    #[test]
    fn a_proposal_that_misclassifies_is_kept_even_when_its_loss_does_not_rise() {
        for norm in [Norm::Linf, Norm::L2] {
            let x = Tensor::full(0.5f32, (2, 1, 6, 6), &candle_core::Device::Cpu).unwrap();
            let square = Square::new(SquareParams {
                eps: 0.1,
                queries: 20,
                p_init: 0.3,
                norm,
                rescale_schedule: true,
            });
            let mut objective = MisclassifiesLate {
                queries: 0,
                fooled_at: 3,
                fooling_point: None,
            };
            let adversarial = square
                .perturb(&x, &mut objective, &mut Rng::new(7))
                .unwrap();
            let fooling_point = objective.fooling_point.expect("the objective was fooled");
            assert_eq!(
                adversarial.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                fooling_point,
                "{norm}: the misclassifying proposal of query 3 was dropped"
            );
            assert_eq!(
                objective.queries, 3,
                "{norm}: a fooled image was queried again"
            );
        }
    }

    #[test]
    fn the_l2_pattern_is_a_unit_bump_positive_on_one_half_and_negative_on_the_other() {
        let mut rng = Rng::new(3);
        for side in [1, 3, 4, 7] {
            for _ in 0..4 {
                let pattern = pseudo_gaussian(side, &mut rng);
                let length = pattern.iter().map(|v| v * v).sum::<f64>().sqrt();
                assert!((length - 1.0).abs() < 1e-12, "side {side}: norm {length}");
                // the second half (of rows, or of columns when transposed) is negative; the first
                // half is positive (empty when side is 1)
                let rows_split =
                    (0..side * side).all(|k| (pattern[k] < 0.0) == (k / side >= side / 2));
                let cols_split =
                    (0..side * side).all(|k| (pattern[k] < 0.0) == (k % side >= side / 2));
                assert!(rows_split || cols_split, "side {side}: {pattern:?}");
            }
        }
        // the nested rectangles peak at the centre and fall off as 1/k^2 sums
        let r = rectangles(3, 3);
        assert!(r[4] > r[0] && (r[0] - r[8]).abs() < 1e-12 && (r[0] * 5.0 - r[4]).abs() < 1e-12);
        assert!(rectangles(0, 5).is_empty());
    }

    #[test]
    fn l2_windows_are_odd_and_at_least_three_pixels_wide() {
        assert_eq!(window_side(Norm::L2, 0.8, 32, 32), 29);
        assert_eq!(window_side(Norm::L2, 0.001, 32, 32), 3);
        assert_eq!(window_side(Norm::L2, 0.25, 32, 32), 17);
        assert_eq!(window_side(Norm::L2, 1.0, 8, 8), 8);
        assert_eq!(window_side(Norm::L2, 0.5, 2, 2), 2);
        // the L-infinity side is unchanged: in [1, min(h, w) - 1]
        assert_eq!(window_side(Norm::Linf, 0.8, 32, 32), 29);
        assert_eq!(window_side(Norm::Linf, 1.0, 8, 8), 7);
        assert_eq!(window_side(Norm::Linf, 0.001, 32, 32), 1);
    }
}
