//! The exception context: what the loop knows about an error that has no caller to return to.
//!
//! A panic in a callback, a task step, a protocol method or a done-callback is caught at the
//! loop boundary and described by an [`ExceptionContext`] (asyncio's context dict, typed),
//! which goes to the loop's exception handler (`handler.rs`). This module names no loop.

use std::fmt::{self, Write as _};
use std::panic::Location;

use crate::task_header::TaskRef;
use crate::Error;

/// What the loop knows about an error nobody could receive: asyncio's context dict.
///
/// Build one with [`ExceptionContext::new`] and the `with_*` methods to report errors of your
/// own through
/// [`EventLoop::call_exception_handler`](crate::EventLoop::call_exception_handler).
///
/// ```
/// use loop_core::{Error, ExceptionContext};
/// let ctx = ExceptionContext::new("Exception in callback")
///     .with_exception(Error::invalid_argument("bad"))
///     .with_extra("transport", "<TcpTransport fd=7>");
/// assert_eq!(ctx.message, "Exception in callback");
/// assert!(ctx.render().contains("transport: <TcpTransport fd=7>"));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ExceptionContext {
    /// The first line of the report.
    pub message: String,
    /// The error, if there is one (a panic is an [`Error::Exception`]).
    pub exception: Option<Error>,
    /// The callback that failed, described.
    pub handle: Option<String>,
    /// The task concerned.
    pub task: Option<TaskRef>,
    /// The future concerned, described.
    pub future: Option<String>,
    /// Where the failing object was created or scheduled (`source_traceback`).
    pub source_location: Option<&'static Location<'static>>,
    /// Where the callback executing at the time of the report was scheduled
    /// (`handle_traceback`, debug mode only).
    pub handle_location: Option<&'static Location<'static>>,
    /// Other keys (`transport`, `protocol`, `socket`, ...), as `(key, description)`.
    pub extra: Vec<(&'static str, String)>,
}

impl ExceptionContext {
    /// A context with just a message.
    ///
    /// ```
    /// let ctx = loop_core::ExceptionContext::new("something broke");
    /// assert!(ctx.exception.is_none());
    /// ```
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            ..Default::default()
        }
    }

    /// Sets the error.
    ///
    /// ```
    /// let ctx = loop_core::ExceptionContext::new("m").with_exception(loop_core::Error::TimedOut);
    /// assert!(matches!(ctx.exception, Some(loop_core::Error::TimedOut)));
    /// ```
    pub fn with_exception(mut self, e: Error) -> ExceptionContext {
        self.exception = Some(e);
        self
    }

    /// Sets the task.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = lp.create_task(async {}).unwrap();
    /// let ctx = loop_core::ExceptionContext::new("m").with_task(t.task_ref());
    /// assert!(ctx.task.is_some());
    /// # lp.run_until_complete(t).unwrap().unwrap();
    /// ```
    pub fn with_task(mut self, t: TaskRef) -> ExceptionContext {
        self.task = Some(t);
        self
    }

    /// Sets the source location.
    ///
    /// ```
    /// let ctx = loop_core::ExceptionContext::new("m").with_source(std::panic::Location::caller());
    /// assert!(ctx.source_location.is_some());
    /// ```
    pub fn with_source(mut self, loc: &'static Location<'static>) -> ExceptionContext {
        self.source_location = Some(loc);
        self
    }

    /// Adds another key (`transport`, `protocol`, `socket`, ...).
    ///
    /// ```
    /// let ctx = loop_core::ExceptionContext::new("m").with_extra("protocol", "Echo");
    /// assert_eq!(ctx.extra[0], ("protocol", "Echo".to_string()));
    /// ```
    pub fn with_extra(mut self, key: &'static str, value: impl Into<String>) -> ExceptionContext {
        self.extra.push((key, value.into()));
        self
    }

    /// The report the default handler logs: the message (or "Unhandled exception in event
    /// loop"), then `key: value` for every other key but the exception, sorted by key.
    ///
    /// ```
    /// let text = loop_core::ExceptionContext::new("").with_extra("b", "2").with_extra("a", "1").render();
    /// assert_eq!(text, "Unhandled exception in event loop\na: 1\nb: 2");
    /// ```
    pub fn render(&self) -> String {
        let mut out = if self.message.is_empty() {
            "Unhandled exception in event loop".to_string()
        } else {
            self.message.clone()
        };
        let mut lines: Vec<(&str, String)> =
            self.extra.iter().map(|(k, v)| (*k, v.clone())).collect();
        if let Some(h) = &self.handle {
            lines.push(("handle", h.clone()));
        }
        if let Some(t) = &self.task {
            lines.push(("task", format!("{t:?}")));
        }
        if let Some(f) = &self.future {
            lines.push(("future", f.clone()));
        }
        if let Some(l) = self.source_location {
            lines.push((
                "source_traceback",
                format!("Object created at (most recent call last):\n  {l}"),
            ));
        }
        if let Some(l) = self.handle_location {
            lines.push((
                "handle_traceback",
                format!("Handle created at (most recent call last):\n  {l}"),
            ));
        }
        lines.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in lines {
            let _ = write!(out, "\n{k}: {v}");
        }
        out
    }
}

impl fmt::Debug for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())?;
        if let Some(e) = &self.exception {
            write!(f, "\nexception: {e}")?;
        }
        Ok(())
    }
}
