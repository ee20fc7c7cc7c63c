//! Where a transport keeps its protocol: taken out of its slot while one of its methods runs
//! (so that whatever the method calls on the transport never finds it borrowed, and no method
//! is ever re-entered), the notifications raised meanwhile, and the protocol's life after the
//! transport lets go of it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;

/// What a transport needs of the protocols it drives: their name, downcasting, and the
/// methods every protocol kind has.
pub trait EngineProtocol: 'static {
    /// What `connection_made` receives.
    type Handle;
    /// The protocol's type name, for reports.
    fn type_name(&self) -> &'static str;
    /// The protocol as its concrete type, to downcast.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// `connection_made(transport)`.
    fn connection_made(&mut self, transport: &Self::Handle);
    /// `pause_writing()`.
    fn pause_writing(&mut self);
    /// `resume_writing()`.
    fn resume_writing(&mut self);
    /// `connection_lost(exc)`.
    fn connection_lost(&mut self, exc: Option<io::Error>);
}

/// A notification for the protocol, delivered at once or, while one of its methods runs,
/// right after that method returns.
#[derive(Debug)]
pub enum Note<E> {
    /// `pause_writing()`.
    Pause,
    /// `resume_writing()`.
    Resume,
    /// A notification of the transport kind (`error_received`, a subprocess pipe event...).
    Event(E),
}

/// The slot.
struct Slot<B> {
    /// The protocol, when none of its methods runs.
    current: Option<B>,
    /// Set by `set_protocol` during a call; installed when the call returns.
    replacement: Option<B>,
    /// A method runs (`current` is `None` then).
    in_call: bool,
}

/// The protocol slot of a transport, its queue of notifications, and the count of
/// [`ProtocolRef`](crate::ProtocolRef)s that keep it alive after the transport let go of it.
///
/// ```
/// use loop_transport::engine::{EngineProtocol, ProtocolCell};
/// use std::any::Any;
/// struct P(u8);
/// impl EngineProtocol for P {
///     type Handle = ();
///     fn type_name(&self) -> &'static str { "P" }
///     fn as_any_mut(&mut self) -> &mut dyn Any { self }
///     fn connection_made(&mut self, _: &()) {}
///     fn pause_writing(&mut self) {}
///     fn resume_writing(&mut self) {}
///     fn connection_lost(&mut self, _: Option<std::io::Error>) {}
/// }
/// let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(1));
/// let p = cell.take().unwrap();
/// assert!(cell.in_call() && cell.take().is_none()); // never re-entered
/// assert_eq!(cell.type_name(), Some("P"));
/// cell.put_back(p);
/// assert!(!cell.in_call());
/// ```
pub struct ProtocolCell<B, N> {
    /// The slot.
    slot: RefCell<Slot<B>>,
    /// Type name of the protocol in the slot (or taken out for a call); kept here so that
    /// taking the protocol out costs no virtual call.
    name: Cell<Option<&'static str>>,
    /// Notifications raised while a method ran (or while held).
    notes: RefCell<VecDeque<N>>,
    /// `notes` is not empty (checked after every call without borrowing the queue).
    pending: Cell<bool>,
    /// Notifications wait until [`release`](ProtocolCell::release) (before `connection_made`).
    held: Cell<bool>,
    /// Live `ProtocolRef`s.
    refs: Cell<usize>,
    /// The transport let go of the protocol (teardown).
    detached: Cell<bool>,
}

impl<B: EngineProtocol, N> ProtocolCell<B, N> {
    /// A cell holding `protocol`.
    pub fn new(protocol: B) -> ProtocolCell<B, N> {
        ProtocolCell {
            name: Cell::new(Some(protocol.type_name())),
            slot: RefCell::new(Slot {
                current: Some(protocol),
                replacement: None,
                in_call: false,
            }),
            notes: RefCell::new(VecDeque::new()),
            pending: Cell::new(false),
            held: Cell::new(false),
            refs: Cell::new(0),
            detached: Cell::new(false),
        }
    }

    /// Takes the protocol out to call one of its methods: `None` while a method runs (never
    /// re-entered) or once it is gone. Put it back with [`put_back`](ProtocolCell::put_back).
    #[inline]
    pub fn take(&self) -> Option<B> {
        let mut slot = self.slot.borrow_mut();
        if slot.in_call {
            return None;
        }
        let p = slot.current.take()?;
        slot.in_call = true;
        Some(p)
    }

    /// Puts a taken-out protocol back: the replacement set meanwhile takes its place (the old
    /// one is dropped), and a protocol nobody holds any more (the transport let go of it and no
    /// `ProtocolRef` is left) is dropped.
    #[inline(always)]
    pub fn put_back(&self, p: B) {
        {
            let mut slot = self.slot.borrow_mut();
            // The usual case: nothing replaced or detached it meanwhile. The slot is empty
            // (the protocol was taken out of it), so the store drops nothing.
            if slot.replacement.is_none() && !self.detached.get() {
                slot.in_call = false;
                debug_assert!(slot.current.is_none());
                if let Some(old) = slot.current.replace(p) {
                    drop(slot);
                    drop(old);
                }
                return;
            }
        }
        self.put_back_slow(p);
    }

    /// [`put_back`](ProtocolCell::put_back) with a replacement or a detached cell.
    #[inline(never)]
    fn put_back_slow(&self, p: B) {
        let dropped = {
            let mut slot = self.slot.borrow_mut();
            slot.in_call = false;
            if let Some(new) = slot.replacement.take() {
                self.name.set(Some(new.type_name()));
                slot.current = Some(new);
                Some(p)
            } else if self.detached.get() && self.refs.get() == 0 {
                self.name.set(None);
                Some(p)
            } else {
                slot.current = Some(p);
                None
            }
        };
        drop(dropped);
    }

    /// Calls `f` with the protocol in its slot (`None` while a method runs, or once gone).
    #[inline]
    pub fn peek<R>(&self, f: impl FnOnce(&B) -> R) -> Option<R> {
        self.slot.borrow().current.as_ref().map(f)
    }

    /// A method of the protocol runs.
    #[inline]
    pub fn in_call(&self) -> bool {
        self.slot.borrow().in_call
    }

    /// Replaces the protocol (`set_protocol`): at once, or when the running method returns.
    /// After the transport let go, the new protocol is dropped.
    pub fn set(&self, protocol: B) {
        let old = {
            let mut slot = self.slot.borrow_mut();
            if self.detached.get() {
                Some(protocol)
            } else if slot.in_call {
                slot.replacement.replace(protocol)
            } else {
                self.name.set(Some(protocol.type_name()));
                slot.current.replace(protocol)
            }
        };
        drop(old);
    }

    /// The protocol's type name: while one of its methods runs, that protocol's (even if
    /// `set_protocol` was called meanwhile); `None` once it is gone.
    pub fn type_name(&self) -> Option<&'static str> {
        self.name.get()
    }

    /// The transport lets go of the protocol (teardown): it is dropped now, unless a
    /// `ProtocolRef` still holds it (then when the last one is dropped). Queued notifications
    /// are dropped.
    pub fn detach(&self) {
        self.detached.set(true);
        let dropped = {
            let mut slot = self.slot.borrow_mut();
            let replacement = slot.replacement.take();
            let current = if self.refs.get() == 0 {
                if !slot.in_call {
                    self.name.set(None);
                }
                slot.current.take()
            } else {
                None
            };
            (current, replacement)
        };
        self.pending.set(false);
        let notes = std::mem::take(&mut *self.notes.borrow_mut());
        drop(dropped);
        drop(notes);
    }

    /// The transport let go of the protocol.
    #[inline]
    pub fn is_detached(&self) -> bool {
        self.detached.get()
    }

    /// Notifications wait until [`release`](ProtocolCell::release).
    pub fn hold(&self) {
        self.held.set(true);
    }

    /// Notifications flow again (the caller delivers what waits).
    pub fn release(&self) {
        self.held.set(false);
    }

    /// Notifications are held.
    #[inline]
    pub fn is_held(&self) -> bool {
        self.held.get()
    }

    /// A notification can be delivered now: no method runs, nothing is held or queued.
    #[inline]
    pub fn is_quiet(&self) -> bool {
        !self.held.get() && !self.pending.get() && !self.in_call()
    }

    /// Notifications are queued and may be delivered (not held).
    #[inline]
    pub fn has_deliverable(&self) -> bool {
        self.pending.get() && !self.held.get()
    }

    /// Queues a notification.
    pub fn push_note(&self, note: N) {
        self.notes.borrow_mut().push_back(note);
        self.pending.set(true);
    }

    /// The next queued notification.
    pub fn pop_note(&self) -> Option<N> {
        let mut notes = self.notes.borrow_mut();
        let note = notes.pop_front();
        self.pending.set(!notes.is_empty());
        note
    }

    /// Drops the queued notifications.
    pub fn clear_notes(&self) {
        self.pending.set(false);
        let notes = std::mem::take(&mut *self.notes.borrow_mut());
        drop(notes);
    }

    /// A `ProtocolRef` was made.
    pub fn add_ref(&self) {
        self.refs.set(self.refs.get() + 1);
    }

    /// A `ProtocolRef` was dropped: the last one drops a protocol the transport let go of.
    pub fn release_ref(&self) {
        let left = self.refs.get().saturating_sub(1);
        self.refs.set(left);
        if left == 0 && self.detached.get() {
            let dropped = self.slot.borrow_mut().current.take();
            if dropped.is_some() {
                self.name.set(None);
            }
            drop(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    struct P(Rc<Cell<u32>>);
    impl Drop for P {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    impl EngineProtocol for P {
        type Handle = ();
        fn type_name(&self) -> &'static str {
            "P"
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
        fn connection_made(&mut self, _: &()) {}
        fn pause_writing(&mut self) {}
        fn resume_writing(&mut self) {}
        fn connection_lost(&mut self, _: Option<io::Error>) {}
    }

    #[test]
    fn replacement_during_a_call_is_installed_when_it_returns() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        let p = cell.take().unwrap();
        cell.set(P(drops.clone()));
        assert_eq!(drops.get(), 0);
        cell.put_back(p);
        assert_eq!(
            drops.get(),
            1,
            "the old protocol is dropped when the call returns"
        );
        assert!(cell.take().is_some());
    }

    #[test]
    fn detached_protocol_lives_while_refs_do() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        cell.add_ref();
        cell.detach();
        assert_eq!(drops.get(), 0);
        let p = cell.take().unwrap();
        cell.put_back(p);
        assert_eq!(drops.get(), 0);
        cell.release_ref();
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn detach_during_a_call_drops_the_protocol_when_it_returns() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        let p = cell.take().unwrap();
        cell.detach();
        cell.set(P(drops.clone()));
        assert_eq!(
            drops.get(),
            1,
            "set_protocol after teardown drops the new one"
        );
        cell.put_back(p);
        assert_eq!(drops.get(), 2);
        assert_eq!(cell.type_name(), None);
    }
}
