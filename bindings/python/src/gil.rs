//! The GIL while the loop runs.
//!
//! `run_forever` must not hold the GIL while the loop blocks in `epoll_wait`: other Python
//! threads (the executor's workers, a thread calling `call_soon_threadsafe`) would stop. The
//! loop core runs its own iteration and offers no hook around the wait, so the binding gives the
//! GIL up for the whole run ([`Python::detach`]) and takes it back in a callback
//! ([`Gil::enter`]). Handing it over at every callback would cost two GIL switches per callback;
//! instead a callback keeps the GIL when it ends if more Python callbacks of the loop are
//! queued to run ([`Gil::leave`]): with Python work queued the loop's next poll does not
//! block, so the GIL is given up only when the loop may go idle. (Timers and fd callbacks are
//! not counted; after one of them the GIL is given up unless `call_soon` work is queued.)
//!
//! While the run holds the GIL this way PyO3 considers the thread detached. Callbacks get their
//! `Python` token from [`Gil::enter`] and drop what they own as `Bound` values (which release
//! their reference at once); a `Py` dropped while PyO3 considers the thread detached is only
//! released later, at PyO3's next attach, which is safe.

use std::cell::Cell;

use pyo3::{ffi, Python};

/// Whether a run holds the GIL, taken with `PyGILState_Ensure`.
#[derive(Default)]
pub struct Gil {
    /// 0: not held; 1: held (`PyGILState_Ensure` said it was locked); 2: held (it was not).
    held: Cell<u8>,
}

impl Gil {
    /// Takes the GIL for a callback unless the run holds it already, and gives the callback
    /// its token. Only inside a run ([`Keeper`]), on a thread that gave the GIL up.
    #[inline]
    pub fn enter(&self) -> Python<'static> {
        if self.held.get() == 0 {
            // SAFETY: the thread has a Python thread state (the run detached from it) and does
            // not hold the GIL (the run gave it up and `held` says it has not taken it back).
            let state = unsafe { ffi::PyGILState_Ensure() };
            self.held.set(match state {
                ffi::PyGILState_STATE::PyGILState_LOCKED => 1,
                ffi::PyGILState_STATE::PyGILState_UNLOCKED => 2,
            });
        }
        // SAFETY: the GIL is held by this thread, taken above or by an earlier callback of
        // this run, and kept until `leave` or the end of the run.
        unsafe { Python::assume_attached() }
    }

    /// Gives the GIL up at the end of a callback unless `pending` Python callbacks are queued.
    #[inline]
    pub fn leave(&self, pending: usize) {
        if pending == 0 {
            self.release();
        }
    }

    /// Gives the GIL up if the run holds it.
    pub fn release(&self) {
        let state = match self.held.replace(0) {
            0 => return,
            1 => ffi::PyGILState_STATE::PyGILState_LOCKED,
            _ => ffi::PyGILState_STATE::PyGILState_UNLOCKED,
        };
        // SAFETY: pairs with the `PyGILState_Ensure` of `enter`; no PyO3 attach guard of a
        // callback is alive (callbacks end theirs before returning).
        unsafe { ffi::PyGILState_Release(state) }
    }
}

/// The scope of a run: gives up whatever GIL the run still holds when it ends (normally or
/// by unwinding), before PyO3 takes the GIL back for the caller.
pub struct Keeper<'a>(pub &'a Gil);

impl Drop for Keeper<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}
