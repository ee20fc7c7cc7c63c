//! The fd stream transport's read path on real sockets and pipes: pausing reads (NET-63),
//! extra info (NET-66), buffered protocols and `set_protocol` (NET-67), the read size (NET-74).

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use loop_core::{Error, EventLoop};
use loop_transport::{
    Addr, BufferedProtocol, Extra, FdKind, Protocol, StreamProtocol, Transport, TransportOptions,
    DEFAULT_MAX_READ,
};

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
