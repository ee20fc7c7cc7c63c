//! The synchronization types of the code other threads touch: std's, or loom's under
//! `--cfg loom`.
//!
//! [`crate::wake`] is written against these names only, so that the model checker runs that
//! code itself, not a copy of it. A normal build gets std's atomics and mutex;
//! `RUSTFLAGS="--cfg loom"` swaps in loom's, whose every operation is a point where loom may
//! switch threads. Only the wake-up tests run in such a build (the rest of the crate merely
//! compiles: loom's types panic outside a model).
//!
//! The same holds for [`crate::remote_cell`], the state and closure of a remote callback, and
//! for [`crate::remote_queue`], the lock-free queue of remote work.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8};

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
