//! `cargo xtask bench --instructions`: the speed measure that does not move with the machine's
//! load. Every measured process runs under `valgrind --tool=callgrind`, which counts the
//! instructions it executes in user space (the program, its libraries, the C library's
//! allocator; not the kernel's work inside system calls). The same binary on the same input
//! gives the same count whatever else the machine is doing, so a change of 1% in the work done
//! shows as 1%, where wall-clock times on a shared machine move by 2× between runs.
//!
//! - Micro-benchmarks: `evloop-bench micro --only <bench> --impl <impl> --n N --runs 1
//!   --no-warmup` (one process doing exactly N operations) at N = 100,000 and N = 200,000;
//!   instructions per operation are (Ir(200,000) − Ir(100,000)) / 100,000, which cancels
//!   start-up and shutdown. Each pair runs three times; the median and the spread are reported,
//!   and for evloop also the count outside the C library's allocator, which stays put where
//!   the allocator's own work varies with timing (in call_soon_threadsafe, how many
//!   callbacks are in flight at once; valgrind runs with `--fair-sched=yes` so that the
//!   producer and the loop take turns).
//! - Echo servers: each Rust server of `evloop-bench echo-servers` under callgrind, the load
//!   generator outside it making a fixed number of round trips (`echo-client --roundtrips`):
//!   1 connection × 10,000 and 100 connections × 2,000, of 64 B messages. Instructions per
//!   round trip are the difference from the same server serving 1/100 of those round trips
//!   over the same connections, which cancels start-up, accepting and closing.
//! - `--annotate <bench>`: the functions behind one figure, by self cost per operation, from
//!   `callgrind_annotate` on the two profiles (the same difference, function by function, so
//!   the rows add up to the figure in the table).
//! - `--smoke` (CI): tiny workloads, evloop and the floor only, nothing written; skipped with a
//!   note when valgrind is missing. Without `--smoke` a missing valgrind fails the step, with
//!   the command that installs it. `--only NAME` measures the matching micro-benchmarks only
//!   and writes nothing (`--impl I` then measures one implementation only); `--only echo`
//!   measures the echo servers only (`--impl I`: the servers whose name contains I); `--reps
//!   R` sets the runs of each pair.

mod annotate;
mod callgrind;
mod report;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::svg::Group;

use annotate::{allocator_ir, self_costs, short_name};
use callgrind::{
    arg, callgrind, slug, total_ir, PerOp, ECHO_SIZE, ECHO_SMOKE, ECHO_WORKLOADS, GOALS, IMPLS,
    INSTALL, MICRO_UNIT, RUN_LIMIT, SKIPPED_SERVERS, SMOKE_SERVERS,
};
pub use callgrind::{Measured, HEADING};
pub use report::groups;
use report::{echo_table, micro_table, push_echo, section};

/// Why valgrind cannot be used, with the command that fixes it.
fn valgrind_missing() -> Option<String> {
    let ok = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| {
        format!(
            "valgrind is not installed; instruction counts need its callgrind tool. Install it \
             with `{INSTALL}` (as root), then run this again."
        )
    })
}

/// Builds the release benchmark binary; returns its path.
fn build(root: &Path) -> Result<PathBuf, String> {
    let (ok, text) = crate::cmd::run_step(
        &mut crate::cmd::cargo(&["build", "--quiet", "--release", "-p", "evloop-bench"]),
        RUN_LIMIT,
    );
    if !ok {
        return Err(format!("could not build evloop-bench:\n{text}"));
    }
    Ok(crate::cmd::target_dir(root).join("release/evloop-bench"))
}

/// Runs one micro-benchmark of one implementation once, n operations, under callgrind;
/// returns the instruction total and the profile's path.
fn micro_ir(
    bin: &Path,
    dir: &Path,
    bench: &str,
    imp: &str,
    n: u64,
    rep: usize,
) -> Result<(u64, PathBuf), String> {
    let profile = dir.join(format!("{}.{imp}.{n}.{rep}.out", slug(bench)));
    let _ = std::fs::remove_file(&profile);
    let n = n.to_string();
    let bench_args = [
        "micro",
        "--only",
        bench,
        "--impl",
        imp,
        "--n",
        &n,
        "--runs",
        "1",
        "--no-warmup",
    ];
    let (ok, text) = crate::cmd::run_step(callgrind(&profile).arg(bin).args(bench_args), RUN_LIMIT);
    let ran = text.lines().filter(|l| l.starts_with("RESULT\t")).count();
    if !ok || ran != 1 {
        return Err(format!(
            "`valgrind --tool=callgrind {} {}` failed:\n{text}",
            bin.display(),
            bench_args.join(" ")
        ));
    }
    Ok((total_ir(&profile)?, profile))
}

/// Starts `server` under callgrind, drives it with `conns` connections making `per_conn`
/// round trips each, ends it, and returns its instruction total.
fn echo_ir(
    bin: &Path,
    dir: &Path,
    server: &str,
    conns: usize,
    per_conn: u64,
) -> Result<u64, String> {
    let profile = dir.join(format!("echo.{}.{conns}x{per_conn}.out", slug(server)));
    let log = profile.with_extension("log");
    let _ = std::fs::remove_file(&profile);
    let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = callgrind(&profile)
        .arg(bin)
        .args(["echo-server", "--impl", server, "--cpu", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("could not start valgrind: {e}"))?;
    let port = child.stdout.take().and_then(|out| {
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).ok()?;
        line.trim().strip_prefix("LISTENING ")?.parse::<u16>().ok()
    });
    let driven = match port {
        None => Err("the server did not report its port".to_string()),
        Some(port) => {
            let (ok, text) = crate::cmd::run_step(
                Command::new(bin).args([
                    "echo-client",
                    "--port",
                    &port.to_string(),
                    "--conns",
                    &conns.to_string(),
                    "--size",
                    &ECHO_SIZE.to_string(),
                    "--roundtrips",
                    &per_conn.to_string(),
                    "--cpu",
                    "1",
                ]),
                RUN_LIMIT,
            );
            let want = format!("ROUNDTRIPS {}", conns as u64 * per_conn);
            if ok && text.lines().any(|l| l.trim() == want) {
                Ok(())
            } else {
                Err(format!("the load generator failed:\n{text}"))
            }
        }
    };
    // SIGTERM, not SIGKILL: valgrind ends the program as the signal says and then runs
    // callgrind's exit, which writes the profile.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    driven.map_err(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        format!("echo server {server:?} under callgrind: {e}\n{log}")
    })?;
    total_ir(&profile)
}

/// Runs the instruction counts (see the module docs) and, unless this is a smoke run or
/// `--only` chose some benchmarks, writes their section of `BENCHMARKS.md`. A smoke run uses
/// tiny workloads and is skipped, with a note, when valgrind is missing.
pub fn run(root: &Path, args: &[String], smoke: bool) -> Result<Option<Measured>, ExitCode> {
    if let Some(why) = valgrind_missing() {
        if smoke {
            println!("==> instruction counts skipped: {why}");
            return Ok(None);
        }
        eprintln!("{why}");
        return Err(ExitCode::FAILURE);
    }
    let started = Instant::now();
    let bin = build(root).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    let dir = crate::cmd::target_dir(root).join("instructions");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("could not create {}: {e}", dir.display());
        return Err(ExitCode::FAILURE);
    }
    let reps: usize = match arg(args, "--reps").map(|v| v.parse()) {
        None => {
            if smoke {
                1
            } else {
                3
            }
        }
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("--reps takes a number of runs, 1 or more");
            return Err(ExitCode::from(2));
        }
    };
    let n = if smoke {
        (2_000, 4_000)
    } else {
        (100_000, 200_000)
    };
    let only = arg(args, "--only");
    // `--impl NAME` (with `--only`): measure one implementation only.
    let impl_only = arg(args, "--impl").filter(|_| only.is_some());
    let mut m = Measured {
        reps,
        n,
        ..Measured::default()
    };
    println!(
        "==> instruction counts (callgrind; n = {} and {}, {reps} run{} of each)",
        n.0,
        n.1,
        if reps == 1 { "" } else { "s" }
    );
    let fail = |e: String| {
        eprintln!("{e}");
        ExitCode::FAILURE
    };
    for (bench, _) in GOALS {
        if only.as_deref().is_some_and(|o| !bench.contains(o)) {
            continue;
        }
        let mut per_impl = BTreeMap::new();
        for imp in if smoke { &IMPLS[..1] } else { IMPLS } {
            if impl_only.as_deref().is_some_and(|i| i != *imp) {
                continue;
            }
            let t = Instant::now();
            let d = (n.1 - n.0) as f64;
            let (mut v, mut own) = (Vec::new(), Vec::new());
            for rep in 0..reps {
                let (small, p0) = micro_ir(&bin, &dir, bench, imp, n.0, rep).map_err(fail)?;
                let (large, p1) = micro_ir(&bin, &dir, bench, imp, n.1, rep).map_err(fail)?;
                let per_op = (large as f64 - small as f64) / d;
                v.push(per_op);
                if *imp == "evloop" {
                    let alloc0 = allocator_ir(&self_costs(&p0).map_err(fail)?);
                    let alloc1 = allocator_ir(&self_costs(&p1).map_err(fail)?);
                    own.push(per_op - (alloc1 as f64 - alloc0 as f64) / d);
                }
            }
            let p = PerOp::of(v);
            println!(
                "{bench:<28} {imp:<8} {:>9.1} instructions/op  (spread {:.1}, {:.1} s)",
                p.median,
                p.spread,
                t.elapsed().as_secs_f64()
            );
            per_impl.insert(imp.to_string(), p);
            if !own.is_empty() {
                m.evloop_own.insert(bench.to_string(), PerOp::of(own));
            }
        }
        m.micro.push((bench.to_string(), per_impl));
    }
    // `--only echo`: the echo servers only (no micro-benchmark name contains "echo"), and with
    // `--impl NAME` the servers whose name contains NAME.
    let echo_only = only.as_deref() == Some("echo");
    if only.is_none() || echo_only {
        let servers: Vec<String> = Command::new(&bin)
            .arg("echo-servers")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let workloads = if smoke { ECHO_SMOKE } else { ECHO_WORKLOADS };
        for &(conns, per_conn) in workloads {
            let measured = |s: &&String| {
                !SKIPPED_SERVERS.contains(&s.as_str())
                    && (!smoke || SMOKE_SERVERS.contains(&s.as_str()))
                    && impl_only.as_deref().is_none_or(|i| s.contains(i))
            };
            for server in servers.iter().filter(measured) {
                let t = Instant::now();
                let small_rt = (per_conn / 100).max(1);
                let small = echo_ir(&bin, &dir, server, conns, small_rt).map_err(fail)?;
                let large = echo_ir(&bin, &dir, server, conns, per_conn).map_err(fail)?;
                let per_rt =
                    (large as f64 - small as f64) / (conns as u64 * (per_conn - small_rt)) as f64;
                println!(
                    "echo {server:<28} conns={conns:<4} {per_rt:>9.1} instructions/round trip  ({:.1} s)",
                    t.elapsed().as_secs_f64()
                );
                m.echo.push((server.clone(), conns, per_rt));
            }
        }
    }
    println!("{}", micro_table(&m));
    println!("{}", echo_table(&m));
    println!(
        "instruction counts took {:.0} s; profiles in {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    if smoke || only.is_some() {
        println!("BENCHMARKS.md left as it is (a smoke run, or only some benchmarks)");
        // A partial run draws no chart of its own: the chart keeps the written tables.
        return Ok(if smoke { Some(m) } else { None });
    }
    let path = root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    if let Err(e) = std::fs::write(&path, splice(&existing, &section(&m))) {
        eprintln!("could not write {}: {e}", path.display());
        return Err(ExitCode::FAILURE);
    }
    println!("wrote {}", path.display());
    Ok(Some(m))
}

/// The chart groups from the instructions section of `BENCHMARKS.md`, if it has one.
pub fn parse_groups(doc: &str) -> Vec<Group> {
    let Some(start) = doc.find(HEADING) else {
        return Vec::new();
    };
    let end = doc[start + 1..]
        .find("\n## ")
        .map_or(doc.len(), |i| start + 1 + i);
    let mut groups = Vec::new();
    let mut header: Vec<String> = Vec::new();
    for line in doc[start..end].lines().map(str::trim) {
        if !(line.starts_with('|') && line.ends_with('|')) {
            header.clear();
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if header.is_empty() {
            header = cells;
            continue;
        }
        let col = |name: &str| header.iter().position(|h| h == name);
        let num = |i: Option<usize>| cells.get(i?)?.parse::<f64>().ok();
        if header[0] == "benchmark" {
            let bars = IMPLS
                .iter()
                .filter_map(|imp| Some((imp.to_string(), num(col(imp))?)))
                .collect();
            groups.push(Group {
                title: cells[0].clone(),
                unit: MICRO_UNIT.into(),
                bars,
            });
        } else if header[0] == "server" {
            if let (Some(conns), Some(v)) = (num(col("conns")), num(col("instructions/rt"))) {
                push_echo(&mut groups, &cells[0], conns as usize, v);
            }
        }
    }
    groups
}

/// `cargo xtask bench --instructions --annotate <bench> [--impl I] [--top K]`: profiles one
/// micro-benchmark of one implementation (evloop unless `--impl` says otherwise) at both n and
/// prints the functions with the largest self cost per operation.
pub fn annotate(root: &Path, args: &[String]) -> ExitCode {
    let which = arg(args, "--annotate").unwrap_or_default();
    let names: Vec<&str> = GOALS.iter().map(|(b, _)| *b).collect();
    let matching: Vec<&str> = match names.iter().find(|b| **b == which) {
        Some(b) => vec![*b],
        None => names
            .iter()
            .copied()
            .filter(|b| b.contains(which.as_str()))
            .collect(),
    };
    let [bench] = matching[..] else {
        eprintln!(
            "--annotate takes one micro-benchmark (a unique part of its name is enough): {}",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let imp = arg(args, "--impl").unwrap_or_else(|| "evloop".into());
    if !IMPLS.contains(&imp.as_str()) {
        eprintln!("--impl takes one of {}", IMPLS.join(", "));
        return ExitCode::from(2);
    }
    let top: usize = arg(args, "--top")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    if let Some(why) = valgrind_missing() {
        eprintln!("{why}");
        return ExitCode::FAILURE;
    }
    let result = (|| -> Result<(), String> {
        let bin = build(root)?;
        let dir = crate::cmd::target_dir(root).join("instructions");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (n0, n1) = (100_000u64, 200_000u64);
        let (ir0, p0) = micro_ir(&bin, &dir, bench, &imp, n0, 0)?;
        let (ir1, p1) = micro_ir(&bin, &dir, bench, &imp, n1, 0)?;
        let (c0, c1) = (self_costs(&p0)?, self_costs(&p1)?);
        let d = (n1 - n0) as f64;
        let total = (ir1 as f64 - ir0 as f64) / d;
        let mut rows: Vec<(f64, &String)> = c1
            .iter()
            .map(|(k, v)| ((*v as f64 - c0.get(k).copied().unwrap_or(0) as f64) / d, k))
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!(
            "{bench}, {imp}: {total:.1} instructions/op = (Ir(n = {n1}) − Ir(n = {n0})) / {n0}; \
             self cost per operation by function, the same difference:\n"
        );
        println!("{:>10} {:>7}  function", "instr/op", "share");
        // The functions whose cost grows with n; the rest are start-up.
        let listed: Vec<&(f64, &String)> = rows
            .iter()
            .filter(|(v, _)| v.abs() >= 0.05)
            .take(top)
            .collect();
        let mut shown = 0.0;
        for (v, k) in &listed {
            shown += v;
            println!(
                "{v:>10.1} {:>6.1}%  {}",
                100.0 * v / total,
                short_name(k, &bin)
            );
        }
        println!(
            "{:>10.1} {:>6.1}%  (the other {} functions)",
            total - shown,
            100.0 * (total - shown) / total,
            rows.len() - listed.len()
        );
        println!(
            "{:>10.1} {:>6.1}%  (of the total, in the C library's allocator: malloc, free and \
             their helpers)",
            (allocator_ir(&c1) as f64 - allocator_ir(&c0) as f64) / d,
            100.0 * (allocator_ir(&c1) as f64 - allocator_ir(&c0) as f64) / d / total
        );
        println!(
            "\nprofiles: {} and {}\n(`callgrind_annotate --inclusive=yes <profile>` gives costs \
             with callees; the release build inlines, so a function's self cost includes what \
             was inlined into it)",
            p0.display(),
            p1.display()
        );
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `existing` with its instructions section replaced by `text` (which starts with
/// [`HEADING`]), or with `text` inserted before the echo section (or at the end).
fn splice(existing: &str, text: &str) -> String {
    let (head, tail) = match existing.find(HEADING) {
        Some(start) => {
            let end = existing[start + 1..]
                .find("\n## ")
                .map_or(existing.len(), |i| start + 1 + i);
            (&existing[..start], &existing[end..])
        }
        None => match existing.find(crate::echo::ECHO_HEADING) {
            Some(i) => (&existing[..i], &existing[i..]),
            None => (existing, ""),
        },
    };
    format!(
        "{}\n{}\n{}",
        head.trim_end_matches('\n'),
        text.trim_end_matches('\n'),
        tail
    )
}

#[cfg(test)]
mod tests {
    use super::annotate::parse_annotate;
    use super::callgrind::summary_ir;
    use super::*;

    fn measured() -> Measured {
        let mut micro = Vec::new();
        let mut r = BTreeMap::new();
        for (imp, v) in [("evloop", 463.2), ("tokio", 1709.7), ("smol", 1102.8)] {
            r.insert(
                imp.to_string(),
                PerOp {
                    median: v,
                    spread: 0.5,
                },
            );
        }
        micro.push(("call_soon chain".to_string(), r));
        let mut evloop_own = BTreeMap::new();
        evloop_own.insert(
            "call_soon chain".to_string(),
            PerOp {
                median: 300.0,
                spread: 0.0,
            },
        );
        Measured {
            micro,
            evloop_own,
            echo: vec![
                ("floor (hand-written epoll)".into(), 1, 332.0),
                ("evloop (protocol)".into(), 1, 973.0),
                ("evloop (protocol)".into(), 100, 579.5),
            ],
            reps: 3,
            n: (100_000, 200_000),
        }
    }

    #[test]
    fn the_written_section_parses_back_into_the_measured_groups() {
        let m = measured();
        let doc = format!(
            "# Benchmarks\n\n## Micro-benchmarks\n\n| benchmark | evloop |\n|---|---:|\n| x | 1.0 |\n\
             {}\n## Echo\n\n| server | conns | size | req/s | user µs/rt | total µs/rt | syscalls/rt |\n\
             |---|---:|---:|---:|---:|---:|---:|\n| tokio | 1 | 64 | 1 | 1 | 1 | — |\n",
            section(&m)
        );
        assert_eq!(parse_groups(&doc), groups(&m));
        let g = groups(&m);
        assert_eq!(g.len(), 3);
        assert_eq!(g[1].title, "echo, 1 connection, 64 B messages");
        assert_eq!(g[1].bars.len(), 2);
        assert_eq!(g[2].title, "echo, 100 connections, 64 B messages");
        // The goal column and the floor ratio.
        assert!(doc.contains(
            "| call_soon chain | 463.2 | 1709.7 | 1102.8 | 0.42 | ≤ 150 (not met) | 0.5 | 300.0 | 0.0 |"
        ));
        assert!(doc.contains("| evloop (protocol) | 1 | 64 | 973.0 | 2.93 |"));
        // The bench module's own readers stop at this section.
        assert_eq!(crate::bench::parse_micro(&doc).len(), 1);
    }

    #[test]
    fn splice_replaces_the_section_or_puts_it_before_the_echo_section() {
        let new = format!("{HEADING}\n\nnew\n");
        let doc = "# B\n\n## Micro\n\nm\n\n## Echo\n\ne\n";
        let once = splice(doc, &new);
        assert_eq!(
            once,
            "# B\n\n## Micro\n\nm\n\n## Instructions per operation\n\nnew\n\n## Echo\n\ne\n"
        );
        let twice = splice(&once, &format!("{HEADING}\n\nnewer\n"));
        assert_eq!(
            twice,
            "# B\n\n## Micro\n\nm\n\n## Instructions per operation\n\nnewer\n\n## Echo\n\ne\n"
        );
        assert_eq!(
            splice("# B\n", &new),
            "# B\n\n## Instructions per operation\n\nnew\n"
        );
    }

    #[test]
    fn profile_totals_and_annotate_rows_are_read() {
        assert_eq!(
            summary_ir("events: Ir\nsummary: 97607422\n\n\ntotals: 97607422\n"),
            Some(97_607_422)
        );
        assert_eq!(summary_ir("events: Ir\n"), None);
        let text = "\
    --------------------------------------------------------------------------------
    Thresholds:       100
    --------------------------------------------------------------------------------
    97,607,422 (100.0%)  PROGRAM TOTALS
    --------------------------------------------------------------------------------
    Ir                   file:function
    --------------------------------------------------------------------------------
    31,164,088 (31.93%)  ???:loop_core::event_loop::EventLoop::run_forever [/t/release/evloop-bench]
    13,443,320 (13.77%)  ./malloc/./malloc/malloc.c:_int_free [/usr/lib/x86_64-linux-gnu/libc.so.6]
     1,470,000 ( 1.51%)  ???:<loop_core::handle::Cb<F> as loop_core::handle::Callback>::call [/t/release/evloop-bench]
       630,126 ( 0.65%)  ./malloc/./malloc/arena.c:free
    ";
        let c = parse_annotate(text);
        assert_eq!(c.len(), 4);
        let bin = Path::new("/t/release/evloop-bench");
        let names: Vec<String> = c.keys().map(|k| short_name(k, bin)).collect();
        assert!(names.contains(&"loop_core::event_loop::EventLoop::run_forever".to_string()));
        assert!(names.contains(&"_int_free  [malloc.c]".to_string()));
        assert!(names.contains(&"free  [arena.c]".to_string()));
        assert!(names.contains(
            &"<loop_core::handle::Cb<F> as loop_core::handle::Callback>::call".to_string()
        ));
        assert_eq!(
            c["???:loop_core::event_loop::EventLoop::run_forever [/t/release/evloop-bench]"],
            31_164_088
        );
        // The allocator, by its sources or (without them) by name in the C library.
        assert_eq!(allocator_ir(&c), 13_443_320 + 630_126);
        let no_sources = parse_annotate(
            "   100 (1.0%)  ???:_int_free [/usr/lib/libc.so.6]\n\
             \x20  10 (0.1%)  ???:free [/t/release/evloop-bench]\n\
             \x20   1 (0.0%)  ???:memcpy [/usr/lib/libc.so.6]\n",
        );
        assert_eq!(allocator_ir(&no_sources), 100);
    }

    #[test]
    fn per_op_is_the_median_and_the_range() {
        assert_eq!(
            PerOp::of(vec![3.0, 1.0, 2.0]),
            PerOp {
                median: 2.0,
                spread: 2.0
            }
        );
        assert_eq!(
            slug("call_later half cancelled"),
            "call-later-half-cancelled"
        );
        assert_eq!(slug("evloop (protocol)"), "evloop-protocol");
    }
}
