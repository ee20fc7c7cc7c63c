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

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::Arc;

use crate::context::{self, Snapshot};
use crate::event_loop::{RemoteNode, Work};
use crate::remote_cell::{TakeOnce, CANCELLED, RUNNING};
use crate::remote_pool::SpareRemote;
use crate::remote_queue::{Fresh, IntoNode, Link, Linked};
use crate::slot::DoneCallback;
use crate::work::{Callback, EnterContext, RemoteCallback};
use crate::{Error, EventLoop, Remote, Result};

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

impl<F> Cb<F> {
    /// A callback scheduled at `location`, in the current context.
    #[inline(always)]
    fn new(location: &'static Location<'static>, f: F) -> Cb<F> {
        Cb {
            cancelled: Cell::new(false),
            location,
            ctx: Cell::new(context::snapshot()),
            f: Cell::new(Some(f)),
        }
    }
}

impl<F: FnOnce(&EventLoop) + 'static> Callback<EventLoop> for Cb<F> {
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

    #[inline]
    fn run_queued(self: Rc<Self>, lp: &EventLoop) {
        lp.run_callback(&*self);
        // Nobody else holds it (no handle, no weak reference that could come back to it): the
        // allocation becomes the loop's spare, its closure already dropped by the run (or the
        // cancel) and its context dropped now, so that the spare keeps nothing of the user's
        // alive. It replaces the spare kept before: the most recent type is the likeliest next.
        if Rc::strong_count(&self) == 1 && Rc::weak_count(&self) == 0 {
            drop(self.ctx.take());
            lp.inner.spare_handle.set(Some(self));
        }
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
    pub(crate) cb: Rc<dyn Callback<EventLoop>>,
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
            cb: Rc::new(Cb::new(location, f)),
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

/// A local callback in the loop's spare handle allocation if it holds one of the same closure
/// type (left there by the iteration: a handle that ran or was cancelled and that nobody else
/// held, its closure and context already dropped), else in a new one. In a chain of callbacks
/// each scheduling the next, the two allocations are reused turn by turn: no allocator call.
#[inline(always)]
fn reuse_or_new<F: FnOnce(&EventLoop) + 'static>(
    spare: &Cell<Option<Rc<dyn Any>>>,
    location: &'static Location<'static>,
    f: F,
) -> Rc<dyn Callback<EventLoop>> {
    if let Some(any) = spare.take() {
        match any.downcast::<Cb<F>>() {
            Ok(mut rc) => {
                if let Some(cb) = Rc::get_mut(&mut rc) {
                    *cb.cancelled.get_mut() = false;
                    cb.location = location;
                    // A spare holds neither a context nor a closure (`run_queued` keeps only
                    // such): what is replaced here is `None`, which needs no drop, so the
                    // writes skip the drop checks. Were it ever not `None`, forgetting it
                    // would leak it, nothing worse.
                    let old_ctx = std::mem::replace(cb.ctx.get_mut(), context::snapshot());
                    debug_assert!(old_ctx.is_none());
                    std::mem::forget(old_ctx);
                    let old_f = cb.f.get_mut().replace(f);
                    debug_assert!(old_f.is_none());
                    std::mem::forget(old_f);
                    return rc;
                }
                // Shared after all (the loop keeps only unshared ones): leave it.
                return Rc::new(Cb::new(location, f));
            }
            // Another closure type: it stays for its own kind.
            Err(other) => spare.set(Some(other)),
        }
    }
    Rc::new(Cb::new(location, f))
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

/// The allocation behind a [`RemoteHandle`], which is also its node in the loop's remote
/// queue.
struct RemoteCb<F> {
    /// Its link in the loop's remote queue.
    link: Link<dyn RemoteNode>,
    /// Where it was scheduled.
    location: &'static Location<'static>,
    /// The closure and its state (PENDING, RUNNING or CANCELLED): whichever of the run and a
    /// cancel comes first takes the closure, without a lock.
    f: TakeOnce<F>,
}

impl<F: FnOnce(&EventLoop) + Send + 'static> RemoteCallback<EventLoop> for RemoteCb<F> {
    fn cancel(&self) -> bool {
        self.f.cancel()
    }

    #[inline]
    fn state(&self) -> u8 {
        self.f.state()
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    #[inline]
    fn run_queued(self: Arc<Self>, lp: &EventLoop) {
        // The closure is claimed first: a cancel that won leaves nothing to run or count.
        if let Some(f) = self.f.start() {
            lp.run_remote(self.location, f);
        }
        let inner = &*lp.inner;
        inner.spent_remote.keep(self, &inner.shared.spare_remote);
    }
}

impl<F> Linked<dyn RemoteNode> for RemoteCb<F> {
    #[inline]
    fn link(&self) -> &Link<dyn RemoteNode> {
        &self.link
    }
}

impl<F: FnOnce(&EventLoop) + Send + 'static> RemoteNode for RemoteCb<F> {
    #[inline]
    fn run_queued(self: Arc<Self>, lp: &EventLoop) {
        RemoteCallback::run_queued(self, lp)
    }

    #[inline]
    fn into_work(self: Arc<Self>) -> Work {
        Work::Remote(self)
    }
}

impl<F: FnOnce(&EventLoop) + Send + 'static> IntoNode<dyn RemoteNode> for RemoteCb<F> {
    #[inline]
    fn into_node(self: Arc<Self>) -> Arc<dyn RemoteNode> {
        self
    }
}

/// A remote callback running `f`: a spent allocation of its type from `spare` refilled, else a
/// new one.
#[inline]
fn take_or_new<F: FnOnce(&EventLoop) + Send + 'static>(
    spare: &SpareRemote,
    location: &'static Location<'static>,
    f: F,
) -> Fresh<RemoteCb<F>> {
    if let Some(mut fresh) = spare.take::<RemoteCb<F>>() {
        let cb = fresh.get_mut();
        cb.location = location;
        cb.f.refill(f);
        return fresh;
    }
    // None kept, or one of another closure type (freed here).
    Fresh::new(RemoteCb {
        link: Link::new(),
        location,
        f: TakeOnce::new(f),
    })
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
    pub(crate) cb: Arc<dyn RemoteCallback<EventLoop>>,
}

impl RemoteHandle {
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

impl<F: FnMut(&EventLoop) + 'static> Callback<EventLoop> for RepeatCb<F> {
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

    fn run_queued(self: Rc<Self>, lp: &EventLoop) {
        lp.run_callback(&*self)
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

impl Remote {
    /// Schedules `f` to run on the loop's thread, from any thread, and wakes the loop.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop was closed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = lp.remote();
    /// std::thread::spawn(move || r.call_soon_threadsafe(|lp| lp.stop()).unwrap()).join().unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    #[track_caller]
    #[inline]
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> Result<RemoteHandle> {
        let node = take_or_new(&self.shared.spare_remote, Location::caller(), f);
        match self.shared.push_node(node) {
            Some(cb) => Ok(RemoteHandle { cb }),
            None => Err(Error::Closed),
        }
    }
}

impl EventLoop {
    /// Schedules `f` to run on the next iteration; callbacks run once each, in the order they
    /// were scheduled. The handle cancels it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let order = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let o = order.clone();
    ///     lp.call_soon(move |_| o.borrow_mut().push(i)).unwrap();
    /// }
    /// lp.call_soon(|lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(*order.borrow(), [0, 1, 2]);
    /// ```
    #[track_caller]
    #[inline]
    pub fn call_soon(&self, f: impl FnOnce(&EventLoop) + 'static) -> Result<Handle> {
        self.check_open()?;
        let h = Handle {
            cb: reuse_or_new(&self.inner.spare_handle, Location::caller(), f),
        };
        self.push_ready(Work::Call(h.cb.clone()));
        Ok(h)
    }

    /// Queues an existing handle (event sources use this for due work); see
    /// [`LoopInternals::schedule`](crate::internal::LoopInternals::schedule).
    pub(crate) fn schedule(&self, h: &Handle) -> Result<()> {
        self.check_open()?;
        self.push_ready(Work::Call(h.cb.clone()));
        Ok(())
    }

    /// `call_soon_threadsafe` from the loop's own thread (CORE-19): the callback is queued
    /// after everything queued before it, by this thread or any other, and its handle can be
    /// cancelled from any thread. No wake-up is written: the caller is the loop's thread.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let o = order.clone();
    /// lp.call_soon_threadsafe(move |_| o.lock().unwrap().push("threadsafe")).unwrap();
    /// let o = order.clone();
    /// lp.call_soon(move |lp| { o.lock().unwrap().push("soon"); lp.stop() }).unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(*order.lock().unwrap(), ["threadsafe", "soon"]);
    /// ```
    #[track_caller]
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> Result<RemoteHandle> {
        self.check_open()?;
        let cb = take_or_new(&self.inner.shared.spare_remote, Location::caller(), f).into_arc();
        let h = RemoteHandle { cb: cb.clone() };
        self.push_ready(Work::Remote(cb));
        Ok(h)
    }
}

impl<A: 'static> DoneCallback<A> {
    /// Schedules the callback with `arg` (through the ready queue, never synchronously).
    pub(crate) fn schedule(self, lp: &EventLoop, arg: A) {
        let DoneCallback {
            f, ctx, location, ..
        } = self;
        let prev = context::enter(ctx);
        let h = Handle::with_location(location, move |_| f(&arg));
        context::enter(prev);
        // Scheduling fails only on a closed loop, where nothing runs any more.
        let _ = lp.schedule(&h);
    }
}
