//! A small SVG writer for `benchmarks.svg`: one panel per benchmark, one horizontal bar per
//! implementation, evloop first.
//!
//! The benchmarks measure different things on very different scales (tens of nanoseconds per
//! callback, microseconds of CPU per echo round trip), so each panel is scaled to its own
//! largest value: bars compare implementations within a benchmark, never across benchmarks.
//! Every bar carries its value and, for the peers, its ratio to evloop, so the chart reads
//! without a shared axis. Horizontal bars keep long labels ("uvloop (Protocol)",
//! "call_later half cancelled") readable. Colours are fixed per implementation across panels.

use std::fmt::Write as _;

/// One benchmark: the implementations measured and their values.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The benchmark's name, e.g. "call_soon chain".
    pub title: String,
    /// The unit of the values, e.g. "ns/op".
    pub unit: String,
    /// `(implementation, value)`, in the order to draw them; lower is better.
    pub bars: Vec<(String, f64)>,
}

/// Total width of the image.
const WIDTH: f64 = 960.0;
/// Width of the label column, left of the bars.
const LABEL_W: f64 = 230.0;
/// Longest bar; the rest of the width is for the value text.
const BAR_MAX: f64 = 500.0;
/// Height of one bar row.
const ROW_H: f64 = 22.0;
/// Height of a panel's title line.
const HEAD_H: f64 = 30.0;
/// Space below a panel.
const GAP: f64 = 12.0;
/// Height of the chart's title and legend.
const TOP: f64 = 70.0;

/// Colour of an implementation: evloop stands out, the peers keep one colour each.
fn colour(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.starts_with("evloop") {
        "#d9480f"
    } else if n.starts_with("tokio") {
        "#1c7ed6"
    } else if n.starts_with("smol") {
        "#2f9e44"
    } else if n.starts_with("floor") {
        "#868e96"
    } else if n.starts_with("uvloop") {
        "#7048e8"
    } else if n.starts_with("asyncio") {
        "#e8a400"
    } else {
        "#495057"
    }
}

/// Escapes text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A value with a sensible number of digits.
fn num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The evloop value of a group (the first bar named evloop*), if any.
fn evloop_value(g: &Group) -> Option<f64> {
    g.bars
        .iter()
        .find(|(n, v)| n.to_ascii_lowercase().starts_with("evloop") && v.is_finite() && *v > 0.0)
        .map(|(_, v)| *v)
}

/// Renders the chart. Groups with no finite positive value are left out; bars with a value
/// that is not a finite positive number are drawn as "n/a" without a bar.
pub fn chart(title: &str, subtitle: &str, groups: &[Group]) -> String {
    let groups: Vec<&Group> = groups
        .iter()
        .filter(|g| g.bars.iter().any(|(_, v)| v.is_finite() && *v > 0.0))
        .collect();
    // The legend: every implementation once, in order of first appearance.
    let mut names: Vec<&str> = Vec::new();
    for g in &groups {
        for (n, _) in &g.bars {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let height: f64 = TOP
        + groups
            .iter()
            .map(|g| HEAD_H + ROW_H * g.bars.len() as f64 + GAP)
            .sum::<f64>()
        + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="26" font-size="18" font-weight="bold" fill="#212529">{}</text>"##,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="16" y="46" font-size="12" fill="#495057">{}</text>"##,
        esc(subtitle)
    );
    // Legend.
    let mut x = 16.0;
    for n in &names {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="55" width="12" height="12" fill="{}"/>"#,
            colour(n)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="65" font-size="12" fill="#212529">{}</text>"##,
            x + 16.0,
            esc(n)
        );
        x += 28.0 + 7.0 * n.chars().count() as f64;
    }
    let mut y = TOP;
    for g in &groups {
        let max = g
            .bars
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            r##"<text x="16" y="{}" font-size="14" font-weight="bold" fill="#212529">{} <tspan font-weight="normal" fill="#868e96">({}, lower is better)</tspan></text>"##,
            y + 20.0,
            esc(&g.title),
            esc(&g.unit)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{LABEL_W}" y1="{}" x2="{LABEL_W}" y2="{}" stroke="#adb5bd"/>"##,
            y + HEAD_H - 2.0,
            y + HEAD_H + ROW_H * g.bars.len() as f64
        );
        let ev = evloop_value(g);
        for (i, (name, v)) in g.bars.iter().enumerate() {
            let row = y + HEAD_H + ROW_H * i as f64;
            let is_ev = name.to_ascii_lowercase().starts_with("evloop");
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" text-anchor="end" fill="#212529"{}>{}</text>"##,
                LABEL_W - 8.0,
                row + 15.0,
                if is_ev { r#" font-weight="bold""# } else { "" },
                esc(name)
            );
            if !(v.is_finite() && *v > 0.0) {
                let _ = writeln!(
                    s,
                    r##"<text x="{}" y="{}" fill="#868e96">n/a</text>"##,
                    LABEL_W + 6.0,
                    row + 15.0
                );
                continue;
            }
            let w = (BAR_MAX * v / max).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect x="{LABEL_W}" y="{}" width="{w:.1}" height="{}" fill="{}"><title>{}: {} {}</title></rect>"#,
                row + 3.0,
                ROW_H - 6.0,
                colour(name),
                esc(name),
                num(*v),
                esc(&g.unit)
            );
            let ratio = match ev {
                Some(e) if !is_ev => format!("  ({:.2}× evloop)", v / e),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" fill="#212529">{} {}<tspan fill="#868e96">{}</tspan></text>"##,
                LABEL_W + w + 6.0,
                row + 15.0,
                num(*v),
                esc(&g.unit),
                esc(&ratio)
            );
        }
        y += HEAD_H + ROW_H * g.bars.len() as f64 + GAP;
    }
    s.push_str("</svg>\n");
    s
}

/// Puts the implementations of each group in reading order: evloop first, then tokio, smol,
/// the floor, asyncio, uvloop, then anything else in its original order.
pub fn sort_bars(groups: &mut [Group]) {
    fn rank(name: &str) -> usize {
        let n = name.to_ascii_lowercase();
        ["evloop", "tokio", "smol", "floor", "asyncio", "uvloop"]
            .iter()
            .position(|p| n.starts_with(p))
            .unwrap_or(6)
    }
    for g in groups {
        // Stable: several evloop variants keep their relative order.
        g.bars.sort_by_key(|(n, _)| rank(n));
    }
}

/// Checks what [`chart`] wrote: one bar per finite value, and balanced markup. Returns a
/// description of the first problem found.
pub fn check(svg: &str, groups: &[Group]) -> Result<(), String> {
    if !svg.starts_with("<svg ") || !svg.trim_end().ends_with("</svg>") {
        return Err("not a complete <svg> document".into());
    }
    let bars: usize = groups
        .iter()
        .map(|g| {
            g.bars
                .iter()
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .count()
        })
        .sum();
    let drawn = svg.matches("<title>").count();
    if drawn != bars {
        return Err(format!("{drawn} bars drawn for {bars} values"));
    }
    for tag in ["text", "rect", "tspan", "title"] {
        let open =
            svg.matches(&format!("<{tag}")).count() - svg.matches(&format!("<{tag}/")).count();
        let closed = svg.matches(&format!("</{tag}>")).count() + count_self_closed(svg, tag);
        if open != closed {
            return Err(format!(
                "unbalanced <{tag}>: {open} opened, {closed} closed"
            ));
        }
    }
    Ok(())
}

/// Elements `<tag .../>` in `svg`.
fn count_self_closed(svg: &str, tag: &str) -> usize {
    let open = format!("<{tag} ");
    let mut n = 0;
    let mut rest = svg;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i..];
        let end = after.find('>').unwrap_or(after.len());
        if after[..end].ends_with('/') {
            n += 1;
        }
        rest = &after[end.min(after.len())..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<Group> {
        vec![
            Group {
                title: "call_soon chain".into(),
                unit: "ns/op".into(),
                bars: vec![
                    ("tokio".into(), 182.3),
                    ("evloop".into(), 67.3),
                    ("smol".into(), 174.6),
                ],
            },
            Group {
                title: "echo <1 conn & 64 B>".into(),
                unit: "µs CPU/rt".into(),
                bars: vec![
                    ("uvloop (Protocol)".into(), 9.0),
                    ("floor (hand-written epoll)".into(), 2.5),
                    ("evloop (Protocol)".into(), f64::NAN),
                ],
            },
        ]
    }

    #[test]
    fn bars_are_sorted_evloop_first() {
        let mut g = groups();
        sort_bars(&mut g);
        let names: Vec<&str> = g[0].bars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["evloop", "tokio", "smol"]);
        let names: Vec<&str> = g[1].bars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "evloop (Protocol)",
                "floor (hand-written epoll)",
                "uvloop (Protocol)"
            ]
        );
    }

    #[test]
    fn chart_draws_one_bar_per_value_escaped_and_scaled_per_group() {
        let mut g = groups();
        sort_bars(&mut g);
        let svg = chart("t & t", "sub", &g);
        check(&svg, &g).unwrap();
        assert!(svg.contains("echo &lt;1 conn &amp; 64 B&gt;"));
        assert!(svg.contains("t &amp; t"));
        assert!(!svg.contains("<1 conn"));
        // The largest bar of each panel is full length.
        assert_eq!(svg.matches(&format!(r#"width="{BAR_MAX:.1}""#)).count(), 2);
        // Peers carry their ratio to evloop; the NaN bar is "n/a".
        assert!(svg.contains("(2.71× evloop)"), "{svg}");
        assert!(svg.contains(">n/a<"));
        // Legend: each implementation once.
        assert_eq!(svg.matches(">tokio</text>").count(), 2); // legend + label
    }

    #[test]
    fn empty_groups_are_left_out() {
        let g = vec![Group {
            title: "nothing".into(),
            unit: "ns/op".into(),
            bars: vec![("evloop".into(), f64::NAN)],
        }];
        let svg = chart("t", "s", &g);
        assert!(!svg.contains("nothing"));
        check(&svg, &[]).unwrap();
    }

    #[test]
    fn check_finds_missing_bars() {
        let g = groups();
        let svg = chart("t", "s", &g[..1]);
        assert!(check(&svg, &g).is_err());
    }
}
