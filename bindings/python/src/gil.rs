//! The GIL while the loop runs.
//!
//! `run_forever` must not hold the GIL while the loop blocks in `epoll_wait`: other Python
//! threads (the executor's workers, a thread calling `call_soon_threadsafe`) would stop. The
//! loop core runs its own iteration and offers no hook around the wait, so the binding gives the
//! GIL up for the whole run ([`Python::detach`]) and takes it back in each callback
//! ([`acquire`]). Handing it over at every callback would cost two GIL switches per callback;
//! instead a callback keeps the GIL when it ends if more Python callbacks of the loop are
//! queued to run ([`release_if_idle`]): with Python work queued the loop's next poll does not
//! block, so the GIL is given up only when the loop may go idle. (Timers and fd callbacks are
//! not counted; after one of them the GIL is given up unless `call_soon` work is queued.)
//!
//! While the run holds the GIL this way PyO3 considers the thread detached, which is safe: PyO3
//! then only defers reference-count changes of objects dropped outside a callback to the next
//! time it attaches. Callbacks attach normally ([`Python::attach`] nests on the held GIL).

use std::cell::Cell;

use pyo3::ffi;

thread_local! {
    /// Whether the run took the GIL with `PyGILState_Ensure` and holds it: 0 no, 1 yes (the
    /// call said it was locked already), 2 yes (unlocked before).
    static HELD: Cell<u8> = const { Cell::new(0) };
}

/// Takes the GIL for a callback unless the run holds it already. Only inside [`Keeper`]'s
/// scope, on a thread detached from Python.
#[inline]
pub fn acquire() {
    HELD.with(|h| {
        if h.get() == 0 {
            // SAFETY: the thread has a Python thread state (it detached from one) and does not
            // hold the GIL (the run gave it up and `HELD` says it has not taken it back).
            let state = unsafe { ffi::PyGILState_Ensure() };
            h.set(match state {
                ffi::PyGILState_STATE::PyGILState_LOCKED => 1,
                ffi::PyGILState_STATE::PyGILState_UNLOCKED => 2,
            });
        }
    })
}

/// Gives the GIL up if the run holds it.
#[inline]
pub fn release() {
    HELD.with(|h| {
        let state = match h.replace(0) {
            0 => return,
            1 => ffi::PyGILState_STATE::PyGILState_LOCKED,
            _ => ffi::PyGILState_STATE::PyGILState_UNLOCKED,
        };
        // SAFETY: pairs with the `PyGILState_Ensure` of `acquire`; no PyO3 attach guard of a
        // callback is alive (callbacks end theirs before returning).
        unsafe { ffi::PyGILState_Release(state) }
    })
}

/// Gives the GIL up unless `pending` Python callbacks are queued.
#[inline]
pub fn release_if_idle(pending: usize) {
    if pending == 0 {
        release();
    }
}

/// The scope of a run: gives up whatever GIL the run still holds when it ends (normally or
/// by unwinding), before PyO3 takes the GIL back for the caller.
pub struct Keeper(());

impl Keeper {
    /// Starts the scope (the thread is detached: PyO3 gave the GIL up).
    pub fn new() -> Keeper {
        HELD.with(|h| debug_assert_eq!(h.get(), 0));
        Keeper(())
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        release();
    }
}
