//! Helpers of the pipe tests: a recording protocol, pipes of every kind (FIFOs, ptys), and
//! running the loop until something happened.
#![allow(dead_code, unused_imports)]

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use std::time::Duration;

use loop_core::{Error, EventLoop, ExceptionContext, LoopFuture};
use loop_pipes::PipesExt;
use loop_transport::{Extra, Protocol, Transport};
use rustix::fs::{Mode, OFlags};

// ---------------------------------------------------------------------------------------------
// helpers

/// The test's watchdog, holding the test lock exclusively: several tests count the process'
/// fds, so the tests of this file run one at a time.
pub fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

pub use loop_testkit::fd_count;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(Vec<u8>),
    Eof,
    Pause,
    Resume,
    Lost(Option<Option<i32>>),
}

#[derive(Default)]
pub struct Shared {
    pub log: RefCell<Vec<Ev>>,
    pub wake: RefCell<Option<LoopFuture<()>>>,
}

pub type S = Rc<Shared>;

impl Shared {
    pub fn push(&self, ev: Ev) {
        self.log.borrow_mut().push(ev);
        if let Some(f) = self.wake.borrow_mut().take() {
            let _ = f.set_result(());
        }
    }
    pub fn events(&self) -> Vec<Ev> {
        self.log.borrow().clone()
    }
    pub fn non_data(&self) -> Vec<Ev> {
        self.log
            .borrow()
            .iter()
            .filter(|e| !matches!(e, Ev::Data(_)))
            .cloned()
            .collect()
    }
    pub fn chunks(&self) -> Vec<usize> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.len()),
                _ => None,
            })
            .collect()
    }
    pub fn data(&self) -> Vec<u8> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
    pub fn lost(&self) -> bool {
        self.log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    }
}

/// Records every call.
pub struct Rec {
    pub s: S,
    pub keep_open: bool,
}

pub fn rec() -> (S, impl FnOnce() -> Rec) {
    let s: S = Rc::default();
    let s2 = s.clone();
    (s, move || Rec {
        s: s2,
        keep_open: false,
    })
}

impl Protocol for Rec {
    fn connection_made(&mut self, _t: &Transport) {
        self.s.push(Ev::Made);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.s.push(Ev::Data(data.to_vec()));
    }
    fn eof_received(&mut self) -> bool {
        self.s.push(Ev::Eof);
        self.keep_open
    }
    fn pause_writing(&mut self) {
        self.s.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.s.push(Ev::Resume);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.s.push(Ev::Lost(exc.map(|e| e.raw_os_error())));
    }
}

/// Runs `fut` with a 60 s watchdog (a generous bound against hangs, not a timing assertion).
pub fn run<F>(lp: &EventLoop, fut: F) -> F::Output
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    loop_testkit::run(lp, 60, fut)
}

/// Runs the loop until `cond` holds for the recorded events (each event wakes the wait).
pub fn wait_until(lp: &EventLoop, s: &S, cond: impl Fn(&[Ev]) -> bool) {
    loop {
        if cond(&s.log.borrow()) {
            return;
        }
        let f = lp.create_future::<()>();
        *s.wake.borrow_mut() = Some(f.clone());
        run(lp, f).unwrap();
    }
}

pub fn wait_lost(lp: &EventLoop, s: &S) {
    wait_until(lp, s, |e| e.iter().any(|x| matches!(x, Ev::Lost(_))));
}

/// Runs the loop long enough that it polls for I/O at least once (it polls at least every
/// `POLL_EVERY` iterations while work is ready), so that readiness already pending in the
/// kernel has been seen.
pub fn spin(lp: &EventLoop) {
    for _ in 0..=loop_core::POLL_EVERY {
        run(lp, loop_core::yield_now());
    }
}

pub type Connected<P> = Result<(Transport, loop_transport::ProtocolRef<P>), Error>;

pub fn read_pipe<P: Protocol + 'static>(
    lp: &EventLoop,
    f: impl FnOnce() -> P + 'static,
    fd: impl Into<OwnedFd>,
) -> Connected<P> {
    let l = lp.clone();
    let fd = fd.into();
    run(lp, async move { l.connect_read_pipe(f, fd).await })
}

pub fn write_pipe<P: Protocol + 'static>(
    lp: &EventLoop,
    f: impl FnOnce() -> P + 'static,
    fd: impl Into<OwnedFd>,
) -> Connected<P> {
    let l = lp.clone();
    let fd = fd.into();
    run(lp, async move { l.connect_write_pipe(f, fd).await })
}

pub fn capture_reports(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp, ctx| {
        l.borrow_mut().push(ctx.clone())
    })));
    log
}

pub fn is_nonblocking(t: &Transport) -> bool {
    t.with_fd(|fd| {
        rustix::fs::fcntl_getfl(fd)
            .unwrap()
            .contains(OFlags::NONBLOCK)
    })
    .unwrap()
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A new FIFO at a fresh path.
pub fn fifo(name: &str) -> loop_testkit::TempPath {
    let p = loop_testkit::temp_path(name);
    #[cfg(not(target_vendor = "apple"))]
    rustix::fs::mkfifoat(rustix::fs::CWD, p.as_path(), Mode::RUSR | Mode::WUSR).unwrap();
    // rustix has no mkfifo on Apple: the mkfifo(1) tool makes it.
    #[cfg(target_vendor = "apple")]
    assert!(std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(p.as_path())
        .status()
        .unwrap()
        .success());
    p
}

/// A pty pair in raw mode (no echo, no line buffering): (master, slave).
pub fn openpty() -> (OwnedFd, OwnedFd) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    // posix_openpt takes O_CLOEXEC on Linux and FreeBSD; elsewhere (Apple) it is set after.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    let master = {
        let m = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        rustix::io::fcntl_setfd(&m, rustix::io::FdFlags::CLOEXEC).unwrap();
        m
    };
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut t = rustix::termios::tcgetattr(&slave).unwrap();
    t.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &t).unwrap();
    (master, slave)
}

/// Reads from a blocking fd until `n` bytes arrived.
pub fn read_exact_fd(fd: impl AsFd, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    let mut at = 0;
    while at < n {
        let k = rustix::io::read(&fd, &mut got[at..]).unwrap();
        assert!(k > 0, "unexpected EOF after {at} bytes");
        at += k;
    }
    got
}

pub fn libc_eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}
