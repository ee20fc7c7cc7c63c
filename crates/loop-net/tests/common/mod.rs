//! Helpers shared by the loop-net integration tests: loop-testkit's (watchdog, test lock, fd
//! counting, exception capture) under the names these tests use, a recording protocol and an
//! echo protocol.
#![allow(dead_code, unused_imports)]

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;

use loop_core::{EventLoop, LoopFuture};
use loop_net::{Hosts, NetExt, Server, ServerOptions};
use loop_transport::{Protocol, Transport};

pub mod datagram;

pub use loop_testkit::{exclusive, fd_count, record_exceptions, run, watchdog, Exceptions};

/// The guard of a test that counts the process's fds: it runs alone
/// ([`loop_testkit::exclusive`]).
pub fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

/// Collects exception-handler reports ([`loop_testkit::record_exceptions`]).
pub fn capture_exceptions(lp: &EventLoop) -> Exceptions {
    loop_testkit::record_exceptions(lp)
}

/// Records what happens to a connection.
pub struct Rec {
    /// Events in order: "made", "data", "eof", "lost".
    pub log: Rc<RefCell<Vec<&'static str>>>,
    /// Bytes received.
    pub data: Rc<RefCell<Vec<u8>>>,
    /// The transport.
    pub transport: Option<Transport>,
    /// Completed by `connection_lost`.
    pub lost: LoopFuture<()>,
    /// Set in `connection_made`.
    pub made: Rc<Cell<bool>>,
}

impl Rec {
    pub fn new(lp: &EventLoop) -> Rec {
        Rec {
            log: Rc::default(),
            data: Rc::default(),
            transport: None,
            lost: lp.create_future(),
            made: Rc::default(),
        }
    }
}

impl Protocol for Rec {
    fn connection_made(&mut self, t: &Transport) {
        self.log.borrow_mut().push("made");
        self.made.set(true);
        self.transport = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.log.borrow_mut().push("data");
        self.data.borrow_mut().extend_from_slice(data);
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push("eof");
        false
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        self.log.borrow_mut().push("lost");
        self.transport = None;
        if !self.lost.done() {
            let _ = self.lost.set_result(());
        }
    }
}

/// Echoes everything back; closes at EOF.
#[derive(Default)]
pub struct Echo {
    pub transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data).unwrap();
        }
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        self.transport = None;
    }
}

/// A listener whose accept queue is full: further connects to it hang in SYN_SENT (the
/// kernel drops their SYNs) until the listener is closed. Returns the listener and the
/// connection that fills the queue.
pub fn full_listener(addr: &str) -> (std::net::TcpListener, std::net::TcpStream) {
    use rustix::net::{bind, listen, socket, AddressFamily, SocketType};
    let sa: std::net::SocketAddr = addr.parse().unwrap();
    let fam = if sa.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let s = socket(fam, SocketType::STREAM, None).unwrap();
    if sa.is_ipv6() {
        rustix::net::sockopt::set_ipv6_v6only(&s, true).unwrap();
    }
    bind(&s, &sa).unwrap();
    listen(&s, 0).unwrap();
    let l = std::net::TcpListener::from(s);
    let filler = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (l, filler)
}

/// An echo server on `hosts` and `port`, created under a 30 s watchdog.
pub fn server(lp: &EventLoop, hosts: impl Into<Hosts>, port: u16, o: ServerOptions) -> Server {
    run(lp, 30, lp.create_server(Echo::default, hosts, port, o)).unwrap()
}

/// The port of the server's first listening socket.
pub fn port_of(s: &Server) -> u16 {
    s.local_addrs()[0].as_inet().unwrap().port()
}

/// Round trip through an echo server from a plain blocking client on another thread while
/// the loop runs.
pub fn echo_roundtrip(lp: &EventLoop, addr: std::net::SocketAddr, msg: &'static [u8]) -> Vec<u8> {
    let remote = lp.remote();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(msg).unwrap();
        let mut buf = vec![0u8; msg.len()];
        c.read_exact(&mut buf).unwrap();
        tx.send(buf).unwrap();
        remote.call_soon_threadsafe(|lp| lp.stop()).unwrap();
    });
    lp.run_forever().unwrap();
    h.join().unwrap();
    rx.recv().unwrap()
}

/// Keeps each connection's transport.
pub struct Keep(pub Rc<std::cell::RefCell<Vec<Transport>>>);

impl Protocol for Keep {
    fn connection_made(&mut self, t: &Transport) {
        self.0.borrow_mut().push(t.clone());
    }
}
