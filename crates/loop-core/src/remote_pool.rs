//! The pool of spent `call_soon_threadsafe` allocations a loop keeps for reuse.
//!
//! A remote callback is allocated on the calling thread and released on the loop's. Left to the
//! allocator, every such pair takes its slow paths; keeping spent allocations (which hold no
//! closure any more) and refilling them on the next call avoids that. This module only keeps
//! and hands out type-erased allocations; [`handle`](crate::handle) downcasts and refills them.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// How many bytes of spent remote callback allocations a loop keeps for reuse, on each side
/// ([`SpareRemote`] and [`SpentRemote`]).
const SPARE_REMOTE_BYTES: usize = 1 << 20;

/// How many spent allocations the loop collects before it hands them back as one chunk, in
/// the middle of a batch too: a producer that runs while the loop works through a long batch
/// finds them there, instead of allocating while they wait for the end of the loop's
/// iteration. Callers take a chunk at a time as well, so the pool's lock is taken once per
/// chunk on each side, and a chunk changes hands whole, without copying its pointers.
const GIVE_BACK_EVERY: usize = 64;

/// How many emptied chunk vectors the pool keeps for the loop to fill again.
const EMPTY_CHUNKS: usize = 64;

/// A spent allocation: an `Arc<RemoteCb<F>>` without closure, nobody else holding it.
type SpentCb = Arc<dyn Any + Send + Sync>;

/// Spent remote callback allocations and their total size.
#[derive(Default)]
struct Kept {
    /// The allocations.
    cbs: Vec<SpentCb>,
    /// Their sizes, added up.
    bytes: usize,
}

/// The chunks a loop's [`SpareRemote`] holds.
#[derive(Default)]
struct Chunks {
    /// Chunks of spent allocations, as the loop handed them back.
    full: Vec<Kept>,
    /// Their sizes, added up.
    bytes: usize,
    /// Vectors the callers emptied, for the loop's next chunk.
    empty: Vec<Vec<SpentCb>>,
}

/// Spent `call_soon_threadsafe` allocations of a loop, kept for the next ones.
///
/// A remote callback is allocated on the calling thread and, once it ran, released on the
/// loop's: left to the allocator, every call takes its slow paths (a thread's cache of freed
/// blocks fills on the loop's side and stays empty on the caller's). Instead the loop keeps a
/// spent allocation that nobody else holds (its handle dropped, its closure already gone; see
/// [`SpentRemote`]) and hands it back here, and the next `call_soon_threadsafe` with a closure
/// of the same type fills it again. At most [`SPARE_REMOTE_BYTES`] are kept; they hold no
/// closure, so they keep nothing else alive.
#[derive(Default)]
pub(crate) struct SpareRemote(Mutex<Chunks>);

/// The loop's side of [`SpareRemote`]: spent allocations collected without a lock, handed
/// back [`GIVE_BACK_EVERY`] at a time. Only whole chunks go back: handing back what was kept
/// at every batch cost a lock per batch on both sides when batches are small (a loop that
/// keeps up with its producers takes a few callbacks at a time), and callers then found
/// chunks of one or two; the fewer than [`GIVE_BACK_EVERY`] kept in between wait for the next
/// callbacks to fill their chunk.
#[derive(Default)]
pub(crate) struct SpentRemote(RefCell<Kept>);

impl SpentRemote {
    /// Keeps `cb` for reuse if nobody else holds it and there is room, handing what was
    /// kept to `spare` every [`GIVE_BACK_EVERY`] allocations. The loop's thread, after the
    /// callback ran or was skipped as cancelled.
    #[inline]
    pub(crate) fn keep<C: Any + Send + Sync>(&self, cb: Arc<C>, spare: &SpareRemote) {
        // No `Weak` of a remote callback is ever made: one strong reference is ownership.
        if Arc::strong_count(&cb) != 1 {
            return;
        }
        let size = std::mem::size_of::<C>();
        let mut spent = self.0.borrow_mut();
        if spent.bytes + size <= SPARE_REMOTE_BYTES {
            spent.bytes += size;
            spent.cbs.push(cb);
            if spent.cbs.len() >= GIVE_BACK_EVERY {
                drop(spent);
                self.give_back(spare);
            }
        }
    }

    /// Hands what was kept to `spare` as one chunk, if it has room; else it is freed.
    #[inline]
    fn give_back(&self, spare: &SpareRemote) {
        let mut spent = self.0.borrow_mut();
        if spent.cbs.is_empty() {
            return;
        }
        let mut to = spare.0.lock().unwrap_or_else(|e| e.into_inner());
        if to.bytes + spent.bytes <= SPARE_REMOTE_BYTES {
            to.bytes += spent.bytes;
            let empty = to
                .empty
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(GIVE_BACK_EVERY));
            let chunk = std::mem::replace(
                &mut *spent,
                Kept {
                    cbs: empty,
                    bytes: 0,
                },
            );
            to.full.push(chunk);
            return;
        }
        drop(to);
        // No room: freed, outside the lock.
        spent.cbs.clear();
        spent.bytes = 0;
    }
}

thread_local! {
    /// Kept allocations this thread took from a loop's [`SpareRemote`] and has not used yet
    /// (one chunk, at most [`GIVE_BACK_EVERY`]; freed when the thread ends). Any loop's do:
    /// they hold no closure and belong to no loop.
    static TAKEN: RefCell<Vec<SpentCb>> = const { RefCell::new(Vec::new()) };
}

impl SpareRemote {
    /// One kept allocation (of any closure type), if there is one: from the calling thread's
    /// own chunk, which is refilled from this pool a whole chunk at a time, so that a thread
    /// making many calls locks the pool once per chunk, not once per call.
    #[inline]
    pub(crate) fn take(&self) -> Option<SpentCb> {
        TAKEN
            .try_with(|taken| {
                let mut taken = taken.borrow_mut();
                if let Some(cb) = taken.pop() {
                    return Some(cb);
                }
                self.take_chunk(&mut taken);
                taken.pop()
            })
            .ok()
            .flatten()
    }

    /// Replaces `to` (empty) with the most recent chunk, if there is one; `to` is kept for the
    /// loop's next chunk.
    #[cold]
    #[inline(never)]
    fn take_chunk(&self, to: &mut Vec<SpentCb>) {
        let mut from = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(chunk) = from.full.pop() else {
            return;
        };
        from.bytes -= chunk.bytes;
        let emptied = std::mem::replace(to, chunk.cbs);
        if from.empty.len() < EMPTY_CHUNKS && emptied.capacity() > 0 {
            from.empty.push(emptied);
        }
    }
}
