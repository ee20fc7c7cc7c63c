//! The allocation of a task: its state and its body (the future it runs) side by side in one
//! reference-counted block, so that a task costs one allocation.
//!
//! A future must not move once polled. The body lives in a [`TaskCell`] that is handed out
//! as trait objects (`Rc<dyn TaskObj<..>>`, `Rc<dyn TaskDyn>`: an unsized value cannot be
//! moved out of its `Rc`, nor swapped or replaced). The one place a cell is seen with its
//! concrete type outside this module is the task module's implementations of the task traits
//! for it (`self: Rc<Self>` receivers) and the step they call, which reach it only through
//! the [`TaskObj`] methods and never take the cell out of its `Rc` (no `Rc::try_unwrap`,
//! `Rc::into_inner` or `Rc::get_mut` of a cell; the cell's fields are private to this
//! module, so the body cannot be reached otherwise). This module never moves the body out of
//! its cell: it is only polled in place or emptied in place (which runs the body's
//! destructor where it lies). That is the pinning argument of the one `unsafe` block below
//! (the only `unsafe` of the task code: the rest of it is written against the safe
//! [`TaskObj`] interface).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::task_header::{CancelTarget, TaskDyn};

/// A task as the loop holds it: its typed state `C` (`core`) and a body with output `T`.
pub(crate) trait TaskObj<C, T>: TaskDyn + CancelTarget {
    /// The task's state.
    fn core(&self) -> &C;
    /// Polls the body once; `None` if it was dropped. Not reentrant: polling the body from
    /// inside its own poll panics (the `RefCell` says so) instead of aliasing it.
    fn poll_body(&self, cx: &mut Context<'_>) -> Option<Poll<T>>;
    /// Drops the body in place (what it holds is released); a no-op once it is gone.
    fn drop_body(&self);
    /// The same task as the loop's untyped view. A method rather than a coercion of
    /// `Rc<dyn TaskObj>` to `Rc<dyn TaskDyn>`: trait upcasting needs Rust 1.86, above the
    /// workspace's `rust-version`.
    fn to_dyn(self: Rc<Self>) -> Rc<dyn TaskDyn>;
    /// The same task as a cancellation target (a method for the same reason as
    /// [`to_dyn`](TaskObj::to_dyn)).
    fn to_cancel_target(self: Rc<Self>) -> Rc<dyn CancelTarget>;
}

/// The state and the body of a task in one block. Never moved once created: see the module
/// docs.
pub(crate) struct TaskCell<C, F> {
    /// The task's state.
    core: C,
    /// The body; `None` once it finished or was dropped.
    body: RefCell<Option<F>>,
    /// A cell is `!Unpin`: its body is pinned where it lies.
    _pinned: PhantomPinned,
}

/// Puts `core` and `body` in one allocation, handed out unsized (so it never moves): as the
/// typed task and as the loop's untyped view of it (two references to the same block).
#[allow(clippy::type_complexity)]
pub(crate) fn new_task<C, F>(core: C, body: F) -> (Rc<dyn TaskObj<C, F::Output>>, Rc<dyn TaskDyn>)
where
    C: 'static,
    F: Future + 'static,
    TaskCell<C, F>: TaskDyn + CancelTarget,
{
    let cell = Rc::new(TaskCell {
        core,
        body: RefCell::new(Some(body)),
        _pinned: PhantomPinned,
    });
    (cell.clone(), cell)
}

impl<C, F> TaskCell<C, F> {
    /// The task's state (for the trait impls of the typed task).
    #[inline]
    pub(crate) fn state(&self) -> &C {
        &self.core
    }
}

impl<C, F> TaskObj<C, F::Output> for TaskCell<C, F>
where
    C: 'static,
    F: Future + 'static,
    TaskCell<C, F>: TaskDyn + CancelTarget,
{
    #[inline]
    fn core(&self) -> &C {
        &self.core
    }

    #[inline]
    fn poll_body(&self, cx: &mut Context<'_>) -> Option<Poll<F::Output>> {
        let mut body = self.body.borrow_mut();
        let body = body.as_mut()?;
        // SAFETY: `body` points into a `TaskCell`, which lives in an `Rc` allocation from
        // `new_task` until it is freed and is never taken out of it (see the module docs:
        // handed out as trait objects, seen with its type only by the task traits' methods,
        // which never unwrap the `Rc`; `Rc` never moves its contents). Within the cell, the body is never moved out of its
        // `Option`: it is only polled here or dropped in place by `drop_body` (`*opt = None`
        // runs its destructor where it lies) or when the cell is freed. So the future stays at
        // this address from its first poll until it is dropped, which is `Pin`'s contract.
        let body = unsafe { Pin::new_unchecked(body) };
        Some(body.poll(cx))
    }

    #[inline]
    fn to_dyn(self: Rc<Self>) -> Rc<dyn TaskDyn> {
        self
    }

    #[inline]
    fn to_cancel_target(self: Rc<Self>) -> Rc<dyn CancelTarget> {
        self
    }

    #[inline]
    fn drop_body(&self) {
        // In place: the assignment runs the body's destructor where it lies (a pinned value
        // must not be moved out to be dropped).
        let mut body = self.body.borrow_mut();
        if body.is_some() {
            *body = None;
        }
    }
}
