//! `docs/benchmarks/chart.png`: blast throughput and paced latency per implementation, as bars
//! (plotters, pure-Rust font rendering with a system TrueType font).

use anyhow::{Context, Result};
use plotters::prelude::*;

/// One bar row: an implementation and its value (absent: not measured).
pub(crate) type Row = (String, Option<f64>);

/// Fonts looked for, in order (Debian's fonts-dejavu-core first).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn register_font() -> Result<()> {
    let bytes = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .context("no DejaVuSans.ttf (apt-get install fonts-dejavu-core)")?;
    // plotters keeps the font for the life of the process
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("the font could not be loaded"))
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    rows: &[Row],
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let max = rows
        .iter()
        .filter_map(|r| r.1)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.25;
    let n = rows.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..max, 0.0..n as f64)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc(unit)
        .x_labels(5)
        .x_label_formatter(&|v| {
            if *v >= 1e6 {
                format!("{:.1}M", v / 1e6)
            } else if *v >= 1e3 {
                format!("{:.0}k", v / 1e3)
            } else {
                format!("{v}")
            }
        })
        .x_label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, (name, value)) in rows.iter().enumerate() {
        let top = (n - i) as f64 - 0.15;
        let bottom = (n - i - 1) as f64 + 0.15;
        if let Some(v) = value {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, bottom), (*v, top)],
                    color.mix(0.75).filled(),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let label = match value {
            Some(v) if *v >= 1e4 => format!("{name}  {:.0}k", v / 1e3),
            Some(v) => format!("{name}  {v:.2}"),
            None => format!("{name}  (not measured)"),
        };
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (max * 0.01, (n - i) as f64 - 0.5),
                ("sans-serif", 15).into_font().color(&BLACK),
            )))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// Draws the chart: blast deliveries/s, paced remote p99 and emitting p99.
pub(crate) fn draw(path: &std::path::Path, panels: &[(&str, &str, Vec<Row>)]) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(
        path,
        (
            1500,
            180 + 40 * panels.iter().map(|p| p.2.len()).max().unwrap_or(1) as u32,
        ),
    )
    .into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [BLUE, RGBColor(220, 90, 30), RGBColor(40, 150, 70)];
    let areas = root.split_evenly((1, panels.len().max(1)));
    for ((area, (title, unit, rows)), color) in areas.iter().zip(panels).zip(colors.iter().cycle())
    {
        panel(area, title, unit, rows, *color)?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FONTS, draw};

    #[test]
    fn draws_a_png_or_says_which_font_is_missing() {
        let path = std::env::temp_dir().join(format!("bench-chart-{}.png", std::process::id()));
        let rows = vec![("a".to_owned(), Some(2.0e6)), ("b".to_owned(), None)];
        let result = draw(&path, &[("t", "u", rows.clone()), ("t2", "u2", rows)]);
        if FONTS.iter().any(|f| std::path::Path::new(f).exists()) {
            assert!(result.is_ok(), "{result:?}");
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
            let _ = std::fs::remove_file(&path);
        } else {
            let e = result.err().map(|e| format!("{e:#}")).unwrap_or_default();
            assert!(e.contains("fonts-dejavu-core"), "{e}");
        }
    }
}
