// SPDX-License-Identifier: MPL-2.0
//! The results: medians over the repetitions, a table with ratios against the C plugin and
//! the in-process queue, a JSON file with every run, and a PNG plot of throughput against
//! buffer size.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde::Serialize;

use crate::run::{Outcome, Path, Size};
use crate::stats::{Measures, median};

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub gstreamer: String,
    pub date: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let date = std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            gstreamer: gst::version_string().to_string(),
            date,
        }
    }
}

/// The medians of one (size, path) cell.
#[derive(Clone, Serialize)]
pub struct Cell {
    pub size: String,
    pub bytes: usize,
    pub path: Path,
    #[serde(flatten)]
    pub m: Measures,
    pub failures: Vec<String>,
}

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub repetitions: usize,
    pub cells: Vec<Cell>,
    pub throughput_runs: Vec<Outcome>,
    pub latency_runs: Vec<Outcome>,
}

pub fn cells(
    sizes: &[Size],
    paths: &[Path],
    throughput: &[Outcome],
    latency: &[Outcome],
) -> Vec<Cell> {
    let mut out = Vec::new();
    for size in sizes {
        for &path in paths {
            let of = |runs: &[Outcome]| -> Vec<Outcome> {
                runs.iter()
                    .filter(|o| o.path == path && o.size == size.bytes)
                    .cloned()
                    .collect()
            };
            let (t, l) = (of(throughput), of(latency));
            let m = |runs: &[Outcome], f: fn(&Measures) -> f64| {
                median(
                    runs.iter()
                        .filter(|o| o.error.is_none())
                        .map(|o| f(&o.m))
                        .collect(),
                )
            };
            // Throughput and CPU from the throughput runs, latency from the paced ones.
            out.push(Cell {
                size: size.name.to_string(),
                bytes: size.bytes,
                path,
                m: Measures {
                    buffers_per_s: m(&t, |x| x.buffers_per_s),
                    mb_per_s: m(&t, |x| x.mb_per_s),
                    lat_p50_us: m(&l, |x| x.lat_p50_us),
                    lat_p99_us: m(&l, |x| x.lat_p99_us),
                    master_cpu_us_per_buffer: m(&t, |x| x.master_cpu_us_per_buffer),
                    slave_cpu_us_per_buffer: m(&t, |x| x.slave_cpu_us_per_buffer),
                },
                failures: t.iter().chain(&l).filter_map(|o| o.error.clone()).collect(),
            });
        }
    }
    out
}

fn num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.digits$}")
    }
}

/// A markdown table: one row per size and path, ratios of buffers/s against the C plugin
/// and the in-process queue of the same size.
pub fn table(cells: &[Cell]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| size | transport | buffers/s | MB/s | × C ipcpipeline | × queue | latency p50 µs | p99 µs | CPU µs/buffer master | slave |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in cells {
        let of = |p: Path| {
            cells
                .iter()
                .find(|o| o.bytes == c.bytes && o.path == p)
                .map_or(f64::NAN, |o| o.m.buffers_per_s)
        };
        let failed = if c.failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.failures.join(", "))
        };
        let _ = writeln!(
            s,
            "| {} | {}{failed} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.size,
            c.path.name(),
            num(c.m.buffers_per_s, 0),
            num(c.m.mb_per_s, 1),
            num(c.m.buffers_per_s / of(Path::CIpc), 2),
            num(c.m.buffers_per_s / of(Path::Queue), 2),
            num(c.m.lat_p50_us, 1),
            num(c.m.lat_p99_us, 1),
            num(c.m.master_cpu_us_per_buffer, 2),
            num(c.m.slave_cpu_us_per_buffer, 2),
        );
    }
    s
}

/// Throughput (MB/s, log) against buffer size (log), one line per transport.
pub fn plot(cells: &[Cell], paths: &[Path], file: &std::path::Path) -> Result<(), String> {
    register_font()?;
    let root = BitMapBackend::new(file, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let ok = |v: f64| v.is_finite() && v > 0.0;
    let (min_b, max_b) = (
        cells.iter().map(|c| c.bytes).min().unwrap_or(1) as f64,
        cells.iter().map(|c| c.bytes).max().unwrap_or(2) as f64,
    );
    let max_mb = cells
        .iter()
        .map(|c| c.m.mb_per_s)
        .filter(|v| ok(*v))
        .fold(1.0, f64::max);
    let min_mb = cells
        .iter()
        .map(|c| c.m.mb_per_s)
        .filter(|v| ok(*v))
        .fold(max_mb, f64::min);
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput against buffer size", ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (min_b / 1.5..max_b * 1.5).log_scale(),
            (min_mb / 2.0..max_mb * 2.0).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("buffer size (bytes)")
        .y_desc("MB/s")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, &path) in paths.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = cells
            .iter()
            .filter(|c| c.path == path && ok(c.m.mb_per_s))
            .map(|c| (c.bytes as f64, c.m.mb_per_s))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
            .map_err(|e| e.to_string())?
            .label(path.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// plotters draws text with a font we hand it: DejaVu Sans, from Debian's fonts-dejavu-core.
fn register_font() -> Result<(), String> {
    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let bytes = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e}"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
        .map_err(|_| format!("{FONT}: not a usable font"))
}
