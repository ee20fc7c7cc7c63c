//! What the TLS tests share: certificates made at test time (the CA and leaf helpers of
//! loop-tls's own tests), a recording application protocol, and loop helpers.
#![allow(dead_code)]

#[path = "../../crates/loop-tls/tests/common/mod.rs"]
pub mod certs;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::tls::{tls_info, SslContext};
use evloop::transport::{Protocol, Transport};
use loop_testkit::run;

pub use certs::{client_ctx, server_ctx, Ca, Leaf};

/// What the application protocol saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Ev {
    Made,
    /// Bytes received (counted, the bytes themselves are in `Shared::data`).
    Data,
    /// `eof_received`, and whether the peer's `close_notify` had arrived.
    Eof {
        close_notify: bool,
    },
    Pause,
    Resume,
    /// `connection_lost`: the error's kind and text, and whether `close_notify` had arrived.
    Lost {
        err: Option<(io::ErrorKind, String)>,
        close_notify: bool,
    },
}

/// State shared between a recording protocol and the test.
#[derive(Default)]
pub struct Shared {
    pub log: Vec<Ev>,
    pub data: Vec<u8>,
    pub transport: Option<Transport>,
    /// What `tls_info` said in `connection_made`.
    pub info: Option<evloop::tls::TlsInfo>,
}

pub type State = Rc<RefCell<Shared>>;

/// Records everything; echoes data back if `echo`; pauses reading in `connection_made` if
/// `paused`.
pub struct Rec {
    pub st: State,
    pub echo: bool,
    pub paused: bool,
}

impl Rec {
    pub fn new(echo: bool) -> (Rec, State) {
        let st = State::default();
        (
            Rec {
                st: st.clone(),
                echo,
                paused: false,
            },
            st,
        )
    }
}

fn close_notify(t: &Option<Transport>) -> bool {
    t.as_ref()
        .and_then(tls_info)
        .is_some_and(|i| i.close_notify_received)
}

impl Protocol for Rec {
    fn connection_made(&mut self, t: &Transport) {
        let mut st = self.st.borrow_mut();
        st.log.push(Ev::Made);
        st.info = tls_info(t);
        st.transport = Some(t.clone());
        if self.paused {
            t.pause_reading();
        }
    }
    fn data_received(&mut self, data: &[u8]) {
        let mut st = self.st.borrow_mut();
        if st.log.last() != Some(&Ev::Data) {
            st.log.push(Ev::Data);
        }
        st.data.extend_from_slice(data);
        if self.echo {
            let _ = st.transport.as_ref().unwrap().write(data);
        }
    }
    fn eof_received(&mut self) -> bool {
        let mut st = self.st.borrow_mut();
        let close_notify = close_notify(&st.transport);
        st.log.push(Ev::Eof { close_notify });
        false
    }
    fn pause_writing(&mut self) {
        self.st.borrow_mut().log.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.st.borrow_mut().log.push(Ev::Resume);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let mut st = self.st.borrow_mut();
        let close_notify = close_notify(&st.transport);
        st.log.push(Ev::Lost {
            err: exc.map(|e| (e.kind(), e.to_string())),
            close_notify,
        });
        st.transport = None;
    }
}

/// The log without `Data`, `Pause` and `Resume`.
pub fn events(st: &State) -> Vec<Ev> {
    st.borrow()
        .log
        .iter()
        .filter(|e| !matches!(e, Ev::Data | Ev::Pause | Ev::Resume))
        .cloned()
        .collect()
}

pub fn lost(st: &State) -> bool {
    st.borrow().log.iter().any(|e| matches!(e, Ev::Lost { .. }))
}

/// Runs loop iterations until `cond` holds (fails the test after `secs` seconds).
pub fn until(lp: &EventLoop, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "condition not reached in {secs} s"
        );
        loop_testkit::run_once(lp);
    }
}

/// [`until`] for a loop with a virtual clock: each round waits for a timer (a second of
/// virtual time at most), so the clock can jump to the deadlines under test; a bare
/// iteration never lets it.
pub fn until_virtual(lp: &EventLoop, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "condition not reached"
        );
        let sleep = evloop::timers::sleep(Duration::from_secs(1));
        loop_testkit::run(lp, 30, sleep).unwrap();
    }
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, and the two contexts.
pub struct Pki {
    pub ca: Ca,
    pub leaf: Leaf,
    pub server: SslContext,
    pub client: SslContext,
}

pub fn pki() -> Pki {
    let ca = Ca::new("evloop test CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]);
    let server = server_ctx(&leaf);
    let client = client_ctx(&ca);
    Pki {
        ca,
        leaf,
        server,
        client,
    }
}

/// The first listening port of a server.
pub fn port_of(server: &evloop::net::Server) -> u16 {
    match server.local_addrs()[0] {
        evloop::transport::Addr::Inet(a) => a.port(),
        ref other => panic!("not an inet address: {other:?}"),
    }
}

/// A server on 127.0.0.1 with `o` whose one connection is served by `rec`.
pub fn serve(lp: &EventLoop, rec: Rec, o: ServerOptions) -> evloop::Result<evloop::net::Server> {
    let mut rec = Some(rec);
    run(
        lp,
        30,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
}

/// Closes `server` and waits until it is closed.
pub fn close_server(lp: &EventLoop, server: evloop::net::Server) {
    server.close();
    run(lp, 10, async move { server.wait_closed().await }).unwrap();
}

/// A TLS server on 127.0.0.1 whose connections all record into one state (echoing if `echo`).
pub fn tls_server(lp: &EventLoop, ctx: &SslContext, echo: bool) -> (evloop::net::Server, State) {
    let (_rec, st) = Rec::new(echo);
    let shared = st.clone();
    let o = ServerOptions::new().ssl(ctx.clone());
    // Every connection records into the same state.
    let factory = move || Rec {
        st: shared.clone(),
        echo,
        paused: false,
    };
    let server = run(lp, 30, lp.create_server(factory, "127.0.0.1", 0, o)).unwrap();
    (server, st)
}

pub fn connect_opts(ctx: &SslContext, name: Option<&str>) -> ConnectOptions {
    let o = ConnectOptions::new().ssl(ctx.clone());
    match name {
        Some(name) => o.server_hostname(name),
        None => o,
    }
}

pub fn tls_connect(
    lp: &EventLoop,
    port: u16,
    o: ConnectOptions,
) -> evloop::Result<(Transport, State)> {
    let (rec, st) = Rec::new(false);
    run(
        lp,
        30,
        lp.create_connection(move || rec, "127.0.0.1", port, o),
    )
    .map(|(t, _p)| (t, st))
}
