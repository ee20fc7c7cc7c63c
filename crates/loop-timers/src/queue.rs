//! The per-loop timer queue: a binary min-heap of `(deadline, sequence)` with lazy deletion.
//!
//! * **Insert** is a heap push: O(log n) worst case, O(1) on average for random deadlines.
//! * **Cancel** is O(1): the [`TimerHandle`](crate::TimerHandle) cancels its loop_core `Handle`
//!   (which drops the callback at once) and bumps [`Timers::cancelled`] if the entry is still in
//!   the heap. The entry itself stays where it is.
//! * **Lazy clean-up** (TIMER-15): whenever the queue looks at its head (for the poll timeout,
//!   or to move due timers to the ready queue) it first pops cancelled heads, so the poll
//!   timeout always comes from the first live timer.
//! * **Bulk clean-up** (TIMER-16): asyncio's rule — when more than 100 entries are in the heap
//!   and more than half of them are cancelled, the heap is rebuilt without them in O(n).
//! * **Bulk dispatch**: a dispatch that finds a large share of a big heap due switches from
//!   popping to one split-sort-reheapify pass (see [`Timers::dispatch_bulk`]).
//!
//! Whether an entry is still in the heap is known without a flag per entry: entries leave the
//! heap only at its head (due ones, and cancelled ones), or all together (bulk clean-up of
//! cancelled ones, close). Each dispatch moves *every* entry whose deadline is below its cutoff,
//! and cutoffs never decrease. So a live entry has left the heap exactly when a dispatch ran
//! after it was pushed (its sequence number is below the one recorded at the last dispatch)
//! with a cutoff above its deadline. That keeps a timer at one allocation: the callback.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;
use std::rc::{Rc, Weak};
use std::time::Instant;

use loop_core::internal::{LoopInternals, Source};
use loop_core::{EventLoop, Handle};

use crate::clock;

/// Bulk clean-up needs more entries than this in the heap (asyncio's
/// `_MIN_SCHEDULED_TIMER_HANDLES`).
pub(crate) const MIN_SCHEDULED_FOR_CLEANUP: usize = 100;

/// A dispatch that has popped this many due entries one by one considers the bulk path.
const BULK_MIN_POPS: usize = 1024;

/// ... and switches to it once it has popped at least 1/`BULK_RATIO` of what is left.
const BULK_RATIO: usize = 32;

thread_local! {
    /// Sequence numbers of timers, shared by every loop of the thread: FIFO tie-break for equal
    /// deadlines, and a unique identity of each timer among the handles this thread can see.
    static NEXT_SEQ: Cell<u64> = const { Cell::new(0) };

    /// The timer queue of the loop this thread used last, by loop id (ids are never reused):
    /// saves the extension-map lookup on the `call_later` hot path.
    static LAST: RefCell<Option<(u64, Weak<Timers>)>> = const { RefCell::new(None) };
}

/// The next sequence number of this thread.
#[inline]
pub(crate) fn next_seq() -> u64 {
    NEXT_SEQ.with(|s| {
        let v = s.get();
        s.set(v + 1);
        v
    })
}

/// The sequence number the next timer of this thread will get.
#[inline]
fn peek_seq() -> u64 {
    NEXT_SEQ.with(Cell::get)
}

/// One heap entry: 32 bytes, compared by `(key, seq)`.
pub(crate) struct Entry {
    /// Deadline, nanoseconds since the clock epoch.
    key: i64,
    /// Scheduling order.
    seq: u64,
    /// The callback.
    handle: Handle,
}

impl Entry {
    /// `(key, seq)` as one integer with the same order: the key with its sign bit flipped
    /// (so that unsigned order is signed order) above the sequence number.
    #[inline]
    fn order(&self) -> u128 {
        (u128::from(self.key as u64 ^ (1 << 63)) << 64) | u128::from(self.seq)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.seq == other.seq
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest `(key, seq)` first.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        (other.key, other.seq).cmp(&(self.key, self.seq))
    }
}

/// The timer state of one loop; registered with the loop as its timer [`Source`].
pub(crate) struct Timers {
    /// The heap.
    heap: RefCell<BinaryHeap<Entry>>,
    /// Cancelled entries still in the heap that were counted (cancelled through a
    /// `TimerHandle` while in the heap).
    cancelled: Cell<usize>,
    /// Bulk clean-ups so far.
    cleanups: Cell<u64>,
    /// The clock-resolution fudge, in nanoseconds (TIMER-11).
    resolution_ns: Cell<i64>,
    /// The cutoff of the last dispatch: everything below it was moved out (monotonic).
    last_cutoff: Cell<i64>,
    /// The thread's next sequence number when the last dispatch ran (`u64::MAX`: none yet).
    seq_at_dispatch: Cell<u64>,
    /// Set by `close`.
    closed: Cell<bool>,
    /// The clock epoch (copied here to keep the hot path off the `OnceLock`).
    pub(crate) epoch: Instant,
}

/// What the loop's extension slot holds: the queue, also registered as a source.
pub(crate) struct Slot(pub(crate) Rc<Timers>);

impl Timers {
    /// The timer queue of `lp`, created (and registered as a source) on first use.
    #[inline]
    pub(crate) fn of(lp: &EventLoop) -> Rc<Timers> {
        let id = lp.id();
        let cached = LAST
            .try_with(|c| match &*c.borrow() {
                Some((last, t)) if *last == id => t.upgrade(),
                _ => None,
            })
            .ok()
            .flatten();
        match cached {
            Some(t) => t,
            None => {
                let t = Timers::lookup(lp);
                let _ = LAST.try_with(|c| *c.borrow_mut() = Some((id, Rc::downgrade(&t))));
                t
            }
        }
    }

    /// The timer queue of `lp` from the loop's extension slot.
    fn lookup(lp: &EventLoop) -> Rc<Timers> {
        lp.extension(|lp| {
            let t = Rc::new(Timers {
                heap: RefCell::new(BinaryHeap::new()),
                cancelled: Cell::new(0),
                cleanups: Cell::new(0),
                resolution_ns: Cell::new(clock::duration_ns(clock::os_clock_resolution())),
                last_cutoff: Cell::new(i64::MIN),
                seq_at_dispatch: Cell::new(u64::MAX),
                closed: Cell::new(false),
                epoch: clock::epoch(),
            });
            lp.add_source(t.clone());
            Slot(t)
        })
        .0
        .clone()
    }

    /// Pushes a timer.
    #[inline]
    pub(crate) fn push(&self, key: i64, seq: u64, handle: Handle) {
        self.heap.borrow_mut().push(Entry { key, seq, handle });
    }

    /// True if the (live) timer `(key, seq)` is still in the heap (see the module docs).
    #[inline]
    pub(crate) fn contains_live(&self, key: i64, seq: u64) -> bool {
        if self.closed.get() {
            return false;
        }
        let at = self.seq_at_dispatch.get();
        at == u64::MAX || seq >= at || key >= self.last_cutoff.get()
    }

    /// Counts a cancellation of an entry still in the heap.
    #[inline]
    pub(crate) fn count_cancel(&self) {
        self.cancelled.set(self.cancelled.get() + 1);
    }

    /// Forgets one counted cancellation (a cancelled entry left the heap).
    #[inline]
    fn uncount_cancel(&self) {
        // Saturating: entries cancelled through their inner `Handle` were never counted.
        self.cancelled.set(self.cancelled.get().saturating_sub(1));
    }

    /// Rebuilds the heap without cancelled entries if asyncio's rule says so (TIMER-16).
    fn maybe_cleanup(&self) {
        let cancelled = self.cancelled.get();
        if cancelled == 0 {
            return;
        }
        let mut heap = self.heap.borrow_mut();
        let n = heap.len();
        if n > MIN_SCHEDULED_FOR_CLEANUP && cancelled * 2 > n {
            // Cancelled entries hold no callback any more (it was dropped at cancel time), so
            // dropping them here runs no user code.
            heap.retain(|e| !e.handle.cancelled());
            self.cancelled.set(0);
            self.cleanups.set(self.cleanups.get() + 1);
        }
    }

    /// Moves every due entry out in one pass, for a dispatch that finds a large part of the
    /// heap due (a burst of timers that all expired while the loop was busy).
    ///
    /// Popping costs O(log n) cache misses per entry once the heap outgrows the cache; instead,
    /// one sequential pass splits the due entries off, a sort puts them in `(deadline,
    /// sequence)` order and the rest is re-heapified in O(n). A dispatch only switches to this
    /// after popping a 1/32 share of the heap one by one, so the pass never costs much more
    /// than the pops already made; the order the timers run in is the same either way.
    fn dispatch_bulk(&self, heap: &mut BinaryHeap<Entry>, lp: &EventLoop, cutoff: i64) {
        // Everything happens in the heap's own buffer: no allocation.
        let mut all = std::mem::take(heap).into_vec();
        // Due cancelled entries go first: they hold no callback any more (it was dropped at
        // cancel time), so dropping them runs no user code, and the sort below is spared them.
        let before = all.len();
        all.retain(|e| e.key >= cutoff || !e.handle.cancelled());
        for _ in all.len()..before {
            self.uncount_cancel();
        }
        // Split: the due entries to the front, in one pass.
        let mut due = 0;
        for i in 0..all.len() {
            if all[i].key < cutoff {
                all.swap(due, i);
                due += 1;
            }
        }
        all[..due].sort_unstable_by_key(Entry::order);
        for e in &all[..due] {
            // Fails only on a closed loop, whose sources are never dispatched.
            let _ = lp.schedule(&e.handle);
        }
        // Dropping runs no user code: the ready queue now holds the live handles too.
        all.drain(..due);
        *heap = BinaryHeap::from(all);
    }

    /// Resolution fudge in nanoseconds.
    pub(crate) fn resolution_ns(&self) -> i64 {
        self.resolution_ns.get()
    }

    /// Sets the resolution fudge.
    pub(crate) fn set_resolution_ns(&self, ns: i64) {
        self.resolution_ns.set(ns.clamp(0, clock::MAX_DELAY_NS));
    }

    /// `(entries in the heap, counted cancelled entries, bulk clean-ups)`.
    pub(crate) fn stats(&self) -> (usize, usize, u64) {
        (
            self.heap.borrow().len(),
            self.cancelled.get(),
            self.cleanups.get(),
        )
    }
}

impl Source for Timers {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        self.maybe_cleanup();
        let mut heap = self.heap.borrow_mut();
        while let Some(top) = heap.peek_mut() {
            if top.handle.cancelled() {
                PeekMut::pop(top);
                self.uncount_cancel();
            } else {
                // Due once `key < now + resolution`, i.e. from `key - resolution + 1 ns` on.
                let due = top
                    .key
                    .saturating_sub(self.resolution_ns.get())
                    .saturating_add(1);
                return Some(clock::instant_of(due, self.epoch));
            }
        }
        None
    }

    fn dispatch(&self, lp: &EventLoop, now: Instant) {
        let cutoff = clock::key_of(now, self.epoch)
            .saturating_add(self.resolution_ns.get())
            .max(self.last_cutoff.get());
        self.last_cutoff.set(cutoff);
        self.seq_at_dispatch.set(peek_seq());
        self.maybe_cleanup();
        let mut heap = self.heap.borrow_mut();
        let mut popped = 0usize;
        loop {
            let Some(top) = heap.peek_mut() else {
                break;
            };
            if top.handle.cancelled() {
                // A cancelled head goes whether it is due or not (TIMER-15).
                PeekMut::pop(top);
                self.uncount_cancel();
                continue;
            }
            if top.key >= cutoff {
                break;
            }
            let e = PeekMut::pop(top);
            // Fails only on a closed loop, whose sources are never dispatched.
            let _ = lp.schedule(&e.handle);
            popped += 1;
            if popped >= BULK_MIN_POPS && popped * BULK_RATIO >= heap.len() {
                self.dispatch_bulk(&mut heap, lp, cutoff);
                break;
            }
        }
    }

    /// Timers scheduled and not cancelled: the heap's entries minus the counted cancelled ones
    /// (loop-core reports it as `Stats::timers_pending`).
    fn pending(&self) -> usize {
        match self.heap.try_borrow() {
            Ok(heap) => heap.len().saturating_sub(self.cancelled.get()),
            // Only while the queue itself is being worked on (a destructor run by it asking).
            Err(_) => 0,
        }
    }

    fn close(&self, _lp: &EventLoop) {
        self.closed.set(true);
        self.cancelled.set(0);
        // Take the entries out before dropping them: dropping a callback may run user code
        // (destructors of what it captured), which may call back into this queue.
        let heap = std::mem::take(&mut *self.heap.borrow_mut());
        drop(heap);
    }
}
