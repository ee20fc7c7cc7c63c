//! Probes a test leaves inside loop callbacks and reads outside: event logs and drop flags.
//!
//! A callback cannot usefully assert (its panic is caught by the loop), so it records, and
//! the test asserts on the record after the run.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use loop_core::{fatal, EventLoop};

/// A shared log of events, appended to by callbacks and read by the test.
///
/// ```
/// let l: loop_testkit::Log = loop_testkit::log();
/// l.borrow_mut().push("a".to_string());
/// assert_eq!(loop_testkit::entries(&l), ["a"]);
/// ```
pub type Log<T = String> = Rc<RefCell<Vec<T>>>;

/// An empty [`Log`].
///
/// ```
/// let l = loop_testkit::log::<u32>();
/// assert!(l.borrow().is_empty());
/// ```
pub fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// A copy of what the log holds.
///
/// ```
/// let l = loop_testkit::log();
/// l.borrow_mut().push(1);
/// assert_eq!(loop_testkit::entries(&l), [1]);
/// ```
pub fn entries<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.borrow().clone()
}

/// Sets its flag when dropped: shows when a callback's captures were released.
///
/// ```
/// let (dropped, probe) = loop_testkit::drop_flag();
/// let cb = move || drop(&probe);
/// assert!(!dropped.get());
/// drop(cb);
/// assert!(dropped.get());
/// ```
pub struct DropFlag(pub Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A flag and the [`DropFlag`] that sets it.
///
/// ```
/// let (dropped, probe) = loop_testkit::drop_flag();
/// drop(probe);
/// assert!(dropped.get());
/// ```
pub fn drop_flag() -> (Rc<Cell<bool>>, DropFlag) {
    let f = Rc::new(Cell::new(false));
    (f.clone(), DropFlag(f))
}

/// Counts its drops, and remembers the thread of the last one: a [`DropFlag`] that may cross
/// threads.
///
/// ```
/// let (probe, drops, thread) = loop_testkit::DropProbe::new();
/// std::thread::spawn(move || drop(probe)).join().unwrap();
/// assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
/// assert_ne!(thread.lock().unwrap().unwrap(), std::thread::current().id());
/// ```
pub struct DropProbe {
    /// Drops so far.
    pub drops: Arc<AtomicUsize>,
    /// The thread of the last drop.
    pub thread: Arc<Mutex<Option<ThreadId>>>,
}

/// What [`DropProbe::new`] returns: the probe, its drop count, the thread of its last drop.
pub type DropProbeParts = (DropProbe, Arc<AtomicUsize>, Arc<Mutex<Option<ThreadId>>>);

impl DropProbe {
    /// A probe, and the two things it updates when dropped.
    ///
    /// ```
    /// let (probe, drops, _thread) = loop_testkit::DropProbe::new();
    /// drop(probe);
    /// assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> DropProbeParts {
        let drops = Arc::new(AtomicUsize::new(0));
        let thread = Arc::new(Mutex::new(None));
        (
            DropProbe {
                drops: drops.clone(),
                thread: thread.clone(),
            },
            drops,
            thread,
        )
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(std::thread::current().id());
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A loop callback that must never run. An `unreachable!()` in a callback proves nothing: the
/// loop catches the panic and hands it to the exception handler. This one prints a line naming
/// `what` (shown with the failed test's output) and unwinds with a [`fatal`] error, which the
/// loop lets escape from `run_forever` / `run_until_complete`: the test fails where the loop
/// ran it.
///
/// ```
/// use std::panic::{catch_unwind, AssertUnwindSafe};
/// let lp = loop_core::EventLoop::new().unwrap();
/// lp.call_soon(loop_testkit::never("the cancelled callback")).unwrap().cancel();
/// loop_testkit::run_once(&lp);
/// lp.call_soon(loop_testkit::never("this callback")).unwrap();
/// assert!(catch_unwind(AssertUnwindSafe(|| loop_testkit::run_once(&lp))).is_err());
/// ```
pub fn never(what: &'static str) -> impl FnOnce(&EventLoop) + Send + 'static {
    move |_| {
        let msg = format!("{what}: a callback that must never run ran");
        eprintln!("{msg}");
        fatal(msg)
    }
}
