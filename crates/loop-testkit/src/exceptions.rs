//! Recording what reaches a loop's exception handler.
//!
//! The loop catches a panic in a callback, task step, done-callback or protocol method and
//! hands it to the exception handler; the test never sees it. So a test either records what
//! it wanted to check and asserts after the run, or records the handler's reports with
//! [`record_exceptions`] and asserts that there were none ([`Exceptions::assert_none`]) — or
//! exactly the ones it provoked.

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;

use loop_core::{EventLoop, ExceptionContext};

/// The reports a loop's exception handler received, in order (from [`record_exceptions`]).
/// Dereferences to the `RefCell` holding them, so `errs.borrow()` reads them.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let errs = loop_testkit::record_exceptions(&lp);
/// lp.call_soon(|_| panic!("boom")).unwrap();
/// loop_testkit::run_once(&lp);
/// assert_eq!(errs.len(), 1);
/// assert!(errs.borrow()[0].message.contains("callback"), "{:?}", errs.messages());
/// ```
#[derive(Clone, Default)]
pub struct Exceptions(Rc<RefCell<Vec<ExceptionContext>>>);

impl Deref for Exceptions {
    type Target = RefCell<Vec<ExceptionContext>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Exceptions {
    /// How many reports arrived.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert_eq!(loop_testkit::record_exceptions(&lp).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// True when no report arrived.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(loop_testkit::record_exceptions(&lp).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The reports' messages.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let errs = loop_testkit::record_exceptions(&lp);
    /// lp.call_exception_handler(&loop_core::ExceptionContext::new("hello"));
    /// assert_eq!(errs.messages(), ["hello"]);
    /// ```
    pub fn messages(&self) -> Vec<String> {
        self.0.borrow().iter().map(|c| c.message.clone()).collect()
    }

    /// One line per report: its message and its exception's text.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let errs = loop_testkit::record_exceptions(&lp);
    /// lp.call_soon(|_| panic!("boom")).unwrap();
    /// loop_testkit::run_once(&lp);
    /// assert!(errs.describe()[0].contains("boom"));
    /// ```
    pub fn describe(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .map(|c| match &c.exception {
                Some(e) => format!("{}: {e}", c.message),
                None => c.message.clone(),
            })
            .collect()
    }

    /// Takes the reports so far, leaving none.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let errs = loop_testkit::record_exceptions(&lp);
    /// lp.call_exception_handler(&loop_core::ExceptionContext::new("hello"));
    /// assert_eq!(errs.take().len(), 1);
    /// errs.assert_none();
    /// ```
    pub fn take(&self) -> Vec<ExceptionContext> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    /// Panics, listing them, if any report arrived: an assertion that failed inside a loop
    /// callback shows up here.
    ///
    /// # Panics
    ///
    /// If the handler received anything.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let errs = loop_testkit::record_exceptions(&lp);
    /// lp.call_soon(|_| assert_eq!(1 + 1, 2)).unwrap();
    /// loop_testkit::run_once(&lp);
    /// errs.assert_none();
    /// ```
    #[track_caller]
    pub fn assert_none(&self) {
        let d = self.describe();
        assert!(
            d.is_empty(),
            "the exception handler received {} report(s) (a panic inside a loop callback, \
             such as a failed assertion, ends up there):\n  {}",
            d.len(),
            d.join("\n  ")
        );
    }
}

/// Installs an exception handler on `lp` that records every report (and replaces the default
/// one, which logs them).
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let errs = loop_testkit::record_exceptions(&lp);
/// lp.call_soon(|_| {}).unwrap();
/// loop_testkit::run_once(&lp);
/// errs.assert_none();
/// ```
pub fn record_exceptions(lp: &EventLoop) -> Exceptions {
    let seen = Exceptions::default();
    let s = seen.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_lp: &EventLoop, ctx: &ExceptionContext| s.0.borrow_mut().push(ctx.clone()),
    )));
    seen
}
