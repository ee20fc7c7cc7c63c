//! What the callbacks of a loop need to know about it ([`State`]): the Python loop object while
//! it runs (for `call_exception_handler`), its debug settings, the `call_soon` callbacks still
//! queued, and where a `KeyboardInterrupt` or `SystemExit`
//! raised by a callback waits while the loop unwinds.
//!
//! Callbacks scheduled on the loop's thread hold the state; those scheduled from other threads
//! find it through a thread-local set while the loop runs (one loop runs on a thread at a time,
//! asyncio's rule, checked before a run starts).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

use loop_core::internal::IoHandler;
use loop_core::{EventLoop, Readiness};

use crate::gil;
use crate::handle::{self, Handle, Queued};

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
    /// `call_soon` callbacks queued and not yet run or dropped, in order (see [`Soon`]).
    pub soon: RefCell<VecDeque<Queued<Handle>>>,
    /// Debug settings (shared with the Python object, for other threads).
    pub flags: Arc<Flags>,
    /// The task factory (`set_task_factory`).
    pub task_factory: RefCell<Option<Py<PyAny>>>,
    /// The Python loop object, while it runs.
    pub pyloop: RefCell<Option<Py<PyAny>>>,
    /// A `KeyboardInterrupt` / `SystemExit` (or an error of the exception handler) that ends
    /// the run, kept while the loop unwinds.
    pub fatal: RefCell<Option<PyErr>>,
    /// The handle of each fd watcher, by fd and direction (`true`: reading), as asyncio's
    /// selector keeps them: a watcher replaced or removed has its handle cancelled, and a
    /// watcher whose handle was cancelled is removed when its fd is next ready.
    pub watchers: RefCell<HashMap<(RawFd, bool), Py<Handle>>>,
    /// Where the native socket readers `recv` (see [`crate::stream`]): one buffer per loop,
    /// grown to the transports' `max_size` on first use.
    pub read_buf: RefCell<Vec<u8>>,
}

impl State {
    pub fn new(flags: Arc<Flags>) -> State {
        State {
            soon: RefCell::new(VecDeque::new()),
            flags,
            task_factory: RefCell::new(None),
            pyloop: RefCell::new(None),
            fatal: RefCell::new(None),
            watchers: RefCell::new(HashMap::new()),
            read_buf: RefCell::new(Vec::new()),
        }
    }

    /// Ends the run with `err`: kept for `run_forever` to raise, and the loop unwinds at once
    /// (the rest of the iteration does not run, as in asyncio).
    pub fn fatal(&self, err: PyErr) -> ! {
        self.fatal.borrow_mut().get_or_insert(err);
        loop_core::fatal("a Python callback raised KeyboardInterrupt or SystemExit")
    }
}

/// Runs the `call_soon` callbacks of a loop: one shared handler that the loop core queues once
/// per callback, as readiness of no fd (`LoopInternals::schedule_io`), while the handles wait
/// in [`State::soon`] in the same order.
///
/// A callback queued with `EventLoop::call_soon` costs the loop core an allocation of its
/// closure (freed after the run: some 300 instructions of glibc's allocator per callback when
/// many are queued at once); an entry of the ready queue that points at this one handler costs
/// a reference count. Each entry runs the oldest handle waiting: the core runs its queue in
/// order, so the handles run in the order they were scheduled, between the I/O callbacks,
/// timers and threadsafe callbacks queued before and after them as before (CORE-07, CORE-19).
pub struct Soon(pub Rc<State>);

impl IoHandler for Soon {
    fn ready(&self, _: &EventLoop, _: Readiness) {
        let state = &*self.0;
        let next = state.soon.borrow_mut().pop_front();
        let Some(run) = next else { return };
        let py = gil::attached();
        let h = run.take(py);
        let r = handle::run(py, &h, Some(state));
        drop(h);
        if let Err(e) = r {
            state.fatal(e)
        }
    }
}

thread_local! {
    static RUNNING: RefCell<Option<Rc<State>>> = const { RefCell::new(None) };
}

/// Sets (or clears) the running loop of this thread; returns the previous one.
pub fn set(r: Option<Rc<State>>) -> Option<Rc<State>> {
    RUNNING.with(|c| std::mem::replace(&mut *c.borrow_mut(), r))
}

/// The state of the loop running on this thread.
pub fn get() -> Option<Rc<State>> {
    RUNNING.with(|c| c.borrow().clone())
}
