//! The GIL while the loop runs.
//!
//! `run_forever` keeps the GIL for the whole run, callbacks included, and gives it up only
//! while the loop sleeps: loop-core calls the wait hook set by [`install`] around each wait
//! for I/O that may block, and the hook releases the GIL (`PyEval_SaveThread`) for the wait
//! and takes it back (`PyEval_RestoreThread`) when the loop wakes up. Other Python threads
//! (the executor's workers, a thread calling `call_soon_threadsafe`) run while the loop waits;
//! a loop with work ready never blocks, so it keeps the GIL through its callbacks as asyncio's
//! own loop does, without a GIL switch per callback. (CPython's periodic switch request still
//! hands the GIL over to other threads while Python code of the callbacks runs.)

use loop_core::EventLoop;
use pyo3::{ffi, Python};

/// Sets `lp`'s wait hook: the GIL is released for each wait that may block. Every run of
/// the loop starts with the GIL held (`LoopCore._run` / `_run_once`).
pub fn install(lp: &EventLoop) {
    lp.set_wait_hook(|wait: &mut dyn FnMut()| {
        // SAFETY: the loop runs only inside `LoopCore._run` / `_run_once`, which hold the GIL
        // on this thread; the hook runs on that thread, between callbacks, so no Python object
        // is being used. The wait touches no Python object.
        let saved = unsafe { ffi::PyEval_SaveThread() };
        // The wait does not unwind (it only polls and queues); if it did, the GIL would
        // still be taken back first.
        struct Restore(*mut ffi::PyThreadState);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: the thread state saved just before, on the same thread.
                unsafe { ffi::PyEval_RestoreThread(self.0) }
            }
        }
        let _restore = Restore(saved);
        wait();
    });
}

/// The token of a callback: the loop runs callbacks with the GIL held (see the module doc).
#[inline(always)]
pub fn attached() -> Python<'static> {
    // SAFETY: called only by the loop's callbacks, which run inside a run that holds the GIL
    // on this thread (it is released only inside the wait hook, where no callback runs).
    unsafe { Python::assume_attached() }
}
