//! `LoopFuture`: asyncio's `Future`, a result slot that callbacks and tasks can wait on.
//!
//! A loop future is completed by hand (`set_result`, `set_exception`, `cancel`). Completion
//! never calls anything synchronously: done-callbacks are scheduled with `call_soon`, in
//! registration order, and tasks awaiting it are woken into the ready queue — so code that
//! completes a future is never re-entered by its waiters.
//!
//! Inside a task, awaiting a loop future is also where cancellation is delivered: cancelling the
//! task cancels the future it waits on, and the `await` returns `Err(Error::Cancelled)`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use crate::event_loop::Inner;
use crate::handler::report;
use crate::slot::{add_waiter, DoneCallback, Slot};
use crate::task_header::{self, CancelTarget};
use crate::{CallbackId, Cancelled, Error, EventLoop, ExceptionContext, Result};

/// Shared state of a [`LoopFuture`].
pub(crate) struct FutInner<T> {
    /// The loop.
    lp: Weak<Inner>,
    /// The result slot.
    state: RefCell<Slot<T>>,
    /// Wakers of awaiting tasks.
    waiters: RefCell<Vec<Waker>>,
    /// Done-callbacks.
    callbacks: RefCell<Vec<DoneCallback<LoopFuture<T>>>>,
    /// Next callback id.
    next_cb: Cell<u64>,
    /// True once the error was looked at (no "never retrieved" report then).
    retrieved: Cell<bool>,
    /// Where the future was created.
    location: &'static Location<'static>,
}

/// A future bound to one loop, completed by hand — asyncio's `Future`.
///
/// Cheap to clone; clones share the result. Awaiting it gives `Ok(value)`, or the error it was
/// failed with, or `Err(Error::Cancelled)`. Awaiting *moves* the value out: a second `await` of
/// a completed future gives `Err(Error::InvalidState)`; use [`result`](LoopFuture::result) to
/// read a `Clone` value any number of times.
///
/// # Examples
///
/// ```
/// use loop_core::EventLoop;
///
/// let lp = EventLoop::new().unwrap();
/// let fut = lp.create_future::<&str>();
/// let f = fut.clone();
/// lp.call_soon(move |_| f.set_result("done").unwrap()).unwrap();
/// assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), "done");
/// ```
pub struct LoopFuture<T> {
    /// The shared state.
    pub(crate) inner: Rc<FutInner<T>>,
}

impl<T> Clone for LoopFuture<T> {
    fn clone(&self) -> Self {
        LoopFuture {
            inner: self.inner.clone(),
        }
    }
}

impl EventLoop {
    /// A new pending future of this loop. Works after `close()` too (the future can then never
    /// be awaited by this loop, but can be completed and read).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<i32>();
    /// assert!(!f.done());
    /// assert!(f.get_loop().unwrap().ptr_eq(&lp));
    /// ```
    #[track_caller]
    pub fn create_future<T: 'static>(&self) -> LoopFuture<T> {
        LoopFuture {
            inner: Rc::new(FutInner {
                lp: Rc::downgrade(&self.inner),
                state: RefCell::new(Slot::Pending),
                waiters: RefCell::new(Vec::new()),
                callbacks: RefCell::new(Vec::new()),
                next_cb: Cell::new(0),
                retrieved: Cell::new(false),
                location: Location::caller(),
            }),
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    /// The loop the future belongs to (`None` once the loop is gone).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.create_future::<()>().get_loop().is_some());
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.inner.lp.upgrade().map(|inner| EventLoop { inner })
    }

    /// True once a result, an error or a cancellation was set.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future();
    /// f.set_result(1).unwrap();
    /// assert!(f.done());
    /// ```
    pub fn done(&self) -> bool {
        !matches!(*self.inner.state.borrow(), Slot::Pending)
    }

    /// True if the future was cancelled.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<()>();
    /// assert!(f.cancel());
    /// assert!(f.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        matches!(
            &*self.inner.state.borrow(),
            Slot::Done(Err(Error::Cancelled(_)))
        )
    }

    /// Completes the future with a value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] if it is already done.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future();
    /// f.set_result(5).unwrap();
    /// assert!(f.set_result(6).is_err());
    /// assert_eq!(f.result().unwrap(), 5);
    /// ```
    pub fn set_result(&self, value: T) -> Result<()> {
        self.complete(Ok(value))
    }

    /// Fails the future with an error (asyncio's `set_exception`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] if it is already done.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<()>();
    /// f.set_exception(loop_core::Exception::new("bad")).unwrap();
    /// assert_eq!(f.exception().unwrap().unwrap().to_string(), "bad");
    /// ```
    pub fn set_exception(&self, err: impl Into<Error>) -> Result<()> {
        self.complete(Err(err.into()))
    }

    /// Cancels the future: true if it was pending (it is now done and cancelled), false if it
    /// was already done.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<()>();
    /// assert!(f.cancel());
    /// assert!(!f.cancel());
    /// assert!(f.cancelled());
    /// ```
    pub fn cancel(&self) -> bool {
        self.cancel_msg(None)
    }

    /// Cancels the future with a message, which the [`Cancelled`] error carries (asyncio's
    /// `cancel(msg)`); otherwise as [`cancel`](LoopFuture::cancel).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<()>();
    /// assert!(f.cancel_with("no longer needed"));
    /// let e = f.result().unwrap_err();
    /// assert_eq!(e.as_cancelled().unwrap().message(), Some("no longer needed"));
    /// ```
    pub fn cancel_with(&self, msg: impl Into<String>) -> bool {
        self.cancel_msg(Some(msg.into()))
    }

    pub(crate) fn cancel_msg(&self, msg: Option<String>) -> bool {
        // A late cancel still marks an unread error as dealt with (CORE-33).
        self.inner.retrieved.set(true);
        self.complete(Err(Error::Cancelled(Cancelled::new(msg))))
            .is_ok()
    }

    fn complete(&self, r: std::result::Result<T, Error>) -> Result<()> {
        {
            let mut st = self.inner.state.borrow_mut();
            if !matches!(*st, Slot::Pending) {
                return Err(Error::invalid_state(
                    "invalid state: the future is already done",
                ));
            }
            *st = Slot::Done(r);
        }
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
        let callbacks = std::mem::take(&mut *self.inner.callbacks.borrow_mut());
        if !callbacks.is_empty() {
            if let Some(lp) = self.get_loop() {
                for cb in callbacks {
                    cb.schedule(&lp, self.clone());
                }
            }
        }
        Ok(())
    }

    /// The value, cloned; or the error the future failed with.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] ("Result is not ready.") while pending, or after an `await`
    /// moved the value out; [`Error::Cancelled`] if cancelled; the error set with
    /// [`set_exception`](LoopFuture::set_exception).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<u8>();
    /// assert_eq!(f.result().unwrap_err().to_string(), "Result is not ready.");
    /// ```
    pub fn result(&self) -> Result<T>
    where
        T: Clone,
    {
        match &*self.inner.state.borrow() {
            Slot::Pending => Err(Error::invalid_state("Result is not ready.")),
            Slot::Done(Ok(v)) => Ok(v.clone()),
            Slot::Done(Err(e)) => {
                self.inner.retrieved.set(true);
                Err(e.clone())
            }
            Slot::Taken => Err(Error::invalid_state("the result was moved out by an await")),
        }
    }

    /// The error the future failed with, `None` if it completed with a value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] ("Exception is not set.") while pending; [`Error::Cancelled`] if
    /// cancelled.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<u8>();
    /// assert_eq!(f.exception().unwrap_err().to_string(), "Exception is not set.");
    /// f.set_result(1).unwrap();
    /// assert!(f.exception().unwrap().is_none());
    /// ```
    pub fn exception(&self) -> Result<Option<Error>> {
        match &*self.inner.state.borrow() {
            Slot::Pending => Err(Error::invalid_state("Exception is not set.")),
            Slot::Done(Err(Error::Cancelled(c))) => Err(Error::Cancelled(c.clone())),
            Slot::Done(Err(e)) => {
                self.inner.retrieved.set(true);
                Ok(Some(e.clone()))
            }
            Slot::Done(Ok(_)) | Slot::Taken => Ok(None),
        }
    }

    /// Adds a callback run (through the ready queue) when the future is done; if it is done
    /// already, the callback is scheduled now. It runs in the [`Context`](crate::Context) that
    /// is current here.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<u8>();
    /// let seen = Rc::new(Cell::new(0));
    /// let s = seen.clone();
    /// f.add_done_callback(move |f| s.set(f.result().unwrap()));
    /// f.set_result(7).unwrap();
    /// assert_eq!(seen.get(), 0); // not called synchronously
    /// lp.call_soon(|lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(seen.get(), 7);
    /// ```
    #[track_caller]
    pub fn add_done_callback(&self, f: impl FnOnce(&LoopFuture<T>) + 'static) -> CallbackId {
        let id = self.inner.next_cb.get();
        self.inner.next_cb.set(id + 1);
        let cb = DoneCallback::new(id, f);
        if self.done() {
            if let Some(lp) = self.get_loop() {
                cb.schedule(&lp, self.clone());
            }
        } else {
            self.inner.callbacks.borrow_mut().push(cb);
        }
        CallbackId(id)
    }

    /// Removes a done-callback that has not been scheduled yet; returns how many were removed
    /// (0 or 1).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.create_future::<u8>();
    /// let id = f.add_done_callback(|_| unreachable!());
    /// assert_eq!(f.remove_done_callback(id), 1);
    /// assert_eq!(f.remove_done_callback(id), 0);
    /// ```
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        let removed = {
            let mut cbs = self.inner.callbacks.borrow_mut();
            let before = cbs.len();
            let mut taken = Vec::new();
            let mut i = 0;
            while i < cbs.len() {
                if cbs[i].id == id.0 {
                    taken.push(cbs.remove(i));
                } else {
                    i += 1;
                }
            }
            let n = before - cbs.len();
            drop(cbs);
            drop(taken);
            n
        };
        removed
    }

    /// Where the future was created.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert_eq!(lp.create_future::<()>().location().line(), line!());
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.inner.location
    }
}

impl<T: 'static> CancelTarget for FutInner<T> {
    fn cancel_target(self: Rc<Self>, msg: Option<String>) -> bool {
        LoopFuture { inner: self }.cancel_msg(msg)
    }
}

impl<T: 'static> Future for LoopFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let cur = task_header::current();
        if let Some(t) = &cur {
            if let Some(c) = t.take_pending_cancel() {
                return Poll::Ready(Err(Error::Cancelled(c)));
            }
            if t.loop_addr() != self.inner.lp.as_ptr().cast::<()>() {
                return Poll::Ready(Err(Error::DifferentLoop));
            }
        }
        if let Some(r) = Slot::take_for_await(&self.inner.state, &self.inner.retrieved) {
            if let (Err(Error::Cancelled(c)), Some(t)) = (&r, &cur) {
                t.track_delivered(c);
            }
            return Poll::Ready(r);
        }
        add_waiter(&self.inner.waiters, cx);
        if let Some(t) = cur {
            t.set_waiter(self.inner.clone());
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.state.borrow() {
            Slot::Pending => "pending",
            Slot::Done(Ok(_)) | Slot::Taken => "finished",
            Slot::Done(Err(Error::Cancelled(_))) => "cancelled",
            Slot::Done(Err(_)) => "failed",
        };
        write!(f, "<LoopFuture {state} created at {}>", self.inner.location)
    }
}

impl<T> Drop for FutInner<T> {
    fn drop(&mut self) {
        if self.retrieved.get() {
            return;
        }
        let st = std::mem::replace(self.state.get_mut(), Slot::Taken);
        if let Slot::Done(Err(e)) = st {
            if e.is_cancelled() {
                return;
            }
            let debug = self.lp.upgrade().is_some_and(|i| i.debug_flag());
            let ctx = ExceptionContext {
                future: Some(format!("<LoopFuture failed created at {}>", self.location)),
                source_location: debug.then_some(self.location),
                ..ExceptionContext::new("Future exception was never retrieved")
            }
            .with_exception(e);
            report(self.lp.upgrade().map(|inner| EventLoop { inner }), &ctx);
        }
    }
}
