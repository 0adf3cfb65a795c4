//! The L2 form of the Square attack: AutoAttack's "meta pseudo-gaussian" windows, the start on
//! the sphere of radius eps, and proposals that move the mass of one window into another.

use super::{Batch, Square};
use rossl_api::rng::Rng;

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
    /// onto the sphere of radius eps, then clipped to [0, 1]. Image `i` draws from `rngs[i]`.
    pub(super) fn l2_start(&self, clean: &Batch, rngs: &mut [Rng]) -> Batch {
        let (b, c, h, w) = clean.shape;
        let side = (h.min(w) / 5).max(1);
        let (blocks_down, blocks_across) = (h / side, w / side);
        let (top0, left0) = ((h - blocks_down * side) / 2, (w - blocks_across * side) / 2);
        let len = clean.image_len();
        let mut values = clean.values.clone();
        let mut delta = vec![0.0; len];
        for (i, rng) in rngs.iter_mut().enumerate().take(b) {
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

    /// L2 proposals, for each image marked `active`: two random windows of side `side`; each
    /// channel's first window becomes a pseudo-gaussian pattern of random sign added to its
    /// current direction, of L2 size sqrt(lost / c + m^2), where m is the perturbation's mass on
    /// both windows over all c channels and lost the share of the budget lost to clipping (as
    /// AutoAttack's `square.py`); the second window is emptied; the perturbation is rescaled onto
    /// the sphere of radius eps and clipped to [0, 1]. Image `i` draws from `rngs[i]`.
    pub(super) fn propose_l2(
        &self,
        clean: &Batch,
        best: &Batch,
        active: &[bool],
        side: usize,
        rngs: &mut [Rng],
    ) -> Batch {
        let (_, c, h, w) = clean.shape;
        let eps = self.params.eps;
        let len = clean.image_len();
        let mut values = best.values.clone();
        for (i, _) in active.iter().enumerate().filter(|(_, a)| **a) {
            let rng = &mut rngs[i];
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
            // the perturbation's mass on both windows over every channel (AutoAttack's
            // `norms_windows = lp_norm(delta_curr * mask_image)`), read before any moves
            let windows_norm = (0..c)
                .map(|ch| image.window_norm(ch, &[first, second], side).powi(2))
                .sum::<f64>()
                .sqrt();
            for ch in 0..c {
                let first_norm = image.window_norm(ch, &[first], side).max(1e-12);
                let channel_sign = sign(rng);
                let mut fresh: Vec<f64> = pattern.iter().map(|v| v * channel_sign).collect();
                for (k, value) in fresh.iter_mut().enumerate() {
                    *value += image.values[image.index(ch, first.0 + k / side, first.1 + k % side)]
                        / first_norm;
                }
                scale_to_unit(&mut fresh);
                let target = (lost / c as f64 + windows_norm * windows_norm).sqrt();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::square::{window_side, SquareParams};
    use rossl_api::norm::Norm;

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
    fn a_proposal_sizes_its_window_by_the_mass_over_every_channel() {
        // AutoAttack: each channel's new window gets sqrt(lost / c + m^2), m the perturbation's
        // mass on both windows over all c channels. With the window covering the whole 3x3
        // image and nothing lost to clipping, a perturbation held by channel 0 alone is spread
        // evenly: every channel ends at eps / sqrt(3) (per-channel masses would leave channels 1
        // and 2 empty)
        let eps = 0.3;
        let (c, h, w) = (3, 3, 3);
        let clean = Batch {
            shape: (1, c, h, w),
            values: vec![0.5; c * h * w],
        };
        let mut values = clean.values.clone();
        for v in &mut values[..h * w] {
            *v += (eps / 3.0) as f32;
        }
        let best = Batch {
            shape: clean.shape,
            values,
        };
        let square = Square::new(SquareParams {
            eps,
            queries: 10,
            p_init: 0.8,
            norm: Norm::L2,
            rescale_schedule: true,
        });
        let candidate = square.propose_l2(&clean, &best, &[true], 3, &mut [Rng::new(5)]);
        for ch in 0..c {
            let size = (ch * h * w..(ch + 1) * h * w)
                .map(|i| f64::from(candidate.values[i] - clean.values[i]).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                (size - eps / 3f64.sqrt()).abs() < 1e-5,
                "channel {ch}: {size}"
            );
        }
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
