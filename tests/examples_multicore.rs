//! Builds and runs the `echo_multicore` example: two loops with one `SO_REUSEPORT` listener
//! each on the same port, many clients, every echo checked, connections spread across both
//! loops, and a clean exit on SIGTERM.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "net,signals";

/// The message client `c` sends as its `k`-th: distinct per client and round, 1..=300 bytes.
fn message(c: usize, k: usize) -> Vec<u8> {
    let len = 1 + (c * 37 + k * 101) % 300;
    (0..len)
        .map(|j| (c.wrapping_mul(131) ^ k.wrapping_mul(17) ^ j) as u8)
        .collect()
}

#[test]
fn net_33_reuse_port_echo_multicore_spreads_connections_over_two_loops() {
    let _w = loop_testkit::watchdog();
    const CLIENTS: usize = 200;
    const ROUNDS: usize = 5;
    let exe = loop_testkit::build_example("echo_multicore", EXAMPLE_FEATURES);
    let mut server = Command::new(exe)
        .args(["--loops", "2", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut out = BufReader::new(server.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read the first line");
    let port: u16 = first
        .trim()
        .strip_prefix("Serving on 127.0.0.1:")
        .and_then(|rest| rest.strip_suffix(" with 2 loops"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert_ne!(port, 0);

    // Every client is connected before any sends, so all of them are open at once.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            // Failure guard only: a lost echo fails the test instead of hanging it.
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s
        })
        .collect();
    let mut echoed = 0usize;
    for k in 0..ROUNDS {
        for (c, s) in clients.iter_mut().enumerate() {
            let msg = message(c, k);
            s.write_all(&msg).expect("send");
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).expect("read the echo");
            assert_eq!(back, msg, "client {c} round {k}: echo differs");
            echoed += back.len();
        }
    }
    drop(clients);
    assert!(echoed > CLIENTS * ROUNDS);

    // SIGTERM: the example stops its loops, joins them and exits normally.
    // SAFETY: plain kill(2) on the pid of a child this test started and has not reaped yet.
    let rc = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed: {}", std::io::Error::last_os_error());
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("read the rest");
    let status = server.wait().expect("wait for the example");
    assert!(status.success(), "exit status {status:?}, output:\n{rest}");

    let per_loop: Vec<usize> = (0..2)
        .map(|i| {
            let prefix = format!("loop {i}: ");
            rest.lines()
                .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix(" connections"))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no count for loop {i} in:\n{rest}"))
        })
        .collect();
    assert_eq!(per_loop.iter().sum::<usize>(), CLIENTS, "{rest}");
    // With SO_REUSEPORT the kernel hashes each connection to one of the two listeners: all
    // 200 on one side has probability 2^-199.
    assert!(
        per_loop.iter().all(|&c| c > 0),
        "connections not spread: {per_loop:?}"
    );
    assert!(rest.contains("Stopped 2 loops"), "{rest}");
}
