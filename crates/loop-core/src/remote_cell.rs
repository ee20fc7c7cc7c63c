//! The closure of a `call_soon_threadsafe` callback and the state that decides who takes it.
//!
//! A remote callback is shared between the loop's thread, which runs it, and any thread holding
//! its handle, which may cancel it. Exactly one of the two may have the closure: the run takes it
//! to call it, a cancel takes it to drop it at once (asyncio releases a cancelled callback's
//! arguments at cancel time). [`TakeOnce`] is that rule: a state byte that leaves `PENDING`
//! once, by a compare-exchange, and the closure in a cell that only the thread whose
//! compare-exchange succeeded touches. No lock is taken on either side: the compare-exchange
//! is the only synchronisation the closure needs.
//!
//! Its atomic and its cell come from [`crate::sync`], so under `RUSTFLAGS="--cfg loom"` the
//! model at the bottom runs this code against every interleaving of a run, a cancel and a
//! reuse, and loom's cell checks that no two threads ever reach the closure at once:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib remote_cell::
//! ```
//!
//! This is the one module outside the OS bindings allowed `unsafe`: one `Sync` impl and one
//! block, each with its argument, checked by the model.
#![allow(unsafe_code)]

use crate::sync::{AtomicU8, Ordering, UnsafeCell};
use crate::work::PENDING;

/// The state of a remote callback that started (or ran); a cancel has no effect any more.
pub(crate) const RUNNING: u8 = 1;
/// The state of a remote callback whose cancel won; it never runs.
pub(crate) const CANCELLED: u8 = 2;

/// A closure that exactly one of a run and a cancel takes, from any threads.
pub(crate) struct TakeOnce<F> {
    /// `PENDING` while the closure is in `f`; `RUNNING` or `CANCELLED` once one side took it.
    /// Through a shared reference it only ever leaves `PENDING`, by a compare-exchange.
    state: AtomicU8,
    /// The closure: `Some` exactly while `state` is `PENDING`. Touched through a shared
    /// reference only by the thread whose compare-exchange moved `state` away from `PENDING`.
    f: UnsafeCell<Option<F>>,
}

// SAFETY: sharing a `TakeOnce` between threads is sound because the closure is never reached by
// two of them. Through `&self`, `f` is accessed only in `claim`, and only after that thread's
// compare-exchange moved `state` from `PENDING`. Nothing stores `PENDING` through `&self` (only
// `new` and `refill`, which own the value or hold it by `&mut`), so that compare-exchange
// succeeds once for the life of the value (or since the last `refill`): one thread, once, has
// the cell, and every other `claim` fails before touching it. What it reads was written by
// `new` or `refill` before the value was shared with other threads (the sharing itself, an
// `Arc` passed through the loop's queue or a handle sent to a thread, orders that write before
// any access from elsewhere), and the successful compare-exchange acquires `state`, whose
// modification order starts with that initial write. The closure is moved out and dropped or
// called on the claiming thread, which may not be the one that made it: hence `F: Send`. No
// `&F` is ever handed out, so `F: Sync` is not needed.
unsafe impl<F: Send> Sync for TakeOnce<F> {}

impl<F> TakeOnce<F> {
    /// A pending closure.
    #[inline]
    pub(crate) fn new(f: F) -> TakeOnce<F> {
        TakeOnce {
            state: AtomicU8::new(PENDING),
            f: UnsafeCell::new(Some(f)),
        }
    }

    /// Pending again with `f` (a spent allocation reused): exclusive access, nothing to
    /// synchronise.
    #[inline]
    pub(crate) fn refill(&mut self, f: F) {
        *self = TakeOnce::new(f);
    }

    /// Moves `state` from `PENDING` to `to` and takes the closure; `None` if the state had left
    /// `PENDING` already (the other side won, or this one ran before).
    #[inline]
    fn claim(&self, to: u8) -> Option<F> {
        if self
            .state
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        // SAFETY: this thread's compare-exchange moved `state` away from `PENDING`, which
        // happens once for the value (see the `Sync` impl): no other thread touches `f` now or
        // later through a shared reference, and `refill` needs `&mut`.
        self.f.with_mut(|f| unsafe { (*f).take() })
    }

    /// For the run: takes the closure unless a cancel won (or it ran already).
    #[inline]
    pub(crate) fn start(&self) -> Option<F> {
        self.claim(RUNNING)
    }

    /// Cancels unless the run started first; drops the closure at once. True if the cancel
    /// won.
    #[inline]
    pub(crate) fn cancel(&self) -> bool {
        let f = self.claim(CANCELLED);
        let won = f.is_some();
        drop(f);
        won
    }

    /// `PENDING`, `RUNNING` or `CANCELLED`.
    #[inline]
    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

/// `TakeOnce` under every interleaving (loom, up to three preemptions): a run on one thread and
/// a cancel on another take the closure once between them, and a spent value refilled through
/// `Arc::get_mut` and shared again behaves as new. loom's cell fails the model if two threads
/// ever reach the closure at once.
///
/// ```text
/// RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib remote_cell::
/// ```
#[cfg(all(test, loom))]
mod model {
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    use super::*;

    /// A closure stand-in that counts how often it was called and dropped.
    struct Probe {
        /// Calls and drops, shared with the model.
        counts: Arc<(AtomicUsize, AtomicUsize)>,
        /// Set once called: the drop then does not count as a drop of an uncalled closure.
        called: bool,
    }

    impl Probe {
        fn call(mut self) {
            self.called = true;
            self.counts.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            if !self.called {
                self.counts.1.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b
    }

    /// A run on one thread, a cancel on another: exactly one wins; the closure is called if
    /// and only if the run won, dropped uncalled if the cancel won, never both.
    #[test]
    fn core_19_loom_run_and_cancel_take_the_closure_once() {
        builder().check(|| {
            let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
            let cell = Arc::new(TakeOnce::new(Probe {
                counts: counts.clone(),
                called: false,
            }));
            let c = cell.clone();
            let canceller = loom::thread::spawn(move || c.cancel());
            let ran = match cell.start() {
                Some(f) => {
                    f.call();
                    true
                }
                None => false,
            };
            let cancelled = canceller.join().unwrap();
            assert!(
                ran != cancelled,
                "exactly one of the run and the cancel wins"
            );
            assert_eq!(counts.0.load(Ordering::SeqCst), usize::from(ran));
            assert_eq!(counts.1.load(Ordering::SeqCst), usize::from(cancelled));
            let want = if ran { RUNNING } else { CANCELLED };
            assert_eq!(cell.state(), want);
            // Later attempts find it taken.
            assert!(cell.start().is_none());
            assert!(!cell.cancel());
        });
    }

    /// Reuse: a value claimed on one thread, its last clone dropped there, is refilled through
    /// `Arc::get_mut` on another and shared again; the second run and a racing cancel again
    /// take the new closure once, and never the old one.
    #[test]
    fn core_19_loom_a_refilled_value_is_taken_once_again() {
        builder().check(|| {
            let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
            let probe = || Probe {
                counts: counts.clone(),
                called: false,
            };
            let cell = Arc::new(TakeOnce::new(probe()));
            let c = cell.clone();
            // The loop's thread runs the first closure and drops its reference.
            let first = loom::thread::spawn(move || {
                if let Some(f) = c.start() {
                    f.call();
                }
            });
            first.join().unwrap();
            let mut cell = cell;
            Arc::get_mut(&mut cell)
                .expect("nobody else holds it")
                .refill(probe());
            assert_eq!(cell.state(), PENDING);
            let c = cell.clone();
            let runner = loom::thread::spawn(move || match c.start() {
                Some(f) => {
                    f.call();
                    true
                }
                None => false,
            });
            let cancelled = cell.cancel();
            let ran = runner.join().unwrap();
            assert!(ran != cancelled);
            assert_eq!(counts.0.load(Ordering::SeqCst), 1 + usize::from(ran));
            assert_eq!(counts.1.load(Ordering::SeqCst), usize::from(cancelled));
        });
    }
}
