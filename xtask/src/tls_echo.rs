//! The TLS rows of the echo benchmark: TLS echo servers (evloop with `ssl=`, tokio +
//! tokio-rustls, on the same rustls config) against the load generator with `--tls`, 1 KiB
//! messages, 1 and 100 connections, handshakes excluded. `cargo xtask bench --echo` measures
//! them after the plain rows; `cargo xtask bench --echo --tls` measures only them and replaces
//! their table in `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::echo::{measure, perf_available, python_with_uvloop, Row, Server};

/// The heading of the TLS table (inside the echo section).
pub const TLS_HEADING: &str = "### TLS echo";

/// The TLS servers the bench binary lists.
fn servers(bin: &Path) -> Vec<Server> {
    let names: Vec<String> = Command::new(bin)
        .arg("tls-echo-servers")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    names
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
        .collect()
}

/// asyncio and uvloop serving TLS with Python's `ssl`, where a Python with uvloop exists.
fn python_servers(root: &Path) -> Vec<Server> {
    let Some(py) = python_with_uvloop(root) else {
        println!("python3 with uvloop not available: asyncio and uvloop TLS rows skipped");
        return Vec::new();
    };
    let script = root
        .join("benches/python/echo_server.py")
        .display()
        .to_string();
    [("asyncio + ssl", None), ("uvloop + ssl", Some("--uvloop"))]
        .into_iter()
        .map(|(name, flag)| {
            let mut cmd = vec![
                py.display().to_string(),
                script.clone(),
                "--tls".into(),
                "--cpu".into(),
                "0".into(),
            ];
            cmd.extend(flag.map(str::to_string));
            Server {
                name: name.into(),
                cmd,
            }
        })
        .collect()
}

/// Measures every TLS server at 1 and 100 connections (1 KiB), and its handshakes per second;
/// `None` if a run failed.
pub fn measure_all(
    root: &Path,
    bin: &Path,
    secs: f64,
    smoke: bool,
    perf: bool,
) -> Option<(Vec<Row>, Vec<Row>)> {
    let combos: &[(usize, usize)] = if smoke {
        &[(1, 1024)]
    } else {
        &[(1, 1024), (100, 1024)]
    };
    let mut servers = servers(bin);
    if servers.is_empty() {
        eprintln!("the bench binary lists no TLS echo server");
        return None;
    }
    if !smoke {
        servers.extend(python_servers(root));
    }
    let mut rows = Vec::new();
    for &(conns, size) in combos {
        for s in &servers {
            let Some(r) = measure(bin, s, conns, size, secs, perf, &["--tls"]) else {
                eprintln!("TLS echo run failed: {} conns={conns} size={size}", s.name);
                return None;
            };
            println!(
                "{:<30} conns={:<4} size={:<5} {:>10.0} req/s  user {:.3} µs/rt  total {:.3} µs/rt",
                r.server, r.conns, r.size, r.rps, r.user_us, r.total_us
            );
            rows.push(r);
        }
    }
    let mut handshakes = Vec::new();
    for s in &servers {
        let Some(r) = measure(bin, s, 1, 0, secs, perf, &["--tls", "--handshakes"]) else {
            eprintln!("TLS handshake run failed: {}", s.name);
            return None;
        };
        println!(
            "{:<30} handshakes {:>8.0}/s  user {:.1} µs each  total {:.1} µs each",
            r.server, r.rps, r.user_us, r.total_us
        );
        handshakes.push(r);
    }
    Some((rows, handshakes))
}

/// The TLS tables (echo, handshakes), with their heading.
pub fn table((rows, handshakes): &(Vec<Row>, Vec<Row>), secs: f64) -> String {
    let mut t = format!(
        "\n{TLS_HEADING}\n\nThe same setup over TLS 1.3 (rustls on aws-lc-rs on both sides of the comparison, \
         one self-signed certificate, the same server config for evloop and tokio-rustls; asyncio and \
         uvloop with Python's `ssl` (OpenSSL), where Python can install uvloop), 1 KiB \
         messages, {secs} s per run; the handshakes happen before the measured phase. The load \
         generator speaks TLS through evloop's sans-I/O engine. Goal: evloop within 5% of \
         tokio + tokio-rustls in req/s, and user CPU per round trip at or below it.\n\n\
         | server | conns | size | req/s | user µs/rt | total µs/rt | syscalls/rt |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
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
    t.push_str(
        "\nFull handshakes (TLS 1.3, a fresh connection each: connect, handshake, `close_notify`, \
         close), one after the other:\n\n| server | handshakes/s | user µs/handshake | total µs/handshake |\n\
         |---|---:|---:|---:|\n",
    );
    for r in handshakes {
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.1} | {:.1} |",
            r.server, r.rps, r.user_us, r.total_us
        );
    }
    t
}

/// `--echo --tls`: only the TLS rows, spliced into `BENCHMARKS.md` in place of the old ones.
pub fn run_alone(root: &Path, bin: &Path, secs: f64, smoke: bool) -> ExitCode {
    let Some(rows) = measure_all(root, bin, secs, smoke, perf_available()) else {
        return ExitCode::FAILURE;
    };
    if smoke {
        println!(
            "smoke run: {} TLS echo runs; BENCHMARKS.md left as it is",
            rows.0.len()
        );
        return ExitCode::SUCCESS;
    }
    let path = root.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = splice(&doc, &table(&rows, secs));
    if let Err(e) = std::fs::write(&path, new) {
        eprintln!("could not write BENCHMARKS.md: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}

/// `doc` with its TLS table replaced by `table` (or `table` added at the end).
fn splice(doc: &str, table: &str) -> String {
    let Some(start) = doc.find(TLS_HEADING) else {
        return format!("{}\n{table}", doc.trim_end_matches('\n'));
    };
    let rest = &doc[start + TLS_HEADING.len()..];
    let end = ["\n## ", "\n### "]
        .iter()
        .filter_map(|h| rest.find(h))
        .min()
        .map_or(doc.len(), |i| start + TLS_HEADING.len() + i);
    let before = doc[..start].trim_end_matches('\n');
    format!("{before}\n{table}{}", &doc[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_the_tls_table_and_keeps_the_rest() {
        // testkit: no watchdog (string handling only)
        let doc = "# B\n\n## Echo\n\n| a |\n\n### TLS echo\n\nold\n\n### Next\n\nkept\n";
        let out = splice(doc, "\n### TLS echo\n\nnew\n");
        assert_eq!(
            out,
            "# B\n\n## Echo\n\n| a |\n\n### TLS echo\n\nnew\n\n### Next\n\nkept\n"
        );
        let out = splice("# B\n\n## Echo\n", "\n### TLS echo\n\nnew\n");
        assert_eq!(out, "# B\n\n## Echo\n\n### TLS echo\n\nnew\n");
    }
}
