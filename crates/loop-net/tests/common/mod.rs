//! Helpers shared by the loop-net integration tests: loop-testkit's (watchdog, test lock, fd
//! counting, exception capture) under the names these tests use, a recording protocol and an
//! echo protocol.
#![allow(dead_code, unused_imports)]

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use loop_core::{EventLoop, LoopFuture};
use loop_transport::{Protocol, Transport};

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
