//! The runner (asyncio's `asyncio.run`) and the shutdown steps it takes.
//!
//! [`run`] / [`EventLoop::run_main`] run a main future to completion on a loop and then shut
//! the loop down in asyncio's order:
//!
//! 1. every task still pending is cancelled, and the runner waits until all of them are done;
//!    a task that ended with an error (not a cancellation) is reported to the exception handler
//!    as "unhandled exception during evloop::run() shutdown";
//! 2. [`EventLoop::shutdown_asyncgens`]: every async resource registered with
//!    [`EventLoop::track_async_resource`] is finalized, concurrently;
//! 3. the shutdown hooks of extension crates ([`EventLoop::on_shutdown`]) run one after the
//!    other: the executor crate waits here for its default executor (asyncio's
//!    `shutdown_default_executor(300 s)`);
//! 4. [`EventLoop::close`], which runs the close hooks of the extension crates.
//!
//! **Async resources** are asyncio's async generators, restated: a resource that needs an
//! `await` to be closed properly (a stream that flushes, a protocol that says goodbye)
//! registers a finalizer with the loop and keeps the returned [`AsyncResource`] guard. Closing
//! or dropping the resource normally drops the guard, which unregisters it. Whatever is still
//! registered when the loop shuts down is finalized by `shutdown_asyncgens`; what is still
//! registered at `close()` is dropped without being finalized (plain `Drop` then applies).

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::{Rc, Weak};

use crate::event_loop::{Finalizer, Inner, ShutdownHook};
use crate::{Error, EventLoop, ExceptionContext, Result};

/// The registration of an async resource with its loop (see
/// [`EventLoop::track_async_resource`]). Dropping it unregisters the resource: keep it inside
/// the resource, so that closing or dropping the resource normally takes it off the list.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let reg = lp.track_async_resource("my stream", |_lp| async { Ok(()) });
/// assert!(reg.is_tracked());
/// drop(reg); // closed normally: nothing left to finalize at shutdown
/// ```
pub struct AsyncResource {
    /// The loop (weak: a resource does not keep the loop alive).
    lp: Weak<Inner>,
    /// Key in the registry; `None` if the resource was not registered.
    key: Option<u64>,
}

impl AsyncResource {
    /// True while the resource is registered: it was registered before
    /// [`shutdown_asyncgens`](EventLoop::shutdown_asyncgens) started, and has not been
    /// finalized since.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let reg = lp.track_async_resource("r", |_lp| async { Ok(()) });
    /// assert!(reg.is_tracked());
    /// lp.run_until_complete(lp.shutdown_asyncgens()).unwrap();
    /// assert!(!reg.is_tracked());
    /// ```
    pub fn is_tracked(&self) -> bool {
        match (self.key, self.lp.upgrade()) {
            (Some(k), Some(inner)) => inner.resources.borrow().entries.contains_key(&k),
            _ => false,
        }
    }
}

impl Drop for AsyncResource {
    fn drop(&mut self) {
        if let (Some(k), Some(inner)) = (self.key, self.lp.upgrade()) {
            let entry = inner.resources.borrow_mut().entries.remove(&k);
            drop(entry);
        }
    }
}

impl std::fmt::Debug for AsyncResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<AsyncResource tracked={}>", self.is_tracked())
    }
}

impl EventLoop {
    /// Registers an async resource to be finalized by
    /// [`shutdown_asyncgens`](EventLoop::shutdown_asyncgens) if it is still open then
    /// (asyncio's async-generator hooks, CORE-59). `finalize` makes the future that closes it;
    /// an error it returns, or a panic, is reported to the exception handler with the
    /// resource's name under the key `asyncgen`.
    ///
    /// Registering after `shutdown_asyncgens` started logs a warning (asyncio's
    /// `ResourceWarning`) and returns a guard that tracks nothing: the resource is then only
    /// cleaned up by its own `Drop`. After `close()` the finalizer is dropped at once.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let flushed = Rc::new(Cell::new(false));
    /// let f = flushed.clone();
    /// let _reg = lp.track_async_resource("log file", move |_lp| async move {
    ///     f.set(true); // an async flush would go here
    ///     Ok(())
    /// });
    /// lp.run_until_complete(lp.shutdown_asyncgens()).unwrap();
    /// assert!(flushed.get());
    /// ```
    #[track_caller]
    pub fn track_async_resource<F, Fut>(
        &self,
        name: impl Into<String>,
        finalize: F,
    ) -> AsyncResource
    where
        F: FnOnce(&EventLoop) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let name = name.into();
        let untracked = AsyncResource {
            lp: Rc::downgrade(&self.inner),
            key: None,
        };
        if self.is_closed() {
            return untracked;
        }
        let mut res = self.inner.resources.borrow_mut();
        if res.shut_down {
            drop(res);
            tracing::warn!(
                "async resource {name:?} registered at {} after shutdown_asyncgens() was called; \
                 it will not be finalized by the loop",
                Location::caller()
            );
            return untracked;
        }
        let key = res.next;
        res.next += 1;
        let finalize: Finalizer = Box::new(move |lp| Box::pin(finalize(lp)));
        res.entries.insert(key, (name, finalize));
        AsyncResource {
            lp: Rc::downgrade(&self.inner),
            key: Some(key),
        }
    }

    /// Finalizes every registered async resource, concurrently (one task each), and waits for
    /// all of them (asyncio's `shutdown_asyncgens`). From the moment this future is first
    /// polled, new registrations are refused with a warning. Each failure is reported to the
    /// exception handler as `{message: "an error occurred during closing of asynchronous
    /// resource <name>", exception, asyncgen: <name>}`; the future itself never fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after it started leaves the finalizer tasks running; they are not
    /// awaited, and their failures are then reported as task errors nobody retrieved.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let _reg = lp.track_async_resource("broken", |_lp| async {
    ///     Err(loop_core::Error::invalid_state("cannot flush"))
    /// });
    /// // Reported to the exception handler; shutdown goes on.
    /// lp.run_until_complete(lp.shutdown_asyncgens()).unwrap();
    /// ```
    pub fn shutdown_asyncgens(&self) -> impl Future<Output = ()> + 'static {
        let lp = self.clone();
        async move {
            let entries = {
                let mut res = lp.inner.resources.borrow_mut();
                res.shut_down = true;
                res.take_all()
            };
            let mut tasks = Vec::with_capacity(entries.len());
            for (_, (name, finalize)) in entries {
                let fut = match catch_unwind(AssertUnwindSafe(|| finalize(&lp))) {
                    Ok(fut) => fut,
                    Err(p) => {
                        if p.is::<crate::Fatal>() {
                            std::panic::resume_unwind(p);
                        }
                        let e = Error::Exception(crate::Exception::from_panic(&*p));
                        report_resource_error(&lp, &name, e);
                        continue;
                    }
                };
                match lp.create_named_task(format!("finalize {name}"), fut) {
                    Ok(t) => tasks.push((name, t)),
                    Err(e) => report_resource_error(&lp, &name, e),
                }
            }
            for (name, t) in tasks {
                match t.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => report_resource_error(&lp, &name, e),
                }
            }
        }
    }

    /// Registers a step of the runner's shutdown (see [`run`]): after the remaining tasks were
    /// cancelled and [`shutdown_asyncgens`](EventLoop::shutdown_asyncgens) ran, the runner
    /// awaits each hook's future, in registration order, before it closes the loop. The
    /// executor crate waits for its default executor here (asyncio's
    /// `shutdown_default_executor(300 s)`); what must happen at `close()` without waiting goes
    /// to a close hook instead. Only runners run these hooks: a loop
    /// closed by hand drops them.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let done = Rc::new(Cell::new(false));
    /// let d = done.clone();
    /// lp.on_shutdown(move |_lp| async move { d.set(true) });
    /// lp.run_main(async {}).unwrap();
    /// assert!(done.get());
    /// assert!(lp.is_closed());
    /// ```
    pub fn on_shutdown<F, Fut>(&self, hook: F)
    where
        F: FnOnce(&EventLoop) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let hook: ShutdownHook = Box::new(move |lp| Box::pin(hook(lp)));
        self.inner.shutdown_hooks.borrow_mut().push(hook);
    }

    /// Runs `fut` as the main task of this loop, then shuts the loop down and closes it: what
    /// `asyncio.run` does, on a loop you configured first (debug mode, exception handler, task
    /// factory). The shutdown sequence is in the [module docs](crate::run).
    ///
    /// # Errors
    ///
    /// As [`run_until_complete`](EventLoop::run_until_complete): [`Error::Closed`],
    /// [`Error::AlreadyRunning`], [`Error::AnotherLoopRunning`] (the loop is then left as it
    /// was), [`Error::StoppedBeforeComplete`], or how the main task failed. The loop is closed
    /// in every case but the first three.
    ///
    /// # Panics
    ///
    /// A [`Fatal`](crate::Fatal) unwinds out of it; the loop is closed on the way (pending
    /// tasks are then reported as destroyed while pending).
    ///
    /// ```
    /// use loop_core::EventLoop;
    /// let lp = EventLoop::new().unwrap();
    /// lp.set_debug(true);
    /// let v = lp.run_main(async {
    ///     let lp = loop_core::get_running_loop().unwrap();
    ///     lp.create_task(std::future::pending::<()>()).unwrap(); // cancelled at shutdown
    ///     7
    /// }).unwrap();
    /// assert_eq!(v, 7);
    /// assert!(lp.is_closed());
    /// ```
    #[track_caller]
    pub fn run_main<F>(&self, fut: F) -> Result<F::Output>
    where
        F: IntoFuture + 'static,
        F::Output: 'static,
    {
        self.check_can_run()?;
        /// Closes the loop however `run_main` ends.
        struct CloseGuard<'a>(&'a EventLoop);
        impl Drop for CloseGuard<'_> {
            fn drop(&mut self) {
                if !self.0.is_running() {
                    let _ = self.0.close();
                }
            }
        }
        let guard = CloseGuard(self);
        let result = self.run_until_complete(fut);
        self.cancel_all_tasks();
        let _ = self.run_until_complete(self.shutdown_asyncgens());
        loop {
            let hooks = std::mem::take(&mut *self.inner.shutdown_hooks.borrow_mut());
            if hooks.is_empty() {
                break;
            }
            for hook in hooks {
                match catch_unwind(AssertUnwindSafe(|| hook(self))) {
                    Ok(fut) => {
                        let _ = self.run_until_complete(fut);
                    }
                    Err(p) => self.report_panic(p, "Exception in shutdown hook", None),
                }
            }
        }
        drop(guard);
        result
    }

    /// Cancels every pending task and runs the loop until all of them are done; reports the
    /// ones that ended with an error (step 1 of the runner's shutdown).
    fn cancel_all_tasks(&self) {
        let tasks = self.all_tasks();
        if tasks.is_empty() {
            return;
        }
        for t in &tasks {
            t.cancel();
        }
        let all_done = self.create_future::<()>();
        let remaining = Rc::new(Cell::new(tasks.len()));
        for t in &tasks {
            let remaining = remaining.clone();
            let all_done = all_done.clone();
            t.add_done_callback(move |_| {
                remaining.set(remaining.get() - 1);
                if remaining.get() == 0 {
                    let _ = all_done.set_result(());
                }
            });
        }
        let _ = self.run_until_complete(all_done);
        for t in tasks {
            if t.cancelled() || !t.done() {
                continue;
            }
            if let Some(e) = t.exception() {
                let ctx =
                    ExceptionContext::new("unhandled exception during evloop::run() shutdown")
                        .with_exception(e)
                        .with_task(t);
                self.call_exception_handler(&ctx);
            }
        }
    }
}

/// Reports the failure of a resource finalizer.
fn report_resource_error(lp: &EventLoop, name: &str, e: Error) {
    let ctx = ExceptionContext::new(format!(
        "an error occurred during closing of asynchronous resource {name}"
    ))
    .with_exception(e)
    .with_extra("asyncgen", name);
    lp.call_exception_handler(&ctx);
}

/// Runs `fut` on a new loop and shuts the loop down: asyncio's `asyncio.run`.
///
/// A new [`EventLoop`] is created (debug mode from `EVLOOP_DEBUG`), `fut` runs as its main
/// task, then:
///
/// 1. every task still pending is cancelled and awaited; one that ended with an error is
///    reported as `{message: "unhandled exception during evloop::run() shutdown", exception,
///    task}`;
/// 2. [`EventLoop::shutdown_asyncgens`] finalizes the registered async resources;
/// 3. the [`EventLoop::on_shutdown`] hooks run (the executor crate waits for its default
///    executor there);
/// 4. the loop is closed (running the extension crates' close hooks).
///
/// Use [`EventLoop::run_main`] to configure the loop first.
///
/// # Errors
///
/// The loop's creation error; [`Error::AnotherLoopRunning`] if called from a running loop;
/// [`Error::StoppedBeforeComplete`] if the loop was stopped before `fut` finished; how the main
/// task failed ([`Error::Cancelled`], or a panic as [`Error::Exception`]).
///
/// # Panics
///
/// A [`Fatal`](crate::Fatal) raised by user code unwinds out of it, after the loop is closed.
///
/// ```
/// let answer = loop_core::run(async {
///     let lp = loop_core::get_running_loop().unwrap();
///     let t = lp.create_task(async { 21 }).unwrap();
///     t.await.unwrap() * 2
/// }).unwrap();
/// assert_eq!(answer, 42);
/// ```
#[track_caller]
pub fn run<F>(fut: F) -> Result<F::Output>
where
    F: IntoFuture + 'static,
    F::Output: 'static,
{
    EventLoop::new()?.run_main(fut)
}
