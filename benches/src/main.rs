//! Side-by-side micro-benchmarks: evloop, tokio (current-thread + LocalSet) and smol
//! (LocalExecutor + async-io), the same work for each.
//!
//! * `evloop-bench micro [--n N] [--runs R] [--only NAME] [--impl evloop|tokio|smol]
//!   [--no-warmup]` prints one line per (benchmark, implementation):
//!   `RESULT <bench> <impl> <median ns/op>` (`--impl` runs one implementation alone, for
//!   profiling it; `--no-warmup` skips the warm-up run, so that with `--runs 1` the process does
//!   exactly n operations, as instruction counting needs);
//! * `evloop-bench echo-server --impl NAME [--cpu N]` serves TCP echo on 127.0.0.1 (printing
//!   `LISTENING <port>`) until killed;
//! * `evloop-bench echo-client --port P --conns C --size S (--secs T | --roundtrips R)
//!   [--cpu N]` drives it for T seconds, or until each connection has made R round trips, and
//!   prints `ROUNDTRIPS <n>` (the total over all connections).
//!
//! `cargo xtask bench` runs them and writes `BENCHMARKS.md`.

use std::time::Duration;

use crate::util::pin;

mod echo_client;
mod echo_servers;
mod micro_evloop;
mod micro_smol;
mod micro_tokio;
mod tls;
mod util;

/// A benchmark body: runs `n` operations and returns the elapsed time.
type Body = fn(u64) -> Duration;

/// The benchmarks, each with its implementations.
fn benches() -> Vec<(&'static str, Vec<(&'static str, Body)>)> {
    vec![
        (
            "call_soon chain",
            vec![
                ("evloop", micro_evloop::chain as Body),
                ("tokio", micro_tokio::chain),
                ("smol", micro_smol::chain),
            ],
        ),
        (
            "call_soon queued",
            vec![
                ("evloop", micro_evloop::queued as Body),
                ("tokio", micro_tokio::queued),
                ("smol", micro_smol::queued),
            ],
        ),
        (
            "call_later half cancelled",
            vec![
                ("evloop", micro_evloop::timers as Body),
                ("tokio", micro_tokio::timers),
                ("smol", micro_smol::timers),
            ],
        ),
        (
            "tasks created and awaited",
            vec![
                ("evloop", micro_evloop::tasks as Body),
                ("tokio", micro_tokio::tasks),
                ("smol", micro_smol::tasks),
            ],
        ),
        (
            "call_soon_threadsafe",
            vec![
                ("evloop", micro_evloop::threadsafe as Body),
                ("tokio", micro_tokio::threadsafe),
                ("smol", micro_smol::threadsafe),
            ],
        ),
    ]
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A named echo server that serves a bound listener until the process ends.
pub type EchoServerImpl = (&'static str, fn(std::net::TcpListener));

/// The echo server implementations.
pub fn echo_server_impls() -> Vec<EchoServerImpl> {
    vec![
        (
            "floor (hand-written epoll)",
            echo_servers::floor as fn(std::net::TcpListener),
        ),
        ("evloop (protocol)", echo_servers::evloop_protocol),
        ("evloop (streams)", echo_servers::evloop_streams),
        (
            "evloop (protocol, 2 loops)",
            echo_servers::evloop_protocol_two_loops,
        ),
        ("tokio", echo_servers::tokio),
        ("smol", echo_servers::smol),
    ]
}

/// The TLS echo server implementations (`echo-client --tls` drives them).
pub fn tls_echo_server_impls() -> Vec<EchoServerImpl> {
    vec![
        (
            "evloop (TLS, protocol)",
            tls::evloop_tls as fn(std::net::TcpListener),
        ),
        ("tokio + tokio-rustls", tls::tokio_rustls),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cpu: Option<usize> = arg(&args, "--cpu").and_then(|v| v.parse().ok());
    match args.first().map(String::as_str) {
        Some("echo-server") => {
            pin(cpu);
            let name = arg(&args, "--impl").unwrap_or_default();
            let Some((_, serve)) = echo_server_impls()
                .into_iter()
                .chain(tls_echo_server_impls())
                .find(|(n, _)| *n == name)
            else {
                eprintln!("unknown echo server {name:?}");
                std::process::exit(2);
            };
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            println!("LISTENING {}", l.local_addr().expect("addr").port());
            use std::io::Write;
            std::io::stdout().flush().expect("stdout");
            serve(l);
            return;
        }
        Some("echo-servers") => {
            for (name, _) in echo_server_impls() {
                println!("{name}");
            }
            return;
        }
        Some("tls-echo-servers") => {
            for (name, _) in tls_echo_server_impls() {
                println!("{name}");
            }
            return;
        }
        Some("echo-client") => {
            pin(cpu);
            let port: u16 = arg(&args, "--port")
                .and_then(|v| v.parse().ok())
                .expect("--port");
            let conns = arg(&args, "--conns")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let size = arg(&args, "--size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(64);
            let stop = match arg(&args, "--roundtrips").and_then(|v| v.parse().ok()) {
                Some(r) => echo_client::Stop::RoundTrips(r),
                None => echo_client::Stop::Secs(
                    arg(&args, "--secs")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(5.0),
                ),
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let rt = if args.iter().any(|a| a == "--handshakes") {
                tls::run_handshakes(
                    addr,
                    arg(&args, "--secs")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(5.0),
                )
            } else if args.iter().any(|a| a == "--tls") {
                tls::run_client(addr, conns, size, stop)
            } else {
                echo_client::run(addr, conns, size, stop)
            };
            println!("ROUNDTRIPS {rt}");
            return;
        }
        _ => {}
    }
    let n: u64 = arg(&args, "--n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = arg(&args, "--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = arg(&args, "--only");
    let imp_only = arg(&args, "--impl");
    let warmup = !args.iter().any(|a| a == "--no-warmup");
    for (name, impls) in benches() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for (imp, body) in impls {
            if imp_only.as_deref().is_some_and(|i| i != imp) {
                continue;
            }
            // One warm-up run, then the measured ones.
            if warmup {
                body(n.min(10_000));
            }
            let mut samples: Vec<f64> = (0..runs)
                .map(|_| {
                    let t = body(n);
                    t.as_nanos() as f64 / n as f64
                })
                .collect();
            samples.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
            let median = samples[samples.len() / 2];
            println!("RESULT\t{name}\t{imp}\t{median:.1}");
        }
    }
}
