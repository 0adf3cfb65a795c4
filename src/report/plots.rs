//! The comparison's plots (SVG): robust accuracy against eps, training loss curves, and accuracy
//! against training time.

use super::{eps_label, radii, Row};
use crate::plot::{legend, plot_err, PALETTE};
use plotters::prelude::*;
use std::path::Path;

/// Robust accuracy (worst case) against eps, one line per row (first evaluator).
pub fn plot_robustness(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let max_eps = radii(rows).into_iter().fold(0.0, f64::max).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Robust accuracy (worst case over attacks) against eps",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_eps * 1.05, 0f64..100f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("eps (L-infinity)")
        .y_desc("accuracy (%)")
        .x_label_formatter(&|x| format!("{:.1}/255", x * 255.0))
        .draw()
        .map_err(plot_err)?;
    for (i, row) in rows.iter().enumerate() {
        let Some(e) = row.results.evaluations.first() else {
            continue;
        };
        let colour = PALETTE[i % PALETTE.len()];
        let mut points = vec![(0.0, 100.0 * e.clean_accuracy)];
        points.extend(e.worst_case.iter().map(|w| (w.eps, 100.0 * w.accuracy)));
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(row.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(plot_err)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(plot_err)
}

/// Training loss against optimiser step, one line per row.
pub fn plot_losses(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let curves: Vec<Vec<(f64, f64)>> = rows.iter().map(Row::loss_curve).collect();
    let points = curves.iter().flatten();
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Training loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("optimiser step")
        .y_desc("SSL objective")
        .draw()
        .map_err(plot_err)?;
    for (i, (row, curve)) in rows.iter().zip(curves).enumerate() {
        if curve.is_empty() {
            continue;
        }
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(curve, colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(row.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(plot_err)
}

/// Clean (circles) and worst-case robust accuracy at the largest eps (triangles) against
/// training time, one colour per row.
pub fn plot_accuracy_vs_time(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let max_eps = radii(rows).into_iter().fold(0.0, f64::max);
    let t_max = rows.iter().map(|r| r.summary.seconds).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Accuracy against training time (triangles: worst case at eps {})",
                eps_label(max_eps)
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..100f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("pre-training time (s)")
        .y_desc("accuracy (%)")
        .draw()
        .map_err(plot_err)?;
    for (i, row) in rows.iter().enumerate() {
        let Some(e) = row.results.evaluations.first() else {
            continue;
        };
        let colour = PALETTE[i % PALETTE.len()];
        let t = row.summary.seconds;
        chart
            .draw_series(std::iter::once(Circle::new(
                (t, 100.0 * e.clean_accuracy),
                6,
                colour.filled(),
            )))
            .map_err(plot_err)?
            .label(row.label.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        if let Some(w) = e.worst_at(max_eps) {
            chart
                .draw_series(std::iter::once(TriangleMarker::new(
                    (t, 100.0 * w),
                    7,
                    colour.filled(),
                )))
                .map_err(plot_err)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)
}
