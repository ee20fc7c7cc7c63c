//! The allocation of a task: its state and its body (the future it runs) side by side in one
//! reference-counted block, so that a task costs one allocation. The body and the task's
//! outcome share one place (the outcome is written where the body was, once the body is
//! gone): a task holds one of them at a time.
//!
//! A future must not move once polled. The body lives in a [`TaskCell`] that is handed out
//! as trait objects (`Rc<dyn TaskObj<..>>`, `Rc<dyn TaskDyn>`: an unsized value cannot be
//! moved out of its `Rc`, nor swapped or replaced). The one place a cell is seen with its
//! concrete type outside this module is the task module's implementations of the task traits
//! for it (`self: Rc<Self>` receivers) and the step they call, which reach it only through
//! the [`TaskObj`] methods and never take the cell out of its `Rc` (no `Rc::try_unwrap`,
//! `Rc::into_inner` or `Rc::get_mut` of a cell; the cell's fields are private to this
//! module, so the body cannot be reached otherwise). This module never moves the body out of
//! its cell: it is only polled in place or replaced in place (which runs the body's
//! destructor where it lies). That is the pinning argument of the `unsafe` block of
//! `poll_body`. The only other `unsafe` of the task code is [`new_task`]'s, which builds the
//! block in place (the body is written into it before it is ever polled); the rest of the task
//! code is written against the safe [`TaskObj`] interface.
#![allow(unsafe_code)]

use std::cell::{RefCell, RefMut};
use std::future::Future;
use std::marker::PhantomPinned;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::task_header::{CancelTarget, TaskDyn};
use crate::Error;

/// A task as the loop holds it: its typed state `C` (`core`) and a body with output `T`.
pub(crate) trait TaskObj<C, T>: TaskDyn + CancelTarget {
    /// The task's state.
    fn core(&self) -> &C;
    /// Polls the body once; `None` if it was dropped. Not reentrant: polling the body from
    /// inside its own poll panics (the `RefCell` says so) instead of aliasing it.
    fn poll_body(&self, cx: &mut Context<'_>) -> Option<Poll<T>>;
    /// Drops the body in place (what it holds is released); a no-op once it is gone.
    fn drop_body(&self);
    /// The task's outcome; `None` while its body is there (the task is pending then).
    fn outcome(&self) -> Option<RefMut<'_, Outcome<T>>>;
    /// Sets the task's outcome, where the body was (the body must be gone: see
    /// [`drop_body`](TaskObj::drop_body)).
    fn set_outcome(&self, outcome: Outcome<T>);
    /// The same task as the loop's untyped view. A method rather than a coercion of
    /// `Rc<dyn TaskObj>` to `Rc<dyn TaskDyn>`: trait upcasting needs Rust 1.86, above the
    /// workspace's `rust-version`.
    fn to_dyn(self: Rc<Self>) -> Rc<dyn TaskDyn>;
    /// The same task as a cancellation target (a method for the same reason as
    /// [`to_dyn`](TaskObj::to_dyn)).
    fn to_cancel_target(self: Rc<Self>) -> Rc<dyn CancelTarget>;
}

/// What the typed state of a task does when the task's block is freed.
pub(crate) trait TaskState<T> {
    /// The block is being freed, with this outcome (`None` if the body was still there).
    fn freed(&mut self, outcome: Option<&mut Outcome<T>>);
}

/// Where a task is in its life once its body is gone: as a future's `Slot`, but with the
/// error boxed, so that the common task (which ends well) carries eight bytes for it
/// instead of an `Error`'s size.
pub(crate) enum Outcome<T> {
    /// Not done (the body was dropped, the outcome is not set yet).
    Pending,
    /// Done with a value, still here.
    Value(T),
    /// Done with an error (a cancellation, a panic).
    Failed(Box<Error>),
    /// Done, and the value was moved out by an `await`.
    Taken,
}

impl<T> Outcome<T> {
    /// The outcome of a finished task.
    #[inline]
    pub(crate) fn done(r: crate::Result<T>) -> Outcome<T> {
        match r {
            Ok(v) => Outcome::Value(v),
            Err(e) => Outcome::Failed(Box::new(e)),
        }
    }
}

/// The body of a task, then its outcome, in the same place.
enum Stage<F: Future> {
    /// The body.
    Body(F),
    /// The body is gone.
    Out(Outcome<F::Output>),
}

/// The state and the body of a task in one block. Never moved once created: see the module
/// docs.
pub(crate) struct TaskCell<C: TaskState<F::Output>, F: Future> {
    /// The task's state.
    core: C,
    /// The body, then the outcome.
    stage: RefCell<Stage<F>>,
    /// A cell is `!Unpin`: its body is pinned where it lies.
    _pinned: PhantomPinned,
}

/// Puts `core` and `body` in one allocation, handed out unsized (so it never moves): as the
/// typed task and as the loop's untyped view of it (two references to the same block).
#[allow(clippy::type_complexity)]
pub(crate) fn new_task<C, F>(core: C, body: F) -> (Rc<dyn TaskObj<C, F::Output>>, Rc<dyn TaskDyn>)
where
    C: TaskState<F::Output> + 'static,
    F: Future + 'static,
    TaskCell<C, F>: TaskDyn + CancelTarget,
{
    // Built in place: the block is allocated first and the task written into it (`Rc::new`
    // of a value builds it on the stack and copies it into the block).
    let mut block: Rc<MaybeUninit<TaskCell<C, F>>> = Rc::new(MaybeUninit::uninit());
    Rc::get_mut(&mut block)
        .expect("a new Rc has no other reference")
        .write(TaskCell {
            core,
            stage: RefCell::new(Stage::Body(body)),
            _pinned: PhantomPinned,
        });
    // SAFETY: `Rc::from_raw` takes a pointer from `Rc::<U>::into_raw` with `U` of the same
    // size and alignment as the target type: `MaybeUninit<X>` has `X`'s layout, and the
    // reference counts in front of it are the same `Rc` block's. The value is initialized
    // (written just above, through the only reference to the block), so reading the block
    // as a `TaskCell` is sound; the `Rc` it came from is consumed by `into_raw`, so the
    // counts stay those of this one reference.
    let cell: Rc<TaskCell<C, F>> = unsafe { Rc::from_raw(Rc::into_raw(block).cast()) };
    (cell.clone(), cell)
}

impl<C: TaskState<F::Output>, F: Future> TaskCell<C, F> {
    /// The task's state (for the trait impls of the typed task).
    #[inline]
    pub(crate) fn state(&self) -> &C {
        &self.core
    }
}

impl<C: TaskState<F::Output>, F: Future> Drop for TaskCell<C, F> {
    #[inline]
    fn drop(&mut self) {
        let outcome = match self.stage.get_mut() {
            Stage::Out(o) => Some(o),
            Stage::Body(_) => None,
        };
        self.core.freed(outcome);
    }
}

impl<C, F> TaskObj<C, F::Output> for TaskCell<C, F>
where
    C: TaskState<F::Output> + 'static,
    F: Future + 'static,
    TaskCell<C, F>: TaskDyn + CancelTarget,
{
    #[inline]
    fn core(&self) -> &C {
        &self.core
    }

    #[inline]
    fn poll_body(&self, cx: &mut Context<'_>) -> Option<Poll<F::Output>> {
        let mut stage = self.stage.borrow_mut();
        let Stage::Body(body) = &mut *stage else {
            return None;
        };
        // SAFETY: `body` points into a `TaskCell`, which lives in an `Rc` allocation from
        // `new_task` until it is freed and is never taken out of it (see the module docs:
        // handed out as trait objects, seen with its type only by the task traits' methods,
        // which never unwrap the `Rc`; `Rc` never moves its contents). Within the cell, the
        // body is never moved out of its `Stage`: it is only polled here or dropped in place
        // by `drop_body` / `set_outcome` (assigning the stage runs its destructor where it
        // lies) or when the cell is freed. So the future stays at this address from its first
        // poll until it is dropped, which is `Pin`'s contract.
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
        let mut stage = self.stage.borrow_mut();
        if let Stage::Body(_) = &*stage {
            *stage = Stage::Out(Outcome::Pending);
        }
    }

    #[inline]
    fn outcome(&self) -> Option<RefMut<'_, Outcome<F::Output>>> {
        // Borrowed only while the body runs (the task is pending then) or for a moment
        // without user code: a failed borrow is a pending task.
        let stage = self.stage.try_borrow_mut().ok()?;
        RefMut::filter_map(stage, |s| match s {
            Stage::Out(o) => Some(o),
            Stage::Body(_) => None,
        })
        .ok()
    }

    #[inline]
    fn set_outcome(&self, outcome: Outcome<F::Output>) {
        // In place, as in `drop_body`.
        *self.stage.borrow_mut() = Stage::Out(outcome);
    }
}
