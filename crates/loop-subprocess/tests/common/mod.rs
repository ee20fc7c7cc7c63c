//! Helpers shared by the subprocess tests: a recording protocol, a watchdog, fd and zombie
//! checks, log capture.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use loop_core::{EventLoop, LoopFuture};
use loop_subprocess::{SubprocessProtocol, SubprocessTransport};
use rustix::io::Errno;
use rustix::process::{Pid, WaitId, WaitIdOptions};

/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const LONG: u64 = 60;

/// Tests of one binary that count fds, threads or children take turns.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads of this process whose name starts with `prefix` (the kernel keeps 15 bytes).
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim_end().starts_with(prefix))
        .count()
}

/// Children of this process (all its threads), zombies included.
pub fn children() -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(e.path().join("children")) {
            v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    v
}

/// True once `pid` is no child of ours any more (its status was collected): `waitid` with
/// `WNOWAIT` answers `ECHILD` and collects nothing itself.
pub fn is_reaped(pid: u32) -> bool {
    let pid = Pid::from_raw(pid as i32).unwrap();
    matches!(
        rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ),
        Err(Errno::CHILD)
    )
}

/// Blocks until `pid` exited, without collecting its status.
pub fn wait_exited_nowait(pid: u32) {
    let pid = Pid::from_raw(pid as i32).unwrap();
    loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(Errno::INTR) => continue,
            _ => return,
        }
    }
}

#[path = "../../../../tests/support/watchdog.rs"]
mod watchdog;
// `watchdog` takes these from `super`.
use loop_core::{fatal, Fatal};
pub use watchdog::run;

/// Runs `n` loop iterations.
pub fn spin(lp: &EventLoop, n: usize) {
    for _ in 0..n {
        lp.stop();
        lp.run_forever().unwrap();
    }
}

/// Runs loop iterations until `cond` holds (at most `LONG` seconds); false on timeout.
pub fn spin_until(lp: &EventLoop, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(LONG) {
        if cond() {
            return true;
        }
        spin(lp, 1);
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A protocol event as recorded by [`Rec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(i32, Vec<u8>),
    PipeLost(i32, Option<i32>),
    Exited,
    Pause,
    Resume,
    Lost,
}

pub type Log = Rc<RefCell<Vec<Ev>>>;

/// Records every call; completes `done` in `connection_lost`.
pub struct Rec {
    pub log: Log,
    pub done: LoopFuture<()>,
    pub transport: Option<SubprocessTransport>,
    /// Kill the child at the first data received.
    pub kill_on_data: bool,
}

impl Rec {
    pub fn new(lp: &EventLoop) -> (Log, LoopFuture<()>, impl FnOnce() -> Rec) {
        let log: Log = Rc::default();
        let done = lp.create_future();
        let (l, d) = (log.clone(), done.clone());
        (log, done, move || Rec {
            log: l,
            done: d,
            transport: None,
            kill_on_data: false,
        })
    }
}

impl SubprocessProtocol<SubprocessTransport> for Rec {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        self.transport = Some(transport.clone());
        self.log.borrow_mut().push(Ev::Made);
    }
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        self.log.borrow_mut().push(Ev::Data(fd, data.to_vec()));
        if self.kill_on_data {
            self.kill_on_data = false;
            self.transport.as_ref().unwrap().kill().unwrap();
        }
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        self.log.borrow_mut().push(Ev::PipeLost(
            fd,
            exc.map(|e| e.raw_os_error().unwrap_or(-1)),
        ));
    }
    fn process_exited(&mut self) {
        self.log.borrow_mut().push(Ev::Exited);
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().push(Ev::Resume);
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        self.log.borrow_mut().push(Ev::Lost);
        self.transport = None;
        let _ = self.done.set_result(());
    }
}

/// Everything fd `fd` delivered, concatenated.
pub fn data_of(log: &Log, fd: i32) -> Vec<u8> {
    log.borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Data(f, d) if *f == fd => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Checks SUB-04's order on a complete log, for the piped fds `fds`.
pub fn check_order(log: &[Ev], fds: &[i32]) {
    assert_eq!(log.first(), Some(&Ev::Made), "{log:?}");
    assert_eq!(log.last(), Some(&Ev::Lost), "{log:?}");
    assert_eq!(log.iter().filter(|e| **e == Ev::Made).count(), 1, "{log:?}");
    assert_eq!(log.iter().filter(|e| **e == Ev::Lost).count(), 1, "{log:?}");
    assert_eq!(
        log.iter().filter(|e| **e == Ev::Exited).count(),
        1,
        "{log:?}"
    );
    for &fd in fds {
        let lost: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Ev::PipeLost(f, _) if *f == fd))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lost.len(), 1, "fd {fd}: {log:?}");
        let last_data = log
            .iter()
            .rposition(|e| matches!(e, Ev::Data(f, _) if *f == fd));
        if let Some(d) = last_data {
            assert!(
                d < lost[0],
                "data of fd {fd} after its pipe_connection_lost: {log:?}"
            );
        }
    }
    let other_lost = log
        .iter()
        .filter(|e| matches!(e, Ev::PipeLost(f, _) if !fds.contains(f)))
        .count();
    assert_eq!(other_lost, 0, "{log:?}");
}

/// A `tracing` subscriber for the current thread that keeps what is logged.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Captures DEBUG and above on this thread until the guard is dropped.
pub fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let l = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || l.clone())
        .finish();
    (logs, tracing::subscriber::set_default(sub))
}

/// Waits (at most `LONG` seconds) until `cond` holds, without running a loop.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(LONG) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}
