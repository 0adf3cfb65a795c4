//! The report's plots (SVG). Of runs (a comparison): robust accuracy against eps, training loss
//! curves, and accuracy against training time. Of groups over seeds (a study): the trade-off
//! (robust against clean accuracy), the efficiency frontier (robust accuracy against training
//! time), each metric against each swept value, and the online monitor's robust accuracy during
//! training.

use super::runs::{first_row_eps_label, norm_words, radii, Row};
use super::stats::{by_group, worst_by_radius, RunMetrics, Summary};
use crate::plot::{chart, legend, plot_err, Frame, PALETTE};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Robust accuracy (worst case) against eps, one line per row (first evaluator).
pub fn plot_robustness(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let max_eps = radii(rows).into_iter().fold(0.0, f64::max).max(1e-3);
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    let l2 = rows.iter().all(Row::is_l2) && !rows.is_empty();
    let x_desc = format!("eps ({})", norm_words(rows));
    let mut chart = chart(
        &root,
        &Frame {
            caption: "Robust accuracy (worst case over attacks) against eps",
            caption_size: 18,
            x: 0f64..max_eps * 1.05,
            y: 0f64..100f64,
            x_desc: &x_desc,
            y_desc: "accuracy (%)",
            y_label_width: 50,
            x_labels: Some(&|x| {
                if l2 {
                    format!("{x:.2}")
                } else {
                    format!("{:.1}/255", x * 255.0)
                }
            }),
        },
    )?;
    for (i, row) in rows.iter().enumerate() {
        let Some(e) = row.results.evaluations.first() else {
            continue;
        };
        let colour = PALETTE[i % PALETTE.len()];
        let mut points = vec![(0.0, 100.0 * e.clean_accuracy)];
        points.extend(e.worst_case.iter().map(|w| (w.eps, 100.0 * w.accuracy)));
        // radii in the order of their size, whatever the order of `eval.eps`
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
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
    let mut chart = chart(
        &root,
        &Frame {
            caption: "Training loss",
            caption_size: 18,
            x: 0f64..x_max,
            y: (y_min - pad)..(y_max + pad),
            x_desc: "optimiser step",
            y_desc: "SSL objective",
            y_label_width: 60,
            x_labels: None,
        },
    )?;
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
    let mut chart = chart(
        &root,
        &Frame {
            caption: &format!(
                "Accuracy against training time (triangles: worst case at eps {})",
                first_row_eps_label(rows, max_eps)
            ),
            caption_size: 16,
            x: 0f64..t_max,
            y: 0f64..100f64,
            x_desc: "pre-training time (s)",
            y_desc: "accuracy (%)",
            y_label_width: 50,
            x_labels: None,
        },
    )?;
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

/// The worst-case metric at the largest radius measured (`worst 8/255`), if any.
fn largest_worst(runs: &[RunMetrics]) -> Option<String> {
    worst_by_radius(runs.iter().flat_map(|r| r.values.keys())).pop()
}

/// A point with its 95% interval on each axis (NaN intervals drawn as none).
struct Point {
    label: String,
    x: Summary,
    y: Summary,
}

/// Draws `points` with interval bars on both axes.
fn scatter(
    path: &Path,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[Point],
) -> anyhow::Result<()> {
    let half = |s: &Summary| if s.ci95.is_nan() { 0.0 } else { s.ci95 };
    let x_max = points
        .iter()
        .map(|p| p.x.mean + half(&p.x))
        .fold(1e-9, f64::max)
        * 1.1;
    let y_max = points
        .iter()
        .map(|p| p.y.mean + half(&p.y))
        .fold(1e-9, f64::max)
        .max(1.0)
        * 1.1;
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    let mut chart = chart(
        &root,
        &Frame {
            caption,
            caption_size: 16,
            x: 0f64..x_max,
            y: 0f64..y_max,
            x_desc,
            y_desc,
            y_label_width: 50,
            x_labels: None,
        },
    )?;
    for (i, p) in points.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let (x, y, dx, dy) = (p.x.mean, p.y.mean, half(&p.x), half(&p.y));
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 5, colour.filled())))
            .map_err(plot_err)?
            .label(p.label.clone())
            .legend(move |(a, b)| Circle::new((a + 10, b), 5, colour.filled()));
        for segment in [
            vec![(x - dx, y), (x + dx, y)],
            vec![(x, y - dy), (x, y + dy)],
        ] {
            chart
                .draw_series(LineSeries::new(segment, colour.stroke_width(2)))
                .map_err(plot_err)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)
}

/// Lines of (x, y) per series.
fn lines(
    path: &Path,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
) -> anyhow::Result<()> {
    let all = series.values().flatten();
    let (mut x_min, mut x_max, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, 1.0f64);
    for &(x, y) in all {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if !x_min.is_finite() {
        return Ok(());
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    let mut chart = chart(
        &root,
        &Frame {
            caption,
            caption_size: 16,
            x: x_min..x_max,
            y: 0f64..y_max * 1.05,
            x_desc,
            y_desc,
            y_label_width: 50,
            x_labels: None,
        },
    )?;
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(label.clone())
            .legend(move |(a, b)| {
                PathElement::new(vec![(a, b), (a + 20, b)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(plot_err)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(plot_err)
}

fn percent(s: &Summary) -> Summary {
    Summary {
        mean: s.mean * 100.0,
        sd: s.sd * 100.0,
        ci95: s.ci95 * 100.0,
        ..*s
    }
}

/// Writes the study's plots into `dir`; returns their file names.
pub fn write_study_plots(
    dir: &Path,
    runs: &[RunMetrics],
    sweep_keys: &[String],
) -> anyhow::Result<Vec<String>> {
    let Some(worst) = largest_worst(runs) else {
        return Ok(Vec::new());
    };
    let groups = by_group(runs);
    let mut written = write_tradeoffs(dir, &groups, &worst)?;
    for key in sweep_keys {
        for metric in ["clean", worst.as_str()] {
            written.push(write_sweep(dir, runs, &groups, key, metric)?);
        }
    }
    if runs.iter().any(|r| !r.monitor.is_empty()) {
        write_monitor(dir, runs, &groups)?;
        written.push("monitor.svg".into());
    }
    Ok(written)
}

/// Per-group summaries over seeds, as [`by_group`] gives them.
type Groups = [(String, BTreeMap<String, Summary>)];

/// The trade-off (`worst` against clean accuracy) and the efficiency frontier (`worst` against
/// training time), one point per group with its intervals.
fn write_tradeoffs(dir: &Path, groups: &Groups, worst: &str) -> anyhow::Result<Vec<String>> {
    let point = |x: &str, y: &str, scale_x: bool| -> Vec<Point> {
        groups
            .iter()
            .filter_map(|(g, s)| {
                let (xs, ys) = (s.get(x)?, s.get(y)?);
                Some(Point {
                    label: g.clone(),
                    x: if scale_x { percent(xs) } else { *xs },
                    y: percent(ys),
                })
            })
            .collect()
    };
    scatter(
        &dir.join("tradeoff.svg"),
        &format!("Trade-off: {worst} against clean accuracy (95% intervals)"),
        "clean accuracy (%)",
        &format!("{worst} accuracy (%)"),
        &point("clean", worst, true),
    )?;
    scatter(
        &dir.join("frontier.svg"),
        &format!("Efficiency: {worst} accuracy against training time"),
        "training wall time (s)",
        &format!("{worst} accuracy (%)"),
        &point("train seconds", worst, false),
    )?;
    Ok(vec!["tradeoff.svg".to_string(), "frontier.svg".to_string()])
}

/// `metric` (mean over seeds) against the swept value of `key`, one line per arm and the other
/// keys' values; returns the file's name.
fn write_sweep(
    dir: &Path,
    runs: &[RunMetrics],
    groups: &Groups,
    key: &str,
    metric: &str,
) -> anyhow::Result<String> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (g, stats) in groups {
        let Some(run) = runs.iter().find(|r| &r.group == g) else {
            continue;
        };
        let Some((_, value)) = run.point.iter().find(|(k, _)| k == key) else {
            continue;
        };
        let (Ok(x), Some(s)) = (value.parse::<f64>(), stats.get(metric)) else {
            continue;
        };
        let others: Vec<String> = run
            .point
            .iter()
            .filter(|(k, _)| k != key)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let label = if others.is_empty() {
            run.arm.clone()
        } else {
            format!("{}, {}", run.arm, others.join(", "))
        };
        series.entry(label).or_default().push((x, s.mean * 100.0));
    }
    series
        .values_mut()
        .for_each(|v| v.sort_by(|a, b| a.0.total_cmp(&b.0)));
    let name = format!(
        "sweep_{}_{}.svg",
        key.replace(['.', ' ', '/'], "_"),
        metric.replace(['.', ' ', '/'], "_")
    );
    lines(
        &dir.join(&name),
        &format!("{metric} accuracy against {key} (mean over seeds)"),
        key,
        "accuracy (%)",
        &series,
    )?;
    Ok(name)
}

/// The online monitor's PGD accuracy against the optimiser step, mean over seeds per group.
fn write_monitor(dir: &Path, runs: &[RunMetrics], groups: &Groups) -> anyhow::Result<()> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (g, _) in groups {
        let mut by_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in runs.iter().filter(|r| &r.group == g) {
            for &(step, _, pgd) in &r.monitor {
                by_step.entry(step).or_default().push(pgd);
            }
        }
        let points = by_step
            .into_iter()
            .map(|(s, v)| (s as f64, 100.0 * v.iter().sum::<f64>() / v.len() as f64))
            .collect::<Vec<_>>();
        if !points.is_empty() {
            series.insert(g.clone(), points);
        }
    }
    lines(
        &dir.join("monitor.svg"),
        "Online monitor: probe accuracy under PGD during training (mean over seeds)",
        "optimiser step",
        "PGD accuracy (%)",
        &series,
    )
}
