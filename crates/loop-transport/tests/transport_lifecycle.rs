//! The fd stream transport's protocol contract and lifecycle on real sockets and pipes: the
//! call sequence (NET-50..NET-52), failing protocols (NET-53), resets (NET-54), `write_eof`,
//! `close` and `abort` (NET-60..NET-62), and closing the loop.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use loop_core::{Error, EventLoop};
use loop_transport::{
    Addr, BufferedProtocol, DatagramProtocol, DatagramTransport, Protocol, StreamProtocol,
    Transport, TransportOptions,
};

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
