//! [`ThreadBound`]: a value that only the thread that made it may touch, inside a Python object
//! that any thread may hold.
//!
//! A loop's Rust half (`loop_core::EventLoop`, its timer handles) is `!Send`: it lives on the
//! thread that created it. The Python objects around it are shared by every thread of the
//! interpreter, so PyO3 wants them `Send + Sync`. `ThreadBound` is the bridge: it hands out
//! `&T` only on the owning thread (elsewhere the caller gets `None` and raises a clear
//! `RuntimeError`), and when it is dropped on another thread (the last reference to a Python
//! object went away there) it leaks the value instead of dropping it on the wrong thread.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's number: unique for the life of the process (a thread id can be reused
    /// after the thread ends; this number is not).
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// The calling thread's number.
#[inline]
pub fn thread_number() -> u64 {
    THREAD.with(|t| {
        let n = t.get();
        if n != 0 {
            return n;
        }
        let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        t.set(n);
        n
    })
}

/// A value usable only on the thread that created it.
pub struct ThreadBound<T> {
    owner: u64,
    value: ManuallyDrop<T>,
}

// SAFETY: the value is reached only through `get`, which checks that the caller is the owning
// thread, and dropped only on that thread (`Drop` leaks it elsewhere). So a `T` that is not
// `Send` or `Sync` is never used from two threads: sharing or moving the wrapper only moves
// the right to ask.
unsafe impl<T> Send for ThreadBound<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    /// Wraps `value`, owned by the calling thread.
    pub fn new(value: T) -> ThreadBound<T> {
        ThreadBound {
            owner: thread_number(),
            value: ManuallyDrop::new(value),
        }
    }

    /// The value, on the owning thread; `None` on any other.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        (thread_number() == self.owner).then_some(&*self.value)
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if thread_number() == self.owner {
            // SAFETY: dropped once, here, on the owning thread; never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
        // On another thread the value is leaked: dropping it here could race with its
        // owner thread (an `Rc` count, an epoll fd in use).
    }
}
