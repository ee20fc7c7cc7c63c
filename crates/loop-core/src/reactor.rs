//! The reactor: one epoll instance per loop, registrations keyed by slot and generation.
//!
//! evloop talks to epoll directly through rustix instead of going through `polling`: `polling`'s
//! `wait` re-arms a timerfd and its notifier on every call (five system calls per wait), while
//! an event loop needs exactly one (`epoll_wait`) on its hot path. Each fd is registered once —
//! level-triggered for `add_reader` / `add_writer` (asyncio's semantics), edge-triggered for
//! transports, which read until a short read — and never re-armed per event.
//!
//! A registration's epoll data is its slot index plus a generation, so an event that arrives
//! for a slot that was freed and reused in the same `epoll_wait` batch is recognised as stale and
//! dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use rustix::event::epoll;
use rustix::io::Errno;

/// epoll data of the loop's wake-up eventfd.
pub(crate) const WAKE_KEY: u64 = u64::MAX;

/// What became ready on a file descriptor.
///
/// ```
/// use loop_core::Readiness;
/// let r = Readiness::READABLE | Readiness::WRITABLE;
/// assert!(r.is_readable() && r.is_writable() && !r.is_error());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    pub const EMPTY: Readiness = Readiness(0);
    /// Data (or EOF) can be read.
    pub const READABLE: Readiness = Readiness(1);
    /// Data can be written.
    pub const WRITABLE: Readiness = Readiness(2);
    /// An error or hang-up is pending on the fd.
    pub const ERROR: Readiness = Readiness(4);
    /// The peer shut down its writing side.
    pub const READ_CLOSED: Readiness = Readiness(8);

    /// True if readable (or in error, which a read reports).
    ///
    /// ```
    /// assert!(loop_core::Readiness::READABLE.is_readable());
    /// ```
    pub fn is_readable(self) -> bool {
        self.0 & (Self::READABLE.0 | Self::ERROR.0 | Self::READ_CLOSED.0) != 0
    }

    /// True if writable (or in error, which a write reports).
    ///
    /// ```
    /// assert!(loop_core::Readiness::WRITABLE.is_writable());
    /// ```
    pub fn is_writable(self) -> bool {
        self.0 & (Self::WRITABLE.0 | Self::ERROR.0) != 0
    }

    /// True if an error or hang-up is pending.
    ///
    /// ```
    /// assert!(loop_core::Readiness::ERROR.is_error());
    /// ```
    pub fn is_error(self) -> bool {
        self.0 & Self::ERROR.0 != 0
    }

    fn from_flags(flags: epoll::EventFlags) -> Readiness {
        let mut r = 0;
        if flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::PRI) {
            r |= Self::READABLE.0;
        }
        if flags.contains(epoll::EventFlags::OUT) {
            r |= Self::WRITABLE.0;
        }
        if flags.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP) {
            r |= Self::ERROR.0;
        }
        if flags.contains(epoll::EventFlags::RDHUP) {
            r |= Self::READ_CLOSED.0;
        }
        Readiness(r)
    }
}

impl std::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}

/// A file descriptor given by number or by reference to its owner (asyncio accepts an int or an
/// object with `fileno()`).
///
/// ```
/// use loop_core::Fileno;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// use std::os::fd::AsRawFd;
/// assert_eq!((&a).fileno(), a.as_raw_fd());
/// assert_eq!(7.fileno(), 7);
/// ```
pub trait Fileno {
    /// The descriptor number.
    fn fileno(&self) -> RawFd;
}

impl Fileno for RawFd {
    fn fileno(&self) -> RawFd {
        *self
    }
}

impl<T: std::os::fd::AsRawFd + ?Sized> Fileno for &T {
    fn fileno(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl Fileno for BorrowedFd<'_> {
    fn fileno(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// How a registration is triggered.
///
/// ```
/// assert_ne!(loop_core::Mode::Edge, loop_core::Mode::Level);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reported every poll while the condition holds (`add_reader` semantics).
    Level,
    /// Reported once per change; the handler must read or write until `WouldBlock` or a short
    /// transfer before it is reported again.
    Edge,
}

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
    /// The reactor never owns this fd and uses the number only in `epoll_ctl` calls on its
    /// own epoll set. For a transport registration the fd is owned by the `Registered` holding
    /// this slot, which removes the slot before the fd is closed. For an `add_reader` /
    /// `add_writer` watch the user owns the fd and must remove the watch before closing it
    /// (asyncio's rule); if they do not, the kernel has already dropped the closed fd from the
    /// epoll set, and a later `epoll_ctl` on a reused number only touches this loop's set.
    fd: RawFd,
    /// The flags currently given to epoll.
    flags: epoll::EventFlags,
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
    /// Slots, indexed by the low half of the epoll data.
    slots: Vec<Slot<W, H>>,
    /// Free slot indexes.
    free: Vec<u32>,
    /// fd number → slot.
    by_fd: HashMap<RawFd, u32>,
}

impl<W, H> Default for Regs<W, H> {
    fn default() -> Self {
        Regs {
            slots: Vec::new(),
            free: Vec::new(),
            by_fd: HashMap::new(),
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

/// Watches `poll` found cancelled, to remove with
/// [`remove_cancelled`](Reactor::remove_cancelled): (fd, reader or writer).
#[must_use]
pub(crate) struct Cancelled(Vec<(RawFd, bool)>);

/// What `poll` reports, in the order of the events.
pub(crate) enum Ready<'a, W, H> {
    /// Readiness for an I/O handler.
    Io(&'a H, Readiness),
    /// A watch callback to run.
    Watch(&'a W),
}

/// The epoll instance and its registrations: watch callbacks `W` and I/O handlers `H`.
pub(crate) struct Reactor<W, H> {
    /// The epoll fd; `None` once the loop is closed.
    epoll: RefCell<Option<OwnedFd>>,
    /// Registrations.
    regs: RefCell<Regs<W, H>>,
    /// The event buffer, reused across waits.
    events: RefCell<Vec<epoll::Event>>,
}

fn key(idx: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(idx)
}

fn borrow_raw(fd: RawFd) -> BorrowedFd<'static> {
    crate::sys::borrow_for_epoll(fd)
}

impl<W: Watcher, H: Clone> Reactor<W, H> {
    pub(crate) fn new(wake: BorrowedFd<'_>) -> io::Result<Reactor<W, H>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            wake,
            epoll::EventData::new_u64(WAKE_KEY),
            epoll::EventFlags::IN,
        )?;
        Ok(Reactor {
            epoll: RefCell::new(Some(epoll)),
            regs: RefCell::new(Regs::default()),
            events: RefCell::new(Vec::with_capacity(1024)),
        })
    }

    /// Number of registered fds.
    pub(crate) fn len(&self) -> usize {
        self.regs.borrow().by_fd.len()
    }

    fn ctl_add(&self, fd: RawFd, k: u64, flags: epoll::EventFlags) -> io::Result<()> {
        let ep = self.epoll.borrow();
        let Some(ep) = ep.as_ref() else {
            return Err(Errno::BADF.into());
        };
        match epoll::add(ep, borrow_raw(fd), epoll::EventData::new_u64(k), flags) {
            Err(Errno::EXIST) => {
                epoll::modify(ep, borrow_raw(fd), epoll::EventData::new_u64(k), flags)?
            }
            r => r?,
        }
        Ok(())
    }

    fn ctl_modify(&self, fd: RawFd, k: u64, flags: epoll::EventFlags) -> io::Result<()> {
        let ep = self.epoll.borrow();
        let Some(ep) = ep.as_ref() else {
            return Err(Errno::BADF.into());
        };
        match epoll::modify(ep, borrow_raw(fd), epoll::EventData::new_u64(k), flags) {
            Err(Errno::NOENT) => {
                epoll::add(ep, borrow_raw(fd), epoll::EventData::new_u64(k), flags)?
            }
            r => r?,
        }
        Ok(())
    }

    fn ctl_delete(&self, fd: RawFd) {
        // EBADF / ENOENT: the fd was closed (which removes it from epoll) or never added.
        if let Some(ep) = self.epoll.borrow().as_ref() {
            let _ = epoll::delete(ep, borrow_raw(fd));
        }
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
        let mode = if reg.flags.contains(epoll::EventFlags::ET) {
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

    /// Drops every registration and closes the epoll fd (loop close); returns the handles and
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
        *self.epoll.borrow_mut() = None;
        out
    }

    /// Waits for events and queues the ready work. Returns (events, woken by eventfd).
    pub(crate) fn poll(
        &self,
        timeout: Option<Duration>,
        mut emit: impl FnMut(Ready<'_, W, H>),
    ) -> (usize, bool, Cancelled) {
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: d.subsec_nanos() as _,
        });
        let mut events = self.events.borrow_mut();
        events.clear();
        let ep = self.epoll.borrow();
        let Some(ep) = ep.as_ref() else {
            return (0, false, Cancelled(Vec::new()));
        };
        let n = match epoll::wait(
            ep,
            rustix::buffer::spare_capacity(&mut *events),
            ts.as_ref(),
        ) {
            Ok(n) => n,
            Err(Errno::INTR) => 0,
            Err(e) => {
                tracing::error!("epoll_wait failed: {e}");
                0
            }
        };
        let mut woken = false;
        let mut regs = self.regs.borrow_mut();
        let mut to_remove: Vec<(RawFd, bool)> = Vec::new();
        for ev in events.iter() {
            let data = ev.data.u64();
            if data == WAKE_KEY {
                woken = true;
                continue;
            }
            let (idx, gen) = (data as u32, (data >> 32) as u32);
            let Some(reg) = regs.get(idx, gen) else {
                continue;
            };
            let r = Readiness::from_flags(ev.flags);
            match &reg.target {
                Target::Io { handler, .. } => emit(Ready::Io(handler, r)),
                Target::Watch { reader, writer } => {
                    if r.is_readable() {
                        if let Some(h) = reader {
                            if h.is_cancelled() {
                                to_remove.push((reg.fd, true));
                            } else {
                                emit(Ready::Watch(h));
                            }
                        }
                    }
                    if r.is_writable() {
                        if let Some(h) = writer {
                            if h.is_cancelled() {
                                to_remove.push((reg.fd, false));
                            } else {
                                emit(Ready::Watch(h));
                            }
                        }
                    }
                }
            }
        }
        drop(regs);
        (n, woken, Cancelled(to_remove))
    }

    /// NET-07: removes the watches that `poll` found cancelled. Called once the ready queue is
    /// no longer borrowed: cancelling drops user closures, whose destructors may schedule.
    pub(crate) fn remove_cancelled(&self, c: Cancelled) {
        for (fd, read) in c.0 {
            let _ = self.unwatch(fd, read);
        }
    }
}

fn watch_flags(read: bool, write: bool) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if read {
        f |= epoll::EventFlags::IN;
    }
    if write {
        f |= epoll::EventFlags::OUT;
    }
    f
}

fn io_flags(mode: Mode, read: bool, write: bool) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if read {
        f |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    }
    if write {
        f |= epoll::EventFlags::OUT;
    }
    if mode == Mode::Edge {
        f |= epoll::EventFlags::ET;
    }
    f
}
