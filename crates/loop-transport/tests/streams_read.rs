//! The stream pair building blocks (STREAM-01, STREAM-02) and `StreamReader` (STREAM-04..STREAM-17,
//! STREAM-20, STREAM-21) over real sockets and pipes.

mod common;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use common::*;
use futures_lite::StreamExt;
use loop_core::{Error, EventLoop};
use loop_transport::Protocol;
use loop_transport::{
    open_read_stream, open_stream, StreamError, StreamReader, StreamReaderProtocol, Transport,
    TransportOptions, DEFAULT_LIMIT,
};

fn fed(data: &[u8], eof: bool) -> StreamReader {
    let r = StreamReader::new();
    r.feed_data(data);
    if eof {
        r.feed_eof();
    }
    r
}

fn fed_limit(limit: usize, data: &[u8]) -> StreamReader {
    let r = StreamReader::with_limit(limit).unwrap();
    r.feed_data(data);
    r
}

// ---------------------------------------------------------------------------------------------
// STREAM-01 / STREAM-02 (the stream-pair building blocks; the socket-opening part is loop-net's)

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_01_open_stream_over_a_socketpair_and_tcp() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (mut r, w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    assert_eq!(r.limit(), 65536);
    peer.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (r, w, req) = run(&lp, 30, async move {
        let req = r.readuntil(b"\r\n\r\n").await.unwrap();
        w.write(b"HTTP/1.0 200 OK\r\n\r\nbody").unwrap();
        w.drain().await.unwrap();
        (r, w, req)
    });
    assert_eq!(req, b"GET / HTTP/1.0\r\n\r\n");
    let mut resp = [0u8; 23];
    peer.read_exact(&mut resp).unwrap();
    assert_eq!(&resp, b"HTTP/1.0 200 OK\r\n\r\nbody");
    w.close();
    run(&lp, 30, async move { w.wait_closed().await }).unwrap();
    drop((r, peer));
    assert_eq!(fd_count(), before);

    let (client, server) = tcp_pair();
    let (mut r, w) = open_stream(&lp, client, 100, TransportOptions::socket()).unwrap();
    assert_eq!(r.limit(), 100);
    let mut server = server;
    server.write_all(b"hello tcp\n").unwrap();
    let line = run(&lp, 30, async move {
        let l = r.readline().await.unwrap();
        w.close();
        w.wait_closed().await.unwrap();
        l
    });
    assert_eq!(line, b"hello tcp\n");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_02_client_connected_callback_gets_reader_and_writer() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, mut peer) = UnixStream::pair().unwrap();
    let served = lp.create_future::<()>();
    let s2 = served.clone();
    let lp2 = lp.clone();
    let proto =
        StreamReaderProtocol::with_client_connected(StreamReader::new(), move |mut r, w| {
            lp2.create_task(async move {
                let line = r.readline().await.unwrap();
                w.write(&line.to_ascii_uppercase()).unwrap();
                w.close();
                w.wait_closed().await.unwrap();
                s2.set_result(()).unwrap();
            })
            .unwrap();
        });
    Transport::new(&lp, a, proto, TransportOptions::socket()).unwrap();
    peer.write_all(b"shout\n").unwrap();
    run_until(&lp, 30, served);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"SHOUT\n");
}

// ---------------------------------------------------------------------------------------------
// STREAM-04 … STREAM-17: the reader

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_04_zero_limit_is_rejected() {
    let _g = serial();
    let e = StreamReader::with_limit(0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert!(e.to_string().contains("Limit"), "{e}");
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(open_stream(&lp, a, 0, TransportOptions::socket()).is_err());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_05_read_zero_and_feeding_nothing() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let mut r = fed(b"kept", false);
    r.feed_data(b"");
    assert_eq!(r.buffered_len(), 4);
    let (r, got) = run(&lp, 30, async move {
        let g = r.read(0).await.unwrap();
        (r, g)
    });
    assert!(got.is_empty());
    assert_eq!(r.buffered_len(), 4, "read(0) leaves the buffer untouched");

    // feed_data(b"") does not complete a waiting read; data does. The protocol is the feeding
    // handle of a reader owned by a task.
    let empty = StreamReader::new();
    let mut feeder = StreamReaderProtocol::new(Some(&empty));
    let done = Rc::new(Cell::new(false));
    let d2 = done.clone();
    let t = lp
        .create_task(async move {
            let mut r = empty;
            let got = r.read(5).await.unwrap();
            d2.set(true);
            got
        })
        .unwrap();
    spin(&lp, 3);
    feeder.data_received(b"");
    spin(&lp, 3);
    assert!(!done.get());
    feeder.data_received(b"now");
    assert_eq!(run(&lp, 30, t).unwrap(), b"now");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_06_read_n_waits_for_data_and_is_not_capped_by_the_limit() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, _w, mut peer) = pair(&lp, 3);
    let done = Rc::new(Cell::new(false));
    let d2 = done.clone();
    let t = lp
        .create_task(async move {
            let mut r = r;
            let a = r.read(30).await.unwrap();
            d2.set(true);
            let b = r.read(2).await.unwrap();
            let c = r.read(100).await.unwrap();
            let eof = r.read(100).await.unwrap();
            (a, b, c, eof)
        })
        .unwrap();
    spin(&lp, 5);
    assert!(!done.get(), "read(n) waits for data");
    peer.write_all(b"12345678").unwrap();
    until(&lp, 30, || done.get());
    peer.write_all(b"abcd").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let (a, b, c, eof) = run(&lp, 30, t).unwrap();
    assert_eq!(a, b"12345678", "everything buffered, above the limit of 3");
    assert_eq!(b, b"ab");
    assert_eq!(c, b"cd");
    assert!(eof.is_empty(), "EOF with an empty buffer reads []");
    // The open transport holds a handle to the loop: close it, or both stay alive.
    lp.close().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_06_read_into_waits_for_data_copies_at_most_the_buffer_and_reads_0_at_eof() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, _w, mut peer) = pair(&lp, 3);
    let done = Rc::new(Cell::new(false));
    let d2 = done.clone();
    let t = lp
        .create_task(async move {
            let mut r = r;
            let mut big = [0u8; 30];
            let a = r.read_into(&mut big).await.unwrap();
            let a = big[..a].to_vec();
            d2.set(true);
            let mut small = [0u8; 2];
            let b = r.read_into(&mut small).await.unwrap();
            let b = small[..b].to_vec();
            let empty = r.read_into(&mut []).await.unwrap();
            let c = r.read_into(&mut big).await.unwrap();
            let c = big[..c].to_vec();
            let eof = r.read_into(&mut big).await.unwrap();
            (a, b, empty, c, eof)
        })
        .unwrap();
    spin(&lp, 5);
    assert!(!done.get(), "read_into waits for data");
    peer.write_all(b"12345678").unwrap();
    until(&lp, 30, || done.get());
    peer.write_all(b"abcd").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let (a, b, empty, c, eof) = run(&lp, 30, t).unwrap();
    assert_eq!(a, b"12345678", "everything buffered, above the limit of 3");
    assert_eq!(
        b, b"ab",
        "at most the buffer's length; the rest stays buffered"
    );
    assert_eq!(empty, 0, "an empty buffer reads 0 at once");
    assert_eq!(c, b"cd");
    assert_eq!(eof, 0, "EOF with an empty buffer reads 0");

    // Chunk after chunk, each read whole (below the flow-control limit): every byte once.
    let r = fed(b"hello", false);
    let (r, first, second) = run(&lp, 30, async move {
        let mut r = r;
        let mut buf = [0u8; 16];
        let n = r.read_into(&mut buf).await.unwrap();
        let first = buf[..n].to_vec();
        r.feed_data(b"world!");
        let n = r.read_into(&mut buf).await.unwrap();
        (r, first, buf[..n].to_vec())
    });
    assert_eq!(first, b"hello");
    assert_eq!(second, b"world!");
    assert_eq!(r.buffered_len(), 0);
    lp.close().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_15_17_18_read_into_raises_the_exception_holds_the_wait_slot_and_resumes_reading() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    // STREAM-15: the exception, even with data buffered.
    let r = fed(b"data", false);
    r.set_exception(Error::from(io::Error::from(io::ErrorKind::ConnectionReset)));
    let e = run(&lp, 30, async move {
        let mut r = r;
        r.read_into(&mut [0u8; 8]).await.unwrap_err()
    });
    assert!(
        matches!(&e, StreamError::Other(Error::Io(io)) if io.kind() == io::ErrorKind::ConnectionReset),
        "{e:?}"
    );

    // STREAM-17: a waiting read_into holds the wait slot like read(), and gives it back when
    // it is cancelled (dropped).
    let r = StreamReader::new();
    let (r, e) = run(&lp, 30, async move {
        let mut r = r;
        let mut buf = [0u8; 4];
        {
            let mut f = Box::pin(r.read_into(&mut buf));
            assert!(futures_lite::future::poll_once(&mut f).await.is_none());
        }
        let mut f = Box::pin(r.read_into(&mut buf));
        assert!(futures_lite::future::poll_once(&mut f).await.is_none());
        std::mem::forget(f);
        let e = r.read(1).await.unwrap_err();
        // A second read_into is refused too, whether it would wait or data is there.
        let waiting = r.read_into(&mut [0u8; 4]).await.unwrap_err();
        r.feed_data(b"xy");
        let fed = r.read_into(&mut [0u8; 4]).await.unwrap_err();
        (r, [e, waiting, fed])
    });
    for e in e {
        assert_eq!(
            e.to_string(),
            "read() called while another coroutine is already waiting for incoming data"
        );
    }
    assert_eq!(r.buffered_len(), 2, "the refused read_into took nothing");
    drop(r);

    // STREAM-18: more than 2 x limit buffered pauses the transport; read_into bringing the
    // buffer to the limit or below resumes it.
    let (r, w, mut peer) = pair(&lp, 4);
    peer.write_all(b"0123456789").unwrap();
    until(&lp, 30, || r.buffered_len() >= 10);
    let t = w.transport().clone();
    let paused = !t.is_reading();
    let (still_paused, resumed, got) = run(&lp, 30, async move {
        let mut r = r;
        let mut got = Vec::new();
        let mut one = [0u8; 1];
        let n = r.read_into(&mut one).await.unwrap();
        got.extend_from_slice(&one[..n]);
        let still_paused = !t.is_reading();
        let mut five = [0u8; 5];
        let n = r.read_into(&mut five).await.unwrap();
        got.extend_from_slice(&five[..n]);
        (still_paused, t.is_reading(), got)
    });
    assert!(paused, "10 bytes > 2 x 4 pause reading");
    assert!(still_paused, "9 bytes left: above the limit");
    assert!(resumed, "4 bytes left: at the limit, reading resumes");
    assert_eq!(got, b"012345");
    lp.close().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_07_read_all_from_a_pipe_past_the_flow_control_limit() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (rp, wp) = rustix::pipe::pipe().unwrap();
    let mut reader = open_read_stream(&lp, rp, 1024, TransportOptions::read_pipe()).unwrap();
    let data = pattern(200_000); // ~200 × limit: the reader pauses and resumes many times
    let d2 = data.clone();
    let w = std::thread::spawn(move || {
        let mut f = std::fs::File::from(wp);
        f.write_all(&d2).unwrap();
    });
    let got = run(&lp, 60, async move { reader.read_all().await }).unwrap();
    w.join().unwrap();
    assert!(got == data);
    spin(&lp, 3);
    assert_eq!(fd_count(), before, "the read pipe closed itself at EOF");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_08_readline() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = fed(b"line1\nline2\nlast", true);
    let got = run(&lp, 30, async move {
        let mut r = r;
        let a = r.readline().await.unwrap();
        let b = r.readline().await.unwrap();
        let c = r.readline().await.unwrap();
        let d = r.readline().await.unwrap();
        (a, b, c, d, r.at_eof())
    });
    assert_eq!(
        got,
        (
            b"line1\n".to_vec(),
            b"line2\n".to_vec(),
            b"last".to_vec(),
            vec![],
            true
        )
    );

    // A line already buffered is returned without waiting; the rest stays buffered.
    let r = fed(b"ready\nmore", false);
    let (r, line) = run(&lp, 30, async move {
        let mut r = r;
        let l = r.readline().await.unwrap();
        (r, l)
    });
    assert_eq!(line, b"ready\n");
    assert_eq!(r.buffered_len(), 4);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_09_readline_over_the_limit_is_a_value_error_and_drops_the_line() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    // Newline already buffered: the line and its newline are removed.
    let r = fed_limit(4, b"12345\nabc\n");
    let (r, e, next) = run(&lp, 30, async move {
        let mut r = r;
        let e = r.readline().await.unwrap_err();
        let next = r.readline().await.unwrap();
        (r, e, next)
    });
    assert!(
        matches!(&e, StreamError::Other(Error::InvalidArgument(_))),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("Separator is found, but chunk is longer than limit"),
        "{e}"
    );
    assert_eq!(next, b"abc\n");
    drop(r);
    // No newline yet: the whole buffer is discarded.
    let r = fed_limit(4, b"123456");
    let (r, e) = run(&lp, 30, async move {
        let mut r = r;
        let e = r.readline().await.unwrap_err();
        (r, e)
    });
    assert!(matches!(&e, StreamError::Other(Error::InvalidArgument(_))));
    assert_eq!(r.buffered_len(), 0);
    // A line of exactly `limit` bytes plus its newline is fine.
    let r = fed_limit(4, b"1234\n");
    let line = run(&lp, 30, async move {
        let mut r = r;
        r.readline().await.unwrap()
    });
    assert_eq!(line, b"1234\n");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_10_readuntil_separator_across_chunks() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, _w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    let t = lp
        .create_task(async move {
            let mut r = r;
            let a = r.readuntil(b"&&").await.unwrap();
            let b = r.readuntil(b"&&").await.unwrap();
            (r, a, b)
        })
        .unwrap();
    for piece in [&b"lin"[..], b"e1&", b"&li", b"ne2", b"&", b"&rest"] {
        peer.write_all(piece).unwrap();
        spin(&lp, 3);
    }
    let (r, a, b) = run(&lp, 30, t).unwrap();
    assert_eq!(a, b"line1&&");
    assert_eq!(b, b"line2&&");
    assert_eq!(r.buffered_len(), 4);

    let r = fed(b"x", false);
    let (e1, e2) = run(&lp, 30, async move {
        let mut r = r;
        let e1 = r.readuntil(b"").await.unwrap_err();
        let e2 = r.readuntil_any(&[]).await.unwrap_err();
        (e1, e2)
    });
    assert!(
        e1.to_string()
            .contains("Separator should be at least one-byte string"),
        "{e1}"
    );
    assert!(
        e2.to_string()
            .contains("Separator should contain at least one element"),
        "{e2}"
    );
    // The open transport holds a handle to the loop: close it, or both stay alive.
    lp.close().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_11_readuntil_any_returns_the_shortest_result() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = fed(b"abcdxy--xBBA", true);
    let got = run(&lp, 30, async move {
        let mut r = r;
        // "abcdx" ends before "xy" does: the longer separator wins.
        let a = r.readuntil_any(&[b"xy", b"abcdx"]).await.unwrap();
        let b = r.readuntil_any(&[b"A", b"BB"]).await.unwrap();
        let c = r.read_all().await.unwrap();
        (a, b, c)
    });
    assert_eq!(got, (b"abcdx".to_vec(), b"y--xBB".to_vec(), b"A".to_vec()));

    // Split across feeds, with separators of different lengths: the scan offset must not
    // skip a separator that straddles two chunks.
    let r = StreamReader::new();
    let mut feeder = StreamReaderProtocol::new(Some(&r));
    feeder.data_received(b"aaaa");
    let t = lp
        .create_task(async move {
            let mut r = r;
            r.readuntil_any(&[b"ab", b"zzzzzz"]).await.unwrap()
        })
        .unwrap();
    spin(&lp, 3);
    assert!(!t.done());
    feeder.data_received(b"b");
    assert_eq!(run(&lp, 30, t).unwrap(), b"aaaab");

    let (r, _w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    let t = lp
        .create_task(async move {
            let mut r = r;
            r.readuntil_any(&[b"zz", b"aaaaab"]).await.unwrap()
        })
        .unwrap();
    peer.write_all(b"aaaa").unwrap();
    spin(&lp, 5);
    peer.write_all(b"ab").unwrap();
    assert_eq!(run(&lp, 30, t).unwrap(), b"aaaaab");
    // The open transport holds a handle to the loop: close it, or both stay alive.
    lp.close().unwrap();
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_12_readuntil_at_eof_is_incomplete_with_all_buffered_data() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = fed(b"no separator here", true);
    let (r, e) = run(&lp, 30, async move {
        let mut r = r;
        let e = r.readuntil(b"\n").await.unwrap_err();
        (r, e)
    });
    match &e {
        StreamError::Incomplete { partial, expected } => {
            assert_eq!(partial, b"no separator here");
            assert_eq!(*expected, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "17 bytes read on a total of undefined expected bytes"
    );
    assert_eq!(r.buffered_len(), 0, "the buffer is emptied");
    assert!(r.at_eof());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_13_readuntil_limit_overrun_keeps_data() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = fed_limit(3, b"abcdef");
    let (r, e) = run(&lp, 30, async move {
        let mut r = r;
        let e = r.readuntil(b"!").await.unwrap_err();
        (r, e)
    });
    match &e {
        StreamError::LimitOverrun { message, consumed } => {
            assert_eq!(
                *message,
                "Separator is not found, and chunk exceed the limit"
            );
            assert_eq!(*consumed, 6);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.buffered_len(), 6, "the data stays");

    let r = fed_limit(3, b"abcde!");
    let (r, e) = run(&lp, 30, async move {
        let mut r = r;
        let e = r.readuntil_any(&[b"!", b"?"]).await.unwrap_err();
        (r, e)
    });
    match &e {
        StreamError::LimitOverrun { message, consumed } => {
            assert_eq!(
                *message,
                "Separator is found, but chunk is longer than limit"
            );
            assert_eq!(*consumed, 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.buffered_len(), 6);
    let all = run(&lp, 30, async move {
        let mut r = r;
        r.read(100).await.unwrap()
    });
    assert_eq!(all, b"abcde!");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_14_readexactly() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = fed_limit(2, b"0123456789");
    let got = run(&lp, 30, async move {
        let mut r = r;
        let zero = r.readexactly(0).await.unwrap();
        let seven = r.readexactly(7).await.unwrap(); // above the limit of 2
        r.feed_eof();
        let e = r.readexactly(5).await.unwrap_err();
        (zero, seven, e, r.buffered_len())
    });
    assert!(got.0.is_empty());
    assert_eq!(got.1, b"0123456");
    match &got.2 {
        StreamError::Incomplete { partial, expected } => {
            assert_eq!(partial, b"789");
            assert_eq!(*expected, Some(5));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        got.2.to_string(),
        "3 bytes read on a total of 5 expected bytes"
    );
    assert_eq!(got.3, 0, "the buffer is cleared");
    // A negative size is a compile error: `n` is a `usize`.
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_15_exception_is_raised_by_every_later_read_and_wakes_a_waiter() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = fed(b"data\n", false);
    r.set_exception(Error::from(io::Error::from(io::ErrorKind::ConnectionReset)));
    assert!(r.exception().is_some());
    let errs = run(&lp, 30, async move {
        let mut r = r;
        vec![
            r.read(1).await.unwrap_err(),
            r.readline().await.unwrap_err(),
            r.readuntil(b"\n").await.unwrap_err(),
            r.readexactly(1).await.unwrap_err(),
            r.read_all().await.unwrap_err(),
        ]
    });
    for e in errs {
        assert!(
            matches!(&e, StreamError::Other(Error::Io(io)) if io.kind() == io::ErrorKind::ConnectionReset),
            "{e:?}"
        );
    }

    // A waiting reader is woken with it (here: the connection is lost with an error).
    let r = StreamReader::new();
    let mut feeder = StreamReaderProtocol::new(Some(&r));
    let t = lp
        .create_task(async move {
            let mut r = r;
            r.readexactly(10).await.unwrap_err()
        })
        .unwrap();
    spin(&lp, 3);
    assert!(!t.done());
    feeder.connection_lost(Some(io::Error::from(io::ErrorKind::TimedOut)));
    let e = run(&lp, 30, t).unwrap();
    assert!(e.to_string().contains("timed out"), "{e}");

    // A waiter that was cancelled: setting the exception later is harmless.
    let r = StreamReader::new();
    let mut feeder = StreamReaderProtocol::new(Some(&r));
    let t = lp
        .create_task(async move {
            let mut r = r;
            let _ = r.read(1).await;
        })
        .unwrap();
    spin(&lp, 2);
    t.cancel();
    spin(&lp, 2);
    assert!(t.cancelled());
    feeder.connection_lost(Some(io::Error::from(io::ErrorKind::TimedOut)));
    spin(&lp, 2);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_16_at_eof_only_with_eof_and_an_empty_buffer() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = StreamReader::new();
    assert!(!r.at_eof());
    r.feed_data(b"x");
    assert!(!r.at_eof());
    r.feed_eof();
    assert!(!r.at_eof());
    let r = run(&lp, 30, async move {
        let mut r = r;
        r.read(1).await.unwrap();
        r
    });
    assert!(r.at_eof());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_17_a_second_waiting_read_is_refused() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let r = StreamReader::new();
    let (r, e) = run(&lp, 30, async move {
        let mut r = r;
        // Cancelling (dropping) a waiting read releases the wait slot…
        {
            let mut f = Box::pin(r.read(1));
            assert!(futures_lite::future::poll_once(&mut f).await.is_none());
        }
        // …but a read future leaked while waiting keeps it.
        let mut f = Box::pin(r.read(1));
        assert!(futures_lite::future::poll_once(&mut f).await.is_none());
        std::mem::forget(f);
        let e = r.readline().await.unwrap_err();
        (r, e)
    });
    assert_eq!(
        e.to_string(),
        "readline() called while another coroutine is already waiting for incoming data"
    );
    drop(r);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_20_lines_until_empty() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, _w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    peer.write_all(b"one\ntwo\nthree").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let lines = run(&lp, 30, async move {
        let mut r = r;
        let v: Vec<_> = r.line_stream().map(|l| l.unwrap()).collect().await;
        v
    });
    assert_eq!(
        lines,
        vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three".to_vec()]
    );
    // The open transport holds a handle to the loop: close it, or both stay alive.
    lp.close().unwrap();
}

#[test]
fn stream_21_errors_are_plain_data_and_no_loop_is_needed_to_build_a_reader() {
    let _g = serial();
    // No loop exists on this thread: building readers and protocols works.
    assert!(loop_core::get_running_loop().is_err());
    let r = StreamReader::with_limit(10).unwrap();
    let _p = StreamReaderProtocol::new(Some(&r));
    let e = StreamError::Incomplete {
        partial: b"ab".to_vec(),
        expected: Some(3),
    };
    let copy = e.clone();
    assert!(
        matches!(copy, StreamError::Incomplete { ref partial, expected: Some(3) } if partial == b"ab")
    );
    let e = StreamError::LimitOverrun {
        message: "m",
        consumed: 4,
    };
    assert!(matches!(e, StreamError::LimitOverrun { consumed: 4, .. }));
    // Into loop_core::Error and io::Error, downcastable back.
    let core: Error = StreamError::Incomplete {
        partial: vec![1],
        expected: None,
    }
    .into();
    match &core {
        Error::Exception(x) => assert!(x.downcast_ref::<StreamError>().is_some()),
        other => panic!("{other:?}"),
    }
    let io_err: io::Error = StreamError::Incomplete {
        partial: vec![],
        expected: Some(1),
    }
    .into();
    assert_eq!(io_err.kind(), io::ErrorKind::UnexpectedEof);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "feed_data() after feed_eof()")]
fn stream_21_feed_data_after_feed_eof_is_a_bug() {
    let _g = serial();
    let r = StreamReader::new();
    r.feed_eof();
    r.feed_data(b"late");
}

/// A waiting read is woken once, by the data it waits for: bytes fed while the task waits on
/// something else do not step the task (asyncio's reader wakes its waiter once and forgets
/// it), and the next read takes them at once.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs an event loop (miri's epoll is edge-triggered only)"
)]
fn stream_06_data_fed_while_the_task_waits_elsewhere_does_not_step_it() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (r, _w, mut peer) = pair(&lp, DEFAULT_LIMIT);
    let gate = lp.create_future::<()>();
    let g2 = gate.clone();
    let first = Rc::new(Cell::new(false));
    let f2 = first.clone();
    let t = lp
        .create_task(async move {
            let mut r = r;
            let mut buf = [0u8; 16];
            let a = r.read_into(&mut buf).await.unwrap();
            let a = buf[..a].to_vec();
            f2.set(true);
            g2.await.unwrap();
            let b = r.read_into(&mut buf).await.unwrap();
            (a, buf[..b].to_vec())
        })
        .unwrap();
    spin(&lp, 5);
    peer.write_all(b"one").unwrap();
    until(&lp, 30, || first.get());
    let steps = lp.stats().tasks_polled;
    let events = lp.stats().io_events;
    peer.write_all(b"two").unwrap();
    // The transport reads "two" and feeds it to the reader; a few more iterations give a
    // wrongly queued step the time to run.
    until(&lp, 30, || lp.stats().io_events > events);
    spin(&lp, 5);
    assert_eq!(
        lp.stats().tasks_polled,
        steps,
        "data fed while the task waits on a future does not step it"
    );
    gate.set_result(()).unwrap();
    let (a, b) = run(&lp, 30, t).unwrap();
    assert_eq!((&a[..], &b[..]), (&b"one"[..], &b"two"[..]));
    lp.close().unwrap();
}
