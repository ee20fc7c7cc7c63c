//! What the callbacks of a running loop need to know about it: the Python loop object (for
//! `call_exception_handler`), its debug settings, the `call_soon` callbacks still queued (for
//! the GIL, see [`crate::gil`]), and where a `KeyboardInterrupt` or `SystemExit` raised by a
//! callback waits while the loop unwinds.
//!
//! One loop runs on a thread at a time (asyncio's rule, checked before a run starts), so this is
//! a thread-local, set for the duration of `run_forever`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

/// The debug settings of a loop, readable from any thread.
pub struct Flags {
    /// `get_debug()`.
    pub debug: AtomicBool,
    /// `slow_callback_duration`, as the bits of an `f64`.
    slow: AtomicU64,
}

impl Flags {
    /// Debug off, slow callbacks from 100 ms (asyncio's defaults).
    pub fn new() -> Flags {
        Flags {
            debug: AtomicBool::new(false),
            slow: AtomicU64::new(0.1f64.to_bits()),
        }
    }

    /// `slow_callback_duration` in seconds.
    pub fn slow(&self) -> f64 {
        f64::from_bits(self.slow.load(Ordering::Relaxed))
    }

    /// Sets `slow_callback_duration`.
    pub fn set_slow(&self, secs: f64) {
        self.slow.store(secs.to_bits(), Ordering::Relaxed)
    }

    /// Whether debug mode is on.
    #[inline]
    pub fn debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }
}

/// The per-loop state kept on the loop's thread.
pub struct State {
    /// `call_soon` callbacks queued and not yet run or dropped.
    pub pending: Cell<usize>,
    /// The task factory (`set_task_factory`).
    pub task_factory: RefCell<Option<Py<PyAny>>>,
}

impl State {
    pub fn new() -> State {
        State {
            pending: Cell::new(0),
            task_factory: RefCell::new(None),
        }
    }
}

/// Counts one queued `call_soon` callback while it lives: made when the callback is queued,
/// taken when it runs, dropped (uncounted) when it is cancelled or the loop closes.
pub struct Pending(Option<Rc<State>>);

impl Pending {
    #[inline]
    pub fn new(state: &Rc<State>) -> Pending {
        state.pending.set(state.pending.get() + 1);
        Pending(Some(state.clone()))
    }

    /// The callback runs: it no longer counts.
    #[inline]
    pub fn take(mut self) {
        if let Some(s) = self.0.take() {
            s.pending.set(s.pending.get() - 1);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.pending.set(s.pending.get() - 1);
        }
    }
}

/// The running loop of this thread.
pub struct Running {
    /// The Python loop object (`evloop.Loop`, or a subclass).
    pub pyloop: Py<PyAny>,
    /// Its debug settings.
    pub flags: Arc<Flags>,
    /// Its state.
    pub state: Rc<State>,
    /// A `KeyboardInterrupt` / `SystemExit` (or an error of the exception handler) that ends
    /// the run, kept while the loop unwinds.
    pub fatal: RefCell<Option<PyErr>>,
}

thread_local! {
    static RUNNING: RefCell<Option<Rc<Running>>> = const { RefCell::new(None) };
}

/// Sets (or clears) the running loop of this thread; returns the previous one.
pub fn set(r: Option<Rc<Running>>) -> Option<Rc<Running>> {
    RUNNING.with(|c| std::mem::replace(&mut *c.borrow_mut(), r))
}

/// The running loop of this thread.
#[inline]
pub fn get() -> Option<Rc<Running>> {
    RUNNING.with(|c| c.borrow().clone())
}

/// The `call_soon` callbacks the running loop has queued (0 when none runs).
#[inline]
pub fn pending() -> usize {
    RUNNING.with(|c| c.borrow().as_ref().map_or(0, |r| r.state.pending.get()))
}

/// Ends the run with `err`: kept for `run_forever` to raise, and the loop unwinds at once (the
/// rest of the iteration does not run, as in asyncio).
pub fn fatal(err: PyErr) -> ! {
    if let Some(r) = get() {
        r.fatal.borrow_mut().get_or_insert(err);
    }
    loop_core::fatal("a Python callback raised KeyboardInterrupt or SystemExit")
}
