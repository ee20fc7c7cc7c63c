//! Reliability under many connections: 10,000 TCP connections open at once on one loop, each
//! echoing 100 messages, every byte checked.
//!
//! Server and clients together need two descriptors per connection, more than the hard
//! `RLIMIT_NOFILE` of many machines allows one process, so they run in two processes: the
//! server (one evloop loop) in the test process, the clients (another evloop loop) in this
//! same test binary run again as a child with [`CLIENT_ENV`] set. Each process raises its soft
//! limit to the hard one; if that is still too low the test scales the connection count down
//! and says so.
//!
//! The clients connect in waves, then send one message on every connection and wait for all of
//! those echoes (so the server has accepted every connection before any finishes: all of them
//! are open on the server at once), then the other 99 messages on every connection
//! concurrently (ten at a time per connection, each window's echo read before the next is
//! sent; sizes from 1 byte to 4 KiB), comparing each echo byte for byte with what was sent,
//! and close every connection only after the last echo.
//!
//! The file holds one test: it counts the process's descriptors.

use std::cell::{Cell, RefCell};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::core::ExceptionContext;
use evloop::prelude::*;

/// Connections wanted.
const WANT: usize = 10_000;
/// Messages per connection.
const MESSAGES: usize = 100;
/// Messages written back to back before their echoes are read.
const WINDOW: usize = 10;
/// Connections opened concurrently by the client, per wave (below the listen backlog, so no
/// SYN is dropped and retried a second later).
const CONNECT_WAVE: usize = 500;
/// The listen backlog and accept batch of the server.
const BACKLOG: u32 = 1024;
/// Descriptors each process keeps for itself besides the connections.
const RESERVE: u64 = 200;
/// Set in the child: `<port>,<connections>` makes the test run the clients.
const CLIENT_ENV: &str = "EVLOOP_RELIABILITY_10K_CLIENT";
/// This test's name, to run it again as the child.
const TEST_NAME: &str = "reliability_10k_connections_net_38_one_loop_echoes_every_byte";
/// Failure guard only: the watchdog unwinds the server loop (and fails the test) if the run
/// takes longer than this.
const GUARD: Duration = Duration::from_secs(900);

use loop_testkit::fd_count;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).expect("raise RLIMIT_NOFILE to the hard limit");
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Number of local ports the kernel hands out to outgoing connections.
fn ephemeral_ports() -> Option<u64> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = range.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    Some(hi.saturating_sub(lo) + 1)
}

/// Message `k` of connection `c`: distinct bytes (a per-message xorshift stream), 1..=200
/// bytes mostly and 2..4 KiB every 25th message.
fn message(c: usize, k: usize) -> Vec<u8> {
    let len = if k % 25 == 7 {
        2048 + (c * 13 + k) % 2048
    } else {
        1 + (c * 31 + k * 97) % 200
    };
    let mut x = ((c as u64) << 32 | k as u64) ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What the server counts.
#[derive(Default)]
struct Stats {
    /// Connections accepted (`connection_made`).
    accepted: Cell<usize>,
    /// Connections open now.
    live: Cell<usize>,
    /// Most connections open at once.
    peak: Cell<usize>,
    /// Connections whose `connection_lost` ran.
    lost: Cell<usize>,
    /// Bytes echoed.
    bytes: Cell<u64>,
    /// Resolved when `lost` reaches the expected count.
    all_lost: RefCell<Option<(usize, LoopFuture<()>)>>,
}

/// The server's protocol: writes back everything it receives, counting.
struct Echo {
    /// Set in `connection_made`.
    transport: Option<Transport>,
    /// Shared counters.
    stats: Rc<Stats>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
        let s = &self.stats;
        s.accepted.set(s.accepted.get() + 1);
        s.live.set(s.live.get() + 1);
        s.peak.set(s.peak.get().max(s.live.get()));
    }

    fn data_received(&mut self, data: &[u8]) {
        let s = &self.stats;
        s.bytes.set(s.bytes.get() + data.len() as u64);
        if let Some(t) = &self.transport {
            t.write(data).expect("echo write");
        }
    }

    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        let s = &self.stats;
        s.live.set(s.live.get() - 1);
        s.lost.set(s.lost.get() + 1);
        if let Some((n, fut)) = &*s.all_lost.borrow() {
            if s.lost.get() == *n && !fut.done() {
                let _ = fut.set_result(());
            }
        }
        self.transport = None;
    }
}

/// What the client child reports.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    /// Connections that completed every message.
    connections: usize,
    /// Echoes received and checked.
    messages: usize,
    /// Bytes sent (and received back, byte for byte).
    bytes: u64,
}

/// Sends messages `rounds` of connection `c`, [`WINDOW`] at a time (pipelined: the window is
/// written, then its echo read), checking every echoed byte against what was sent.
async fn exchange(
    reader: &mut StreamReader,
    writer: &StreamWriter,
    c: usize,
    rounds: std::ops::Range<usize>,
) -> Result<(usize, u64), Error> {
    let (mut messages, mut bytes) = (0, 0);
    let mut k = rounds.start;
    while k < rounds.end {
        let window: Vec<Vec<u8>> = (k..(k + WINDOW).min(rounds.end))
            .map(|k| message(c, k))
            .collect();
        writer.writelines(&window)?;
        writer.drain().await?;
        for (i, msg) in window.iter().enumerate() {
            let back = reader.readexactly(msg.len()).await?;
            if back != *msg {
                let at = back.iter().zip(msg).position(|(a, b)| a != b);
                return Err(Error::invalid_state(format!(
                    "connection {c} message {}: echo differs at byte {at:?} of {}",
                    k + i,
                    msg.len()
                )));
            }
            messages += 1;
            bytes += msg.len() as u64;
        }
        k += window.len();
    }
    Ok((messages, bytes))
}

/// The client side: `n` connections to `port`, all open at once, every echo checked.
async fn run_clients(lp: EventLoop, port: u16, n: usize) -> Result<Totals, Error> {
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + CONNECT_WAVE).min(n);
        let mut wave = Vec::with_capacity(end - start);
        for _ in start..end {
            wave.push(lp.create_task(lp.open_connection(
                "127.0.0.1",
                port,
                ConnectOptions::new(),
            ))?);
        }
        for t in wave {
            conns.push(t.await??);
        }
        start = end;
    }
    let connected = t0.elapsed();
    let mut totals = Totals::default();
    // Message 0 on every connection; all echoes back means the server accepted all of them.
    let mut tasks = Vec::with_capacity(n);
    for (c, (mut r, w)) in conns.into_iter().enumerate() {
        tasks.push(lp.create_task(async move {
            let got = exchange(&mut r, &w, c, 0..1).await?;
            Ok::<_, Error>((r, w, got))
        })?);
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        let (r, w, (m, b)) = t.await??;
        totals.messages += m;
        totals.bytes += b;
        conns.push((r, w));
    }
    let first = t0.elapsed();
    // The other messages, every connection at once.
    let mut tasks = Vec::with_capacity(n);
    for (c, (mut r, w)) in conns.into_iter().enumerate() {
        tasks.push(lp.create_task(async move {
            let got = exchange(&mut r, &w, c, 1..MESSAGES).await?;
            Ok::<_, Error>((w, got))
        })?);
    }
    let mut writers = Vec::with_capacity(n);
    for t in tasks {
        let (w, (m, b)) = t.await??;
        totals.messages += m;
        totals.bytes += b;
        totals.connections += 1;
        writers.push(w);
    }
    let rest = t0.elapsed();
    for w in &writers {
        w.close();
    }
    for w in &writers {
        w.wait_closed().await?;
    }
    println!(
        "client phases: connected {:.1} s, first echoes {:.1} s, all echoes {:.1} s, closed {:.1} s",
        connected.as_secs_f64(),
        first.as_secs_f64(),
        rest.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    Ok(totals)
}

/// The child: runs the clients and prints the totals.
fn client_main(spec: &str) {
    let (port, n) = spec
        .split_once(',')
        .and_then(|(p, n)| Some((p.parse::<u16>().ok()?, n.parse::<usize>().ok()?)))
        .unwrap_or_else(|| panic!("{CLIENT_ENV}={spec:?}: expected <port>,<connections>"));
    raise_nofile_limit();
    let lp = EventLoop::new().unwrap();
    let totals = lp
        .run_until_complete(run_clients(lp.clone(), port, n))
        .unwrap()
        .unwrap_or_else(|e| panic!("clients failed: {e}"));
    lp.close().unwrap();
    println!(
        "CLIENT_TOTALS {} {} {}",
        totals.connections, totals.messages, totals.bytes
    );
}

fn parse_totals(stdout: &str) -> Option<Totals> {
    // libtest may print the test's name on the same line first.
    let line = stdout
        .lines()
        .find_map(|l| Some(&l[l.find("CLIENT_TOTALS ")? + "CLIENT_TOTALS ".len()..]))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    Some(Totals {
        connections: *v.first()? as usize,
        messages: *v.get(1)? as usize,
        bytes: *v.get(2)?,
    })
}

#[test]
fn reliability_10k_connections_net_38_one_loop_echoes_every_byte() {
    let _w = loop_testkit::exclusive().limit(GUARD.as_secs());
    if let Ok(spec) = std::env::var(CLIENT_ENV) {
        client_main(&spec);
        return;
    }
    let started = Instant::now();
    let limit = raise_nofile_limit();
    let mut n = WANT;
    if limit < WANT as u64 + RESERVE {
        n = limit.saturating_sub(RESERVE) as usize;
        println!("RLIMIT_NOFILE hard limit is {limit}: scaled down to {n} connections");
    }
    if let Some(ports) = ephemeral_ports() {
        if ports < n as u64 + 1000 {
            n = ports.saturating_sub(1000) as usize;
            println!("only {ports} ephemeral ports: scaled down to {n} connections");
        }
    }
    assert!(
        n >= 1000,
        "too few descriptors or ports for this test ({n})"
    );

    let baseline = fd_count();
    let lp = EventLoop::new().unwrap();
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = errors.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            seen.borrow_mut().push(format!("{ctx:?}"));
        },
    )));
    let stats = Rc::new(Stats::default());
    *stats.all_lost.borrow_mut() = Some((n, lp.create_future()));

    // The failure guard unwinds the loop if the run never finishes.
    _w.watch(&lp);

    let st = stats.clone();
    let lp2 = lp.clone();
    let result = lp.run_until_complete(async move {
        let s = st.clone();
        let server = lp2
            .create_server(
                move || Echo {
                    transport: None,
                    stats: s.clone(),
                },
                "127.0.0.1",
                0,
                ServerOptions::new().backlog(BACKLOG),
            )
            .await?;
        let port = server.local_addrs()[0].as_inet().unwrap().port();
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe);
        child
            .args([
                TEST_NAME,
                "--exact",
                "--include-ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CLIENT_ENV, format!("{port},{n}"));
        let out = lp2.run_in_executor(None, move || child.output())?.await??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "client process failed ({:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for l in stdout
            .lines()
            .filter_map(|l| l.find("client phases").map(|i| &l[i..]))
        {
            println!("{l}");
        }
        let totals = parse_totals(&stdout)
            .unwrap_or_else(|| panic!("no CLIENT_TOTALS line in the client's output:\n{stdout}"));
        // The client process is gone, so every connection ends on the server too.
        let all_lost = st.all_lost.borrow().as_ref().unwrap().1.clone();
        all_lost.await?;
        let clients_left = server.client_count();
        server.close();
        server.wait_closed().await?;
        lp2.shutdown_default_executor(None).await?;
        Ok::<_, Error>((totals, clients_left))
    });
    let (totals, clients_left) = match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("server side failed: {e}"),
        Err(Error::Exception(e)) => panic!("{e}"),
        Err(e) => panic!("the server loop ended early: {e}"),
    };
    lp.close().unwrap();
    drop(lp);

    let expected_bytes: u64 = (0..n)
        .map(|c| {
            (0..MESSAGES)
                .map(|k| message(c, k).len() as u64)
                .sum::<u64>()
        })
        .sum();
    println!(
        "{n} connections, {} messages, {} bytes each way, peak {} open on the server, {:.1} s",
        totals.messages,
        totals.bytes,
        stats.peak.get(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        totals,
        Totals {
            connections: n,
            messages: n * MESSAGES,
            bytes: expected_bytes,
        }
    );
    assert_eq!(stats.accepted.get(), n);
    assert_eq!(stats.peak.get(), n, "not every connection was open at once");
    assert_eq!(stats.lost.get(), n);
    assert_eq!(stats.live.get(), 0);
    assert_eq!(stats.bytes.get(), expected_bytes);
    assert_eq!(clients_left, 0, "server still tracks clients");
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    assert_eq!(fd_count(), baseline, "descriptors leaked");
}
