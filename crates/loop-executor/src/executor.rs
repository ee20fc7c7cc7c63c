//! `run_in_executor`, the [`Executor`] trait and the loop's default executor.
//!
//! Bookkeeping lives on the loop thread, in the loop's extension slot: a table of the jobs whose
//! outcome has not come back yet (id → the loop future), and the number of those that went to
//! the default executor (what `shutdown_default_executor` waits for). A worker thread only ever
//! sees an id, an atomic "queued / running / cancelled" state and the loop's [`Remote`]: it
//! never touches a loop object, which are not `Send`.
//!
//! Every submitted job sends exactly one message back to the loop: its result, "skipped" (its
//! future was cancelled before it started) or "abandoned" (the executor dropped it without
//! running it). That is what lets the loop count its in-flight jobs exactly.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loop_core::internal::{LoopInternals, Source};
use loop_core::{CallbackId, Error, EventLoop, Exception, LoopFuture, Remote, Result};

/// A job for an [`Executor`]: a boxed closure to run once, on some thread.
///
/// ```
/// let job = loop_executor::Job::new(|| println!("running on a worker"));
/// std::thread::spawn(move || job.run()).join().unwrap();
/// ```
pub struct Job {
    /// The closure.
    f: Box<dyn FnOnce() + Send + 'static>,
}

impl Job {
    /// Wraps a closure.
    ///
    /// ```
    /// let job = loop_executor::Job::new(|| {});
    /// job.run();
    /// ```
    pub fn new(f: impl FnOnce() + Send + 'static) -> Job {
        Job { f: Box::new(f) }
    }

    /// Runs the job on the calling thread.
    ///
    /// # Panics
    ///
    /// Never for jobs made by `run_in_executor`: they catch the panics of the user's closure and
    /// send them to the loop. A job built with [`Job::new`] panics if its closure does.
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// loop_executor::Job::new(move || r.store(true, Ordering::SeqCst)).run();
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn run(self) {
        (self.f)()
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<Job>")
    }
}

/// Something that runs [`Job`]s on other threads: a thread pool.
///
/// Implement it to plug your own pool into
/// [`run_in_executor`](ExecutorExt::run_in_executor) or
/// [`set_default_executor`](ExecutorExt::set_default_executor). `submit` is called on the loop's
/// thread and must not block; the job should run on another thread (running it inline works,
/// but blocks the loop for as long as the job takes). A job dropped without being run cancels
/// its loop future.
///
/// ```
/// use loop_core::EventLoop;
/// use loop_executor::{Executor, ExecutorExt, Job};
///
/// /// One new thread per job.
/// struct ThreadPerJob;
/// impl Executor for ThreadPerJob {
///     fn submit(&self, job: Job) -> loop_core::Result<()> {
///         std::thread::Builder::new().name("my-worker".into()).spawn(move || job.run())?;
///         Ok(())
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let fut = lp.run_in_executor(Some(&ThreadPerJob), || {
///     std::thread::current().name().map(str::to_string)
/// })?;
/// assert_eq!(lp.run_until_complete(fut)??.as_deref(), Some("my-worker"));
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait Executor {
    /// Queues `job` to run on some thread.
    ///
    /// # Errors
    ///
    /// Whatever the executor wants to refuse the job with (e.g. the error of spawning a
    /// thread); `run_in_executor` returns it to its caller.
    fn submit(&self, job: Job) -> Result<()>;

    /// Called once when this executor, as a loop's default executor, is shut down (by
    /// [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor) or by the loop's
    /// `close()`). It must not block: the loop waits for its own jobs itself. The default does
    /// nothing.
    fn shutdown(&self) {}
}

impl<E: Executor + ?Sized> Executor for Rc<E> {
    fn submit(&self, job: Job) -> Result<()> {
        (**self).submit(job)
    }
    fn shutdown(&self) {
        (**self).shutdown()
    }
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn submit(&self, job: Job) -> Result<()> {
        (**self).submit(job)
    }
    fn shutdown(&self) {
        (**self).shutdown()
    }
}

/// The default executor: the process-wide thread pool of the `blocking` crate.
///
/// Threads are named `blocking-N`, created on demand up to `BLOCKING_MAX_THREADS` (default 500)
/// and stopped after a short idle time; the pool is shared by every loop of the process. A
/// running job cannot be interrupted. [`Executor::shutdown`] does nothing here: the pool is
/// global and outlives any loop.
///
/// ```
/// use loop_core::EventLoop;
/// use loop_executor::{BlockingExecutor, ExecutorExt};
///
/// let lp = EventLoop::new()?;
/// let fut = lp.run_in_executor(Some(&BlockingExecutor), || {
///     std::thread::current().name().unwrap_or("").to_string()
/// })?;
/// assert!(lp.run_until_complete(fut)??.starts_with("blocking-"));
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockingExecutor;

impl Executor for BlockingExecutor {
    fn submit(&self, job: Job) -> Result<()> {
        blocking::unblock(move || job.run()).detach();
        Ok(())
    }
}

/// Job states, shared between the loop (cancel) and the worker (start).
const QUEUED: u8 = 0;
/// The worker started the job.
const RUNNING: u8 = 1;
/// The loop future was cancelled before the job started.
const CANCELLED: u8 = 2;

/// What a worker sends back.
enum Outcome<T> {
    /// The closure ran: its value, or its panic.
    Ran(std::result::Result<T, Exception>),
    /// The future was cancelled before the job started; the closure was dropped unrun.
    Skipped,
    /// The executor dropped the job without running it.
    Abandoned,
}

/// A job whose outcome has not come back to the loop yet.
struct Pending {
    /// `(LoopFuture<T>, CallbackId)`, type-erased.
    slot: Box<dyn Any>,
    /// Submitted to the default executor (counted for shutdown).
    default: bool,
}

/// A `shutdown_default_executor` call waiting for the in-flight jobs.
struct Waiter {
    /// Completed when the jobs are done or the timeout expired.
    fut: LoopFuture<()>,
    /// When to give up waiting.
    deadline: Option<Instant>,
    /// The timeout, for the warning.
    timeout: Duration,
}

/// Per-loop executor state (in the loop's extension slot).
#[derive(Default)]
struct State {
    /// The default executor, once created or set.
    default: RefCell<Option<Rc<dyn Executor>>>,
    /// `shutdown_default_executor` (or `close`) was called.
    shutdown: Cell<bool>,
    /// Jobs whose outcome has not come back.
    jobs: RefCell<HashMap<u64, Pending>>,
    /// Next job id.
    next_id: Cell<u64>,
    /// Default-executor jobs whose outcome has not come back.
    in_flight: Cell<usize>,
    /// Shutdown calls waiting for `in_flight` to reach zero.
    waiters: RefCell<Vec<Waiter>>,
    /// The timeout source was added to the loop.
    source_added: Cell<bool>,
}

/// The loop's executor state, created (with its close hook) on first use.
fn state(lp: &EventLoop) -> Rc<State> {
    lp.extension(|lp| {
        lp.on_close(close_hook);
        State::default()
    })
}

/// EXEC-09: `close()` shuts the default executor down without waiting. Jobs still running
/// finish on their threads and drop their results there (the loop no longer takes messages).
fn close_hook(lp: &EventLoop) {
    let st = state(lp);
    st.shutdown.set(true);
    let exec = st.default.borrow_mut().take();
    if let Some(e) = exec {
        e.shutdown();
    }
    let waiters = std::mem::take(&mut *st.waiters.borrow_mut());
    drop(waiters);
    let jobs = std::mem::take(&mut *st.jobs.borrow_mut());
    drop(jobs);
    st.in_flight.set(0);
}

impl State {
    /// The default executor, created on first use (EXEC-02).
    fn default_executor(&self) -> Rc<dyn Executor> {
        self.default
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(BlockingExecutor))
            .clone()
    }

    /// Forgets a job (its outcome will be ignored) and updates the in-flight count.
    fn take_job(&self, id: u64) -> Option<Pending> {
        let entry = self.jobs.borrow_mut().remove(&id)?;
        if entry.default {
            let n = self.in_flight.get().saturating_sub(1);
            self.in_flight.set(n);
            if n == 0 {
                let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
                for w in waiters {
                    // A waiter cancelled by its awaiter refuses the result; nothing to do.
                    let _ = w.fut.set_result(());
                }
            }
        }
        Some(entry)
    }
}

/// Sends a job's outcome to the loop exactly once; if the job is dropped unrun, sends
/// [`Outcome::Abandoned`] from `Drop`.
struct Reply<T: Send + 'static> {
    /// The loop.
    remote: Remote,
    /// The job id.
    id: u64,
    /// Already sent.
    sent: bool,
    /// The result type.
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Reply<T> {
    fn send(&mut self, o: Outcome<T>) {
        self.sent = true;
        let id = self.id;
        // On a closed loop this fails and drops the outcome (the value) here, on the worker:
        // nothing is posted to a closed loop (EXEC-05).
        let _ = self
            .remote
            .call_soon_threadsafe(move |lp| deliver::<T>(lp, id, o));
    }
}

impl<T: Send + 'static> Drop for Reply<T> {
    fn drop(&mut self) {
        if !self.sent {
            self.send(Outcome::Abandoned);
        }
    }
}

/// On the loop thread: completes the future of job `id` with its outcome (EXEC-06).
fn deliver<T: 'static>(lp: &EventLoop, id: u64, o: Outcome<T>) {
    let st = state(lp);
    let Some(entry) = st.take_job(id) else {
        return;
    };
    let Ok(slot) = entry.slot.downcast::<(LoopFuture<T>, CallbackId)>() else {
        return;
    };
    let (fut, cb) = *slot;
    fut.remove_done_callback(cb);
    if fut.done() {
        // Cancelled while the job ran: the result is dropped (EXEC-05).
        return;
    }
    match o {
        Outcome::Ran(Ok(v)) => {
            let _ = fut.set_result(v);
        }
        Outcome::Ran(Err(e)) => {
            let _ = fut.set_exception(e);
        }
        Outcome::Skipped => {}
        Outcome::Abandoned => {
            fut.cancel_with("the executor dropped the job without running it");
        }
    }
}

/// Gives up waiting for shutdowns whose timeout expired (EXEC-08).
struct ShutdownTimer {
    /// The loop's executor state.
    st: Weak<State>,
}

/// Deadlines this close are due (epoll waits in whole milliseconds).
const SLACK: Duration = Duration::from_millis(1);

impl Source for ShutdownTimer {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        let st = self.st.upgrade()?;
        let ws = st.waiters.borrow();
        ws.iter()
            .filter(|w| !w.fut.done())
            .filter_map(|w| w.deadline)
            .min()
    }

    fn dispatch(&self, _lp: &EventLoop, now: Instant) {
        let Some(st) = self.st.upgrade() else {
            return;
        };
        if st.waiters.borrow().is_empty() {
            return;
        }
        let expired: Vec<Waiter> = {
            let mut ws = st.waiters.borrow_mut();
            let (expired, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut *ws)
                .into_iter()
                .partition(|w| w.fut.done() || w.deadline.is_some_and(|d| d <= now + SLACK));
            *ws = keep;
            expired
        };
        for w in expired {
            if w.fut.done() {
                continue;
            }
            tracing::warn!(
                "The executor did not finish joining its threads within {} seconds.",
                w.timeout.as_secs_f64()
            );
            let _ = w.fut.set_result(());
        }
    }

    fn close(&self, _lp: &EventLoop) {
        if let Some(st) = self.st.upgrade() {
            let ws = std::mem::take(&mut *st.waiters.borrow_mut());
            drop(ws);
        }
    }
}

mod sealed {
    /// Only `EventLoop` implements [`ExecutorExt`](super::ExecutorExt).
    pub trait Sealed {}
    impl Sealed for loop_core::EventLoop {}
}

/// The executor methods of [`EventLoop`]: `run_in_executor`, `set_default_executor`,
/// `shutdown_default_executor`.
///
/// ```
/// use loop_core::EventLoop;
/// use loop_executor::ExecutorExt;
///
/// let lp = EventLoop::new()?;
/// let fut = lp.run_in_executor(None, || std::fs::metadata("/").is_ok())?;
/// assert!(lp.run_until_complete(fut)??);
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait ExecutorExt: sealed::Sealed {
    /// Runs `f` on a worker thread of `executor` (`None`: the loop's default executor) and
    /// returns a future of this loop that gets its return value (EXEC-01).
    ///
    /// The job never runs on the loop's thread (with the default executor, or any executor
    /// that runs jobs on other threads). Its outcome comes back through the loop's thread-safe
    /// queue and completes the future on the loop's thread; a panic in `f` becomes the future's
    /// error, [`Error::Exception`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()` (EXEC-03); [`Error::ExecutorShutdown`] for `None` after
    /// [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor) (an explicit
    /// executor is still accepted, EXEC-04); the executor's own refusal from
    /// [`Executor::submit`].
    ///
    /// # Cancel safety
    ///
    /// Cancelling the returned future before the job starts means the job never runs (`f` is
    /// dropped unrun on the worker); once the job started it runs to the end, and its result is
    /// dropped (EXEC-05). Dropping the future without cancelling it does neither: the job runs
    /// and its result is dropped with the future.
    ///
    /// ```
    /// use loop_core::EventLoop;
    /// use loop_executor::ExecutorExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let loop_thread = std::thread::current().id();
    /// let fut = lp.run_in_executor(None, move || std::thread::current().id() != loop_thread)?;
    /// assert!(lp.run_until_complete(fut)??);
    ///
    /// let fut = lp.run_in_executor(None, || -> u8 { panic!("inside the job") })?;
    /// let err = lp.run_until_complete(fut)?.unwrap_err();
    /// assert!(err.to_string().contains("inside the job"));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn run_in_executor<T, F>(&self, executor: Option<&dyn Executor>, f: F) -> Result<LoopFuture<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Replaces the loop's default executor (EXEC-07: any [`Executor`] is accepted). Jobs
    /// already submitted stay where they are.
    ///
    /// Setting a default executor after
    /// [`shutdown_default_executor`](ExecutorExt::shutdown_default_executor) makes
    /// `run_in_executor(None, ..)` work again with the new executor (asyncio 3.13 keeps
    /// refusing; evloop follows the advice of [`Error::ExecutorShutdown`]'s message).
    ///
    /// ```
    /// use loop_core::EventLoop;
    /// use loop_executor::{Executor, ExecutorExt, Job};
    ///
    /// struct Named;
    /// impl Executor for Named {
    ///     fn submit(&self, job: Job) -> loop_core::Result<()> {
    ///         std::thread::Builder::new().name("named".into()).spawn(move || job.run())?;
    ///         Ok(())
    ///     }
    /// }
    /// let lp = EventLoop::new()?;
    /// lp.set_default_executor(Named);
    /// let fut = lp.run_in_executor(None, || std::thread::current().name().map(String::from))?;
    /// assert_eq!(lp.run_until_complete(fut)??.as_deref(), Some("named"));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn set_default_executor(&self, executor: impl Executor + 'static);

    /// Shuts the default executor down (EXEC-08): from now on `run_in_executor(None, ..)` fails
    /// with [`Error::ExecutorShutdown`]; the executor's [`Executor::shutdown`] is called once;
    /// and the returned future completes when every job this loop submitted to the default
    /// executor has finished, or when `timeout` expires (then a `tracing` warning is logged and
    /// the jobs are left to finish on their own). The loop keeps running while it waits: the
    /// wait is a loop future, not a blocking join. With no default executor ever created, the
    /// future is complete at once.
    ///
    /// # Cancel safety
    ///
    /// The shutdown takes effect at the call; cancelling or dropping the future only stops
    /// waiting.
    ///
    /// ```
    /// use loop_core::{Error, EventLoop};
    /// use loop_executor::ExecutorExt;
    /// use std::time::Duration;
    ///
    /// let lp = EventLoop::new()?;
    /// let job = lp.run_in_executor(None, || std::thread::sleep(Duration::from_millis(20)))?;
    /// lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_secs(60))))??;
    /// assert!(job.done()); // the shutdown waited for it
    /// assert!(matches!(lp.run_in_executor(None, || ()), Err(Error::ExecutorShutdown)));
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn shutdown_default_executor(&self, timeout: Option<Duration>) -> LoopFuture<()>;
}

impl ExecutorExt for EventLoop {
    #[track_caller]
    fn run_in_executor<T, F>(&self, executor: Option<&dyn Executor>, f: F) -> Result<LoopFuture<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let st = state(self);
        let default_exec;
        let exec: &dyn Executor = match executor {
            Some(e) => e,
            None => {
                if st.shutdown.get() {
                    return Err(Error::ExecutorShutdown);
                }
                default_exec = st.default_executor();
                &*default_exec
            }
        };
        let is_default = executor.is_none();
        let id = st.next_id.get();
        st.next_id.set(id.wrapping_add(1));

        let fut = self.create_future::<T>();
        let job_state = Arc::new(AtomicU8::new(QUEUED));
        let on_cancel = job_state.clone();
        let cb = fut.add_done_callback(move |f| {
            if f.cancelled() {
                // Wins only if the worker has not started the job yet.
                let _ = on_cancel.compare_exchange(
                    QUEUED,
                    CANCELLED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        });
        st.jobs.borrow_mut().insert(
            id,
            Pending {
                slot: Box::new((fut.clone(), cb)),
                default: is_default,
            },
        );
        if is_default {
            st.in_flight.set(st.in_flight.get() + 1);
        }
        let reply = Reply::<T> {
            remote: self.remote(),
            id,
            sent: false,
            _t: PhantomData,
        };
        let job = Job::new(move || {
            let mut reply = reply;
            if job_state
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                drop(f);
                reply.send(Outcome::Skipped);
                return;
            }
            let r = catch_unwind(AssertUnwindSafe(f)).map_err(|p| Exception::from_panic(&*p));
            reply.send(Outcome::Ran(r));
        });
        if let Err(e) = exec.submit(job) {
            // The job was dropped by the executor; its "abandoned" message finds no entry.
            let entry = st.take_job(id);
            drop(entry);
            return Err(e);
        }
        Ok(fut)
    }

    fn set_default_executor(&self, executor: impl Executor + 'static) {
        if self.is_closed() {
            return;
        }
        let st = state(self);
        *st.default.borrow_mut() = Some(Rc::new(executor));
        st.shutdown.set(false);
    }

    #[track_caller]
    fn shutdown_default_executor(&self, timeout: Option<Duration>) -> LoopFuture<()> {
        let fut = self.create_future::<()>();
        if self.is_closed() {
            let _ = fut.set_result(());
            return fut;
        }
        let st = state(self);
        st.shutdown.set(true);
        let exec = st.default.borrow_mut().take();
        if let Some(e) = exec {
            e.shutdown();
        }
        if st.in_flight.get() == 0 {
            let _ = fut.set_result(());
            return fut;
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        st.waiters.borrow_mut().push(Waiter {
            fut: fut.clone(),
            deadline,
            timeout: timeout.unwrap_or_default(),
        });
        if deadline.is_some() && !st.source_added.replace(true) {
            self.add_source(Rc::new(ShutdownTimer {
                st: Rc::downgrade(&st),
            }));
        }
        fut
    }
}
