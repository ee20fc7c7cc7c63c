//! `run_coroutine_threadsafe`: submit async work to a loop from another thread.
//!
//! The thread side holds a [`ThreadFuture`]: a `Send` result slot behind a mutex and a condvar,
//! so it can be waited on by blocking ([`ThreadFuture::wait_timeout`]) or awaited from any other
//! executor (it implements [`Future`]). The loop side is an ordinary task of the loop, created
//! on the loop's thread by a `call_soon_threadsafe` callback; its done-callback fills the slot.
//! Cancellation crosses the same way: the thread side marks itself cancelled at once and posts a
//! callback that cancels the task, found by id in a per-loop table.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use loop_core::{
    Cancelled, Error, EventLoop, Exception, ExceptionContext, Fatal, Remote, Result, TaskRef,
};

/// Ids of spawned tasks, process-wide (made on the submitting thread).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The result slot shared by both sides.
struct Shared<T> {
    /// The state.
    st: Mutex<St<T>>,
    /// Signalled on completion.
    cv: Condvar,
}

/// The state of a [`ThreadFuture`].
struct St<T> {
    /// A result (or error) was set; set only once.
    done: bool,
    /// The result until taken.
    result: Option<Result<T>>,
    /// The waker of an `await`ing thread.
    waker: Option<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, St<T>> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the result if none was set yet; true if this call set it.
    fn complete(&self, r: Result<T>) -> bool {
        let waker = {
            let mut g = self.lock();
            if g.done {
                // Dropped here, after the lock is released (a value's `Drop` may be slow).
                drop(g);
                drop(r);
                return false;
            }
            g.done = true;
            g.result = Some(r);
            g.waker.take()
        };
        self.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    fn is_done(&self) -> bool {
        self.lock().done
    }
}

/// Takes the result out of a done state.
fn take<T>(g: &mut St<T>) -> Result<T> {
    g.result
        .take()
        .unwrap_or_else(|| Err(Error::invalid_state("the result was already taken")))
}

/// The loop side's end of the slot: completes it once; if dropped unused (the loop closed
/// before the task could finish, or before it was created), completes it with
/// [`Error::Closed`].
struct Completer<T> {
    /// The slot.
    shared: Arc<Shared<T>>,
}

impl<T> Completer<T> {
    fn complete(&self, r: Result<T>) {
        self.shared.complete(r);
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.shared.complete(Err(Error::Closed));
    }
}

/// The tasks spawned into a loop from other threads, by id (for cross-thread cancellation).
#[derive(Default)]
struct Spawned {
    /// Pending tasks.
    tasks: RefCell<HashMap<u64, TaskRef>>,
}

fn spawned(lp: &EventLoop) -> Rc<Spawned> {
    lp.extension(|_| Spawned::default())
}

/// The result of async work submitted to a loop from another thread (asyncio's
/// `concurrent.futures.Future` from `run_coroutine_threadsafe`).
///
/// `Send`: wait for it with [`wait`](ThreadFuture::wait) or
/// [`wait_timeout`](ThreadFuture::wait_timeout), or `.await` it from any other executor or
/// runtime. Dropping it does not cancel the task (it runs on, detached, as in asyncio); use
/// [`cancel`](ThreadFuture::cancel) for that.
///
/// ```
/// use loop_core::EventLoop;
/// use loop_executor::RemoteExt;
///
/// let lp = EventLoop::new()?;
/// let remote = lp.remote();
/// let worker = std::thread::spawn(move || {
///     let fut = remote.spawn(async { 6 * 7 });
///     let v = fut.wait_timeout(std::time::Duration::from_secs(30));
///     remote.stop().unwrap();
///     v
/// });
/// lp.run_forever()?;
/// assert_eq!(worker.join().unwrap()?, 42);
/// # Ok::<(), loop_core::Error>(())
/// ```
pub struct ThreadFuture<T> {
    /// The result slot.
    shared: Arc<Shared<T>>,
    /// The loop running the task.
    remote: Remote,
    /// The task's id in the loop's table.
    id: u64,
}

impl<T: Send + 'static> ThreadFuture<T> {
    /// True once a result, an error or a cancellation is there.
    ///
    /// ```
    /// use loop_executor::RemoteExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn(async { 1 });
    /// assert!(!fut.done()); // the loop has not run yet
    /// ```
    pub fn done(&self) -> bool {
        self.shared.is_done()
    }

    /// Cancels: if no result is there yet, the thread side is cancelled at once (waiting on it
    /// gives [`Error::Cancelled`]) and the task inside the loop is cancelled on the loop's
    /// thread (or never created, if it was not yet). Returns false if a result was already
    /// there.
    ///
    /// ```
    /// use loop_executor::RemoteExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn(async { 1 });
    /// assert!(fut.cancel());
    /// assert!(!fut.cancel());
    /// assert!(fut.wait().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        if !self
            .shared
            .complete(Err(Error::Cancelled(Cancelled::new(None))))
        {
            return false;
        }
        let id = self.id;
        // On a closed loop there is no task left to cancel.
        let _ = self.remote.call_soon_threadsafe(move |lp| {
            let t = spawned(lp).tasks.borrow().get(&id).cloned();
            if let Some(t) = t {
                t.cancel(None);
            }
        });
        true
    }

    /// Blocks the calling thread until the result is there.
    ///
    /// # Errors
    ///
    /// The task's failure: [`Error::Exception`] for a panic, [`Error::Cancelled`] if it was
    /// cancelled (inside the loop or by [`cancel`](ThreadFuture::cancel)), the task factory's
    /// refusal, [`Error::Closed`] if the loop was closed before the task finished;
    /// [`Error::InvalidState`] if called on the loop's own thread before the result is there
    /// (that would wait forever).
    ///
    /// ```
    /// use loop_executor::RemoteExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn(async { 1 });
    /// lp.close().unwrap();
    /// assert!(matches!(fut.wait(), Err(loop_core::Error::Closed)));
    /// ```
    pub fn wait(self) -> Result<T> {
        self.wait_deadline(None)
    }

    /// Blocks the calling thread until the result is there or `timeout` expires. On timeout
    /// the task inside the loop is cancelled (as [`cancel`](ThreadFuture::cancel)) and
    /// [`Error::TimedOut`] is returned.
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`]; otherwise as [`wait`](ThreadFuture::wait).
    ///
    /// ```
    /// use loop_executor::RemoteExt;
    /// use std::time::Duration;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn(async { 1 });
    /// let t = std::thread::spawn(move || fut.wait_timeout(Duration::from_millis(10)));
    /// // The loop never runs, so the wait times out.
    /// assert!(matches!(t.join().unwrap(), Err(loop_core::Error::TimedOut)));
    /// ```
    pub fn wait_timeout(self, timeout: Duration) -> Result<T> {
        self.wait_deadline(Some(timeout))
    }

    fn wait_deadline(self, timeout: Option<Duration>) -> Result<T> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        {
            let mut g = self.shared.lock();
            if !g.done && self.remote.is_loop_thread() {
                return Err(Error::invalid_state(
                    "waiting for a ThreadFuture on its loop's own thread would never end; \
                     await a task of the loop instead",
                ));
            }
            while !g.done {
                match deadline {
                    None => g = self.shared.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            break;
                        }
                        g = self
                            .shared
                            .cv
                            .wait_timeout(g, d - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
            if g.done {
                return take(&mut g);
            }
        }
        if self.cancel() {
            return Err(Error::TimedOut);
        }
        // The result arrived between the timeout and the cancel.
        take(&mut self.shared.lock())
    }
}

impl<T> Future for ThreadFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut g = self.shared.lock();
        if g.done {
            return Poll::Ready(take(&mut g));
        }
        match &g.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => g.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for ThreadFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = self.shared.lock().done;
        write!(
            f,
            "<ThreadFuture {} id={} {:?}>",
            if done { "done" } else { "pending" },
            self.id,
            self.remote
        )
    }
}

mod sealed {
    /// Only `Remote` implements [`RemoteExt`](super::RemoteExt).
    pub trait Sealed {}
    impl Sealed for loop_core::Remote {}
}

/// Submitting async work to a loop from any thread: asyncio's `run_coroutine_threadsafe`, as
/// methods of [`Remote`].
///
/// ```
/// use loop_core::EventLoop;
/// use loop_executor::RemoteExt;
///
/// let lp = EventLoop::new()?;
/// let remote = lp.remote();
/// let worker = std::thread::spawn(move || {
///     // The closure runs on the loop's thread, so the future may use the loop.
///     let fut = remote.spawn_with(|lp| {
///         let f = lp.create_future();
///         f.set_result("from the loop").unwrap();
///         f
///     });
///     let v = fut.wait();
///     remote.stop().unwrap();
///     v
/// });
/// lp.run_forever()?;
/// assert_eq!(worker.join().unwrap()??, "from the loop");
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait RemoteExt: sealed::Sealed {
    /// Runs `fut` as a task of the loop and returns a [`ThreadFuture`] of its output
    /// (EXEC-10). Callable from any thread, including the loop's own.
    ///
    /// The task is created on the loop's thread, through the loop's task factory. A panic in
    /// the task comes back as [`Error::Exception`], a cancellation inside the loop as
    /// [`Error::Cancelled`]. If the task factory refuses the task, its error is set on the
    /// thread-side future and reported once to the loop's exception handler (CORE-51). If the
    /// loop is closed (now, or before the task finishes), the thread-side future gets
    /// [`Error::Closed`].
    ///
    /// `fut` must be `Send` to travel to the loop; to run a future that uses loop objects
    /// (which are not `Send`), build it on the loop's thread with
    /// [`spawn_with`](RemoteExt::spawn_with).
    ///
    /// ```
    /// use loop_executor::RemoteExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn(async { "hi" });
    /// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
    /// assert_eq!(fut.wait().unwrap(), "hi");
    /// ```
    fn spawn<F>(&self, fut: F) -> ThreadFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Like [`spawn`](RemoteExt::spawn), but the future is built by `build` on the loop's
    /// thread, with the loop: it may hold loop futures, tasks and handles, which are not
    /// `Send`. A panic in `build` comes back as [`Error::Exception`].
    ///
    /// ```
    /// use loop_executor::{ExecutorExt, RemoteExt};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn_with(|lp| {
    ///     let job = lp.run_in_executor(None, || 2 + 2);
    ///     async move { job?.await }
    /// });
    /// let remote = lp.remote();
    /// let t = std::thread::spawn(move || {
    ///     let v = fut.wait();
    ///     remote.stop().unwrap();
    ///     v
    /// });
    /// lp.run_forever().unwrap();
    /// assert_eq!(t.join().unwrap().unwrap().unwrap(), 4);
    /// ```
    fn spawn_with<B, Fut>(&self, build: B) -> ThreadFuture<Fut::Output>
    where
        B: FnOnce(&EventLoop) -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static;
}

impl RemoteExt for Remote {
    fn spawn<F>(&self, fut: F) -> ThreadFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(move |_| fut)
    }

    fn spawn_with<B, Fut>(&self, build: B) -> ThreadFuture<Fut::Output>
    where
        B: FnOnce(&EventLoop) -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            st: Mutex::new(St {
                done: false,
                result: None,
                waker: None,
            }),
            cv: Condvar::new(),
        });
        let completer = Completer {
            shared: shared.clone(),
        };
        // On a closed loop the callback is dropped unrun, and its completer sets `Closed`.
        let _ = self.call_soon_threadsafe(move |lp| start(lp, id, build, completer));
        ThreadFuture {
            shared,
            remote: self.clone(),
            id,
        }
    }
}

/// asyncio's name for [`RemoteExt::spawn`]: runs `fut` as a task of the loop behind `remote`
/// and returns a thread-side future of its output.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let fut = loop_executor::run_coroutine_threadsafe(async { 5 }, &lp.remote());
/// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
/// assert_eq!(fut.wait().unwrap(), 5);
/// ```
pub fn run_coroutine_threadsafe<F>(fut: F, remote: &Remote) -> ThreadFuture<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    remote.spawn(fut)
}

/// On the loop's thread: builds the future and runs it as a task whose outcome fills the slot.
fn start<B, Fut>(lp: &EventLoop, id: u64, build: B, completer: Completer<Fut::Output>)
where
    B: FnOnce(&EventLoop) -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    if completer.shared.is_done() {
        // Cancelled from the thread side before the loop got here: never start it.
        return;
    }
    let fut = match catch_unwind(AssertUnwindSafe(|| build(lp))) {
        Ok(f) => f,
        Err(p) => {
            if p.is::<Fatal>() {
                resume_unwind(p);
            }
            completer.complete(Err(Error::Exception(Exception::from_panic(&*p))));
            return;
        }
    };
    let slot: Rc<Cell<Option<Fut::Output>>> = Rc::new(Cell::new(None));
    let out = slot.clone();
    let body = async move { out.set(Some(fut.await)) };
    match lp.create_task(body) {
        Err(e) => {
            // CORE-51: the error goes to the thread side, and to the handler once.
            completer.complete(Err(e.clone()));
            lp.call_exception_handler(
                &ExceptionContext::new("run_coroutine_threadsafe: the task could not be created")
                    .with_exception(e),
            );
        }
        Ok(task) => {
            let table = spawned(lp);
            let t = task.task_ref();
            table.tasks.borrow_mut().insert(id, t.clone());
            let weak = Rc::downgrade(&table);
            t.add_done_callback(move |t| {
                if let Some(table) = weak.upgrade() {
                    let removed = table.tasks.borrow_mut().remove(&id);
                    drop(removed);
                }
                let r = match t.exception() {
                    Some(e) => Err(e),
                    None => slot
                        .take()
                        .ok_or_else(|| Error::invalid_state("the task finished without an output")),
                };
                completer.complete(r);
            });
        }
    }
}
