//! Threat models: the L-infinity and L2 balls around an input, with what every attack needs of
//! them (projection, the steepest-ascent direction of a gradient, a random point, per-example
//! distances).
//!
//! Rows (dimension 0) are examples: every operation here is per example.

use crate::rng::Rng;
use crate::Result;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How far from the centre an L2 random perturbation lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Radius {
    /// A uniform fraction of eps (torchattacks' PGDL2).
    UniformFraction,
    /// eps: on the sphere (AutoAttack's APGD, `x + eps * t / ||t||_2` with t Gaussian).
    Sphere,
}

/// The norm that bounds a perturbation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// `max_i |delta_i| <= eps`.
    #[default]
    Linf,
    /// `sqrt(sum_i delta_i^2) <= eps`, per example.
    L2,
}

impl Norm {
    /// Its name in configs: `linf` or `l2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }

    /// `true` for L-infinity, the default: attack parameters skip serialising a default `norm`,
    /// so that configurations written before `norm` existed keep their digests
    /// (`#[serde(skip_serializing_if = "Norm::is_linf")]`).
    pub fn is_linf(&self) -> bool {
        *self == Norm::Linf
    }

    /// Its name in prose: `L-infinity` or `L2`.
    pub fn prose(self) -> &'static str {
        match self {
            Norm::Linf => "L-infinity",
            Norm::L2 => "L2",
        }
    }

    /// Projects `candidate` onto the ball of radius `eps` around `x`, then onto [0, 1]. (Clipping
    /// to [0, 1] moves every coordinate towards `x`, which lies in the box, so the result stays
    /// in the ball.)
    pub fn project(self, x: &Tensor, candidate: &Tensor, eps: f64) -> Result<Tensor> {
        let delta = (candidate - x)?;
        let delta = match self {
            Norm::Linf => delta.clamp(-eps, eps)?,
            Norm::L2 => {
                let norms = row_norms(&delta)?;
                // factor min(1, eps / ||delta||) per row
                let factor =
                    (norms.clamp(1e-12, f64::INFINITY)?.recip()? * eps)?.clamp(0.0, 1.0)?;
                delta.broadcast_mul(&as_rows(&factor, &delta)?)?
            }
        };
        Ok((x + delta)?.clamp(0.0, 1.0)?)
    }

    /// The unit-norm direction of steepest ascent for `gradient`, per example: its sign
    /// (L-infinity; the sign of NaN is 0) or the gradient over its L2 norm (L2; zero where the
    /// gradient is zero, and zero for a row holding an infinite or NaN entry, whose direction is
    /// undefined: dividing by its infinite or NaN norm would put NaN into the image).
    pub fn steepest(self, gradient: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Norm::Linf => gradient.sign()?,
            Norm::L2 => {
                let norms = row_norms(gradient)?;
                let unit = gradient
                    .broadcast_div(&as_rows(&norms.clamp(1e-12, f64::INFINITY)?, gradient)?)?;
                // NaN < inf is false too; the mask stays on the device
                let keep =
                    as_rows(&norms.lt(f64::INFINITY)?, gradient)?.broadcast_as(gradient.shape())?;
                keep.where_cond(&unit, &unit.zeros_like()?)?
            }
        })
    }

    /// A random perturbation of `x`'s shape inside the ball of radius `eps`: uniform in the cube
    /// (L-infinity), or a uniformly random direction scaled to a uniform fraction of `eps` (L2,
    /// as torchattacks' PGDL2 starts), drawn from `rng` row after row. When `rng` is marked with
    /// the batch rows that `x`'s rows are ([`Rng::for_batch_rows`]), the whole batch's draws are
    /// made and each row gets its own row's.
    pub fn random_delta(self, x: &Tensor, eps: f64, rng: &mut Rng) -> Result<Tensor> {
        self.random_delta_at(x, eps, L2Radius::UniformFraction, rng)
    }

    /// [`Norm::random_delta`] with the L2 radius drawn as `radius` says (L-infinity draws are
    /// uniform in the cube either way).
    pub fn random_delta_at(
        self,
        x: &Tensor,
        eps: f64,
        radius: L2Radius,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let rows = x.dim(0)?;
        let per_row = x.elem_count() / rows.max(1);
        let values = match rng.batch_rows() {
            Some(batch) if batch.rows.len() == rows => {
                let all = self.draw_rows(batch.batch_len, per_row, eps, radius, rng);
                batch
                    .rows
                    .iter()
                    .flat_map(|&r| all[r * per_row..(r + 1) * per_row].iter().copied())
                    .collect()
            }
            _ => self.draw_rows(rows, per_row, eps, radius, rng),
        };
        Ok(Tensor::from_vec(values, x.shape(), x.device())?.to_dtype(x.dtype())?)
    }

    /// `rows` rows of `per_row` random values in the ball of radius `eps`, row after row.
    fn draw_rows(
        self,
        rows: usize,
        per_row: usize,
        eps: f64,
        radius: L2Radius,
        rng: &mut Rng,
    ) -> Vec<f32> {
        match self {
            Norm::Linf => (0..rows * per_row)
                .map(|_| rng.uniform_range(-eps, eps) as f32)
                .collect(),
            Norm::L2 => {
                let mut values = Vec::with_capacity(rows * per_row);
                for _ in 0..rows {
                    let direction: Vec<f64> = (0..per_row).map(|_| rng.normal()).collect();
                    let length = direction.iter().map(|v| v * v).sum::<f64>().sqrt();
                    let fraction = match radius {
                        L2Radius::UniformFraction => rng.uniform(),
                        L2Radius::Sphere => 1.0,
                    };
                    let scale = eps * fraction / length.max(1e-12);
                    values.extend(direction.iter().map(|v| (v * scale) as f32));
                }
                values
            }
        }
    }

    /// The starting point of an attack: a random point of the ball around `x` (projected onto
    /// [0, 1]) when `random` and `eps > 0`, else `x` itself.
    pub fn start(self, x: &Tensor, eps: f64, random: bool, rng: &mut Rng) -> Result<Tensor> {
        if random && eps > 0.0 {
            self.project(x, &(x + self.random_delta(x, eps, rng)?)?, eps)
        } else {
            Ok(x.clone())
        }
    }

    /// The size of each row of `delta` in this norm.
    pub fn distances(self, delta: &Tensor) -> Result<Vec<f64>> {
        let sizes = match self {
            Norm::Linf => delta.flatten_from(1)?.abs()?.max(1)?,
            Norm::L2 => row_norms(delta)?,
        };
        Ok(sizes
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?
            .into_iter()
            .collect())
    }
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The L2 norm of each row of `t`, shape `[rows]`.
pub fn row_norms(t: &Tensor) -> Result<Tensor> {
    Ok(t.flatten_from(1)?.sqr()?.sum(1)?.sqrt()?)
}

/// `values` (shape `[rows]`) reshaped to broadcast over the rows of `like`.
pub fn as_rows(values: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![like.dim(0)?];
    shape.extend(std::iter::repeat_n(1, like.rank() - 1));
    Ok(values.reshape(shape.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn l2_projection_scales_rows_outside_the_ball_only() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.5f32, 0.5], [0.5, 0.5]], &dev)?;
        // row 0: delta (0.3, 0.4), norm 0.5 > 0.25 -> (0.15, 0.2); row 1: norm 0.1, kept
        let candidate = Tensor::new(&[[0.8f32, 0.9], [0.56, 0.58]], &dev)?;
        let p = Norm::L2.project(&x, &candidate, 0.25)?.to_vec2::<f32>()?;
        assert!(
            (p[0][0] - 0.65).abs() < 1e-6 && (p[0][1] - 0.7).abs() < 1e-6,
            "{p:?}"
        );
        assert!(
            (p[1][0] - 0.56).abs() < 1e-6 && (p[1][1] - 0.58).abs() < 1e-6,
            "{p:?}"
        );
        let l = Norm::Linf.project(&x, &candidate, 0.25)?.to_vec2::<f32>()?;
        assert!(
            (l[0][0] - 0.75).abs() < 1e-6 && (l[0][1] - 0.75).abs() < 1e-6,
            "{l:?}"
        );
        Ok(())
    }

    #[test]
    fn marked_draws_give_each_row_its_own_row_of_the_whole_batch() -> Result<()> {
        let dev = Device::Cpu;
        for norm in [Norm::Linf, Norm::L2] {
            let whole = Tensor::zeros((4, 1, 2, 3), DType::F32, &dev)?;
            let all = norm
                .random_delta(&whole, 0.5, &mut Rng::new(9))?
                .flatten_from(1)?
                .to_vec2::<f32>()?;
            let some = Tensor::zeros((2, 1, 2, 3), DType::F32, &dev)?;
            let mut marked = Rng::new(9).for_batch_rows(vec![1, 3], 4);
            let picked = norm
                .random_delta(&some, 0.5, &mut marked)?
                .flatten_from(1)?
                .to_vec2::<f32>()?;
            assert_eq!(picked, vec![all[1].clone(), all[3].clone()], "{norm}");
            // and the stream continues where the whole batch's would
            let mut whole_rng = Rng::new(9);
            norm.random_delta(&whole, 0.5, &mut whole_rng)?;
            assert_eq!(marked.next_u64(), whole_rng.next_u64(), "{norm}");
        }
        Ok(())
    }

    #[test]
    fn sphere_draws_lie_on_the_l2_sphere() -> Result<()> {
        let x = Tensor::zeros((3, 2, 4, 4), DType::F32, &Device::Cpu)?;
        let delta = Norm::L2.random_delta_at(&x, 0.25, L2Radius::Sphere, &mut Rng::new(4))?;
        for size in Norm::L2.distances(&delta)? {
            assert!((size - 0.25).abs() < 1e-6, "{size}");
        }
        Ok(())
    }

    #[test]
    fn an_l2_step_on_a_non_finite_gradient_row_does_not_move_it() -> Result<()> {
        // row 0 holds +inf, row 1 NaN, row 2 is finite: inf / inf would be NaN
        let g = Tensor::new(
            &[
                [f32::INFINITY, 1.0, 0.0],
                [f32::NAN, 1.0, 0.0],
                [3.0, 4.0, 0.0],
            ],
            &Device::Cpu,
        )?;
        let d = Norm::L2.steepest(&g)?.to_vec2::<f32>()?;
        assert_eq!(d[0], [0.0, 0.0, 0.0]);
        assert_eq!(d[1], [0.0, 0.0, 0.0]);
        assert_eq!(d[2], [0.6, 0.8, 0.0]);
        Ok(())
    }

    #[test]
    fn steepest_directions_have_unit_norm_and_random_points_lie_in_the_ball() -> Result<()> {
        let dev = Device::Cpu;
        let g = Tensor::new(&[[3.0f32, -4.0, 0.0], [0.0, 0.0, 0.0]], &dev)?;
        let d = Norm::L2.steepest(&g)?.to_vec2::<f32>()?;
        assert!((d[0][0] - 0.6).abs() < 1e-6 && (d[0][1] + 0.8).abs() < 1e-6);
        assert_eq!(d[1], vec![0.0, 0.0, 0.0]);
        assert_eq!(
            Norm::Linf.steepest(&g)?.to_vec2::<f32>()?[0],
            vec![1.0, -1.0, 0.0]
        );
        let x = Tensor::full(0.5f32, (64, 3, 4, 4), &dev)?;
        let mut rng = Rng::new(7);
        for norm in [Norm::Linf, Norm::L2] {
            let start = norm.start(&x, 0.3, true, &mut rng)?;
            let sizes = norm.distances(&(start - &x)?)?;
            assert!(sizes.iter().all(|&s| s <= 0.3 + 1e-6), "{norm}: {sizes:?}");
            // the points spread inside the ball rather than sitting at its centre
            assert!(sizes.iter().any(|&s| s > 0.1), "{norm}: {sizes:?}");
        }
        Ok(())
    }
}
