//! Bench results for people: a console table (with ratios when two targets
//! ran the same load; one row per step for a ramp), JSON, and one
//! self-contained HTML page whose plots are inline SVG (no scripts, no
//! network): latency histograms and CPU over time for a single step, CPU,
//! memory and latency against viewers for a ramp.

use std::fmt::Write;

use super::{BenchResult, BenchRun, Summary};

/// How a table row reads its value off a result.
type Read = fn(&BenchResult) -> Option<f64>;

/// The rows every table shows: a name and how to read it off a result.
fn rows() -> Vec<(&'static str, Read)> {
    fn ms(summary: &Option<Summary>, pick: fn(&Summary) -> f64) -> Option<f64> {
        summary.as_ref().map(pick)
    }
    vec![
        ("latency p50 (ms)", |r| ms(&r.latency_ms, |s| s.p50)),
        ("latency p90 (ms)", |r| ms(&r.latency_ms, |s| s.p90)),
        ("latency p99 (ms)", |r| ms(&r.latency_ms, |s| s.p99)),
        ("latency max (ms)", |r| ms(&r.latency_ms, |s| s.max)),
        ("first picture p50 (ms)", |r| ms(&r.first_picture_ms, |s| s.p50)),
        ("first picture max (ms)", |r| ms(&r.first_picture_ms, |s| s.max)),
        ("first sound p50 (ms)", |r| ms(&r.first_sound_ms, |s| s.p50)),
        ("frames decoded", |r| Some(r.frames_decoded as f64)),
        ("frames lost", |r| Some(r.frames_lost as f64)),
        ("decode errors", |r| Some(r.decode_errors as f64)),
        ("longest audio gap (ms)", |r| Some(r.longest_audio_gap_ms)),
        ("server CPU (% of a core)", |r| {
            r.process.as_ref().map(|p| p.cpu_percent)
        }),
        ("server CPU seconds", |r| r.process.as_ref().map(|p| p.cpu_seconds)),
        ("server RSS max (MiB)", |r| r.process.as_ref().map(|p| p.rss_max_mib)),
        ("server RSS per viewer (KiB)", |r| r.rss_per_viewer_kib),
        ("light players", |r| r.light.as_ref().map(|l| l.players as f64)),
        ("light packets/s each", |r| {
            r.light.as_ref().map(|l| l.packets_per_second_each)
        }),
        ("light kbit/s each", |r| r.light.as_ref().map(|l| l.kbps_each)),
        ("light packets lost", |r| {
            r.light.as_ref().map(|l| l.counted.lost as f64)
        }),
        ("light setup p50 (ms)", |r| {
            r.light.as_ref().and_then(|l| ms(&l.setup_ms, |s| s.p50))
        }),
        ("light setup failures", |r| {
            r.light.as_ref().map(|l| l.setup_failures as f64)
        }),
        ("generator CPU (% of a core)", |r| {
            r.generator.as_ref().map(|p| p.cpu_percent)
        }),
        ("generator CPU per light player (%)", generator_per_light_player),
    ]
}

/// The load generator's CPU over its light players: an upper bound on what
/// one costs it (the probes' decoding is in the numerator too).
fn generator_per_light_player(step: &BenchResult) -> Option<f64> {
    let players = step.light.as_ref()?.players;
    let cpu = step.generator.as_ref()?.cpu_percent;
    (players > 0).then(|| cpu / players as f64)
}

/// The columns of a ramp's table: a heading and how to read it off a step.
fn ramp_columns() -> Vec<(&'static str, Read)> {
    vec![
        ("viewers", |r| Some((r.players_per_stream * r.publishers) as f64)),
        ("CPU %", |r| r.process.as_ref().map(|p| p.cpu_percent)),
        ("RSS MiB", |r| r.process.as_ref().map(|p| p.rss_max_mib)),
        ("KiB/viewer", |r| r.rss_per_viewer_kib),
        ("pkt/s each", |r| r.light.as_ref().map(|l| l.packets_per_second_each)),
        ("lost pkts", |r| r.light.as_ref().map(|l| l.counted.lost as f64)),
        ("p50 ms", |r| r.latency_ms.as_ref().map(|s| s.p50)),
        ("p99 ms", |r| r.latency_ms.as_ref().map(|s| s.p99)),
        ("frames lost", |r| Some(r.frames_lost as f64)),
        ("setup fail", |r| r.light.as_ref().map(|l| l.setup_failures as f64)),
        ("gen CPU %", |r| r.generator.as_ref().map(|p| p.cpu_percent)),
        ("gen %/light", generator_per_light_player),
    ]
}

/// Viewers per core a step extrapolates to: viewers / (CPU % / 100).
pub fn viewers_per_core(step: &BenchResult) -> Option<f64> {
    let cpu = step.process.as_ref()?.cpu_percent;
    (cpu > 0.0).then(|| (step.players_per_stream * step.publishers) as f64 / (cpu / 100.0))
}

/// Viewers per core from a ramp's curve: the least-squares line of server
/// CPU against viewers through the steps whose probes lost no frame. Its
/// slope is what one more viewer costs, so 100 / slope viewers fill a core
/// beside the fixed cost (the line at no viewer, also returned, in % of a
/// core). Steadier than the best single step, which picks the step the
/// machine's noise favoured most. `None` under two such steps or without a
/// rising line.
pub fn viewers_per_core_from_slope(steps: &[BenchResult]) -> Option<(f64, f64)> {
    let points: Vec<(f64, f64)> = (steps.iter())
        .filter(|step| step.frames_lost == 0)
        .filter_map(|step| {
            let cpu = step.process.as_ref()?.cpu_percent;
            Some(((step.players_per_stream * step.publishers) as f64, cpu))
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    (sxx > 0.0 && slope > 0.0).then(|| (100.0 / slope, mean_y - slope * mean_x))
}

/// The console summary of whole runs: the single-step table when every
/// run is one step, otherwise one table per ramp.
pub fn runs_table(runs: &[BenchRun]) -> String {
    if runs.iter().all(|r| r.steps.len() == 1) {
        let steps: Vec<BenchResult> = runs.iter().map(|r| r.steps[0].clone()).collect();
        return table(&steps);
    }
    let mut out = String::new();
    for run in runs {
        let Some(first) = run.steps.first() else { continue };
        let _ = writeln!(
            out,
            "{}: ramp of {} publisher(s) over {:?}, {} probe(s) per stream, {} s per step, {}x{} at {} fps",
            run.target,
            first.publishers,
            first.via,
            first.probes_per_stream,
            first.seconds,
            first.picture.0,
            first.picture.1,
            first.picture.2
        );
        let columns = ramp_columns();
        for (name, _) in &columns {
            let _ = write!(out, "{name:>12}");
        }
        out.push('\n');
        for step in &run.steps {
            for (_, read) in &columns {
                let _ = write!(out, "{:>12}", cell(read(step)));
            }
            out.push('\n');
        }
        if let Some(best) = run.steps.iter().filter_map(viewers_per_core).reduce(f64::max) {
            let _ = writeln!(out, "viewers per core, extrapolated from the best step: {best:.0}");
        }
        if let Some((per_core, fixed)) = viewers_per_core_from_slope(&run.steps) {
            let _ = writeln!(
                out,
                "viewers per core, from the curve's slope: {per_core:.0} (beside {fixed:.1} % of a core at no viewer)"
            );
        }
        if let Some(reason) = &run.stopped_early {
            let _ = writeln!(out, "stopped {reason}");
        }
        if let Some(last) = run.steps.last() {
            for error in last.publisher_errors.iter().chain(&last.player_errors) {
                let _ = writeln!(out, "{}: {error}", run.target);
            }
        }
        for step in &run.steps {
            for error in step.light.iter().flat_map(|l| &l.setup_errors) {
                let _ = writeln!(out, "{} setup: {error}", run.target);
            }
        }
        out.push('\n');
    }
    out
}

fn cell(value: Option<f64>) -> String {
    match value {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e9 => format!("{v:.0}"),
        Some(v) if v.abs() < 1.0 => format!("{v:.3}"),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

/// The console summary: one column per result, and `second/first` ratios
/// when there are two.
pub fn table(results: &[BenchResult]) -> String {
    let mut out = String::new();
    if let Some(first) = results.first() {
        let _ = writeln!(
            out,
            "{} publisher(s) x {} player(s) each over {:?}, {} s, {}x{} at {} fps",
            first.publishers,
            first.players_per_stream,
            first.via,
            first.seconds,
            first.picture.0,
            first.picture.1,
            first.picture.2
        );
    }
    let _ = write!(out, "{:<28}", "");
    for result in results {
        let _ = write!(out, "{:>16}", result.target);
    }
    if results.len() == 2 {
        let _ = write!(out, "{:>10}", "ratio");
    }
    out.push('\n');
    for (name, read) in rows() {
        let _ = write!(out, "{name:<28}");
        let values: Vec<Option<f64>> = results.iter().map(read).collect();
        for value in &values {
            let _ = write!(out, "{:>16}", cell(*value));
        }
        if let [Some(a), Some(b)] = values[..] {
            let ratio = if a == 0.0 {
                "-".to_string()
            } else {
                format!("{:.2}x", b / a)
            };
            let _ = write!(out, "{ratio:>10}");
        }
        out.push('\n');
    }
    for result in results {
        for error in result.publisher_errors.iter().chain(&result.player_errors) {
            let _ = writeln!(out, "{}: {error}", result.target);
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The latency histogram as an SVG bar chart.
fn histogram_svg(result: &BenchResult) -> String {
    let (w, h, pad) = (560.0, 200.0, 30.0);
    let buckets = &result.latency_histogram;
    let top = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let bar = (w - 2.0 * pad) / buckets.len().max(1) as f64;
    let mut svg = format!(r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#);
    for (index, (_, count)) in buckets.iter().enumerate() {
        let height = (h - 2.0 * pad) * *count as f64 / top;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="#3b6ea5"/>"##,
            pad + index as f64 * bar,
            h - pad - height,
            (bar - 1.0).max(1.0)
        );
    }
    let last = buckets.last().map_or(0, |b| b.0 + 10);
    let _ = write!(
        svg,
        r#"<line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"/><text x="{pad}" y="{t}" font-size="11">0 ms</text><text x="{x2}" y="{t}" font-size="11" text-anchor="end">{last} ms</text><text x="{pad}" y="14" font-size="11">{top} frames</text></svg>"#,
        y = h - pad,
        x2 = w - pad,
        t = h - 10.0,
    );
    svg
}

/// CPU % and RSS over time as two SVG polylines.
fn process_svg(result: &BenchResult) -> String {
    let Some(process) = &result.process else {
        return "<p>CPU and memory not measured (no server pid).</p>".into();
    };
    let (w, h, pad) = (560.0, 200.0, 30.0);
    let duration = result.seconds.max(1.0);
    let cpu_top = process.samples.iter().map(|s| s.1).fold(100.0f64, f64::max);
    let rss_top = process.samples.iter().map(|s| s.2).fold(1.0f64, f64::max);
    let line = |value: fn(&(f64, f64, f64)) -> f64, top: f64| -> String {
        process
            .samples
            .iter()
            .map(|s| {
                let x = pad + (w - 2.0 * pad) * s.0.clamp(0.0, duration) / duration;
                let y = h - pad - (h - 2.0 * pad) * value(s) / top;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r##"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><polyline fill="none" stroke="#c0392b" points="{cpu}"/><polyline fill="none" stroke="#27ae60" points="{rss}"/><line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"/><text x="{pad}" y="14" font-size="11" fill="#c0392b">CPU, top {cpu_top:.0} %</text><text x="{x2}" y="14" font-size="11" fill="#27ae60" text-anchor="end">RSS, top {rss_top:.0} MiB</text><text x="{pad}" y="{t}" font-size="11">0 s</text><text x="{x2}" y="{t}" font-size="11" text-anchor="end">{duration:.0} s</text></svg>"##,
        cpu = line(|s| s.1, cpu_top),
        rss = line(|s| s.2, rss_top),
        y = h - pad,
        x2 = w - pad,
        t = h - 10.0,
    )
}

/// Colours of the targets in a plot, in order.
const COLOURS: [&str; 4] = ["#c0392b", "#2c6fbb", "#27ae60", "#8e44ad"];

/// One value of every step of every run against viewers, a polyline per run.
fn curve_svg(runs: &[BenchRun], what: &str, value: Read) -> String {
    let (w, h, pad) = (560.0, 220.0, 34.0);
    let points: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|run| {
            run.steps
                .iter()
                .filter_map(|s| Some(((s.players_per_stream * s.publishers) as f64, value(s)?)))
                .collect()
        })
        .collect();
    let x_top = points.iter().flatten().map(|p| p.0).fold(1.0f64, f64::max);
    let y_top = points.iter().flatten().map(|p| p.1).fold(1e-9f64, f64::max) * 1.1;
    let mut svg = format!(r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#);
    for (index, (run, line)) in runs.iter().zip(&points).enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let coords: Vec<String> = line
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    pad + (w - 2.0 * pad) * x / x_top,
                    h - pad - (h - 2.0 * pad) * y / y_top
                )
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><text x="{}" y="{}" font-size="11" fill="{colour}" text-anchor="end">{}</text>"#,
            coords.join(" "),
            w - pad,
            14.0 + 13.0 * index as f64,
            escape(&run.target)
        );
        for point in &coords {
            let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
        }
    }
    let _ = write!(
        svg,
        r#"<line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{y}" stroke="black"/><text x="{pad}" y="14" font-size="11">{what}, top {top:.1}</text><text x="{pad}" y="{t}" font-size="11">0</text><text x="{x2}" y="{t}" font-size="11" text-anchor="end">{x_top:.0} viewers</text></svg>"#,
        y = h - pad,
        x2 = w - pad,
        t = h - 12.0,
        top = y_top / 1.1,
    );
    svg
}

/// The HTML page of whole runs: [`html`] when every run is one step,
/// otherwise the ramp tables and curves of CPU, memory, latency and
/// losses against viewers, every target on the same axes.
pub fn runs_html(runs: &[BenchRun]) -> String {
    if runs.iter().all(|r| r.steps.len() == 1) {
        let steps: Vec<BenchResult> = runs.iter().map(|r| r.steps[0].clone()).collect();
        return html(&steps);
    }
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>conformance bench ramp</title><style>body{font-family:sans-serif;margin:2em}.plots{display:flex;gap:2em;flex-wrap:wrap}</style></head><body><h1>conformance bench: ramp</h1>",
    );
    let _ = write!(page, "<pre>{}</pre><div class=\"plots\">", escape(&runs_table(runs)));
    let curves: [(&str, Read); 5] = [
        ("server CPU, % of a core", |r| r.process.as_ref().map(|p| p.cpu_percent)),
        ("server RSS, MiB", |r| r.process.as_ref().map(|p| p.rss_max_mib)),
        ("probe latency p99, ms", |r| r.latency_ms.as_ref().map(|s| s.p99)),
        ("probe latency p50, ms", |r| r.latency_ms.as_ref().map(|s| s.p50)),
        ("light players' packets lost", |r| {
            r.light.as_ref().map(|l| l.counted.lost as f64)
        }),
    ];
    for (what, value) in curves {
        let _ = write!(
            page,
            "<section><h3>{}</h3>{}</section>",
            escape(what),
            curve_svg(runs, what, value)
        );
    }
    page.push_str("</div></body></html>\n");
    page
}

/// One HTML page: the table, then each target's plots side by side.
pub fn html(results: &[BenchResult]) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>conformance bench</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}th:first-child,td:first-child{text-align:left}.plots{display:flex;gap:2em;flex-wrap:wrap}</style></head><body><h1>conformance bench</h1>",
    );
    let _ = write!(page, "<pre>{}</pre>", escape(&table(results)));
    page.push_str("<div class=\"plots\">");
    for result in results {
        let _ = write!(
            page,
            "<section><h2>{}</h2><h3>Publish-to-display latency</h3>{}<h3>Server CPU and memory</h3>{}</section>",
            escape(&result.target),
            histogram_svg(result),
            process_svg(result)
        );
    }
    page.push_str("</div></body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::super::{PlayVia, ProcessUse};
    use super::*;

    fn result(target: &str, p50: f64) -> BenchResult {
        BenchResult {
            target: target.into(),
            publishers: 1,
            players_per_stream: 2,
            probes_per_stream: 2,
            via: PlayVia::Whep,
            seconds: 10.0,
            picture: (320, 240, 25),
            latency_ms: Summary::of(&[p50, p50 + 10.0]),
            latency_histogram: vec![(0, 1), (10, 3)],
            first_picture_ms: None,
            first_sound_ms: None,
            frames_expected: 10,
            frames_decoded: 9,
            frames_lost: 1,
            decode_errors: 0,
            longest_audio_gap_ms: 25.0,
            player_errors: vec!["p0-1: refused".into()],
            publisher_errors: vec![],
            process: Some(ProcessUse {
                pid: 1,
                cpu_seconds: 2.0,
                cpu_percent: 20.0,
                rss_max_mib: 50.0,
                samples: vec![(0.5, 10.0, 40.0), (1.0, 30.0, 50.0)],
            }),
            light: None,
            rss_per_viewer_kib: None,
            generator: None,
        }
    }

    #[test]
    fn two_targets_get_ratios_and_an_html_page_with_plots() {
        let results = [result("a", 40.0), result("b", 80.0)];
        let text = table(&results);
        let p50 = text.lines().find(|l| l.starts_with("latency p50")).unwrap();
        assert!(
            p50.contains("40") && p50.contains("80") && p50.ends_with("2.00x"),
            "{p50}"
        );
        assert!(text.contains("a: p0-1: refused"));
        let page = html(&results);
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("<polyline") && !page.contains("http://") && !page.contains("<script"));
    }

    #[test]
    fn the_slope_is_fitted_through_the_steps_that_lost_no_frame() {
        let step = |viewers: usize, cpu: f64, lost: u64| BenchResult {
            players_per_stream: viewers,
            frames_lost: lost,
            process: result("a", 40.0).process.map(|p| ProcessUse { cpu_percent: cpu, ..p }),
            ..result("a", 40.0)
        };
        // 5 % fixed and 0.05 % a viewer, give or take; the lossy step is left out.
        let steps = [
            step(100, 10.5, 0),
            step(200, 14.5, 0),
            step(300, 20.0, 0),
            step(400, 90.0, 2),
        ];
        let (per_core, fixed) = viewers_per_core_from_slope(&steps).unwrap();
        assert!((per_core - 2105.3).abs() < 0.1, "{per_core}");
        assert!((fixed - 5.5).abs() < 0.01, "{fixed}");
        assert_eq!(viewers_per_core_from_slope(&steps[..1]), None, "one point is no line");
        assert_eq!(
            viewers_per_core_from_slope(&[step(100, 20.0, 0), step(200, 10.0, 0)]),
            None
        );
    }

    #[test]
    fn a_ramp_gets_a_row_per_step_and_curves_against_viewers() {
        let step = |target: &str, viewers: usize, cpu: f64| BenchResult {
            players_per_stream: viewers,
            frames_lost: 0,
            process: result(target, 40.0)
                .process
                .map(|p| ProcessUse { cpu_percent: cpu, ..p }),
            ..result(target, 40.0)
        };
        let runs = [
            BenchRun {
                started_unix: 0.0,
                target: "a".into(),
                steps: vec![step("a", 100, 10.0), step("a", 200, 25.0)],
                stopped_early: None,
            },
            BenchRun {
                started_unix: 0.0,
                target: "b".into(),
                steps: vec![step("b", 100, 20.0)],
                stopped_early: Some("after 100 viewers per stream: the probes lost 1 frames".into()),
            },
        ];
        let text = runs_table(&runs);
        assert!(text.contains("stopped after 100 viewers"), "{text}");
        // 200 viewers at a quarter of a core: 800 per core; 100 at 10 %: 1000.
        assert!(
            text.contains("viewers per core, extrapolated from the best step: 1000"),
            "{text}"
        );
        // The line through (100, 10) and (200, 25): 0.15 % a viewer, -5 % at none.
        assert!(
            text.contains("viewers per core, from the curve's slope: 667 (beside -5.0 % of a core at no viewer)"),
            "{text}"
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("200")).collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert!(rows[0].contains("25"), "{}", rows[0]);
        let page = runs_html(&runs);
        assert_eq!(page.matches("<svg").count(), 5);
        // Two runs on each plot; run a has two points, b one.
        assert_eq!(page.matches("<polyline").count(), 10);
        assert_eq!(page.matches("<circle").count(), 12);
    }
}
