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
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use rustix::event::epoll;
use rustix::io::Errno;

use crate::handle::Handle;
use crate::{EventLoop, Work};

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

/// Something that wants to hear about readiness of one fd: transports implement it. Part of
/// the unstable [`internal`](crate::internal) API.
///
/// ```
/// use loop_core::internal::IoHandler;
/// use loop_core::{EventLoop, Readiness};
/// struct Printer;
/// impl IoHandler for Printer {
///     fn ready(&self, _lp: &EventLoop, r: Readiness) {
///         println!("{r:?}");
///     }
/// }
/// ```
pub trait IoHandler {
    /// Called from the ready queue when the fd became ready.
    fn ready(&self, lp: &EventLoop, readiness: Readiness);
}

/// What a registration delivers to.
enum Target {
    /// `add_reader` / `add_writer`: handles queued while the fd is ready.
    Watch {
        /// The read callback.
        reader: Option<Handle>,
        /// The write callback.
        writer: Option<Handle>,
    },
    /// A transport or other handler.
    Io {
        /// The handler.
        handler: Rc<dyn IoHandler>,
        /// What owns the fd, for the error message of NET-06.
        owner: Rc<str>,
    },
}

/// One registered fd.
struct Reg {
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
    target: Target,
}

/// A slot of the registration table.
struct Slot {
    /// Bumped each time the slot is freed.
    gen: u32,
    /// The registration, if the slot is in use.
    reg: Option<Reg>,
}

/// The registration table.
#[derive(Default)]
struct Regs {
    /// Slots, indexed by the low half of the epoll data.
    slots: Vec<Slot>,
    /// Free slot indexes.
    free: Vec<u32>,
    /// fd number → slot.
    by_fd: HashMap<RawFd, u32>,
}

impl Regs {
    fn insert(&mut self, reg: Reg) -> (u32, u32) {
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

    fn remove(&mut self, idx: u32) -> Option<Reg> {
        let slot = &mut self.slots[idx as usize];
        let reg = slot.reg.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        if self.by_fd.get(&reg.fd) == Some(&idx) {
            self.by_fd.remove(&reg.fd);
        }
        Some(reg)
    }

    fn get(&mut self, idx: u32, gen: u32) -> Option<&mut Reg> {
        let slot = self.slots.get_mut(idx as usize)?;
        if slot.gen != gen {
            return None;
        }
        slot.reg.as_mut()
    }
}

/// The epoll instance and its registrations.
pub(crate) struct Reactor {
    /// The epoll fd; `None` once the loop is closed.
    epoll: RefCell<Option<OwnedFd>>,
    /// Registrations.
    regs: RefCell<Regs>,
    /// The event buffer, reused across waits.
    events: RefCell<Vec<epoll::Event>>,
}

fn key(idx: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(idx)
}

fn borrow_raw(fd: RawFd) -> BorrowedFd<'static> {
    crate::sys::borrow_for_epoll(fd)
}

impl Reactor {
    pub(crate) fn new(wake: BorrowedFd<'_>) -> io::Result<Reactor> {
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
    pub(crate) fn watch(&self, raw: RawFd, read: bool, handle: Handle) -> crate::Result<()> {
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
        handler: Rc<dyn IoHandler>,
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
        ready: &RefCell<VecDeque<Work>>,
    ) -> (usize, bool) {
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: d.subsec_nanos() as _,
        });
        let mut events = self.events.borrow_mut();
        events.clear();
        let ep = self.epoll.borrow();
        let Some(ep) = ep.as_ref() else {
            return (0, false);
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
        let mut q = ready.borrow_mut();
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
                Target::Io { handler, .. } => q.push_back(Work::Io(handler.clone(), r)),
                Target::Watch { reader, writer } => {
                    if r.is_readable() {
                        if let Some(h) = reader {
                            if h.cancelled() {
                                to_remove.push((reg.fd, true));
                            } else {
                                q.push_back(Work::Call(h.cb.clone()));
                            }
                        }
                    }
                    if r.is_writable() {
                        if let Some(h) = writer {
                            if h.cancelled() {
                                to_remove.push((reg.fd, false));
                            } else {
                                q.push_back(Work::Call(h.cb.clone()));
                            }
                        }
                    }
                }
            }
        }
        drop(q);
        drop(regs);
        // NET-07: a registration whose handle was cancelled is removed instead of run.
        for (fd, read) in to_remove {
            let _ = self.unwatch(fd, read);
        }
        (n, woken)
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

/// An I/O object registered with a loop's poller: owns the object `F` and its registration
/// together, so the fd rule holds by construction — the registration is removed from epoll
/// *before* `F` (and so the fd) is dropped, both on [`Drop`] and in
/// [`into_inner`](Registered::into_inner). async-io's `Async<T>` is the model. Part of the
/// unstable [`internal`](crate::internal) API.
///
/// The registration holds the loop's poller weakly: dropping a `Registered` after the loop is
/// gone only drops `F`, and a `Registered` never keeps the loop alive.
///
/// ```
/// use loop_core::internal::{IoHandler, Registered};
/// use loop_core::{EventLoop, Mode, Readiness};
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
///
/// struct Noop;
/// impl IoHandler for Noop {
///     fn ready(&self, _: &EventLoop, _: Readiness) {}
/// }
/// let lp = EventLoop::new().unwrap();
/// let (a, _b) = UnixStream::pair().unwrap();
/// let reg = Registered::new(&lp, a, Mode::Edge, true, false, "example", Rc::new(Noop)).unwrap();
/// reg.set_interest(true, true).unwrap();
/// // The fd is owned: `add_reader` on it names the owner in its error.
/// assert!(lp.add_reader(reg.get_ref(), |_| {}).unwrap_err().to_string().contains("example"));
/// let a: UnixStream = reg.into_inner(); // deregistered, the socket given back
/// assert!(lp.add_reader(&a, |_| {}).is_ok());
/// # lp.remove_reader(&a).unwrap();
/// ```
pub struct Registered<F: AsFd> {
    /// The poller (weak: a registration does not keep the loop alive).
    reactor: Weak<Reactor>,
    /// Slot index.
    idx: u32,
    /// Slot generation.
    gen: u32,
    /// The I/O object; `None` only inside `into_inner` and `drop`.
    ///
    /// # Invariant
    ///
    /// While `Some`, the registration (`idx`, `gen`) refers to this object's fd; it is removed
    /// from the poller before the object is taken out or dropped.
    io: Option<F>,
}

impl<F: AsFd> Registered<F> {
    /// Registers `io`'s fd with `lp`'s poller: readiness is delivered to `handler` through the
    /// ready queue. `owner` names the owner in the error other users of the fd get
    /// ([`Error::FdInUse`](crate::Error::FdInUse)). On error `io` is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed),
    /// [`Error::FdInUse`](crate::Error::FdInUse) if the fd is already registered, or the
    /// `epoll_ctl` error.
    ///
    /// ```
    /// # use loop_core::internal::{IoHandler, Registered};
    /// # use loop_core::{EventLoop, Mode, Readiness};
    /// # struct Noop;
    /// # impl IoHandler for Noop { fn ready(&self, _: &EventLoop, _: Readiness) {} }
    /// let lp = EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let r = Registered::new(&lp, a, Mode::Level, true, false, "doc", std::rc::Rc::new(Noop));
    /// assert_eq!(lp.stats().fds_registered, 1);
    /// drop(r);
    /// assert_eq!(lp.stats().fds_registered, 0);
    /// ```
    pub fn new(
        lp: &EventLoop,
        io: F,
        mode: Mode,
        readable: bool,
        writable: bool,
        owner: &str,
        handler: Rc<dyn IoHandler>,
    ) -> crate::Result<Registered<F>> {
        Registered::try_new(lp, io, mode, readable, writable, owner, handler).map_err(|(e, _)| e)
    }

    /// As [`new`](Registered::new), but gives `io` back with the error.
    ///
    /// # Errors
    ///
    /// As for [`new`](Registered::new).
    ///
    /// ```
    /// # use loop_core::internal::{IoHandler, Registered};
    /// # use loop_core::{EventLoop, Mode, Readiness};
    /// # struct Noop;
    /// # impl IoHandler for Noop { fn ready(&self, _: &EventLoop, _: Readiness) {} }
    /// let lp = EventLoop::new().unwrap();
    /// lp.close().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let h = std::rc::Rc::new(Noop);
    /// let (err, a) = Registered::try_new(&lp, a, Mode::Edge, true, false, "doc", h).unwrap_err();
    /// assert!(matches!(err, loop_core::Error::Closed));
    /// # drop(a);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_new(
        lp: &EventLoop,
        io: F,
        mode: Mode,
        readable: bool,
        writable: bool,
        owner: &str,
        handler: Rc<dyn IoHandler>,
    ) -> Result<Registered<F>, (crate::Error, F)> {
        if let Err(e) = lp.check_open() {
            return Err((e, io));
        }
        let reactor = lp.reactor();
        let res = reactor.register(
            io.as_fd(),
            mode,
            readable,
            writable,
            Rc::from(owner),
            handler,
        );
        match res {
            Ok((idx, gen)) => Ok(Registered {
                reactor: Rc::downgrade(reactor),
                idx,
                gen,
                io: Some(io),
            }),
            Err(e) => Err((e, io)),
        }
    }

    /// Sets which readiness the handler wants to hear about. A no-op once the loop is gone.
    ///
    /// # Errors
    ///
    /// The `epoll_ctl` error, if any.
    ///
    /// ```
    /// # use loop_core::internal::{IoHandler, Registered};
    /// # use loop_core::{EventLoop, Mode, Readiness};
    /// # struct Noop;
    /// # impl IoHandler for Noop { fn ready(&self, _: &EventLoop, _: Readiness) {} }
    /// # let lp = EventLoop::new().unwrap();
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let reg = Registered::new(&lp, a, Mode::Edge, true, false, "doc", std::rc::Rc::new(Noop))
    ///     .unwrap();
    /// reg.set_interest(false, false).unwrap();
    /// ```
    pub fn set_interest(&self, readable: bool, writable: bool) -> io::Result<()> {
        match self.reactor.upgrade() {
            Some(r) => r.set_interest(self.idx, self.gen, readable, writable),
            None => Ok(()),
        }
    }

    /// The I/O object.
    ///
    /// ```
    /// # use loop_core::internal::{IoHandler, Registered};
    /// # use loop_core::{EventLoop, Mode, Readiness};
    /// # struct Noop;
    /// # impl IoHandler for Noop { fn ready(&self, _: &EventLoop, _: Readiness) {} }
    /// # let lp = EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let reg = Registered::new(&lp, a, Mode::Edge, true, false, "doc", std::rc::Rc::new(Noop))
    ///     .unwrap();
    /// assert!(reg.get_ref().peer_addr().is_ok());
    /// ```
    #[inline]
    pub fn get_ref(&self) -> &F {
        self.io.as_ref().expect("present until into_inner or drop")
    }

    /// Deregisters, then gives the I/O object back.
    ///
    /// ```
    /// # use loop_core::internal::{IoHandler, Registered};
    /// # use loop_core::{EventLoop, Mode, Readiness};
    /// # struct Noop;
    /// # impl IoHandler for Noop { fn ready(&self, _: &EventLoop, _: Readiness) {} }
    /// # let lp = EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let reg = Registered::new(&lp, a, Mode::Edge, true, false, "doc", std::rc::Rc::new(Noop))
    ///     .unwrap();
    /// let a = reg.into_inner();
    /// assert_eq!(lp.stats().fds_registered, 0);
    /// # drop(a);
    /// ```
    pub fn into_inner(mut self) -> F {
        self.deregister();
        self.io.take().expect("present until into_inner or drop")
    }

    fn deregister(&self) {
        if let Some(r) = self.reactor.upgrade() {
            r.deregister(self.idx, self.gen);
        }
    }
}

impl<F: AsFd> AsFd for Registered<F> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<F: AsFd> std::fmt::Debug for Registered<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::fd::AsRawFd;
        match &self.io {
            Some(io) => write!(
                f,
                "<Registered fd={} slot={} gen={}>",
                io.as_fd().as_raw_fd(),
                self.idx,
                self.gen
            ),
            None => write!(f, "<Registered (released)>"),
        }
    }
}

impl<F: AsFd> Drop for Registered<F> {
    fn drop(&mut self) {
        if self.io.is_some() {
            // The fd rule: out of epoll first, then the fd is closed (when `io` drops).
            self.deregister();
        }
    }
}

impl EventLoop {
    /// Watches `fd` for reading: while it is readable, `callback` is queued once per loop
    /// iteration (level-triggered), until [`remove_reader`](EventLoop::remove_reader).
    ///
    /// Adding a reader to an fd that has one replaces it (the old handle is cancelled); a writer
    /// on the same fd is kept. The returned handle can be cancelled, which removes the reader
    /// the next time the fd is reported ready.
    ///
    /// `fd` is an fd number or a reference to an fd owner ([`Fileno`]), as for
    /// [`remove_reader`](EventLoop::remove_reader). The loop does not own the fd: remove the
    /// reader before closing it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a negative fd;
    /// [`Error::Closed`](crate::Error::Closed) after `close()`;
    /// [`Error::FdInUse`](crate::Error::FdInUse) if a transport owns the fd; the `epoll_ctl`
    /// error (e.g. `EPERM` for a regular file).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    ///
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (rsock, mut wsock) = UnixStream::pair().unwrap();
    /// let rsock = Rc::new(rsock);
    /// let r2 = rsock.clone();
    /// lp.add_reader(&*rsock, move |lp| {
    ///     let mut buf = [0; 16];
    ///     let n = (&*r2).read(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], b"abc");
    ///     lp.remove_reader(&*r2).unwrap();
    ///     lp.stop();
    /// }).unwrap();
    /// wsock.write_all(b"abc").unwrap();
    /// lp.run_forever().unwrap();
    /// ```
    #[track_caller]
    pub fn add_reader(
        &self,
        fd: impl Fileno,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> crate::Result<Handle> {
        self.add_watch(
            fd.fileno(),
            true,
            crate::handle_repeat(std::panic::Location::caller(), callback),
        )
    }

    /// Watches `fd` for writing; the mirror of [`add_reader`](EventLoop::add_reader).
    ///
    /// # Errors
    ///
    /// As for [`add_reader`](EventLoop::add_reader).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// lp.add_writer(&a, |lp| lp.stop()).unwrap();
    /// lp.run_forever().unwrap();
    /// assert!(lp.remove_writer(&a).unwrap());
    /// ```
    #[track_caller]
    pub fn add_writer(
        &self,
        fd: impl Fileno,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> crate::Result<Handle> {
        self.add_watch(
            fd.fileno(),
            false,
            crate::handle_repeat(std::panic::Location::caller(), callback),
        )
    }

    fn add_watch(&self, fd: RawFd, read: bool, h: Handle) -> crate::Result<Handle> {
        check_fd(fd)?;
        self.check_open()?;
        self.inner.reactor.watch(fd, read, h.clone())?;
        Ok(h)
    }

    /// Stops watching `fd` for reading. Returns `Ok(true)` if a reader was registered (its
    /// handle is cancelled); `Ok(false)` for an unknown fd, an fd with only a writer, or after
    /// `close()`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a negative fd;
    /// [`Error::FdInUse`](crate::Error::FdInUse) for an fd owned by a transport (use the
    /// transport's `pause_reading` instead).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(!lp.remove_reader(0).unwrap());
    /// assert!(lp.remove_reader(-1).is_err());
    /// ```
    pub fn remove_reader(&self, fd: impl Fileno) -> crate::Result<bool> {
        self.remove_watch(fd.fileno(), true)
    }

    /// Stops watching `fd` for writing; the mirror of [`remove_reader`](EventLoop::remove_reader).
    ///
    /// # Errors
    ///
    /// As for [`remove_reader`](EventLoop::remove_reader).
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(!lp.remove_writer(1).unwrap());
    /// ```
    pub fn remove_writer(&self, fd: impl Fileno) -> crate::Result<bool> {
        self.remove_watch(fd.fileno(), false)
    }

    fn remove_watch(&self, fd: RawFd, read: bool) -> crate::Result<bool> {
        check_fd(fd)?;
        if self.is_closed() {
            return Ok(false);
        }
        self.inner.reactor.unwatch(fd, read)
    }
}

/// Rejects a negative fd number.
fn check_fd(fd: RawFd) -> crate::Result<()> {
    if fd < 0 {
        return Err(crate::Error::invalid_argument(format!(
            "Invalid file object: {fd} (file descriptors are non-negative)"
        )));
    }
    Ok(())
}
