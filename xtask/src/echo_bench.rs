//! The echo benchmark (`cargo xtask bench --echo`): every server implementation, 1 and 100
//! connections, 64 B and 1 KiB messages, each a [`measure`] run; writes the echo section of
//! `BENCHMARKS.md`, the TLS echo table ([`tls_echo`](crate::tls_echo)) included.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::cmd::target_dir;
use crate::echo::{measure, perf_available, python_with_uvloop, Row, Server, ECHO_HEADING};

/// Goals for evloop with a Protocol.
const GOAL_USER_US: f64 = 0.30;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Runs the echo benchmark.
pub fn run(root: &Path, args: &[String]) -> ExitCode {
    let smoke = args.iter().any(|a| a == "--smoke");
    let secs: f64 = arg(args, "--secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 0.3 } else { 5.0 });
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "-p", "evloop-bench"])
        .status();
    if !build.map(|s| s.success()).unwrap_or(false) {
        eprintln!("could not build evloop-bench");
        return ExitCode::FAILURE;
    }
    let bin = target_dir(root).join("release/evloop-bench");
    if args.iter().any(|a| a == "--tls") {
        return crate::tls_echo::run_alone(root, &bin, secs, smoke);
    }
    let listed = Command::new(&bin).arg("echo-servers").output();
    let names: Vec<String> = listed
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut servers: Vec<Server> = names
        .into_iter()
        .map(|n| Server {
            cmd: vec![
                bin.display().to_string(),
                "echo-server".into(),
                "--impl".into(),
                n.clone(),
                "--cpu".into(),
                "0".into(),
            ],
            name: n,
        })
        .collect();
    if !smoke {
        if let Some(py) = python_with_uvloop(root) {
            let script = root
                .join("benches/python/echo_server.py")
                .display()
                .to_string();
            for (name, flag) in [
                ("asyncio (Protocol)", None),
                ("uvloop (Protocol)", Some("--uvloop")),
            ] {
                let mut cmd = vec![
                    py.display().to_string(),
                    script.clone(),
                    "--cpu".into(),
                    "0".into(),
                ];
                cmd.extend(flag.map(str::to_string));
                servers.push(Server {
                    name: name.into(),
                    cmd,
                });
            }
        } else {
            println!("python3 with uvloop not available: asyncio and uvloop rows skipped");
        }
    }
    let perf = perf_available();
    let combos: &[(usize, usize)] = if smoke {
        &[(1, 64), (10, 1024)]
    } else {
        &[(1, 64), (1, 1024), (100, 64), (100, 1024)]
    };
    println!(
        "==> echo benchmark ({secs} s per run, perf {})",
        if perf { "on" } else { "unavailable" }
    );
    let mut rows = Vec::new();
    for &(conns, size) in combos {
        for s in &servers {
            match measure(&bin, s, conns, size, secs, perf, &[]) {
                Some(r) => {
                    println!(
                        "{:<30} conns={:<4} size={:<5} {:>10.0} req/s  user {:.3} µs/rt  total {:.3} µs/rt  syscalls {}",
                        r.server,
                        r.conns,
                        r.size,
                        r.rps,
                        r.user_us,
                        r.total_us,
                        r.syscalls.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into())
                    );
                    rows.push(r);
                }
                None => {
                    eprintln!("echo run failed: {} conns={conns} size={size}", s.name);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if smoke {
        println!(
            "smoke run: {} echo runs; BENCHMARKS.md left as it is",
            rows.len()
        );
        return ExitCode::SUCCESS;
    }
    let mut t = format!(
        "{ECHO_HEADING}\n\nTCP echo server pinned to CPU 0, load generator (closed loop: each connection \
         waits for its echo before sending again) pinned to CPU 1, {secs} s per run. CPU figures are the \
         server's, per round trip, from `/proc/<pid>/stat`; system calls from `perf stat -e \
         raw_syscalls:sys_enter -p <pid>`. Goal for evloop with a Protocol: user CPU ≤ {GOAL_USER_US:.2} µs \
         per round trip, system calls ≤ 3.0 per round trip at 1 connection and ≤ 2.1 at 100.\n\n\
         | server | conns | size | req/s | user µs/rt | total µs/rt | syscalls/rt |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in &rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {} |",
            r.server,
            r.conns,
            r.size,
            r.rps,
            r.user_us,
            r.total_us,
            r.syscalls
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "—".into())
        );
    }
    t.push_str(&loops_ratio(&rows));
    match crate::tls_echo::measure_all(root, &bin, secs, smoke, perf) {
        Some(tls_rows) => t.push_str(&crate::tls_echo::table(&tls_rows, secs)),
        None => return ExitCode::FAILURE,
    }
    let path = root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    if let Err(e) = std::fs::write(&path, splice_echo(&existing, &t)) {
        eprintln!("could not write BENCHMARKS.md: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}

/// `doc` with its echo section (from [`ECHO_HEADING`] to the next top-level heading or the
/// Python package's tables) replaced by `section`, or with `section` appended; what follows
/// the echo section stays.
fn splice_echo(doc: &str, section: &str) -> String {
    let (head, tail) = match doc.find(ECHO_HEADING) {
        Some(i) => {
            let rest = &doc[i + ECHO_HEADING.len()..];
            let end = ["\n<!-- python-micro:start -->", "\n## "]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .map_or(doc.len(), |j| i + ECHO_HEADING.len() + j);
            (&doc[..i], &doc[end..])
        }
        None => (doc, ""),
    };
    let mut out = head.trim_end_matches('\n').to_string() + "\n" + section;
    if !tail.is_empty() {
        out = out.trim_end_matches('\n').to_string() + "\n" + tail;
    }
    out
}

/// The one-loop-per-core paragraph: evloop's throughput with two loops over one, for each
/// connection count and size measured with both.
fn loops_ratio(rows: &[Row]) -> String {
    let find = |name: &str, conns: usize, size: usize| {
        rows.iter()
            .find(|r| r.server == name && r.conns == conns && r.size == size)
            .map(|r| r.rps)
    };
    let mut lines = Vec::new();
    for r in rows.iter().filter(|r| r.server == "evloop (protocol)") {
        if let Some(two) = find("evloop (protocol, 2 loops)", r.conns, r.size) {
            lines.push(format!(
                "| {} | {} | {:.0} | {:.0} | {:.2} |",
                r.conns,
                r.size,
                r.rps,
                two,
                two / r.rps
            ));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\n### One loop per core\n\n`evloop (protocol, 2 loops)` is `spawn_loops(2, ..)` with a \
         `reuse_port` listener per loop, each loop pinned to its own CPU. This machine has two \
         cores, so the load generator shares CPU 1 with the second loop: the ratio shows what a \
         second loop gains when the client itself needs a core. With one connection only one \
         loop works, and the kernel's `reuse_port` hash picks which: when it is the loop on the \
         client's CPU, each round trip skips the cross-CPU wake-up and runs faster than any \
         two-CPU setup; when it is the other, the result equals one loop's. The 100-connection \
         rows are the ones that measure scaling, and on two cores shared with the client they \
         show a loss.\n\n\
         | conns | size | 1 loop req/s | 2 loops req/s | ratio |\n|---:|---:|---:|---:|---:|\n{}\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::splice_echo;

    #[test]
    fn splice_echo_keeps_what_follows_the_echo_section() {
        let doc = "# B\n\n## Micro\n\nm\n\n## Echo\n\nold\n\n### TLS echo\n\nt\n\n\
                   <!-- python-micro:start -->\n## Python\n\np\n";
        let out = splice_echo(doc, "\n## Echo\n\nnew\n");
        assert_eq!(
            out,
            "# B\n\n## Micro\n\nm\n\n## Echo\n\nnew\n\n<!-- python-micro:start -->\n## Python\n\np\n"
        );
        let appended = splice_echo("# B\n\n## Micro\n\nm\n", "\n## Echo\n\nnew\n");
        assert_eq!(appended, "# B\n\n## Micro\n\nm\n\n## Echo\n\nnew\n");
    }
}
