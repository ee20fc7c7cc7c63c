//! One run of the echo benchmark: a TCP echo server pinned to one core, the load generator
//! pinned to the other ([`measure`]); the plain and the TLS echo benchmarks
//! ([`echo_bench`](crate::echo_bench), [`tls_echo`](crate::tls_echo)) are made of these.
//!
//! For each run it reports requests per second, the server's user CPU and total CPU per round
//! trip (from `/proc/<pid>/stat`), and its system calls per round trip
//! (`perf stat -e raw_syscalls:sys_enter -p <pid>`, where perf is available).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cmd::target_dir;

/// The heading of the echo section of `BENCHMARKS.md`.
pub const ECHO_HEADING: &str = "\n## Echo";

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
