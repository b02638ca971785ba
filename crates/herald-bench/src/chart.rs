//! A hand-written SVG bar chart of latency percentiles: no plotting dependency, and a
//! file that diffs as text.

use std::{fmt::Write as _, time::Duration};

use crate::report::LatencyStats;

const WIDTH: f64 = 980.0;
const PANEL_HEIGHT: f64 = 250.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const PLOT_HEIGHT: f64 = 150.0;
/// Colours of p50, p99, p99.9.
const COLOURS: [&str; 3] = ["#4e79a7", "#f28e2b", "#e15759"];
const LABELS: [&str; 3] = ["p50", "p99", "p99.9"];
/// Bottom of the logarithmic axis, in ms.
pub const MIN_MS: f64 = 0.1;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Top of the axis: the smallest power of ten at or above every value (at least 10 ms).
pub fn axis_max(values: impl IntoIterator<Item = f64>) -> f64 {
    let max = values.into_iter().fold(10.0_f64, f64::max);
    10f64.powi(max.log10().ceil() as i32)
}

/// Height of `value` ms on a log axis from [`MIN_MS`] to `top`, as a fraction (0–1).
pub fn log_fraction(value: f64, top: f64) -> f64 {
    let v = value.max(MIN_MS);
    ((v / MIN_MS).log10() / (top / MIN_MS).log10()).clamp(0.0, 1.0)
}

/// One panel of the chart: its title, and each target's percentiles (`None`: no result).
pub type Panel = (String, Vec<(String, Option<LatencyStats>)>);

/// One panel per `(title, rows)`.
pub fn latency_panels(panels: &[Panel]) -> String {
    let top = axis_max(
        panels
            .iter()
            .flat_map(|(_, rows)| rows.iter().filter_map(|(_, s)| s.map(|s| ms(s.p999)))),
    );
    let height = TOP + panels.len() as f64 * PANEL_HEIGHT + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">End-to-end latency \
         (ms, log scale): scheduled send to receive</text>\n"
    );
    for (k, label) in LABELS.iter().enumerate() {
        let x = WIDTH - 230.0 + k as f64 * 70.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"10\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"20\">{label}</text>",
            COLOURS[k],
            x + 16.0
        );
    }
    for (p, (title, rows)) in panels.iter().enumerate() {
        let y0 = TOP + p as f64 * PANEL_HEIGHT;
        let base = y0 + 20.0 + PLOT_HEIGHT;
        let _ = writeln!(
            svg,
            "<text x=\"{LEFT}\" y=\"{}\" font-weight=\"bold\">{}</text>",
            y0 + 12.0,
            escape(title)
        );
        let mut tick = MIN_MS;
        while tick <= top * 1.0001 {
            let y = base - log_fraction(tick, top) * PLOT_HEIGHT;
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                WIDTH - 10.0,
                LEFT - 6.0,
                y + 4.0,
                if tick < 1.0 {
                    format!("{tick}")
                } else {
                    format!("{tick:.0}")
                }
            );
            tick *= 10.0;
        }
        let group = (WIDTH - LEFT - 10.0) / rows.len().max(1) as f64;
        let bar = (group * 0.8 / 3.0).min(28.0);
        for (i, (name, stats)) in rows.iter().enumerate() {
            let gx = LEFT + i as f64 * group + (group - 3.0 * bar) / 2.0;
            match stats {
                Some(s) => {
                    for (k, value) in [s.p50, s.p99, s.p999].into_iter().enumerate() {
                        let v = ms(value);
                        let h = log_fraction(v, top) * PLOT_HEIGHT;
                        let x = gx + k as f64 * bar;
                        let _ = writeln!(
                            svg,
                            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" \
                             fill=\"{}\"><title>{} {}: {v:.2} ms</title></rect>",
                            base - h,
                            bar - 2.0,
                            COLOURS[k],
                            escape(name),
                            LABELS[k]
                        );
                    }
                    if !s.sustained {
                        let _ = writeln!(
                            svg,
                            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#c00\">\
                             not sustained</text>",
                            gx + 1.5 * bar,
                            y0 + 30.0
                        );
                    }
                }
                None => {
                    let _ = writeln!(
                        svg,
                        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\">n/a</text>",
                        gx + 1.5 * bar,
                        base - 5.0
                    );
                }
            }
            // Names like "nats-jetstream (sync always)" on two lines.
            let (first, second) = match name.find(" (") {
                Some(at) => (&name[..at], name[at + 1..].to_string()),
                None => (name.as_str(), String::new()),
            };
            for (line, text) in [first, second.as_str()].into_iter().enumerate() {
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                    gx + 1.5 * bar,
                    base + 14.0 + line as f64 * 12.0,
                    escape(text)
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(p50: u64, p99: u64, p999: u64, sustained: bool) -> LatencyStats {
        LatencyStats {
            rate: 1000.0,
            scheduled: 10,
            sent: 10,
            received: 10,
            achieved: 1000.0,
            sustained,
            p50: Duration::from_micros(p50),
            p99: Duration::from_micros(p99),
            p999: Duration::from_micros(p999),
            max: Duration::from_micros(p999),
        }
    }

    #[test]
    fn axis_is_logarithmic_from_a_tenth_of_a_millisecond() {
        assert_eq!(axis_max([0.5, 3.0]), 10.0);
        assert_eq!(axis_max([12.0]), 100.0);
        assert_eq!(axis_max([100.0]), 100.0);
        assert_eq!(log_fraction(0.1, 100.0), 0.0);
        assert_eq!(log_fraction(0.01, 100.0), 0.0);
        assert!((log_fraction(1.0, 100.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(log_fraction(100.0, 100.0), 1.0);
    }

    #[test]
    fn chart_has_a_bar_per_percentile_and_marks_gaps() {
        let panels = vec![(
            "latency 10000/s".to_string(),
            vec![
                (
                    "herald-kafka (group commit)".to_string(),
                    Some(stats(500, 2_000, 8_000, true)),
                ),
                (
                    "a <b> & c".to_string(),
                    Some(stats(900, 30_000, 90_000, false)),
                ),
                ("gone".to_string(), None),
            ],
        )];
        let svg = latency_panels(&panels);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            6 + 3,
            "6 bars + 3 legend boxes"
        );
        assert!(svg.contains("herald-kafka (group commit) p99: 2.00 ms"));
        assert!(svg.contains("a &lt;b&gt; &amp; c p99.9: 90.00 ms"));
        assert!(svg.contains("not sustained"));
        assert!(svg.contains(">n/a<"));
        // Axis up to 100 ms: ticks 0.1, 1, 10, 100.
        assert!(svg.contains(">100</text>") && svg.contains(">0.1</text>"));
    }
}
