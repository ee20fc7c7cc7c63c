//! The pool of spent `call_soon_threadsafe` allocations a loop keeps for reuse.
//!
//! A remote callback is allocated on the calling thread and released on the loop's. Left to the
//! allocator, every such pair takes its slow paths; keeping spent allocations (which hold no
//! closure any more) and refilling them on the next call avoids that. This module only keeps
//! and hands out type-erased allocations ([`Spare`]: keeping one moves a pointer; getting it
//! back as its type is one dynamic call, on the caller's side); [`handle`](crate::handle)
//! refills them.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::remote_queue::{Fresh, Spare};

/// How many bytes of spent remote callback allocations a loop keeps for reuse, on each side
/// ([`SpareRemote`] and [`SpentRemote`]).
const SPARE_REMOTE_BYTES: usize = 4 << 20;

/// How many bytes of spent allocations the loop collects before it hands them back as one
/// chunk, in the middle of a batch too: a producer that runs while the loop works through a
/// long batch finds them there, instead of allocating while they wait for the end of the
/// loop's iteration. Callers take a chunk at a time as well, so the pool's lock is taken once
/// per chunk on each side, and a chunk changes hands whole, without copying its pointers.
/// Counted in bytes, not allocations: small callbacks (a few dozen bytes each) go back a few
/// hundred at a time, so the lock is rare, while large ones go back after one or a few, so
/// that what waits on the loop's side stays small whatever their size.
const GIVE_BACK_BYTES: usize = 16 << 10;

/// The room a new chunk vector is made with: what [`GIVE_BACK_BYTES`] holds of the smallest
/// remote callbacks.
const CHUNK_CAPACITY: usize = 256;

/// How many emptied chunk vectors the pool keeps for the loop to fill again.
const EMPTY_CHUNKS: usize = 64;

/// A spent allocation: an `Arc<RemoteCb<F>>` that ran or was cancelled (its closure gone).
type SpentCb = Spare;

/// Spent remote callback allocations and their total size.
#[derive(Default)]
struct Kept {
    /// The allocations.
    cbs: Vec<SpentCb>,
    /// Their sizes, added up (as the loop keeps them: each size is a constant of its type).
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
/// spent allocation (its closure already gone; see [`SpentRemote`]) and hands it back here,
/// and the next `call_soon_threadsafe` with a closure of the same type fills it again if
/// nobody else holds it any more (its handle dropped). At most [`SPARE_REMOTE_BYTES`] are
/// kept; they hold no closure, so they keep nothing else alive.
#[derive(Default)]
pub(crate) struct SpareRemote {
    /// The chunks.
    chunks: Mutex<Chunks>,
    /// How many full chunks there are, as a hint read without the lock: a caller whose own
    /// chunk is empty takes the lock only when there is something to take.
    full: AtomicUsize,
}

/// The loop's side of [`SpareRemote`]: spent allocations collected without a lock, handed
/// back [`GIVE_BACK_BYTES`] at a time. Only whole chunks go back: handing back what was kept
/// at every batch cost a lock per batch on both sides when batches are small (a loop that
/// keeps up with its producers takes a few callbacks at a time), and callers then found
/// chunks of one or two; what is kept in between (less than [`GIVE_BACK_BYTES`]) waits for the
/// next callbacks to fill its chunk.
#[derive(Default)]
pub(crate) struct SpentRemote(RefCell<Kept>);

impl SpentRemote {
    /// Keeps `cb` for reuse, handing what was kept to `spare` every [`GIVE_BACK_BYTES`] of
    /// allocations. The loop's thread, after the callback ran or was skipped as cancelled.
    /// Nothing is checked here, so that the loop's side (the slower one: how fast callbacks
    /// go through) stays short: whether another holder (a kept handle) is left is checked by
    /// the caller that takes it ([`Fresh::unique`]), which then lets it go. Its size (a
    /// constant of its type) is added to the count that keeps the pool under
    /// [`SPARE_REMOTE_BYTES`].
    #[inline]
    pub(crate) fn keep<C: Any + Send + Sync>(&self, cb: Arc<C>, spare: &SpareRemote) {
        let mut spent = self.0.borrow_mut();
        spent.cbs.push(Spare::new(cb));
        spent.bytes += std::mem::size_of::<C>();
        if spent.bytes >= GIVE_BACK_BYTES {
            drop(spent);
            self.give_back(spare);
        }
    }

    /// Hands what was kept to `spare` as one chunk, if it has room; else it is freed. Once
    /// per chunk: out of line, so that `keep` stays short.
    #[inline(never)]
    fn give_back(&self, spare: &SpareRemote) {
        let mut spent = self.0.borrow_mut();
        if spent.cbs.is_empty() {
            return;
        }
        let mut to = spare.chunks.lock().unwrap_or_else(|e| e.into_inner());
        if to.bytes + spent.bytes <= SPARE_REMOTE_BYTES {
            to.bytes += spent.bytes;
            let empty = to
                .empty
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK_CAPACITY));
            let chunk = std::mem::replace(
                &mut *spent,
                Kept {
                    cbs: empty,
                    bytes: 0,
                },
            );
            to.full.push(chunk);
            spare.full.store(to.full.len(), Ordering::Relaxed);
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
    /// (one chunk, at most [`GIVE_BACK_BYTES`] and one allocation; freed when the thread
    /// ends). Any loop's do: they hold no closure and belong to no loop.
    static TAKEN: RefCell<Vec<SpentCb>> = const { RefCell::new(Vec::new()) };
}

impl SpareRemote {
    /// A kept allocation of type `C`, if the next one is of that type: from the calling
    /// thread's own chunk, which is refilled from this pool a whole chunk at a time, so that a
    /// thread making many calls locks the pool once per chunk, not once per call. One of
    /// another type is freed.
    #[inline]
    pub(crate) fn take<C: Any + Send + Sync>(&self) -> Option<Fresh<C>> {
        TAKEN
            .try_with(|taken| {
                let mut taken = taken.borrow_mut();
                let spare = match taken.pop() {
                    Some(spare) => spare,
                    None => {
                        if self.full.load(Ordering::Relaxed) == 0 {
                            return None;
                        }
                        self.take_chunk(&mut taken);
                        taken.pop()?
                    }
                };
                Fresh::unique(spare.downcast::<C>().ok()?).ok()
            })
            .ok()
            .flatten()
    }

    /// Replaces `to` (empty) with the most recent chunk, if there is one; `to` is kept for the
    /// loop's next chunk.
    #[cold]
    #[inline(never)]
    fn take_chunk(&self, to: &mut Vec<SpentCb>) {
        let mut from = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let Some(chunk) = from.full.pop() else {
            return;
        };
        self.full.store(from.full.len(), Ordering::Relaxed);
        from.bytes -= chunk.bytes;
        let emptied = std::mem::replace(to, chunk.cbs);
        if from.empty.len() < EMPTY_CHUNKS && emptied.capacity() > 0 {
            from.empty.push(emptied);
        }
    }
}
