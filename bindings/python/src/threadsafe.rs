//! `call_soon_threadsafe` from other threads: the handles wait in a FIFO of the binding
//! ([`Threadsafe`]), and the loop core is woken once per batch of them, not once per handle.
//!
//! Every caller of `call_soon_threadsafe` holds the GIL, and so does the loop whenever it is
//! not inside its wait hook (see [`crate::gil`]): the GIL orders every access to the FIFO, which
//! therefore needs no lock of its own. A thread that queues a handle while no drain is queued
//! in the loop core for the FIFO's last batch starts a new batch and sends the core one
//! [`drain`] through `Remote::call_soon_threadsafe` (the core's own wake-up: its queue, its flag
//! and the eventfd, which never loses a wake-up, even against a loop that released the GIL to
//! poll a moment ago). Every later handle joins that batch for as long as it is open, at the
//! cost of a push onto the FIFO: any number of callbacks from a thread that runs while the
//! loop is busy or asleep cost the loop core one remote closure.
//!
//! The order is asyncio's, where `call_soon_threadsafe` appends to the ready queue: a batch's
//! drain takes the place in the loop core's ready queue that its first handle would have
//! taken (behind what was ready then), and runs its handles in the order they were queued. A
//! batch closes when something is scheduled behind its drain with `call_soon`
//! ([`Threadsafe::seal`]), and when its drain starts running: a handle queued after that
//! starts a batch of its own, which runs after what was scheduled in between (asyncio's order
//! again, and the iteration rule: what a batch's callbacks or other threads queue while it
//! runs waits for a later drain).
//!
//! A handle is cancelled from any thread through its own state (`Handle.cancel()`, GIL held);
//! the drain skips it. Closing the loop drops the FIFO and the drains queued in the core.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::Arc;

use loop_core::{EventLoop, Remote};
use pyo3::prelude::*;

use crate::handle::{self, Handle, Queued};
use crate::{errors, gil, running};

/// The FIFO and its batches.
#[derive(Default)]
struct Queue {
    /// The handles queued from other threads and not run yet, oldest first.
    handles: VecDeque<Queued<Handle>>,
    /// How many handles each drain queued in the loop core (and not started yet) runs, in the
    /// order of the drains, which is the order of the handles.
    batches: VecDeque<usize>,
    /// Whether the last batch still takes new handles (its drain is queued in the core and
    /// nothing was scheduled behind it with `call_soon`).
    open: bool,
}

/// The `call_soon_threadsafe` FIFO of one loop, shared by the loop object and the drains it
/// sent to the loop core.
pub struct Threadsafe(UnsafeCell<Queue>);

// SAFETY: the queue is reached only with the GIL held (the methods below take a `Python`
// token, and the drain runs as a loop callback, which holds it): one thread at a time, and the
// GIL's hand-over orders the accesses. No reference into the queue is kept across a call that
// could release the GIL or run Python code (see each method). This package targets CPython
// with the GIL.
unsafe impl Sync for Threadsafe {}
// SAFETY: as above; the handles inside are Python objects, used under the GIL.
unsafe impl Send for Threadsafe {}

impl Threadsafe {
    pub fn new() -> Arc<Threadsafe> {
        Arc::new(Threadsafe(UnsafeCell::new(Queue::default())))
    }

    /// The queue. The caller holds the GIL (`_py`) and lets go of the reference before
    /// anything that may run Python code (a handle's drop, a callback).
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    fn queue(&self, _py: Python<'_>) -> &mut Queue {
        // SAFETY: GIL held (see the `Sync` impl); every caller ends its use of the reference
        // before anything could reach the queue again.
        unsafe { &mut *self.0.get() }
    }

    /// Queues `run` from a thread other than the loop's and makes sure a drain will run it:
    /// the open batch takes it, else a new batch starts and its drain goes to the loop core
    /// through `remote`. Fails (with the handle dropped) when the loop was closed.
    pub fn push(
        self: &Arc<Self>,
        py: Python<'_>,
        remote: &Remote,
        run: Queued<Handle>,
    ) -> PyResult<()> {
        let q = self.queue(py);
        q.handles.push_back(run);
        if q.open {
            if let Some(n) = q.batches.back_mut() {
                *n += 1;
                return Ok(());
            }
        }
        q.batches.push_back(1);
        q.open = true;
        let ts = self.clone();
        // No Python code runs in the core's push (the closure is only moved).
        match remote.call_soon_threadsafe(move |lp: &EventLoop| drain(&ts, lp)) {
            Ok(_) => Ok(()),
            Err(e) => {
                let q = self.queue(py);
                q.batches.pop_back();
                q.open = false;
                let run = q.handles.pop_back();
                // Dropped after the queue's reference ends: it may run Python code.
                drop(run);
                Err(errors::to_py(e))
            }
        }
    }

    /// Something was scheduled behind the drain of the open batch: handles queued from now on
    /// go behind it too, in a batch of their own.
    #[inline(always)]
    pub fn seal(&self, py: Python<'_>) {
        self.queue(py).open = false;
    }

    /// How many handles wait.
    pub fn len(&self, py: Python<'_>) -> usize {
        self.queue(py).handles.len()
    }

    /// Drops every queued handle (the loop was closed: its drains are gone with its queue).
    pub fn clear(&self, py: Python<'_>) {
        let q = self.queue(py);
        let handles = std::mem::take(&mut q.handles);
        q.batches.clear();
        q.open = false;
        drop(handles);
    }
}

/// The rest of a batch that a [`drain`] did not run because a callback's `KeyboardInterrupt` /
/// `SystemExit` ended the run: it goes back in front of the batches, with a drain of its own
/// queued on the loop, so that it runs when the loop runs again.
struct Rest<'a> {
    ts: &'a Arc<Threadsafe>,
    lp: &'a EventLoop,
    left: usize,
}

impl Drop for Rest<'_> {
    fn drop(&mut self) {
        if self.left == 0 {
            return;
        }
        let py = gil::attached();
        self.ts.queue(py).batches.push_front(self.left);
        let ts = self.ts.clone();
        // The loop is open (it was running a moment ago) and this is its thread.
        let _ = self
            .lp
            .call_soon_threadsafe(move |lp: &EventLoop| drain(&ts, lp));
    }
}

/// Runs the oldest batch of handles: a loop callback, queued by [`Threadsafe::push`] (GIL
/// held, as in every callback of the loop).
fn drain(ts: &Arc<Threadsafe>, lp: &EventLoop) {
    let py = gil::attached();
    // The handles run with the running loop's state (its exception handler, the fatal slot).
    let state = running::get();
    let q = ts.queue(py);
    let n = q.batches.pop_front().unwrap_or(0);
    if q.batches.is_empty() {
        // This drain is the last queued: a handle queued from now on needs a new one.
        q.open = false;
    }
    let mut rest = Rest { ts, lp, left: n };
    while rest.left > 0 {
        let Some(run) = ts.queue(py).handles.pop_front() else {
            break;
        };
        rest.left -= 1;
        let h = run.take(py);
        let r = handle::run(py, &h, state.as_deref());
        drop(h);
        if let Err(e) = r {
            match &state {
                Some(state) => state.fatal(e),
                // Only a running loop runs callbacks, so there is a state; were there none,
                // the interrupt would have no run to end.
                None => e.write_unraisable(py, None),
            }
        }
    }
    rest.left = 0;
}
