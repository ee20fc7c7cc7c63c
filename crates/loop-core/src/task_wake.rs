//! The cross-thread half of a task's wake-up: a wake from another thread queues the task's
//! next step on the loop's thread-safe queue, at most once until the loop takes it.
//!
//! A task's waker may be woken from any thread. On the loop's own thread it queues the step
//! directly (the task's `scheduled` flag, a plain `Cell`, keeps it queued once); elsewhere
//! [`RemoteWake::claim`] decides whether this wake must queue the task or one queued earlier
//! and not yet taken covers it, and the loop calls [`RemoteWake::taken`] before the step it
//! runs for such a wake. Both are read-modify-writes on one atomic, so either the wake comes
//! after `taken` in the atomic's order (it reads `false` and queues the task again) or before
//! it (then `taken` reads the `true` it wrote, so everything the waking thread did before the
//! wake is visible to the step that follows): no wake is lost.
//!
//! Written against [`crate::sync`], so that `RUSTFLAGS="--cfg loom"` checks this code itself
//! (the model at the bottom, run by `cargo xtask test`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loop-core --release --lib task_wake::
//! ```

use std::sync::Arc;

use crate::remote_queue::Fresh;
use crate::sync::{AtomicBool, Ordering};

/// A task's queued step, as the ready queue and the thread-safe queue hold it: the task's
/// index in its loop's table and its id (an index is reused by later tasks), and whether a
/// wake from another thread queued it.
/// Sixteen bytes, so that it does not make the ready queue's entries larger.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskKey {
    /// The task's id.
    pub(crate) id: u64,
    /// Index in the loop's task table.
    pub(crate) slot: u32,
    /// Queued by a wake from another thread.
    pub(crate) remote: bool,
}

impl TaskKey {
    /// The key of the task `id` at index `slot` of its loop's table, for a step queued on the
    /// loop's thread. (An index beyond `u32` — four billion pending tasks — maps to no task.)
    #[inline]
    pub(crate) fn local(id: u64, slot: usize) -> TaskKey {
        TaskKey {
            id,
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            remote: false,
        }
    }
}

/// What a task's wakers point at: the task's key and the loop's thread-safe part `S` (generic
/// so that this module, and the task table that keeps spent ones, do not name the loop). The
/// task module makes it a waker.
///
/// A task gets one at its first step and gives it back when it ends; one that nobody else
/// holds any more is reused by a later task of the same loop, so that a task costs one
/// allocation, its own.
pub(crate) struct TaskWaker<S> {
    /// The loop's thread-safe part.
    pub(crate) shared: Arc<S>,
    /// The task.
    pub(crate) key: TaskKey,
    /// A wake from another thread is queued and not yet taken by the loop.
    pub(crate) queued: RemoteWake,
}

/// How many spent task wakers a loop keeps.
const SPARE_WAKERS_MAX: usize = 64;

impl<S> TaskWaker<S> {
    /// A waker target for the task `key` of the loop whose thread-safe part is `shared`: a
    /// spent one from `spare` (the loop's pool: each points at this loop already) reused, or
    /// a new one.
    #[inline]
    pub(crate) fn get(
        spare: &mut Vec<Arc<TaskWaker<S>>>,
        shared: &Arc<S>,
        key: TaskKey,
    ) -> Arc<TaskWaker<S>> {
        // Unshared checked with two loads (`Fresh::unique`), not `Arc::get_mut`'s
        // compare-exchange: a locked instruction per task that waits for the stores before it.
        if let Some(Ok(mut w)) = spare.pop().map(Fresh::unique) {
            let m = w.get_mut();
            debug_assert!(Arc::ptr_eq(&m.shared, shared));
            m.key = key;
            m.queued.reset();
            return w.into_arc();
        }
        Arc::new(TaskWaker {
            shared: shared.clone(),
            key,
            queued: RemoteWake::new(),
        })
    }

    /// Keeps `w` in the loop's pool `spare` for a later task if nothing else holds it (no
    /// waker of it is left anywhere) and the pool is not full.
    #[inline]
    pub(crate) fn recycle(spare: &mut Vec<Arc<TaskWaker<S>>>, w: Arc<TaskWaker<S>>) {
        // One reference (ours) and no weak ones (none is ever made): nobody else can reach it.
        // `get` checks again, with `Fresh::unique`, before reusing it.
        if spare.len() < SPARE_WAKERS_MAX && Arc::strong_count(&w) == 1 {
            spare.push(w);
        }
    }
}

/// Whether a wake from another thread is queued and not yet taken by the loop.
pub(crate) struct RemoteWake(AtomicBool);

impl RemoteWake {
    /// Nothing queued.
    pub(crate) fn new() -> RemoteWake {
        RemoteWake(AtomicBool::new(false))
    }

    /// A wake from another thread: true if the caller must queue the task's step (no wake
    /// from another thread is queued and not yet taken).
    #[inline]
    pub(crate) fn claim(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// The loop took the queued wake and is about to run the step: a wake from now on queues
    /// the task again.
    #[inline]
    pub(crate) fn taken(&self) {
        self.0.swap(false, Ordering::AcqRel);
    }

    /// Back to "nothing queued", for a waker reused by another task (nobody else holds it).
    #[inline]
    pub(crate) fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// [`RemoteWake`] under every interleaving of one loop and one or two waking threads, with up
/// to three preemptions, by loom: every wake is seen by a step that runs after it (no wake is
/// lost), and the loop runs at most one step per wake.
///
/// `LOOM_MAX_PREEMPTIONS` bounds the thread switches loom tries per execution (3 when unset).
#[cfg(all(test, loom))]
mod model {
    use std::collections::VecDeque;

    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Mutex};

    use super::*;

    /// `wakers[i]` wakes by thread `i`; each wake first publishes an event (a relaxed
    /// increment: only the flag's synchronization makes it visible to the step).
    fn check(wakers: &'static [usize]) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(move || {
            let total: usize = wakers.iter().sum();
            let flag = Arc::new(RemoteWake::new());
            let queue = Arc::new(Mutex::new(VecDeque::new()));
            let events = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = wakers
                .iter()
                .map(|&n| {
                    let (flag, queue, events) = (flag.clone(), queue.clone(), events.clone());
                    loom::thread::spawn(move || {
                        for _ in 0..n {
                            events.fetch_add(1, Ordering::Relaxed);
                            if flag.claim() {
                                queue.lock().unwrap().push_back(());
                            }
                        }
                    })
                })
                .collect();
            // The loop: runs a step for each queued wake, while the wakers run and after.
            let (mut seen, mut steps) = (0, 0);
            let step = |seen: &mut usize, steps: &mut usize| {
                let e = queue.lock().unwrap().pop_front();
                e.map(|()| {
                    flag.taken();
                    *seen = events.load(Ordering::Relaxed);
                    *steps += 1;
                })
                .is_some()
            };
            step(&mut seen, &mut steps);
            for t in threads {
                t.join().unwrap();
            }
            while step(&mut seen, &mut steps) {}
            assert_eq!(seen, total, "the last step saw every wake (none was lost)");
            assert!(steps <= total, "at most one step per wake");
        });
    }

    #[test]
    fn core_19_loom_task_woken_once_from_another_thread() {
        check(&[1]);
    }

    #[test]
    fn core_19_loom_task_woken_twice_from_another_thread() {
        check(&[2]);
    }

    #[test]
    fn core_19_loom_task_woken_from_two_threads() {
        check(&[1, 1]);
        check(&[2, 1]);
    }
}
