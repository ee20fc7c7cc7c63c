//! The per-loop state every transport shares: the one set of live transports (closing the loop
//! closes each of them) and the read buffer.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use loop_core::EventLoop;

use super::hooks;

/// A transport in the live set.
pub trait Live: 'static {
    /// The loop is closing: release everything now (nothing can run any more, so no
    /// `connection_lost`).
    fn loop_closed(&self, lp: &EventLoop);

    /// The transport as `Any`, to find its concrete type again (a subprocess's exit watcher
    /// looks its transport up by key).
    fn into_any(self: Rc<Self>) -> Rc<dyn Any>;
}

/// The key of a transport in the live set: slot and generation, so a stale key never finds
/// a later transport in the same slot.
///
/// ```
/// let k = loop_transport::engine::LiveKey::from_raw(7);
/// assert_eq!(k.as_raw(), 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LiveKey(u64);

impl LiveKey {
    /// The key as a number (to send it to another thread).
    ///
    /// ```
    /// assert_eq!(loop_transport::engine::LiveKey::from_raw(1).as_raw(), 1);
    /// ```
    pub fn as_raw(self) -> u64 {
        self.0
    }

    /// The key of [`as_raw`](LiveKey::as_raw)'s number.
    ///
    /// ```
    /// let _ = loop_transport::engine::LiveKey::from_raw(0);
    /// ```
    pub fn from_raw(raw: u64) -> LiveKey {
        LiveKey(raw)
    }

    fn split(self) -> (usize, u32) {
        ((self.0 & 0xffff_ffff) as usize, (self.0 >> 32) as u32)
    }
}

/// One slot of the set.
struct Slot {
    /// Bumped each time the slot is freed.
    gen: u32,
    /// The transport.
    item: Option<Rc<dyn Live>>,
}

/// The live transports: a slab of strong references, from creation until teardown.
#[derive(Default)]
struct LiveSet {
    /// Slots.
    slots: Vec<Slot>,
    /// Free slot indexes.
    free: Vec<usize>,
}

/// Per-loop state shared by every transport of a loop.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let a = loop_transport::engine::Runtime::get(&lp);
/// let b = loop_transport::engine::Runtime::get(&lp);
/// assert!(std::rc::Rc::ptr_eq(&a, &b));
/// ```
#[derive(Default)]
pub struct Runtime {
    /// Live transports.
    live: RefCell<LiveSet>,
    /// The read buffer: reads happen one at a time, so one buffer serves every transport of
    /// the loop (borrowed while in use; a read nested in a protocol method gets a new one).
    read_buf: RefCell<Vec<u8>>,
}

impl Runtime {
    /// The runtime of `lp` (made on first use; closing the loop closes its transports).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(loop_transport::engine::Runtime::get(&lp).is_empty());
    /// ```
    pub fn get(lp: &EventLoop) -> Rc<Runtime> {
        hooks::per_loop(lp, Runtime::default, close_all)
    }

    /// Adds a live transport.
    pub fn add(&self, t: Rc<dyn Live>) -> LiveKey {
        let mut live = self.live.borrow_mut();
        let idx = match live.free.pop() {
            Some(i) => i,
            None => {
                live.slots.push(Slot { gen: 0, item: None });
                live.slots.len() - 1
            }
        };
        let slot = &mut live.slots[idx];
        slot.item = Some(t);
        LiveKey((u64::from(slot.gen) << 32) | idx as u64)
    }

    /// Removes a transport (at its teardown); nothing for a stale key.
    pub fn remove(&self, key: LiveKey) -> Option<Rc<dyn Live>> {
        let (idx, gen) = key.split();
        let item = {
            let mut live = self.live.borrow_mut();
            let slot = live.slots.get_mut(idx).filter(|s| s.gen == gen)?;
            let item = slot.item.take()?;
            slot.gen = slot.gen.wrapping_add(1);
            live.free.push(idx);
            item
        };
        Some(item)
    }

    /// The live transport of `key`.
    pub fn lookup(&self, key: LiveKey) -> Option<Rc<dyn Live>> {
        let (idx, gen) = key.split();
        let live = self.live.borrow();
        let slot = live.slots.get(idx).filter(|s| s.gen == gen)?;
        slot.item.clone()
    }

    /// True if no transport is live.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(loop_transport::engine::Runtime::get(&lp).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.live.borrow().slots.iter().all(|s| s.item.is_none())
    }

    /// Runs `read` with the shared read buffer, `len` bytes long, borrowed in place (no move
    /// in or out of the runtime). A read nested in a protocol method that runs meanwhile finds
    /// the buffer in use and gets a buffer of its own.
    #[inline]
    pub fn with_read_buf<R>(&self, len: usize, read: impl FnOnce(&mut [u8]) -> R) -> R {
        match self.read_buf.try_borrow_mut() {
            Ok(mut shared) => {
                if shared.len() < len {
                    grow(&mut shared, len);
                }
                read(&mut shared[..len])
            }
            Err(_) => with_nested_buf(len, read),
        }
    }
}

/// [`Runtime::with_read_buf`] nested in a read: `read` with a buffer of its own (rare; out of
/// line, so that the usual path keeps no state for a second buffer).
#[cold]
#[inline(never)]
fn with_nested_buf<R>(len: usize, read: impl FnOnce(&mut [u8]) -> R) -> R {
    read(&mut vec![0; len])
}

/// Grows the read buffer to `len` bytes (the first read, or a transport with a larger limit).
#[cold]
#[inline(never)]
fn grow(buf: &mut Vec<u8>, len: usize) {
    buf.resize(len, 0);
}

/// Loop close hook: every transport still live releases its resources.
fn close_all(lp: &EventLoop) {
    let rt = Runtime::get(lp);
    let open: Vec<Rc<dyn Live>> = {
        let mut live = rt.live.borrow_mut();
        let all = live
            .slots
            .iter_mut()
            .filter_map(|s| {
                let item = s.item.take()?;
                s.gen = s.gen.wrapping_add(1);
                Some(item)
            })
            .collect();
        live.slots.clear();
        live.free.clear();
        all
    };
    for t in open {
        t.loop_closed(lp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct T(Rc<Cell<u32>>);
    impl Live for T {
        fn loop_closed(&self, _: &EventLoop) {
            self.0.set(self.0.get() + 1);
        }
        fn into_any(self: Rc<Self>) -> Rc<dyn Any> {
            self
        }
    }

    #[test]
    fn stale_keys_find_nothing_and_close_reaches_every_live_transport() {
        let lp = EventLoop::new().unwrap();
        let rt = Runtime::get(&lp);
        let closed = Rc::new(Cell::new(0));
        let a = rt.add(Rc::new(T(closed.clone())));
        assert!(rt.remove(a).is_some());
        let b = rt.add(Rc::new(T(closed.clone())));
        assert_ne!(a, b, "the slot is reused with another generation");
        assert!(rt.lookup(a).is_none() && rt.remove(a).is_none());
        assert!(rt.lookup(b).is_some());
        let _c = rt.add(Rc::new(T(closed.clone())));
        lp.close().unwrap();
        assert_eq!(closed.get(), 2, "the removed one is not closed again");
        assert!(rt.is_empty());
    }
}
