//! NET-50 … NET-67: the fd stream transport and the protocol contract, on real sockets and
//! pipes.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use loop_core::{Error, EventLoop};
use loop_transport::{
    Addr, BufferedProtocol, DatagramProtocol, DatagramTransport, Extra, FdKind, Protocol,
    StreamProtocol, Transport, TransportOptions, DEFAULT_MAX_READ,
};

fn socket_transport(lp: &EventLoop, rec: Rec) -> (Transport, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    let t = Transport::new(lp, a, rec, TransportOptions::socket()).unwrap();
    (t, b)
}

// ---------------------------------------------------------------------------------------------
// NET-50

#[test]
fn net_50_call_sequence_made_data_eof_lost_exactly_once() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let (_t, mut peer) = socket_transport(&lp, rec);
    peer.write_all(b"one").unwrap();
    spin(&lp, 3);
    peer.write_all(b"two").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    run_until(&lp, 30, lost);
    spin(&lp, 5);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert_eq!(log.borrow()[0], Ev::Made);
    assert_eq!(data_of(&log), b"onetwo");
}

#[test]
fn net_50_every_method_has_a_noop_default() {
    let _g = serial();
    struct Bare;
    impl Protocol for Bare {}
    impl DatagramProtocol for Bare {}
    struct BareBuf(Vec<u8>);
    impl BufferedProtocol for BareBuf {
        fn get_buffer(&mut self, _: usize) -> &mut [u8] {
            &mut self.0
        }
    }
    let mut b = Bare;
    Protocol::data_received(&mut b, b"x");
    assert!(
        !Protocol::eof_received(&mut b),
        "the default eof_received is falsy"
    );
    Protocol::pause_writing(&mut b);
    Protocol::resume_writing(&mut b);
    Protocol::connection_lost(&mut b, None);
    let dlp = EventLoop::new().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dt = DatagramTransport::new(&dlp, udp, Bare).unwrap();
    DatagramProtocol::connection_made(&mut b, &dt);
    dt.abort();
    dlp.close().unwrap();
    let mut bb = BareBuf(vec![0; 4]);
    BufferedProtocol::buffer_updated(&mut bb, 1);
    assert!(!BufferedProtocol::eof_received(&mut bb));
    DatagramProtocol::datagram_received(&mut b, b"d", &Addr::Unnamed);
    DatagramProtocol::error_received(&mut b, io::Error::from(io::ErrorKind::Other));

    // A protocol with nothing but defaults: EOF closes the transport (falsy eof_received).
    let lp = EventLoop::new().unwrap();
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = Transport::new(&lp, a, Bare, TransportOptions::socket()).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    until(&lp, 30, || t.fileno().is_none());
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap(); // our side was closed: EOF
    assert!(t.is_closing());
}

// ---------------------------------------------------------------------------------------------
// NET-51

#[test]
fn net_51_connection_made_is_deferred_and_reading_starts_after_it() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (a, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(b"early").unwrap();
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    assert!(
        log.borrow().is_empty(),
        "connection_made must not run inside Transport::new"
    );
    until(&lp, 30, || data_of(&log) == b"early");
    assert_eq!(log.borrow()[0], Ev::Made);
    t.abort();
    spin(&lp, 2);
}

#[test]
fn net_51_pause_reading_in_connection_made_defers_reading() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (mut rec, log, _lost) = Rec::new(&lp);
    rec.on_made = Some(Box::new(|t| t.pause_reading()));
    let (a, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(b"waiting").unwrap();
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    spin(&lp, 20);
    assert_eq!(*log.borrow(), vec![Ev::Made]);
    assert!(!t.is_reading());
    t.resume_reading();
    until(&lp, 30, || data_of(&log) == b"waiting");
    t.abort();
    spin(&lp, 2);
}

// ---------------------------------------------------------------------------------------------
// NET-52

#[test]
fn net_52_eof_falsy_closes_the_transport() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let (t, mut peer) = socket_transport(&lp, rec);
    peer.write_all(b"bye").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    run_until(&lp, 30, lost);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(t.is_closing());
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn net_52_eof_truthy_keeps_the_write_side_open() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (mut rec, log, lost) = Rec::new(&lp);
    rec.keep_open = true;
    let (t, mut peer) = socket_transport(&lp, rec);
    peer.shutdown(Shutdown::Write).unwrap();
    until(&lp, 30, || log.borrow().contains(&Ev::Eof));
    spin(&lp, 5);
    assert!(
        !t.is_closing(),
        "a truthy eof_received keeps the transport open"
    );
    assert!(!t.is_reading(), "but reading stopped");
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Eof]);
    t.write(b"still writable").unwrap();
    t.close();
    run_until(&lp, 30, lost);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"still writable");
}

#[test]
fn net_52_eof_with_buffered_protocol() {
    let _g = serial();
    struct B {
        buf: Vec<u8>,
        got: Rc<RefCell<Vec<u8>>>,
        eof: Rc<Cell<u32>>,
        keep: bool,
    }
    impl BufferedProtocol for B {
        fn get_buffer(&mut self, _: usize) -> &mut [u8] {
            &mut self.buf
        }
        fn buffer_updated(&mut self, n: usize) {
            self.got.borrow_mut().extend_from_slice(&self.buf[..n]);
        }
        fn eof_received(&mut self) -> bool {
            self.eof.set(self.eof.get() + 1);
            self.keep
        }
    }
    for keep in [false, true] {
        let lp = EventLoop::new().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let eof = Rc::new(Cell::new(0));
        let (a, mut peer) = UnixStream::pair().unwrap();
        let p = B {
            buf: vec![0; 16],
            got: got.clone(),
            eof: eof.clone(),
            keep,
        };
        let t = Transport::new(
            &lp,
            a,
            StreamProtocol::buffered(p),
            TransportOptions::socket(),
        )
        .unwrap();
        peer.write_all(b"buffered bytes then eof").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        until(&lp, 30, || eof.get() == 1);
        spin(&lp, 3);
        assert_eq!(&*got.borrow(), b"buffered bytes then eof");
        assert_eq!(t.is_closing(), !keep);
        t.abort();
        spin(&lp, 2);
    }
}

// ---------------------------------------------------------------------------------------------
// NET-53

fn assert_fatal_report(reports: &[loop_core::ExceptionContext], method: &str) {
    assert_eq!(reports.len(), 1, "exactly one report: {reports:?}");
    let r = &reports[0];
    assert_eq!(
        r.message,
        format!("Fatal error: protocol.{method}() call failed.")
    );
    assert!(extra(r, "transport").unwrap().starts_with("<Transport fd="));
    assert!(extra(r, "protocol").is_some());
    assert!(matches!(&r.exception, Some(Error::Exception(e)) if e.is_panic()));
}

#[test]
fn net_53_panic_in_data_received_is_reported_then_connection_lost_and_loop_serves_others() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (mut rec, log, lost) = Rec::new(&lp);
    rec.on_data = Some(Box::new(|_, _| panic!("bad protocol")));
    let (_t, mut peer) = socket_transport(&lp, rec);
    // Another connection, an echo, must keep working.
    let (mut echo, echo_log, echo_lost) = Rec::new(&lp);
    echo.on_data = Some(Box::new(|t, d| t.write(d).unwrap()));
    let (echo_t, mut echo_peer) = socket_transport(&lp, echo);

    peer.write_all(b"boom").unwrap();
    run_until(&lp, 30, lost);
    spin(&lp, 3);
    assert_fatal_report(&reports.borrow(), "data_received");
    assert_eq!(
        log.borrow().last().unwrap(),
        &Ev::Lost(Some((io::ErrorKind::Other, None))),
        "connection_lost gets the panic"
    );
    assert_eq!(
        log.borrow()
            .iter()
            .filter(|e| matches!(e, Ev::Lost(_)))
            .count(),
        1
    );

    echo_peer.write_all(b"still served").unwrap();
    let mut buf = [0u8; 12];
    until(&lp, 30, || data_of(&echo_log).len() == 12);
    echo_peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still served");
    echo_t.close();
    run_until(&lp, 30, echo_lost);
    assert_eq!(reports.borrow().len(), 1);
}

#[test]
fn net_53_panic_in_eof_received_is_fatal() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (mut rec, log, lost) = Rec::new(&lp);
    rec.on_eof = Some(Box::new(|_| panic!("eof hook")));
    let (_t, peer) = socket_transport(&lp, rec);
    peer.shutdown(Shutdown::Write).unwrap();
    run_until(&lp, 30, lost);
    assert_fatal_report(&reports.borrow(), "eof_received");
    assert!(matches!(log.borrow().last(), Some(Ev::Lost(Some(_)))));
    let err = rec_error_is_panic(&log);
    assert!(err);
}

fn rec_error_is_panic(log: &Log) -> bool {
    matches!(
        log.borrow().last(),
        Some(Ev::Lost(Some((io::ErrorKind::Other, None))))
    )
}

struct PanicBuf {
    buf: Vec<u8>,
    in_get: bool,
    in_updated: bool,
    lost: loop_core::LoopFuture<()>,
    lost_err: Rc<RefCell<Option<io::Error>>>,
}

impl BufferedProtocol for PanicBuf {
    fn get_buffer(&mut self, _: usize) -> &mut [u8] {
        if self.in_get {
            panic!("get_buffer fails");
        }
        &mut self.buf
    }
    fn buffer_updated(&mut self, _n: usize) {
        if self.in_updated {
            panic!("buffer_updated fails");
        }
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        *self.lost_err.borrow_mut() = exc;
        self.lost.set_result(()).unwrap();
    }
}

#[test]
fn net_53_panic_in_get_buffer_or_buffer_updated_is_fatal() {
    let _g = serial();
    for (in_get, method) in [(true, "get_buffer"), (false, "buffer_updated")] {
        let lp = EventLoop::new().unwrap();
        let reports = capture_reports(&lp);
        let lost = lp.create_future();
        let lost_err = Rc::new(RefCell::new(None));
        let p = PanicBuf {
            buf: vec![0; 64],
            in_get,
            in_updated: !in_get,
            lost: lost.clone(),
            lost_err: lost_err.clone(),
        };
        let (a, mut peer) = UnixStream::pair().unwrap();
        Transport::new(
            &lp,
            a,
            StreamProtocol::buffered(p),
            TransportOptions::socket(),
        )
        .unwrap();
        peer.write_all(b"data").unwrap();
        run_until(&lp, 30, lost);
        assert_fatal_report(&reports.borrow(), method);
        let e = lost_err
            .borrow_mut()
            .take()
            .expect("connection_lost(Some(panic))");
        let inner = e.get_ref().unwrap().downcast_ref::<Error>().unwrap();
        assert!(matches!(inner, Error::Exception(x) if x.is_panic()));
    }
}

// ---------------------------------------------------------------------------------------------
// NET-54

#[test]
fn net_54_peer_reset_gives_connection_lost_econnreset_once_without_report() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (ours, theirs) = tcp_pair();
    let (rec, log, lost) = Rec::new(&lp);
    let lost_err = rec.lost_error.clone();
    Transport::new(&lp, ours, rec, TransportOptions::socket()).unwrap();
    spin(&lp, 3);
    rustix::net::sockopt::set_socket_linger(&theirs, Some(Duration::ZERO)).unwrap();
    drop(theirs); // RST
    run_until(&lp, 30, lost);
    spin(&lp, 3);
    let lost_events: Vec<_> = log
        .borrow()
        .iter()
        .filter(|e| matches!(e, Ev::Lost(_)))
        .cloned()
        .collect();
    assert_eq!(
        lost_events,
        vec![Ev::Lost(Some((
            io::ErrorKind::ConnectionReset,
            Some(rustix::io::Errno::CONNRESET.raw_os_error())
        )))]
    );
    assert!(
        lost_err.borrow().as_ref().unwrap().raw_os_error().is_some(),
        "the OS error is kept"
    );
    assert!(
        reports.borrow().is_empty(),
        "OS errors are not sent to the exception handler"
    );
}

#[test]
fn net_54_would_block_reads_are_ignored() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (t, mut peer) = socket_transport(&lp, rec);
    // A spurious readiness with nothing to read: the read returns WouldBlock, nothing happens.
    spin(&lp, 3);
    t.pause_reading();
    t.resume_reading(); // queues a read retry on an empty socket
    spin(&lp, 5);
    assert_eq!(*log.borrow(), vec![Ev::Made]);
    assert!(!t.is_closing());
    peer.write_all(b"x").unwrap();
    until(&lp, 30, || data_of(&log) == b"x");
    t.abort();
    spin(&lp, 2);
}

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
// NET-60

#[test]
fn net_60_write_eof_shuts_down_now_when_empty_and_keeps_reading() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (t, mut peer) = socket_transport(&lp, rec);
    assert!(t.can_write_eof());
    t.write(b"last words").unwrap();
    t.write_eof().unwrap();
    t.write_eof().unwrap(); // repeat: no-op
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap(); // EOF arrived without running the loop
    assert_eq!(got, b"last words");
    peer.write_all(b"reply").unwrap(); // half-closed: we still read
    until(&lp, 30, || data_of(&log) == b"reply");
    assert!(!t.is_closing());
    t.abort();
    spin(&lp, 2);
}

#[test]
fn net_60_write_eof_waits_for_the_buffer_to_drain() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, _lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let data = pattern(1 << 20);
    t.write(&data).unwrap();
    assert!(t.get_write_buffer_size() > 0);
    t.write_eof().unwrap();
    let reader = slow_reader(peer, 8192, Duration::ZERO);
    let done = Rc::new(Cell::new(false));
    until(&lp, 60, || {
        if reader.is_finished() {
            done.set(true);
        }
        done.get()
    });
    assert_eq!(reader.join().unwrap(), data, "all data, then EOF");
    t.abort();
    spin(&lp, 2);
}

#[test]
fn net_60_write_eof_on_a_closing_transport_is_a_noop() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, lost) = Rec::new(&lp);
    let (t, _peer) = socket_transport(&lp, rec);
    t.close();
    t.write_eof().unwrap();
    // Not turned into an eof request: writes are dropped (closing), not refused.
    assert!(t.write(b"x").is_ok());
    run_until(&lp, 30, lost);
}

// ---------------------------------------------------------------------------------------------
// NET-61

#[test]
fn net_61_close_is_immediate_for_is_closing_and_deferred_for_connection_lost() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let (t, mut peer) = socket_transport(&lp, rec);
    spin(&lp, 2);
    t.close();
    assert!(t.is_closing());
    assert!(!t.is_reading());
    assert_eq!(
        *log.borrow(),
        vec![Ev::Made],
        "connection_lost is never called inside close()"
    );
    t.close();
    run_until(&lp, 30, lost);
    spin(&lp, 3);
    t.close();
    spin(&lp, 2);
    assert_eq!(*log.borrow(), vec![Ev::Made, Ev::Lost(None)]);
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
}

#[test]
fn net_61_close_flushes_the_buffer_before_connection_lost() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket()).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let data = pattern(1 << 20);
    t.write(&data).unwrap();
    t.close();
    spin(&lp, 10);
    assert!(
        !log.borrow().iter().any(|e| matches!(e, Ev::Lost(_))),
        "not before the flush"
    );
    let reader = slow_reader(peer, 8192, Duration::ZERO);
    run_until(&lp, 60, lost);
    assert_eq!(reader.join().unwrap(), data);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Lost(None)]);
}

// ---------------------------------------------------------------------------------------------
// NET-62

struct Dropped {
    dropped: Rc<Cell<bool>>,
    lost: Rc<Cell<u32>>,
}

impl Protocol for Dropped {
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.lost.set(self.lost.get() + 1);
        // Checked by the test through the exception handler's reports.
        assert!(exc.is_none());
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        self.dropped.set(true);
    }
}

#[test]
fn net_62_abort_discards_closes_the_fd_and_drops_protocol_and_loop() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let baseline = fd_count();
    let (a, peer) = UnixStream::pair().unwrap();
    small_sndbuf(&a);
    let dropped = Rc::new(Cell::new(false));
    let lost = Rc::new(Cell::new(0));
    let hook_calls = Rc::new(Cell::new(0));
    let h = hook_calls.clone();
    let t = Transport::new(
        &lp,
        a,
        Dropped {
            dropped: dropped.clone(),
            lost: lost.clone(),
        },
        TransportOptions::socket()
            .write_buffer_limits(Some(usize::MAX / 4), None)
            .on_connection_lost(move || h.set(h.get() + 1)),
    )
    .unwrap();
    spin(&lp, 2);
    let sent = fill_until_buffered(&t);
    assert!(sent > 0);
    t.abort();
    assert!(t.is_closing());
    assert_eq!(t.get_write_buffer_size(), 0, "buffered data is discarded");
    assert_eq!(lost.get(), 0, "connection_lost is scheduled, not called");
    until(&lp, 30, || lost.get() == 1);
    spin(&lp, 3);
    assert_eq!(lost.get(), 1);
    assert!(
        dropped.get(),
        "the protocol is dropped after connection_lost"
    );
    assert!(t.get_loop().is_none(), "the loop reference is dropped");
    assert_eq!(t.fileno(), None);
    assert_eq!(hook_calls.get(), 1);
    errs.assert_none();
    drop(peer);
    assert_eq!(fd_count(), baseline, "both socket fds are closed");
}

// ---------------------------------------------------------------------------------------------
// NET-63

#[test]
fn net_63_pause_resume_reading_idempotent_and_data_arrives_after_resume() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let (t, mut peer) = socket_transport(&lp, rec);
    spin(&lp, 2);
    assert!(t.is_reading());
    t.pause_reading();
    t.pause_reading();
    assert!(!t.is_reading());
    let data = pattern(100_000);
    let mut p2 = peer.try_clone().unwrap();
    let d2 = data.clone();
    let w = std::thread::spawn(move || {
        p2.write_all(&d2).unwrap();
        p2.shutdown(Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    spin(&lp, 20);
    assert!(
        data_of(&log).is_empty(),
        "nothing is delivered while paused"
    );
    t.resume_reading();
    t.resume_reading();
    assert!(t.is_reading());
    // Edge-triggered fd: the data (and the EOF) that arrived while paused must still come.
    run_until(&lp, 60, lost);
    w.join().unwrap();
    assert_eq!(data_of(&log), data);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    t.resume_reading(); // on a closed transport: nothing
    assert!(!t.is_reading());
    t.pause_reading();
    let _ = peer.read(&mut [0u8; 1]);
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

// ---------------------------------------------------------------------------------------------
// NET-66

#[test]
fn net_66_extra_info_for_tcp_sockets() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (client, server) = tcp_pair();
    let local = client.local_addr().unwrap();
    let remote = client.peer_addr().unwrap();
    let raw = client.as_raw_fd();
    let (rec, _log, lost) = Rec::new(&lp);
    let t = Transport::new(
        &lp,
        client,
        rec,
        TransportOptions::socket().extra("answer", Rc::new(42u32)),
    )
    .unwrap();
    assert_eq!(
        t.get_extra_info(Extra::Peername).unwrap().as_addr(),
        Some(&Addr::Inet(remote))
    );
    assert_eq!(
        t.get_extra_info(Extra::Sockname).unwrap().as_addr(),
        Some(&Addr::Inet(local))
    );
    assert_eq!(t.get_extra_info(Extra::Socket).unwrap().as_fd(), Some(raw));
    assert!(t.get_extra_info(Extra::Pipe).is_none());
    assert_eq!(
        t.get_extra_info(Extra::Custom("answer"))
            .unwrap()
            .downcast_ref::<u32>(),
        Some(&42)
    );
    assert!(t.get_extra_info(Extra::Custom("unknown")).is_none());
    // TCP_NODELAY is set on TCP transports, as asyncio does.
    assert!(t
        .with_fd(|fd| rustix::net::sockopt::tcp_nodelay(fd).unwrap())
        .unwrap());
    t.close();
    run_until(&lp, 30, lost);
    assert!(
        t.get_extra_info(Extra::Socket).is_none(),
        "no fd after close"
    );
    assert_eq!(t.peername().unwrap(), Addr::Inet(remote), "addresses stay");
    drop(server);
}

#[test]
fn net_66_extra_info_peername_override_and_pipes() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let accepted: std::net::SocketAddr = "192.0.2.7:4242".parse().unwrap();
    let (rec, _log, _lost) = Rec::new(&lp);
    let t = Transport::new(
        &lp,
        a,
        rec,
        TransportOptions::socket().peername(accepted.into()),
    )
    .unwrap();
    assert_eq!(t.peername(), Some(Addr::Inet(accepted)));
    assert_eq!(t.sockname(), Some(Addr::Unnamed));
    t.abort();

    let (r, w) = rustix::pipe::pipe().unwrap();
    let raw = r.as_raw_fd();
    let (rec, _log, _lost) = Rec::new(&lp);
    let p = Transport::new(&lp, r, rec, TransportOptions::read_pipe()).unwrap();
    assert_eq!(p.kind(), FdKind::ReadPipe);
    assert_eq!(p.get_extra_info(Extra::Pipe).unwrap().as_fd(), Some(raw));
    assert!(p.get_extra_info(Extra::Socket).is_none());
    assert!(p.get_extra_info(Extra::Peername).is_none());
    assert!(!p.can_write_eof());
    assert!(matches!(p.write(b"x"), Err(Error::InvalidState(_))));
    p.abort();
    drop(w);
    spin(&lp, 3);
}

// ---------------------------------------------------------------------------------------------
// NET-67

struct Zero {
    hints: Rc<RefCell<Vec<usize>>>,
    got: Rc<RefCell<Vec<u8>>>,
    buf: Vec<u8>,
    switch_after: Option<usize>,
    back: Option<Rc<RefCell<Vec<u8>>>>,
    t: Option<Transport>,
}

impl BufferedProtocol for Zero {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }
    fn get_buffer(&mut self, size_hint: usize) -> &mut [u8] {
        self.hints.borrow_mut().push(size_hint);
        &mut self.buf
    }
    fn buffer_updated(&mut self, n: usize) {
        self.got.borrow_mut().extend_from_slice(&self.buf[..n]);
        if let Some(limit) = self.switch_after {
            if self.got.borrow().len() >= limit {
                // Back to a plain protocol that appends to the same sink.
                let sink = self.back.take().unwrap();
                self.t.as_ref().unwrap().set_protocol(Sink(sink));
                self.switch_after = None;
            }
        }
    }
}

struct Sink(Rc<RefCell<Vec<u8>>>);

impl Protocol for Sink {
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

#[test]
fn net_67_buffered_protocol_gets_buffer_then_buffer_updated() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let hints = Rc::new(RefCell::new(Vec::new()));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = Transport::new(
        &lp,
        a,
        StreamProtocol::buffered(Zero {
            hints: hints.clone(),
            got: got.clone(),
            buf: vec![0; 1000],
            switch_after: None,
            back: None,
            t: None,
        }),
        TransportOptions::socket(),
    )
    .unwrap();
    let data = pattern(300_000);
    let d2 = data.clone();
    let w = std::thread::spawn(move || peer.write_all(&d2).map(|_| peer));
    until(&lp, 60, || got.borrow().len() == data.len());
    assert_eq!(*got.borrow(), data);
    assert!(
        hints.borrow().iter().all(|&h| h == DEFAULT_MAX_READ),
        "size hint is the max read size"
    );
    t.abort();
    spin(&lp, 2);
    drop(w.join().unwrap());
}

#[test]
fn net_67_empty_buffer_is_fatal() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    struct Empty(Rc<RefCell<Option<io::Error>>>, loop_core::LoopFuture<()>);
    impl BufferedProtocol for Empty {
        fn get_buffer(&mut self, _: usize) -> &mut [u8] {
            &mut []
        }
        fn connection_lost(&mut self, exc: Option<io::Error>) {
            *self.0.borrow_mut() = exc;
            self.1.set_result(()).unwrap();
        }
    }
    let err = Rc::new(RefCell::new(None));
    let lost = lp.create_future();
    let (a, mut peer) = UnixStream::pair().unwrap();
    Transport::new(
        &lp,
        a,
        StreamProtocol::buffered(Empty(err.clone(), lost.clone())),
        TransportOptions::socket(),
    )
    .unwrap();
    peer.write_all(b"x").unwrap();
    run_until(&lp, 30, lost);
    let r = reports.borrow();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].message,
        "Fatal error: protocol.get_buffer() call failed."
    );
    assert!(r[0]
        .exception
        .as_ref()
        .unwrap()
        .to_string()
        .contains("get_buffer() returned an empty buffer"));
    assert!(err
        .borrow()
        .as_ref()
        .unwrap()
        .to_string()
        .contains("get_buffer() returned an empty buffer"));
}

#[test]
fn net_67_set_protocol_switches_between_plain_and_buffered() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let sink = Rc::new(RefCell::new(Vec::new()));
    struct First {
        sink: Rc<RefCell<Vec<u8>>>,
        t: Option<Transport>,
        hints: Rc<RefCell<Vec<usize>>>,
    }
    impl Protocol for First {
        fn connection_made(&mut self, t: &Transport) {
            self.t = Some(t.clone());
        }
        fn data_received(&mut self, data: &[u8]) {
            self.sink.borrow_mut().extend_from_slice(data);
            if self.sink.borrow().len() >= 10_000 {
                let t = self.t.take().unwrap();
                // Switch to a buffered protocol from inside data_received.
                t.set_protocol(StreamProtocol::buffered(Zero {
                    hints: self.hints.clone(),
                    got: self.sink.clone(),
                    buf: vec![0; 777],
                    switch_after: Some(150_000),
                    back: Some(self.sink.clone()),
                    t: Some(t.clone()),
                }));
                assert!(
                    t.protocol_type_name().unwrap().ends_with("First"),
                    "switch happens on return"
                );
            }
        }
    }
    let hints = Rc::new(RefCell::new(Vec::new()));
    let (a, mut peer) = UnixStream::pair().unwrap();
    let t = Transport::new(
        &lp,
        a,
        First {
            sink: sink.clone(),
            t: None,
            hints: hints.clone(),
        },
        TransportOptions::socket(),
    )
    .unwrap();
    let data = pattern(400_000);
    let d2 = data.clone();
    let w = std::thread::spawn(move || {
        for c in d2.chunks(5000) {
            peer.write_all(c).unwrap();
        }
        peer
    });
    until(&lp, 60, || sink.borrow().len() == data.len());
    errs.assert_none();
    assert!(
        *sink.borrow() == data,
        "every byte once, in order, across both switches"
    );
    assert!(!hints.borrow().is_empty(), "the buffered protocol was used");
    assert!(
        t.protocol_type_name().unwrap().ends_with("Sink"),
        "and switched back to a plain one"
    );
    t.abort();
    spin(&lp, 2);
    drop(w.join().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Reads: size and fds.

#[test]
fn net_74_reads_are_at_most_256_kib() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    let (_t, peer) = socket_transport(&lp, rec);
    let data = pattern(3 << 20);
    let d2 = data.clone();
    let w = std::thread::spawn(move || {
        let mut p = peer;
        p.write_all(&d2).unwrap();
    });
    run_until(&lp, 60, lost);
    w.join().unwrap();
    assert_eq!(data_of(&log), data);
    assert!(log
        .borrow()
        .iter()
        .all(|e| !matches!(e, Ev::Data(d) if d.len() > DEFAULT_MAX_READ)));
}

#[test]
fn loop_close_closes_fds_of_open_transports() {
    let _g = serial();
    let before = fd_count();
    let lp = EventLoop::new().unwrap();
    let (rec, log, _lost) = Rec::new(&lp);
    let (t, peer) = socket_transport(&lp, rec);
    spin(&lp, 2);
    drop(peer);
    lp.close().unwrap();
    assert!(t.fileno().is_none());
    drop(t);
    drop(lp);
    assert_eq!(
        fd_count(),
        before,
        "epoll, eventfd and the transport's socket are closed"
    );
    assert_eq!(log.borrow()[0], Ev::Made);
}

#[test]
fn transport_new_rejects_wrong_fds() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let (rec, _, _) = Rec::new(&lp);
    let e = Transport::new(&lp, r, rec, TransportOptions::socket()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (rec, _, _) = Rec::new(&lp);
    let e = Transport::new(&lp, udp, rec, TransportOptions::socket()).unwrap_err();
    assert!(e.to_string().contains("stream socket"), "{e}");
    let (rec, _, _) = Rec::new(&lp);
    let e =
        Transport::new(&lp, w, rec, TransportOptions::write_pipe().max_read_size(0)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert_eq!(fd_count(), before, "rejected fds are closed");
    lp.close().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let (rec, _, _) = Rec::new(&lp);
    assert!(matches!(
        Transport::new(&lp, a, rec, TransportOptions::socket()),
        Err(Error::Closed)
    ));
}

/// NET-66: extra-info values print what they hold.
#[test]
fn net_66_extra_info_values_print_what_they_hold() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let raw = a.as_raw_fd();
    let accepted: std::net::SocketAddr = "192.0.2.7:4242".parse().unwrap();
    let (rec, _log, _lost) = Rec::new(&lp);
    let t = Transport::new(
        &lp,
        a,
        rec,
        TransportOptions::socket().peername(accepted.into()),
    )
    .unwrap();
    let peer = t.get_extra_info(Extra::Peername).unwrap();
    assert_eq!(
        format!("{peer:?}"),
        format!("Addr({:?})", Addr::Inet(accepted))
    );
    let sock = t.get_extra_info(Extra::Socket).unwrap();
    assert_eq!(format!("{sock:?}"), format!("Fd({raw})"));
    t.abort();
    spin(&lp, 2);
    lp.close().unwrap();
}

/// Closing the loop closes the fd of every transport still open, also after transports
/// closed earlier freed their places in the loop's list of live transports and new ones took
/// them.
#[test]
fn loop_close_closes_every_open_transport_after_places_were_reused() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let mut open = Vec::new();
    let mut first = None;
    for i in 0..3 {
        let (rec, _log, lost) = Rec::new(&lp);
        let (t, peer) = socket_transport(&lp, rec);
        if i == 0 {
            first = Some((t, peer, lost));
        } else {
            open.push((t, peer));
        }
    }
    spin(&lp, 2);
    // The first one closes for good: its connection_lost runs, its place is freed.
    let (t1, _peer1, lost1) = first.unwrap();
    t1.close();
    run_until(&lp, 10, lost1);
    assert!(t1.fileno().is_none());
    // A new transport takes the freed place.
    let (rec, _log, _lost) = Rec::new(&lp);
    open.push(socket_transport(&lp, rec));
    spin(&lp, 2);
    lp.close().unwrap();
    for (i, (t, mut peer)) in open.into_iter().enumerate() {
        assert!(t.fileno().is_none(), "transport {i} is still open");
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "transport {i}: no EOF");
    }
}

/// NET-61: a transport's description follows its state (open, closing, closed); every handle
/// of it is the same transport on the same loop, and no other transport is.
#[test]
fn net_61_handles_know_their_transport_and_loop_and_describe_its_state() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (rec, _log, lost) = Rec::new(&lp);
    let (t, _peer) = socket_transport(&lp, rec);
    let (rec2, _log2, _lost2) = Rec::new(&lp);
    let (other, _peer2) = socket_transport(&lp, rec2);
    spin(&lp, 2);
    assert!(t.ptr_eq(&t.clone()));
    assert!(!t.ptr_eq(&other), "two transports are the same one");
    assert!(t
        .get_loop()
        .expect("an open transport has its loop")
        .ptr_eq(&lp));
    let fd = t.fileno().unwrap();
    assert_eq!(format!("{t:?}"), format!("<Transport fd={fd} socket open>"));
    t.close();
    assert_eq!(
        format!("{t:?}"),
        format!("<Transport fd={fd} socket closing>")
    );
    run_until(&lp, 10, lost);
    assert_eq!(
        format!("{t:?}"),
        format!("<Transport fd={fd} socket closed>")
    );
    other.abort();
    spin(&lp, 2);
    lp.close().unwrap();
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

/// NET-52 with NET-74: a peer that sends more than one readiness event reads (sixteen full
/// reads) and then closes: the transport reads on in a later iteration, and still sees the
/// EOF that came with the hang-up.
#[test]
fn net_52_eof_after_a_burst_longer_than_one_event_reads_is_delivered() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let (rec, log, lost) = Rec::new(&lp);
    // 16-byte reads: 40 full reads, a short one, then EOF.
    let sent = pattern(16 * 40 + 5);
    b.write_all(&sent).unwrap();
    drop(b);
    let t = Transport::new(&lp, a, rec, TransportOptions::socket().max_read_size(16)).unwrap();
    run_until(&lp, 10, lost);
    assert_eq!(data_of(&log), sent);
    assert_eq!(non_data(&log), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(t.is_closing());
    lp.close().unwrap();
}
