//! Latency plots: renders HdrHistograms of request latency to a PNG a person can look at.
//!
//! This module owns the one chart the bench draws, [`write_percentile_plot`]: latency by
//! percentile in the HdrHistogram style, the x axis on a "nines" scale (90%, 99%, 99.9%, ...)
//! so the tail gets as much room as the median, one line per [`Series`]. It also owns the font
//! the chart's text is drawn with: plotters is built without its font-kit backend (which needs
//! the fontconfig development packages), so a TTF is loaded from a standard path once per
//! process and registered with plotters.

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hdrhistogram::Histogram;
use plotters::chart::{ChartBuilder, SeriesLabelPosition};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::drawing::IntoDrawingArea;
use plotters::element::PathElement;
use plotters::prelude::{BitMapBackend, IntoLogRange};
use plotters::series::LineSeries;
use plotters::style::{Color, FontStyle, RGBColor, BLACK, WHITE};

/// One line on the plot.
#[derive(Debug)]
pub struct Series<'a> {
    /// What the line is, e.g. "read" or "update"; shown in the legend.
    pub label: String,
    /// Latencies in nanoseconds.
    pub histogram: &'a Histogram<u64>,
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No font to draw the title, axes and legend with.
    #[error(
        "no TrueType font found to draw the plot's text (tried {}); install one with \
         `apt-get install fonts-dejavu-core`",
        list_paths(tried)
    )]
    NoFont {
        /// Every path that was looked at, in order.
        tried: Vec<PathBuf>,
    },
    /// The output path does not end in `.png`: the bitmap encoder picks the format from the
    /// extension, so anything else would silently write another format or fail obscurely.
    #[error("plot path {} must end in .png", path.display())]
    NotPng {
        /// The path the caller asked for.
        path: PathBuf,
    },
    /// plotters failed to draw or to write the file (including I/O errors).
    #[error("drawing the plot failed: {0}")]
    Draw(String),
    /// Every series was empty, so there is no line to draw.
    #[error("no series with any recorded latency to plot")]
    Empty,
}

/// Image size in pixels: wide enough for five nines of x axis and a four-line legend.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 700;

/// The family name the loaded font is registered under and every text style asks for.
const FONT_FAMILY: &str = "sans-serif";

/// Where common distributions put a plain sans-serif TTF, most likely first. Debian and
/// Ubuntu come first (fonts-dejavu-core is in nearly every image); the rest cover Fedora,
/// Arch and machines that only have Liberation, FreeFont or Noto.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
];

/// How far right the x axis goes, in nines: 5 is 99.999%. Past that even a long run has too
/// few samples for the line to mean anything.
const MAX_NINES: f64 = 5.0;

/// Samples per nine along the x axis: dense enough that the steps of a histogram with few
/// samples still read as steps rather than as slopes.
const POINTS_PER_NINE: u32 = 100;

/// The smallest latency drawn, in microseconds (1 ns): a recorded 0 would sit at minus
/// infinity on a log axis.
const MIN_LATENCY_US: f64 = 0.001;

/// A y range wider than this ratio (two decades) is drawn on a log axis, otherwise the
/// median and the tail would not both be readable.
const LOG_AXIS_RATIO: f64 = 100.0;

/// Line colours (Tableau 10): distinct from each other and readable on white.
const COLOURS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One series ready to draw: its legend text and its points (nines, microseconds).
struct Curve {
    legend: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Draws a latency-by-percentile plot (HdrHistogram style) to the PNG at `path`.
///
/// The x axis is the percentile on a logarithmic "nines" scale (0%, 90%, 99%, 99.9%, 99.99%,
/// 99.999%, i.e. x = -log10(1 - p)); the y axis is latency in microseconds, on a log scale
/// if the range spans more than two decades and linear otherwise. Each series is one
/// coloured line, with a legend showing its label, count and p50/p99/p99.9; `title` goes at
/// the top. Series with no recorded values are left out; if none remain the result is
/// [`PlotError::Empty`].
pub fn write_percentile_plot(
    path: &Path,
    title: &str,
    series: &[Series<'_>],
) -> Result<(), PlotError> {
    let curves = curves(series);
    if curves.is_empty() {
        return Err(PlotError::Empty);
    }
    check_png_path(path)?;
    ensure_font()?;
    let (low, high) = latency_bounds(&curves);
    if high / low > LOG_AXIS_RATIO {
        render(path, title, &curves, log_range(low, high).log_scale())
    } else {
        render(path, title, &curves, 0.0..high * 1.05)
    }
}

/// The non-empty series as curves, each with the next colour.
fn curves(series: &[Series<'_>]) -> Vec<Curve> {
    series
        .iter()
        .filter(|s| !s.histogram.is_empty())
        .enumerate()
        .map(|(i, s)| Curve {
            legend: legend(s),
            colour: COLOURS[i % COLOURS.len()],
            points: percentile_points(s.histogram),
        })
        .collect()
}

/// Latency (µs) sampled evenly along the nines axis from 0% to 99.999%.
fn percentile_points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let steps = (MAX_NINES * f64::from(POINTS_PER_NINE)) as u32;
    (0..=steps)
        .map(|i| {
            let nines = f64::from(i) / f64::from(POINTS_PER_NINE);
            let quantile = 1.0 - 10f64.powf(-nines);
            // The highest-equivalent value of the top bucket can exceed what was recorded.
            let ns = histogram.value_at_quantile(quantile).min(histogram.max());
            (nines, ns_to_us(ns).max(MIN_LATENCY_US))
        })
        .collect()
}

/// The legend line: label, count and the three percentiles people quote.
fn legend(series: &Series<'_>) -> String {
    let h = series.histogram;
    format!(
        "{}  n={}  p50={}  p99={}  p99.9={}",
        series.label,
        group_thousands(h.len()),
        format_us(h.value_at_quantile(0.50)),
        format_us(h.value_at_quantile(0.99)),
        format_us(h.value_at_quantile(0.999)),
    )
}

/// The lowest and highest latency (µs) over all curves.
fn latency_bounds(curves: &[Curve]) -> (f64, f64) {
    let ys = || curves.iter().flat_map(|c| c.points.iter().map(|&(_, y)| y));
    let low = ys().fold(f64::INFINITY, f64::min);
    let high = ys().fold(MIN_LATENCY_US, f64::max);
    (low, high)
}

/// A log axis from the decade at or below `low` to the decade at or above `high`, so the
/// bold grid lines and labels fall on round powers of ten. The ends are nudged out a hair
/// because plotters finds its ticks through `ln`/`exp`, whose rounding can otherwise drop
/// the label on an end that is exactly a power of ten.
fn log_range(low: f64, high: f64) -> Range<f64> {
    let bottom = 10f64.powf(low.log10().floor());
    let top = 10f64.powf(high.log10().ceil());
    bottom * 0.999..top * 1.001
}

/// Draws the chart and writes the file; generic over the y coordinate so the log and linear
/// axes share one drawing path.
fn render<Y>(path: &Path, title: &str, curves: &[Curve], y: Y) -> Result<(), PlotError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 28))
        .margin(20)
        // Room for the last x label ("99.999%"), which is centred on the right edge.
        .margin_right(50)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(RangedCoordf64::from(0.0..MAX_NINES), y)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_labels(MAX_NINES as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format_axis_us(*y))
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .label_style((FONT_FAMILY, 16))
        .axis_desc_style((FONT_FAMILY, 18))
        .draw()
        .map_err(draw_error)?;
    for curve in curves {
        let style = curve.colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(curve.points.iter().copied(), style))
            .map_err(draw_error)?
            .label(curve.legend.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    chart
        .configure_series_labels()
        // Latency rises to the right, so the upper left is where the lines are not.
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 16))
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)
}

/// Whether a plot could be written to `path` (a `.png` name, and a font to draw text):
/// checked before a run, so that a long run does not end without its plot.
pub fn check_target(path: &Path) -> Result<(), PlotError> {
    check_png_path(path)?;
    ensure_font()
}

/// Rejects paths the bitmap encoder would not write as PNG.
fn check_png_path(path: &Path) -> Result<(), PlotError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("png") => Ok(()),
        _ => Err(PlotError::NotPng {
            path: path.to_path_buf(),
        }),
    }
}

/// Registers a font with plotters the first time it is needed; later calls reuse the
/// outcome, so a missing font is reported every time without searching again.
fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<Result<PathBuf, Vec<PathBuf>>> = OnceLock::new();
    match FONT.get_or_init(register_first_font) {
        Ok(_) => Ok(()),
        Err(tried) => Err(PlotError::NoFont {
            tried: tried.clone(),
        }),
    }
}

/// Registers the first font in [`FONT_PATHS`] that reads and parses, returning its path, or
/// every path tried.
fn register_first_font() -> Result<PathBuf, Vec<PathBuf>> {
    let tried: Vec<PathBuf> = FONT_PATHS.iter().map(PathBuf::from).collect();
    for path in &tried {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        // plotters keeps `&'static` font data; this runs once per process (behind the
        // OnceLock), so leaking one font file is the intended lifetime, not a leak that grows.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
            return Ok(path.clone());
        }
    }
    Err(tried)
}

/// An x axis label: the percentile at `nines`, with as many decimals as the nines need
/// (0 → "0%", 1 → "90%", 3 → "99.9%").
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.ceil() as usize).saturating_sub(2);
    format!("{percent:.decimals$}%")
}

/// A y axis label in microseconds, with just enough decimals for sub-microsecond ticks.
fn format_axis_us(us: f64) -> String {
    if us >= 1.0 || us == 0.0 {
        group_thousands(us.round() as u64)
    } else {
        let decimals = (-us.log10()).ceil() as usize;
        format!("{us:.decimals$}")
    }
}

/// A latency in nanoseconds as microseconds with three significant-ish digits.
fn format_us(ns: u64) -> String {
    let us = ns_to_us(ns);
    if us >= 100.0 {
        format!("{}µs", group_thousands(us.round() as u64))
    } else if us >= 10.0 {
        format!("{us:.1}µs")
    } else {
        format!("{us:.2}µs")
    }
}

/// `n` with commas every three digits: counts and tail latencies run to six digits or more.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

/// Flattens a plotters error (generic over the backend) into [`PlotError::Draw`].
fn draw_error(e: impl Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// The `tried` paths of [`PlotError::NoFont`], comma-separated.
fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    /// A histogram shaped like a service's latency: a body around `base_ns` and a long tail
    /// out to `tail_factor` times that, deterministic so the test needs no RNG.
    fn synthetic(base_ns: u64, tail_factor: u64) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for i in 0..100_000u64 {
            let spread = base_ns + (i % 1_000) * base_ns / 1_000;
            let value = if i % 1_000 == 0 {
                spread * tail_factor * (1 + i % 7) / 7
            } else {
                spread
            };
            h.record(value).unwrap();
        }
        h
    }

    fn png_dimensions(bytes: &[u8]) -> (u32, u32) {
        // The IHDR chunk follows the signature: 4 bytes length, 4 bytes type, then width and
        // height as big-endian u32s.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        (width, height)
    }

    #[test]
    fn two_series_make_a_png() {
        let read = synthetic(80_000, 50);
        let update = synthetic(150_000, 200);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.png");
        let series = [
            Series {
                label: "read".to_string(),
                histogram: &read,
            },
            Series {
                label: "update".to_string(),
                histogram: &update,
            },
        ];
        write_percentile_plot(&path, "tessera workload A, 50 connections", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[..8], PNG_SIGNATURE);
        assert_eq!(png_dimensions(&bytes), (WIDTH, HEIGHT));
        // A blank white image compresses to a few kilobytes; lines, text and grid do not.
        assert!(
            bytes.len() > 20_000,
            "suspiciously small PNG: {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn narrow_range_uses_a_linear_axis_and_still_draws() {
        let h = synthetic(100_000, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("narrow.PNG");
        let series = [Series {
            label: "read".to_string(),
            histogram: &h,
        }];
        write_percentile_plot(&path, "narrow", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[..8], PNG_SIGNATURE);
    }

    #[test]
    fn no_series_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.png");
        let err = write_percentile_plot(&path, "nothing", &[]).unwrap_err();
        assert!(matches!(err, PlotError::Empty), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn only_empty_histograms_is_empty() {
        let h = Histogram::<u64>::new(3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.png");
        let series = [Series {
            label: "read".to_string(),
            histogram: &h,
        }];
        let err = write_percentile_plot(&path, "nothing", &series).unwrap_err();
        assert!(matches!(err, PlotError::Empty), "{err}");
    }

    #[test]
    fn other_extensions_are_refused() {
        let h = synthetic(100_000, 10);
        let series = [Series {
            label: "read".to_string(),
            histogram: &h,
        }];
        let err = write_percentile_plot(Path::new("/tmp/x.jpg"), "t", &series).unwrap_err();
        assert!(matches!(err, PlotError::NotPng { .. }), "{err}");
    }

    #[test]
    fn percentile_labels_count_the_nines() {
        let labels: Vec<String> = (0..=5).map(|n| percentile_label(f64::from(n))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }

    #[test]
    fn thousands_are_grouped() {
        let grouped: Vec<String> = [0, 999, 1_000, 123_456, 1_234_567]
            .into_iter()
            .map(group_thousands)
            .collect();
        assert_eq!(grouped, ["0", "999", "1,000", "123,456", "1,234,567"]);
    }

    #[test]
    fn points_stop_at_the_largest_recorded_value() {
        let h = synthetic(100_000, 50);
        let max_us = ns_to_us(h.max());
        let points = percentile_points(&h);
        assert_eq!(points.len(), 501);
        assert!(points.iter().all(|&(_, y)| y <= max_us));
        assert!(
            points.windows(2).all(|w| w[0].1 <= w[1].1),
            "latency must not fall"
        );
    }

    #[test]
    fn no_font_message_names_the_paths_and_the_package() {
        let err = PlotError::NoFont {
            tried: vec![PathBuf::from("/a.ttf"), PathBuf::from("/b.ttf")],
        };
        let msg = err.to_string();
        assert!(msg.contains("/a.ttf, /b.ttf"), "{msg}");
        assert!(msg.contains("apt-get install fonts-dejavu-core"), "{msg}");
    }
}
