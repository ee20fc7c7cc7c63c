//! Helpers shared by the subprocess tests: loop-testkit's (watchdog, test lock, fd, thread
//! and zombie checks, log capture) under the names these tests use, and a recording protocol.
#![allow(dead_code, unused_imports)]

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use loop_core::{EventLoop, LoopFuture};
use loop_subprocess::{SubprocessProtocol, SubprocessTransport};

/// The bound, in seconds, these tests give `run` (the watchdog's limit).
pub const LONG: u64 = 60;

pub use loop_testkit::{
    children, eventually, exclusive, fd_count, is_reaped, log_capture, run, spin, spin_until,
    threads_named, wait_exited_nowait, watchdog,
};

/// The guard of a test that counts fds, threads or children: it runs alone
/// ([`loop_testkit::exclusive`]).
pub fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
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

impl SubprocessProtocol for Rec {
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
