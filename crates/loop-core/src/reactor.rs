//! The reactor: one OS poller per loop (epoll on Linux, `polling` elsewhere: see
//! [`crate::sys`]), registrations keyed by slot and generation.
//!
//! Each fd is registered once — level-triggered for `add_reader` / `add_writer` (asyncio's
//! semantics), edge-triggered for transports, which read until a short read — and never
//! re-armed per event.
//!
//! A registration's key is its slot index plus a generation, so an event that arrives for a
//! slot that was freed and reused in the same wait batch is recognised as stale and dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use crate::readiness::{Mode, Readiness};
use crate::sys::{Events, Interest, Poller, WAKE_KEY};

/// A watch callback (`add_reader` / `add_writer`) as the reactor keeps it.
pub(crate) trait Watcher {
    /// Cancels it (a replaced or removed watch).
    fn cancel(&self);
    /// True once cancelled (NET-07: the watch is removed instead of run).
    fn is_cancelled(&self) -> bool;
}

/// What a registration delivers to.
enum Target<W, H> {
    /// `add_reader` / `add_writer`: handles queued while the fd is ready.
    Watch {
        /// The read callback.
        reader: Option<W>,
        /// The write callback.
        writer: Option<W>,
    },
    /// A transport or other handler.
    Io {
        /// The handler.
        handler: H,
        /// What owns the fd, for the error message of NET-06.
        owner: Rc<str>,
    },
}

/// One registered fd.
struct Reg<W, H> {
    /// The fd number.
    ///
    /// # Invariant
    ///
    /// The reactor never owns this fd and uses the number only to add it to, change it in and
    /// remove it from its own poller. For a transport registration the fd is owned by the `Registered` holding
    /// this slot, which removes the slot before the fd is closed. For an `add_reader` /
    /// `add_writer` watch the user owns the fd and must remove the watch before closing it
    /// (asyncio's rule); if they do not, the kernel has already dropped the closed fd from the
    /// poller (epoll and kqueue drop closed fds), and a later call on a reused number only
    /// touches this loop's poller.
    fd: RawFd,
    /// The interest currently given to the poller.
    flags: Interest,
    /// What events go to.
    target: Target<W, H>,
}

/// A slot of the registration table.
struct Slot<W, H> {
    /// Bumped each time the slot is freed.
    gen: u32,
    /// The registration, if the slot is in use.
    reg: Option<Reg<W, H>>,
}

/// The registration table.
struct Regs<W, H> {
    /// Slots, indexed by the low half of the key.
    slots: Vec<Slot<W, H>>,
    /// Free slot indexes.
    free: Vec<u32>,
    /// fd number → slot.
    by_fd: HashMap<RawFd, u32>,
    /// Watches [`event`](Reactor::event) found cancelled, to remove with
    /// [`remove_cancelled`](Reactor::remove_cancelled): (fd, reader or writer).
    cancelled: Vec<(RawFd, bool)>,
    /// The event buffer, reused across waits. Kept here, not in a cell of its own, so that
    /// [`event`](Reactor::event) reads an event and looks up its registration under one borrow.
    events: Events,
}

impl<W, H> Default for Regs<W, H> {
    fn default() -> Self {
        Regs {
            slots: Vec::new(),
            free: Vec::new(),
            by_fd: HashMap::new(),
            cancelled: Vec::new(),
            events: Events::with_capacity(1024),
        }
    }
}

impl<W, H> Regs<W, H> {
    fn insert(&mut self, reg: Reg<W, H>) -> (u32, u32) {
        let fd = reg.fd;
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].reg = Some(reg);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    reg: Some(reg),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_fd.insert(fd, idx);
        (idx, self.slots[idx as usize].gen)
    }

    fn remove(&mut self, idx: u32) -> Option<Reg<W, H>> {
        let slot = &mut self.slots[idx as usize];
        let reg = slot.reg.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        if self.by_fd.get(&reg.fd) == Some(&idx) {
            self.by_fd.remove(&reg.fd);
        }
        Some(reg)
    }

    fn get(&mut self, idx: u32, gen: u32) -> Option<&mut Reg<W, H>> {
        let slot = self.slots.get_mut(idx as usize)?;
        if slot.gen != gen {
            return None;
        }
        slot.reg.as_mut()
    }
}

/// What one event of a wait delivers ([`Reactor::event`]).
pub(crate) enum Polled<W, H> {
    /// The loop's wake-up.
    Wake,
    /// Nothing: the registration is gone (or its watches were cancelled).
    Nothing,
    /// Readiness for an I/O handler.
    Io(H, Readiness),
    /// The watch callbacks to run: the reader's, then the writer's.
    Watch(Option<W>, Option<W>),
}

/// The poller and its registrations: watch callbacks `W` and I/O handlers `H`.
pub(crate) struct Reactor<W, H> {
    /// The OS poller; closed with the loop.
    poller: Poller,
    /// Registrations, and the event buffer.
    regs: RefCell<Regs<W, H>>,
}

fn key(idx: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(idx)
}

impl<W: Watcher, H: Clone> Reactor<W, H> {
    pub(crate) fn new(poller: Poller) -> Reactor<W, H> {
        Reactor {
            poller,
            regs: RefCell::new(Regs::default()),
        }
    }

    /// Number of registered fds.
    pub(crate) fn len(&self) -> usize {
        self.regs.borrow().by_fd.len()
    }

    fn ctl_add(&self, fd: RawFd, k: u64, flags: Interest) -> io::Result<()> {
        self.poller.add(fd, k, flags)
    }

    fn ctl_modify(&self, fd: RawFd, k: u64, flags: Interest) -> io::Result<()> {
        self.poller.modify(fd, k, flags)
    }

    fn ctl_delete(&self, fd: RawFd) {
        self.poller.delete(fd);
    }

    /// Adds or replaces the reader (`read == true`) or writer of a watched fd.
    pub(crate) fn watch(&self, raw: RawFd, read: bool, handle: W) -> crate::Result<()> {
        let mut regs = self.regs.borrow_mut();
        let old;
        match regs.by_fd.get(&raw).copied() {
            Some(idx) => {
                let gen = regs.slots[idx as usize].gen;
                let reg = regs.slots[idx as usize]
                    .reg
                    .as_mut()
                    .expect("by_fd points to a live slot");
                let Target::Watch { reader, writer } = &mut reg.target else {
                    let Target::Io { owner, .. } = &reg.target else {
                        unreachable!()
                    };
                    return Err(crate::Error::FdInUse {
                        fd: raw,
                        owner: owner.to_string(),
                    });
                };
                old = if read {
                    reader.replace(handle)
                } else {
                    writer.replace(handle)
                };
                let flags = watch_flags(reader.is_some(), writer.is_some());
                reg.flags = flags;
                drop(regs);
                self.ctl_modify(raw, key(idx, gen), flags)?;
            }
            None => {
                let (reader, writer) = if read {
                    (Some(handle), None)
                } else {
                    (None, Some(handle))
                };
                let flags = watch_flags(reader.is_some(), writer.is_some());
                let (idx, gen) = regs.insert(Reg {
                    fd: raw,
                    flags,
                    target: Target::Watch { reader, writer },
                });
                drop(regs);
                if let Err(e) = self.ctl_add(raw, key(idx, gen), flags) {
                    self.regs.borrow_mut().remove(idx);
                    return Err(e.into());
                }
                old = None;
            }
        }
        // NET-03: the replaced handle is cancelled (outside the borrow: dropping it runs user
        // destructors).
        if let Some(h) = old {
            h.cancel();
        }
        Ok(())
    }

    /// Removes the reader or writer of `fd`; true if there was one.
    pub(crate) fn unwatch(&self, fd: RawFd, read: bool) -> crate::Result<bool> {
        let mut regs = self.regs.borrow_mut();
        let Some(idx) = regs.by_fd.get(&fd).copied() else {
            return Ok(false);
        };
        let gen = regs.slots[idx as usize].gen;
        let reg = regs.slots[idx as usize]
            .reg
            .as_mut()
            .expect("by_fd points to a live slot");
        let Target::Watch { reader, writer } = &mut reg.target else {
            let Target::Io { owner, .. } = &reg.target else {
                unreachable!()
            };
            return Err(crate::Error::FdInUse {
                fd,
                owner: owner.to_string(),
            });
        };
        let old = if read { reader.take() } else { writer.take() };
        let Some(old) = old else { return Ok(false) };
        let (r, w) = (reader.is_some(), writer.is_some());
        if !r && !w {
            regs.remove(idx);
            drop(regs);
            self.ctl_delete(fd);
        } else {
            let flags = watch_flags(r, w);
            reg.flags = flags;
            drop(regs);
            self.ctl_modify(fd, key(idx, gen), flags)?;
        }
        old.cancel();
        Ok(true)
    }

    /// Registers an fd with a handler.
    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        mode: Mode,
        readable: bool,
        writable: bool,
        owner: Rc<str>,
        handler: H,
    ) -> crate::Result<(u32, u32)> {
        use std::os::fd::AsRawFd;
        let raw = fd.as_raw_fd();
        let mut regs = self.regs.borrow_mut();
        if let Some(&idx) = regs.by_fd.get(&raw) {
            let owner = match &regs.slots[idx as usize].reg.as_ref().expect("live").target {
                Target::Io { owner, .. } => owner.to_string(),
                Target::Watch { .. } => "add_reader/add_writer".to_string(),
            };
            return Err(crate::Error::FdInUse { fd: raw, owner });
        }
        let flags = io_flags(mode, readable, writable);
        let (idx, gen) = regs.insert(Reg {
            fd: raw,
            flags,
            target: Target::Io { handler, owner },
        });
        drop(regs);
        if let Err(e) = self.ctl_add(raw, key(idx, gen), flags) {
            self.regs.borrow_mut().remove(idx);
            return Err(e.into());
        }
        Ok((idx, gen))
    }

    /// Changes the interest of a handler registration.
    pub(crate) fn set_interest(
        &self,
        idx: u32,
        gen: u32,
        readable: bool,
        writable: bool,
    ) -> io::Result<()> {
        let mut regs = self.regs.borrow_mut();
        let Some(reg) = regs.get(idx, gen) else {
            return Ok(());
        };
        let mode = if reg.flags.contains(Interest::EDGE) {
            Mode::Edge
        } else {
            Mode::Level
        };
        let flags = io_flags(mode, readable, writable);
        if flags == reg.flags {
            return Ok(());
        }
        reg.flags = flags;
        let fd = reg.fd;
        drop(regs);
        self.ctl_modify(fd, key(idx, gen), flags)
    }

    /// Removes a handler registration.
    pub(crate) fn deregister(&self, idx: u32, gen: u32) {
        let mut regs = self.regs.borrow_mut();
        if regs.get(idx, gen).is_none() {
            return;
        }
        let reg = regs.remove(idx);
        drop(regs);
        if let Some(reg) = reg {
            self.ctl_delete(reg.fd);
        }
    }

    /// Drops every registration and closes the poller (loop close); returns the handles and
    /// handlers to drop outside the borrow.
    pub(crate) fn clear(&self) -> Vec<impl Sized> {
        let mut regs = self.regs.borrow_mut();
        let idxs: Vec<u32> = regs.by_fd.values().copied().collect();
        let mut out = Vec::new();
        for idx in idxs {
            if let Some(reg) = regs.remove(idx) {
                self.ctl_delete(reg.fd);
                out.push(reg);
            }
        }
        drop(regs);
        self.poller.close();
        out
    }

    /// Waits up to `timeout` (forever if `None`) for events; returns how many arrived, to be
    /// looked at one by one with [`event`](Reactor::event).
    #[inline]
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> usize {
        let events = &mut self.regs.borrow_mut().events;
        // The `polling` backend may know of a wake-up without an event saying so: it then
        // reports one event more, which `event` reads as the wake-up.
        usize::from(self.poller.wait(events, timeout)) + events.len()
    }

    /// What the `i`-th event of the last [`wait`](Reactor::wait) delivers: an I/O handler's
    /// readiness, or the watch callbacks to run (cancelled watches are noted instead, for
    /// [`remove_cancelled`](Reactor::remove_cancelled) once the events are delivered). The registration is looked up now, so an event for a registration removed
    /// since the wait is dropped ([`Polled::Nothing`]).
    #[inline]
    pub(crate) fn event(&self, i: usize) -> Polled<W, H>
    where
        W: Clone,
    {
        let mut regs = self.regs.borrow_mut();
        let Some((data, r)) = regs.events.get(i) else {
            return Polled::Wake;
        };
        if data == WAKE_KEY {
            return Polled::Wake;
        }
        let (idx, gen) = (data as u32, (data >> 32) as u32);
        let Regs {
            slots, cancelled, ..
        } = &mut *regs;
        let Some(reg) = slots
            .get(idx as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.reg.as_ref())
        else {
            return Polled::Nothing;
        };
        match &reg.target {
            Target::Io { handler, .. } => Polled::Io(handler.clone(), r),
            Target::Watch { reader, writer } => {
                let mut run = |h: &Option<W>, ready: bool, read: bool| match h {
                    Some(h) if ready && h.is_cancelled() => {
                        cancelled.push((reg.fd, read));
                        None
                    }
                    Some(h) if ready => Some(h.clone()),
                    _ => None,
                };
                let reader = run(reader, r.is_readable(), true);
                let writer = run(writer, r.is_writable(), false);
                Polled::Watch(reader, writer)
            }
        }
    }

    /// NET-07: removes the watches that [`event`](Reactor::event) found cancelled. Called once the ready queue is
    /// no longer borrowed: cancelling drops user closures, whose destructors may schedule.
    #[inline(never)]
    pub(crate) fn remove_cancelled(&self) {
        let c = std::mem::take(&mut self.regs.borrow_mut().cancelled);
        for (fd, read) in c {
            let _ = self.unwatch(fd, read);
        }
    }

    /// Forgets the watches [`event`](Reactor::event) found cancelled without removing them
    /// (their events were queued instead of delivered; the next poll reports them again).
    #[cold]
    pub(crate) fn forget_cancelled(&self) {
        self.regs.borrow_mut().cancelled.clear();
    }
}

fn watch_flags(read: bool, write: bool) -> Interest {
    let mut f = Interest::NONE;
    if read {
        f |= Interest::READ;
    }
    if write {
        f |= Interest::WRITE;
    }
    f
}

fn io_flags(mode: Mode, read: bool, write: bool) -> Interest {
    let mut f = Interest::NONE;
    if read {
        f |= Interest::READ | Interest::READ_CLOSED;
    }
    if write {
        f |= Interest::WRITE;
    }
    if mode == Mode::Edge {
        f |= Interest::EDGE;
    }
    f
}
