//! A tiny SVG writer: empirical CDFs (latency distributions) and line charts
//! (throughput against concurrency). Output is standalone, well-formed SVG 1.1.

use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 420.0;
const L: f64 = 70.0; // left margin
const R: f64 = 200.0; // right margin (legend)
const T: f64 = 40.0;
const B: f64 = 55.0;
const COLORS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Escape text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn color(i: usize) -> &'static str {
    COLORS.get(i % COLORS.len()).copied().unwrap_or("#000")
}

/// One named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-6 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_tick(v: f64, log: bool) -> String {
    let v = if log { 10f64.powf(v) } else { v };
    if v.abs() >= 100.0 || v == 0.0 || (v.abs() >= 1.0 && (v - v.round()).abs() < 1e-9) {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A line chart. `log_x`: plot log10(x) (x must be > 0).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    markers: bool,
) -> String {
    let tx = |x: f64| if log_x { x.max(1e-6).log10() } else { x };
    let pts: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().map(|(x, y)| (tx(*x), *y))).collect();
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for (x, y) in &pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if pts.is_empty() {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    if (x1 - x0).abs() < 1e-9 {
        x1 = x0 + 1.0;
    }
    let y0 = 0.0;
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.05 };
    let pw = W - L - R;
    let ph = H - T - B;
    let sx = |x: f64| L + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| T + ph - (y - y0) / (y1 - y0) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    // Axes and grid.
    for t in nice_ticks(y0, y1, 6) {
        let y = sy(t);
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            L + pw,
            L - 6.0,
            y + 4.0,
            fmt_tick(t, false)
        );
    }
    let xt = if log_x {
        let mut v: Vec<f64> = Vec::new();
        let mut e = x0.floor();
        while e <= x1.ceil() && v.len() < 40 {
            for m in [1.0f64, 2.0, 5.0] {
                let t = e + m.log10();
                if t >= x0 - 1e-9 && t <= x1 + 1e-9 {
                    v.push(t);
                }
            }
            e += 1.0;
        }
        if v.len() < 2 { nice_ticks(x0, x1, 6) } else { v }
    } else {
        nice_ticks(x0, x1, 8)
    };
    for t in xt {
        let x = sx(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            T + ph,
            T + ph + 16.0,
            fmt_tick(t, log_x)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        L + pw / 2.0,
        H - 12.0,
        esc(x_label),
        T + ph / 2.0,
        T + ph / 2.0,
        esc(y_label)
    );
    for (i, ser) in series.iter().enumerate() {
        let c = color(i);
        let path: Vec<String> =
            ser.points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(tx(*x)), sy(*y))).collect();
        if !path.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{}"/>"#,
                path.join(" ")
            );
        }
        if markers {
            for (x, y) in &ser.points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"/>"#,
                    sx(tx(*x)),
                    sy(*y)
                );
            }
        }
        let ly = T + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="4" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            L + pw + 10.0,
            ly - 4.0,
            L + pw + 26.0,
            ly + 1.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Empirical CDF of each sample set (x = latency, log scale; y = fraction 0..1).
pub fn cdf_chart(title: &str, x_label: &str, sets: &[(String, Vec<f64>)]) -> String {
    let series: Vec<Series> = sets
        .iter()
        .map(|(name, v)| {
            let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len().max(1) as f64;
            // At most ~400 points per curve.
            let step = (v.len() / 400).max(1);
            let mut points: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i + 1 == v.len())
                .map(|(i, x)| (x.max(1e-4), (i + 1) as f64 / n))
                .collect();
            points.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
            Series { name: name.clone(), points }
        })
        .collect();
    line_chart(title, x_label, "fraction of trials (CDF)", &series, true, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_closes() {
        let s = cdf_chart("a<b", "ms", &[("x&y".into(), vec![1.0, 2.0, 3.0])]);
        assert!(s.contains("a&lt;b") && s.contains("x&amp;y") && s.trim_end().ends_with("</svg>"));
        let l = line_chart("t", "x", "y", &[], false, true);
        assert!(l.contains("<svg"));
    }
}
