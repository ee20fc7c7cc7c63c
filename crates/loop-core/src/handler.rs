//! The loop's exception handler: where every error that has no caller to return to ends up.
//! The loop passes its [`ExceptionContext`] to the handler set with
//! [`EventLoop::set_exception_handler`], or to [`EventLoop::default_exception_handler`], which
//! logs it through `tracing` at ERROR level, and goes on with the next callback.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Error, EventLoop, ExceptionContext, ExceptionHandler};

impl EventLoop {
    /// Sets the handler that receives every unhandled error of this loop; `None` restores the
    /// default handler.
    ///
    /// ```
    /// use loop_core::EventLoop;
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let lp = EventLoop::new().unwrap();
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let s = seen.clone();
    /// lp.set_exception_handler(Some(Rc::new(move |_lp, ctx| s.borrow_mut().push(ctx.message.clone()))));
    /// lp.call_soon(|_| panic!("boom")).unwrap();
    /// lp.call_soon(|lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// assert!(seen.borrow()[0].starts_with("Exception in callback"));
    /// ```
    pub fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        *self.inner.exception_handler.borrow_mut() = handler;
    }

    /// The custom handler, or `None` when the default one is in use.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.get_exception_handler().is_none());
    /// ```
    pub fn get_exception_handler(&self) -> Option<ExceptionHandler> {
        self.inner.exception_handler.borrow().clone()
    }

    /// The default handler: logs the rendered context at ERROR level through `tracing`, with the
    /// exception as the `error` field. In debug mode, if a callback is executing and the context
    /// has no source location, the callback's location is added (`handle_traceback`).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.default_exception_handler(&loop_core::ExceptionContext::new("logged, not raised"));
    /// ```
    pub fn default_exception_handler(&self, ctx: &ExceptionContext) {
        let mut text_ctx;
        let mut ctx = ctx;
        if self.get_debug() && ctx.source_location.is_none() && ctx.handle_location.is_none() {
            if let Some(loc) = self.inner.current_location.get() {
                text_ctx = ctx.clone();
                text_ctx.handle_location = Some(loc);
                ctx = &text_ctx;
            }
        }
        let text = ctx.render();
        match &ctx.exception {
            Some(e) => tracing::error!(error = %e, "{text}"),
            None => tracing::error!("{text}"),
        }
    }

    /// Reports an error: calls the custom handler if one is set, else the default one.
    ///
    /// Never fails: if the custom handler panics, the default handler reports that (with the
    /// message "Unhandled error in exception handler"); if that panics too, a plain line goes to
    /// the log. A [`Fatal`](crate::Fatal) panic still unwinds.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// lp.call_exception_handler(&loop_core::ExceptionContext::new("reported"));
    /// ```
    pub fn call_exception_handler(&self, ctx: &ExceptionContext) {
        let handler = self.inner.exception_handler.borrow().clone();
        match handler {
            None => {
                if catch_unwind(AssertUnwindSafe(|| self.default_exception_handler(ctx))).is_err() {
                    tracing::error!("Exception in default exception handler");
                }
            }
            Some(h) => {
                // A report about a task runs in the task's context; other reports run in the
                // current one (for a callback that failed: the callback's).
                let call = || match &ctx.task {
                    Some(t) => t.run_in_context(|| h(self, ctx)),
                    None => h(self, ctx),
                };
                if let Err(p) = catch_unwind(AssertUnwindSafe(call)) {
                    if p.is::<crate::Fatal>() {
                        std::panic::resume_unwind(p);
                    }
                    let exc = crate::Exception::from_panic(&*p);
                    let mut report = ExceptionContext::new("Unhandled error in exception handler")
                        .with_exception(Error::Exception(exc))
                        .with_extra("context", ctx.render());
                    report.source_location = ctx.source_location;
                    if catch_unwind(AssertUnwindSafe(|| self.default_exception_handler(&report)))
                        .is_err()
                    {
                        tracing::error!(
                            "Exception in default exception handler while handling an unexpected error in custom exception handler"
                        );
                    }
                }
            }
        }
    }
}

/// Reports to the loop's handler if the loop is still alive, else logs.
pub(crate) fn report(lp: Option<EventLoop>, ctx: &ExceptionContext) {
    match lp {
        Some(lp) => lp.call_exception_handler(ctx),
        None => tracing::error!("{ctx:?}"),
    }
}
