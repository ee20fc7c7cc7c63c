//! `StreamReader` flow control and `connection_lost` (STREAM-18, STREAM-19) and `StreamWriter`
//! (STREAM-22..STREAM-26) over real sockets and pipes; the `futures` I/O traits.

mod common;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use loop_core::{Error, EventLoop};
use loop_transport::{
    open_stream, open_write_stream, Extra, StreamError, TransportOptions, DEFAULT_LIMIT,
};

// ---------------------------------------------------------------------------------------------
// STREAM-18, STREAM-19: the reader protocol

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_18_reader_pauses_the_transport_above_twice_the_limit_and_resumes_at_the_limit() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w, peer) = pair(&lp, 1024);
    let data = pattern(1 << 20);
    let d2 = data.clone();
    let mut p2 = peer.try_clone().unwrap();
    let writer = std::thread::spawn(move || p2.write_all(&d2).unwrap());
    until(&lp, 30, || r.buffered_len() > 2048);
    spin(&lp, 10);
    let t = w.transport().clone();
    assert!(!t.is_reading(), "paused above 2 × limit");
    assert!(
        r.buffered_len() < data.len(),
        "the rest waits in the kernel"
    );
    // Reading down to the limit resumes the transport.
    let t2 = t.clone();
    let r = run(&lp, 30, async move {
        let mut r = r;
        let mut first = Vec::new();
        while r.buffered_len() > 1024 {
            assert!(!t2.is_reading(), "still paused above the limit");
            first.extend(r.read(256).await.unwrap());
        }
        // The read that brought the buffer to the limit resumed reading at once.
        assert!(t2.is_reading(), "resumed at ≤ limit");
        (r, first)
    });
    // A read that needs more than 2 × limit resumes reading while it waits.
    let total = data.len();
    let got = run(&lp, 60, async move {
        let (mut r, mut all) = r;
        while all.len() < total {
            let want = (total - all.len()).min(10 * 1024);
            all.extend(r.readexactly(want).await.unwrap());
        }
        all
    });
    writer.join().unwrap();
    assert!(got == data);
    w.close();
    drop(peer);
    spin(&lp, 3);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_19_lost_cleanly_feeds_eof_and_eof_keeps_the_writer_open() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    peer.write_all(b"request").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let (r, w, got) = run(&lp, 30, async move {
        let mut r = r;
        let got = r.read_all().await.unwrap();
        // The peer's EOF did not close our side: reply.
        assert!(!w.is_closing());
        w.write(b"reply").unwrap();
        w.drain().await.unwrap();
        (r, w, got)
    });
    assert_eq!(got, b"request");
    assert!(r.at_eof());
    w.close();
    let mut reply = Vec::new();
    let w = run(&lp, 30, async move {
        w.wait_closed().await.unwrap();
        w
    });
    peer.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"reply");
    drop(w);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_19_lost_with_an_error_sets_the_reader_exception() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (client, server) = tcp_pair();
    let (r, w) = open_stream(&lp, client, DEFAULT_LIMIT, TransportOptions::socket()).unwrap();
    spin(&lp, 3);
    rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
    drop(server);
    let (e, closed) = run(&lp, 30, async move {
        let mut r = r;
        let e = r.read(10).await.unwrap_err();
        let closed = w.wait_closed().await.unwrap_err();
        (e, closed)
    });
    assert!(
        matches!(&e, StreamError::Other(err) if err.raw_os_error() == Some(rustix::io::Errno::CONNRESET.raw_os_error())),
        "{e:?}"
    );
    assert_eq!(
        closed.raw_os_error(),
        Some(rustix::io::Errno::CONNRESET.raw_os_error())
    );
    assert!(reports.borrow().is_empty());
}

// ---------------------------------------------------------------------------------------------
// STREAM-22 … STREAM-26: the writer

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_22_writer_delegates_to_the_transport() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_r, w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    assert!(w.can_write_eof());
    assert!(!w.is_closing());
    assert!(w.get_extra_info(Extra::Socket).is_some());
    assert_eq!(
        w.get_extra_info(Extra::Peername).unwrap().as_addr(),
        w.transport()
            .get_extra_info(Extra::Peername)
            .unwrap()
            .as_addr()
    );
    w.write(b"a").unwrap();
    w.writelines([&b"b"[..], b"c"]).unwrap();
    w.write_eof().unwrap();
    assert!(w.write(b"d").is_err(), "write after write_eof (NET-56)");
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"abc");
    w.close();
    assert!(w.is_closing());
    assert!(w.transport().is_closing());
    spin(&lp, 3);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_23_drain_returns_at_once_unless_paused_and_releases_every_drainer() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    small_rcvbuf(&peer);
    let (_r, w) = open_stream(&lp, a, DEFAULT_LIMIT, TransportOptions::socket()).unwrap();
    let w = Rc::new(w);
    // Not paused: returns at once (in the first poll).
    let w2 = w.clone();
    run(&lp, 30, async move {
        w2.write(b"small").unwrap();
        let mut d = Box::pin(w2.drain());
        assert!(futures_lite::future::poll_once(&mut d).await.is_some());
    });
    // Paused: several drainers wait, all are released.
    spin(&lp, 2);
    let t = w.transport().clone();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    fill_until_buffered(&t);
    t.set_write_buffer_limits(Some(1024), None).unwrap(); // pause now
    let released = Rc::new(Cell::new(0));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let w3 = w.clone();
        let rel = released.clone();
        tasks.push(
            lp.create_task(async move {
                w3.drain().await.unwrap();
                rel.set(rel.get() + 1);
            })
            .unwrap(),
        );
    }
    spin(&lp, 10);
    assert_eq!(released.get(), 0, "drain waits while writing is paused");
    let reader = slow_reader(peer, 64 * 1024, Duration::ZERO);
    until(&lp, 60, || released.get() == 3);
    assert!(
        t.get_write_buffer_size() <= 256,
        "released at the low-water mark"
    );
    w.close();
    let w4 = w.clone();
    run(&lp, 30, async move { w4.wait_closed().await }).unwrap();
    assert!(reader.join().unwrap().len() > 64 * 1024);
    drop(tasks);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_23_drain_raises_the_reader_exception_and_connection_lost() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w, _peer) = pair(&lp, DEFAULT_LIMIT);
    r.set_exception(Error::TimedOut);
    let w = Rc::new(w);
    let w2 = w.clone();
    let e = run(&lp, 30, async move { w2.drain().await.unwrap_err() });
    assert!(matches!(e, Error::TimedOut));

    let (_r, w, _peer) = pair(&lp, DEFAULT_LIMIT);
    spin(&lp, 2);
    w.close();
    let e = run(&lp, 30, async move { w.drain().await.unwrap_err() });
    let io_err = io::Error::from(e);
    assert_eq!(io_err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(io_err.to_string(), "Connection lost");
    // The open transport holds a handle to the loop: close it, or both stay alive.
    lp.close().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_23_write_and_drain_with_a_tiny_sndbuf_and_a_slow_reader() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    small_rcvbuf(&peer);
    let (_r, w) = open_stream(&lp, a, DEFAULT_LIMIT, TransportOptions::socket()).unwrap();
    let reader = slow_reader(peer, 8 * 1024, Duration::from_micros(200));
    let waits = Rc::new(Cell::new(0u32));
    let w2 = waits.clone();
    let expected = pattern(3 << 20);
    let e2 = expected.clone();
    run(&lp, 120, async move {
        for chunk in e2.chunks(10_000) {
            w.write(chunk).unwrap();
            let mut d = Box::pin(w.drain());
            if futures_lite::future::poll_once(&mut d).await.is_none() {
                w2.set(w2.get() + 1);
                d.await.unwrap();
            }
        }
        w.close();
        w.wait_closed().await.unwrap();
    });
    assert!(waits.get() > 0, "drain() had to wait");
    assert!(reader.join().unwrap() == expected, "all data, intact");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_24_write_drain_loop_against_a_closed_peer_ends_with_an_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (client, server) = tcp_pair();
    let (_r, w) = open_stream(&lp, client, DEFAULT_LIMIT, TransportOptions::socket()).unwrap();
    drop(server);
    let e = run(&lp, 60, async move {
        let chunk = vec![0u8; 4096];
        for _ in 0..1_000_000 {
            w.write(&chunk)?;
            w.drain().await?;
        }
        Ok::<(), Error>(())
    })
    .unwrap_err();
    let kind = io::Error::from(e).kind();
    assert!(
        matches!(
            kind,
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        ),
        "{kind:?}"
    );
    assert!(
        reports.borrow().is_empty(),
        "nothing is sent to the exception handler"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_25_close_then_wait_closed_even_with_unread_data() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    peer.write_all(b"never read").unwrap();
    spin(&lp, 5);
    w.close();
    assert!(w.is_closing());
    let r = run(&lp, 30, async move {
        w.wait_closed().await.unwrap();
        r
    });
    // The paired reader sees EOF after its buffered data.
    let (r, rest) = run(&lp, 30, async move {
        let mut r = r;
        let rest = r.read_all().await.unwrap();
        (r, rest)
    });
    assert_eq!(rest, b"never read");
    assert!(r.at_eof());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_26_dropping_an_open_writer_closes_the_transport() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (r, w, peer) = pair(&lp, DEFAULT_LIMIT);
    let t = w.transport().clone();
    drop(w);
    assert!(t.is_closing());
    spin(&lp, 3);
    assert!(t.fileno().is_none());
    drop((r, peer, t));
    assert_eq!(fd_count(), before);

    // After the loop is closed: no panic, the fd is closed as well.
    let (r, w, peer) = pair(&lp, DEFAULT_LIMIT);
    lp.close().unwrap();
    drop(w);
    drop((r, peer));
    drop(lp);
    assert!(fd_count() < before, "the loop's own fds are gone too");
}

// ---------------------------------------------------------------------------------------------
// futures-io interop

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn streams_implement_async_read_bufread_and_write() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, w, mut peer) = pair(&lp, 1024);
    let data = pattern(100_000);
    let d2 = data.clone();
    let mut p2 = peer.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        p2.write_all(b"first line\n").unwrap();
        p2.write_all(&d2).unwrap();
        p2.shutdown(Shutdown::Write).unwrap();
    });
    let (line, copied) = run(&lp, 60, async move {
        let mut r = r;
        let mut w = w;
        let mut line = String::new();
        AsyncBufReadExt::read_line(&mut r, &mut line).await.unwrap();
        // Echo the rest back through AsyncRead -> AsyncWrite.
        let n = futures_lite::io::copy(&mut r, &mut w).await.unwrap();
        w.flush().await.unwrap();
        AsyncWriteExt::close(&mut w).await.unwrap(); // half-close: write_eof
        let mut tail = [0u8; 1];
        assert_eq!(AsyncReadExt::read(&mut r, &mut tail).await.unwrap(), 0);
        (line, n)
    });
    feeder.join().unwrap();
    assert_eq!(line, "first line\n");
    assert_eq!(copied as usize, data.len());
    let mut echoed = Vec::new();
    peer.read_to_end(&mut echoed).unwrap();
    assert!(echoed == data);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn write_stream_over_a_pipe() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rp, wp) = rustix::pipe::pipe().unwrap();
    let w = open_write_stream(&lp, wp, TransportOptions::write_pipe()).unwrap();
    let data = pattern(1 << 20);
    let reader = slow_reader(std::fs::File::from(rp), 64 * 1024, Duration::ZERO);
    let d2 = data.clone();
    run(&lp, 60, async move {
        for c in d2.chunks(50_000) {
            w.write(c).unwrap();
            w.drain().await.unwrap();
        }
        w.close();
        w.wait_closed().await.unwrap();
    });
    assert!(reader.join().unwrap() == data);
}
