//! Submitting async work to a loop from another thread: asyncio's `run_coroutine_threadsafe`.
//!
//! [`Remote::run_coroutine_threadsafe`] sends a closure to the loop's thread; there it makes the
//! future and wraps it into a task of the loop (through the loop's task factory). The caller
//! gets a [`ConcurrentFuture`], the thread-side view of that task (asyncio's
//! `concurrent.futures.Future`): it can be waited for with a blocking
//! [`wait`](ConcurrentFuture::wait) or [`wait_timeout`](ConcurrentFuture::wait_timeout), awaited
//! from any executor, or cancelled, which cancels the task on the loop.
//!
//! # Why it lives in the kernel
//!
//! The loop's objects (futures, tasks, handles) are not `Send`, so work that uses them must be
//! *made* on the loop's thread: the closure travels, the future it makes never does. Only the
//! outcome crosses back, through a mutex-and-condvar slot, so that the submitting thread can
//! block on it without any executor. Everything this needs is the loop's own
//! [`Remote`](crate::Remote) queue, so it sits here; the executor crate's `RemoteExt::spawn` is
//! a shorthand over it for futures that are `Send` already.
//!
//! Cancellation crosses the same way: the thread side marks itself cancelled at once and posts
//! a callback that cancels the task, found by id in a per-loop table. A closed loop drops the
//! work it never ran, and dropping it completes the thread side with
//! [`Error::Closed`](crate::Error::Closed), so no waiter is left hanging.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::{Cancelled, Error, EventLoop, Exception, ExceptionContext, Remote, Result, TaskRef};

/// Ids of thread-side futures, to find their task on the loop.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where a thread-side future is.
enum State<T> {
    /// Not done; the waker of an executor awaiting it.
    Pending(Option<Waker>),
    /// Done, outcome still here.
    Done(Result<T>),
    /// Done, outcome moved out.
    Taken,
}

/// The shared state of a [`ConcurrentFuture`].
struct Shared<T> {
    /// The outcome.
    state: Mutex<State<T>>,
    /// Signalled on completion.
    cond: Condvar,
    /// The loop.
    remote: Remote,
    /// Key of the task in the loop's registry.
    id: u64,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the outcome unless one is set already; true if this call set it.
    fn complete(&self, r: Result<T>) -> bool {
        let mut st = self.lock();
        let State::Pending(waker) = &mut *st else {
            return false;
        };
        let waker = waker.take();
        *st = State::Done(r);
        drop(st);
        self.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    fn is_done(&self) -> bool {
        !matches!(*self.lock(), State::Pending(_))
    }
}

/// Completes the thread-side future with `Error::Closed` if the loop drops the work without
/// running it to the end (the loop was closed first).
struct CompleteOnDrop<T>(Arc<Shared<T>>);

impl<T> Drop for CompleteOnDrop<T> {
    fn drop(&mut self) {
        self.0.complete(Err(Error::Closed));
    }
}

/// The loop-side table of tasks started by `run_coroutine_threadsafe`, for cancellation.
#[derive(Default)]
struct Registry(RefCell<HashMap<u64, TaskRef>>);

/// The thread-side view of a task started with [`Remote::run_coroutine_threadsafe`] (asyncio's
/// `concurrent.futures.Future`). `Send + Sync`; wait for it with [`wait`](Self::wait) or
/// [`wait_timeout`](Self::wait_timeout), or `.await` it from any executor or runtime.
/// Dropping it does not cancel the task (it runs on, detached, as in asyncio); use
/// [`cancel`](Self::cancel) for that.
///
/// ```
/// use loop_core::EventLoop;
///
/// let lp = EventLoop::new().unwrap();
/// let remote = lp.remote();
/// let worker = std::thread::spawn(move || {
///     let fut = remote.run_coroutine_threadsafe(|_lp| async { 6 * 7 }).unwrap();
///     let v = fut.wait().unwrap();
///     remote.stop().unwrap();
///     v
/// });
/// lp.run_forever().unwrap();
/// assert_eq!(worker.join().unwrap(), 42);
/// ```
pub struct ConcurrentFuture<T> {
    /// The shared state.
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> ConcurrentFuture<T> {
    /// True once the task finished, failed or was cancelled.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.remote().run_coroutine_threadsafe(|_| async {}).unwrap();
    /// assert!(!f.done());
    /// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
    /// assert!(f.done());
    /// ```
    pub fn done(&self) -> bool {
        self.shared.is_done()
    }

    /// True if [`cancel`](Self::cancel) won, or the task ended cancelled.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.remote().run_coroutine_threadsafe(|_| async {}).unwrap();
    /// f.cancel();
    /// assert!(f.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        matches!(*self.shared.lock(), State::Done(Err(Error::Cancelled(_))))
    }

    /// Cancels: if not done yet, this future ends cancelled at once, and the task on the loop is
    /// cancelled from the loop's thread (or never started, if it had not started yet). Returns
    /// false if it was already done.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.remote().run_coroutine_threadsafe(|_| async { unreachable!() }).unwrap();
    /// assert!(f.cancel());
    /// assert!(!f.cancel());
    /// lp.run_until_complete(async {}).unwrap();
    /// assert!(f.wait().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        if !self
            .shared
            .complete(Err(Error::Cancelled(Cancelled::new(None))))
        {
            return false;
        }
        let id = self.shared.id;
        let _ = self.shared.remote.call_soon_threadsafe(move |lp| {
            let reg = lp.extension(|_| Registry::default());
            let task = reg.0.borrow_mut().remove(&id);
            if let Some(t) = task {
                t.cancel();
            }
        });
        true
    }

    /// Blocks until the task is done and returns its outcome (moving it out).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] if cancelled (by [`cancel`](Self::cancel), or inside the loop, with
    /// the loop's message); [`Error::Exception`] if the task (or the closure that made its
    /// future) panicked; the task factory's refusal; [`Error::Closed`] if the loop was closed
    /// before the task finished; [`Error::InvalidState`] if the outcome was already taken, or
    /// if called on the loop's own thread while the task is pending (that would block the loop
    /// forever: `.await` it there instead).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.remote().run_coroutine_threadsafe(|_| async { "done" }).unwrap();
    /// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
    /// assert_eq!(f.wait().unwrap(), "done");
    /// ```
    pub fn wait(&self) -> Result<T> {
        self.wait_until(None)
    }

    /// [`wait`](Self::wait) with a time limit. When the time is up, the task is cancelled (as
    /// by [`cancel`](Self::cancel): at once on this side, on the loop's thread for the task)
    /// and [`Error::TimedOut`] is returned (EXEC-10); a later `wait` gives
    /// [`Error::Cancelled`]. A limit too large to represent waits without one.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait), plus [`Error::TimedOut`] when the time is up.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let remote = lp.remote();
    /// let f = std::thread::spawn(move || {
    ///     let f = remote.run_coroutine_threadsafe(|_| std::future::pending::<()>()).unwrap();
    ///     // The loop never runs here, so the wait times out.
    ///     assert!(matches!(f.wait_timeout(Duration::from_millis(10)), Err(loop_core::Error::TimedOut)));
    ///     f
    /// }).join().unwrap();
    /// assert!(f.cancelled());
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<T> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<T> {
        {
            let mut st = self.shared.lock();
            while matches!(*st, State::Pending(_)) {
                if self.shared.remote.is_loop_thread() {
                    return Err(Error::invalid_state(
                        "waiting on the loop's own thread would block the loop forever; \
                         await the future instead",
                    ));
                }
                st = match deadline {
                    None => self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        self.shared
                            .cond
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                };
            }
            if let Some(r) = take(&mut st) {
                return r;
            }
        }
        // Time is up: the task inside the loop is cancelled (EXEC-10).
        if self.cancel() {
            return Err(Error::TimedOut);
        }
        // The outcome arrived between the time limit and the cancellation.
        take(&mut self.shared.lock()).unwrap_or(Err(Error::TimedOut))
    }
}

/// Moves the outcome out of a done state; `None` while pending.
fn take<T>(st: &mut State<T>) -> Option<Result<T>> {
    if let State::Pending(_) = st {
        return None;
    }
    match std::mem::replace(st, State::Taken) {
        State::Done(r) => Some(r),
        _ => Some(Err(Error::invalid_state("the result was already taken"))),
    }
}

impl<T: Send + 'static> Future for ConcurrentFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut st = self.shared.lock();
        if let Some(r) = take(&mut st) {
            return Poll::Ready(r);
        }
        if let State::Pending(w) = &mut *st {
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for ConcurrentFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.shared.lock() {
            State::Pending(_) => "pending",
            State::Done(Err(Error::Cancelled(_))) => "cancelled",
            State::Done(Err(_)) => "failed",
            State::Done(Ok(_)) | State::Taken => "finished",
        };
        write!(f, "<ConcurrentFuture {state}>")
    }
}

impl Remote {
    /// Makes a future on the loop's thread (with `make`) and runs it as a task of the loop;
    /// from any thread (asyncio's `run_coroutine_threadsafe`). The returned
    /// [`ConcurrentFuture`] receives the task's outcome.
    ///
    /// Callable from any thread, the loop's own included. `make` runs on the loop's thread, so
    /// the future it makes may hold loop objects (futures, tasks, handles), which are not
    /// `Send`. The future's output, or its failure, reaches the [`ConcurrentFuture`] (EXEC-10):
    /// a panic in the task comes back as [`Error::Exception`], a cancellation inside the loop
    /// as [`Error::Cancelled`] with its message. If `make` panics, or the loop's task factory
    /// refuses the task, the error is set on the returned future **and** reported once to the
    /// loop's exception handler (CORE-51). If the loop is closed before the task finishes, the
    /// returned future gets [`Error::Closed`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop is closed already.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let remote = lp.remote();
    /// let t = std::thread::spawn(move || {
    ///     let f = remote.run_coroutine_threadsafe(|lp| {
    ///         let id = lp.id();
    ///         async move { format!("from loop {id}") }
    ///     }).unwrap();
    ///     let v = f.wait().unwrap();
    ///     remote.stop().unwrap();
    ///     v
    /// });
    /// lp.run_forever().unwrap();
    /// assert_eq!(t.join().unwrap(), format!("from loop {}", lp.id()));
    /// ```
    #[track_caller]
    pub fn run_coroutine_threadsafe<F, Fut>(&self, make: F) -> Result<ConcurrentFuture<Fut::Output>>
    where
        F: FnOnce(&EventLoop) -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Pending(None)),
            cond: Condvar::new(),
            remote: self.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        });
        let guard = CompleteOnDrop(shared.clone());
        let location = Location::caller();
        self.call_soon_threadsafe(move |lp| start(lp, make, guard, location))?;
        Ok(ConcurrentFuture { shared })
    }
}

/// The loop side of `run_coroutine_threadsafe`.
fn start<F, Fut>(
    lp: &EventLoop,
    make: F,
    guard: CompleteOnDrop<Fut::Output>,
    location: &'static Location<'static>,
) where
    F: FnOnce(&EventLoop) -> Fut,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let shared = guard.0.clone();
    if shared.is_done() {
        // Cancelled before it could start: the future is never made.
        return;
    }
    let fut = match catch_unwind(AssertUnwindSafe(|| make(lp))) {
        Ok(fut) => fut,
        Err(p) => {
            if !p.is::<crate::Fatal>() {
                shared.complete(Err(Error::Exception(Exception::from_panic(&*p))));
            }
            // The loop reports it, once, as a callback that panicked.
            resume_unwind(p);
        }
    };
    let task = match lp.create_task_impl(fut, None, location) {
        Ok(t) => t,
        Err(e) => {
            shared.complete(Err(e.clone()));
            let ctx = ExceptionContext::new(format!(
                "Exception in callback run_coroutine_threadsafe scheduled at {location}"
            ))
            .with_exception(e);
            lp.call_exception_handler(&ctx);
            return;
        }
    };
    let id = shared.id;
    let reg = lp.extension(|_| Registry::default());
    reg.0.borrow_mut().insert(id, task.task_ref());
    let typed = task.clone_task();
    task.add_done_callback(move |t| {
        let guard = guard;
        if let Some(lp) = t.get_loop() {
            let reg = lp.extension(|_| Registry::default());
            let removed = reg.0.borrow_mut().remove(&id);
            drop(removed);
        }
        if let Some(out) = typed.take_output() {
            guard.0.complete(out);
        }
    });
}
