//! The task handles' methods: [`TaskRef`]'s (asyncio's `Task` API: names, cancellation,
//! state, done-callbacks) and the same methods on the typed [`Task`], which delegate to it.

use std::fmt;
use std::panic::Location;

use std::rc::Rc;

use crate::event_loop::Inner;
use crate::slot::DoneCallback;
use crate::task::Task;
use crate::task_header::{current, TaskRef};
use crate::CallbackId;
use crate::{Error, EventLoop};

impl<T: 'static> Task<T> {
    /// The task's process-wide id; see [`TaskRef::id`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert_eq!(t.get_name(), format!("Task-{}", t.id()));
    /// # lp.close().unwrap();
    /// ```
    pub fn id(&self) -> u64 {
        self.r().id()
    }

    /// The task's name; see [`TaskRef::get_name`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_named_task("worker", async {}).unwrap();
    /// assert_eq!(t.get_name(), "worker");
    /// # lp.close().unwrap();
    /// ```
    pub fn get_name(&self) -> String {
        self.r().get_name()
    }

    /// Renames the task; see [`TaskRef::set_name`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// t.set_name("renamed");
    /// assert_eq!(t.get_name(), "renamed");
    /// # lp.close().unwrap();
    /// ```
    pub fn set_name(&self, name: impl ToString) {
        self.r().set_name(name)
    }

    /// Requests cancellation; see [`TaskRef::cancel`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.cancel());
    /// assert!(lp.run_until_complete(t).unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.r().cancel()
    }

    /// Requests cancellation with a message; see [`TaskRef::cancel_with`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.cancel_with("enough"));
    /// let e = lp.run_until_complete(t).unwrap_err();
    /// assert_eq!(e.as_cancelled().unwrap().message(), Some("enough"));
    /// ```
    pub fn cancel_with(&self, msg: impl Into<String>) -> bool {
        self.r().cancel_with(msg)
    }

    /// Outstanding cancel requests; see [`TaskRef::cancelling`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// t.cancel();
    /// assert_eq!(t.cancelling(), 1);
    /// # lp.close().unwrap();
    /// ```
    pub fn cancelling(&self) -> u32 {
        self.r().cancelling()
    }

    /// Withdraws one cancel request; see [`TaskRef::uncancel`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// t.cancel();
    /// assert_eq!(t.uncancel(), 0);
    /// # lp.close().unwrap();
    /// ```
    pub fn uncancel(&self) -> u32 {
        self.r().uncancel()
    }

    /// True once the task finished; see [`TaskRef::done`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(!t.done());
    /// # lp.close().unwrap();
    /// ```
    pub fn done(&self) -> bool {
        self.r().done()
    }

    /// True if the task ended cancelled; see [`TaskRef::cancelled`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(!t.cancelled());
    /// # lp.close().unwrap();
    /// ```
    pub fn cancelled(&self) -> bool {
        self.r().cancelled()
    }

    /// The error the task failed with; see [`TaskRef::exception`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.exception().is_none());
    /// # lp.close().unwrap();
    /// ```
    pub fn exception(&self) -> Option<Error> {
        self.r().exception()
    }

    /// The task's loop, while it exists; see [`TaskRef::get_loop`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.get_loop().unwrap().ptr_eq(&lp));
    /// # lp.close().unwrap();
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.r().get_loop()
    }

    /// The task's context; see [`TaskRef::get_context`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let _ctx: loop_core::Context = t.get_context();
    /// # lp.close().unwrap();
    /// ```
    pub fn get_context(&self) -> crate::Context {
        self.r().get_context()
    }

    /// Where the task was created; see [`TaskRef::location`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.location().file().ends_with(".rs"));
    /// # lp.close().unwrap();
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.r().location()
    }

    /// Adds a done-callback; see [`TaskRef::add_done_callback`].
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let seen = Rc::new(Cell::new(false));
    /// let s = seen.clone();
    /// t.add_done_callback(move |t| s.set(t.done()));
    /// lp.run_until_complete(t).unwrap().unwrap();
    /// lp.run_until_complete(async {}).unwrap();
    /// assert!(seen.get());
    /// ```
    pub fn add_done_callback(&self, f: impl FnOnce(&TaskRef) + 'static) -> CallbackId {
        self.r().add_done_callback(f)
    }

    /// Removes a done-callback; see [`TaskRef::remove_done_callback`].
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let id = t.add_done_callback(|_| {});
    /// assert_eq!(t.remove_done_callback(id), 1);
    /// # lp.close().unwrap();
    /// ```
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        self.r().remove_done_callback(id)
    }
}

impl TaskRef {
    /// The task's process-wide id (its default name is `Task-<id>`).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let a = lp.create_task(async {}).unwrap();
    /// let b = lp.create_task(async {}).unwrap();
    /// assert!(b.id() > a.id());
    /// # lp.close().unwrap();
    /// ```
    pub fn id(&self) -> u64 {
        self.t.header().id
    }

    /// The task's name.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert_eq!(t.get_name(), format!("Task-{}", t.id()));
    /// # lp.close().unwrap();
    /// ```
    pub fn get_name(&self) -> String {
        let h = self.t.header();
        h.if_cold(|c| c.name.clone())
            .flatten()
            .unwrap_or_else(|| format!("Task-{}", h.id))
    }

    /// Renames the task.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// t.set_name(12345);
    /// assert_eq!(t.get_name(), "12345");
    /// # lp.close().unwrap();
    /// ```
    pub fn set_name(&self, name: impl ToString) {
        self.t.header().cold().name = Some(name.to_string());
    }

    /// Requests cancellation (see the module docs for how it is delivered). Returns false if
    /// the task is already done. Each call while pending increments
    /// [`cancelling`](TaskRef::cancelling).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async { unreachable!() }).unwrap();
    /// assert!(t.cancel());
    /// // The task ends cancelled: `run_until_complete` gives the cancellation as its error,
    /// // as awaiting the task does.
    /// let err = lp.run_until_complete(t).unwrap_err();
    /// assert!(err.is_cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.t.clone().cancel_dyn(None)
    }

    /// Requests cancellation with a message, which the [`Cancelled`](crate::Cancelled) error carries (asyncio's
    /// `cancel(msg)`); otherwise as [`cancel`](TaskRef::cancel).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async { unreachable!() }).unwrap();
    /// assert!(t.cancel_with("stop"));
    /// let err = lp.run_until_complete(t).unwrap_err();
    /// assert_eq!(err.as_cancelled().unwrap().message(), Some("stop"));
    /// ```
    pub fn cancel_with(&self, msg: impl Into<String>) -> bool {
        self.t.clone().cancel_dyn(Some(msg.into()))
    }

    /// How many cancel requests are outstanding.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// t.cancel();
    /// t.cancel();
    /// assert_eq!(t.cancelling(), 2);
    /// # lp.close().unwrap();
    /// ```
    pub fn cancelling(&self) -> u32 {
        self.t.header().if_cold(|c| c.cancelling).unwrap_or(0)
    }

    /// Withdraws one cancel request; at zero, a cancellation not yet delivered is withdrawn.
    /// Returns the remaining count.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async { 5 }).unwrap();
    /// t.cancel();
    /// assert_eq!(t.uncancel(), 0);
    /// assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 5);
    /// ```
    pub fn uncancel(&self) -> u32 {
        let h = self.t.header();
        h.if_cold(|c| {
            c.cancelling = c.cancelling.saturating_sub(1);
            if c.cancelling == 0 {
                c.must_cancel = None;
                h.set_cancel_pending(false);
            }
            c.cancelling
        })
        .unwrap_or(0)
    }

    /// True once the task finished (with a value, an error or a cancellation).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(!t.done());
    /// # lp.close().unwrap();
    /// ```
    pub fn done(&self) -> bool {
        self.t.header().finished()
    }

    /// True if the task ended by cancellation.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let r = t.task_ref();
    /// t.cancel();
    /// assert!(lp.run_until_complete(t).unwrap_err().is_cancelled());
    /// assert!(r.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.t.header().cancelled()
    }

    /// The error the task ended with, if any (`None` while pending or after success).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async { panic!("inside") }).unwrap();
    /// let r = t.task_ref();
    /// let _ = lp.run_until_complete(t);
    /// assert!(r.exception().unwrap().to_string().contains("inside"));
    /// ```
    pub fn exception(&self) -> Option<Error> {
        self.t.error()
    }

    /// The loop of the task (`None` once the loop is gone).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.get_loop().unwrap().ptr_eq(&lp));
    /// # lp.close().unwrap();
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        let inner = self.t.loop_any()?.downcast::<Inner>().ok()?;
        Some(EventLoop { inner })
    }

    /// The task's context: a snapshot of the variables it sees now (asyncio's
    /// `Task.get_context()`); from inside the task, the current context.
    ///
    /// ```
    /// use loop_core::{ContextVar, EventLoop};
    /// static V: ContextVar<u8> = ContextVar::new("v");
    /// let lp = EventLoop::new().unwrap();
    /// let t = lp.create_task(async { V.set(2); }).unwrap();
    /// assert_eq!(t.get_context().get(&V), None);
    /// let r = t.task_ref();
    /// lp.run_until_complete(t).unwrap().unwrap();
    /// assert_eq!(r.get_context().get(&V), Some(2));
    /// ```
    pub fn get_context(&self) -> crate::Context {
        if current().is_some_and(|c| Rc::ptr_eq(&c, &self.t)) {
            return crate::Context::current();
        }
        let h = self.t.header();
        let map = h.ctx.take();
        h.ctx.set(map.clone());
        crate::Context { map }
    }

    /// Runs `f` in the task's context (the exception handler does, for reports about a task).
    pub(crate) fn run_in_context<R>(&self, f: impl FnOnce() -> R) -> R {
        if current().is_some_and(|c| Rc::ptr_eq(&c, &self.t)) {
            return f();
        }
        let mut ctx = self.get_context();
        ctx.run(f)
    }

    /// Where the task was created.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert_eq!(t.location().line(), line!() - 1);
    /// # lp.close().unwrap();
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.t.header().location
    }

    /// Adds a callback run (through the ready queue) when the task is done; scheduled at once if
    /// it is done already. It runs in the [`Context`](crate::Context) that is current here.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let seen = Rc::new(Cell::new(false));
    /// let s = seen.clone();
    /// t.add_done_callback(move |t| { s.set(t.done()); t.get_loop().unwrap().stop() });
    /// lp.run_forever().unwrap();
    /// assert!(seen.get());
    /// ```
    #[track_caller]
    pub fn add_done_callback(&self, f: impl FnOnce(&TaskRef) + 'static) -> CallbackId {
        let h = self.t.header();
        let id = {
            let mut c = h.cold();
            c.next_cb += 1;
            c.next_cb - 1
        };
        let cb = DoneCallback::new(id, f);
        if h.finished() {
            if let Some(lp) = self.get_loop() {
                cb.schedule(&lp, self.clone());
            }
        } else {
            h.cold().callbacks.push(cb);
        }
        CallbackId(id)
    }

    /// Removes a done-callback not yet scheduled; returns how many were removed (0 or 1).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let id = t.add_done_callback(|_| {});
    /// assert_eq!(t.remove_done_callback(id), 1);
    /// # lp.close().unwrap();
    /// ```
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        let taken: Vec<_> = {
            let h = self.t.header();
            let Some(cbs) = h.if_cold(|c| std::mem::take(&mut c.callbacks)) else {
                return 0;
            };
            let (gone, keep): (Vec<_>, Vec<_>) = cbs.into_iter().partition(|cb| cb.id == id.0);
            h.cold().callbacks = keep;
            gone
        };
        taken.len()
    }

    /// True if both refer to the same task.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// assert!(t.task_ref().ptr_eq(&t.task_ref()));
    /// # lp.close().unwrap();
    /// ```
    pub fn ptr_eq(&self, other: &TaskRef) -> bool {
        Rc::ptr_eq(&self.t, &other.t)
    }

    /// Do not report this task if it is dropped while pending.
    pub(crate) fn quiet(&self) {
        self.t.header().set_log_destroy_pending(false);
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.t.header();
        let state = if h.cancelled() {
            "cancelled"
        } else if h.finished() {
            "finished"
        } else {
            "pending"
        };
        write!(
            f,
            "<Task {state} name='{}' created at {}>",
            self.get_name(),
            h.location
        )
    }
}

impl<T: 'static> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.r(), f)
    }
}
