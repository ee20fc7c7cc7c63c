//! Helpers shared by the reliability fault and bad-input tests: loop-testkit's (watchdog, test
//! lock, fd, thread and child counts) under the names these tests use, exception-handler
//! capture, a quiet panic hook for injected panics, and an echo server with a client that
//! proves the loop still serves other connections.
#![allow(dead_code, unused_imports)]

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Once;
use std::time::{Duration, Instant};

use evloop::net::{NetExt, Server, ServerOptions};
use evloop::timers::TimersExt;
use evloop::transport::{Protocol, Transport};
use evloop::{EventLoop, ExceptionContext};

pub use loop_testkit::{children, exclusive, fd_count, is_reaped, run, threads_named, watchdog};

/// The guard of a test that counts the process's fds, threads or children: it runs alone
/// ([`loop_testkit::exclusive`]).
pub fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

/// The text every injected panic carries, so the quiet hook can recognise it.
pub const INJECTED: &str = "injected fault";

/// Installs (once) a panic hook that stays silent for panics whose message contains
/// [`INJECTED`] and prints every other panic as the default hook does.
pub fn quiet_injected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.contains(INJECTED) {
                default(info);
            }
        }));
    });
}

/// Panics with an [`INJECTED`] message naming `what` and `method` when `method` is the
/// `chosen` one: the one switch every faulty test protocol uses.
pub fn inject(chosen: &str, what: &str, method: &str) {
    if chosen == method {
        panic!("{INJECTED} in {what}{method}");
    }
}

/// Runs the loop in short steps until `cond()` holds; panics after `secs` (a failure guard).
pub fn until(lp: &EventLoop, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "not reached within {secs} s: {what}"
        );
        lp.run_until_complete(lp.sleep(Duration::from_millis(1)))
            .unwrap()
            .unwrap();
    }
}

/// Runs a few loop iterations.
pub fn spin(lp: &EventLoop, n: usize) {
    for _ in 0..n {
        lp.run_until_complete(async {}).unwrap();
    }
}

/// One exception-handler report: its message and its exception's text.
#[derive(Clone, Debug)]
pub struct Report {
    /// `ExceptionContext::message`.
    pub message: String,
    /// The exception's `Display`, or "" when the report has none.
    pub exception: String,
}

/// Collects every exception-handler report of `lp`.
pub fn capture_reports(lp: &EventLoop) -> Rc<RefCell<Vec<Report>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            s.borrow_mut().push(Report {
                message: ctx.message.clone(),
                exception: ctx
                    .exception
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            });
        },
    )));
    seen
}

/// Reports whose exception text contains `needle`.
pub fn reports_with(reports: &Rc<RefCell<Vec<Report>>>, needle: &str) -> Vec<Report> {
    reports
        .borrow()
        .iter()
        .filter(|r| r.exception.contains(needle))
        .cloned()
        .collect()
}

/// Echoes everything back; closes at EOF.
#[derive(Default)]
pub struct Echo {
    /// The transport, once connected.
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
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.transport = None;
    }
}

/// What every fault test starts and ends with: the lock that runs the tests of a binary one at
/// a time, the quiet hook for injected panics, the fd count before anything was opened, a loop
/// and the capture of what reaches its exception handler.
pub struct Rig {
    /// Held for the whole test: the exclusive test lock and the watchdog.
    _serial: loop_testkit::Watchdog,
    /// Open fds before the loop was created.
    pub base: usize,
    /// The loop under test.
    pub lp: EventLoop,
    /// Every exception-handler call.
    pub reports: Rc<RefCell<Vec<Report>>>,
}

impl Rig {
    /// Takes the lock, counts fds, creates the loop and captures its reports.
    pub fn new() -> Rig {
        let serial = serial();
        quiet_injected_panics();
        let base = fd_count();
        let lp = EventLoop::new().unwrap();
        serial.watch(&lp);
        let reports = capture_reports(&lp);
        Rig {
            _serial: serial,
            base,
            lp,
            reports,
        }
    }

    /// Closes the loop and checks that every fd opened since [`Rig::new`] is closed.
    pub fn finish(self) {
        self.lp.close().unwrap();
        assert_eq!(fd_count(), self.base, "no fd leaked");
    }
}

/// An evloop echo server with one long-lived plain client: [`EchoCheck::check`] proves that
/// the loop still serves that other connection after a fault elsewhere.
pub struct EchoCheck {
    /// The echo server.
    pub server: Server,
    /// The client (non-blocking, so the test thread never blocks the loop).
    client: TcpStream,
    /// Round trips done.
    rounds: u32,
}

impl EchoCheck {
    /// Starts the server on an ephemeral loopback port and connects the client.
    pub fn start(lp: &EventLoop) -> EchoCheck {
        let l = lp.clone();
        let server = run(lp, 30, async move {
            l.create_server(Echo::default, "127.0.0.1", 0, ServerOptions::new())
                .await
        })
        .expect("echo server");
        let port = server.local_addrs()[0].as_inet().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.set_nonblocking(true).unwrap();
        let mut e = EchoCheck {
            server,
            client,
            rounds: 0,
        };
        e.check(lp);
        e
    }

    /// Sends a fresh line and runs the loop until it comes back intact.
    pub fn check(&mut self, lp: &EventLoop) {
        self.rounds += 1;
        let msg = format!("echo round {}\n", self.rounds).into_bytes();
        self.client.write_all(&msg).unwrap();
        let mut got = Vec::new();
        let client = &mut self.client;
        until(lp, 30, "the echo client's round trip", || {
            let mut buf = [0u8; 256];
            match client.read(&mut buf) {
                Ok(0) => panic!("the echo server closed the connection"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("echo client: {e}"),
            }
            got.len() >= msg.len()
        });
        assert_eq!(got, msg, "the other connection is still served");
    }

    /// Closes the client and the server, and waits until both are gone.
    pub fn stop(self, lp: &EventLoop) {
        drop(self.client);
        let server = self.server;
        server.close();
        run(lp, 30, async move { server.wait_closed().await }).unwrap();
    }
}
