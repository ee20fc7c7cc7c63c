//! `cargo xtask bench`: runs the side-by-side benchmarks and writes `BENCHMARKS.md`.
//!
//! `--smoke` runs every benchmark with a small n once (what CI does) and writes nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

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

/// Runs the benchmarks: the micro-benchmarks, then the echo benchmark (`--micro` / `--echo`
/// select one).
pub fn run(root: &Path, args: &[String]) -> ExitCode {
    let only_micro = args.iter().any(|a| a == "--micro");
    let only_echo = args.iter().any(|a| a == "--echo");
    if !only_echo {
        let code = micro(root, args);
        if code != ExitCode::SUCCESS || only_micro {
            return code;
        }
    }
    crate::echo::run(root, args)
}

/// Runs the micro-benchmarks.
fn micro(root: &Path, args: &[String]) -> ExitCode {
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
            return ExitCode::FAILURE;
        }
    };
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return ExitCode::FAILURE;
    }
    // bench -> impl -> ns/op
    let mut results: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
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
        return ExitCode::SUCCESS;
    }
    let doc = format!(
        "# Benchmarks\n\nWritten by `cargo xtask bench`; numbers are medians of {runs} runs of n = {n} \
         operations each, all implementations in one run on the same machine.\n\n## Machine\n\n{}\n\n\
         ## Micro-benchmarks (ns/op, lower is better)\n\nThe ratio is evloop's time over the best peer's \
         (below 1.00: evloop is faster).\n\n{table}\n",
        machine()
    );
    let path = root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    // Keep the echo section written by the echo benchmark.
    let rest = section(&existing, ECHO_HEADING).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, format!("{doc}{rest}")) {
        eprintln!("could not write BENCHMARKS.md: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}

fn micro_table(order: &[String], results: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
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

/// The heading of the echo section of `BENCHMARKS.md`.
pub const ECHO_HEADING: &str = "\n## Echo";

/// The text from `heading` to the end of `doc`, if present.
pub fn section(doc: &str, heading: &str) -> Option<String> {
    doc.find(heading).map(|i| doc[i..].to_string())
}
