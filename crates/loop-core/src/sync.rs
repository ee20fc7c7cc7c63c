//! The synchronization types of the code other threads touch: std's, or loom's under
//! `--cfg loom`.
//!
//! [`crate::wake`] is written against these names only, so that the model checker runs that
//! code itself, not a copy of it. A normal build gets std's atomics and mutex;
//! `RUSTFLAGS="--cfg loom"` swaps in loom's, whose every operation is a point where loom may
//! switch threads. Only the wake-up tests run in such a build (the rest of the crate merely
//! compiles: loom's types panic outside a model).
//!
//! The same holds for [`crate::remote_cell`], the state and closure of a remote callback.
//!
//! The queue of remote work is the same code in both builds (a `Vec` behind a mutex, emptied a
//! batch at a time), so the model checks it too, not a stand-in.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8};
#[cfg(loom)]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8};
#[cfg(not(loom))]
use std::sync::{Mutex, MutexGuard};

/// std's `UnsafeCell` with loom's interface (access through a closure given the raw pointer),
/// so that code written against it runs under loom's cell, which checks every access.
#[cfg(not(loom))]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// A cell holding `v`.
    #[inline]
    pub(crate) const fn new(v: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }

    /// Gives `f` the pointer to the value; the caller's `unsafe` block argues why the access
    /// it makes is exclusive.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// loom re-exports std's `Ordering`.
pub(crate) use std::sync::atomic::Ordering;

/// The capacity a drained batch keeps for the next one; a larger one (after a burst) is freed.
const SPARE_CAPACITY: usize = 16384;

/// An unbounded multi-producer queue with one consumer, which takes everything queued at once.
///
/// Producers append to a `Vec` under a mutex (held for the push alone: a compare-and-swap and
/// a store when nobody else holds it). The consumer swaps that `Vec` for an empty one that
/// kept the capacity of its previous batch, so in a steady state neither side allocates, and
/// the consumer locks once per batch, not once per item.
pub(crate) struct Queue<T> {
    /// What producers appended since the last drain, oldest first.
    items: Mutex<Vec<T>>,
    /// The consumer's emptied batch, swapped in at the next drain (only the consumer locks
    /// it).
    spare: Mutex<Vec<T>>,
}

/// Locks `m`, also after a panic under the lock (nothing under these locks can be left
/// half-done by one: a push or a swap).
#[inline]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Queue<T> {
    /// An empty queue.
    pub(crate) fn new() -> Queue<T> {
        Queue {
            items: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Appends `v`. Always inlined: a call copied `v` twice more, a third of the cost.
    #[inline(always)]
    pub(crate) fn push(&self, v: T) {
        lock(&self.items).push(v);
    }

    /// Takes every item queued now and gives each to `f`, oldest first. Items pushed while
    /// `f` runs wait for the next drain (no lock is held while `f` runs, so `f` may push).
    #[inline]
    pub(crate) fn drain(&self, f: impl FnMut(T)) {
        self.drain_batch(|batch| batch.for_each(f))
    }

    /// Takes every item queued now and gives them to `f` at once, oldest first, as an iterator
    /// that knows its length (so that `f` can move them on in one go, reserving room once).
    /// Items `f` leaves in the iterator are dropped. As [`drain`](Self::drain), no lock is held
    /// while `f` runs.
    #[inline]
    pub(crate) fn drain_batch(&self, f: impl FnOnce(std::vec::Drain<'_, T>)) {
        let mut batch = std::mem::take(&mut *lock(&self.spare));
        std::mem::swap(&mut *lock(&self.items), &mut batch);
        f(batch.drain(..));
        if batch.capacity() > SPARE_CAPACITY {
            batch = Vec::new();
        }
        *lock(&self.spare) = batch;
    }
}
