//! The loop itself: the ready queue, one iteration, running, stopping and closing.
//!
//! One iteration (asyncio's `_run_once`):
//!
//! 1. take what other threads queued (`call_soon_threadsafe`, tasks woken elsewhere);
//! 2. compute the poll timeout: zero if work is ready or a stop was requested, else the
//!    earliest deadline any [`Source`] reports (capped at one day), else infinite;
//! 3. poll epoll and queue the ready I/O work, then let every source queue what is due;
//! 4. run exactly the work that is queued at that point, in FIFO order. What it schedules runs
//!    in the next iteration.
//!
//! **Poll skipping.** While work is ready, a zero-timeout `epoll_wait` would be a system call
//! per iteration for nothing most of the time, so the loop skips it: I/O readiness is observed
//! at least every [`POLL_EVERY`] iterations while the loop is busy, and at once when it has
//! nothing ready. Work queued by other threads is taken every iteration (an atomic check). An
//! iteration that does poll keeps the order above exactly.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use async_task::Runnable;
use concurrent_queue::ConcurrentQueue;

use crate::exception::ExceptionHandler;
use crate::handle::{Callback, RemoteCallback};
use crate::reactor::{IoHandler, Reactor, Readiness};
use crate::task::TaskSlab;
use crate::{Error, Exception, ExceptionContext, Handle, RemoteHandle, Result};

/// While work is ready, I/O is polled at least once per this many iterations.
pub const POLL_EVERY: u32 = 64;

/// The poller is never asked to wait longer than one day (TIMER-14).
pub const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Default slow-callback threshold of debug mode.
pub const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);

/// A unit of work in the ready queue.
pub(crate) enum Work {
    /// A local callback.
    Call(Rc<dyn Callback>),
    /// A callback from `call_soon_threadsafe`.
    Remote(Arc<dyn RemoteCallback>),
    /// A task step.
    Task(Runnable),
    /// Readiness for a registered handler.
    Io(Rc<dyn IoHandler>, Readiness),
    /// A stop request from another thread.
    Stop,
}

/// Work queued from other threads.
pub(crate) enum RemoteWork {
    /// A `call_soon_threadsafe` callback.
    Call(Arc<dyn RemoteCallback>),
    /// A task woken off the loop's thread.
    Task(Runnable),
    /// `Remote::stop`.
    Stop,
}

/// The part of a loop other threads can reach.
pub(crate) struct Shared {
    /// Loop id (unique in the process).
    pub(crate) id: u64,
    /// The thread that created the loop.
    pub(crate) thread: ThreadId,
    /// Work from other threads.
    queue: ConcurrentQueue<RemoteWork>,
    /// Set after each push to `queue`, cleared by the loop before it drains the queue: the
    /// loop's "anything from other threads?" check is one load.
    pending: AtomicBool,
    /// True from the first wake-up write until the loop sees it: wakes coalesce.
    notified: AtomicBool,
    /// The eventfd that wakes `epoll_wait`; `None` once closed.
    wake_fd: RwLock<Option<OwnedFd>>,
    /// Set by `close()`.
    closed: AtomicBool,
}

impl Shared {
    /// Queues remote work and wakes the loop. Gives the work back if the loop is closed.
    pub(crate) fn push(&self, w: RemoteWork) -> std::result::Result<(), RemoteWork> {
        if self.closed.load(Ordering::Acquire) {
            return Err(w);
        }
        if let Err(e) = self.queue.push(w) {
            return Err(e.into_inner());
        }
        // A read-modify-write, not a store: it extends the release sequence of earlier pushes
        // from other threads, so the loop's acquiring swap sees every item pushed before it.
        self.pending.swap(true, Ordering::SeqCst);
        self.notify();
        Ok(())
    }

    /// True if other threads queued work since the loop last took it.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Wakes the loop if it was not woken since it last looked (CORE-19, CORE-20).
    pub(crate) fn notify(&self) {
        if self.notified.swap(true, Ordering::SeqCst) {
            return;
        }
        let guard = self.wake_fd.read().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = guard.as_ref() {
            // EAGAIN (counter full) means a wake-up is pending anyway; EBADF cannot happen
            // while the lock is held. Either way the failure is only worth a debug line.
            if let Err(e) = rustix::io::write(fd, &1u64.to_ne_bytes()) {
                tracing::debug!("loop wake-up write failed: {e}");
            }
        }
    }

    /// Disposes of a task step that can no longer run: dropped on the loop's thread, leaked
    /// elsewhere (a local task's future must not be dropped on another thread).
    fn dispose(&self, w: RemoteWork) {
        match w {
            RemoteWork::Task(r) if std::thread::current().id() != self.thread => {
                std::mem::forget(r)
            }
            other => drop(other),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        while let Ok(w) = self.queue.pop() {
            self.dispose(w);
        }
    }
}

/// An event source polled once per iteration: timers are one.
///
/// ```
/// use loop_core::{EventLoop, Source};
/// use std::time::Instant;
///
/// struct Never;
/// impl Source for Never {
///     fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> { None }
///     fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
///     fn close(&self, _lp: &EventLoop) {}
/// }
/// let lp = EventLoop::new().unwrap();
/// lp.add_source(std::rc::Rc::new(Never));
/// ```
pub trait Source {
    /// The earliest time something of this source becomes due, if any. Called before each
    /// blocking poll; may drop cancelled entries on the way (TIMER-15).
    fn next_deadline(&self, lp: &EventLoop) -> Option<Instant>;
    /// Queues (with [`EventLoop::schedule`]) everything due at `now`. Called once per iteration,
    /// after I/O was polled.
    fn dispatch(&self, lp: &EventLoop, now: Instant);
    /// Drops everything pending without running it (`close()`).
    fn close(&self, lp: &EventLoop);
}

/// Counters of what the loop did, from [`EventLoop::stats`].
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// lp.call_soon(|lp| lp.stop()).unwrap();
/// lp.run_forever().unwrap();
/// let s = lp.stats();
/// assert_eq!(s.iterations, 1);
/// assert_eq!(s.callbacks, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Loop iterations.
    pub iterations: u64,
    /// Callbacks run (local and thread-safe; fd watchers and timers included).
    pub callbacks: u64,
    /// Task steps run.
    pub tasks_polled: u64,
    /// I/O events delivered.
    pub io_events: u64,
    /// `epoll_wait` calls.
    pub polls: u64,
    /// Largest ready-queue length seen at the start of a run phase.
    pub ready_high_water: u64,
    /// Callbacks or task steps that took longer than the slow-callback threshold (debug mode).
    pub slow_callbacks: u64,
    /// Time spent blocked in `epoll_wait` with a non-zero timeout.
    pub poll_time: Duration,
    /// File descriptors registered now.
    pub fds_registered: u64,
}

/// A hook run by `close()`, with the place that registered it.
type CloseHook = (Box<dyn FnOnce(&EventLoop)>, &'static Location<'static>);

/// Stats counters (cells, so updating them is a plain add).
#[derive(Default)]
struct Counters {
    /// See [`Stats::iterations`].
    iterations: Cell<u64>,
    /// See [`Stats::callbacks`].
    callbacks: Cell<u64>,
    /// See [`Stats::tasks_polled`].
    tasks_polled: Cell<u64>,
    /// See [`Stats::io_events`].
    io_events: Cell<u64>,
    /// See [`Stats::polls`].
    polls: Cell<u64>,
    /// See [`Stats::ready_high_water`].
    ready_high_water: Cell<u64>,
    /// See [`Stats::slow_callbacks`].
    slow_callbacks: Cell<u64>,
    /// See [`Stats::poll_time`].
    poll_time: Cell<Duration>,
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// The loop's state, behind the `Rc` of [`EventLoop`].
pub(crate) struct Inner {
    /// What other threads reach.
    pub(crate) shared: Arc<Shared>,
    /// The ready queue.
    pub(crate) ready: RefCell<VecDeque<Work>>,
    /// epoll and the registrations.
    pub(crate) reactor: Reactor,
    /// `run_*` is executing.
    running: Cell<bool>,
    /// `stop()` was requested.
    stopping: Cell<bool>,
    /// `close()` was called.
    closed: Cell<bool>,
    /// Debug mode.
    debug: Cell<bool>,
    /// Debug mode's slow-callback threshold.
    slow_callback: Cell<Duration>,
    /// Iterations since the last poll while busy.
    skipped_polls: Cell<u32>,
    /// Custom exception handler.
    pub(crate) exception_handler: RefCell<Option<ExceptionHandler>>,
    /// Task factory.
    pub(crate) task_factory: RefCell<Option<crate::TaskFactory>>,
    /// Pending tasks of this loop.
    pub(crate) tasks: RefCell<TaskSlab>,
    /// Location of the callback executing now (for `handle_traceback`).
    pub(crate) current_location: Cell<Option<&'static Location<'static>>>,
    /// Event sources (timers, ...).
    sources: RefCell<Vec<Rc<dyn Source>>>,
    /// Per-loop state of extension crates, by type.
    extensions: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    /// Run at `close()`, in order of registration.
    close_hooks: RefCell<Vec<CloseHook>>,
    /// Run by the runner before `close()` (see `on_shutdown`).
    pub(crate) shutdown_hooks: RefCell<Vec<crate::runner::ShutdownHook>>,
    /// Finalizable async resources (`shutdown_asyncgens`).
    pub(crate) resources: RefCell<crate::runner::Resources>,
    /// Stats counters.
    counters: Counters,
}

thread_local! {
    /// The loop running on this thread.
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// Calls `f` with the loop running on this thread, if any.
pub(crate) fn with_running<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
    let mut f = Some(f);
    match RUNNING.try_with(|r| {
        let r = r.borrow();
        (f.take().expect("called once"))(r.as_ref())
    }) {
        Ok(v) => v,
        Err(_) => (f.take().expect("not called"))(None),
    }
}

/// Loop ids.
static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// An asyncio-style event loop: one per thread, running callbacks and tasks in a documented
/// order. A cheap `Clone` handle (`Rc` inside); not `Send` — use [`Remote`] from other threads.
///
/// # Examples
///
/// ```
/// use loop_core::EventLoop;
///
/// let lp = EventLoop::new().unwrap();
/// lp.call_soon(|_| println!("Hello World")).unwrap();
/// lp.call_soon(|lp| lp.stop()).unwrap();
/// lp.run_forever().unwrap();
/// lp.close().unwrap();
/// ```
///
/// `EventLoop` cannot be sent to another thread (use [`EventLoop::remote`]):
///
/// ```compile_fail
/// let lp = loop_core::EventLoop::new().unwrap();
/// std::thread::spawn(move || lp.stop());
/// ```
#[derive(Clone)]
pub struct EventLoop {
    /// The shared loop state.
    pub(crate) inner: Rc<Inner>,
}

/// A `Send + Sync` handle to a loop, for other threads: `call_soon_threadsafe` and `stop`.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let remote = lp.remote();
/// std::thread::spawn(move || {
///     remote.call_soon_threadsafe(|lp| lp.stop()).unwrap();
/// });
/// lp.run_forever().unwrap();
/// ```
#[derive(Clone)]
pub struct Remote {
    /// The loop's shared part.
    pub(crate) shared: Arc<Shared>,
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
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> Result<RemoteHandle> {
        let h = RemoteHandle::new(f);
        match self.shared.push(RemoteWork::Call(h.cb.clone())) {
            Ok(()) => Ok(h),
            Err(w) => {
                self.shared.dispose(w);
                Err(Error::Closed)
            }
        }
    }

    /// Asks the loop to stop (as [`EventLoop::stop`] from its own thread).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop was closed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = lp.remote();
    /// std::thread::spawn(move || r.stop().unwrap());
    /// lp.run_forever().unwrap();
    /// ```
    pub fn stop(&self) -> Result<()> {
        self.shared
            .push(RemoteWork::Stop)
            .map_err(|_| Error::Closed)
    }

    /// True once the loop was closed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = lp.remote();
    /// lp.close().unwrap();
    /// assert!(r.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// True if the calling thread is the loop's thread.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.remote().is_loop_thread());
    /// ```
    pub fn is_loop_thread(&self) -> bool {
        std::thread::current().id() == self.shared.thread
    }

    pub(crate) fn push_task(&self, r: Runnable) {
        if let Err(w) = self.shared.push(RemoteWork::Task(r)) {
            self.shared.dispose(w);
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Remote loop={}>", self.shared.id)
    }
}

/// Runs what it guards in the empty context, then restores the previous one.
struct EmptyContext(Option<crate::context::Snapshot>);

impl EmptyContext {
    #[inline]
    fn enter() -> EmptyContext {
        EmptyContext(Some(crate::context::enter(None)))
    }
}

impl Drop for EmptyContext {
    #[inline]
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            crate::context::enter(prev);
        }
    }
}

/// Resets the running state when `run_forever` returns or unwinds.
struct RunGuard<'a> {
    /// The loop.
    lp: &'a EventLoop,
    /// The thread's context when `run_forever` started, current again when it returns (a
    /// `Fatal` unwinding out of a callback may leave the callback's context current).
    base_context: crate::context::Snapshot,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.lp.inner.running.set(false);
        self.lp.inner.stopping.set(false);
        // A `Fatal` unwinding out of a callback leaves no stale "executing" location behind.
        self.lp.inner.current_location.set(None);
        let prev = RUNNING.try_with(|r| r.borrow_mut().take());
        drop(prev);
        if crate::context::active() {
            drop(crate::context::enter(self.base_context.take()));
        }
    }
}

impl EventLoop {
    /// Creates a loop bound to the current thread. Debug mode starts on if the environment
    /// variable `EVLOOP_DEBUG` is set to anything but `""` or `"0"`.
    ///
    /// # Errors
    ///
    /// The error of `epoll_create1` or `eventfd` (e.g. `EMFILE`).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(!lp.is_running());
    /// ```
    pub fn new() -> Result<EventLoop> {
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        let reactor = Reactor::new(std::os::fd::AsFd::as_fd(&wake))?;
        let debug = matches!(std::env::var("EVLOOP_DEBUG"), Ok(v) if !v.is_empty() && v != "0");
        Ok(EventLoop {
            inner: Rc::new(Inner {
                shared: Arc::new(Shared {
                    id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
                    thread: std::thread::current().id(),
                    queue: ConcurrentQueue::unbounded(),
                    pending: AtomicBool::new(false),
                    notified: AtomicBool::new(false),
                    wake_fd: RwLock::new(Some(wake)),
                    closed: AtomicBool::new(false),
                }),
                ready: RefCell::new(VecDeque::with_capacity(256)),
                reactor,
                running: Cell::new(false),
                stopping: Cell::new(false),
                closed: Cell::new(false),
                debug: Cell::new(debug),
                slow_callback: Cell::new(DEFAULT_SLOW_CALLBACK),
                skipped_polls: Cell::new(0),
                exception_handler: RefCell::new(None),
                task_factory: RefCell::new(None),
                tasks: RefCell::new(TaskSlab::default()),
                current_location: Cell::new(None),
                sources: RefCell::new(Vec::new()),
                extensions: RefCell::new(HashMap::new()),
                close_hooks: RefCell::new(Vec::new()),
                shutdown_hooks: RefCell::new(Vec::new()),
                resources: RefCell::new(crate::runner::Resources::default()),
                counters: Counters::default(),
            }),
        })
    }

    /// The loop running on the current thread.
    ///
    /// # Errors
    ///
    /// [`Error::NoRunningLoop`] when no loop runs on this thread.
    ///
    /// ```
    /// use loop_core::EventLoop;
    /// assert!(EventLoop::current().is_err());
    /// let lp = EventLoop::new().unwrap();
    /// lp.call_soon(|lp| {
    ///     assert!(EventLoop::current().unwrap().ptr_eq(lp));
    ///     lp.stop();
    /// }).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    pub fn current() -> Result<EventLoop> {
        with_running(|lp| lp.cloned()).ok_or(Error::NoRunningLoop)
    }

    /// True if both handles are the same loop.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.ptr_eq(&lp.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// A process-unique id of this loop.
    ///
    /// ```
    /// let a = loop_core::EventLoop::new().unwrap();
    /// let b = loop_core::EventLoop::new().unwrap();
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.shared.id
    }

    /// The thread-safe handle of this loop.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r: loop_core::Remote = lp.remote();
    /// # drop(r);
    /// ```
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.shared.clone(),
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

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
    pub fn call_soon(&self, f: impl FnOnce(&EventLoop) + 'static) -> Result<Handle> {
        self.check_open()?;
        let h = Handle::with_location(Location::caller(), f);
        self.push_ready(Work::Call(h.cb.clone()));
        Ok(h)
    }

    /// Appends to the ready queue. Work queued by other threads before this call is moved in
    /// first, so that FIFO order across `call_soon` and `call_soon_threadsafe` follows the time
    /// of enqueueing (CORE-19). Costs one atomic load when nothing came from other threads.
    #[inline]
    pub(crate) fn push_ready(&self, w: Work) {
        if self.inner.shared.has_pending() {
            self.take_remote();
        }
        self.inner.ready.borrow_mut().push_back(w);
    }

    /// Queues an existing handle (event sources use this for due work).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.schedule(&loop_core::Handle::new(|lp| lp.stop())).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    pub fn schedule(&self, h: &Handle) -> Result<()> {
        self.check_open()?;
        self.push_ready(Work::Call(h.cb.clone()));
        Ok(())
    }

    /// Queues readiness for an [`IoHandler`] as if the poller had reported it (used by
    /// transports to retry a read after `resume_reading` on an edge-triggered fd).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`.
    ///
    /// ```
    /// use loop_core::{EventLoop, IoHandler, Readiness};
    /// struct Stop;
    /// impl IoHandler for Stop { fn ready(&self, lp: &EventLoop, _: Readiness) { lp.stop() } }
    /// let lp = EventLoop::new().unwrap();
    /// lp.schedule_io(std::rc::Rc::new(Stop), Readiness::READABLE).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    pub fn schedule_io(&self, handler: Rc<dyn IoHandler>, r: Readiness) -> Result<()> {
        self.check_open()?;
        self.push_ready(Work::Io(handler, r));
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
        let h = RemoteHandle::new(f);
        self.push_ready(Work::Remote(h.cb.clone()));
        Ok(h)
    }

    /// Runs until [`stop`](EventLoop::stop) is called. A `stop()` made before the call makes it
    /// run exactly one iteration (polling with a zero timeout).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::AlreadyRunning`] (called from inside this loop),
    /// [`Error::AnotherLoopRunning`] (another loop runs on this thread).
    ///
    /// # Panics
    ///
    /// Only a [`Fatal`](crate::Fatal) panic from user code unwinds out of it; the loop is then
    /// stopped, not running, and can be run again.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.stop();
    /// lp.run_forever().unwrap(); // one iteration, then returns
    /// ```
    pub fn run_forever(&self) -> Result<()> {
        self.check_can_run()?;
        self.inner.running.set(true);
        RUNNING.with(|r| *r.borrow_mut() = Some(self.clone()));
        let _guard = RunGuard {
            lp: self,
            base_context: crate::context::snapshot(),
        };
        loop {
            self.run_once();
            if self.inner.stopping.get() {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn check_can_run(&self) -> Result<()> {
        self.check_open()?;
        if self.inner.running.get() {
            return Err(Error::AlreadyRunning);
        }
        if with_running(|r| r.is_some()) {
            return Err(Error::AnotherLoopRunning);
        }
        Ok(())
    }

    /// Asks the loop to stop: the current iteration finishes the callbacks that were ready when
    /// it began, then `run_forever` returns. Work scheduled meanwhile stays queued for the next
    /// run.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_soon(|lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// True while `run_forever` / `run_until_complete` executes.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_soon(|lp| { assert!(lp.is_running()); lp.stop() }).unwrap();
    /// lp.run_forever().unwrap();
    /// assert!(!lp.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// True once [`close`](EventLoop::close) was called.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(!lp.is_closed());
    /// lp.close().unwrap();
    /// assert!(lp.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Closes the loop: runs the close hooks of extension crates (executor shutdown without
    /// waiting, signal handlers removed, see [`on_close`](EventLoop::on_close)), drops every
    /// pending callback and timer without running it, tears pending tasks down (reporting each
    /// as "Task was destroyed but it is pending!"), drops the fd watchers and closes the epoll
    /// fd and the wake-up eventfd. Idempotent. Dropping the last handle of an unclosed loop
    /// closes it the same way.
    ///
    /// After `close()`, scheduling anything fails with [`Error::Closed`];
    /// [`remove_reader`](EventLoop::remove_reader) returns `Ok(false)`, and
    /// [`create_future`](EventLoop::create_future) still works.
    ///
    /// # Errors
    ///
    /// [`Error::CloseRunning`] while the loop runs.
    ///
    /// # Panics
    ///
    /// A [`Fatal`](crate::Fatal) raised by a close hook unwinds out of `close()`, after the loop
    /// is fully closed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.close().unwrap();
    /// lp.close().unwrap();
    /// ```
    pub fn close(&self) -> Result<()> {
        if self.inner.running.get() {
            return Err(Error::CloseRunning);
        }
        if self.inner.closed.get() {
            return Ok(());
        }
        self.inner.close_impl(Some(self));
        Ok(())
    }

    /// Debug mode on or off (takes effect at once).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.set_debug(true);
    /// assert!(lp.get_debug());
    /// ```
    pub fn set_debug(&self, on: bool) {
        self.inner.debug.set(on);
    }

    /// Whether debug mode is on.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.set_debug(false);
    /// assert!(!lp.get_debug());
    /// ```
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// Debug mode's slow-callback threshold (default 100 ms).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert_eq!(lp.slow_callback_duration(), std::time::Duration::from_millis(100));
    /// ```
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback.get()
    }

    /// Sets debug mode's slow-callback threshold.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.set_slow_callback_duration(std::time::Duration::from_millis(5));
    /// assert_eq!(lp.slow_callback_duration().as_millis(), 5);
    /// ```
    pub fn set_slow_callback_duration(&self, d: Duration) {
        self.inner.slow_callback.set(d);
    }

    /// What the loop did so far.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert_eq!(lp.stats().iterations, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            iterations: c.iterations.get(),
            callbacks: c.callbacks.get(),
            tasks_polled: c.tasks_polled.get(),
            io_events: c.io_events.get(),
            polls: c.polls.get(),
            ready_high_water: c.ready_high_water.get(),
            slow_callbacks: c.slow_callbacks.get(),
            poll_time: c.poll_time.get(),
            fds_registered: self.inner.reactor.len() as u64,
        }
    }

    /// The loop's clock.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.now() <= std::time::Instant::now());
    /// ```
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Adds an event source, polled every iteration.
    ///
    /// See [`Source`] for an example.
    pub fn add_source(&self, s: Rc<dyn Source>) {
        self.inner.sources.borrow_mut().push(s);
    }

    /// Per-loop state of type `T`, created by `init` on first use (extension crates keep their
    /// state here).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let a = lp.extension(|_| std::cell::Cell::new(5u32));
    /// let b = lp.extension(|_| std::cell::Cell::new(0u32));
    /// assert_eq!(b.get(), 5);
    /// # drop(a);
    /// ```
    pub fn extension<T: 'static>(&self, init: impl FnOnce(&EventLoop) -> T) -> Rc<T> {
        let id = TypeId::of::<T>();
        if let Some(v) = self.inner.extensions.borrow().get(&id) {
            return v.clone().downcast::<T>().expect("keyed by type");
        }
        let v = Rc::new(init(self));
        self.inner
            .extensions
            .borrow_mut()
            .entry(id)
            .or_insert_with(|| v.clone() as Rc<dyn Any>)
            .clone()
            .downcast::<T>()
            .expect("keyed by type")
    }

    /// Registers `f` to run once when the loop is closed, after the loop is marked closed and
    /// before pending work is dropped. Hooks run in registration order; a hook that panics is
    /// reported to the exception handler and the others still run. Extension crates use this
    /// for what `close()` must do without waiting (the executor is shut down without waiting,
    /// signal handlers are removed). Hooks also run when the last handle of an unclosed loop is
    /// dropped.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let closed = Rc::new(Cell::new(false));
    /// let c = closed.clone();
    /// lp.on_close(move |_| c.set(true));
    /// lp.close().unwrap();
    /// assert!(closed.get());
    /// ```
    #[track_caller]
    pub fn on_close(&self, f: impl FnOnce(&EventLoop) + 'static) {
        self.inner
            .close_hooks
            .borrow_mut()
            .push((Box::new(f), Location::caller()));
    }

    /// Runs one iteration.
    fn run_once(&self) {
        let inner = &*self.inner;
        bump(&inner.counters.iterations, 1);
        if inner.shared.has_pending() {
            self.take_remote();
        }
        let busy = !inner.ready.borrow().is_empty();
        let stopping = inner.stopping.get();
        let timeout = if busy || stopping {
            let skipped = inner.skipped_polls.get();
            if !stopping && skipped < POLL_EVERY {
                inner.skipped_polls.set(skipped + 1);
                None
            } else {
                Some(Some(Duration::ZERO))
            }
        } else {
            Some(self.next_timeout())
        };
        if let Some(timeout) = timeout {
            inner.skipped_polls.set(0);
            bump(&inner.counters.polls, 1);
            let start = match timeout {
                Some(Duration::ZERO) => None,
                _ => Some(Instant::now()),
            };
            let before = inner.ready.borrow().len();
            let (_, woken) = inner.reactor.poll(timeout, &inner.ready);
            if let Some(start) = start {
                let c = &inner.counters.poll_time;
                c.set(c.get() + start.elapsed());
            }
            bump(
                &inner.counters.io_events,
                (inner.ready.borrow().len() - before) as u64,
            );
            if woken {
                inner.shared.notified.store(false, Ordering::SeqCst);
                // Drain first, then re-arm: a wake-up written after the re-arm must stay in the
                // eventfd for the next poll. (Re-arming first let this drain swallow such a
                // write while `notified` stayed true: every later wake-up was then skipped and
                // the loop could block with work queued.)
                let guard = inner
                    .shared
                    .wake_fd
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(fd) = guard.as_ref() {
                    let mut buf = [0u8; 8];
                    loop {
                        match rustix::io::read(fd, &mut buf) {
                            Err(rustix::io::Errno::INTR) => continue,
                            Err(rustix::io::Errno::AGAIN) | Ok(_) => break,
                            Err(e) => {
                                tracing::error!("reading the loop's wake-up eventfd failed: {e}");
                                break;
                            }
                        }
                    }
                }
                drop(guard);
                // SeqCst pairs with the producer's `pending` then `notified` swaps: either the
                // producer sees `notified == false` and writes a new wake-up, or this check
                // sees its work.
                if inner.shared.pending.load(Ordering::SeqCst) {
                    self.take_remote();
                }
            }
        }
        // Sources (timers) after I/O.
        let mut i = 0;
        let mut now = None;
        loop {
            let s = match inner.sources.borrow().get(i) {
                Some(s) => s.clone(),
                None => break,
            };
            let t = *now.get_or_insert_with(|| self.now());
            s.dispatch(self, t);
            i += 1;
        }
        // Run exactly what is ready now.
        let n = inner.ready.borrow().len();
        if n as u64 > inner.counters.ready_high_water.get() {
            inner.counters.ready_high_water.set(n as u64);
        }
        for _ in 0..n {
            let w = inner.ready.borrow_mut().pop_front();
            match w {
                Some(w) => self.run_work(w),
                None => break,
            }
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let mut deadline: Option<Instant> = None;
        let mut i = 0;
        loop {
            let s = match self.inner.sources.borrow().get(i) {
                Some(s) => s.clone(),
                None => break,
            };
            if let Some(d) = s.next_deadline(self) {
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            i += 1;
        }
        deadline.map(|d| {
            d.saturating_duration_since(self.now())
                .min(MAX_POLL_TIMEOUT)
        })
    }

    /// Moves work queued by other threads into the ready queue.
    fn take_remote(&self) {
        let shared = &self.inner.shared;
        // Cleared before draining: a push racing with the drain sets it again after its item is
        // in the queue, so nothing is missed (at worst one empty drain later).
        shared.pending.swap(false, Ordering::SeqCst);
        let mut q = self.inner.ready.borrow_mut();
        while let Ok(w) = shared.queue.pop() {
            q.push_back(match w {
                RemoteWork::Call(cb) => Work::Remote(cb),
                RemoteWork::Task(r) => Work::Task(r),
                RemoteWork::Stop => Work::Stop,
            });
        }
    }

    fn run_work(&self, w: Work) {
        let inner = &*self.inner;
        match w {
            Work::Call(cb) => {
                if cb.is_cancelled() {
                    return;
                }
                bump(&inner.counters.callbacks, 1);
                let loc = cb.location();
                inner.current_location.set(Some(loc));
                // The callback's context stays current while a panic of it is reported, so
                // the exception handler runs in it (CORE-53).
                let ctx = crate::handle::EnterContext::enter_if_active(&*cb);
                let start = inner.debug.get().then(Instant::now);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
                    self.report_panic(p, "Exception in callback", Some(loc));
                }
                if let Some(start) = start {
                    self.check_slow(start, &format_args!("<Handle scheduled at {loc}>"));
                }
                inner.current_location.set(None);
                match ctx {
                    Some(ctx) => drop(ctx),
                    None => crate::handle::leave_unentered(&*cb),
                }
            }
            Work::Remote(cb) => {
                if cb.state() != crate::handle::PENDING {
                    return;
                }
                bump(&inner.counters.callbacks, 1);
                let loc = cb.location();
                inner.current_location.set(Some(loc));
                let _ctx = EmptyContext::enter();
                let start = inner.debug.get().then(Instant::now);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
                    self.report_panic(p, "Exception in callback", Some(loc));
                }
                if let Some(start) = start {
                    self.check_slow(start, &format_args!("<RemoteHandle scheduled at {loc}>"));
                }
                inner.current_location.set(None);
            }
            Work::Task(r) => {
                bump(&inner.counters.tasks_polled, 1);
                // Task steps catch panics of the task body themselves; only a Fatal unwinds here.
                r.run();
            }
            Work::Io(h, r) => {
                bump(&inner.counters.callbacks, 1);
                let _ctx = EmptyContext::enter();
                let start = inner.debug.get().then(Instant::now);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.ready(self, r))) {
                    self.report_panic(p, "Exception in I/O handler", None);
                }
                if let Some(start) = start {
                    self.check_slow(start, &format_args!("<I/O handler {r:?}>"));
                }
            }
            Work::Stop => self.stop(),
        }
    }

    /// Debug mode: logs a step that took longer than the threshold.
    pub(crate) fn check_slow(&self, start: Instant, what: &dyn std::fmt::Display) {
        let took = start.elapsed();
        if took >= self.inner.slow_callback.get() {
            bump(&self.inner.counters.slow_callbacks, 1);
            tracing::warn!("Executing {what} took {:.3} seconds", took.as_secs_f64());
        }
    }

    /// Reports a caught panic to the exception handler (a [`Fatal`](crate::Fatal) one unwinds).
    pub(crate) fn report_panic(
        &self,
        p: Box<dyn Any + Send>,
        message: &str,
        loc: Option<&'static Location<'static>>,
    ) {
        if p.is::<crate::Fatal>() {
            resume_unwind(p);
        }
        let exc = Exception::from_panic(&*p);
        let mut ctx = match loc {
            Some(loc) => {
                let mut ctx = ExceptionContext::new(format!("{message} scheduled at {loc}"));
                ctx.handle = Some(format!("<Handle scheduled at {loc}>"));
                if self.get_debug() {
                    ctx.source_location = Some(loc);
                }
                ctx
            }
            None => ExceptionContext::new(message),
        };
        ctx.exception = Some(Error::Exception(exc));
        self.call_exception_handler(&ctx);
    }
}

impl Inner {
    pub(crate) fn closed_flag(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn debug_flag(&self) -> bool {
        self.debug.get()
    }

    /// Tears the loop down. `lp` is `None` when called from `Drop` (no handle can be made then).
    fn close_impl(&self, lp: Option<&EventLoop>) {
        self.closed.set(true);
        self.shared.closed.store(true, Ordering::Release);
        // A `Fatal` raised by a hook unwinds out of `close()` only once the loop is fully closed.
        let mut fatal = None;
        if let Some(lp) = lp {
            // Extension hooks first (executor, signals), then sources (timers). Hooks may
            // register more hooks; those run too.
            loop {
                let hooks = std::mem::take(&mut *self.close_hooks.borrow_mut());
                if hooks.is_empty() {
                    break;
                }
                for (h, loc) in hooks {
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(lp))) {
                        if p.is::<crate::Fatal>() {
                            fatal.get_or_insert(p);
                        } else {
                            lp.report_panic(p, "Exception in close hook", Some(loc));
                        }
                    }
                }
            }
            let sources = std::mem::take(&mut *self.sources.borrow_mut());
            for s in &sources {
                s.close(lp);
            }
            drop(sources);
        } else {
            let hooks = std::mem::take(&mut *self.close_hooks.borrow_mut());
            drop(hooks);
        }
        let shutdown = std::mem::take(&mut *self.shutdown_hooks.borrow_mut());
        drop(shutdown);
        let resources = self.resources.borrow_mut().take_all();
        drop(resources);
        // Pending tasks: each is woken, cannot be queued on a closed loop, and so is dropped
        // here, on the loop's thread.
        crate::task::abort_all(self);
        loop {
            let q = std::mem::take(&mut *self.ready.borrow_mut());
            let mut any = !q.is_empty();
            drop(q);
            while let Ok(w) = self.shared.queue.pop() {
                any = true;
                drop(w);
            }
            if !any {
                break;
            }
        }
        let regs = self.reactor.clear();
        drop(regs);
        let extensions = std::mem::take(&mut *self.extensions.borrow_mut());
        drop(extensions);
        *self.exception_handler.borrow_mut() = None;
        *self.task_factory.borrow_mut() = None;
        *self
            .shared
            .wake_fd
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(p) = fatal {
            resume_unwind(p);
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        // The last handle of a loop that was not closed: close it now, with a handle, so that
        // close hooks run and reports reach a custom exception handler (CORE-14).
        if Rc::strong_count(&self.inner) == 1
            && !self.inner.closed.get()
            && !self.inner.running.get()
        {
            tracing::debug!("event loop dropped without close(); closing it");
            let inner = &self.inner;
            if catch_unwind(AssertUnwindSafe(|| inner.close_impl(Some(self)))).is_err() {
                tracing::error!("a close hook raised a fatal error while the loop was dropped");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.get() {
            tracing::debug!("event loop dropped without close(); closing it");
            self.close_impl(None);
        }
    }
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<EventLoop id={} running={} closed={} debug={}>",
            self.id(),
            self.is_running(),
            self.is_closed(),
            self.get_debug()
        )
    }
}

/// The loop running on the current thread (asyncio's `get_running_loop()`).
///
/// # Errors
///
/// [`Error::NoRunningLoop`] when no loop runs on this thread.
///
/// ```
/// assert!(loop_core::get_running_loop().is_err());
/// ```
pub fn get_running_loop() -> Result<EventLoop> {
    EventLoop::current()
}
