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
    cb: &'a dyn Body<L>,
    /// The context that was current before; `None` if contexts were not in use on this thread
    /// when the callback started (its context and the current one were then both empty).
    prev: Option<Snapshot>,
}

impl<'a, L> EnterContext<'a, L> {
    #[inline]
    pub(crate) fn new(cb: &'a dyn Body<L>) -> EnterContext<'a, L> {
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
pub(crate) fn leave_unentered<L>(cb: &dyn Body<L>) {
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

/// The slot argument of [`Callback`]'s methods for a callback that is its own allocation (not
/// a slot of a [`Slab`](crate::local_slab::Slab)).
pub(crate) const OWN: u32 = u32::MAX;

/// What a local handle refers to: a callback in an allocation of its own (`Handle::new`,
/// timers, fd watchers), which ignores the `slot` argument of these methods, or a slab of
/// `call_soon` callbacks of one closure type, where `slot` names the callback.
pub(crate) trait Callback<L> {
    /// Cancels: marks and drops the closure (and its context).
    fn cancel(&self, slot: u32);
    /// True once cancelled.
    fn is_cancelled(&self, slot: u32) -> bool;
    /// Where it was scheduled.
    fn location(&self, slot: u32) -> &'static Location<'static>;
    /// Runs it now unless cancelled (or run before), in its context, without catching a panic
    /// (`Handle::run`).
    fn run_now(&self, slot: u32, lp: &L);
    /// Runs it as the loop runs queued work (the loop's `run_callback` or `run_slot`, given the
    /// concrete type): the iteration makes this one dynamic call per callback, and the checks,
    /// the context switch and the call inside are dispatched statically. For a slot, the
    /// ready queue's reference to it ends here.
    fn run_queued(self: Rc<Self>, slot: u32, lp: &L);
    /// Another ready-queue entry for `slot` (`schedule` of a handle): the callback to queue,
    /// or `None` if nothing is left to run (a spent slot).
    fn requeue(self: Rc<Self>, slot: u32) -> Option<Rc<dyn Callback<L>>>;
    /// The ready queue's entry for `slot` ends without a run (`close()`): its closure is
    /// dropped at once, as a cancel would.
    #[inline]
    fn discard(self: Rc<Self>, _slot: u32) {}
    /// The loop no longer keeps this slab.
    #[inline]
    fn uncache(&self) {}
}

/// The closure and the context of a callback in an allocation of its own, as the loop's
/// `run_callback` and [`EnterContext`] use them.
pub(crate) trait Body<L> {
    /// Runs the closure if it was not run before (the caller checked the cancel flag).
    fn call(&self, lp: &L);
    /// Swaps the context the callback runs in (the loop enters it around each run).
    fn swap_context(&self, ctx: Snapshot) -> Snapshot;
}

/// How a loop runs the closure of a slab slot, taken out of its slab (see
/// [`Slab`](crate::local_slab::Slab)): counted, its location current, in its context, a panic
/// reported.
pub(crate) trait RunSlot: Sized {
    /// Runs `f`, scheduled at `loc` in the context `ctx`.
    fn run_slot<F: FnOnce(&Self)>(&self, loc: &'static Location<'static>, ctx: Snapshot, f: F);
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
