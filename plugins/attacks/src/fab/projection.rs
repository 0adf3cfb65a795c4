//! FAB's geometry: the displacement of least L-infinity or L2 norm from a point of the box
//! [0, 1]^D to a hyperplane, within the box (the sort-and-bisect projections of AutoAttack's
//! `fab_projections.py`, derived here as one routine for both norms).

use rossl_api::norm::Norm;

/// The displacement `d` of least `norm` with `w . (u + d) = b` and `u + d` in [0, 1]
/// (`u` in [0, 1]). When the box does not reach the hyperplane, the displacement to the box's
/// corner nearest to it. Coordinates with `w_i = 0` do not move.
///
/// The optimum moves each coordinate towards the side that brings `w . x` to `b`, by
/// `min(lambda * r_i, p_i)`, with `p_i` the room to that side's bound and rate `r_i = 1`
/// (L-infinity) or `|w_i|` (L2); the change of `w . x`, `sum_i |w_i| min(lambda r_i, p_i)`, is
/// piecewise linear in `lambda` with breakpoints `p_i / r_i`, which are sorted and searched by
/// bisection for the piece where it reaches `|w . u - b|`.
pub(super) fn box_hyperplane_projection(norm: Norm, u: &[f64], w: &[f64], b: f64) -> Vec<f64> {
    let excess = dot(w, u) - b;
    let mut d = vec![0.0; u.len()];
    if excess == 0.0 || !excess.is_finite() {
        return d;
    }
    // direction of each coordinate's move: against w's sign when w . u is above b
    let side = |wi: f64| {
        if (wi > 0.0) == (excess > 0.0) {
            -1.0
        } else {
            1.0
        }
    };
    let room = |i: usize| {
        let room = if side(w[i]) < 0.0 { u[i] } else { 1.0 - u[i] };
        room.max(0.0)
    };
    let rate = |wi: f64| match norm {
        Norm::Linf => 1.0,
        Norm::L2 => wi.abs(),
    };
    let moving: Vec<usize> = (0..u.len()).filter(|&i| w[i] != 0.0).collect();
    let lambda = solve_lambda(&moving, excess.abs(), |i| (w[i].abs(), room(i), rate(w[i])))
        .unwrap_or(f64::INFINITY);
    for &i in &moving {
        d[i] = side(w[i]) * (lambda * rate(w[i])).min(room(i));
    }
    d
}

/// The `lambda` at which `sum_i a_i min(lambda r_i, p_i)` over `moving` equals `need` (> 0),
/// with `(a_i, p_i, r_i) = coefficients(i)`; `None` when even `lambda = infinity` falls short.
fn solve_lambda(
    moving: &[usize],
    need: f64,
    coefficients: impl Fn(usize) -> (f64, f64, f64),
) -> Option<f64> {
    // (breakpoint p_i / r_i, a_i p_i, a_i r_i), by breakpoint
    let mut pieces: Vec<(f64, f64, f64)> = moving
        .iter()
        .map(|&i| {
            let (a, p, r) = coefficients(i);
            (p / r, a * p, a * r)
        })
        .collect();
    pieces.sort_by(|x, y| x.0.total_cmp(&y.0));
    // before breakpoint k: the saturated part sum_{j<k} a_j p_j and the slope sum_{j>=k} a_j r_j
    let mut saturated = Vec::with_capacity(pieces.len() + 1);
    let mut acc = 0.0;
    saturated.push(acc);
    for piece in &pieces {
        acc += piece.1;
        saturated.push(acc);
    }
    if acc < need {
        return None;
    }
    let mut slope = vec![0.0; pieces.len() + 1];
    for k in (0..pieces.len()).rev() {
        slope[k] = slope[k + 1] + pieces[k].2;
    }
    // the change at breakpoint k is nondecreasing in k: the first k where it reaches `need`
    let reached = |k: usize| saturated[k] + pieces[k].0 * slope[k] >= need;
    let (mut k, mut upper) = (0, pieces.len());
    while k < upper {
        let middle = (k + upper) / 2;
        if reached(middle) {
            upper = middle;
        } else {
            k = middle + 1;
        }
    }
    if k == pieces.len() || slope[k] <= 0.0 {
        return None;
    }
    Some(((need - saturated[k]) / slope[k]).max(0.0))
}

/// The size of `delta` in `norm`.
pub(super) fn size(norm: Norm, delta: &[f64]) -> f64 {
    match norm {
        Norm::Linf => delta.iter().fold(0.0, |m, v| m.max(v.abs())),
        Norm::L2 => delta.iter().map(|v| v * v).sum::<f64>().sqrt(),
    }
}

/// The dot product of two rows.
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rossl_api::rng::Rng;

    /// Independent reference: the box-constrained projection by bisection on the step `lambda`
    /// of the moves `clamp(u_i -+ lambda s_i, 0, 1)`, `s_i = sign(w_i)` (L-infinity) or `w_i`
    /// (L2), towards the hyperplane.
    fn bisected(norm: Norm, u: &[f64], w: &[f64], b: f64) -> Vec<f64> {
        let excess = dot(w, u) - b;
        let towards = if excess > 0.0 { -1.0 } else { 1.0 };
        let point = |lambda: f64| -> Vec<f64> {
            u.iter()
                .zip(w)
                .map(|(ui, wi)| {
                    let s = match norm {
                        Norm::Linf => wi.signum() * f64::from(u8::from(*wi != 0.0)),
                        Norm::L2 => *wi,
                    };
                    (ui + towards * lambda * s).clamp(0.0, 1.0) - ui
                })
                .collect()
        };
        let crossed = |lambda: f64| {
            let moved: f64 = dot(w, u) + dot(w, &point(lambda));
            (moved - b) * excess <= 0.0
        };
        let (mut lo, mut hi) = (0.0, 1e6);
        if !crossed(hi) {
            return point(hi);
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if crossed(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        point(hi)
    }

    /// Whether the box [0, 1]^D meets the hyperplane `w . x = b`.
    fn reachable(w: &[f64], b: f64) -> bool {
        let low: f64 = w.iter().map(|v| v.min(0.0)).sum();
        let high: f64 = w.iter().map(|v| v.max(0.0)).sum();
        (low..=high).contains(&b)
    }

    /// The least L-infinity distance from `u` to the plane within [0, 1]^D, from first
    /// principles: the smallest radius whose ball, cut to the box, spans `b` in `w . x`.
    fn linf_distance(u: &[f64], w: &[f64], b: f64) -> f64 {
        let spans = |r: f64| {
            let (mut low, mut high) = (0.0, 0.0);
            for (ui, wi) in u.iter().zip(w) {
                let (a, c) = ((ui - r).max(0.0) * wi, (ui + r).min(1.0) * wi);
                low += a.min(c);
                high += a.max(c);
            }
            low <= b && b <= high
        };
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if spans(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    #[test]
    fn projections_reach_the_hyperplane_inside_the_box_with_the_least_norm() {
        let mut rng = Rng::new(11);
        let mut reached = [0usize; 2];
        for trial in 0..400 {
            let dim = 1 + (trial % 37);
            let u: Vec<f64> = (0..dim).map(|_| rng.uniform()).collect();
            let w: Vec<f64> = (0..dim)
                .map(|i| if i % 7 == 3 { 0.0 } else { rng.normal() })
                .collect();
            let b = dot(&w, &u) + rng.normal() * (dim as f64).sqrt() * 0.5;
            for (n, norm) in [Norm::Linf, Norm::L2].into_iter().enumerate() {
                let d = box_hyperplane_projection(norm, &u, &w, b);
                let x: Vec<f64> = u.iter().zip(&d).map(|(a, b)| a + b).collect();
                assert!(
                    x.iter().all(|v| (-1e-12..=1.0 + 1e-12).contains(v)),
                    "{x:?}"
                );
                if reachable(&w, b) {
                    reached[n] += 1;
                    assert!((dot(&w, &x) - b).abs() < 1e-9, "{norm}: missed the plane");
                }
                assert!(
                    w.iter().zip(&d).all(|(w, d)| *w != 0.0 || *d == 0.0),
                    "{norm}: moved a coordinate with w_i = 0"
                );
                let reference = size(norm, &bisected(norm, &u, &w, b));
                let ours = size(norm, &d);
                assert!(
                    (ours - reference).abs() < 1e-7,
                    "{norm}: {ours} vs bisection {reference}"
                );
                if norm == Norm::Linf && reachable(&w, b) {
                    let least = linf_distance(&u, &w, b);
                    assert!((ours - least).abs() < 1e-7, "{ours} vs least {least}");
                }
            }
        }
        // both the reachable and the unreachable cases were exercised
        assert!(reached.iter().all(|&r| r > 100 && r < 400), "{reached:?}");
    }

    #[test]
    fn without_a_binding_bound_the_projections_have_the_closed_form_size() {
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let u: Vec<f64> = (0..30).map(|_| rng.uniform_range(0.4, 0.6)).collect();
            let w: Vec<f64> = (0..30).map(|_| rng.normal()).collect();
            let l1: f64 = w.iter().map(|v| v.abs()).sum();
            let l2 = dot(&w, &w).sqrt();
            let b = dot(&w, &u) + rng.uniform_range(-0.05, 0.05) * l2;
            let excess = (dot(&w, &u) - b).abs();
            let linf = size(
                Norm::Linf,
                &box_hyperplane_projection(Norm::Linf, &u, &w, b),
            );
            assert!(
                (linf - excess / l1).abs() < 1e-12,
                "{linf} vs {}",
                excess / l1
            );
            let d = box_hyperplane_projection(Norm::L2, &u, &w, b);
            assert!((size(Norm::L2, &d) - excess / l2).abs() < 1e-12);
            // and along w
            let scale = d[0] / w[0];
            assert!(d.iter().zip(&w).all(|(d, w)| (d - scale * w).abs() < 1e-12));
        }
        // on the plane already: no move
        let d = box_hyperplane_projection(Norm::L2, &[0.5, 0.5], &[1.0, 1.0], 1.0);
        assert_eq!(d, vec![0.0, 0.0]);
    }
}
