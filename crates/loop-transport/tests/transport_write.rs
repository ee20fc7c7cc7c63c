//! The fd stream transport's write path on real sockets and pipes: straight writes and
//! buffering (NET-55..NET-59), write flow control and the buffer limits (NET-64, NET-65).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use loop_core::{Error, EventLoop};
use loop_transport::{FdKind, Protocol, Transport, TransportOptions};

// ---------------------------------------------------------------------------------------------
// NET-55

#[test]
fn net_55_write_goes_straight_to_the_socket_when_nothing_is_buffered() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, _lost) = Rec::new(&lp);
    let (t, mut peer) = socket_transport(&lp, rec);
    // No loop iteration runs between write() and the peer's read: the bytes were sent inside
    // write() itself.
    t.write(b"direct").unwrap();
    assert_eq!(t.get_write_buffer_size(), 0);
    let mut buf = [0u8; 6];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"direct");
    t.write(b"").unwrap();
    t.writelines([b"", b""]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 0);
    t.abort();
    spin(&lp, 2);
}

#[test]
fn net_55_partial_write_buffers_only_the_rest_and_never_aliases_the_caller_buffer() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    small_rcvbuf(&peer);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let mut data = pattern(1 << 20);
    t.write(&data).unwrap();
    let buffered = t.get_write_buffer_size();
    assert!(
        buffered > 0 && buffered < data.len(),
        "some sent at once, the rest buffered: {buffered}"
    );
    let expected = data.clone();
    data.iter_mut().for_each(|b| *b = 0); // the caller reuses its buffer
    let reader = slow_reader(peer, 8192, Duration::ZERO);
    until(&lp, 60, || t.get_write_buffer_size() == 0);
    t.close();
    run_until(&lp, 30, lost);
    assert_eq!(reader.join().unwrap(), expected);
}

// ---------------------------------------------------------------------------------------------
// NET-56

#[test]
fn net_56_write_after_write_eof_is_an_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, _lost) = Rec::new(&lp);
    let (t, _peer) = socket_transport(&lp, rec);
    t.write_eof().unwrap();
    let e = t.write(b"late").unwrap_err();
    assert!(matches!(e, Error::InvalidState(_)));
    assert_eq!(e.to_string(), "Cannot call write() after write_eof()");
    assert!(t.writelines([b"late"]).is_err());
    t.abort();
    spin(&lp, 2);
}

// ---------------------------------------------------------------------------------------------
// NET-57

#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[test]
fn net_57_writes_after_close_are_dropped_and_warned_from_the_fifth_on() {
    let _g = serial();
    let cap = Capture::default();
    let c2 = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || c2.clone())
        .finish();
    tracing::subscriber::with_default(sub, || {
        let lp = EventLoop::new().unwrap();
        let (rec, _log, lost) = Rec::new(&lp);
        let (t, mut peer) = socket_transport(&lp, rec);
        t.close(); // the close counts as 1
        for _ in 0..4 {
            t.write(b"dropped").unwrap();
        }
        assert_eq!(cap.count("socket.send() raised exception."), 0);
        t.write(b"dropped").unwrap();
        assert_eq!(cap.count("socket.send() raised exception."), 1);
        run_until(&lp, 30, lost);
        t.write(b"after lost").unwrap();
        assert_eq!(cap.count("socket.send() raised exception."), 2);
        assert_eq!(t.get_write_buffer_size(), 0);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert!(
            got.is_empty(),
            "nothing written after close() reaches the peer"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// NET-58

#[test]
fn net_58_send_error_closes_quietly_with_the_os_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (rec, log, lost) = Rec::new(&lp);
    let (t, peer) = socket_transport(&lp, rec);
    spin(&lp, 2);
    drop(peer);
    t.write(b"to nobody").unwrap(); // EPIPE, not SIGPIPE
    run_until(&lp, 30, lost);
    let lost_events: Vec<_> = log
        .borrow()
        .iter()
        .filter(|e| matches!(e, Ev::Lost(_)))
        .cloned()
        .collect();
    // write() ran before any loop iteration could see the peer's EOF: the send itself failed.
    assert_eq!(
        lost_events,
        vec![Ev::Lost(Some((
            io::ErrorKind::BrokenPipe,
            Some(rustix::io::Errno::PIPE.raw_os_error())
        )))]
    );
    assert!(reports.borrow().is_empty());
}

#[test]
fn net_58_buffered_send_error_discards_the_buffer() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (rec, log, lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    spin(&lp, 2);
    assert!(fill_until_buffered(&t) > 0);
    drop(peer); // unread data: our next send fails
    run_until(&lp, 30, lost);
    assert_eq!(t.get_write_buffer_size(), 0, "the buffer is discarded");
    assert!(t.is_closing());
    assert!(matches!(
        log.borrow().last(),
        Some(Ev::Lost(Some((_, Some(_)))))
    ));
    assert!(reports.borrow().is_empty());
}

// ---------------------------------------------------------------------------------------------
// NET-59

#[test]
fn net_59_writelines_equals_the_concatenation_with_more_pieces_than_iov_max() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let pieces: Vec<Vec<u8>> = (0..3000)
        .map(|i| {
            pattern(1 + i % 97)
                .into_iter()
                .map(|b| b ^ (i as u8))
                .collect()
        })
        .collect();
    let mut expected: Vec<u8> = pieces.concat();
    t.writelines(&pieces).unwrap(); // direct vectored sends, then buffered pieces
    let big = pattern(300_000);
    t.write(&big).unwrap();
    expected.extend_from_slice(&big);
    t.writelines(&pieces).unwrap(); // appended behind buffered data
    expected.extend(pieces.concat());
    assert!(t.get_write_buffer_size() > 0);
    let reader = slow_reader(peer, 4096, Duration::ZERO);
    t.close();
    run_until(&lp, 60, lost);
    assert_eq!(reader.join().unwrap(), expected);
}

/// NET-59: when the socket takes only part of the first `MAX_IOV` pieces of a `writelines`,
/// nothing of the later pieces is sent before the rest of that batch: the peer receives exactly
/// the concatenation even while it reads concurrently, so that room may appear between two
/// sends. Several rounds over TCP loopback with a small send buffer, each on an empty write
/// buffer (the direct path).
#[test]
fn net_59_writelines_sends_no_later_batch_after_a_partial_one() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, lost) = Rec::new(&lp);
    let (client, server) = tcp_pair();
    small_sndbuf(&client);
    let t = Transport::new(&lp, client, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let reader = slow_reader(server, 1 << 16, Duration::ZERO);
    let mut expected = Vec::new();
    for round in 0..6usize {
        until(&lp, 30, || t.get_write_buffer_size() == 0);
        let pieces: Vec<Vec<u8>> = (0..3 * loop_transport::MAX_IOV)
            .map(|i| {
                let tag = (round * 3 * loop_transport::MAX_IOV + i) as u32;
                let mut p = tag.to_le_bytes().to_vec();
                p.extend(pattern(700 + i % 300).into_iter().map(|b| b ^ round as u8));
                p
            })
            .collect();
        t.writelines(&pieces).unwrap();
        expected.extend(pieces.concat());
    }
    t.close();
    run_until(&lp, 60, lost);
    let got = reader.join().unwrap();
    let first_diff = got.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        got.len() == expected.len() && first_diff.is_none(),
        "received {} bytes, expected {}; first difference at {first_diff:?}",
        got.len(),
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// NET-64

#[test]
fn net_64_pause_writing_sync_inside_write() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, _peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    spin(&lp, 2);
    let buffered = fill_until_buffered(&t);
    // Exactly at high: no pause (strictly above is required).
    t.set_write_buffer_limits(Some(buffered + 100), Some(0))
        .unwrap();
    t.write(&[1u8; 100]).unwrap();
    assert_eq!(t.get_write_buffer_size(), buffered + 100);
    assert!(!log.borrow().contains(&Ev::Pause));
    // One byte more: pause_writing() runs before write() returns.
    t.write(&[2u8]).unwrap();
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    // Paired: no second pause.
    t.write(&[3u8; 1000]).unwrap();
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    t.abort();
    spin(&lp, 2);
}

fn producer_chunk(left: usize) -> Vec<u8> {
    let n = left.min(7000);
    pattern(n)
        .into_iter()
        .map(|b| b ^ (left % 256) as u8)
        .collect()
}

#[test]
fn net_64_pause_resume_alternate_with_a_slow_reader_and_data_arrives_intact() {
    let _g = serial();
    const HIGH: usize = 32 * 1024;
    const TOTAL: usize = 2 << 20;
    // A producer that writes until the buffer is above high and continues on resume. Inside
    // its own methods the pause notification is deferred until the method returns, so it
    // watches the buffer size while pumping.
    struct Producer {
        t: Option<Transport>,
        left: usize,
        log: Log,
        lost: Option<loop_core::LoopFuture<()>>,
        paused: bool,
    }
    impl Producer {
        fn pump(&mut self) {
            let t = self.t.clone().unwrap();
            while !self.paused && self.left > 0 && t.get_write_buffer_size() <= HIGH {
                let chunk = producer_chunk(self.left);
                self.left -= chunk.len();
                t.write(&chunk).unwrap();
            }
            if self.left == 0 {
                t.close();
            }
        }
    }
    impl Protocol for Producer {
        fn connection_made(&mut self, t: &Transport) {
            self.t = Some(t.clone());
            t.set_write_buffer_limits(Some(HIGH), Some(HIGH / 4))
                .unwrap();
            self.pump();
        }
        fn pause_writing(&mut self) {
            assert!(!self.paused, "paired");
            self.paused = true;
            self.log.borrow_mut().push(Ev::Pause);
        }
        fn resume_writing(&mut self) {
            assert!(self.paused, "paired");
            self.paused = false;
            self.log.borrow_mut().push(Ev::Resume);
            self.pump();
        }
        fn connection_lost(&mut self, exc: Option<io::Error>) {
            assert!(exc.is_none());
            self.t = None;
            self.lost.take().unwrap().set_result(()).unwrap();
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let log: Log = Rc::default();
    let lost = lp.create_future();
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    small_rcvbuf(&peer);
    Transport::new(
        &lp,
        a,
        Producer {
            t: None,
            left: TOTAL,
            log: log.clone(),
            lost: Some(lost.clone()),
            paused: false,
        },
        TransportOptions::socket(),
    )
    .unwrap();
    let reader = slow_reader(peer, 16 * 1024, Duration::from_micros(300));
    run_until(&lp, 120, lost);
    let got = reader.join().unwrap();
    let mut expected = Vec::new();
    let mut left = TOTAL;
    while left > 0 {
        let c = producer_chunk(left);
        left -= c.len();
        expected.extend(c);
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "data intact and in order");
    let events = log.borrow().clone();
    assert!(
        events.len() >= 4,
        "flow control engaged repeatedly: {events:?}"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e,
            if i % 2 == 0 { &Ev::Pause } else { &Ev::Resume },
            "alternating: {events:?}"
        );
    }
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn net_64_pause_inside_data_received_is_delivered_after_it_returns() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (mut rec, log, _lost) = Rec::new(&lp);
    let l2 = log.clone();
    rec.on_made = Some(Box::new(|t| {
        t.set_write_buffer_limits(Some(1000), None).unwrap()
    }));
    rec.on_data = Some(Box::new(move |t, _| {
        // Crosses the high-water mark inside a protocol method.
        let chunk = vec![0u8; 256 * 1024];
        while t.get_write_buffer_size() <= 1000 {
            t.write(&chunk).unwrap();
        }
        // A nested call that borrows the protocol must not panic either.
        assert!(t.with_protocol(|_: &mut Rec| ()).is_none());
        l2.borrow_mut().push(Ev::Mark("data_received returns"));
    }));
    let (a, mut peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    peer.write_all(b"go").unwrap();
    until(&lp, 30, || log.borrow().contains(&Ev::Pause));
    assert_eq!(
        non_data(&log),
        vec![Ev::Made, Ev::Mark("data_received returns"), Ev::Pause],
        "pause_writing comes right after data_received returned"
    );
    assert!(reports.borrow().is_empty());
    t.abort();
    spin(&lp, 2);
}

#[test]
fn net_64_failing_pause_writing_is_reported_and_not_fatal() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (mut rec, _log, _lost) = Rec::new(&lp);
    rec.on_pause = Some(Box::new(|_| panic!("pause hook")));
    let (a, _peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    spin(&lp, 2);
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    fill_until_buffered(&t);
    t.set_write_buffer_limits(Some(1), Some(0)).unwrap(); // pauses now
    let r = reports.borrow();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].message, "protocol.pause_writing() failed");
    assert!(extra(&r[0], "transport").is_some() && extra(&r[0], "protocol").is_some());
    assert!(!t.is_closing(), "not fatal");
    drop(r);
    t.abort();
    spin(&lp, 2);
}

// Linux only: the exact pipe capacity these steps count on is set with F_SETPIPE_SZ.
#[cfg(target_os = "linux")]
/// A write pipe whose kernel buffer holds exactly one capacity `C` (read back from the
/// kernel): each time the test empties it, the transport's next write takes exactly `C` bytes,
/// so its buffer drains in known steps.
fn small_write_pipe() -> (rustix::fd::OwnedFd, rustix::fd::OwnedFd, usize) {
    let (r, w) = rustix::pipe::pipe().unwrap();
    rustix::pipe::fcntl_setpipe_size(&w, 4096).unwrap();
    let cap = rustix::pipe::fcntl_getpipe_size(&w).unwrap();
    rustix::io::ioctl_fionbio(&r, true).unwrap();
    (r, w, cap)
}

// Linux only: the exact pipe capacity these steps count on is set with F_SETPIPE_SZ.
#[cfg(target_os = "linux")]
/// Reads everything the pipe holds (non-blocking); returns the byte count.
fn empty_pipe(r: &rustix::fd::OwnedFd) -> usize {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        match rustix::io::read(r, &mut buf) {
            Ok(0) | Err(rustix::io::Errno::AGAIN) => return n,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

// Linux only: the exact pipe capacity these steps count on is set with F_SETPIPE_SZ.
#[cfg(target_os = "linux")]
/// Empties the pipe and runs the loop until the transport wrote again; returns the new size.
fn drain_one_step(lp: &EventLoop, t: &Transport, r: &rustix::fd::OwnedFd) -> usize {
    let before = t.get_write_buffer_size();
    assert!(empty_pipe(r) > 0, "the pipe was full");
    until(lp, 30, || t.get_write_buffer_size() < before);
    t.get_write_buffer_size()
}

// Linux only: the exact pipe capacity these steps count on is set with F_SETPIPE_SZ.
#[cfg(target_os = "linux")]
#[test]
fn net_64_resume_writing_when_the_buffer_drains_to_exactly_low() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (r, w, cap) = small_write_pipe();
    let t = Transport::new(
        &lp,
        w,
        rec,
        TransportOptions::write_pipe().write_buffer_limits(Some(usize::MAX / 4), None),
    )
    .unwrap();
    spin(&lp, 2);
    // The first `cap` bytes go straight into the pipe; 3 × cap stay buffered.
    t.write(&pattern(4 * cap)).unwrap();
    assert_eq!(t.get_write_buffer_size(), 3 * cap);
    // high = 2 cap (3 cap is strictly above: pause), low = cap.
    t.set_write_buffer_limits(Some(2 * cap), Some(cap)).unwrap();
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    // One step: 2 × cap buffered, above low: still paused.
    assert_eq!(drain_one_step(&lp, &t, &r), 2 * cap);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    // Next step: exactly low: resume_writing() now, not one step later.
    assert_eq!(drain_one_step(&lp, &t, &r), cap);
    assert_eq!(
        non_data(&log),
        vec![Ev::Made, Ev::Pause, Ev::Resume],
        "resume_writing when the buffer is at (not below) low"
    );
    assert_eq!(drain_one_step(&lp, &t, &r), 0);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause, Ev::Resume]);
    t.abort();
    spin(&lp, 2);
}

// Linux only: the exact pipe capacity these steps count on is set with F_SETPIPE_SZ.
#[cfg(target_os = "linux")]
#[test]
fn net_64_resume_writing_with_low_zero_once_the_buffer_is_empty() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (r, w, cap) = small_write_pipe();
    let t = Transport::new(
        &lp,
        w,
        rec,
        TransportOptions::write_pipe().write_buffer_limits(Some(cap), Some(0)),
    )
    .unwrap();
    spin(&lp, 2);
    assert_eq!(t.get_write_buffer_limits(), (0, cap));
    t.write(&pattern(3 * cap)).unwrap();
    assert_eq!(t.get_write_buffer_size(), 2 * cap);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    assert_eq!(drain_one_step(&lp, &t, &r), cap);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause], "cap > 0 = low");
    assert_eq!(drain_one_step(&lp, &t, &r), 0);
    assert_eq!(
        non_data(&log),
        vec![Ev::Made, Ev::Pause, Ev::Resume],
        "an empty buffer is at low = 0"
    );
    t.abort();
    spin(&lp, 2);
}

// Linux only: the exact pipe capacity these steps count on is set with F_SETPIPE_SZ.
#[cfg(target_os = "linux")]
#[test]
fn net_64_failing_resume_writing_is_reported_once_and_not_fatal() {
    let _g = serial();
    /// Pauses like any protocol; its `resume_writing` panics.
    struct BadResume {
        log: Log,
    }
    impl Protocol for BadResume {
        fn pause_writing(&mut self) {
            self.log.borrow_mut().push(Ev::Pause);
        }
        fn resume_writing(&mut self) {
            self.log.borrow_mut().push(Ev::Resume);
            panic!("resume hook");
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let log: Log = Rc::default();
    let (r, w, cap) = small_write_pipe();
    let t = Transport::new(
        &lp,
        w,
        BadResume { log: log.clone() },
        TransportOptions::write_pipe().write_buffer_limits(Some(cap), Some(0)),
    )
    .unwrap();
    spin(&lp, 2);
    t.write(&pattern(3 * cap)).unwrap();
    assert_eq!(*log.borrow(), vec![Ev::Pause]);
    drain_one_step(&lp, &t, &r);
    assert_eq!(drain_one_step(&lp, &t, &r), 0);
    assert_eq!(*log.borrow(), vec![Ev::Pause, Ev::Resume]);
    spin(&lp, 3);
    {
        let r = reports.borrow();
        assert_eq!(r.len(), 1, "reported exactly once: {r:?}");
        assert_eq!(r[0].message, "protocol.resume_writing() failed");
        assert!(extra(&r[0], "transport").is_some() && extra(&r[0], "protocol").is_some());
    }
    // Not fatal: the transport still writes, and flow control goes on (a second cycle).
    assert!(!t.is_closing());
    empty_pipe(&r);
    t.write(&pattern(3 * cap)).unwrap();
    assert_eq!(*log.borrow(), vec![Ev::Pause, Ev::Resume, Ev::Pause]);
    drain_one_step(&lp, &t, &r);
    assert_eq!(drain_one_step(&lp, &t, &r), 0);
    assert_eq!(
        *log.borrow(),
        vec![Ev::Pause, Ev::Resume, Ev::Pause, Ev::Resume]
    );
    spin(&lp, 3);
    assert_eq!(reports.borrow().len(), 2, "one report per failing call");
    t.abort();
    spin(&lp, 2);
}

// ---------------------------------------------------------------------------------------------
// NET-65

#[test]
fn net_65_set_write_buffer_limits_rules() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, _peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.set_write_buffer_limits(Some(1000), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (250, 1000));
    t.set_write_buffer_limits(None, Some(100)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (100, 400));
    t.set_write_buffer_limits(None, None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    let e = t.set_write_buffer_limits(Some(10), Some(20)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert!(
        e.to_string()
            .contains("high (10) must be >= low (20) must be >= 0"),
        "{e}"
    );
    assert_eq!(
        t.get_write_buffer_limits(),
        (16 * 1024, 64 * 1024),
        "unchanged after an error"
    );

    spin(&lp, 2);
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let n = fill_until_buffered(&t);
    assert_eq!(t.get_write_buffer_size(), n);
    assert!(!log.borrow().contains(&Ev::Pause));
    t.set_write_buffer_limits(Some(n - 1), None).unwrap(); // below the current size: pause now
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    t.abort();
    spin(&lp, 2);
}

#[test]
fn net_65_high_zero_pauses_on_any_buffered_byte() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, _peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(
        &lp,
        a,
        rec,
        TransportOptions::socket().write_buffer_limits(Some(0), None),
    )
    .unwrap();
    assert_eq!(t.get_write_buffer_limits(), (0, 0));
    spin(&lp, 2);
    let chunk = vec![0u8; 4096];
    while t.get_write_buffer_size() == 0 {
        t.write(&chunk).unwrap();
    }
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Pause]);
    assert!(
        TransportOptions::socket()
            .write_buffer_limits(Some(1), Some(2))
            .kind()
            == FdKind::Socket
    );
    let (b, _pb) = UnixStream::pair().unwrap();
    let (rec2, _, _) = Rec::new(&lp);
    let bad = Transport::new(
        &lp,
        b,
        rec2,
        TransportOptions::socket().write_buffer_limits(Some(1), Some(2)),
    );
    assert!(matches!(bad, Err(Error::InvalidArgument(_))));
    t.abort();
    spin(&lp, 2);
}

/// NET-55: write interest is registered only while data is buffered. An idle socket transport
/// and a write pipe whose peer sends data wake the loop for nothing: no I/O event at all.
#[test]
fn net_55_idle_transports_cause_no_io_events() {
    // Linux's epoll only: it reports a write pipe's reader going away without read interest.
    // The `polling` backend (kqueue) has no hang-up report, so a write pipe there watches for
    // readability, and what a socket peer sends is an event for it.
    if !loop_core::internal::HANGUP_REPORTED {
        return;
    }
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, _lost) = Rec::new(&lp);
    let (t, _peer) = socket_transport(&lp, rec);
    let (a, mut b) = UnixStream::pair().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let w = Transport::new(&lp, a, rec, TransportOptions::write_pipe()).unwrap();
    spin(&lp, 3);
    // The write pipe never reads: what its peer sends is no event for it.
    b.write_all(b"not for a write pipe").unwrap();
    spin(&lp, 3);
    assert_eq!(
        lp.stats().io_events,
        0,
        "an idle transport caused I/O events"
    );
    assert_eq!(non_data(&log), vec![Ev::Made]);
    assert!(data_of(&log).is_empty());
    // It still notices its reader going away (PIPE-09).
    drop(b);
    run_until(&lp, 10, lost);
    t.abort();
    spin(&lp, 2);
    drop(w);
    lp.close().unwrap();
}
