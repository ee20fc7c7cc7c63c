//! Capturing what evloop logs (through `tracing`) on the test's thread.
//!
//! The capture is a `tracing` subscriber set as the current thread's default for as long as
//! the capture lives, so tests running in parallel threads each see only their own loop's log
//! lines, and no global subscriber is installed behind anyone's back.

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;

thread_local! {
    static PANIC_NEXT_WRITE: Cell<bool> = const { Cell::new(false) };
}

/// The capture's writer: appends to the shared buffer.
#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if PANIC_NEXT_WRITE.with(|p| p.replace(false)) {
            panic!("log writer failure requested by the test");
        }
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Everything logged on this thread (every level, no colours, no timestamps) from
/// [`log_capture`] until it is dropped.
///
/// ```
/// let logs = loop_testkit::log_capture();
/// tracing::warn!("something odd");
/// assert!(logs.text().contains("something odd"));
/// ```
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
}

impl LogCapture {
    /// What was logged so far.
    ///
    /// ```
    /// let logs = loop_testkit::log_capture();
    /// assert_eq!(logs.text(), "");
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// What was logged so far, leaving the capture empty.
    ///
    /// ```
    /// let logs = loop_testkit::log_capture();
    /// tracing::info!("once");
    /// assert!(logs.take().contains("once"));
    /// assert_eq!(logs.text(), "");
    /// ```
    pub fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

/// Starts capturing this thread's log lines; see [`LogCapture`].
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let logs = loop_testkit::log_capture();
/// lp.call_soon(|_| panic!("boom")).unwrap();
/// loop_testkit::run_once(&lp);
/// assert!(logs.text().contains("boom"), "{}", logs.text());
/// ```
pub fn log_capture() -> LogCapture {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let w = Writer(buf.clone());
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || w.clone())
        .finish();
    LogCapture {
        buf,
        _guard: tracing::subscriber::set_default(sub),
    }
}

/// Runs `f` and returns what it logged on this thread.
///
/// ```
/// let ((), logs) = loop_testkit::capture_logs(|| tracing::error!("bad"));
/// assert!(logs.contains("bad"));
/// ```
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    let c = log_capture();
    let r = f();
    (r, c.text())
}

/// The next write of a capture on this thread panics (to make the default exception handler,
/// which logs, fail).
///
/// ```
/// use std::panic::{catch_unwind, AssertUnwindSafe};
/// let logs = loop_testkit::log_capture();
/// loop_testkit::panic_on_next_log_write();
/// assert!(catch_unwind(AssertUnwindSafe(|| tracing::error!("x"))).is_err());
/// tracing::error!("y");
/// assert!(logs.text().contains("y"));
/// ```
pub fn panic_on_next_log_write() {
    PANIC_NEXT_WRITE.with(|p| p.set(true));
}
