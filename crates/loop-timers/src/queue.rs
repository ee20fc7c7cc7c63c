//! The per-loop timer queue: a binary min-heap of `(deadline, sequence, slot)` with lazy
//! deletion, and a slab of slots holding the handles of the timers in the heap.
//!
//! * **Insert** is a heap push and a slot from the slab's free list: O(log n) worst case, O(1)
//!   on average for random deadlines, and no allocation once the heap and the slab have grown.
//! * **Cancel** is O(1): the [`TimerHandle`](crate::TimerHandle) frees the timer's slot if the
//!   timer is still in the heap (counting the cancellation in [`Timers::cancelled`]) and cancels
//!   its loop_core `Handle`, which drops the callback at once. The heap entry stays where it is;
//!   its slot now holds another timer's sequence number, or none, so the entry is known to be
//!   dead. With the slot gone the callback's allocation is released at cancel time, not when the
//!   entry leaves the heap, so the allocator hands it to the next timer.
//! * **Lazy clean-up** (TIMER-15): whenever the queue looks at its head (for the poll timeout,
//!   or to move due timers to the ready queue) it first pops cancelled heads, so the poll
//!   timeout always comes from the first live timer.
//! * **Bulk clean-up** (TIMER-16): asyncio's rule — when more than 100 entries are in the heap
//!   and more than half of them are cancelled, the heap is rebuilt without them in O(n).
//! * **Bulk dispatch**: a dispatch that finds a large share of a big heap due switches from
//!   popping to one split-sort-reheapify pass (see [`Timers::dispatch_bulk`]).
//!
//! A timer is in the heap exactly while its slot holds its sequence number: the slot is freed
//! when the entry leaves the heap (due, cancelled at the head, bulk clean-up, close) or when the
//! timer is cancelled through its `TimerHandle`. That keeps a timer at one allocation: the
//! callback.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Instant;

use loop_core::internal::{LoopInternals, Source};
use loop_core::{EventLoop, Handle};

use crate::clock;

/// Bulk clean-up needs more entries than this in the heap (asyncio's
/// `_MIN_SCHEDULED_TIMER_HANDLES`).
pub(crate) const MIN_SCHEDULED_FOR_CLEANUP: usize = 100;

/// A dispatch that has popped this many due entries (live or cancelled) one by one considers
/// the bulk path.
const BULK_MIN_POPS: usize = 1024;

/// ... and switches to it once it has popped at least 1/`BULK_RATIO` of what is left, or at
/// once if a sample of what is left says that at least that share of it is due too.
const BULK_RATIO: usize = 32;

/// Entries looked at by [`bulk_due_by_sample`].
const BULK_SAMPLE: usize = 256;

/// True if at least 1/[`BULK_RATIO`] of an even sample of [`BULK_SAMPLE`] entries of `heap`
/// (spread over its storage, most of which is its lower levels) is due before `cutoff`: the
/// dispatch then has at least that share of the heap still to move, and one bulk pass costs
/// less than popping them. Only the speed of the dispatch depends on it, not the order.
fn bulk_due_by_sample(heap: &BinaryHeap<Entry>, cutoff: i64) -> bool {
    let step = (heap.len() / BULK_SAMPLE).max(1);
    let due = heap
        .iter()
        .step_by(step)
        .take(BULK_SAMPLE)
        .filter(|e| e.key < cutoff)
        .count();
    due * BULK_RATIO >= BULK_SAMPLE
}

thread_local! {
    /// Sequence numbers of timers, shared by every loop of the thread: FIFO tie-break for equal
    /// deadlines, and a unique identity of each timer among the handles this thread can see.
    static NEXT_SEQ: Cell<u64> = const { Cell::new(0) };

    /// The timer queue of the loop this thread used last, by loop id (ids are never reused):
    /// saves the extension-map lookup on the `call_later` hot path. A strong reference, so
    /// that a hit costs no upgrade; the queue's `close` (run when its loop is closed or
    /// dropped) takes it out again, so it never outlives its loop's use.
    static LAST: RefCell<Option<(u64, Rc<Timers>)>> = const { RefCell::new(None) };
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

/// One heap entry: 24 bytes, compared by `(key, seq)`.
pub(crate) struct Entry {
    /// Deadline, nanoseconds since the clock epoch.
    key: i64,
    /// Scheduling order.
    seq: u64,
    /// The timer's slot in [`Timers::slots`]; the timer is in the heap while that slot holds
    /// `seq`.
    slot: u32,
}

/// A slot of the slab of handles.
enum SlabSlot {
    /// The handle of the timer with sequence number `seq`, in the heap.
    Used {
        /// The timer's sequence number.
        seq: u64,
        /// Its callback.
        handle: Handle,
    },
    /// Free; the next free slot (`u32::MAX`: none).
    Free {
        /// The next free slot.
        next: u32,
    },
}

/// The handles of the timers in the heap, indexed by [`Entry::slot`], with an intrusive free
/// list: slots are reused, so the slab allocates only when it grows past its largest size.
struct Slab {
    /// The slots.
    slots: Vec<SlabSlot>,
    /// The first free slot (`u32::MAX`: none).
    free: u32,
}

impl Slab {
    /// A slot holding `handle` for timer `seq`.
    #[inline]
    fn insert(&mut self, seq: u64, handle: Handle) -> u32 {
        let i = self.free;
        if let Some(s) = self.slots.get_mut(i as usize) {
            if let SlabSlot::Free { next } = *s {
                self.free = next;
            }
            *s = SlabSlot::Used { seq, handle };
            i
        } else {
            let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 timers at once");
            self.slots.push(SlabSlot::Used { seq, handle });
            i
        }
    }

    /// The handle of entry `(slot, seq)` if the timer is still in the heap.
    #[inline]
    fn get(&self, slot: u32, seq: u64) -> Option<&Handle> {
        match self.slots.get(slot as usize) {
            Some(SlabSlot::Used { seq: s, handle }) if *s == seq => Some(handle),
            _ => None,
        }
    }

    /// Frees the slot of entry `(slot, seq)` and gives its handle, if the timer is in the heap.
    #[inline]
    fn remove(&mut self, slot: u32, seq: u64) -> Option<Handle> {
        let s = self.slots.get_mut(slot as usize)?;
        match s {
            SlabSlot::Used { seq: q, .. } if *q == seq => {}
            _ => return None,
        }
        let old = std::mem::replace(s, SlabSlot::Free { next: self.free });
        self.free = slot;
        match old {
            SlabSlot::Used { handle, .. } => Some(handle),
            SlabSlot::Free { .. } => None,
        }
    }

    /// True if entry `e` is a live timer: still in its slot and not cancelled through its
    /// inner handle. `exposed` is [`Timers::exposed`]: while it is false no inner handle can
    /// have been cancelled, and the slot alone answers (no dynamic call to the handle).
    #[inline]
    fn live(&self, e: &Entry, exposed: bool) -> bool {
        self.get(e.slot, e.seq)
            .is_some_and(|h| !exposed || !h.cancelled())
    }
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
        other.order().cmp(&self.order())
    }
}

/// Moves the due timers' handles collected in `due` to the ready queue, in order. That fails
/// only on a closed loop, whose sources are never dispatched (the handles are dropped then).
#[inline]
fn schedule_all(lp: &EventLoop, due: &mut Vec<Handle>) {
    if !due.is_empty() && lp.schedule_all(due).is_err() {
        due.clear();
    }
}

/// Bits per digit of [`run_order`]'s radix sort.
const RADIX_BITS: u32 = 11;

/// Bits per digit for a sort of at least [`WIDE_MIN`] deadlines: fewer passes, each with a
/// larger table of counts (8,192 of them), which only pays off for that many.
const WIDE_RADIX_BITS: u32 = 13;

/// See [`WIDE_RADIX_BITS`].
const WIDE_MIN: usize = 1 << 15;

/// The indices of the live (not cancelled) entries of `due` in `(key, seq)` order (the second
/// of each pair), and whether any due entry still holds its slot with a handle cancelled
/// through itself (those slots are left for the caller to free).
///
/// An LSD radix sort of the deadlines relative to the earliest one, a pass per 11 bits of
/// their spread (13 bits for large sorts: two passes for 200,000 timers over 50 ms), then the
/// rare runs of equal deadlines put in sequence order. Only indices and keys move, never the
/// entries. Spreads that would take more than four 11-bit passes are compared instead.
fn run_order<'a>(
    due: &[Entry],
    slab: &Slab,
    exposed: bool,
    scratch: &'a mut Vec<(u64, usize)>,
) -> (&'a [(u64, usize)], bool) {
    scratch.clear();
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    let mut stale = false;
    for (i, e) in due.iter().enumerate() {
        if let Some(h) = slab.get(e.slot, e.seq) {
            if exposed && h.cancelled() {
                stale = true;
            } else {
                min = min.min(e.key);
                max = max.max(e.key);
                scratch.push((e.key as u64, i));
            }
        }
    }
    let n = scratch.len();
    if n == 0 {
        return (scratch, stale);
    }
    let spread = max.wrapping_sub(min) as u64;
    let bits = u64::BITS - spread.leading_zeros();
    if bits > 4 * RADIX_BITS {
        scratch.sort_unstable_by_key(|&(_, i)| due[i].order());
        return (scratch, stale);
    }
    for x in scratch.iter_mut() {
        x.0 = x.0.wrapping_sub(min as u64);
    }
    scratch.resize(2 * n, (0, 0));
    let (mut a, mut b) = scratch.split_at_mut(n);
    let digit = if n >= WIDE_MIN {
        WIDE_RADIX_BITS
    } else {
        RADIX_BITS
    };
    let mask = (1u64 << digit) - 1;
    // On the stack (32 KiB): an allocation here would make the allocator consolidate the
    // small blocks freed since the last burst.
    let mut table = [0u32; 1 << WIDE_RADIX_BITS];
    let pos = &mut table[..1 << digit];
    let mut shift = 0;
    while shift < bits {
        pos.fill(0);
        for x in a.iter() {
            pos[((x.0 >> shift) & mask) as usize] += 1;
        }
        let mut sum = 0;
        for p in pos.iter_mut() {
            let c = *p;
            *p = sum;
            sum += c;
        }
        for x in a.iter() {
            let d = ((x.0 >> shift) & mask) as usize;
            b[pos[d] as usize] = *x;
            pos[d] += 1;
        }
        std::mem::swap(&mut a, &mut b);
        shift += digit;
    }
    // Equal deadlines run in scheduling order: find each run of equal keys (rare) and sort it.
    let mut start = 0;
    while let Some(p) = a[start..].windows(2).position(|w| w[0].0 == w[1].0) {
        let i = start + p;
        let key = a[i].0;
        let j = i + a[i..].iter().take_while(|x| x.0 == key).count();
        a[i..j].sort_unstable_by_key(|x| due[x.1].seq);
        start = j;
    }
    (a, stale)
}

/// The timer state of one loop; registered with the loop as its timer [`Source`].
pub(crate) struct Timers {
    /// The heap.
    heap: RefCell<BinaryHeap<Entry>>,
    /// The handles of the timers in the heap.
    slab: RefCell<Slab>,
    /// Cancelled entries still in the heap that were counted (cancelled through a
    /// `TimerHandle` while in the heap).
    cancelled: Cell<usize>,
    /// Bulk clean-ups so far.
    cleanups: Cell<u64>,
    /// The clock-resolution fudge, in nanoseconds (TIMER-11).
    resolution_ns: Cell<i64>,
    /// The cutoff of the last dispatch: everything below it was moved out (monotonic).
    last_cutoff: Cell<i64>,
    /// Set by `close`.
    closed: Cell<bool>,
    /// Set once a `TimerHandle` of this queue gave out its inner `Handle`
    /// ([`TimerHandle::handle`](crate::TimerHandle::handle)): only then can a timer be
    /// cancelled other than through its `TimerHandle`, and only then do the liveness checks
    /// ask the handles themselves (a dynamic call each) besides their slots.
    exposed: Cell<bool>,
    /// The sort buffer of [`Timers::dispatch_bulk`], kept between bursts like the heap's own
    /// capacity (at most 32 bytes per entry of the largest burst): a fresh allocation per
    /// burst would make the allocator consolidate every block freed since the last one.
    scratch: RefCell<Vec<(u64, usize)>>,
    /// The handles of the due timers of a dispatch, moved to the ready queue together; kept
    /// (empty) between dispatches like the heap's capacity.
    due: RefCell<Vec<Handle>>,
    /// The clock epoch (copied here to keep the hot path off the `OnceLock`).
    pub(crate) epoch: Instant,
    /// The epoch as a direct clock reading, if known (see [`clock::epoch_ns`]).
    pub(crate) epoch_ns: Option<i64>,
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
                Some((last, t)) if *last == id => Some(t.clone()),
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(t) = cached {
            return t;
        }
        let t = Timers::lookup(lp);
        // Only an open loop's queue is cached: its `close` takes it out again. The old entry
        // is dropped after the borrow ends (its queue may be the last reference to it).
        if !lp.is_closed() {
            let old = LAST
                .try_with(|c| {
                    c.try_borrow_mut()
                        .ok()
                        .map(|mut c| c.replace((id, t.clone())))
                })
                .ok()
                .flatten();
            drop(old);
        }
        t
    }

    /// Takes this queue out of the thread's cache if it is there (at close).
    fn uncache(&self) {
        let old = LAST
            .try_with(|c| {
                let mut c = c.try_borrow_mut().ok()?;
                match &*c {
                    Some((_, t)) if std::ptr::eq(Rc::as_ptr(t), self) => c.take(),
                    _ => None,
                }
            })
            .ok()
            .flatten();
        drop(old);
    }

    /// The timer queue of `lp` from the loop's extension slot.
    fn lookup(lp: &EventLoop) -> Rc<Timers> {
        lp.extension(|lp| {
            let t = Rc::new(Timers {
                heap: RefCell::new(BinaryHeap::new()),
                slab: RefCell::new(Slab {
                    slots: Vec::new(),
                    free: u32::MAX,
                }),
                cancelled: Cell::new(0),
                cleanups: Cell::new(0),
                resolution_ns: Cell::new(clock::duration_ns(clock::os_clock_resolution())),
                last_cutoff: Cell::new(i64::MIN),
                closed: Cell::new(false),
                exposed: Cell::new(false),
                scratch: RefCell::new(Vec::new()),
                due: RefCell::new(Vec::new()),
                epoch: clock::epoch(),
                epoch_ns: clock::epoch_ns(),
            });
            lp.add_source(t.clone());
            Slot(t)
        })
        .0
        .clone()
    }

    /// Pushes a timer; gives its slot.
    #[inline]
    pub(crate) fn push(&self, key: i64, seq: u64, handle: Handle) -> u32 {
        let slot = self.slab.borrow_mut().insert(seq, handle);
        self.heap.borrow_mut().push(Entry { key, seq, slot });
        slot
    }

    /// Takes timer `(slot, seq)` out of its slot if it is still in the heap, counting the
    /// cancellation (TIMER-16: only timers still in the heap count). Gives the slot's handle,
    /// to be dropped by the caller once it holds no borrow of the queue.
    #[inline]
    pub(crate) fn cancel(&self, slot: u32, seq: u64) -> Option<Handle> {
        let h = self.slab.borrow_mut().remove(slot, seq);
        if h.is_some() {
            self.cancelled.set(self.cancelled.get() + 1);
        }
        h
    }

    /// True once an inner `Handle` of this queue's timers was given out (see
    /// the `exposed` field).
    #[inline]
    pub(crate) fn exposed(&self) -> bool {
        self.exposed.get()
    }

    /// Notes that an inner `Handle` was given out: from now on the liveness checks also ask
    /// the handles whether they were cancelled.
    pub(crate) fn expose(&self) {
        self.exposed.set(true);
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
            // Cancelled handles hold no callback any more (it was dropped at cancel time), so
            // dropping them here runs no user code.
            let mut slab = self.slab.borrow_mut();
            let exposed = self.exposed.get();
            heap.retain(|e| {
                if slab.live(e, exposed) {
                    return true;
                }
                drop(slab.remove(e.slot, e.seq));
                false
            });
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
        // The entries stay in the heap's own buffer.
        let mut all = std::mem::take(heap).into_vec();
        // Split: the due entries to the front, in one pass.
        let mut due = 0;
        for i in 0..all.len() {
            if all[i].key < cutoff {
                if i != due {
                    all.swap(due, i);
                }
                due += 1;
            }
        }
        let mut scratch = self.scratch.borrow_mut();
        let mut slab = self.slab.borrow_mut();
        let mut due_hs = self.due.borrow_mut();
        let (order, stale) = run_order(&all[..due], &slab, self.exposed.get(), &mut scratch);
        due_hs.reserve(order.len());
        for _ in order.len()..due {
            self.uncount_cancel();
        }
        for &(_, i) in order {
            let e = &all[i];
            if let Some(h) = slab.remove(e.slot, e.seq) {
                due_hs.push(h);
            }
        }
        schedule_all(lp, &mut due_hs);
        // Dropping runs no user code: the ready queue now holds the live handles, and the
        // handles cancelled through themselves hold no callback any more (it was dropped at
        // cancel time). They are freed only now, after the ready queue has grown: freeing many
        // small blocks before a large allocation makes the allocator consolidate them all.
        if stale {
            for e in &all[..due] {
                drop(slab.remove(e.slot, e.seq));
            }
        }
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
            let mut slab = self.slab.borrow_mut();
            if !slab.live(&top, self.exposed.get()) {
                drop(slab.remove(top.slot, top.seq));
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
        self.maybe_cleanup();
        let mut heap = self.heap.borrow_mut();
        let mut popped = 0usize;
        loop {
            let Some(top) = heap.peek_mut() else {
                break;
            };
            let due = top.key < cutoff;
            let mut slab = self.slab.borrow_mut();
            if !slab.live(&top, self.exposed.get()) {
                // A cancelled head goes whether it is due or not (TIMER-15).
                drop(slab.remove(top.slot, top.seq));
                PeekMut::pop(top);
                self.uncount_cancel();
                if !due {
                    continue;
                }
            } else if due {
                let e = PeekMut::pop(top);
                if let Some(h) = slab.remove(e.slot, e.seq) {
                    self.due.borrow_mut().push(h);
                }
            } else {
                break;
            }
            drop(slab);
            // Due entries popped, cancelled ones included: they cost a pop all the same.
            popped += 1;
            if popped >= BULK_MIN_POPS
                && (popped * BULK_RATIO >= heap.len()
                    || (popped == BULK_MIN_POPS && bulk_due_by_sample(&heap, cutoff)))
            {
                // What was popped goes first: it is due earlier than the rest.
                schedule_all(lp, &mut self.due.borrow_mut());
                self.dispatch_bulk(&mut heap, lp, cutoff);
                return;
            }
        }
        schedule_all(lp, &mut self.due.borrow_mut());
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
        self.uncache();
        self.cancelled.set(0);
        // Take the entries out before dropping them: dropping a callback may run user code
        // (destructors of what it captured), which may call back into this queue.
        let heap = std::mem::take(&mut *self.heap.borrow_mut());
        let slab = std::mem::take(&mut self.slab.borrow_mut().slots);
        self.slab.borrow_mut().free = u32::MAX;
        drop(heap);
        drop(slab);
        drop(std::mem::take(&mut *self.scratch.borrow_mut()));
        drop(std::mem::take(&mut *self.due.borrow_mut()));
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use loop_core::EventLoop;

    use super::Timers;
    use crate::TimersExt;

    /// TIMER-08 and TIMER-16: cancelling through the `TimerHandle` gives the queue's reference
    /// to the callback back at once (its slot is free for the next timer), while the entry stays
    /// in the heap until it reaches the head or a bulk clean-up, counted as cancelled.
    #[test]
    fn timer_16_cancel_frees_the_slot_and_keeps_the_entry() {
        let lp = EventLoop::new().unwrap();
        let far = Duration::from_secs(60);
        let a = lp.call_later(far, |_| {}).unwrap();
        let b = lp.call_later(far, |_| {}).unwrap();
        let t = Timers::of(&lp);
        assert!(t.slab.borrow().get(a.slot, a.seq).is_some());
        a.cancel();
        assert!(t.slab.borrow().get(a.slot, a.seq).is_none());
        assert!(t.slab.borrow().get(b.slot, b.seq).is_some());
        assert_eq!(t.stats(), (2, 1, 0));
        // The next timer takes the freed slot; the old entry still knows it is dead.
        let c = lp.call_later(far, |_| {}).unwrap();
        assert_eq!(c.slot, a.slot);
        assert!(t.slab.borrow().get(a.slot, a.seq).is_none());
        assert!(t.slab.borrow().live(
            &super::Entry {
                key: c.key,
                seq: c.seq,
                slot: c.slot
            },
            true
        ));
        assert_eq!(t.stats(), (3, 1, 0));
        // A second cancel, or one after the timer left the heap, counts nothing.
        a.cancel();
        assert_eq!(t.stats(), (3, 1, 0));
        drop(t);
        lp.close().unwrap();
    }

    /// TIMER-02: the thread's cache of the last used queue keeps no queue past its loop: once
    /// the loop is closed, or dropped unclosed, its timer queue is gone.
    #[test]
    fn timer_02_a_closed_or_dropped_loop_leaves_no_timer_queue_behind() {
        let lp = EventLoop::new().unwrap();
        lp.call_later(Duration::from_secs(60), |_| {}).unwrap();
        let queue = Rc::downgrade(&Timers::of(&lp));
        lp.close().unwrap();
        assert!(queue.upgrade().is_none(), "closed: queue released");
        let lp = EventLoop::new().unwrap();
        lp.call_later(Duration::from_secs(60), |_| {}).unwrap();
        let queue = Rc::downgrade(&Timers::of(&lp));
        drop(lp);
        assert!(queue.upgrade().is_none(), "dropped: queue released");
    }
}
