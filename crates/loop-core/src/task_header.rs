//! The task header: the type-independent state every task has ([`Header`], behind the
//! [`TaskDyn`] trait object that [`TaskRef`] holds), the loop's task table, the task executing
//! now, and [`TaskSpec`]. Nothing here names the loop: the typed task (`task.rs`) holds its
//! loop, and a [`TaskRef`] reaches it through [`TaskDyn::loop_any`], so the loop's state can
//! hold the task table and the task types without a module cycle.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell, RefMut};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Waker;

use crate::slot::DoneCallback;
pub(crate) use crate::task_wake::TaskKey;
use crate::task_wake::TaskWaker;
use crate::{Cancelled, Error};

/// Something a task can be waiting on, that its cancellation cancels.
pub(crate) trait CancelTarget {
    /// Cancels it; true if it was pending.
    fn cancel_target(self: Rc<Self>, msg: Option<String>) -> bool;
}

/// The type-independent part of every task.
pub(crate) trait TaskDyn {
    /// The header.
    fn header(&self) -> &Header;
    /// The error the task failed with, if it did (marks it retrieved).
    fn error(&self) -> Option<Error>;
    /// Cancels the task.
    fn cancel_dyn(self: Rc<Self>, msg: Option<String>) -> bool;
    /// The task's loop (its state, as `Any`), if it still exists.
    fn loop_any(&self) -> Option<Rc<dyn Any>>;
    /// The address of the task's loop state: the loop's identity, the same for every task and
    /// future of one loop and different for any two loops alive at once (a task's weak
    /// reference keeps its loop's allocation, so the address is not reused while the task
    /// exists). Compared instead of an id kept in every task. With the header: one dynamic
    /// call for both (an `await` looks at both).
    fn header_and_loop(&self) -> (&Header, *const ());
    /// Runs the task's queued step: queued on the loop's thread, or (`remote`) by a wake from
    /// another thread.
    fn run_step(self: Rc<Self>, remote: bool);
    /// Tears down a task of a closing loop: its body is dropped and, if it was pending, it
    /// is reported as destroyed while pending.
    fn abandon(self: Rc<Self>);
}

/// Runs the step `k` of a task of the loop whose task table is `tasks` (nothing if the task
/// has ended since).
#[inline]
pub(crate) fn run_task<S>(tasks: &RefCell<TaskSlab<S>>, k: TaskKey) {
    let t = tasks.borrow().get(k).cloned();
    if let Some(t) = t {
        t.run_step(k.remote);
    }
}

impl dyn TaskDyn {
    /// The address of the task's loop state (see [`TaskDyn::header_and_loop`]).
    #[inline]
    pub(crate) fn loop_addr(&self) -> *const () {
        self.header_and_loop().1
    }

    /// Takes a cancellation requested while the task runs (self-cancel), as a delivered value.
    #[inline]
    pub(crate) fn take_pending_cancel(&self) -> Option<Cancelled> {
        let h = self.header();
        let msg = h.take_must_cancel()?;
        let c = Cancelled::new(msg);
        self.track_delivered(&c);
        Some(c)
    }

    /// Remembers a cancellation delivered into the body.
    pub(crate) fn track_delivered(&self, c: &Cancelled) {
        let mut cold = self.header().cold();
        let d = &mut cold.delivered;
        d.retain(|(w, _)| w.strong_count() > 0);
        d.push((c.token(), c.message().map(str::to_string)));
    }

    /// Records the loop future the task now waits on.
    #[inline]
    pub(crate) fn set_waiter(&self, w: Rc<dyn CancelTarget>) {
        let h = self.header();
        h.set_waiting_on_loop(true);
        h.fut_waiter.set(Some(w));
    }
}

/// The type-independent state of a task.
///
/// Kept small: with a million live tasks, memory traffic is most of what a task costs. The
/// yes/no state is one byte of flags (see the accessors below), the table index is 32 bits
/// (as in [`TaskKey`]), and what most tasks never use lives in [`Cold`], allocated on first
/// use.
pub(crate) struct Header {
    /// Process-wide id.
    pub(crate) id: u64,
    /// Where `create_task` was called.
    pub(crate) location: &'static Location<'static>,
    /// The loop future the task waits on.
    pub(crate) fut_waiter: Cell<Option<Rc<dyn CancelTarget>>>,
    /// The task's context; taken out (current) while a step runs.
    pub(crate) ctx: Cell<crate::context::Snapshot>,
    /// A name, cancellation, done-callbacks, extra awaiters: unset until first used.
    pub(crate) cold: OnceCell<Box<RefCell<Cold>>>,
    /// Index in the loop's task table, from the task's first step (`u32::MAX` before).
    pub(crate) slab_key: Cell<u32>,
    /// The flags (`Header::STARTED` ...): one byte instead of one `Cell<bool>` each.
    flags: Cell<u8>,
}

/// Declares the task's flags: a bit of [`Header::flags`] each, with a getter, a setter and
/// a `replace` (sets it, returns what it was) named after it.
macro_rules! task_flags {
    ($($(#[$doc:meta])* $bit:ident = $val:expr, $get:ident, $set:ident, $replace:ident;)*) => {
        impl Header {
            $(
                $(#[$doc])*
                pub(crate) const $bit: u8 = $val;

                $(#[$doc])*
                #[inline]
                #[allow(dead_code)]
                pub(crate) fn $get(&self) -> bool {
                    self.flags.get() & Self::$bit != 0
                }

                /// Sets or clears the flag of the same name.
                #[inline]
                #[allow(dead_code)]
                pub(crate) fn $set(&self, on: bool) {
                    let f = self.flags.get();
                    self.flags.set(if on { f | Self::$bit } else { f & !Self::$bit });
                }

                /// Sets or clears the flag of the same name; returns its former value.
                #[inline]
                #[allow(dead_code)]
                pub(crate) fn $replace(&self, on: bool) -> bool {
                    let was = self.$get();
                    self.$set(on);
                    was
                }
            )*
        }
    };
}

task_flags! {
    /// The first step ran.
    STARTED = 1, started, set_started, replace_started;
    /// Done.
    FINISHED = 1 << 1, finished, set_finished, replace_finished;
    /// Done by cancellation.
    CANCELLED = 1 << 2, cancelled, set_cancelled, replace_cancelled;
    /// The last step suspended in a loop-aware `await` (a loop future or task), which can
    /// deliver a cancellation into the body; false when it suspended on a foreign future.
    WAITING_ON_LOOP = 1 << 3, waiting_on_loop, set_waiting_on_loop, replace_waiting_on_loop;
    /// A step of the task is in the loop's ready queue.
    SCHEDULED = 1 << 4, scheduled, set_scheduled, replace_scheduled;
    /// Report "destroyed but pending" if dropped pending.
    LOG_DESTROY_PENDING = 1 << 5, log_destroy_pending, set_log_destroy_pending, replace_log_destroy_pending;
    /// The error was read (no "never retrieved" report).
    RETRIEVED = 1 << 6, retrieved, set_retrieved, replace_retrieved;
    /// A cancellation waits to be delivered (`cold.must_cancel` is `Some`): a flag test
    /// instead of a look at the cold state on every `await`.
    CANCEL_PENDING = 1 << 7, cancel_pending, set_cancel_pending, replace_cancel_pending;
}

impl Header {
    /// The state of a new task: `flags` set (`Header::SCHEDULED` ...), `cold` created if given.
    #[inline]
    pub(crate) fn new(
        id: u64,
        location: &'static Location<'static>,
        ctx: crate::context::Snapshot,
        cold: Option<Cold>,
        flags: u8,
    ) -> Header {
        Header {
            id,
            location,
            fut_waiter: Cell::new(None),
            ctx: Cell::new(ctx),
            cold: match cold {
                Some(c) => OnceCell::from(Box::new(RefCell::new(c))),
                None => OnceCell::new(),
            },
            // In no place of the table until its first step (`u32::MAX` is no place).
            slab_key: Cell::new(u32::MAX),
            flags: Cell::new(flags),
        }
    }
}

/// The part of a task's state most tasks never use (an explicit name, cancellation,
/// done-callbacks). It lives out of line and is allocated on first use, so that the common
/// task (created, run, awaited) stays small: with a million live tasks, memory traffic is
/// most of what a task costs.
#[derive(Default)]
pub(crate) struct Cold {
    /// Explicit name.
    pub(crate) name: Option<String>,
    /// A cancellation to deliver: `Some(message)`.
    pub(crate) must_cancel: Option<Option<String>>,
    /// Number of cancel requests not withdrawn by `uncancel`.
    pub(crate) cancelling: u32,
    /// Cancellations delivered into the body: (token, message).
    pub(crate) delivered: Vec<(std::sync::Weak<()>, Option<String>)>,
    /// Done-callbacks.
    pub(crate) callbacks: Vec<DoneCallback<TaskRef>>,
    /// Next callback id.
    pub(crate) next_cb: u64,
    /// Wakers of further tasks awaiting this one (the first one's is in the task itself).
    pub(crate) waiters: Vec<Waker>,
}

impl Header {
    /// The cold state, created on first use. The borrow must end before user code runs.
    pub(crate) fn cold(&self) -> RefMut<'_, Cold> {
        self.cold.get_or_init(Default::default).borrow_mut()
    }

    /// Applies `f` to the cold state if it exists (without creating it).
    #[inline]
    pub(crate) fn if_cold<R>(&self, f: impl FnOnce(&mut Cold) -> R) -> Option<R> {
        self.cold.get().map(|c| f(&mut c.borrow_mut()))
    }

    /// Takes the cancellation waiting to be delivered, if any.
    #[inline]
    pub(crate) fn take_must_cancel(&self) -> Option<Option<String>> {
        if !self.replace_cancel_pending(false) {
            return None;
        }
        self.if_cold(|c| c.must_cancel.take()).flatten()
    }

    /// Sets (`Some(message)`) or withdraws (`None`) the cancellation waiting to be delivered.
    pub(crate) fn set_must_cancel(&self, msg: Option<Option<String>>) {
        self.set_cancel_pending(msg.is_some());
        self.cold().must_cancel = msg;
    }

    /// Takes the done-callbacks.
    #[inline]
    pub(crate) fn take_callbacks(&self) -> Vec<DoneCallback<TaskRef>> {
        self.if_cold(|c| std::mem::take(&mut c.callbacks))
            .unwrap_or_default()
    }
}

/// The loop's table of pending tasks whose first step ran (`S`: the loop's thread-safe part,
/// which task wakers point at). A task enters it at that step (before it, the task's waker
/// does not exist and the ready queue holds the task), so a burst of tasks created, then run
/// and ended in turn, reuses a few places instead of writing one per task.
///
/// The free places form a list threaded through the vacant entries themselves, so a task that
/// ends gives its place back without touching a second buffer: the table's only allocation is
/// `entries`, which grows while tasks are created and never while they end. A burst of task
/// ends thus frees the tasks' blocks and nothing else; a separate list of free indexes would
/// grow (reallocate, free its old buffer next to the heap's top) in the middle of it, and
/// glibc's allocator then checks whether to trim the heap on every later free there.
pub(crate) struct TaskSlab<S> {
    /// Entries.
    entries: Vec<TaskEntry>,
    /// The first vacant entry, `entries.len()` when none is.
    next_free: usize,
    /// Places held by a task. With none, the loop's `close` and `all_tasks` do not walk the
    /// entries: after a burst of tasks that all ended, that walk read one vacant entry per
    /// task of the burst (a cache miss every four with a table too large for the cache).
    live: usize,
    /// Spent task wakers of this loop, for reuse by its later tasks (each is held by nobody
    /// else). Here, beside the table a task leaves when it ends, so that giving one back costs
    /// no borrow of its own.
    pub(crate) spare_wakers: Vec<std::sync::Arc<TaskWaker<S>>>,
}

/// A place in the [`TaskSlab`].
enum TaskEntry {
    /// Held by a pending task.
    Task(Rc<dyn TaskDyn>),
    /// Free; the index of the next free place (`entries.len()` at the end of the list).
    Vacant(usize),
}

impl<S> Default for TaskSlab<S> {
    fn default() -> Self {
        TaskSlab {
            entries: Vec::new(),
            next_free: 0,
            live: 0,
            spare_wakers: Vec::new(),
        }
    }
}

impl<S> TaskSlab<S> {
    /// Puts `t` in the table and returns its place (the last one freed, if any is free).
    #[inline]
    pub(crate) fn insert(&mut self, t: Rc<dyn TaskDyn>) -> usize {
        self.live += 1;
        let i = self.next_free;
        match self.entries.get_mut(i) {
            Some(e) => {
                // `next_free` names a vacant entry whenever it is inside the table.
                if let TaskEntry::Vacant(next) = std::mem::replace(e, TaskEntry::Task(t)) {
                    self.next_free = next;
                }
            }
            None => {
                self.entries.push(TaskEntry::Task(t));
                self.next_free = self.entries.len();
            }
        }
        i
    }

    /// Takes the task at place `i` out of the table, if one is there.
    #[inline]
    pub(crate) fn remove(&mut self, i: usize) -> Option<Rc<dyn TaskDyn>> {
        let e = self.entries.get_mut(i)?;
        if let TaskEntry::Vacant(_) = e {
            return None;
        }
        match std::mem::replace(e, TaskEntry::Vacant(self.next_free)) {
            TaskEntry::Task(t) => {
                self.next_free = i;
                self.live -= 1;
                Some(t)
            }
            TaskEntry::Vacant(_) => None,
        }
    }

    /// The task `k`, if it is still in the table.
    #[inline]
    pub(crate) fn get(&self, k: TaskKey) -> Option<&Rc<dyn TaskDyn>> {
        match self.entries.get(k.slot as usize)? {
            TaskEntry::Task(t) if t.header().id == k.id => Some(t),
            _ => None,
        }
    }

    /// The task `k`, if it is still in the table and no step of it is queued on the loop's
    /// thread; marks one queued. (One look at the task's header for both tests.)
    #[inline]
    pub(crate) fn schedule(&self, k: TaskKey) -> Option<Rc<dyn TaskDyn>> {
        match self.entries.get(k.slot as usize)? {
            TaskEntry::Task(t) => {
                let h = t.header();
                (h.id == k.id && !h.replace_scheduled(true)).then(|| t.clone())
            }
            TaskEntry::Vacant(_) => None,
        }
    }

    /// The tasks in the table, in the order of their places.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rc<dyn TaskDyn>> {
        let entries: &[TaskEntry] = if self.live == 0 { &[] } else { &self.entries };
        entries.iter().filter_map(|e| match e {
            TaskEntry::Task(t) => Some(t),
            TaskEntry::Vacant(_) => None,
        })
    }

    /// Every task in the table (a closing loop tears them down, on the loop's thread).
    pub(crate) fn pending(&self) -> Vec<Rc<dyn TaskDyn>> {
        self.iter().cloned().collect()
    }
}

thread_local! {
    /// The task whose step is executing on this thread.
    pub(crate) static CURRENT: RefCell<Option<Rc<dyn TaskDyn>>> = const { RefCell::new(None) };
}

/// The task executing now, if any.
#[inline]
pub(crate) fn current() -> Option<Rc<dyn TaskDyn>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// A handle on a task of any output type: name, cancellation, state, done-callbacks.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let t = lp.create_task(async { 1 }).unwrap();
/// let r: loop_core::TaskRef = t.task_ref();
/// assert!(r.get_name().starts_with("Task-"));
/// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 1);
/// assert!(r.done());
/// ```
#[derive(Clone)]
pub struct TaskRef {
    /// The task.
    pub(crate) t: Rc<dyn TaskDyn>,
}

/// What a task factory receives and returns: the task's future (type-erased), name and
/// creation site.
///
/// ```
/// use loop_core::{EventLoop, TaskSpec};
/// use std::rc::Rc;
///
/// let lp = EventLoop::new().unwrap();
/// lp.set_task_factory(Some(Rc::new(|_lp: &EventLoop, mut spec: TaskSpec| {
///     spec.name = Some(format!("factory:{}", spec.name.unwrap_or_default()));
///     Ok(spec)
/// })));
/// let t = lp.create_named_task("x", async { 1 }).unwrap();
/// assert_eq!(t.get_name(), "factory:x");
/// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 1);
/// ```
#[non_exhaustive]
pub struct TaskSpec {
    /// The body. A factory may wrap it, but must keep its output (a boxed value of the task's
    /// output type).
    pub future: Pin<Box<dyn Future<Output = Box<dyn Any>>>>,
    /// The name given to `create_named_task`, if any.
    pub name: Option<String>,
    /// Where `create_task` was called.
    pub location: &'static Location<'static>,
    /// The context the task will run in: a snapshot of the creator's (asyncio's `context=`).
    pub context: crate::Context,
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpec")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}
