//! The echo benchmark: a TCP echo server pinned to one core, the load generator pinned to the
//! other, for every server implementation, 1 and 100 connections, 64 B and 1 KiB messages.
//!
//! For each run it reports requests per second, the server's user CPU and total CPU per round
//! trip (from `/proc/<pid>/stat`), and its system calls per round trip
//! (`perf stat -e raw_syscalls:sys_enter -p <pid>`, where perf is available).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use crate::bench::ECHO_HEADING;

/// Goals for evloop with a Protocol.
const GOAL_USER_US: f64 = 0.30;

/// One server implementation: how to start it.
pub(crate) struct Server {
    /// Its name in the table.
    pub(crate) name: String,
    /// The command that starts it pinned to CPU 0 and prints `LISTENING <port>`.
    pub(crate) cmd: Vec<String>,
}

/// One measured run.
pub(crate) struct Row {
    /// Server name.
    pub(crate) server: String,
    /// Connections.
    pub(crate) conns: usize,
    /// Message size.
    pub(crate) size: usize,
    /// Round trips per second.
    pub(crate) rps: f64,
    /// Server user CPU µs per round trip.
    pub(crate) user_us: f64,
    /// Server user + system CPU µs per round trip.
    pub(crate) total_us: f64,
    /// System calls per round trip, if perf could count them.
    pub(crate) syscalls: Option<f64>,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` under the root).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// A python3 that can import uvloop: the system one, or a venv the bench makes for itself.
pub(crate) fn python_with_uvloop(root: &Path) -> Option<PathBuf> {
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", "import uvloop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let system = PathBuf::from("python3");
    if ok(&system) {
        return Some(system);
    }
    let venv = target_dir(root).join("bench-venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !made {
            return None;
        }
        let _ = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "uvloop",
            ])
            .status();
    }
    ok(&py).then_some(py)
}

pub(crate) fn perf_available() -> bool {
    Command::new("perf")
        .args(["stat", "-e", "raw_syscalls:sys_enter", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// (utime + stime, utime) of a process, in µs.
fn cpu_us(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let tick = 1_000_000.0 / clock_ticks();
    Some(((utime + stime) * tick, utime * tick))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn start_server(s: &Server) -> Option<(Child, u16)> {
    let mut child = Command::new(&s.cmd[0])
        .args(&s.cmd[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).ok()?;
    let port = line.trim().strip_prefix("LISTENING ")?.parse().ok()?;
    Some((child, port))
}

pub(crate) fn measure(
    bin: &Path,
    s: &Server,
    conns: usize,
    size: usize,
    secs: f64,
    perf: bool,
    client_extra: &[&str],
) -> Option<Row> {
    let (mut server, port) = start_server(s)?;
    let pid = server.id();
    let perf_child = if perf {
        Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                "raw_syscalls:sys_enter",
                "-p",
                &pid.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()
    } else {
        None
    };
    // Let perf attach before the load starts.
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_us(pid)?;
    let out = Command::new(bin)
        .args([
            "echo-client",
            "--port",
            &port.to_string(),
            "--conns",
            &conns.to_string(),
            "--size",
            &size.to_string(),
            "--secs",
            &secs.to_string(),
            "--cpu",
            "1",
        ])
        .args(client_extra)
        .output()
        .ok()?;
    let after = cpu_us(pid)?;
    let syscalls = perf_child.and_then(|p| {
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let o = p.wait_with_output().ok()?;
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))
            .and_then(|l| l.split(',').next())
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let _ = server.kill();
    let _ = server.wait();
    let rt: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("ROUNDTRIPS "))
        .and_then(|v| v.trim().parse().ok())?;
    if rt == 0.0 {
        return None;
    }
    Some(Row {
        server: s.name.clone(),
        conns,
        size,
        rps: rt / secs,
        user_us: (after.1 - before.1) / rt,
        total_us: (after.0 - before.0) / rt,
        syscalls: syscalls.map(|c| c / rt),
    })
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
    let head = match existing.find(ECHO_HEADING) {
        Some(i) => existing[..i].to_string(),
        None => existing.clone(),
    };
    if let Err(e) = std::fs::write(
        &path,
        format!("{}{t}", head.trim_end_matches('\n').to_string() + "\n"),
    ) {
        eprintln!("could not write BENCHMARKS.md: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
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
