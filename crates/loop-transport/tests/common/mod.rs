//! Helpers shared by the integration tests: loop-testkit's (watchdog, test lock, fd counting,
//! exception capture) under the names these tests use, and a recording protocol.
#![allow(dead_code, unused_imports)]

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use loop_core::{EventLoop, ExceptionContext, LoopFuture};
use loop_transport::{Protocol, Transport};

pub use loop_testkit::{exclusive, fd_count, record_exceptions, run, spin, watchdog, Exceptions};

/// The guard of a test that counts the process's fds: it runs alone
/// ([`loop_testkit::exclusive`]).
pub fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

/// Runs the loop until `fut` is done (a loop future completed by a protocol).
pub fn run_until<T: 'static>(lp: &EventLoop, secs: u64, fut: LoopFuture<T>) -> T {
    run(lp, secs, fut).expect("future failed")
}

/// Collects every exception-handler report ([`loop_testkit::record_exceptions`]).
pub fn capture_reports(lp: &EventLoop) -> Exceptions {
    loop_testkit::record_exceptions(lp)
}

/// The value of an extra key of a report.
pub fn extra<'a>(ctx: &'a ExceptionContext, key: &str) -> Option<&'a str> {
    ctx.extra
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

/// What a recording protocol saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// `connection_made`.
    Made,
    /// `data_received`.
    Data(Vec<u8>),
    /// `eof_received`.
    Eof,
    /// `pause_writing`.
    Pause,
    /// `resume_writing`.
    Resume,
    /// `connection_lost`: the error's kind and OS error number.
    Lost(Option<(io::ErrorKind, Option<i32>)>),
    /// A marker pushed by a test hook.
    Mark(&'static str),
}

/// Shared event log.
pub type Log = Rc<RefCell<Vec<Ev>>>;

/// A hook given the transport.
pub type THook = Option<Box<dyn FnMut(&Transport)>>;
/// A hook given the transport and the data.
pub type DataHook = Option<Box<dyn FnMut(&Transport, &[u8])>>;

/// A protocol that logs every call and runs optional hooks.
pub struct Rec {
    pub log: Log,
    pub transport: Option<Transport>,
    pub keep_open: bool,
    pub lost: Option<LoopFuture<()>>,
    pub lost_error: Rc<RefCell<Option<io::Error>>>,
    pub on_made: THook,
    pub on_data: DataHook,
    pub on_pause: THook,
    pub on_eof: THook,
    pub record_data: bool,
}

impl Rec {
    /// A recorder whose `connection_lost` completes `lost`.
    pub fn new(lp: &EventLoop) -> (Rec, Log, LoopFuture<()>) {
        let log: Log = Rc::default();
        let lost = lp.create_future();
        (
            Rec {
                log: log.clone(),
                transport: None,
                keep_open: false,
                lost: Some(lost.clone()),
                lost_error: Rc::default(),
                on_made: None,
                on_data: None,
                on_pause: None,
                on_eof: None,
                record_data: true,
            },
            log,
            lost,
        )
    }
}

impl Protocol for Rec {
    fn connection_made(&mut self, transport: &Transport) {
        self.log.borrow_mut().push(Ev::Made);
        self.transport = Some(transport.clone());
        if let Some(h) = &mut self.on_made {
            h(transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.record_data {
            self.log.borrow_mut().push(Ev::Data(data.to_vec()));
        }
        let t = self.transport.clone().unwrap();
        if let Some(h) = &mut self.on_data {
            h(&t, data);
        }
    }

    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push(Ev::Eof);
        let t = self.transport.clone().unwrap();
        if let Some(h) = &mut self.on_eof {
            h(&t);
        }
        self.keep_open
    }

    fn pause_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Pause);
        let t = self.transport.clone().unwrap();
        if let Some(h) = &mut self.on_pause {
            h(&t);
        }
    }

    fn resume_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Resume);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.log
            .borrow_mut()
            .push(Ev::Lost(exc.as_ref().map(|e| (e.kind(), e.raw_os_error()))));
        *self.lost_error.borrow_mut() = exc;
        self.transport = None;
        if let Some(f) = self.lost.take() {
            f.set_result(()).unwrap();
        }
    }
}

/// All data bytes in a log, concatenated.
pub fn data_of(log: &Log) -> Vec<u8> {
    log.borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Data(d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Events of a log other than data.
pub fn non_data(log: &Log) -> Vec<Ev> {
    log.borrow()
        .iter()
        .filter(|e| !matches!(e, Ev::Data(_)))
        .cloned()
        .collect()
}

/// A deterministic test pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A connected TCP pair over loopback: (client, accepted server side).
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Shrinks the socket's send buffer (the kernel rounds it up to its minimum).
pub fn small_sndbuf(fd: impl AsFd) {
    rustix::net::sockopt::set_socket_send_buffer_size(fd, 4096).unwrap();
}

/// Shrinks the socket's receive buffer.
pub fn small_rcvbuf(fd: impl AsFd) {
    rustix::net::sockopt::set_socket_recv_buffer_size(fd, 4096).unwrap();
}

/// Reads everything from a blocking socket in a thread, slowly.
pub fn slow_reader<R: io::Read + Send + 'static>(
    mut r: R,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("slow reader: {e}"),
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        out
    })
}

/// Polls the loop (zero-timeout iterations, short sleeps in between) until `cond` holds; the
/// bound is a watchdog, not a timing assertion.
pub fn until(lp: &EventLoop, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached within {secs} s"
        );
        spin(lp, 1);
        if !cond() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Fills the kernel buffers of `t` (its peer not reading) until some data stays buffered in
/// the transport; returns the buffered size.
pub fn fill_until_buffered(t: &Transport) -> usize {
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..1000 {
        t.write(&chunk).unwrap();
        if t.get_write_buffer_size() > 0 {
            return t.get_write_buffer_size();
        }
    }
    panic!("the kernel took 64 MiB without pushing back");
}

/// A socket transport over one end of a socketpair with `rec` as its protocol, and the other
/// end.
pub fn socket_transport(lp: &EventLoop, rec: Rec) -> (Transport, std::os::unix::net::UnixStream) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = Transport::new(lp, a, rec, loop_transport::TransportOptions::socket()).unwrap();
    (t, b)
}

/// A stream pair with reader limit `limit` over one end of a socketpair, and the other end.
pub fn pair(
    lp: &EventLoop,
    limit: usize,
) -> (
    loop_transport::StreamReader,
    loop_transport::StreamWriter,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let options = loop_transport::TransportOptions::socket();
    let (r, w) = loop_transport::open_stream(lp, a, limit, options).unwrap();
    (r, w, b)
}
