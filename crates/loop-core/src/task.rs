//! Tasks: futures driven by the loop, with asyncio's names, cancellation and introspection.
//!
//! A task is one allocation on the loop's thread: its state and its body side by side (see
//! `task_cell`). Until its first step the ready queue holds it; from then on, while pending,
//! it is in the loop's task table, where its wakers find it. Its first step runs on the next
//! iteration; each step is one poll. Steps catch panics of the task body, which then fails the
//! task (awaiting it gives the panic as [`Error::Exception`]). Its wakers may be sent to other
//! threads: woken on the loop's thread they queue the next step directly, woken elsewhere they
//! go through the loop's thread-safe queue.
//!
//! **Cancellation.** `cancel(msg)` works the way asyncio's does, restated for Rust futures:
//!
//! * before the first step, the body never runs;
//! * while the task waits on a loop future (a [`LoopFuture`](crate::LoopFuture), another task, a
//!   sleep, an evloop I/O call), that future is cancelled and the `await` returns
//!   `Err(Error::Cancelled)`. If the body lets that error escape (with `?`), the task ends
//!   cancelled; if it handles the error, the task goes on and ends with whatever it returns;
//! * while the task waits on a foreign future (one that does not know about evloop), the body is
//!   dropped at the next step and the task ends cancelled;
//! * a task that cancels itself gets `Err(Cancelled)` from its next loop `await`, and ends
//!   cancelled if it returns before that.
//!
//! **Reports.** A task dropped while pending (its last waker gone, or the loop closed) is
//! reported as "Task was destroyed but it is pending!"; a failed task whose error nobody read is
//! reported as "Task exception was never retrieved" when its last handle goes.

use std::any::Any;
use std::cell::{Cell, RefMut};
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::event_loop::{with_running, Inner, RemoteWork, Shared, Work};
use crate::handler::report;
use crate::task_cell::{new_task, Outcome, TaskCell, TaskObj, TaskState};
use crate::task_header::{
    current, CancelTarget, Cold, Header, TaskDyn, TaskKey, TaskRef, TaskSpec, CURRENT,
};
use crate::task_wake;
use crate::{
    CallbackId, Cancelled, Error, EventLoop, Exception, ExceptionContext, Result, TaskFactory,
};

/// Task ids (names are `Task-<id>`), process-wide, from 1: one past the last id taken.
static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// How many ids a thread takes from [`NEXT_TASK_ID`] at once.
const TASK_ID_BLOCK: u64 = 1024;

thread_local! {
    /// The block of ids this thread took last: (next to give, end).
    static TASK_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A new task id: from one process-wide counter, and greater than every id given before it
/// (CORE-36). A thread takes a block of ids from the counter at once and gives them in turn
/// while the counter still ends where its block does, that is while no thread took ids since:
/// the common case then reads the counter instead of incrementing it (an atomic
/// read-modify-write is a locked instruction, which waits for every store before it, such
/// as those of the task blocks just written). Once another thread took ids, the rest of the
/// block is given up and a new one taken, above all ids taken so far. Greater than every id
/// given before: a creation that happened before this one (on another thread, with the
/// synchronisation that orders them) took its block before, so the counter read here is
/// past that block (coherence), and the test fails unless this block is the newest one.
#[inline]
fn next_task_id() -> u64 {
    TASK_IDS
        .try_with(|c| {
            let (next, end) = c.get();
            if next < end && NEXT_TASK_ID.load(Ordering::Relaxed) == end {
                c.set((next + 1, end));
                next
            } else {
                let first = NEXT_TASK_ID.fetch_add(TASK_ID_BLOCK, Ordering::Relaxed);
                c.set((first + 1, first + TASK_ID_BLOCK));
                first
            }
        })
        // During the thread's teardown: one id at a time (this thread's block is not used
        // again, so the ids stay increasing).
        .unwrap_or_else(|_| NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed))
}

/// The state of a task (everything but its body, which sits beside it in the same
/// allocation: see [`task_cell`](crate::task_cell)).
pub(crate) struct TaskInner {
    /// The type-independent state.
    header: Header,
    /// The loop.
    lp: Weak<Inner>,
    /// The waker of the first task awaiting this one (the others' are in the cold state:
    /// most tasks have one awaiter or none).
    waiter: Cell<Option<Waker>>,
    /// What the task's wakers point at, from its first step until it ends.
    wake: Cell<Option<Arc<TaskWaker>>>,
}

/// A task as its handles hold it: state and body in one allocation.
type TaskObjOf<T> = dyn TaskObj<TaskInner, T>;

impl<T: 'static, F> TaskDyn for TaskCell<TaskInner, F>
where
    F: Future<Output = T> + 'static,
{
    fn header(&self) -> &Header {
        &self.state().header
    }

    fn error(&self) -> Option<Error> {
        let t = self.state();
        match self.outcome().as_deref() {
            Some(Outcome::Failed(e)) => {
                t.header.set_retrieved(true);
                Some((**e).clone())
            }
            _ => None,
        }
    }

    fn cancel_dyn(self: Rc<Self>, msg: Option<String>) -> bool {
        self.state().cancel(msg)
    }

    fn loop_any(&self) -> Option<Rc<dyn Any>> {
        self.state().lp.upgrade().map(|inner| inner as Rc<dyn Any>)
    }

    #[inline]
    fn header_and_loop(&self) -> (&Header, *const ()) {
        let t = self.state();
        (&t.header, t.lp.as_ptr().cast())
    }

    fn run_step(self: Rc<Self>, remote: bool) {
        let h = &self.state().header;
        if remote {
            // Another thread's wake: a later wake from there queues the task again.
            if let Some(w) = self.state().wake.take() {
                w.queued.taken();
                self.state().wake.set(Some(w));
            }
            if h.scheduled() {
                // A step is queued on the loop's thread already: that one runs it.
                return;
            }
        } else {
            h.set_scheduled(false);
        }
        step(&self);
    }

    fn abandon(self: Rc<Self>) {
        self.drop_body();
        dropped_pending(&self);
    }
}

impl<T: 'static, F> CancelTarget for TaskCell<TaskInner, F>
where
    F: Future<Output = T> + 'static,
{
    fn cancel_target(self: Rc<Self>, msg: Option<String>) -> bool {
        self.state().cancel(msg)
    }
}

impl TaskInner {
    /// Requests cancellation (see the module docs); false if the task is done.
    fn cancel(&self, msg: Option<String>) -> bool {
        let h = &self.header;
        // As for futures (CORE-33), a cancel, even a late one, counts as dealing with the error.
        h.set_retrieved(true);
        if h.finished() {
            return false;
        }
        h.cold().cancelling += 1;
        let waiter = h.fut_waiter.take();
        if let Some(w) = waiter {
            if w.cancel_target(msg.clone()) {
                // The waiter wakes the task, whose `await` returns the cancellation.
                return true;
            }
        }
        h.set_must_cancel(Some(msg));
        if h.started() {
            let w = self.wake.take();
            if let Some(w) = &w {
                w.wake_by_ref();
            }
            self.wake.set(w);
        }
        true
    }
}

/// A task of the loop: awaiting it gives `Ok(output)`, or `Err(Error::Cancelled)` if it was
/// cancelled, or `Err(Error::Exception)` if its body panicked.
///
/// Dropping a `Task` does not cancel it (it runs on, detached). Awaiting moves the output out.
/// The methods of [`TaskRef`] are on `Task` too; [`task_ref`](Task::task_ref) gives the untyped
/// handle (for [`TaskRef::ptr_eq`], [`all_tasks`](crate::all_tasks) comparisons and the like).
///
/// # Examples
///
/// ```
/// use loop_core::EventLoop;
///
/// let lp = EventLoop::new().unwrap();
/// let t = lp.create_named_task("worker", async { 6 * 7 }).unwrap();
/// assert_eq!(t.get_name(), "worker");
/// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 42);
/// ```
///
/// Tasks have no `set_result` (CORE-43): only their body completes them.
///
/// ```compile_fail
/// let lp = loop_core::EventLoop::new().unwrap();
/// let t = lp.create_task(async { 1 }).unwrap();
/// t.set_result(2);
/// ```
pub struct Task<T> {
    /// The typed task.
    inner: Rc<TaskObjOf<T>>,
}

impl<T: 'static> Task<T> {
    /// Another handle on the same task (crate-internal: a public `Task` is not `Clone`, since
    /// awaiting moves the output out).
    pub(crate) fn clone_task(&self) -> Task<T> {
        Task {
            inner: self.inner.clone(),
        }
    }

    /// The same task, untyped.
    #[inline]
    pub(crate) fn r(&self) -> TaskRef {
        TaskRef {
            t: self.inner.clone().to_dyn(),
        }
    }

    /// Moves the outcome out of a finished task (marks an error retrieved); `None` while it is
    /// pending or once the outcome was taken.
    pub(crate) fn take_output(&self) -> Option<Result<T>> {
        let mut slot = self.inner.outcome()?;
        if !matches!(*slot, Outcome::Value(_) | Outcome::Failed(_)) {
            return None;
        }
        self.inner.core().header.set_retrieved(true);
        match std::mem::replace(&mut *slot, Outcome::Taken) {
            Outcome::Value(v) => Some(Ok(v)),
            Outcome::Failed(e) => Some(Err(*e)),
            _ => None,
        }
    }

    /// An untyped handle on the same task.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert_eq!(t.task_ref().id(), t.id());
    /// # lp.run_until_complete(t).unwrap().unwrap();
    /// ```
    pub fn task_ref(&self) -> TaskRef {
        self.r()
    }

    /// The output, cloned, of a task that finished.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] while the task is pending (or after an `await` moved the output
    /// out); the task's cancellation or failure.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async { 3 }).unwrap();
    /// assert!(t.result().is_err());
    /// let r = t.task_ref();
    /// lp.run_until_complete(async move { while !r.done() { loop_core::yield_now().await } }).unwrap();
    /// assert_eq!(t.result().unwrap(), 3);
    /// ```
    pub fn result(&self) -> Result<T>
    where
        T: Clone,
    {
        match self.inner.outcome().as_deref() {
            None | Some(Outcome::Pending) => Err(Error::invalid_state("Result is not ready.")),
            Some(Outcome::Value(v)) => Ok(v.clone()),
            Some(Outcome::Failed(e)) => {
                self.inner.core().header.set_retrieved(true);
                Err((**e).clone())
            }
            Some(Outcome::Taken) => {
                Err(Error::invalid_state("the result was moved out by an await"))
            }
        }
    }
}

impl<T: 'static> Future for Task<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let inner = &self.inner;
        let core = inner.core();
        // The checks against the awaiting task: one look-up of it, borrowed in place (no
        // reference count is touched). No user code runs while it is borrowed.
        let refused = CURRENT
            .try_with(|c| {
                let c = c.borrow();
                let t = c.as_ref()?;
                if Rc::as_ptr(inner).cast::<()>() == Rc::as_ptr(t).cast::<()>() {
                    return Some(Error::invalid_state("Task cannot await on itself"));
                }
                // One dynamic call for the awaiting task's header and loop; the pending-cancel
                // test is a flag test.
                let (th, t_loop) = t.header_and_loop();
                if th.cancel_pending() {
                    if let Some(c) = t.take_pending_cancel() {
                        return Some(Error::Cancelled(c));
                    }
                }
                if t_loop != core.lp.as_ptr().cast::<()>() {
                    return Some(Error::DifferentLoop);
                }
                None
            })
            .ok()
            .flatten();
        if let Some(e) = refused {
            return Poll::Ready(Err(e));
        }
        if let Some(r) = core.take_for_await(inner.outcome()) {
            if let Err(Error::Cancelled(c)) = &r {
                if let Some(t) = current() {
                    t.track_delivered(c);
                }
            }
            return Poll::Ready(r);
        }
        await_pending(inner, core, cx)
    }
}

/// The rest of an `await` of a task that is not done: the awaiter's waker kept, and the
/// awaiting task (if any) waiting on it.
#[cold]
fn await_pending<T: 'static>(
    inner: &Rc<TaskObjOf<T>>,
    core: &TaskInner,
    cx: &mut Context<'_>,
) -> Poll<Result<T>> {
    core.add_waiter(cx);
    if let Some(t) = current() {
        t.set_waiter(inner.clone().to_cancel_target());
    }
    Poll::Pending
}

impl<T> TaskState<T> for TaskInner {
    #[inline]
    fn freed(&mut self, outcome: Option<&mut Outcome<T>>) {
        // Only a failure nobody read is reported; a task that ended well (or whose outcome
        // was read) has nothing to do here.
        if let Some(o) = outcome {
            if !self.header.retrieved() && matches!(o, Outcome::Failed(_)) {
                self.report_unretrieved(o);
            }
        }
    }
}

impl TaskInner {
    /// What an `await` of a done task gets, `None` while it is pending: the value, moved out
    /// (the outcome is `Taken` then); a fresh `Cancelled` per delivery (whether it escapes
    /// the awaiting task's body decides whether that task ends cancelled: the caller tracks
    /// it); the error, cloned, and marked retrieved.
    #[inline]
    fn take_for_await<T>(&self, st: Option<RefMut<'_, Outcome<T>>>) -> Option<Result<T>> {
        let mut st = st?;
        match &*st {
            Outcome::Pending => None,
            Outcome::Value(_) => match std::mem::replace(&mut *st, Outcome::Taken) {
                Outcome::Value(v) => Some(Ok(v)),
                _ => None,
            },
            Outcome::Failed(e) => match &**e {
                Error::Cancelled(c) => Some(Err(Error::Cancelled(Cancelled::new(
                    c.message().map(str::to_string),
                )))),
                e => {
                    self.header.set_retrieved(true);
                    Some(Err(e.clone()))
                }
            },
            Outcome::Taken => Some(Err(Error::invalid_state(
                "the result was moved out by another await",
            ))),
        }
    }

    /// Keeps the waker of `cx` to wake when the task ends, unless one that wakes the same
    /// task is kept already. The first awaiter's goes in the task, others' in the cold state.
    fn add_waiter(&self, cx: &Context<'_>) {
        let w = cx.waker();
        let first = self.waiter.take();
        let same = first.as_ref().map(|f| f.will_wake(w));
        match same {
            None => self.waiter.set(Some(w.clone())),
            Some(same) => {
                self.waiter.set(first);
                let known = same
                    || self
                        .header
                        .if_cold(|c| c.waiters.iter().any(|x| x.will_wake(w)))
                        .unwrap_or(false);
                if !known {
                    // Cloned before the borrow: a foreign waker's clone is user code.
                    let w = w.clone();
                    self.header.cold().waiters.push(w);
                }
            }
        }
    }

    /// What every ending does, finished or dropped pending: drops the waker and the awaited
    /// loop future, and leaves the loop's task table. Returns the loop if it still exists.
    fn release(&self) -> Option<Rc<Inner>> {
        let lp = self.lp.upgrade();
        match &lp {
            Some(inner) => self.release_in(inner),
            None => {
                drop(self.wake.take());
                drop(self.header.fut_waiter.take());
            }
        }
        lp
    }

    /// [`release`](Self::release) with the loop at hand (a step holds it already).
    #[inline]
    fn release_in(&self, inner: &Inner) {
        let h = &self.header;
        let waiter = h.fut_waiter.take();
        drop(waiter);
        let removed = {
            let mut tasks = inner.tasks.borrow_mut();
            if let Some(w) = self.wake.take() {
                // No user code runs here: a waker target has no destructor of its own.
                TaskWaker::recycle(&mut tasks.spare_wakers, w);
            }
            tasks.remove(h.slab_key.get() as usize)
        };
        drop(removed);
    }

    /// A handle of the task's loop, if it still exists.
    fn loop_handle(&self) -> Option<EventLoop> {
        self.lp.upgrade().map(|inner| EventLoop { inner })
    }

    /// Reports "Task exception was never retrieved" for a failed task being dropped.
    #[cold]
    fn report_unretrieved<T>(&mut self, outcome: &mut Outcome<T>) {
        if let Outcome::Failed(e) = std::mem::replace(outcome, Outcome::Taken) {
            if e.is_cancelled() {
                return;
            }
            let name = match self
                .header
                .cold
                .get_mut()
                .and_then(|c| c.get_mut().name.as_ref())
            {
                Some(n) => n.clone(),
                None => format!("Task-{}", self.header.id),
            };
            let ctx = ExceptionContext {
                future: Some(format!(
                    "<Task failed name='{name}' created at {}>",
                    self.header.location
                )),
                source_location: self
                    .lp
                    .upgrade()
                    .is_some_and(|i| i.debug_flag())
                    .then_some(self.header.location),
                ..ExceptionContext::new("Task exception was never retrieved")
            }
            .with_exception(*e);
            report(self.loop_handle(), &ctx);
        }
    }
}

impl EventLoop {
    /// Wraps a future into a task of this loop; its first step runs on the next iteration.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()` (the future is dropped, never polled); the task
    /// factory's error, if one is installed and refuses.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async { "hi" }).unwrap();
    /// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), "hi");
    /// ```
    #[track_caller]
    pub fn create_task<F>(&self, fut: F) -> Result<Task<F::Output>>
    where
        F: IntoFuture + 'static,
        F::Output: 'static,
    {
        self.create_task_impl(fut.into_future(), None, Location::caller())
    }

    /// [`create_task`](EventLoop::create_task) with a name.
    ///
    /// # Errors
    ///
    /// As for [`create_task`](EventLoop::create_task).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_named_task("fetch", async {}).unwrap();
    /// assert_eq!(t.get_name(), "fetch");
    /// # lp.close().unwrap();
    /// ```
    #[track_caller]
    pub fn create_named_task<F>(&self, name: impl Into<String>, fut: F) -> Result<Task<F::Output>>
    where
        F: IntoFuture + 'static,
        F::Output: 'static,
    {
        self.create_task_impl(fut.into_future(), Some(name.into()), Location::caller())
    }

    pub(crate) fn create_task_impl<F>(
        &self,
        fut: F,
        name: Option<String>,
        location: &'static Location<'static>,
    ) -> Result<Task<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.check_open()?;
        let factory = self.inner.task_factory.borrow().clone();
        let context = crate::Context::current();
        let Some(factory) = factory else {
            return Ok(self.spawn_task(fut, name, location, context));
        };
        let spec = TaskSpec {
            future: Box::pin(async move { Box::new(fut.await) as Box<dyn Any> }),
            name,
            location,
            context,
        };
        let spec = match catch_unwind(AssertUnwindSafe(|| factory(self, spec))) {
            Ok(r) => r?,
            Err(p) => {
                if p.is::<crate::Fatal>() {
                    resume_unwind(p);
                }
                return Err(Error::Exception(Exception::from_panic(&*p)));
            }
        };
        let TaskSpec {
            future,
            name,
            location,
            context,
        } = spec;
        let typed = async move {
            match future.await.downcast::<F::Output>() {
                Ok(v) => *v,
                Err(_) => panic!("the task factory changed the output type of the task"),
            }
        };
        Ok(self.spawn_task(typed, name, location, context))
    }

    fn spawn_task<F>(
        &self,
        fut: F,
        name: Option<String>,
        location: &'static Location<'static>,
        context: crate::Context,
    ) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let core = TaskInner {
            header: Header::new(
                next_task_id(),
                location,
                context.map,
                name.map(|name| Cold {
                    name: Some(name),
                    ..Cold::default()
                }),
                // The first step is queued below.
                Header::SCHEDULED | Header::LOG_DESTROY_PENDING,
            ),
            lp: Rc::downgrade(&self.inner),
            waiter: Cell::new(None),
            wake: Cell::new(None),
        };
        // One allocation: the state and the body side by side.
        let (inner, untyped) = new_task(core, fut);
        // The first step (`scheduled` is set above). Until it runs, the ready queue holds
        // the task, and the task table does not (see `pending_tasks`).
        self.push_ready(Work::Step(untyped));
        Task { inner }
    }

    /// Installs a task factory (`None` restores the built-in behaviour).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.set_task_factory(Some(std::rc::Rc::new(|_lp: &loop_core::EventLoop, spec| Ok(spec))));
    /// assert!(lp.get_task_factory().is_some());
    /// lp.set_task_factory(None);
    /// assert!(lp.get_task_factory().is_none());
    /// ```
    pub fn set_task_factory(&self, factory: Option<TaskFactory>) {
        *self.inner.task_factory.borrow_mut() = factory;
    }

    /// The task factory, if one is installed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.get_task_factory().is_none());
    /// ```
    pub fn get_task_factory(&self) -> Option<TaskFactory> {
        self.inner.task_factory.borrow().clone()
    }

    /// The task of this loop whose step is executing now, if any.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.current_task().is_none());
    /// let t = lp.create_task(async {
    ///     loop_core::current_task().unwrap().unwrap().get_name()
    /// }).unwrap();
    /// let name = t.get_name();
    /// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), name);
    /// ```
    pub fn current_task(&self) -> Option<TaskRef> {
        current()
            .filter(|t| t.loop_addr() == Rc::as_ptr(&self.inner).cast::<()>())
            .map(|t| TaskRef { t })
    }

    /// The tasks of this loop that are not done.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert_eq!(lp.all_tasks().len(), 1);
    /// lp.run_until_complete(t).unwrap().unwrap();
    /// assert!(lp.all_tasks().is_empty());
    /// ```
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.inner
            .pending_tasks()
            .into_iter()
            .filter(|t| !t.header().finished())
            .map(|t| TaskRef { t })
            .collect()
    }

    /// Runs the loop until `fut` completes, and returns its output.
    ///
    /// The future is wrapped into a task (through the task factory, if any).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::AlreadyRunning`], [`Error::AnotherLoopRunning`], the task
    /// factory's refusal; [`Error::StoppedBeforeComplete`] if the loop was stopped before the
    /// future was done (the task stays pending and a later run can finish it); and how the
    /// wrapping task failed: [`Error::Cancelled`] or a panic as [`Error::Exception`].
    ///
    /// # Panics
    ///
    /// A [`Fatal`](crate::Fatal) raised by user code unwinds out of it (see
    /// [`run_forever`](EventLoop::run_forever)).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let v = lp.run_until_complete(async { 1 + 1 }).unwrap();
    /// assert_eq!(v, 2);
    /// ```
    #[track_caller]
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output>
    where
        F: IntoFuture + 'static,
        F::Output: 'static,
    {
        self.check_can_run()?;
        let task = self.create_task_impl(fut.into_future(), None, Location::caller())?;
        let weak = Rc::downgrade(&self.inner);
        // False once this call returned: a stop callback that was already scheduled when a
        // `Fatal` unwound (CORE-11) must not stop a later run.
        let active = Rc::new(Cell::new(true));
        let still_active = active.clone();
        let id = task.add_done_callback(move |_| {
            if !still_active.get() {
                return;
            }
            if let Some(inner) = weak.upgrade() {
                EventLoop { inner }.stop();
            }
        });
        /// Detaches the stop callback however `run_forever` ends (CORE-12).
        struct Detach<'a>(&'a TaskRef, CallbackId, Rc<Cell<bool>>);
        impl Drop for Detach<'_> {
            fn drop(&mut self) {
                self.2.set(false);
                self.0.remove_done_callback(self.1);
            }
        }
        let r = task.r();
        let detach = Detach(&r, id, active);
        let run = self.run_forever();
        drop(detach);
        run?;
        if !task.done() {
            r.quiet();
            return Err(Error::StoppedBeforeComplete);
        }
        let r = task
            .inner
            .outcome()
            .map(|mut o| std::mem::replace(&mut *o, Outcome::Taken));
        task.inner.core().header.set_retrieved(true);
        match r {
            Some(Outcome::Value(v)) => Ok(v),
            Some(Outcome::Failed(e)) => Err(*e),
            _ => Err(Error::invalid_state("the task's result was already taken")),
        }
    }
}

/// The running task of the current thread's running loop (asyncio's `current_task()`).
///
/// # Errors
///
/// [`Error::NoRunningLoop`] if no loop runs on this thread.
///
/// ```
/// assert!(loop_core::current_task().is_err());
/// ```
pub fn current_task() -> Result<Option<TaskRef>> {
    let lp = EventLoop::current()?;
    Ok(lp.current_task())
}

/// The tasks of the running loop of this thread that are not done (asyncio's `all_tasks()`).
///
/// # Errors
///
/// [`Error::NoRunningLoop`] if no loop runs on this thread (use
/// [`EventLoop::all_tasks`] for a loop that is not running).
///
/// ```
/// assert!(loop_core::all_tasks().is_err());
/// let lp = loop_core::EventLoop::new().unwrap();
/// let n = lp.run_until_complete(async { loop_core::all_tasks().unwrap().len() }).unwrap();
/// assert_eq!(n, 1); // the task running the block
/// ```
pub fn all_tasks() -> Result<Vec<TaskRef>> {
    let lp = EventLoop::current()?;
    Ok(lp.all_tasks())
}

/// Yields once: the task is rescheduled and resumes on the next iteration (asyncio's
/// `sleep(0)`).
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    futures_lite::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// What a task's wakers point at (the `task_wake` module). A waker may be sent to
/// and woken from any thread: on the thread running the task's loop it queues the task's next
/// step directly; anywhere else it goes through the loop's thread-safe queue (at most one such
/// wake in flight per task: `queued`).
type TaskWaker = task_wake::TaskWaker<Shared>;

impl Wake for TaskWaker {
    // Both inlined: a waker's `wake` (the usual one: the waker is consumed) is one call from
    // the vtable's entry to the loop's ready queue, not a call into a call.
    #[inline]
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    #[inline]
    fn wake_by_ref(self: &Arc<Self>) {
        let local = with_running(|lp| match lp {
            Some(lp) if Arc::ptr_eq(&lp.inner.shared, &self.shared) => {
                wake_local(lp, self.key);
                true
            }
            _ => false,
        });
        if !local && self.queued.claim() {
            // A closed loop gives the key back: its tasks were torn down, nothing to wake.
            let _ = self.shared.push(RemoteWork::Task(TaskKey {
                remote: true,
                ..self.key
            }));
        }
    }
}

/// Queues the next step of the task `k` of the running loop `lp`, unless one is queued or
/// the task ended.
#[inline]
fn wake_local(lp: &EventLoop, k: TaskKey) {
    let t = lp.inner.tasks.borrow().schedule(k);
    if let Some(t) = t {
        lp.push_ready(Work::Step(t));
    }
}

/// Reports a task dropped while pending (CORE-47): its body was dropped without having
/// finished, because the loop was closed or dropped. A finished task (the common case) costs
/// one flag test here.
#[inline]
fn dropped_pending<T: 'static, S: TaskObj<TaskInner, T> + 'static>(task: &Rc<S>) {
    if !task.core().header.finished() {
        dropped_pending_slow(task);
    }
}

/// [`dropped_pending`] for a task that did not finish.
#[cold]
fn dropped_pending_slow<T: 'static, S: TaskObj<TaskInner, T> + 'static>(this: &Rc<S>) {
    let task = this.core();
    let h = &task.header;
    h.set_finished(true);
    h.set_cancelled(true);
    h.set_retrieved(true);
    let lp = task.release();
    // Done-callbacks can no longer run: drop them (what they captured is released).
    let callbacks = h.take_callbacks();
    drop(callbacks);
    if h.log_destroy_pending() {
        let debug = lp.as_ref().is_some_and(|i| i.debug_flag());
        let mut ctx =
            ExceptionContext::new("Task was destroyed but it is pending!").with_task(TaskRef {
                t: this.clone().to_dyn(),
            });
        if debug {
            ctx.source_location = Some(h.location);
        }
        drop(lp);
        report(task.loop_handle(), &ctx);
    }
}

/// Ends a task with a result (in a step: `lp` is the task's loop): wakes awaiters and schedules
/// done-callbacks.
fn finish<T: 'static, S: TaskObj<TaskInner, T> + 'static>(
    this: &Rc<S>,
    lp: &Rc<Inner>,
    r: Result<T>,
) {
    let task = this.core();
    let h = &task.header;
    if let Err(Error::Cancelled(_)) = &r {
        h.set_cancelled(true);
    }
    h.set_finished(true);
    this.set_outcome(Outcome::done(r));
    task.release_in(lp);
    // Most tasks end with nobody waiting through a waker: then nothing is taken or dropped.
    if let Some(w) = task.waiter.take() {
        w.wake();
        let more = h.if_cold(|c| std::mem::take(&mut c.waiters));
        for w in more.into_iter().flatten() {
            w.wake();
        }
    }
    let callbacks = h.take_callbacks();
    if callbacks.is_empty() {
        return;
    }
    {
        let lp = EventLoop { inner: lp.clone() };
        let me = TaskRef {
            t: this.clone().to_dyn(),
        };
        for cb in callbacks {
            cb.schedule(&lp, me.clone());
        }
    }
}

/// Puts a task in its loop's task table, at its first step: from there on its wakers find it
/// by its place. Until then it is found in the ready queue, which holds its first step (see
/// [`Inner::pending_tasks`]); a burst of tasks created and run in turn thus reuses a few
/// places of the table instead of writing one per task.
#[inline]
fn enter_table<T: 'static, S: TaskObj<TaskInner, T> + 'static>(this: &Rc<S>, lp: &Inner) {
    let slot = lp.tasks.borrow_mut().insert(this.clone().to_dyn());
    // A key of `u32::MAX` names no task (`TaskKey::local`).
    let slot = u32::try_from(slot)
        .ok()
        .filter(|&s| s != u32::MAX)
        .expect("a loop holds fewer than 2^32 - 1 pending tasks");
    this.core().header.slab_key.set(slot);
}

impl Inner {
    /// Every task of the loop that has not ended (for `all_tasks`, and for `close`, which
    /// tears them down): the tasks in the task table (those whose first step ran) and those
    /// whose first step is still in the ready queue. A task enters the table at its first
    /// step, and before that step nothing but `create_task` queues it; a started task's
    /// queued step is skipped here, as the table lists that task already.
    pub(crate) fn pending_tasks(&self) -> Vec<Rc<dyn TaskDyn>> {
        let mut v = self.tasks.borrow().pending();
        v.extend(self.ready.borrow().iter().filter_map(|w| match w {
            Work::Step(t) if !t.header().started() => Some(t.clone()),
            _ => None,
        }));
        v
    }
}

/// Drops a task's body on its loop. A destructor is user code: a panic from it is reported to
/// the loop's exception handler (a [`Fatal`](crate::Fatal) one unwinds) and the loop goes on.
/// The body is gone either way (its place is written even when its destructor unwinds).
#[inline(always)]
fn drop_body_on<T: 'static, S: TaskObj<TaskInner, T> + 'static>(this: &Rc<S>, lp: &Rc<Inner>) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| this.drop_body())) {
        dropping_panicked(lp, p);
    }
}

/// Out of line: the report of a body's destructor that panicked.
#[cold]
#[inline(never)]
fn dropping_panicked(lp: &Rc<Inner>, p: Box<dyn Any + Send>) {
    EventLoop { inner: lp.clone() }.report_panic(p, "Exception while dropping a task's body", None);
}

/// One step of a task: one poll of its body, with cancellation and panics handled. Generic
/// over the task's concrete type (the loop calls it from the task's own `run_step`), so that
/// the calls into the task are static and its untyped view costs no dynamic call. Inlined
/// into `run_step`, its only caller: one call frame per step.
#[inline]
fn step<T: 'static, S: TaskObj<TaskInner, T> + 'static>(this: &Rc<S>) {
    let task = this.core();
    let h = &task.header;
    if h.finished() {
        this.drop_body();
        return;
    }
    // The loop's state, not an `EventLoop` handle: a step never drops the last handle (the
    // running loop holds one), so the handle's close-on-drop check is not needed here.
    let lp = match task.lp.upgrade() {
        Some(inner) if !inner.closed_flag() => inner,
        // The loop is closed: the task is torn down (reported as destroyed pending).
        _ => {
            this.drop_body();
            dropped_pending(this);
            return;
        }
    };
    let waited_on_loop = h.replace_waiting_on_loop(false);
    if waited_on_loop {
        // (Only a loop-aware `await` sets a waiter, and it sets `waiting_on_loop` with it.)
        drop(h.fut_waiter.take());
    }
    // A cancellation requested while the body was not running. Before the first step the
    // body never runs (CORE-39). If the body is suspended in a loop-aware `await`, it is
    // polled and that `await` returns `Err(Cancelled)` (asyncio throws into the coroutine).
    // A body suspended on a foreign future cannot be told: it is dropped.
    if !h.started() || !waited_on_loop {
        let forced = h.take_must_cancel();
        if let Some(msg) = forced {
            drop_body_on(this, &lp);
            finish(this, &lp, Err(Error::Cancelled(Cancelled::new(msg))));
            return;
        }
    }
    if !h.replace_started(true) {
        enter_table(this, &lp);
    }
    let wake = match task.wake.take() {
        Some(w) => w,
        None => {
            let key = TaskKey::local(h.id, h.slab_key.get() as usize);
            TaskWaker::get(&mut lp.tasks.borrow_mut().spare_wakers, &lp.shared, key)
        }
    };
    let waker = Waker::from(wake.clone());
    task.wake.set(Some(wake));
    let me: Rc<dyn TaskDyn> = this.clone();
    let start = lp.debug_flag().then(Instant::now);
    // One look-up of the thread-local for both the switch and the restore: the poll runs
    // inside `catch_unwind`, so the restore is reached however the body ends (and `CURRENT`
    // is not borrowed while the body runs).
    let (res, me) = CURRENT.with(|c| {
        let prev = c.replace(Some(me));
        let prev_ctx = crate::context::enter(h.ctx.take());
        let mut cx = Context::from_waker(&waker);
        let res = catch_unwind(AssertUnwindSafe(|| {
            this.poll_body(&mut cx).unwrap_or(Poll::Pending)
        }));
        h.ctx.set(crate::context::enter(prev_ctx));
        (res, c.replace(prev))
    });
    drop(me);
    // The task's own reference is the only one left unless the body kept the waker: then
    // the waker can be reused once the task ends.
    drop(waker);
    if let Some(start) = start {
        let r = TaskRef {
            t: this.clone().to_dyn(),
        };
        EventLoop { inner: lp.clone() }.check_slow(start, &format_args!("{r:?}"));
    }
    match res {
        Err(p) => {
            drop_body_on(this, &lp);
            if p.is::<crate::Fatal>() {
                // The task ends with the fatal error (asyncio stores the `KeyboardInterrupt`),
                // which escapes `run_*` and so is never reported as "never retrieved".
                h.set_log_destroy_pending(false);
                h.set_retrieved(true);
                finish(this, &lp, Err(Error::Exception(Exception::from_panic(&*p))));
                resume_unwind(p);
            }
            finish(this, &lp, Err(Error::Exception(Exception::from_panic(&*p))));
        }
        Ok(Poll::Ready(v)) => {
            drop_body_on(this, &lp);
            // A task that cancelled itself and returned before its next `await` ends
            // cancelled (CORE-41).
            let self_cancel = h.take_must_cancel();
            if let Some(msg) = self_cancel {
                drop(v);
                finish(this, &lp, Err(Error::Cancelled(Cancelled::new(msg))));
                return;
            }
            // A cancellation delivered into the body that is still alive (in the output, most
            // likely returned with `?`) propagated: the task ends cancelled.
            let escaped = h
                .if_cold(|c| {
                    c.delivered
                        .iter()
                        .find(|(w, _)| w.strong_count() > 0)
                        .map(|(_, m)| m.clone())
                })
                .flatten();
            match escaped {
                Some(msg) => {
                    drop(v);
                    finish(this, &lp, Err(Error::Cancelled(Cancelled::new(msg))))
                }
                None => finish(this, &lp, Ok(v)),
            }
        }
        Ok(Poll::Pending) => {
            // A cancellation requested during this step and not delivered by an `await`.
            let msg = h.take_must_cancel();
            if let Some(msg) = msg {
                let waiter = h.fut_waiter.take();
                match waiter {
                    Some(w) => {
                        if !w.cancel_target(msg.clone()) {
                            // The loop future is already done: the next step delivers the
                            // cancellation at that `await`.
                            h.set_must_cancel(Some(msg));
                            let w = task.wake.take();
                            if let Some(w) = &w {
                                w.wake_by_ref();
                            }
                            task.wake.set(w);
                        }
                    }
                    None => {
                        drop_body_on(this, &lp);
                        finish(this, &lp, Err(Error::Cancelled(Cancelled::new(msg))));
                    }
                }
            }
        }
    }
}
