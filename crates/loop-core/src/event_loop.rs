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
        self.notify();
        Ok(())
    }

    /// Wakes the loop if it was not woken since it last looked (CORE-19, CORE-20).
    pub(crate) fn notify(&self) {
        if self.notified.swap(true, Ordering::AcqRel) {
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
            RemoteWork::Task(r) if std::thread::current().id() != self.thread => std::mem::forget(r),
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
    close_hooks: RefCell<Vec<Box<dyn FnOnce(&EventLoop)>>>,
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
        self.shared.push(RemoteWork::Stop).map_err(|_| Error::Closed)
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

/// Resets the running state when `run_forever` returns or unwinds.
struct RunGuard<'a> {
    /// The loop.
    lp: &'a EventLoop,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.lp.inner.running.set(false);
        self.lp.inner.stopping.set(false);
        let _ = RUNNING.try_with(|r| r.borrow_mut().take());
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
        self.inner.ready.borrow_mut().push_back(Work::Call(h.cb.clone()));
        Ok(h)
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
        self.inner.ready.borrow_mut().push_back(Work::Call(h.cb.clone()));
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
        self.inner.ready.borrow_mut().push_back(Work::Io(handler, r));
        Ok(())
    }

    /// `call_soon_threadsafe` from the loop's own thread (CORE-19): the same queue other
    /// threads use, so FIFO order with them follows enqueue time.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_soon_threadsafe(|lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    #[track_caller]
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce(&EventLoop) + Send + 'static,
    ) -> Result<RemoteHandle> {
        self.remote().call_soon_threadsafe(f)
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
        let _guard = RunGuard { lp: self };
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

    /// Closes the loop: drops every pending callback and timer without running it, tears
    /// pending tasks down (reporting each as destroyed while pending), runs the close hooks of
    /// extension crates (executor shutdown without waiting, signal handlers removed), and closes
    /// the epoll fd and the wake-up eventfd. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::CloseRunning`] while the loop runs.
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

    /// Registers `f` to run once when the loop is closed.
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
    pub fn on_close(&self, f: impl FnOnce(&EventLoop) + 'static) {
        self.inner.close_hooks.borrow_mut().push(Box::new(f));
    }

    /// Runs one iteration.
    fn run_once(&self) {
        let inner = &*self.inner;
        bump(&inner.counters.iterations, 1);
        self.take_remote();
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
            bump(&inner.counters.io_events, (inner.ready.borrow().len() - before) as u64);
            if woken {
                inner.shared.notified.store(false, Ordering::Release);
                let guard = inner.shared.wake_fd.read().unwrap_or_else(|e| e.into_inner());
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
                self.take_remote();
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
        deadline.map(|d| d.saturating_duration_since(self.now()).min(MAX_POLL_TIMEOUT))
    }

    /// Moves work queued by other threads into the ready queue.
    fn take_remote(&self) {
        let shared = &self.inner.shared;
        if shared.queue.is_empty() {
            return;
        }
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
                let start = inner.debug.get().then(Instant::now);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
                    self.report_panic(p, "Exception in callback", loc);
                }
                if let Some(start) = start {
                    self.check_slow(start, &format_args!("<Handle scheduled at {loc}>"));
                }
                inner.current_location.set(None);
            }
            Work::Remote(cb) => {
                bump(&inner.counters.callbacks, 1);
                let loc = cb.location();
                inner.current_location.set(Some(loc));
                let start = inner.debug.get().then(Instant::now);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| cb.call(self))) {
                    self.report_panic(p, "Exception in callback", loc);
                }
                if let Some(start) = start {
                    self.check_slow(start, &format_args!("<Handle scheduled at {loc}>"));
                }
                inner.current_location.set(None);
            }
            Work::Task(r) => {
                bump(&inner.counters.tasks_polled, 1);
                // Task steps catch panics of the task body themselves; only a Fatal unwinds here.
                r.run();
            }
            Work::Io(h, r) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.ready(self, r))) {
                    self.report_panic(p, "Exception in I/O handler", Location::caller());
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
        loc: &'static Location<'static>,
    ) {
        if p.is::<crate::Fatal>() {
            resume_unwind(p);
        }
        let exc = Exception::from_panic(&*p);
        let mut ctx = ExceptionContext::new(format!("{message} scheduled at {loc}"))
            .with_exception(Error::Exception(exc));
        ctx.handle = Some(format!("<Handle scheduled at {loc}>"));
        if self.get_debug() {
            ctx.source_location = Some(loc);
        }
        self.call_exception_handler(&ctx);
    }
}

impl Inner {
    pub(crate) fn closed_flag(&self) -> bool {
        self.closed.get()
    }

    /// Tears the loop down. `lp` is `None` when called from `Drop` (no handle can be made then).
    fn close_impl(&self, lp: Option<&EventLoop>) {
        self.closed.set(true);
        self.shared.closed.store(true, Ordering::Release);
        if let Some(lp) = lp {
            // Extension hooks first (executor, signals), then sources (timers).
            let hooks = std::mem::take(&mut *self.close_hooks.borrow_mut());
            for h in hooks {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(lp))) {
                    lp.report_panic(p, "Exception in close hook", Location::caller());
                }
            }
            let sources = std::mem::take(&mut *self.sources.borrow_mut());
            for s in &sources {
                s.close(lp);
            }
            drop(sources);
        }
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
        *self.shared.wake_fd.write().unwrap_or_else(|e| e.into_inner()) = None;
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
