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
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::reactor::{Reactor, Watcher};
use crate::readiness::Readiness;
use crate::remote_queue::{Fresh, IntoNode, Link, Linked};
use crate::stats::Counters;
use crate::task_header::{TaskDyn, TaskKey, TaskSlab, TaskSpec};
use crate::wake::Wake;
use crate::work::{Callback, RemoteCallback};
use crate::{Error, ExceptionContext, Result};

pub(crate) mod iteration;
pub(crate) mod remote;
mod stats;

/// Default slow-callback threshold of debug mode.
pub const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);

/// A unit of work in the ready queue.
pub(crate) enum Work {
    /// A local callback.
    Call(Rc<dyn Callback<EventLoop>>),
    /// A callback from `call_soon_threadsafe`.
    Remote(Arc<dyn RemoteCallback<EventLoop>>),
    /// A task step queued on the loop's thread.
    Step(Rc<dyn TaskDyn>),
    /// A task step queued by a wake from another thread (the task, if it still exists).
    Task(TaskKey),
    /// Readiness for a registered handler.
    Io(Rc<dyn IoHandler>, Readiness),
    /// A stop request from another thread.
    Stop,
}

/// Work queued from other threads that is not a callback (a callback is its own queue node).
#[derive(Clone, Copy)]
pub(crate) enum RemoteWork {
    /// A task woken off the loop's thread.
    Task(TaskKey),
    /// `Remote::stop`.
    Stop,
}

/// An item of the loop's remote queue: the value itself is the queue's node (see
/// [`crate::remote_queue`]). A `call_soon_threadsafe` callback is one; [`KeyNode`] carries the
/// rest (a task woken on another thread, a stop request).
pub(crate) trait RemoteNode: Send + Sync {
    /// Runs it straight from the batch the loop took (nothing else was ready).
    fn run_queued(self: Arc<Self>, lp: &EventLoop);
    /// Its ready-queue form, when the batch goes behind other ready work.
    fn into_work(self: Arc<Self>) -> Work;
}

/// Remote work that is not a callback, as a queue node of its own.
pub(crate) struct KeyNode {
    /// Its link in the queue.
    link: Link<dyn RemoteNode>,
    /// What to do.
    work: RemoteWork,
}

impl KeyNode {
    /// `work`, ready to queue.
    pub(crate) fn new(work: RemoteWork) -> Fresh<KeyNode> {
        Fresh::new(KeyNode {
            link: Link::new(),
            work,
        })
    }
}

impl Linked<dyn RemoteNode> for KeyNode {
    fn link(&self) -> &Link<dyn RemoteNode> {
        &self.link
    }
}

impl RemoteNode for KeyNode {
    fn run_queued(self: Arc<Self>, lp: &EventLoop) {
        lp.run_work(self.into_work());
    }

    fn into_work(self: Arc<Self>) -> Work {
        match self.work {
            RemoteWork::Task(k) => Work::Task(k),
            RemoteWork::Stop => Work::Stop,
        }
    }
}

impl IntoNode<dyn RemoteNode> for KeyNode {
    fn into_node(self: Arc<Self>) -> Arc<dyn RemoteNode> {
        self
    }
}

/// A hook around the loop's blocking wait: called with the wait, which it must call once (see
/// [`EventLoop::set_wait_hook`]).
pub(crate) type WaitHook = Box<dyn FnMut(&mut dyn FnMut())>;

/// The part of a loop other threads can reach.
pub(crate) struct Shared {
    /// Loop id (unique in the process).
    pub(crate) id: u64,
    /// The thread that created the loop.
    pub(crate) thread: ThreadId,
    /// Work from other threads and the eventfd that wakes the loop for it.
    pub(crate) wake: Wake<dyn RemoteNode, crate::sys::Waker>,
    /// Spent `call_soon_threadsafe` allocations, reused by the next ones.
    pub(crate) spare_remote: crate::remote_pool::SpareRemote,
    /// Set by `close()`.
    closed: AtomicBool,
}

impl Shared {
    /// Queues remote work and wakes the loop. Gives the work back if the loop is closed.
    pub(crate) fn push(&self, w: RemoteWork) -> std::result::Result<(), RemoteWork> {
        match self.push_node(KeyNode::new(w)) {
            Some(_) => Ok(()),
            None => Err(w),
        }
    }

    /// Queues `node` and wakes the loop; returns another reference to it (the caller's
    /// handle), or `None` (and drops it) if the loop is closed.
    #[inline(always)]
    pub(crate) fn push_node<S: IntoNode<dyn RemoteNode> + Linked<dyn RemoteNode>>(
        &self,
        node: Fresh<S>,
    ) -> Option<Arc<S>> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        Some(self.wake.push(node))
    }

    /// True if other threads queued work since the loop last took it.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.wake.has_pending()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        loop {
            let mut any = false;
            // A task step is only a key (the task itself never leaves the loop's thread); a
            // callback's closure is dropped here.
            self.wake.take_all(|w| {
                any = true;
                drop(w);
            });
            if !any {
                break;
            }
        }
    }
}

/// An event source polled once per iteration: timers are one. Part of the unstable
/// [`internal`](crate::internal) API.
///
/// ```
/// use loop_core::internal::{LoopInternals, Source};
/// use loop_core::EventLoop;
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
    /// Queues (with [`LoopInternals::schedule`](crate::internal::LoopInternals::schedule))
    /// everything due at `now`. Called once per iteration,
    /// after I/O was polled.
    fn dispatch(&self, lp: &EventLoop, now: Instant);
    /// Drops everything pending without running it (`close()`).
    fn close(&self, lp: &EventLoop);
    /// How many entries this source holds that are still to become due (for timers: the
    /// scheduled, not cancelled ones). [`EventLoop::stats`] reports the sum over all sources as
    /// [`Stats::timers_pending`](crate::Stats::timers_pending). The default is 0.
    ///
    /// ```
    /// use loop_core::internal::{LoopInternals, Source};
    /// use loop_core::EventLoop;
    /// use std::time::Instant;
    ///
    /// struct Three;
    /// impl Source for Three {
    ///     fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> { None }
    ///     fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    ///     fn close(&self, _lp: &EventLoop) {}
    ///     fn pending(&self) -> usize { 3 }
    /// }
    /// let lp = EventLoop::new().unwrap();
    /// lp.add_source(std::rc::Rc::new(Three));
    /// assert_eq!(lp.stats().timers_pending, 3);
    /// ```
    fn pending(&self) -> usize {
        0
    }
}

/// A custom exception handler: `handler(loop, context)`.
///
/// ```
/// use loop_core::{EventLoop, ExceptionContext, ExceptionHandler};
/// let handler: ExceptionHandler = std::rc::Rc::new(|_lp: &EventLoop, ctx: &ExceptionContext| {
///     eprintln!("reported: {}", ctx.message);
/// });
/// let lp = EventLoop::new().unwrap();
/// lp.set_exception_handler(Some(handler));
/// assert!(lp.get_exception_handler().is_some());
/// ```
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

/// A task factory: sees every `create_task` of the loop and may wrap, rename or refuse it.
///
/// ```
/// use loop_core::{EventLoop, TaskFactory, TaskSpec};
/// let factory: TaskFactory = std::rc::Rc::new(|_lp: &EventLoop, mut spec: TaskSpec| {
///     spec.name = Some("renamed".into());
///     Ok(spec)
/// });
/// let lp = EventLoop::new().unwrap();
/// lp.set_task_factory(Some(factory));
/// let t = lp.create_task(async { 1 }).unwrap();
/// assert_eq!(t.get_name(), "renamed");
/// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 1);
/// ```
pub type TaskFactory = Rc<dyn Fn(&EventLoop, TaskSpec) -> Result<TaskSpec>>;

/// A boxed local future, as hooks and finalizers return.
pub(crate) type LocalBoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// A shutdown hook: makes the future the runner awaits.
pub(crate) type ShutdownHook = Box<dyn FnOnce(&EventLoop) -> LocalBoxFuture<()>>;

/// A finalizer: makes the future that closes one resource.
pub(crate) type Finalizer = Box<dyn FnOnce(&EventLoop) -> LocalBoxFuture<Result<()>>>;

/// The loop's registry of finalizable async resources.
#[derive(Default)]
pub(crate) struct Resources {
    /// Registered resources, by key (registration order): (name, finalizer).
    pub(crate) entries: std::collections::BTreeMap<u64, (String, Finalizer)>,
    /// Next key.
    pub(crate) next: u64,
    /// `shutdown_asyncgens` was called.
    pub(crate) shut_down: bool,
}

impl Resources {
    /// Empties the registry (loop close); the finalizers are dropped by the caller.
    pub(crate) fn take_all(&mut self) -> std::collections::BTreeMap<u64, (String, Finalizer)> {
        std::mem::take(&mut self.entries)
    }
}

/// Something that wants to hear about readiness of one fd: transports implement it. Part of
/// the unstable [`internal`](crate::internal) API.
///
/// ```
/// use loop_core::internal::IoHandler;
/// use loop_core::{EventLoop, Readiness};
/// struct Printer;
/// impl IoHandler for Printer {
///     fn ready(&self, _lp: &EventLoop, r: Readiness) {
///         println!("{r:?}");
///     }
/// }
/// ```
pub trait IoHandler {
    /// Called from the ready queue when the fd became ready.
    fn ready(&self, lp: &EventLoop, readiness: Readiness);
}

/// The loop's poller: `add_reader` / `add_writer` callbacks and transports' handlers.
pub(crate) type LoopReactor = Reactor<Rc<dyn Callback<EventLoop>>, Rc<dyn IoHandler>>;

impl Watcher for Rc<dyn Callback<EventLoop>> {
    #[inline]
    fn cancel(&self) {
        Callback::cancel(&**self)
    }

    #[inline]
    fn is_cancelled(&self) -> bool {
        Callback::is_cancelled(&**self)
    }
}

/// A hook run by `close()`, with the place that registered it.
type CloseHook = (Box<dyn FnOnce(&EventLoop)>, &'static Location<'static>);

/// The loop's state, behind the `Rc` of [`EventLoop`].
pub(crate) struct Inner {
    /// What other threads reach.
    pub(crate) shared: Arc<Shared>,
    /// The ready queue.
    pub(crate) ready: RefCell<VecDeque<Work>>,
    /// epoll and the registrations, in an `Rc` of its own: registrations hold it weakly.
    pub(crate) reactor: Rc<LoopReactor>,
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
    pub(crate) task_factory: RefCell<Option<TaskFactory>>,
    /// Pending tasks of this loop.
    pub(crate) tasks: RefCell<TaskSlab<Shared>>,
    /// The allocation of the last spent local handle, kept for the next `call_soon` of the same
    /// closure type (holds no closure and no context; see the handles' `run_queued`).
    pub(crate) spare_handle: Cell<Option<Rc<dyn Any>>>,
    /// Spent `call_soon_threadsafe` allocations of this iteration, for the next callers.
    pub(crate) spent_remote: crate::remote_pool::SpentRemote,
    /// Location of the callback executing now (for `handle_traceback`).
    pub(crate) current_location: Cell<Option<&'static Location<'static>>>,
    /// Event sources (timers, ...).
    sources: RefCell<Vec<Rc<dyn Source>>>,
    /// `sources` is not empty: an iteration of a loop without sources asks none of them for
    /// a deadline or due work, without borrowing the list.
    has_sources: Cell<bool>,
    /// Per-loop state of extension crates, by type.
    extensions: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    /// Run at `close()`, in order of registration.
    close_hooks: RefCell<Vec<CloseHook>>,
    /// Run by the runner before `close()` (see `on_shutdown`).
    pub(crate) shutdown_hooks: RefCell<Vec<ShutdownHook>>,
    /// Finalizable async resources (`shutdown_asyncgens`).
    pub(crate) resources: RefCell<Resources>,
    /// Stats counters.
    counters: Counters,
    /// The virtual clock's "now"; `None` for the real clock.
    virtual_now: crate::clock::VirtualNow,
    /// Called around each poll that may block (see [`EventLoop::set_wait_hook`]).
    pub(crate) wait_hook: Cell<Option<WaitHook>>,
}

thread_local! {
    /// The loop running on this thread.
    static RUNNING: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// Calls `f` with the loop running on this thread, if any.
#[inline]
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
/// order. A cheap `Clone` handle (`Rc` inside); not `Send` — use [`Remote`](crate::Remote) from other threads.
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

/// A handle to a loop that does not keep it alive: what the loop's own internals (transports,
/// servers, timers, the executor, signal state, child watchers) keep, so that dropping the
/// last [`EventLoop`] handle frees the loop. Part of the unstable
/// [`internal`](crate::internal) API.
///
/// ```
/// use loop_core::internal::LoopInternals;
/// let lp = loop_core::EventLoop::new().unwrap();
/// let weak = lp.downgrade();
/// assert!(weak.upgrade().unwrap().ptr_eq(&lp));
/// drop(lp);
/// assert!(weak.upgrade().is_none());
/// ```
#[derive(Clone)]
pub struct WeakLoop {
    /// The loop state, weakly.
    inner: std::rc::Weak<Inner>,
}

impl WeakLoop {
    /// A handle that never upgrades (for fields filled in later).
    ///
    /// ```
    /// assert!(loop_core::internal::WeakLoop::new().upgrade().is_none());
    /// ```
    pub fn new() -> WeakLoop {
        WeakLoop {
            inner: std::rc::Weak::new(),
        }
    }

    /// The loop, if a strong handle of it still exists.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.downgrade().upgrade().is_some());
    /// ```
    #[inline]
    pub fn upgrade(&self) -> Option<EventLoop> {
        self.inner.upgrade().map(|inner| EventLoop { inner })
    }

    /// True if `lp` is the loop this handle points to.
    ///
    /// ```
    /// use loop_core::internal::LoopInternals;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.downgrade().is(&lp));
    /// ```
    pub fn is(&self, lp: &EventLoop) -> bool {
        std::ptr::eq(self.inner.as_ptr(), Rc::as_ptr(&lp.inner))
    }
}

impl Default for WeakLoop {
    fn default() -> WeakLoop {
        WeakLoop::new()
    }
}

impl std::fmt::Debug for WeakLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.upgrade() {
            Some(lp) => write!(f, "<WeakLoop loop={}>", lp.id()),
            None => f.write_str("<WeakLoop (gone)>"),
        }
    }
}

/// Resets the running state when `run_forever` returns or unwinds.
pub(crate) struct RunGuard<'a> {
    /// The loop.
    lp: &'a EventLoop,
    /// The thread's context when `run_forever` started, current again when it returns (a
    /// `Fatal` unwinding out of a callback may leave the callback's context current).
    base_context: crate::context::Snapshot,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let c = &self.lp.inner.counters;
        c.account_run(Instant::now());
        c.run_mark.set(None);
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

impl crate::Builder {
    /// Creates the loop, bound to the current thread.
    ///
    /// # Errors
    ///
    /// The error of `epoll_create1` or `eventfd` (e.g. `EMFILE`).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::builder().build()?;
    /// lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn build(self) -> Result<EventLoop> {
        EventLoop::from_builder(self)
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
        EventLoop::from_builder(crate::Builder::new())
    }

    /// A [`Builder`](crate::Builder) to configure a loop before creating it (virtual clock,
    /// debug mode).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::builder().virtual_clock().build()?;
    /// assert!(lp.is_virtual_clock());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn builder() -> crate::Builder {
        crate::Builder::new()
    }

    /// Creates a loop as `b` says.
    pub(crate) fn from_builder(b: crate::Builder) -> Result<EventLoop> {
        let (poller, waker) = crate::sys::Poller::new()?;
        let reactor = Reactor::new(poller);
        let debug = b.debug.unwrap_or_else(
            || matches!(std::env::var("EVLOOP_DEBUG"), Ok(v) if !v.is_empty() && v != "0"),
        );
        Ok(EventLoop {
            inner: Rc::new(Inner {
                shared: Arc::new(Shared {
                    id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
                    thread: std::thread::current().id(),
                    wake: Wake::new(waker),
                    spare_remote: Default::default(),
                    closed: AtomicBool::new(false),
                }),
                ready: RefCell::new(VecDeque::with_capacity(256)),
                reactor: Rc::new(reactor),
                running: Cell::new(false),
                stopping: Cell::new(false),
                closed: Cell::new(false),
                debug: Cell::new(debug),
                slow_callback: Cell::new(DEFAULT_SLOW_CALLBACK),
                skipped_polls: Cell::new(0),
                exception_handler: RefCell::new(None),
                task_factory: RefCell::new(None),
                tasks: RefCell::new(TaskSlab::default()),
                spare_handle: Cell::new(None),
                spent_remote: Default::default(),
                current_location: Cell::new(None),
                sources: RefCell::new(Vec::new()),
                has_sources: Cell::new(false),
                extensions: RefCell::new(HashMap::new()),
                close_hooks: RefCell::new(Vec::new()),
                shutdown_hooks: RefCell::new(Vec::new()),
                resources: RefCell::new(Resources::default()),
                counters: Counters::default(),
                virtual_now: std::cell::Cell::new(b.virtual_clock.then(Instant::now)),
                wait_hook: Cell::new(None),
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

    /// The loop's poller.
    #[inline]
    pub(crate) fn reactor(&self) -> &Rc<LoopReactor> {
        &self.inner.reactor
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Appends to the ready queue. Work queued by other threads before this call is moved in
    /// first, so that FIFO order across `call_soon` and `call_soon_threadsafe` follows the time
    /// of enqueueing (CORE-19). Costs one atomic load when nothing came from other threads.
    #[inline(always)]
    pub(crate) fn push_ready(&self, w: Work) {
        if self.inner.shared.has_pending() {
            self.take_remote();
        }
        self.inner.ready.borrow_mut().push_back(w);
    }

    /// Queues readiness for an [`IoHandler`] as if the poller had reported it; see
    /// [`LoopInternals::schedule_io`](crate::internal::LoopInternals::schedule_io).
    pub(crate) fn schedule_io(&self, handler: Rc<dyn IoHandler>, r: Readiness) -> Result<()> {
        self.check_open()?;
        self.push_ready(Work::Io(handler, r));
        Ok(())
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
        let _guard = self.begin_run()?;
        self.run_iterations(false);
        Ok(())
    }

    /// Marks the loop running on this thread until the guard is dropped (`run_forever`,
    /// `run_once`).
    pub(crate) fn begin_run(&self) -> Result<RunGuard<'_>> {
        self.check_can_run()?;
        self.inner.running.set(true);
        RUNNING.with(|r| *r.borrow_mut() = Some(self.clone()));
        let guard = RunGuard {
            lp: self,
            base_context: crate::context::snapshot(),
        };
        self.inner.counters.run_mark.set(Some(Instant::now()));
        Ok(guard)
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
    /// waiting, signal handlers removed), drops every
    /// pending callback and timer without running it, tears pending tasks down (reporting each
    /// as "Task was destroyed but it is pending!"), drops the fd watchers and closes the epoll
    /// fd and the wake-up eventfd. Idempotent. Dropping the last handle of an unclosed loop
    /// closes it the same way, but open transports, pending tasks, timers and handlers that
    /// hold a handle of their own keep the loop alive: close a loop explicitly (or run it with
    /// [`run_main`](EventLoop::run_main), which closes it) so that such cycles are broken and
    /// nothing is leaked.
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

    /// The loop's clock: the monotonic clock ([`Instant::now`]), or the virtual clock of a
    /// loop built with [`Builder::virtual_clock`](crate::Builder::virtual_clock). Timers use
    /// it for every deadline.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.now() <= std::time::Instant::now());
    /// let v = loop_core::EventLoop::builder().virtual_clock().build().unwrap();
    /// assert_eq!(v.now(), v.now()); // stands still until the loop would sleep
    /// ```
    #[inline]
    pub fn now(&self) -> Instant {
        match self.inner.virtual_now.get() {
            None => Instant::now(),
            Some(t) => t,
        }
    }

    /// True if the loop was built with a virtual clock
    /// ([`Builder::virtual_clock`](crate::Builder::virtual_clock)).
    ///
    /// ```
    /// assert!(!loop_core::EventLoop::new()?.is_virtual_clock());
    /// assert!(loop_core::EventLoop::builder().virtual_clock().build()?.is_virtual_clock());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn is_virtual_clock(&self) -> bool {
        self.inner.virtual_now.get().is_some()
    }

    /// Moves a virtual clock forward by `by`, at once; timers that become due run in the next
    /// iteration. For tests that need time to pass while the loop is busy, or between two
    /// runs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the loop has the real clock (only a virtual clock can be
    /// moved), or if `by` goes beyond what an `Instant` can hold.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::builder().virtual_clock().build()?;
    /// let t0 = lp.now();
    /// lp.advance_clock(Duration::from_secs(90))?;
    /// assert_eq!(lp.now() - t0, Duration::from_secs(90));
    /// assert!(loop_core::EventLoop::new()?.advance_clock(Duration::from_secs(1)).is_err());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn advance_clock(&self, by: Duration) -> Result<()> {
        let Some(now) = self.inner.virtual_now.get() else {
            return Err(Error::invalid_argument(
                "advance_clock() needs a virtual clock: build the loop with \
                 EventLoop::builder().virtual_clock()",
            ));
        };
        let Some(t) = now.checked_add(by) else {
            return Err(Error::invalid_argument(format!(
                "advance_clock({by:?}) overflows the clock; advance by a shorter duration"
            )));
        };
        self.inner.virtual_now.set(Some(t));
        Ok(())
    }

    /// Adds an event source, polled every iteration; see
    /// [`LoopInternals::add_source`](crate::internal::LoopInternals::add_source).
    pub(crate) fn add_source(&self, s: Rc<dyn Source>) {
        self.inner.sources.borrow_mut().push(s);
        self.inner.has_sources.set(true);
    }

    /// Per-loop state of type `T`, created by `init` on first use; see
    /// [`LoopInternals::extension`](crate::internal::LoopInternals::extension).
    pub(crate) fn extension<T: 'static>(&self, init: impl FnOnce(&EventLoop) -> T) -> Rc<T> {
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

    /// Registers `f` to run once when the loop is closed; see
    /// [`LoopInternals::on_close`](crate::internal::LoopInternals::on_close).
    pub(crate) fn on_close_at(
        &self,
        f: Box<dyn FnOnce(&EventLoop)>,
        at: &'static Location<'static>,
    ) {
        self.inner.close_hooks.borrow_mut().push((f, at));
    }

    /// A handle that does not keep the loop alive; see
    /// [`LoopInternals::downgrade`](crate::internal::LoopInternals::downgrade).
    pub(crate) fn downgrade(&self) -> WeakLoop {
        WeakLoop {
            inner: Rc::downgrade(&self.inner),
        }
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
            self.has_sources.set(false);
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
        // Pending tasks are torn down here, on the loop's thread.
        let pending = self.pending_tasks();
        for t in pending {
            t.abandon();
        }
        drop(self.spare_handle.take());
        loop {
            let q = std::mem::take(&mut *self.ready.borrow_mut());
            let mut any = !q.is_empty();
            drop(q);
            self.shared.wake.take_all(|w| {
                any = true;
                drop(w);
            });
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
        self.shared.wake.fd().close();
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
