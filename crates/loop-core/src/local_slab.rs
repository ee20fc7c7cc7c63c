//! Slabs of `call_soon` callbacks: one per closure type, owned by the loop, so that scheduling a
//! callback writes a slot of a vector that grows in bulk instead of allocating a handle.
//!
//! `call_soon` takes a slot when other work is queued already (a burst: many callbacks alive at
//! once); a callback scheduled into an empty ready queue (a chain, each callback scheduling the
//! next) takes the loop's spare allocation or one of its own instead (see `handle.rs`).
//!
//! A slot holds the closure, its context, where it was scheduled, the cancel flag and the
//! number of its entries in the ready queue; it is freed when that reaches zero (the callback
//! ran, or `close()` dropped it). [`Handle`](crate::Handle)s are counted per slab (its
//! reference count): a freed slot is reused only while no handle of the slab is left, so a
//! handle answers `cancelled()` and `location()` for its own callback for as long as it lives,
//! and its `cancel()` never reaches another callback. A slab of at least [`KEEP`] slots whose
//! freed slots are held back by handles takes no more callbacks: a fresh slab of the type
//! does, and the old one is left to its handles and queue entries.
//!
//! A closure is never called or dropped while its slab is borrowed: it is moved out first, so
//! that it may schedule onto its own slab, cancel or drop handles of it.
//!
//! **Shrinking.** When the last live slot of a slab is freed and the slab holds more than
//! [`KEEP`] slots, it drops them all and keeps room for `KEEP`: a burst of callbacks does not
//! keep its peak's memory, and bursts up to `KEEP` never reallocate.
//!
//! The loop finds the slab of a closure type through a one-entry cache (the slab used last),
//! then a short list of the others it used recently ([`OTHERS`] of them).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::panic::Location;
use std::rc::Rc;

use crate::context::{self, Snapshot};
use crate::work::Callback;
use crate::work::RunSlot;

/// A slab keeps room for this many slots when it empties (see the module's doc).
pub(crate) const KEEP: usize = 256;

/// How many slabs besides the last one used the loop keeps at hand.
const OTHERS: usize = 8;

/// The end of the free list.
const NONE: u32 = u32::MAX;

/// One callback.
struct Entry<F> {
    /// The closure; `None` once run, cancelled or discarded.
    f: Option<F>,
    /// The context captured when it was scheduled.
    ctx: Snapshot,
    /// Where it was scheduled.
    loc: &'static Location<'static>,
    /// Its entries in the ready queue; 0: free (on the free list).
    queued: u32,
    /// The next free slot, while this one is free.
    next_free: u32,
    /// Set by `cancel`.
    cancelled: bool,
}

/// The callbacks of one closure type.
pub(crate) struct Slab<L, F> {
    /// The loop type the closures take.
    _loop: PhantomData<fn(&L)>,
    /// The slots, live and free.
    slots: RefCell<Vec<Entry<F>>>,
    /// The first free slot.
    free: Cell<u32>,
    /// Ready-queue entries of all slots: each holds a reference to the slab, as each handle
    /// does, so the slab's strong count tells whether any handle is left.
    entries: Cell<u32>,
    /// The loop's [`Slabs`] hold it (two references).
    cached: Cell<bool>,
}

impl<L: RunSlot + 'static, F: FnOnce(&L) + 'static> Slab<L, F> {
    /// An empty slab, held by the loop's cache.
    fn new() -> Slab<L, F> {
        Slab {
            _loop: PhantomData,
            slots: RefCell::new(Vec::new()),
            free: Cell::new(NONE),
            entries: Cell::new(0),
            cached: Cell::new(true),
        }
    }

    /// How many handles refer to this slab, given `held` references that are neither handles
    /// nor queue entries nor the cache's.
    #[inline]
    fn handles(self: &Rc<Self>, held: usize) -> usize {
        Rc::strong_count(self) - held - self.entries.get() as usize - 2 * self.cached.get() as usize
    }

    /// Stores `f`, scheduled at `loc` in the current context, with one queue entry; returns its
    /// slot, or `None` if this slab should not take more (see [`Slabs::insert`]). A free slot
    /// is reused only while no handle of this slab is left (a handle reads its slot's cancel
    /// flag and location for as long as it lives).
    #[inline]
    fn insert(self: &Rc<Self>, loc: &'static Location<'static>, f: F) -> Result<u32, F> {
        let mut s = self.slots.borrow_mut();
        let head = self.free.get();
        // The caller holds the cache's reference.
        if head != NONE && self.handles(0) == 0 {
            let e = &mut s[head as usize];
            self.free.set(e.next_free);
            // A free slot holds neither closure nor context (taken before it was freed): what
            // is replaced is `None`, which needs no drop, so the writes skip the drop checks.
            // Were it ever not `None`, forgetting it would leak it, never drop it inside this
            // borrow.
            std::mem::forget(e.f.replace(f));
            std::mem::forget(std::mem::replace(&mut e.ctx, context::snapshot()));
            e.loc = loc;
            e.queued = 1;
            e.cancelled = false;
            self.entries.set(self.entries.get() + 1);
            return Ok(head);
        }
        if head != NONE && s.len() >= KEEP {
            // Handles keep freed slots from reuse: a fresh slab rather than unbounded growth.
            return Err(f);
        }
        let idx = s.len();
        assert!(idx < NONE as usize, "more than 4 billion callbacks pending");
        s.push(Entry {
            f: Some(f),
            ctx: context::snapshot(),
            loc,
            queued: 1,
            next_free: NONE,
            cancelled: false,
        });
        self.entries.set(self.entries.get() + 1);
        Ok(idx as u32)
    }

    /// One queue entry of slot `idx` less (run or discarded; its closure and context taken
    /// out already): the last one frees the slot. `held`: references to the slab besides the
    /// handles, the queue entries and the cache's (the entry's own, given up after this).
    #[inline]
    fn unqueue(self: &Rc<Self>, s: &mut Vec<Entry<F>>, idx: u32) {
        let e = &mut s[idx as usize];
        e.queued -= 1;
        let entries = self.entries.get() - 1;
        self.entries.set(entries);
        if e.queued != 0 {
            return;
        }
        e.next_free = self.free.get();
        self.free.set(idx);
        // The entry's own reference is still held.
        if entries == 0 && s.len() > KEEP && self.handles(1) == 0 {
            self.shrink(s);
        }
    }

    /// The slab emptied with more than [`KEEP`] slots and no handle refers to it: drop them
    /// all (each free, so holding nothing), keep room for `KEEP`.
    #[cold]
    fn shrink(&self, s: &mut Vec<Entry<F>>) {
        s.clear();
        s.shrink_to(KEEP);
        self.free.set(NONE);
    }

    /// The number of slots, the room for them and the queue entries (tests).
    #[cfg(test)]
    fn size(&self) -> (usize, usize, u32) {
        let s = self.slots.borrow();
        (s.len(), s.capacity(), self.entries.get())
    }
}

impl<L: RunSlot + 'static, F: FnOnce(&L) + 'static> Callback<L> for Slab<L, F> {
    fn cancel(&self, slot: u32) {
        let f = {
            let mut s = self.slots.borrow_mut();
            let e = &mut s[slot as usize];
            e.cancelled = true;
            (e.f.take(), e.ctx.take())
        };
        drop(f);
    }

    fn is_cancelled(&self, slot: u32) -> bool {
        self.slots.borrow()[slot as usize].cancelled
    }

    fn location(&self, slot: u32) -> &'static Location<'static> {
        self.slots.borrow()[slot as usize].loc
    }

    fn run_now(&self, slot: u32, lp: &L) {
        let taken = {
            let mut s = self.slots.borrow_mut();
            let e = &mut s[slot as usize];
            match e.f.take() {
                Some(f) if !e.cancelled => Some((f, e.ctx.take())),
                _ => None,
            }
        };
        if let Some((f, ctx)) = taken {
            let prev = context::enter(ctx);
            let _back = Restore(Some(prev));
            f(lp);
        }
    }

    #[inline]
    fn run_queued(self: Rc<Self>, slot: u32, lp: &L) {
        // Everything is taken out and the queue entry given up in one borrow, before the
        // closure runs: it may schedule onto this slab (even into this very slot, if nothing
        // else refers to it), and a `Fatal` unwinding out of it leaves the slab consistent.
        let (f, ctx, loc) = {
            let mut s = self.slots.borrow_mut();
            let e = &mut s[slot as usize];
            let f = e.f.take();
            let ctx = e.ctx.take();
            let loc = e.loc;
            self.unqueue(&mut s, slot);
            (f, ctx, loc)
        };
        match f {
            Some(f) => lp.run_slot(loc, ctx, f),
            // Cancelled (or run through `Handle::run`): nothing to run, nothing held.
            None => drop(ctx),
        }
    }

    fn requeue(self: Rc<Self>, slot: u32) -> Option<Rc<dyn Callback<L>>> {
        {
            let mut s = self.slots.borrow_mut();
            let e = &mut s[slot as usize];
            // Run or cancelled, and freed: nothing to run again.
            if e.queued == 0 {
                return None;
            }
            e.queued += 1;
            self.entries.set(self.entries.get() + 1);
        }
        Some(self)
    }

    fn uncache(&self) {
        self.cached.set(false);
    }

    fn discard(self: Rc<Self>, slot: u32) {
        let f = {
            let mut s = self.slots.borrow_mut();
            let e = &mut s[slot as usize];
            let f = (e.f.take(), e.ctx.take());
            self.unqueue(&mut s, slot);
            f
        };
        drop(f);
    }
}

/// Makes a context current again when dropped (also by unwinding).
struct Restore(Option<Snapshot>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            context::enter(prev);
        }
    }
}

/// A slab as the loop keeps it: for finding it by type, and as a callback (two references).
type Kept<L> = (Rc<dyn Any>, Rc<dyn Callback<L>>);

/// The loop's slabs, by closure type.
pub(crate) struct Slabs<L> {
    /// The slab used last.
    last: Cell<Option<Kept<L>>>,
    /// Others used recently, the most recent last.
    others: RefCell<Vec<Kept<L>>>,
}

impl<L> Default for Slabs<L> {
    fn default() -> Self {
        Slabs {
            last: Cell::new(None),
            others: RefCell::new(Vec::new()),
        }
    }
}

impl<L: RunSlot + 'static> Slabs<L> {
    /// Stores `f`, scheduled at `loc`, in the slab of its type: the slab and the slot, with a
    /// queue entry (the caller queues it).
    #[inline]
    pub(crate) fn insert<F: FnOnce(&L) + 'static>(
        &self,
        loc: &'static Location<'static>,
        f: F,
    ) -> (Rc<dyn Callback<L>>, u32) {
        let (any, cb) = match self.last.take() {
            Some(kept) => kept,
            None => new_slab::<L, F>(),
        };
        let (any, cb, idx) = match any.downcast::<Slab<L, F>>() {
            Ok(slab) => match slab.insert(loc, f) {
                Ok(idx) => (slab as Rc<dyn Any>, cb, idx),
                Err(f) => self.fresh(slab, cb, loc, f),
            },
            Err(other) => self.switch((other, cb), loc, f),
        };
        let r = cb.clone();
        self.last.set(Some((any, cb)));
        (r, idx)
    }

    /// `slab` keeps its freed slots for its handles and is large: a new slab takes `f`, the
    /// old one is left to its handles and queue entries.
    #[cold]
    #[inline(never)]
    fn fresh<F: FnOnce(&L) + 'static>(
        &self,
        slab: Rc<Slab<L, F>>,
        cb: Rc<dyn Callback<L>>,
        loc: &'static Location<'static>,
        f: F,
    ) -> (Rc<dyn Any>, Rc<dyn Callback<L>>, u32) {
        slab.cached.set(false);
        drop((slab, cb));
        let (any, cb) = new_slab::<L, F>();
        let idx = insert_new::<L, F>(&any, loc, f);
        (any, cb, idx)
    }

    /// The slab of `F` when the last one used is of another type (`last`, kept among the
    /// others): one of the others, else a new one.
    #[cold]
    #[inline(never)]
    fn switch<F: FnOnce(&L) + 'static>(
        &self,
        last: Kept<L>,
        loc: &'static Location<'static>,
        f: F,
    ) -> (Rc<dyn Any>, Rc<dyn Callback<L>>, u32) {
        let mut others = self.others.borrow_mut();
        let found = others.iter().position(|s| s.0.is::<Slab<L, F>>());
        let kept = match found {
            Some(i) => others.remove(i),
            None => new_slab::<L, F>(),
        };
        others.push(last);
        let dropped = (others.len() > OTHERS).then(|| others.remove(0));
        drop(others);
        // A slab dropped here holds no closure (a live one is referred to by its queue
        // entries): this drops none.
        if let Some((_, cb)) = &dropped {
            cb.uncache();
        }
        drop(dropped);
        let (any, cb) = kept;
        let slab = match any.downcast::<Slab<L, F>>() {
            Ok(slab) => slab,
            Err(_) => unreachable!("found by its type"),
        };
        match slab.insert(loc, f) {
            Ok(idx) => (slab as Rc<dyn Any>, cb, idx),
            Err(f) => self.fresh(slab, cb, loc, f),
        }
    }

    /// Lets go of every slab (`close()`): those with handles stay with them.
    pub(crate) fn clear(&self) {
        let last = self.last.take();
        let others = std::mem::take(&mut *self.others.borrow_mut());
        for (_, cb) in last.iter().chain(&others) {
            cb.uncache();
        }
    }

    /// The number of slots, the room for them and the queue entries of the slab used last
    /// (tests).
    #[cfg(test)]
    pub(crate) fn last_size<F: FnOnce(&L) + 'static>(&self, _f: &F) -> (usize, usize, u32) {
        let last = self.last.take();
        let r = last
            .as_ref()
            .and_then(|a| a.0.downcast_ref::<Slab<L, F>>())
            .map(Slab::size)
            .unwrap_or_default();
        self.last.set(last);
        r
    }
}

/// A new slab of `F`, as the loop keeps it.
fn new_slab<L: RunSlot + 'static, F: FnOnce(&L) + 'static>() -> Kept<L> {
    let slab = Rc::new(Slab::<L, F>::new());
    (slab.clone(), slab)
}

/// Stores `f` in a new slab.
fn insert_new<L: RunSlot + 'static, F: FnOnce(&L) + 'static>(
    any: &Rc<dyn Any>,
    loc: &'static Location<'static>,
    f: F,
) -> u32 {
    match any
        .clone()
        .downcast::<Slab<L, F>>()
        .map(|s| s.insert(loc, f))
    {
        Ok(Ok(idx)) => idx,
        _ => unreachable!("a new slab of its type takes a callback"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::KEEP;
    use crate::{EventLoop, ExceptionContext};

    /// The messages the exception handler is given.
    fn record(lp: &EventLoop) -> Rc<RefCell<Vec<String>>> {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, c: &ExceptionContext| {
            s.borrow_mut().push(c.message.clone())
        })));
        seen
    }

    /// One iteration: what is queued now runs (CORE-05).
    fn run_once(lp: &EventLoop) {
        lp.stop();
        lp.run_forever().unwrap();
    }

    /// A callback counting its runs in `n`: every call gives the same closure type.
    fn counter(n: &Rc<Cell<u32>>) -> impl FnOnce(&EventLoop) + 'static {
        let n = n.clone();
        move |_| n.set(n.get() + 1)
    }

    /// CORE-21: a cancelled `call_soon` callback is skipped and its slot freed when its queue
    /// entry is; the slot is reused only once no handle of the slab is left, so a handle kept
    /// past the run still answers for its own callback, not for the next one in its slot.
    #[test]
    fn core_21_a_cancelled_slot_is_reused_once_no_handle_refers_to_it() {
        let lp = EventLoop::new().unwrap();
        let n = Rc::new(Cell::new(0));
        // The first of a burst may take the loop's spare allocation: the rest go to the slab.
        lp.call_soon(|_| {}).unwrap();
        let a = lp.call_soon(counter(&n)).unwrap();
        let b = lp.call_soon(counter(&n)).unwrap();
        assert_eq!(lp.inner.slabs.last_size(&counter(&n)).0, 2);
        a.cancel();
        run_once(&lp);
        assert_eq!(n.get(), 1, "the cancelled callback was skipped");
        // Both slots are free, but `a` and `b` still refer to them: a new slot.
        lp.call_soon(|_| {}).unwrap();
        let c = lp.call_soon(counter(&n)).unwrap();
        assert_eq!(lp.inner.slabs.last_size(&counter(&n)).0, 3);
        assert!(a.cancelled() && !b.cancelled() && !c.cancelled());
        assert_ne!(a.location(), c.location());
        assert!(!a.ptr_eq(&c));
        run_once(&lp);
        assert_eq!(n.get(), 2);
        // No handle left: the freed slots are reused.
        drop((a, b, c));
        lp.call_soon(|_| {}).unwrap();
        lp.call_soon(counter(&n)).unwrap();
        lp.call_soon(counter(&n)).unwrap();
        let (slots, _, queued) = lp.inner.slabs.last_size(&counter(&n));
        assert_eq!((slots, queued), (3, 2));
        run_once(&lp);
        assert_eq!(n.get(), 4);
        lp.close().unwrap();
    }

    /// A callback of one closure type logging `i` that schedules two more of its type, while
    /// `i < 16`, and cancels the first of them when `i` is odd.
    fn fan(log: Rc<RefCell<Vec<u32>>>, i: u32) -> impl FnOnce(&EventLoop) + 'static {
        move |lp| {
            log.borrow_mut().push(i);
            if i < 16 {
                let h = lp.call_soon(fan(log.clone(), 2 * i + 1)).unwrap();
                lp.call_soon(fan(log, 2 * i + 2)).unwrap();
                if i % 2 == 1 {
                    h.cancel();
                }
            }
        }
    }

    /// CORE-18 and CORE-21: callbacks that schedule onto the slab they run from (into the
    /// slots just freed) and cancel callbacks of it: each runs once, in the order scheduled,
    /// the cancelled ones never, and nothing is reported.
    #[test]
    fn core_18_callbacks_scheduling_onto_their_own_slab_run_once_in_order() {
        let lp = EventLoop::new().unwrap();
        let seen = record(&lp);
        let log = Rc::new(RefCell::new(Vec::new()));
        lp.call_soon(|_| {}).unwrap();
        lp.call_soon(fan(log.clone(), 0)).unwrap();
        for _ in 0..12 {
            run_once(&lp);
        }
        // The same FIFO, by hand.
        let mut want = Vec::new();
        let mut q = std::collections::VecDeque::from([0u32]);
        while let Some(i) = q.pop_front() {
            want.push(i);
            if i < 16 {
                if i % 2 == 0 {
                    q.push_back(2 * i + 1);
                }
                q.push_back(2 * i + 2);
            }
        }
        assert_eq!(*log.borrow(), want);
        assert!(seen.borrow().is_empty(), "reported: {:?}", seen.borrow());
        lp.close().unwrap();
    }

    /// CORE-15: `close()` drops the closures of a slab still waiting in the ready queue, also
    /// when handles keep the slab itself alive (a closure may hold its own handle: a cycle).
    #[test]
    fn core_15_close_drops_the_closures_waiting_in_a_slab() {
        let lp = EventLoop::new().unwrap();
        let token = Rc::new(());
        lp.call_soon(|_| {}).unwrap();
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let t = token.clone();
                lp.call_soon(move |_| drop(t)).unwrap()
            })
            .collect();
        assert_eq!(Rc::strong_count(&token), 4);
        lp.close().unwrap();
        assert_eq!(Rc::strong_count(&token), 1, "closures dropped at close");
        drop(hs);
    }

    /// CORE-18: a slab that empties with more than `KEEP` slots and no handle left drops
    /// them, keeping room for `KEEP`; one that handles still refer to keeps its slots.
    #[test]
    fn core_18_a_slab_that_empties_shrinks_to_room_for_keep_slots() {
        let lp = EventLoop::new().unwrap();
        let n = Rc::new(Cell::new(0));
        lp.call_soon(|_| {}).unwrap();
        for _ in 0..1000 {
            lp.call_soon(counter(&n)).unwrap();
        }
        assert_eq!(lp.inner.slabs.last_size(&counter(&n)).0, 1000);
        run_once(&lp);
        assert_eq!(n.get(), 1000);
        assert_eq!(lp.inner.slabs.last_size(&counter(&n)), (0, KEEP, 0));
        // Handles left: no shrink, until the last is gone and the slab empties again.
        lp.call_soon(|_| {}).unwrap();
        let hs: Vec<_> = (0..1000)
            .map(|_| lp.call_soon(counter(&n)).unwrap())
            .collect();
        run_once(&lp);
        assert_eq!(n.get(), 2000);
        assert_eq!(lp.inner.slabs.last_size(&counter(&n)).0, 1000);
        drop(hs);
        lp.call_soon(|_| {}).unwrap();
        lp.call_soon(counter(&n)).unwrap();
        assert_eq!(
            lp.inner.slabs.last_size(&counter(&n)).0,
            1000,
            "a freed slot reused"
        );
        run_once(&lp);
        assert_eq!(lp.inner.slabs.last_size(&counter(&n)), (0, KEEP, 0));
        lp.close().unwrap();
    }
}
