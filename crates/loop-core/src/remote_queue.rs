//! The queue of work other threads hand to a loop: an intrusive, lock-free stack whose nodes
//! are the queued values themselves, taken by the loop's thread a whole batch at a time.
//!
//! Every value that goes through it (a `call_soon_threadsafe` callback, a task woken on another
//! thread, a stop request) is an `Arc` whose pointee holds a [`Link`]: the queue needs no
//! allocation of its own and no lock. A producer links the value in front of the current head
//! and publishes it with one compare-exchange on the head ([`Stack::push`]); the loop takes
//! everything at once with one swap of the head for null and reverses the list it got into
//! the order of the pushes ([`Stack::take`]), then walks it ([`Batch`]). Taking the whole list
//! at once is what the loop needs: a batch is what was queued when the loop looked, what is
//! queued while it runs waits for the next iteration, and a batch interrupted by a `Fatal`
//! puts exactly its unrun rest back. A producer never reads another node (it only stores the
//! head it saw into its own link), so a head that was taken, freed and reused at the same
//! address meanwhile (ABA) is still the right next node: the push needs only that the head did
//! not change between its load and its compare-exchange, which the compare-exchange checks.
//!
//! While queued, a value is kept alive by the reference its producer gave up in
//! [`Stack::push`] (as a raw pointer stored in its own link); the batch turns it back into an
//! `Arc`. A value can be in the queue only once at a time: [`Fresh`] proves that nobody else
//! holds the value being pushed (it is new, or its last other holder dropped it), so no one
//! else can have it queued. The link fields are only ever touched by the pushing thread before
//! its compare-exchange, then by the loop's thread after its swap: the compare-exchange
//! (release) and the swap (acquire) order the two.
//!
//! Its atomic and its cells come from [`crate::sync`]: under `RUSTFLAGS="--cfg loom"` the model
//! at the bottom runs this code against every interleaving of producers, the loop's thread, a
//! cancel racing the run, and the drop of a queue that still holds values; loom's cells fail
//! it if two threads ever reach a link at once.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib remote_queue::
//! ```
#![allow(unsafe_code)]

use std::any::Any;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::sync::{AtomicPtr, Ordering, UnsafeCell};

/// The part of a queued value the queue uses: the next value (towards older ones while in the
/// stack, towards newer ones once taken) and the value's own address, to rebuild its `Arc`.
pub(crate) struct Link<X: ?Sized> {
    /// The next link; null at the end. Written by the pushing thread before its
    /// compare-exchange, then only by the loop's thread once it took the value.
    next: UnsafeCell<*const Link<X>>,
    /// The value this link is in, as `Arc::into_raw` gave it; `Some` from the push on.
    this: UnsafeCell<Option<NonNull<X>>>,
}

// SAFETY: a link holds no value of its own, only addresses, and its fields are accessed only by
// the stack's code: by the one thread pushing the value it is in (which holds the only
// reference to that value, see `Fresh`), before the compare-exchange that publishes it, and by
// the loop's thread after the swap that took it (the swap acquires what the compare-exchange
// released). No two threads reach a link at once, so it may be sent and shared freely; the
// value it points to is `Send + Sync` wherever it is queued (`Stack` requires it).
unsafe impl<X: ?Sized> Send for Link<X> {}
// SAFETY: see `Send` above: shared references to a link give no access to its fields outside
// the stack's protocol.
unsafe impl<X: ?Sized> Sync for Link<X> {}

impl<X: ?Sized> Link<X> {
    /// A link that is in no queue.
    #[inline]
    pub(crate) fn new() -> Link<X> {
        Link {
            next: UnsafeCell::new(std::ptr::null()),
            this: UnsafeCell::new(None),
        }
    }
}

impl<X: ?Sized> Default for Link<X> {
    fn default() -> Self {
        Link::new()
    }
}

/// A value that can be queued in a `Stack<X>`: it names the [`Link`] inside it.
pub(crate) trait Linked<X: ?Sized> {
    /// The value's link. [`Stack::push`] checks that it lies within the value, so a wrong
    /// answer is caught (a panic) rather than trusted.
    fn link(&self) -> &Link<X>;
}

/// An `Arc` that nobody else holds: a new value, or one whose other holders all dropped it.
/// It cannot be in a queue (a queued value is held by the queue), so it may be pushed.
pub(crate) struct Fresh<S>(Arc<S>);

impl<S> Fresh<S> {
    /// A new value.
    #[inline]
    pub(crate) fn new(value: S) -> Fresh<S> {
        Fresh(Arc::new(value))
    }

    /// `a` if nobody else holds it; else `a` back. Everything its last other holder did before
    /// dropping it is visible here once this returns `Ok`.
    ///
    /// The check is two loads, not `Arc::get_mut`'s compare-exchange on the weak count: a
    /// strong count of one is `a` alone, and nobody else can raise it (that needs another
    /// `Arc` of the value), nor, with no `Weak` of it (a weak count of zero), upgrade to it. The
    /// count read is the one the last other holder's drop wrote, with a release decrement:
    /// the acquire fence after the load makes what that holder did happen before what the
    /// caller does next with the value, as `Arc::get_mut`'s acquire load would.
    #[inline]
    pub(crate) fn unique(a: Arc<S>) -> Result<Fresh<S>, Arc<S>> {
        if Arc::strong_count(&a) == 1 && Arc::weak_count(&a) == 0 {
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            Ok(Fresh(a))
        } else {
            Err(a)
        }
    }

    /// The value as a plain `Arc`, not to be pushed (it is no longer known to be unshared).
    #[inline]
    pub(crate) fn into_arc(self) -> Arc<S> {
        self.0
    }

    /// The value, to change before it is pushed.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut S {
        let p = Arc::as_ptr(&self.0) as *mut S;
        // SAFETY: `self.0` is the only `Arc` of the value (checked or made so by `new` and
        // `unique`; `Fresh` hands out no clone until it is pushed), no `Weak` of it exists
        // (`unique` checked that too; `new` makes none), everything earlier holders did
        // happens before this (`unique`'s acquire fence), and `&mut self` borrows it
        // exclusively: nothing else can reach the value while the reference lives.
        unsafe { &mut *p }
    }
}

/// A spent value kept for reuse, its type erased for the pool that keeps it. Keeping one is a
/// move of its pointer (the loop's side, the slower one, does that); getting it back as its
/// type asks the value for its type (one dynamic call, on the side that refills it). (Whether
/// anybody else still holds it is checked when it is refilled: [`Fresh::unique`].)
pub(crate) struct Spare(Arc<dyn Any + Send + Sync>);

impl Spare {
    /// Keeps `value` for reuse.
    #[inline]
    pub(crate) fn new<S: Any + Send + Sync>(value: Arc<S>) -> Spare {
        Spare(value)
    }

    /// The value as an `Arc<S>` if it is an `S`; else `self` back.
    #[inline]
    pub(crate) fn downcast<S: Any + Send + Sync>(self) -> Result<Arc<S>, Spare> {
        self.0.downcast::<S>().map_err(Spare)
    }
}

/// What may be queued: a value that, as an `Arc<Self>`, can be turned into the queue's
/// (type-erased) `Arc<X>` of the same value.
pub(crate) trait IntoNode<X: ?Sized> {
    /// `self` as the queue's item type (an unsizing coercion).
    fn into_node(self: Arc<Self>) -> Arc<X>;
}

/// A multi-producer, single-consumer queue of `Arc<X>` with the links inside the values.
pub(crate) struct Stack<X: ?Sized> {
    /// The most recently pushed link; null when empty.
    head: AtomicPtr<Link<X>>,
    /// The stack owns the values queued in it.
    owns: PhantomData<Arc<X>>,
}

// A panic cannot leave the queue half-changed (a push is one compare-exchange, a take one swap),
// and it hands its values out only by value: like a mutex, it may be used across
// `catch_unwind` whatever it holds (so `Remote` stays unwind-safe).
impl<X: ?Sized> std::panic::UnwindSafe for Stack<X> {}
impl<X: ?Sized> std::panic::RefUnwindSafe for Stack<X> {}

impl<X: ?Sized> Stack<X> {
    /// An empty queue.
    pub(crate) fn new() -> Stack<X> {
        Stack {
            head: AtomicPtr::new(std::ptr::null_mut()),
            owns: PhantomData,
        }
    }

    /// Queues `node`, behind everything pushed before it; returns another reference to the
    /// value (the caller's handle). Any thread. The compare-exchange that publishes the value
    /// is sequentially consistent, as the wake-up protocol ([`crate::wake`]) needs.
    #[inline]
    pub(crate) fn push<S: IntoNode<X> + Linked<X>>(&self, node: Fresh<S>) -> Arc<S> {
        let handle = node.0.clone();
        let at = Arc::as_ptr(&node.0);
        // The link, found through the concrete type (no dynamic call), and checked to lie
        // within the value: `link` is safe code, so its answer is checked, not trusted.
        let link: *const Link<X> = node.0.link();
        // (As an offset from the value's start, which the compiler folds to a constant.)
        let offset = (link as usize).wrapping_sub(at as usize);
        assert!(
            std::mem::size_of::<Link<X>>() <= std::mem::size_of::<S>()
                && offset <= std::mem::size_of::<S>() - std::mem::size_of::<Link<X>>(),
            "a value's link must lie within it"
        );
        let erased: Arc<X> = node.0.into_node();
        // The value that was checked to be held by nobody else, and nothing else: `into_node`
        // is safe code too.
        assert!(
            std::ptr::eq(Arc::as_ptr(&erased) as *const (), at as *const ()),
            "into_node must return the same value"
        );
        // Owned by the queue from here on, as the raw pointer in the link (`into_raw` keeps
        // the count).
        let this = NonNull::new(Arc::into_raw(erased) as *mut X).expect("an Arc is not null");
        // SAFETY: `link` lies within the value (checked above), which lives at least as long
        // as the reference just given to the queue. The value was held only by `node` and
        // `handle` when this call began (`Fresh`), so it is in no queue and no other thread
        // touches its link until the compare-exchange below publishes it: this thread's
        // accesses here are exclusive.
        unsafe { (*link).this.with_mut(|t| *t = Some(this)) };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: as above: the link is not published yet.
            unsafe { (*link).next.with_mut(|n| *n = head) };
            match self.head.compare_exchange_weak(
                head,
                link as *mut Link<X>,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return handle,
                Err(now) => head = now,
            }
        }
    }

    /// True if nothing is queued (as `ordering` loads the head).
    #[inline]
    pub(crate) fn is_empty(&self, ordering: Ordering) -> bool {
        self.head.load(ordering).is_null()
    }

    /// Takes everything queued now, oldest first. Meant for the loop's thread, but sound from
    /// any: the swap hands each link to exactly one batch, which owns it until it gives the
    /// value back.
    #[inline]
    pub(crate) fn take(&self) -> Batch<X> {
        let mut p: *const Link<X> = self.head.swap(std::ptr::null_mut(), Ordering::SeqCst);
        let mut prev: *const Link<X> = std::ptr::null();
        let mut len = 0;
        while !p.is_null() {
            // SAFETY: `p` was published by a push whose compare-exchange this swap (or, for
            // older links, the chain of compare-exchanges it read from) synchronises with, and
            // its value stays alive, held by the queue, until the batch gives it back. The swap
            // took it out of the stack: no producer touches it any more, and no other swap can
            // return it (each swap returns what was pushed since the previous one), so the
            // access is exclusive.
            let next = unsafe { (*p).next.with_mut(|n| std::mem::replace(&mut *n, prev)) };
            prev = p;
            p = next;
            len += 1;
        }
        Batch {
            first: prev,
            len,
            owns: PhantomData,
        }
    }
}

impl<X: ?Sized> Drop for Stack<X> {
    fn drop(&mut self) {
        // Values still queued are dropped with the queue (taking needs `X: Linked`, which a
        // `Drop` impl cannot require; the walk needs nothing of it).
        let mut p: *const Link<X> = self.head.swap(std::ptr::null_mut(), Ordering::SeqCst);
        while !p.is_null() {
            // SAFETY: as in `take`: `&mut self` excludes every other access, each link's value
            // is alive and owned by the queue, and is given back (dropped) once, after its link
            // was read for the last time.
            unsafe {
                let next = (*p).next.with_mut(|n| *n);
                drop(give_back(p));
                p = next;
            }
        }
    }
}

/// The `Arc` a queued link's value was pushed as.
///
/// # Safety
///
/// `p` is the link of a value the caller took out of a stack and owns as queued; it gives it
/// back once, and touches the link no more afterwards.
#[inline]
unsafe fn give_back<X: ?Sized>(p: *const Link<X>) -> Arc<X> {
    // SAFETY: the caller owns the link (see above), so reading it is exclusive.
    let this = unsafe { (*p).this.with_mut(|t| *t) };
    let this = this.expect("a queued link knows its value");
    // SAFETY: `this` came from `Arc::into_raw` of this very value in `push`, whose reference
    // the queue has held since; it is given back once (the caller's promise).
    unsafe { Arc::from_raw(this.as_ptr()) }
}

/// A batch taken from a [`Stack`], oldest first; what is not taken from it is dropped with it.
/// Knows its length.
pub(crate) struct Batch<X: ?Sized> {
    /// The next value's link; null at the end.
    first: *const Link<X>,
    /// How many values are left.
    len: usize,
    /// The batch owns the values left in it.
    owns: PhantomData<Arc<X>>,
}

impl<X: ?Sized> Iterator for Batch<X> {
    type Item = Arc<X>;

    #[inline]
    fn next(&mut self) -> Option<Arc<X>> {
        if self.first.is_null() {
            return None;
        }
        let p = self.first;
        // SAFETY: the batch owns every link from `first` on (`Stack::take` reversed them after
        // taking them out of the stack); this reads the link before giving its value back, and
        // the batch does not reach it again.
        unsafe {
            self.first = (*p).next.with_mut(|n| *n);
            self.len -= 1;
            Some(give_back(p))
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<X: ?Sized> ExactSizeIterator for Batch<X> {}

impl<X: ?Sized> Drop for Batch<X> {
    fn drop(&mut self) {
        for v in self.by_ref() {
            drop(v);
        }
    }
}

/// The queue under every interleaving (loom, up to three preemptions): producers pushing while
/// the loop's thread takes batches, a cancel racing the run, and a queue dropped with values in
/// it. Each value carries a drop counter: every value is run or dropped exactly once (no leak,
/// no double free), in the order each producer pushed; loom's cells fail the model if two
/// threads ever reach a link at once.
///
/// ```text
/// RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib remote_queue::
/// ```
#[cfg(all(test, loom))]
mod model {
    use loom::sync::atomic::AtomicUsize;

    use super::*;
    use crate::remote_cell::TakeOnce;

    /// A queued value: who pushed it, its number, a closure stand-in that a run and a cancel
    /// race for, and counters of runs and drops.
    struct Node {
        link: Link<Node>,
        producer: usize,
        n: usize,
        f: TakeOnce<usize>,
        drops: Arc<AtomicUsize>,
    }

    impl Linked<Node> for Node {
        fn link(&self) -> &Link<Node> {
            &self.link
        }
    }

    impl IntoNode<Node> for Node {
        fn into_node(self: Arc<Self>) -> Arc<Node> {
            self
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn node(producer: usize, n: usize, drops: &Arc<AtomicUsize>) -> Fresh<Node> {
        Fresh::new(Node {
            link: Link::new(),
            producer,
            n,
            f: TakeOnce::new(n),
            drops: drops.clone(),
        })
    }

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b
    }

    /// Two producers push (`per` values each) while the consumer takes batches until it has
    /// them all: each value comes out once, each producer's in the order it pushed them, and
    /// every value is dropped once by the end.
    fn producers_and_consumer(per: [usize; 2]) {
        builder().check(move || {
            let stack = Arc::new(Stack::<Node>::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let mut threads = Vec::new();
            for (p, &count) in per.iter().enumerate() {
                let (stack, drops) = (stack.clone(), drops.clone());
                threads.push(loom::thread::spawn(move || {
                    for n in 0..count {
                        drop(stack.push(node(p, n, &drops)));
                    }
                }));
            }
            let total: usize = per.iter().sum();
            let mut next = [0usize; 2];
            let mut got = 0;
            while got < total {
                let batch = stack.take();
                if batch.len() == 0 {
                    loom::thread::yield_now();
                    continue;
                }
                for v in batch {
                    assert_eq!(v.n, next[v.producer], "a producer's values in push order");
                    next[v.producer] += 1;
                    got += 1;
                }
            }
            for t in threads {
                t.join().unwrap();
            }
            assert!(stack.is_empty(Ordering::SeqCst));
            assert_eq!(
                drops.load(Ordering::SeqCst),
                total,
                "each value dropped once"
            );
        });
    }

    #[test]
    fn core_19_loom_queue_two_producers_one_value_each() {
        producers_and_consumer([1, 1]);
    }

    #[test]
    fn core_19_loom_queue_two_producers_in_order() {
        producers_and_consumer([2, 1]);
    }

    /// A producer keeps a handle and cancels while the consumer runs the value from its batch:
    /// exactly one of them takes the closure, and the value is dropped once, after both let go.
    #[test]
    fn core_19_loom_queue_cancel_races_the_run() {
        builder().check(|| {
            let stack = Arc::new(Stack::<Node>::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let (s, d) = (stack.clone(), drops.clone());
            let producer = loom::thread::spawn(move || {
                let handle = s.push(node(0, 7, &d));
                handle.f.cancel()
            });
            let mut ran = None;
            while ran.is_none() {
                let mut batch = stack.take();
                match batch.next() {
                    Some(v) => ran = Some(v.f.start().is_some()),
                    None => loom::thread::yield_now(),
                }
                assert!(batch.next().is_none());
            }
            let cancelled = producer.join().unwrap();
            assert!(
                ran.unwrap() != cancelled,
                "exactly one of the run and the cancel"
            );
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    /// The queue (the loop) goes away while a producer pushes: what was queued is dropped with
    /// it, what is pushed before is taken or dropped, nothing twice, nothing leaked.
    #[test]
    fn core_19_loom_queue_dropped_with_values_queued() {
        builder().check(|| {
            let stack = Arc::new(Stack::<Node>::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let (s, d) = (stack.clone(), drops.clone());
            let producer = loom::thread::spawn(move || {
                drop(s.push(node(0, 0, &d)));
                drop(s.push(node(0, 1, &d)));
            });
            // The loop takes one batch (possibly empty, possibly partial), runs part of it,
            // and drops the rest and the queue.
            let mut batch = stack.take();
            let first = batch.next();
            if let Some(v) = &first {
                assert_eq!(v.n, 0);
            }
            drop(first);
            drop(batch);
            producer.join().unwrap();
            drop(stack);
            assert_eq!(drops.load(Ordering::SeqCst), 2, "each value dropped once");
        });
    }
}
