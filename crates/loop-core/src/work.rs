//! The callback interface of the ready queue: what a local or remote handle gives the loop to
//! run, generic over the loop type so that this module needs nothing of the loop.

use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;

use crate::context::{self, Snapshot};

/// Makes a callback's context current for as long as it lives (also when the callback
/// panics), then stores what the callback left in it back into the callback.
pub(crate) struct EnterContext<'a, L> {
    /// The callback.
    cb: &'a dyn Callback<L>,
    /// The context that was current before; `None` if contexts were not in use on this thread
    /// when the callback started (its context and the current one were then both empty).
    prev: Option<Snapshot>,
}

impl<'a, L> EnterContext<'a, L> {
    #[inline]
    pub(crate) fn new(cb: &'a dyn Callback<L>) -> EnterContext<'a, L> {
        if !context::active() {
            return EnterContext { cb, prev: None };
        }
        let prev = context::enter(cb.swap_context(None));
        EnterContext {
            cb,
            prev: Some(prev),
        }
    }
}

/// After a callback ran without [`EnterContext`] (contexts were not in use when it started):
/// if it started using them, keep what it set in the callback and make the current context
/// empty again. (If a `Fatal` unwinds before this, `run_forever` restores its base context.)
#[inline]
pub(crate) fn leave_unentered<L>(cb: &dyn Callback<L>) {
    if context::active() {
        cb.swap_context(context::enter(None));
    }
}

impl<L> Drop for EnterContext<'_, L> {
    #[inline]
    fn drop(&mut self) {
        match self.prev.take() {
            Some(prev) => {
                self.cb.swap_context(context::enter(prev));
            }
            // The callback may have started using contexts: keep what it set, restore empty.
            None if context::active() => {
                self.cb.swap_context(context::enter(None));
            }
            None => {}
        }
    }
}

/// The type-erased body of a local handle.
pub(crate) trait Callback<L> {
    /// Runs the callback if it was not cancelled (and not run before).
    fn call(&self, lp: &L);
    /// Cancels: marks and drops the closure.
    fn cancel(&self);
    /// True once cancelled.
    fn is_cancelled(&self) -> bool;
    /// Where it was scheduled.
    fn location(&self) -> &'static Location<'static>;
    /// Swaps the context the callback runs in (the loop enters it around each run).
    fn swap_context(&self, ctx: Snapshot) -> Snapshot;
    /// Runs it as the loop runs queued work (the loop's `run_callback`, given the concrete
    /// type), then offers the allocation, if nothing else holds it, to the loop as its spare
    /// handle, so that the next callback of the same type reuses it: the iteration makes this
    /// one dynamic call per callback, and the checks, the context switch, the call and the
    /// recycling inside are dispatched statically.
    fn run_queued(self: Rc<Self>, lp: &L);
}

/// The state of a remote callback that neither started nor was cancelled.
pub(crate) const PENDING: u8 = 0;

/// The type-erased body of a [`RemoteHandle`].
pub(crate) trait RemoteCallback<L>: Send + Sync {
    /// Cancels it unless it already started.
    fn cancel(&self) -> bool;
    /// The state (PENDING, RUNNING, CANCELLED).
    fn state(&self) -> u8;
    /// Where it was scheduled.
    fn location(&self) -> &'static Location<'static>;
    /// Runs it as the loop runs queued work (unless cancelled first: the loop's `run_remote`,
    /// given the closure's concrete type), then offers the allocation to the loop's pool of spent ones, so that it can be
    /// reused for the next callback of the same type: one dynamic call per callback.
    fn run_queued(self: Arc<Self>, lp: &L);
}
