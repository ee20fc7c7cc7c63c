//! The pool of spent `call_soon_threadsafe` allocations a loop keeps for reuse.
//!
//! A remote callback is allocated on the calling thread and released on the loop's. Left to the
//! allocator, every such pair takes its slow paths (a thread's cache of freed blocks fills on
//! the loop's side and stays empty on the caller's); keeping spent allocations (which hold no
//! closure any more) and refilling them on the next call avoids that.
//!
//! The pool is a second lock-free stack of the same kind as the loop's remote queue
//! ([`crate::remote_queue`]), whose nodes are the spent allocations themselves: the loop pushes
//! each one as it is done with it (one compare-exchange, no lock, nothing to allocate), and a
//! calling thread whose own supply ran out takes everything kept at once (one swap) into a
//! thread-local list, from which its next calls take one each without touching anything
//! shared. Nothing in the pool is ordered, so the list is not reversed. [`handle`](crate::handle)
//! refills what it takes.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::remote_queue::{Fresh, IntoNode, Linked, Stack, Unordered};
use crate::sync::Ordering;

/// How many bytes of spent remote callback allocations a loop keeps for reuse, at most (as the
/// loop counts them; see [`SpentRemote`]).
const SPARE_REMOTE_BYTES: usize = 4 << 20;

/// Spent `call_soon_threadsafe` allocations of a loop, kept for the next ones.
///
/// The loop keeps a spent allocation (its closure already gone; see [`SpentRemote`]) that
/// nobody else holds any more (its handle dropped) here, and the next `call_soon_threadsafe`
/// with a closure of the same type fills it again. They hold no closure, so they keep nothing
/// else alive; at most [`SPARE_REMOTE_BYTES`] are kept.
pub(crate) struct SpareRemote<X: ?Sized> {
    /// The spent allocations, each held by the stack alone.
    stack: Stack<X>,
}

impl<X: ?Sized> Default for SpareRemote<X> {
    fn default() -> Self {
        SpareRemote {
            stack: Stack::new(),
        }
    }
}

/// The loop's side of [`SpareRemote`]: how many bytes it kept there, at most. The loop cannot
/// see what callers took, so it counts what it pushed since it last found the pool empty
/// (callers take everything at once, so the pool is empty often): an over-estimate, which can
/// only make it keep less.
#[derive(Default)]
pub(crate) struct SpentRemote {
    /// Bytes pushed since the pool was last seen empty.
    bytes: Cell<usize>,
}

impl SpentRemote {
    /// Keeps `cb` for reuse if nobody else holds it (else its last holder frees it) and the
    /// pool has room (else it is freed here). The loop's thread, after the callback ran or was
    /// skipped as cancelled. The uniqueness check (`Arc::get_mut`'s) also makes everything a
    /// handle's holder did before dropping it visible here.
    #[inline]
    pub(crate) fn keep<X: ?Sized, C: IntoNode<X> + Linked<X>>(
        &self,
        cb: Arc<C>,
        spare: &SpareRemote<X>,
    ) {
        let Ok(cb) = Fresh::unique(cb) else {
            return;
        };
        let size = std::mem::size_of::<C>();
        let mut bytes = self.bytes.get() + size;
        if bytes > SPARE_REMOTE_BYTES {
            if !spare.stack.is_empty(Ordering::Relaxed) {
                // Full: freed here.
                return;
            }
            bytes = size;
        }
        if spare.stack.push_only(cb) {
            // The pool was empty: callers took all that was counted.
            bytes = size;
        }
        self.bytes.set(bytes);
    }
}

impl<X: ?Sized> SpareRemote<X> {
    /// A kept allocation of type `C`, if the next one is of that type: from the calling
    /// thread's own list `taken`, which is refilled from this pool with all it holds at once,
    /// so that a thread making many calls touches the pool once per refill, not once per call.
    /// `any` erases an item's type to `Any` (`Arc::downcast` then checks it). One of another
    /// type, or one that somebody else holds, is dropped.
    #[inline]
    pub(crate) fn take<C: Any + Send + Sync>(
        &self,
        taken: &RefCell<Unordered<X>>,
        any: impl FnOnce(Arc<X>) -> Arc<dyn Any + Send + Sync>,
    ) -> Option<Fresh<C>> {
        let mut taken = taken.try_borrow_mut().ok()?;
        let spare = match taken.next() {
            Some(spare) => spare,
            None => {
                if self.stack.is_empty(Ordering::Relaxed) {
                    return None;
                }
                *taken = self.stack.take_unordered();
                taken.next()?
            }
        };
        drop(taken);
        Fresh::unique(any(spare).downcast::<C>().ok()?).ok()
    }
}
