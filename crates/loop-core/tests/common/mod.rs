//! Helpers shared by the integration tests of loop-core.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use loop_core::{EventLoop, ExceptionContext};

// ---------------------------------------------------------------------------------------------
// Log capture: one global `tracing` subscriber whose writer appends to a per-thread buffer, so
// tests running in parallel threads each see only their own loop's log lines.

thread_local! {
    static LOG: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static PANIC_NEXT_WRITE: Cell<bool> = const { Cell::new(false) };
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if PANIC_NEXT_WRITE.with(|p| p.replace(false)) {
            panic!("log writer failure requested by the test");
        }
        LOG.with(|l| l.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static INIT: Once = Once::new();

fn init_logging() {
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| ThreadWriter)
            .with_max_level(tracing::Level::TRACE)
            .without_time()
            .init();
    });
}

/// Runs `f` and returns what it logged on this thread.
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    init_logging();
    LOG.with(|l| l.borrow_mut().clear());
    let r = f();
    let text =
        LOG.with(|l| String::from_utf8_lossy(&std::mem::take(&mut *l.borrow_mut())).into_owned());
    (r, text)
}

/// The next log write on this thread panics (to make the default exception handler fail).
pub fn panic_on_next_log_write() {
    init_logging();
    PANIC_NEXT_WRITE.with(|p| p.set(true));
}

// ---------------------------------------------------------------------------------------------
// Exception handler recording.

/// Installs a handler that records every context it is given.
pub fn record_exceptions(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, ctx: &ExceptionContext| s.borrow_mut().push(ctx.clone()),
    )));
    seen
}

/// The messages of recorded contexts.
pub fn messages(seen: &Rc<RefCell<Vec<ExceptionContext>>>) -> Vec<String> {
    seen.borrow().iter().map(|c| c.message.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Running.

/// Runs exactly one iteration (a pre-stopped `run_forever`).
pub fn run_once(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

/// Stops the loop from another thread if the test takes longer than `secs`, so that a bug that
/// makes the loop block forever fails the test instead of hanging it.
pub struct Watchdog {
    fired: Arc<AtomicBool>,
    cancel: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(lp: &EventLoop, secs: u64) -> Watchdog {
        let remote = lp.remote();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs))
            {
                f.store(true, Ordering::SeqCst);
                let _ = remote.stop();
            }
        });
        Watchdog {
            fired,
            cancel: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !std::thread::panicking() {
            assert!(
                !self.fired(),
                "the watchdog had to stop a loop that never returned"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// File descriptors.

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Number of open fds whose link target contains `what` (e.g. "eventpoll", "eventfd").
pub fn fd_count_of(what: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|p| p.to_string_lossy().contains(what))
        .count()
}

/// Serializes the tests of one test binary that count fds.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Drop detection.

/// Sets its flag when dropped.
pub struct DropFlag(pub Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A flag and a value that sets it when dropped.
pub fn drop_flag() -> (Rc<Cell<bool>>, DropFlag) {
    let f = Rc::new(Cell::new(false));
    (f.clone(), DropFlag(f))
}

/// Shared log of events.
pub type Log = Rc<RefCell<Vec<String>>>;

pub fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

pub fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

pub fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}
