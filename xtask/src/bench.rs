//! `cargo xtask bench`: runs the side-by-side benchmarks and writes `BENCHMARKS.md` and the
//! chart `benchmarks.svg` (see [`crate::svg`]).
//!
//! Three measures: wall-clock micro-benchmarks (`--micro`), the echo benchmark (`--echo`), and
//! instruction counts under callgrind (`--instructions`, see [`crate::instructions`]); with
//! none of these flags, all three run. `--instructions --annotate <bench>` prints the functions
//! behind one instruction count instead.
//!
//! `--smoke` runs every benchmark with a small n once (what CI does) and writes neither; it
//! still draws the chart, into the target directory, so that the chart writer is exercised.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::echo::ECHO_HEADING;

/// The goal of each micro-benchmark, in ns/op.
const GOALS: &[(&str, f64)] = &[
    ("call_soon chain", 25.0),
    ("call_soon queued", 20.0),
    ("call_later half cancelled", 150.0),
    ("tasks created and awaited", 120.0),
    ("call_soon_threadsafe", 60.0),
];

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Micro-benchmark results: benchmark -> implementation -> ns/op.
type MicroResults = BTreeMap<String, BTreeMap<String, f64>>;

/// Runs the benchmarks: the micro-benchmarks, the echo benchmark, the instruction counts
/// (`--micro` / `--echo` / `--instructions` select one); then draws the chart.
pub fn run(root: &Path, args: &[String]) -> ExitCode {
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (only_micro, only_echo, only_instr) =
        (flag("--micro"), flag("--echo"), flag("--instructions"));
    let smoke = flag("--smoke");
    if only_instr && arg(args, "--annotate").is_some() {
        return crate::instructions::annotate(root, args);
    }
    let all = !(only_micro || only_echo || only_instr);
    let mut measured = None;
    if all || only_micro {
        match micro(root, args) {
            Ok(m) => measured = Some(m),
            Err(code) => return code,
        }
    }
    if all || only_echo {
        let code = crate::echo_bench::run(root, args);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    let mut instr = None;
    if all || only_instr {
        match crate::instructions::run(root, args, smoke) {
            Ok(m) => instr = m,
            Err(code) => return code,
        }
    }
    draw(root, smoke, measured, instr)
}

/// Draws the chart: micro-benchmark and instruction-count groups from this run's results (else
/// from their tables in `BENCHMARKS.md`), echo groups from the echo table of `BENCHMARKS.md`.
/// A smoke run writes it into the target directory and checks it; a full run writes
/// `benchmarks.svg` at the root.
fn draw(
    root: &Path,
    smoke: bool,
    measured: Option<(Vec<String>, MicroResults)>,
    instr: Option<crate::instructions::Measured>,
) -> ExitCode {
    let doc = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
    let mut groups = match &measured {
        Some((order, results)) => micro_groups(order, results),
        None => parse_micro(&doc),
    };
    groups.extend(parse_echo(&doc));
    groups.extend(match &instr {
        Some(m) => crate::instructions::groups(m),
        None => crate::instructions::parse_groups(&doc),
    });
    crate::svg::sort_bars(&mut groups);
    let svg = crate::svg::chart(
        "evloop beside its peers",
        "Written by cargo xtask bench. Lower is better; each panel is scaled to its own largest \
         value, and each peer's bar gives its ratio to evloop. Details in BENCHMARKS.md.",
        &groups,
    );
    if let Err(e) = crate::svg::check(&svg, &groups) {
        eprintln!("the benchmark chart is malformed: {e}");
        return ExitCode::FAILURE;
    }
    let path = if smoke {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("could not create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        dir.join("benchmarks-smoke.svg")
    } else {
        root.join("benchmarks.svg")
    };
    if let Err(e) = std::fs::write(&path, svg) {
        eprintln!("could not write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {} ({} benchmarks)", path.display(), groups.len());
    ExitCode::SUCCESS
}

/// One chart group per micro-benchmark, in the order they ran.
fn micro_groups(order: &[String], results: &MicroResults) -> Vec<crate::svg::Group> {
    order
        .iter()
        .filter_map(|bench| {
            let r = results.get(bench)?;
            Some(crate::svg::Group {
                title: bench.clone(),
                unit: "ns/op".into(),
                bars: r.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            })
        })
        .collect()
}

/// The cells of the markdown table rows of `section` (header and separator rows skipped).
fn table_rows(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && l.ends_with('|') && !l.starts_with("|---"))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Where the micro-benchmark section of `doc` ends: at the instructions or the echo section.
fn micro_end(doc: &str) -> Option<usize> {
    [crate::instructions::HEADING, ECHO_HEADING]
        .iter()
        .filter_map(|h| doc.find(h))
        .min()
}

/// The micro-benchmark table of `BENCHMARKS.md` as chart groups.
pub(crate) fn parse_micro(doc: &str) -> Vec<crate::svg::Group> {
    let Some(start) = doc.find("## Micro-benchmarks") else {
        return Vec::new();
    };
    let end = micro_end(&doc[start..]).map_or(doc.len(), |i| start + i);
    let section = &doc[start..end];
    let Some(header) = section.lines().find(|l| l.starts_with("| benchmark")) else {
        return Vec::new();
    };
    let names: Vec<String> = header
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect();
    table_rows(section)
        .into_iter()
        .filter_map(|row| {
            let title = row.first()?.clone();
            let bars = ["evloop", "tokio", "smol"]
                .iter()
                .filter_map(|imp| {
                    let i = names.iter().position(|n| n == imp)?;
                    Some((imp.to_string(), row.get(i)?.parse().ok()?))
                })
                .collect();
            Some(crate::svg::Group {
                title,
                unit: "ns/op".into(),
                bars,
            })
        })
        .collect()
}

/// The echo table of `BENCHMARKS.md` as chart groups: one per (connections, message size),
/// the server's total CPU per round trip.
fn parse_echo(doc: &str) -> Vec<crate::svg::Group> {
    let Some(section) = section(doc, ECHO_HEADING) else {
        return Vec::new();
    };
    let mut groups: Vec<crate::svg::Group> = Vec::new();
    for row in table_rows(&section) {
        // | server | conns | size | req/s | user µs/rt | total µs/rt | syscalls/rt |
        let (Some(server), Some(conns), Some(size), Some(total)) =
            (row.first(), row.get(1), row.get(2), row.get(5))
        else {
            continue;
        };
        let Ok(total) = total.parse::<f64>() else {
            continue;
        };
        let title = format!(
            "echo, {conns} connection{}, {size} B messages",
            if conns == "1" { "" } else { "s" }
        );
        let bar = (server.clone(), total);
        match groups.iter_mut().find(|g| g.title == title) {
            Some(g) => g.bars.push(bar),
            None => groups.push(crate::svg::Group {
                title,
                unit: "server CPU µs per round trip".into(),
                bars: vec![bar],
            }),
        }
    }
    groups
}

/// Runs the micro-benchmarks; returns the benchmarks in the order they ran and the results.
fn micro(root: &Path, args: &[String]) -> Result<(Vec<String>, MicroResults), ExitCode> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let (n, runs) = if smoke {
        ("10000", "1")
    } else {
        ("1000000", "5")
    };
    let n = arg(args, "--n").unwrap_or_else(|| n.to_string());
    let runs = arg(args, "--runs").unwrap_or_else(|| runs.to_string());
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "evloop-bench",
        "--",
        "micro",
        "--n",
        &n,
        "--runs",
        &runs,
    ]);
    if let Some(only) = arg(args, "--only") {
        cmd.args(["--only", &only]);
    }
    println!("==> micro-benchmarks (n = {n}, median of {runs})");
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("could not run the benchmarks: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return Err(ExitCode::FAILURE);
    }
    // bench -> impl -> ns/op
    let mut results: MicroResults = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        if parts.len() == 4 && parts[0] == "RESULT" {
            let ns: f64 = parts[3].parse().unwrap_or(f64::NAN);
            if !order.iter().any(|b| b == parts[1]) {
                order.push(parts[1].to_string());
            }
            results
                .entry(parts[1].to_string())
                .or_default()
                .insert(parts[2].to_string(), ns);
        }
    }
    let table = micro_table(&order, &results);
    println!("{table}");
    if smoke {
        println!(
            "smoke run: {} benchmarks ran; BENCHMARKS.md left as it is",
            order.len()
        );
        return Ok((order, results));
    }
    let doc = format!(
        "# Benchmarks\n\nWritten by `cargo xtask bench`; numbers are medians of {runs} runs of n = {n} \
         operations each, all implementations in one run on the same machine.\n\n## Machine\n\n{}\n\n\
         ## Micro-benchmarks (ns/op, lower is better)\n\nThe ratio is evloop's time over the best peer's \
         (below 1.00: evloop is faster).\n\n{table}",
        machine()
    );
    let path = root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    // Keep the instructions and echo sections, written by their own steps.
    let rest = micro_end(&existing).map_or("", |i| &existing[i..]);
    if let Err(e) = std::fs::write(&path, format!("{doc}{rest}")) {
        eprintln!("could not write BENCHMARKS.md: {e}");
        return Err(ExitCode::FAILURE);
    }
    println!("wrote {}", path.display());
    Ok((order, results))
}

fn micro_table(order: &[String], results: &MicroResults) -> String {
    let mut t = String::from(
        "| benchmark | evloop | tokio | smol | ratio to best peer | goal (evloop) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for bench in order {
        let r = &results[bench];
        let get = |k: &str| r.get(k).copied();
        let fmt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into());
        let best_peer = ["tokio", "smol"]
            .iter()
            .filter_map(|k| get(k))
            .fold(f64::INFINITY, f64::min);
        let ratio = match get("evloop") {
            Some(e) if best_peer.is_finite() => format!("{:.2}", e / best_peer),
            _ => "—".into(),
        };
        let goal = GOALS
            .iter()
            .find(|(g, _)| g == bench)
            .map(|(_, v)| {
                let met = get("evloop").map(|e| e <= *v).unwrap_or(false);
                format!("≤ {v:.0} {}", if met { "(met)" } else { "(not met)" })
            })
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "| {bench} | {} | {} | {} | {ratio} | {goal} |",
            fmt(get("evloop")),
            fmt(get("tokio")),
            fmt(get("smol"))
        );
    }
    t
}

/// A description of this machine: CPU, cores, kernel, compiler.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("- CPU: {cpu}, {cores} cores available\n- Linux {kernel}\n- {rustc}, release profile")
}

/// The text from `heading` to the end of `doc`, if present.
pub fn section(doc: &str, heading: &str) -> Option<String> {
    doc.find(heading).map(|i| doc[i..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\n## Micro-benchmarks (ns/op, lower is better)\n\n\
| benchmark | evloop | tokio | smol | ratio to best peer | goal (evloop) |\n\
|---|---:|---:|---:|---:|---:|\n\
| call_soon chain | 67.3 | 182.3 | 174.6 | 0.39 | ≤ 25 (not met) |\n\
| call_soon queued | 20.0 | — | 256.7 | 0.08 | ≤ 20 (met) |\n\
\n## Echo\n\ntext\n\n\
| server | conns | size | req/s | user µs/rt | total µs/rt | syscalls/rt |\n\
|---|---:|---:|---:|---:|---:|---:|\n\
| floor (hand-written epoll) | 1 | 64 | 30000 | 0.500 | 4.000 | 3.00 |\n\
| tokio | 1 | 64 | 28000 | 0.700 | 5.000 | — |\n\
| tokio | 100 | 1024 | 90000 | 0.400 | 2.000 | — |\n";

    #[test]
    fn micro_table_parses_back_into_groups() {
        let g = parse_micro(DOC);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].title, "call_soon chain");
        assert_eq!(
            g[0].bars,
            [
                ("evloop".to_string(), 67.3),
                ("tokio".to_string(), 182.3),
                ("smol".to_string(), 174.6)
            ]
        );
        // A missing value ("—") is left out.
        assert_eq!(g[1].bars.len(), 2);
    }

    #[test]
    fn echo_table_parses_into_one_group_per_configuration() {
        let g = parse_echo(DOC);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].title, "echo, 1 connection, 64 B messages");
        assert_eq!(
            g[0].bars,
            [
                ("floor (hand-written epoll)".to_string(), 4.0),
                ("tokio".to_string(), 5.0)
            ]
        );
        assert_eq!(g[1].title, "echo, 100 connections, 1024 B messages");
    }

    #[test]
    fn measured_results_make_the_same_groups_as_the_table() {
        let mut results = MicroResults::new();
        for (imp, v) in [("evloop", 67.3), ("tokio", 182.3), ("smol", 174.6)] {
            results
                .entry("call_soon chain".to_string())
                .or_default()
                .insert(imp.to_string(), v);
        }
        let mut a = micro_groups(&["call_soon chain".to_string()], &results);
        let mut b = parse_micro(DOC);
        b.truncate(1);
        crate::svg::sort_bars(&mut a);
        crate::svg::sort_bars(&mut b);
        assert_eq!(a, b);
        let table = micro_table(&["call_soon chain".to_string()], &results);
        let mut c = parse_micro(&format!("## Micro-benchmarks\n\n{table}"));
        crate::svg::sort_bars(&mut c);
        assert_eq!(a, c);
    }
}
