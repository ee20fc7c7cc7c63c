//! The synchronization types of the code other threads touch: std's, or loom's under
//! `--cfg loom`.
//!
//! [`crate::wake`] is written against these names only, so that the model checker runs that
//! code itself, not a copy of it. A normal build gets std's atomics and `concurrent-queue`;
//! `RUSTFLAGS="--cfg loom"` swaps in loom's, whose every operation is a point where loom may
//! switch threads. Only the wake-up tests run in such a build (the rest of the crate merely
//! compiles: loom's types panic outside a model).
//!
//! Under loom the queue of remote work is a `loom::sync::Mutex<VecDeque>` instead of
//! `concurrent-queue`'s lock-free queue. The property the model checks is the protocol of the
//! `pending` and `notified` flags and the eventfd around the queue, given a queue that is
//! linearizable (an item popped after its push returned is seen) — what `ConcurrentQueue`
//! promises and checks with loom in its own test suite. Modelling its internals here as
//! well would multiply the interleavings without testing anything of evloop's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicBool;

/// loom re-exports std's `Ordering`.
pub(crate) use std::sync::atomic::Ordering;

/// An unbounded multi-producer queue: `concurrent-queue`'s.
#[cfg(not(loom))]
pub(crate) struct Queue<T>(concurrent_queue::ConcurrentQueue<T>);

#[cfg(not(loom))]
impl<T> Queue<T> {
    /// An empty queue.
    pub(crate) fn new() -> Queue<T> {
        Queue(concurrent_queue::ConcurrentQueue::unbounded())
    }

    /// Appends `v`; gives it back if the queue was closed (this one never is).
    #[inline]
    pub(crate) fn push(&self, v: T) -> Result<(), T> {
        self.0.push(v).map_err(|e| e.into_inner())
    }

    /// Removes the oldest item.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.pop().ok()
    }
}

/// An unbounded multi-producer queue: a `VecDeque` behind loom's `Mutex`.
#[cfg(loom)]
pub(crate) struct Queue<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Queue<T> {
    /// An empty queue.
    pub(crate) fn new() -> Queue<T> {
        Queue(loom::sync::Mutex::new(std::collections::VecDeque::new()))
    }

    /// Appends `v`; never fails.
    pub(crate) fn push(&self, v: T) -> Result<(), T> {
        self.0.lock().unwrap().push_back(v);
        Ok(())
    }

    /// Removes the oldest item.
    pub(crate) fn pop(&self) -> Option<T> {
        self.0.lock().unwrap().pop_front()
    }
}
