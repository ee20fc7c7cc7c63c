//! The allocation of a task: its state and its body (the future it runs) side by side in one
//! reference-counted block, so that a task costs one allocation. The body and the task's
//! outcome share one place (a union: the outcome is written where the body was, once the body
//! is gone): a task holds one of them at a time. Which one is there, and whether it is in use
//! (the body being polled or dropped, the outcome borrowed), is a byte of the task's state
//! ([`TaskState::stage`]), which lies in what would otherwise be padding of the header: the
//! block carries no tag or borrow count of its own. With a million live tasks, the bytes a task
//! takes are most of what it costs.
//!
//! A future must not move once polled. The body lives in a [`TaskCell`] that is handed out
//! as trait objects (`Rc<dyn TaskObj<..>>`, `Rc<dyn TaskDyn>`: an unsized value cannot be
//! moved out of its `Rc`, nor swapped or replaced). The one place a cell is seen with its
//! concrete type outside this module is the task module's implementations of the task traits
//! for it (`self: Rc<Self>` receivers) and the step they call, which reach it only through
//! the [`TaskObj`] methods and never take the cell out of its `Rc` (no `Rc::try_unwrap`,
//! `Rc::into_inner` or `Rc::get_mut` of a cell; the cell's fields are private to this
//! module, so the body cannot be reached otherwise). This module never moves the body out of
//! its cell: it is only polled in place or dropped in place. That is the pinning argument of
//! the `unsafe` block of `poll_body`.
//!
//! **The stage byte.** `OUT` clear: the union holds the body; `OUT` set: it holds an
//! [`Outcome`]. `BUSY` set: a reference into the union is live (the body is being polled or
//! dropped, or an [`OutcomeMut`] exists); every access checks it first and either refuses
//! (`outcome` returns `None`, as for a pending task) or panics (polling or dropping the body
//! from inside its own poll or destructor), as a `RefCell` would. The byte is changed only by
//! this module, and only while no such reference exists, except to set `BUSY`. These are the
//! invariants the other `unsafe` blocks here rely on. [`new_task`]'s builds the block in place
//! (the body is written into it before it is ever polled); the rest of the task code is
//! written against the safe [`TaskObj`] interface.
#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::marker::PhantomPinned;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::ptr::addr_of_mut;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::task_header::{CancelTarget, TaskDyn};
use crate::Error;

/// A task as the loop holds it: its typed state `C` (`core`) and a body with output `T`.
pub(crate) trait TaskObj<C, T>: TaskDyn + CancelTarget {
    /// The task's state.
    fn core(&self) -> &C;
    /// Polls the body once; `None` if it was dropped.
    ///
    /// # Panics
    ///
    /// Polling the body from inside its own poll or destructor panics (instead of aliasing it).
    fn poll_body(&self, cx: &mut Context<'_>) -> Option<Poll<T>>;
    /// Drops the body in place (what it holds is released); a no-op once it is gone.
    ///
    /// # Panics
    ///
    /// As [`poll_body`](TaskObj::poll_body), from inside the body's poll or destructor.
    fn drop_body(&self);
    /// The task's outcome; `None` while its body is there (the task is pending then), and
    /// while the outcome is borrowed already.
    fn outcome(&self) -> Option<OutcomeMut<'_, T>>;
    /// Sets the task's outcome, where the body was (a body still there is dropped first).
    fn set_outcome(&self, outcome: Outcome<T>);
    /// The same task as the loop's untyped view. A method rather than a coercion of
    /// `Rc<dyn TaskObj>` to `Rc<dyn TaskDyn>`: trait upcasting needs Rust 1.86, above the
    /// workspace's `rust-version`.
    fn to_dyn(self: Rc<Self>) -> Rc<dyn TaskDyn>;
    /// The same task as a cancellation target (a method for the same reason as
    /// [`to_dyn`](TaskObj::to_dyn)).
    fn to_cancel_target(self: Rc<Self>) -> Rc<dyn CancelTarget>;
}

/// What the typed state of a task provides to, and does for, its block.
pub(crate) trait TaskState<T> {
    /// The block is being freed, with this outcome (`None` if the body was still there).
    fn freed(&mut self, outcome: Option<&mut Outcome<T>>);
    /// The stage byte of the block (see the module docs): zero when the task is created, and
    /// changed by nothing but this module.
    fn stage(&self) -> &Cell<u8>;
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

/// Stage byte: the union holds the outcome (else the body).
const OUT: u8 = 1;
/// Stage byte: a reference into the union is live.
const BUSY: u8 = 2;

/// The body of a task, then its outcome, in the same place; which one is there is the
/// stage byte's `OUT`.
union Stage<F: Future> {
    /// The body (`OUT` clear).
    body: ManuallyDrop<F>,
    /// The outcome (`OUT` set).
    out: ManuallyDrop<Outcome<F::Output>>,
}

/// The state and the body of a task in one block. Never moved once created: see the module
/// docs.
pub(crate) struct TaskCell<C: TaskState<F::Output>, F: Future> {
    /// The task's state.
    core: C,
    /// The body, then the outcome.
    stage: UnsafeCell<Stage<F>>,
    /// A cell is `!Unpin`: its body is pinned where it lies.
    _pinned: PhantomPinned,
}

/// A borrow of a task's outcome (as a `RefMut`): the stage byte's `BUSY` is set while it
/// lives.
pub(crate) struct OutcomeMut<'a, T> {
    /// The outcome.
    out: &'a mut Outcome<T>,
    /// The stage byte.
    stage: &'a Cell<u8>,
}

impl<T> Deref for OutcomeMut<'_, T> {
    type Target = Outcome<T>;

    #[inline]
    fn deref(&self) -> &Outcome<T> {
        self.out
    }
}

impl<T> DerefMut for OutcomeMut<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Outcome<T> {
        self.out
    }
}

impl<T> Drop for OutcomeMut<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.stage.set(OUT);
    }
}

/// Clears `BUSY` when the body's poll ends, however it ends.
struct Polling<'a>(&'a Cell<u8>);

impl Drop for Polling<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.set(self.0.get() & !BUSY);
    }
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
    debug_assert_eq!(core.stage().get(), 0, "a new task's stage byte is zero");
    // Built in place: the block is allocated first and the task written into it (`Rc::new`
    // of a value builds it on the stack and copies it into the block).
    let mut block: Rc<MaybeUninit<TaskCell<C, F>>> = Rc::new(MaybeUninit::uninit());
    Rc::get_mut(&mut block)
        .expect("a new Rc has no other reference")
        .write(TaskCell {
            core,
            stage: UnsafeCell::new(Stage {
                body: ManuallyDrop::new(body),
            }),
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

    /// Marks the union in use for an access to the body; `None` if the outcome is there.
    ///
    /// # Panics
    ///
    /// If the union is in use already (the body's own poll or destructor is running).
    #[inline]
    fn claim_body(&self) -> Option<Polling<'_>> {
        let stage = self.core.stage();
        let v = stage.get();
        if v & BUSY != 0 {
            already_in_use();
        }
        if v & OUT != 0 {
            return None;
        }
        stage.set(v | BUSY);
        Some(Polling(stage))
    }
}

/// A task's body or outcome reached from inside its own poll or destructor.
#[cold]
#[inline(never)]
fn already_in_use() -> ! {
    panic!("a task's body was polled or dropped from inside its own poll or destructor")
}

impl<C: TaskState<F::Output>, F: Future> Drop for TaskCell<C, F> {
    #[inline]
    fn drop(&mut self) {
        let TaskCell { core, stage, .. } = self;
        // No reference into the union outlives a borrow of the cell, so none is live here.
        let stage = stage.get_mut();
        if core.stage().get() & OUT != 0 {
            // SAFETY: `OUT` is set, so the union holds the outcome (module docs), and no
            // reference into it is live (`&mut self`). It is dropped once: the cell is freed
            // after this.
            let out = unsafe { &mut stage.out };
            core.freed(Some(out));
            // SAFETY: as above.
            unsafe { ManuallyDrop::drop(&mut stage.out) };
        } else {
            core.freed(None);
            // SAFETY: `OUT` is clear, so the union holds the body (module docs), and no
            // reference into it is live. Dropped in place (as `Pin` requires), once: the cell
            // is freed after this.
            unsafe { ManuallyDrop::drop(&mut stage.body) };
        }
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
        let busy = self.claim_body()?;
        // SAFETY: `OUT` was clear, so the union holds the body, and `BUSY` was clear, so no
        // other reference into the union is live; `BUSY` is set now until `busy` drops, after
        // the poll, so none is made while this one lives (module docs). Pinning: `body`
        // points into a `TaskCell`, which lives in an `Rc` allocation from `new_task` until it
        // is freed and is never taken out of it (see the module docs: handed out as trait
        // objects, seen with its type only by the task traits' methods, which never unwrap the
        // `Rc`; `Rc` never moves its contents). Within the cell, the body is never moved out
        // of the union: it is only polled here or dropped in place by `drop_body` or when the
        // cell is freed. So the future stays at this address from its first poll until it is
        // dropped, which is `Pin`'s contract.
        let body = unsafe { Pin::new_unchecked(&mut *(*self.stage.get()).body) };
        let r = body.poll(cx);
        drop(busy);
        Some(r)
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
        let Some(busy) = self.claim_body() else {
            return;
        };
        /// Writes the pending outcome where the body was once its destructor has run (or
        /// panicked), and clears `BUSY`.
        struct Emptied<'a, C: TaskState<F::Output>, F: Future>(&'a TaskCell<C, F>);
        impl<C: TaskState<F::Output>, F: Future> Drop for Emptied<'_, C, F> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: the body's destructor has run (or unwound), so nothing is left in the
                // union to drop, and `BUSY` is still set, so no reference into it is live; the
                // write makes the union hold an outcome, which `OUT` then says.
                unsafe {
                    addr_of_mut!((*self.0.stage.get()).out)
                        .write(ManuallyDrop::new(Outcome::Pending))
                };
                self.0.core.stage().set(OUT);
            }
        }
        std::mem::forget(busy);
        let emptied = Emptied(self);
        // SAFETY: `OUT` was clear, so the union holds the body, and `BUSY` (set by
        // `claim_body`, cleared by `emptied` only after the write above) keeps every other
        // access out. Dropped in place (a pinned value must not be moved out to be dropped),
        // once: `OUT` is set right after, so nothing reads or drops the body again.
        unsafe { ManuallyDrop::drop(&mut (*self.stage.get()).body) };
        drop(emptied);
    }

    #[inline]
    fn outcome(&self) -> Option<OutcomeMut<'_, F::Output>> {
        // In use only while the body runs or is dropped (the task is pending then) or for a
        // moment without user code: in use reads as pending.
        let stage = self.core.stage();
        if stage.get() != OUT {
            return None;
        }
        stage.set(OUT | BUSY);
        // SAFETY: `OUT` is set, so the union holds the outcome, and `BUSY` was clear, so no
        // other reference into it is live; `BUSY` stays set until the returned borrow drops.
        let out = unsafe { &mut *(*self.stage.get()).out };
        Some(OutcomeMut { out, stage })
    }

    #[inline]
    fn set_outcome(&self, outcome: Outcome<F::Output>) {
        self.drop_body();
        match self.outcome() {
            // Drops the former outcome (pending, as a rule) in place.
            Some(mut o) => *o = outcome,
            None => already_in_use(),
        }
    }
}
