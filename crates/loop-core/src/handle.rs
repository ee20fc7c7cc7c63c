//! Handles: a scheduled callback that can be cancelled before it runs.
//!
//! A local handle is one allocation holding the cancel flag, the source location that scheduled
//! it and the closure itself (`Rc<Cell<Option<F>>>` behind a trait object), so `call_soon` costs
//! exactly one allocation. Cancelling drops the closure at once, releasing whatever it captured
//! (asyncio releases the callback and its arguments at cancel time).
//!
//! A [`RemoteHandle`] comes from `call_soon_threadsafe`. Its state is an atomic so that a
//! `cancel()` from another thread either wins before the callback starts, or has no effect: the
//! two can never overlap.

use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::context::{self, Snapshot};
use crate::EventLoop;

/// Makes a callback's context current for as long as it lives (also when the callback
/// panics), then stores what the callback left in it back into the callback.
pub(crate) struct EnterContext<'a> {
    /// The callback.
    cb: &'a dyn Callback,
    /// The context that was current before; `None` if contexts were not in use on this thread
    /// when the callback started (its context and the current one were then both empty).
    prev: Option<Snapshot>,
}

impl<'a> EnterContext<'a> {
    #[inline]
    pub(crate) fn new(cb: &'a dyn Callback) -> EnterContext<'a> {
        if !context::active() {
            return EnterContext { cb, prev: None };
        }
        let prev = context::enter(cb.swap_context(None));
        EnterContext {
            cb,
            prev: Some(prev),
        }
    }

    /// The hot-path variant for the loop: `None` (nothing to switch, no guard to drop) while
    /// contexts are not in use on this thread; call [`leave_unentered`] after the run then.
    #[inline]
    pub(crate) fn enter_if_active(cb: &'a dyn Callback) -> Option<EnterContext<'a>> {
        if !context::active() {
            return None;
        }
        let prev = context::enter(cb.swap_context(None));
        Some(EnterContext {
            cb,
            prev: Some(prev),
        })
    }
}

/// After a callback ran without [`EnterContext`] (contexts were not in use when it started):
/// if it started using them, keep what it set in the callback and make the current context
/// empty again. (If a `Fatal` unwinds before this, `run_forever` restores its base context.)
#[inline]
pub(crate) fn leave_unentered(cb: &dyn Callback) {
    if context::active() {
        cb.swap_context(context::enter(None));
    }
}

impl Drop for EnterContext<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.prev.take() {
            Some(prev) => {
                self.cb.swap_context(context::enter(prev));
            }
            // The callback may have started using contexts: keep what it set, restore empty.
            None if context::active() => {
                self.cb.swap_context(context::enter(None));
            }
            None => {}
        }
    }
}

/// The type-erased body of a local handle.
pub(crate) trait Callback {
    /// Runs the callback if it was not cancelled (and not run before).
    fn call(&self, lp: &EventLoop);
    /// Cancels: marks and drops the closure.
    fn cancel(&self);
    /// True once cancelled.
    fn is_cancelled(&self) -> bool;
    /// Where it was scheduled.
    fn location(&self) -> &'static Location<'static>;
    /// Swaps the context the callback runs in (the loop enters it around each run).
    fn swap_context(&self, ctx: Snapshot) -> Snapshot;
}

/// The one allocation behind a local [`Handle`].
struct Cb<F> {
    /// Set by `cancel`.
    cancelled: Cell<bool>,
    /// Where the callback was scheduled (`#[track_caller]`).
    location: &'static Location<'static>,
    /// The context captured when it was scheduled.
    ctx: Cell<Snapshot>,
    /// The closure; `None` once run or cancelled.
    f: Cell<Option<F>>,
}

impl<F: FnOnce(&EventLoop) + 'static> Callback for Cb<F> {
    #[inline]
    fn call(&self, lp: &EventLoop) {
        if let Some(f) = self.f.take() {
            f(lp)
        }
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
        drop(self.ctx.take());
    }

    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    #[inline]
    fn swap_context(&self, ctx: Snapshot) -> Snapshot {
        self.ctx.replace(ctx)
    }
}

/// A callback scheduled on the loop (`call_soon`, a timer, a reader or writer).
///
/// Cheap to clone; all clones refer to the same scheduled callback.
///
/// # Examples
///
/// ```
/// use loop_core::EventLoop;
/// use std::{cell::Cell, rc::Rc};
///
/// let lp = EventLoop::new().unwrap();
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// let h = lp.call_soon(move |_| r.set(true)).unwrap();
/// h.cancel();
/// assert!(h.cancelled());
/// lp.call_soon(|lp| lp.stop()).unwrap();
/// lp.run_forever().unwrap();
/// assert!(!ran.get());
/// ```
#[derive(Clone)]
pub struct Handle {
    /// The shared callback cell.
    pub(crate) cb: Rc<dyn Callback>,
}

impl Handle {
    /// Wraps `f` in a handle that is not scheduled yet; the loop's internal `schedule` hook
    /// queues it. Used by event sources such as timers, which keep the handle until its time
    /// comes. The handle captures the current [`Context`](crate::Context): `f` runs in it.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// use loop_core::{EventLoop, Handle};
    /// let lp = EventLoop::new().unwrap();
    /// let h = Handle::new(|lp| lp.stop());
    /// lp.schedule(&h).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    #[track_caller]
    pub fn new(f: impl FnOnce(&EventLoop) + 'static) -> Handle {
        Handle::with_location(Location::caller(), f)
    }

    /// Like [`Handle::new`] with an explicit source location (for APIs that are themselves
    /// `#[track_caller]`).
    ///
    /// ```
    /// let h = loop_core::Handle::with_location(std::panic::Location::caller(), |_| {});
    /// assert!(h.location().file().ends_with(".rs"));
    /// ```
    #[inline]
    pub fn with_location(
        location: &'static Location<'static>,
        f: impl FnOnce(&EventLoop) + 'static,
    ) -> Handle {
        Handle {
            cb: Rc::new(Cb {
                cancelled: Cell::new(false),
                location,
                ctx: Cell::new(context::snapshot()),
                f: Cell::new(Some(f)),
            }),
        }
    }

    /// Cancels the callback: it will not run, and what it captured is dropped now. Repeated
    /// calls do nothing.
    ///
    /// ```
    /// let h = loop_core::Handle::new(|_| {});
    /// h.cancel();
    /// h.cancel();
    /// assert!(h.cancelled());
    /// ```
    pub fn cancel(&self) {
        self.cb.cancel()
    }

    /// True once [`cancel`](Handle::cancel) was called.
    ///
    /// ```
    /// assert!(!loop_core::Handle::new(|_| {}).cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.cb.is_cancelled()
    }

    /// The source location that scheduled this callback.
    ///
    /// ```
    /// let h = loop_core::Handle::new(|_| {});
    /// assert_eq!(h.location().line(), line!() - 1);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.cb.location()
    }

    /// True if both handles refer to the same scheduled callback.
    ///
    /// ```
    /// let h = loop_core::Handle::new(|_| {});
    /// assert!(h.ptr_eq(&h.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        Rc::ptr_eq(&self.cb, &other.cb)
    }

    /// Runs the callback now, on this loop, if it was not cancelled. Event sources call this
    /// from their own dispatch; user code normally lets the loop do it.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let n = Rc::new(Cell::new(0));
    /// let m = n.clone();
    /// let h = loop_core::Handle::new(move |_| m.set(1));
    /// h.run(&lp);
    /// assert_eq!(n.get(), 1);
    /// ```
    pub fn run(&self, lp: &EventLoop) {
        if !self.cb.is_cancelled() {
            let _ctx = EnterContext::new(&*self.cb);
            self.cb.call(lp)
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Handle{} scheduled at {}>",
            if self.cancelled() { " cancelled" } else { "" },
            self.location()
        )
    }
}

/// State values of a remote handle.
pub(crate) const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

/// The type-erased body of a [`RemoteHandle`].
pub(crate) trait RemoteCallback: Send + Sync {
    /// Runs the callback unless cancelled first.
    fn call(&self, lp: &EventLoop);
    /// Cancels it unless it already started.
    fn cancel(&self) -> bool;
    /// The state (PENDING, RUNNING, CANCELLED).
    fn state(&self) -> u8;
    /// Where it was scheduled.
    fn location(&self) -> &'static Location<'static>;
}

/// The allocation behind a [`RemoteHandle`].
struct RemoteCb<F> {
    /// PENDING, RUNNING (started or done) or CANCELLED.
    state: AtomicU8,
    /// Where it was scheduled.
    location: &'static Location<'static>,
    /// The closure, taken by whichever of run and cancel wins.
    f: Mutex<Option<F>>,
}

impl<F: FnOnce(&EventLoop) + Send + 'static> RemoteCallback for RemoteCb<F> {
    fn call(&self, lp: &EventLoop) {
        if self
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let f = self.f.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(f) = f {
                f(lp)
            }
        }
    }

    fn cancel(&self) -> bool {
        let won = self
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            drop(self.f.lock().unwrap_or_else(|e| e.into_inner()).take());
        }
        won
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

/// The handle of a `call_soon_threadsafe` callback: `Send + Sync`, cancellable from any thread.
///
/// `cancel()` and the run are mutually exclusive: the cancel either wins before the callback
/// starts (and it never runs), or it returns `false` and has no effect.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let h = lp.remote().call_soon_threadsafe(|_| unreachable!()).unwrap();
/// let h2 = h.clone();
/// std::thread::spawn(move || assert!(h2.cancel())).join().unwrap();
/// assert!(h.cancelled());
/// ```
#[derive(Clone)]
pub struct RemoteHandle {
    /// The shared callback cell.
    pub(crate) cb: Arc<dyn RemoteCallback>,
}

impl RemoteHandle {
    #[track_caller]
    pub(crate) fn new(f: impl FnOnce(&EventLoop) + Send + 'static) -> RemoteHandle {
        RemoteHandle {
            cb: Arc::new(RemoteCb {
                state: AtomicU8::new(PENDING),
                location: Location::caller(),
                f: Mutex::new(Some(f)),
            }),
        }
    }

    /// Cancels the callback if it has not started; returns whether the cancel won.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let h = lp.remote().call_soon_threadsafe(|_| {}).unwrap();
    /// assert!(h.cancel());
    /// assert!(!h.cancel());
    /// ```
    pub fn cancel(&self) -> bool {
        self.cb.cancel()
    }

    /// True if the cancel won.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let h = lp.remote().call_soon_threadsafe(|_| {}).unwrap();
    /// assert!(!h.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.cb.state() == CANCELLED
    }

    /// True once the callback started running (a later cancel has no effect).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let h = lp.remote().call_soon_threadsafe(|lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// assert!(h.started());
    /// ```
    pub fn started(&self) -> bool {
        self.cb.state() == RUNNING
    }

    /// The source location that scheduled this callback.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let h = lp.remote().call_soon_threadsafe(|_| {}).unwrap();
    /// assert_eq!(h.location().line(), line!() - 1);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.cb.location()
    }
}

impl fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<RemoteHandle scheduled at {}>", self.location())
    }
}

/// A callback that may run many times (fd watchers): the closure is put back after each run
/// unless the handle was cancelled meanwhile.
struct RepeatCb<F> {
    /// Set by `cancel`.
    cancelled: Cell<bool>,
    /// Where the watcher was added.
    location: &'static Location<'static>,
    /// The context captured when the watcher was added; what a run sets is kept for the next.
    ctx: Cell<Snapshot>,
    /// The closure; taken while it runs.
    f: Cell<Option<F>>,
}

impl<F: FnMut(&EventLoop) + 'static> Callback for RepeatCb<F> {
    fn call(&self, lp: &EventLoop) {
        if let Some(mut f) = self.f.take() {
            match catch_unwind(AssertUnwindSafe(|| f(lp))) {
                Ok(()) => {
                    if !self.cancelled.get() {
                        self.f.set(Some(f));
                    }
                }
                Err(p) => {
                    // A watcher whose callback panicked is cancelled: the panic is reported once
                    // (by the loop), and the registration is removed the next time the fd is
                    // reported ready (NET-07), instead of failing again every iteration.
                    // A `Fatal` only stops the loop: the watcher stays.
                    if p.is::<crate::Fatal>() && !self.cancelled.get() {
                        self.f.set(Some(f));
                    } else {
                        self.cancelled.set(true);
                        drop(f);
                    }
                    resume_unwind(p);
                }
            }
        }
    }

    fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
        drop(self.ctx.take());
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn swap_context(&self, ctx: Snapshot) -> Snapshot {
        self.ctx.replace(ctx)
    }
}

/// A handle whose callback runs each time it is queued (fd watchers).
pub(crate) fn handle_repeat(
    location: &'static Location<'static>,
    f: impl FnMut(&EventLoop) + 'static,
) -> Handle {
    Handle {
        cb: Rc::new(RepeatCb {
            cancelled: Cell::new(false),
            location,
            ctx: Cell::new(context::snapshot()),
            f: Cell::new(Some(f)),
        }),
    }
}
