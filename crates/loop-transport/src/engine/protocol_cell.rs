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
    /// The protocol reads through buffers of its own (a stream's buffered protocol); the cell
    /// keeps this in its flags, so that the read path learns it without borrowing the slot.
    fn is_buffered(&self) -> bool {
        false
    }
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

/// [`ProtocolCell::flags`]: one of the protocol's methods runs (called in place, or the
/// protocol taken out).
const IN_CALL: u8 = 1;
/// `set_protocol` was called during a method: the replacement waits in `replacement`.
const REPLACED: u8 = 2;
/// The transport let go of the protocol (teardown).
const DETACHED: u8 = 4;
/// Notifications are queued.
const PENDING: u8 = 8;
/// Notifications wait until [`release`](ProtocolCell::release).
const HELD: u8 = 16;
/// The protocol in the slot is a buffered one ([`EngineProtocol::is_buffered`]); clear while
/// the slot is empty.
const BUFFERED: u8 = 32;

/// Clears [`IN_CALL`] when a method called in place returns, also by unwinding.
struct InCall<'a>(&'a Cell<u8>);

impl Drop for InCall<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.set(self.0.get() & !IN_CALL);
    }
}

/// The protocol slot of a transport, its queue of notifications, and the count of
/// [`ProtocolRef`](crate::ProtocolRef)s that keep it alive after the transport let go of it.
///
/// A method of the protocol runs either in place ([`call`](ProtocolCell::call)) or with the
/// protocol taken out ([`take`](ProtocolCell::take) / [`put_back`](ProtocolCell::put_back)).
/// Either way the cell is marked "in a call" meanwhile, and everything the method may reach
/// through the transport (`set_protocol`, teardown, another method, a peek) checks that mark
/// before it touches the slot: the slot is never re-entered, and a method never finds it
/// borrowed.
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
/// // In place: the same guarantees, without moving the protocol.
/// assert_eq!(cell.call(|p| { p.0 += 1; p.0 }), Some(2));
/// assert_eq!(cell.call(|_| cell.call(|_| ())), Some(None)); // never re-entered
/// ```
pub struct ProtocolCell<B, N> {
    /// The protocol, unless it was taken out for a call or is gone. Borrowed only while
    /// [`IN_CALL`] is clear, or by the in-place call that set it.
    current: RefCell<Option<B>>,
    /// Set by `set_protocol` during a call; installed when the call returns.
    replacement: RefCell<Option<B>>,
    /// [`IN_CALL`], [`REPLACED`], [`DETACHED`], [`PENDING`], [`HELD`], [`BUFFERED`]: read in
    /// one load on the per-call path.
    flags: Cell<u8>,
    /// Type name of the protocol in the slot (or in a call); kept here so that reporting a
    /// call's panic costs no virtual call.
    name: Cell<Option<&'static str>>,
    /// Notifications raised while a method ran (or while held).
    notes: RefCell<VecDeque<N>>,
    /// Live `ProtocolRef`s.
    refs: Cell<usize>,
}

impl<B: EngineProtocol, N> ProtocolCell<B, N> {
    /// A cell holding `protocol`.
    pub fn new(protocol: B) -> ProtocolCell<B, N> {
        ProtocolCell {
            name: Cell::new(Some(protocol.type_name())),
            flags: Cell::new(if protocol.is_buffered() { BUFFERED } else { 0 }),
            current: RefCell::new(Some(protocol)),
            replacement: RefCell::new(None),
            notes: RefCell::new(VecDeque::new()),
            refs: Cell::new(0),
        }
    }

    #[inline(always)]
    fn has(&self, flag: u8) -> bool {
        self.flags.get() & flag != 0
    }

    #[inline(always)]
    fn mark(&self, flag: u8, on: bool) {
        let f = self.flags.get();
        self.flags.set(if on { f | flag } else { f & !flag });
    }

    /// Notes the kind of what the slot now holds ([`BUFFERED`]).
    #[inline(always)]
    fn note_slot(&self, p: Option<&B>) {
        self.mark(BUFFERED, p.is_some_and(B::is_buffered));
    }

    /// The slot holds a buffered protocol and none of its methods runs: what
    /// [`peek`](ProtocolCell::peek)`(EngineProtocol::is_buffered) == Some(true)` says, from the
    /// flags alone.
    #[inline(always)]
    pub fn holds_buffered(&self) -> bool {
        self.flags.get() & (IN_CALL | BUFFERED) == BUFFERED
    }

    /// Calls `f` with the protocol in place: `None` (and `f` not called) while a method runs
    /// (never re-entered) or once the protocol is gone. Meanwhile the cell is in a call, as
    /// with [`take`](ProtocolCell::take); when `f` returns, a replacement set meanwhile takes
    /// the protocol's place (the old one is dropped), and a protocol nobody holds any more is
    /// dropped, as with [`put_back`](ProtocolCell::put_back).
    #[inline(always)]
    pub fn call<R>(&self, f: impl FnOnce(&mut B) -> R) -> Option<R> {
        let flags = self.flags.get();
        if flags & IN_CALL != 0 {
            return None;
        }
        // Not in a call: nothing holds a borrow of the slot.
        let mut slot = self.current.borrow_mut();
        let p = slot.as_mut()?;
        self.flags.set(flags | IN_CALL);
        let in_call = InCall(&self.flags);
        let r = f(p);
        drop(in_call);
        drop(slot);
        if self.flags.get() & (REPLACED | DETACHED) != 0 {
            self.after_call_slow();
        }
        Some(r)
    }

    /// After a call (in place, or the protocol put back): the replacement set meanwhile
    /// installed (the old protocol dropped), or the protocol dropped if the transport let go
    /// of it and no `ProtocolRef` is left.
    #[inline(never)]
    fn after_call_slow(&self) {
        let dropped = {
            let mut slot = self.current.borrow_mut();
            if let Some(new) = self.replacement.borrow_mut().take() {
                self.mark(REPLACED, false);
                self.name.set(Some(new.type_name()));
                self.note_slot(Some(&new));
                slot.replace(new)
            } else if self.has(DETACHED) && self.refs.get() == 0 {
                self.name.set(None);
                self.note_slot(None);
                slot.take()
            } else {
                None
            }
        };
        drop(dropped);
    }

    /// Takes the protocol out to call one of its methods: `None` while a method runs (never
    /// re-entered) or once it is gone. Put it back with [`put_back`](ProtocolCell::put_back).
    #[inline]
    pub fn take(&self) -> Option<B> {
        if self.has(IN_CALL) {
            return None;
        }
        let p = self.current.borrow_mut().take()?;
        self.mark(IN_CALL, true);
        self.note_slot(None);
        Some(p)
    }

    /// Puts a taken-out protocol back: the replacement set meanwhile takes its place (the old
    /// one is dropped), and a protocol nobody holds any more (the transport let go of it and no
    /// `ProtocolRef` is left) is dropped.
    #[inline(always)]
    pub fn put_back(&self, p: B) {
        self.mark(IN_CALL, false);
        // The usual case: nothing replaced or detached it meanwhile. The slot is empty
        // (the protocol was taken out of it), so the store drops nothing.
        if !self.has(REPLACED | DETACHED) {
            self.note_slot(Some(&p));
            let old = self.current.borrow_mut().replace(p);
            debug_assert!(old.is_none());
            drop(old);
            return;
        }
        self.put_back_slow(p);
    }

    /// [`put_back`](ProtocolCell::put_back) with a replacement or a detached cell: the
    /// protocol back in its (empty) slot, then what follows any call.
    #[inline(never)]
    fn put_back_slow(&self, p: B) {
        self.note_slot(Some(&p));
        *self.current.borrow_mut() = Some(p);
        self.after_call_slow();
    }

    /// Calls `f` with the protocol in its slot (`None` while a method runs, or once gone).
    #[inline]
    pub fn peek<R>(&self, f: impl FnOnce(&B) -> R) -> Option<R> {
        if self.has(IN_CALL) {
            return None;
        }
        self.current.borrow().as_ref().map(f)
    }

    /// A method of the protocol runs.
    #[inline]
    pub fn in_call(&self) -> bool {
        self.has(IN_CALL)
    }

    /// Replaces the protocol (`set_protocol`): at once, or when the running method returns.
    /// After the transport let go, the new protocol is dropped.
    pub fn set(&self, protocol: B) {
        let old = if self.has(DETACHED) {
            Some(protocol)
        } else if self.has(IN_CALL) {
            self.mark(REPLACED, true);
            self.replacement.borrow_mut().replace(protocol)
        } else {
            self.name.set(Some(protocol.type_name()));
            self.note_slot(Some(&protocol));
            self.current.borrow_mut().replace(protocol)
        };
        drop(old);
    }

    /// The protocol's type name: while one of its methods runs, that protocol's (even if
    /// `set_protocol` was called meanwhile); `None` once it is gone.
    pub fn type_name(&self) -> Option<&'static str> {
        self.name.get()
    }

    /// The transport lets go of the protocol (teardown): it is dropped now, unless a
    /// `ProtocolRef` still holds it or one of its methods runs (then when the last one is
    /// dropped, or when the method returns). Queued notifications are dropped.
    pub fn detach(&self) {
        self.mark(DETACHED, true);
        self.mark(REPLACED, false);
        let dropped = {
            let replacement = self.replacement.borrow_mut().take();
            let current = if self.refs.get() == 0 && !self.has(IN_CALL) {
                self.name.set(None);
                self.note_slot(None);
                self.current.borrow_mut().take()
            } else {
                None
            };
            (current, replacement)
        };
        self.mark(PENDING, false);
        let notes = std::mem::take(&mut *self.notes.borrow_mut());
        drop(dropped);
        drop(notes);
    }

    /// The transport let go of the protocol.
    #[inline]
    pub fn is_detached(&self) -> bool {
        self.has(DETACHED)
    }

    /// Notifications wait until [`release`](ProtocolCell::release).
    pub fn hold(&self) {
        self.mark(HELD, true);
    }

    /// Notifications flow again (the caller delivers what waits).
    pub fn release(&self) {
        self.mark(HELD, false);
    }

    /// Notifications are held.
    #[inline]
    pub fn is_held(&self) -> bool {
        self.has(HELD)
    }

    /// A notification can be delivered now: no method runs, nothing is held or queued.
    #[inline]
    pub fn is_quiet(&self) -> bool {
        !self.has(HELD | PENDING | IN_CALL)
    }

    /// Notifications are queued and may be delivered (not held).
    #[inline]
    pub fn has_deliverable(&self) -> bool {
        self.flags.get() & (PENDING | HELD) == PENDING
    }

    /// Queues a notification.
    pub fn push_note(&self, note: N) {
        self.notes.borrow_mut().push_back(note);
        self.mark(PENDING, true);
    }

    /// The next queued notification.
    pub fn pop_note(&self) -> Option<N> {
        let mut notes = self.notes.borrow_mut();
        let note = notes.pop_front();
        self.mark(PENDING, !notes.is_empty());
        note
    }

    /// Drops the queued notifications.
    pub fn clear_notes(&self) {
        self.mark(PENDING, false);
        let notes = std::mem::take(&mut *self.notes.borrow_mut());
        drop(notes);
    }

    /// A `ProtocolRef` was made.
    pub fn add_ref(&self) {
        self.refs.set(self.refs.get() + 1);
    }

    /// A `ProtocolRef` was dropped: the last one drops a protocol the transport let go of
    /// (when the method that runs returns, if one does).
    pub fn release_ref(&self) {
        let left = self.refs.get().saturating_sub(1);
        self.refs.set(left);
        if left == 0 && self.has(DETACHED) && !self.has(IN_CALL) {
            let dropped = self.current.borrow_mut().take();
            if dropped.is_some() {
                self.name.set(None);
            }
            self.note_slot(None);
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

    /// A protocol that says whether it is buffered.
    struct K(bool);
    impl EngineProtocol for K {
        type Handle = ();
        fn type_name(&self) -> &'static str {
            "K"
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
        fn connection_made(&mut self, _: &()) {}
        fn pause_writing(&mut self) {}
        fn resume_writing(&mut self) {}
        fn connection_lost(&mut self, _: Option<io::Error>) {}
        fn is_buffered(&self) -> bool {
            self.0
        }
    }

    /// What the flags say agrees with a look at the slot.
    fn agrees(cell: &ProtocolCell<K, ()>) -> bool {
        cell.holds_buffered() == (cell.peek(|p| p.is_buffered()) == Some(true))
    }

    #[test]
    fn net_67_holds_buffered_follows_the_protocol_in_the_slot() {
        let cell: ProtocolCell<K, ()> = ProtocolCell::new(K(true));
        assert!(cell.holds_buffered() && agrees(&cell));
        // Replaced at once, and during a call (installed when it returns).
        cell.set(K(false));
        assert!(!cell.holds_buffered() && agrees(&cell));
        cell.call(|_| {
            assert!(
                !cell.holds_buffered(),
                "nothing to read through during a call"
            );
            cell.set(K(true));
        });
        assert!(cell.holds_buffered() && agrees(&cell));
        // Taken out: not while its method runs; put back: again.
        let p = cell.take().unwrap();
        assert!(!cell.holds_buffered() && agrees(&cell));
        cell.put_back(p);
        assert!(cell.holds_buffered() && agrees(&cell));
        // A replacement while taken out, installed by `put_back`.
        let p = cell.take().unwrap();
        cell.set(K(false));
        cell.put_back(p);
        assert!(!cell.holds_buffered() && agrees(&cell));
        cell.set(K(true));
        assert!(cell.holds_buffered());
        // Gone: nothing to read through.
        cell.detach();
        assert!(!cell.holds_buffered() && agrees(&cell));
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

    #[test]
    fn in_place_call_is_never_re_entered_and_installs_a_replacement_when_it_returns() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        let r = cell.call(|_| {
            // What the method reaches through the transport finds it in a call.
            assert!(cell.in_call());
            assert!(cell.take().is_none());
            assert!(cell.call(|_| ()).is_none());
            assert!(cell.peek(|_| ()).is_none());
            cell.set(P(drops.clone()));
            assert_eq!(drops.get(), 0, "the running protocol stays");
            7
        });
        assert_eq!(r, Some(7));
        assert_eq!(
            drops.get(),
            1,
            "the old protocol is dropped when the call returns"
        );
        assert!(!cell.in_call());
        assert!(cell.call(|_| ()).is_some());
    }

    #[test]
    fn detach_during_an_in_place_call_drops_the_protocol_when_it_returns() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        cell.call(|_| {
            cell.detach();
            assert_eq!(drops.get(), 0, "not while it runs");
            assert_eq!(cell.type_name(), Some("P"));
        });
        assert_eq!(drops.get(), 1);
        assert_eq!(cell.type_name(), None);
        assert!(cell.call(|_| ()).is_none(), "gone");
    }

    #[test]
    fn a_ref_released_during_an_in_place_call_after_detach_drops_it_when_it_returns() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        cell.add_ref();
        cell.detach();
        cell.call(|_| {
            cell.release_ref();
            assert_eq!(drops.get(), 0, "not while it runs");
        });
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn an_in_place_call_that_unwinds_leaves_the_cell_usable() {
        let drops = Rc::new(Cell::new(0));
        let cell: ProtocolCell<P, ()> = ProtocolCell::new(P(drops.clone()));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.call(|_| panic!("boom"));
        }));
        assert!(r.is_err());
        assert!(!cell.in_call());
        assert_eq!(cell.call(|_| 1), Some(1));
        assert_eq!(drops.get(), 0);
    }
}
