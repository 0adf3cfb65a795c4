//! What the SVG plots of comparisons and studies share: colours, frames, axes, legends, errors.

use plotters::prelude::*;

/// The colours of series, in order.
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A plotting error as an `anyhow` error.
pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e}")
}

/// The plots' coordinates.
pub(crate) type Axes =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

/// Draws the series labels of `chart` at `position`.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Axes>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)
}

/// What a plot's frame shows: its caption, the ranges and descriptions of its axes.
pub(crate) struct Frame<'a> {
    /// The caption.
    pub caption: &'a str,
    /// The caption's font size.
    pub caption_size: u32,
    /// The x range.
    pub x: std::ops::Range<f64>,
    /// The y range.
    pub y: std::ops::Range<f64>,
    /// What x is.
    pub x_desc: &'a str,
    /// What y is.
    pub y_desc: &'a str,
    /// The width of the y labels' area.
    pub y_label_width: u32,
    /// How the x labels are written (plotters' default when `None`).
    pub x_labels: Option<&'a dyn Fn(&f64) -> String>,
}

/// Fills `root` white and draws `frame` on it: the chart that a plot's series go into.
pub(crate) fn chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    frame: &Frame<'_>,
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, Axes>> {
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(frame.caption, ("sans-serif", frame.caption_size))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(frame.y_label_width)
        .build_cartesian_2d(frame.x.clone(), frame.y.clone())
        .map_err(plot_err)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(frame.x_desc).y_desc(frame.y_desc);
    if let Some(labels) = frame.x_labels {
        mesh.x_label_formatter(labels);
    }
    mesh.draw().map_err(plot_err)?;
    Ok(chart)
}
