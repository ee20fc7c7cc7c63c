//! Writing to a peer that went away gives EPIPE, never SIGPIPE: this binary restores the
//! default SIGPIPE disposition (which kills the process) before writing, so a transport that
//! wrote to a socket without `MSG_NOSIGNAL` would make it die.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]
// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::io;
use std::os::unix::net::UnixStream;

use common::*;
use loop_core::EventLoop;
use loop_transport::{open_stream, Transport, TransportOptions};

fn default_sigpipe() {
    // SAFETY: `signal` is given a valid signal number and the default disposition; nothing in
    // this process relies on SIGPIPE being ignored except what this test checks.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(prev, libc::SIG_ERR);
}

#[test]
fn net_58_write_to_closed_peer_gives_epipe_not_sigpipe() {
    let _g = serial();
    default_sigpipe();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);

    // Transport level: direct write.
    let (rec, log, lost) = Rec::new(&lp);
    let (a, b) = UnixStream::pair().unwrap();
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    spin(&lp, 2);
    drop(b);
    t.write(b"nobody listens").unwrap();
    run_until(&lp, 30, lost);
    assert_eq!(
        log.borrow().last().unwrap(),
        &Ev::Lost(Some((
            io::ErrorKind::BrokenPipe,
            Some(rustix::io::Errno::PIPE.raw_os_error())
        )))
    );

    // Stream level over TCP: write + drain until the error shows.
    let (client, server) = tcp_pair();
    let (_r, w) = open_stream(&lp, client, 1024, TransportOptions::socket()).unwrap();
    drop(server);
    let err = run(&lp, 60, async move {
        let chunk = vec![1u8; 16 * 1024];
        for _ in 0..100_000 {
            w.write(&chunk)?;
            w.drain().await?;
        }
        Ok::<(), loop_core::Error>(())
    })
    .unwrap_err();
    let kind = io::Error::from(err).kind();
    assert!(
        matches!(
            kind,
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ),
        "{kind:?}"
    );
    assert!(reports.borrow().is_empty());
}
