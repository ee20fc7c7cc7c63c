//! The completion slot of a [`LoopFuture`](crate::LoopFuture) and of a
//! [`Task`](crate::Task): where the outcome waits, what an `await` of it gets, the wakers of the
//! tasks awaiting it, and the done-callbacks to schedule when it completes.

use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::task::{Context, Waker};

use crate::context::{self, Snapshot};
use crate::{Cancelled, Error, Result};

/// Identifies a done-callback, for `remove_done_callback`.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let f = lp.create_future::<u8>();
/// let id = f.add_done_callback(|_| {});
/// assert_eq!(f.remove_done_callback(id), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(pub(crate) u64);

/// Where a future or task is in its life.
pub(crate) enum Slot<T> {
    /// Not done.
    Pending,
    /// Done, result still here.
    Done(std::result::Result<T, Error>),
    /// Done, and the value was moved out by an `await`.
    Taken,
}

/// A done-callback waiting for its future or task to finish, with the context and the place
/// it was registered at: it is scheduled in that context (asyncio's `add_done_callback` copies
/// the context when called).
pub(crate) struct DoneCallback<A> {
    /// For `remove_done_callback`.
    pub(crate) id: u64,
    /// The callback.
    pub(crate) f: Box<dyn FnOnce(&A)>,
    /// The context current at registration.
    pub(crate) ctx: Snapshot,
    /// Where it was registered.
    pub(crate) location: &'static Location<'static>,
}

impl<A: 'static> DoneCallback<A> {
    #[track_caller]
    pub(crate) fn new(id: u64, f: impl FnOnce(&A) + 'static) -> DoneCallback<A> {
        DoneCallback {
            id,
            f: Box::new(f),
            ctx: context::snapshot(),
            location: Location::caller(),
        }
    }
}

impl<T> Slot<T> {
    /// What an `await` of a done future or task gets, `None` while it is pending: the value,
    /// moved out (the slot is `Taken` then); a fresh `Cancelled` per delivery (whether it
    /// escapes the awaiting task's body decides whether that task ends cancelled: the caller
    /// tracks it); the error, cloned, and marked `retrieved`.
    #[inline]
    pub(crate) fn take_for_await(
        slot: &RefCell<Slot<T>>,
        retrieved: &Cell<bool>,
    ) -> Option<Result<T>> {
        let mut st = slot.borrow_mut();
        match &*st {
            Slot::Pending => None,
            Slot::Done(Ok(_)) => {
                let Slot::Done(Ok(v)) = std::mem::replace(&mut *st, Slot::Taken) else {
                    unreachable!()
                };
                Some(Ok(v))
            }
            Slot::Done(Err(Error::Cancelled(c))) => Some(Err(Error::Cancelled(Cancelled::new(
                c.message().map(str::to_string),
            )))),
            Slot::Done(Err(e)) => {
                retrieved.set(true);
                Some(Err(e.clone()))
            }
            Slot::Taken => Some(Err(Error::invalid_state(
                "the result was moved out by another await",
            ))),
        }
    }
}

/// Adds the waker of `cx` to `waiters`, unless one that wakes the same task is there.
#[inline]
pub(crate) fn add_waiter(waiters: &RefCell<Vec<Waker>>, cx: &Context<'_>) {
    let mut w = waiters.borrow_mut();
    if !w.iter().any(|x| x.will_wake(cx.waker())) {
        w.push(cx.waker().clone());
    }
}
