//! Every use the transports make of loop-core's internal hooks, in one module: the loop
//! reference a transport keeps ([`LoopRef`], over `WeakLoop`), the fd registration
//! ([`IoSlot`], over the owning `Registered`), the readiness trait the reactor calls
//! ([`IoHandler`]), re-queued readiness ([`schedule_ready`], over `schedule_io`) and per-loop
//! state with a close hook ([`per_loop`], over `extension` / `on_close`).
//!
//! Nothing else in evloop's transports names those hooks, so a change of loop-core's internal
//! API is a change of this file only.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use loop_core::internal::{LoopInternals, Registered, WeakLoop};
use loop_core::{EventLoop, Result};

pub use loop_core::internal::IoHandler;
pub use loop_core::{Mode, Readiness};

/// The loop a transport works for, as the transport keeps it.
///
/// It holds the loop weakly, from the transport's creation until
/// [`release`](LoopRef::release) at teardown (after `connection_lost`, or when the loop
/// closes): a transport never keeps its loop alive, so dropping the last `EventLoop` handle
/// closes the loop (which tears its transports down) even while transports are open. Every
/// transport reaches its loop through this type only.
///
/// ```
/// use loop_transport::engine::hooks::LoopRef;
/// let lp = loop_core::EventLoop::new().unwrap();
/// let r = LoopRef::new(&lp);
/// assert!(r.get().unwrap().ptr_eq(&lp));
/// r.release();
/// assert!(r.get().is_none());
/// ```
pub struct LoopRef(RefCell<WeakLoop>);

impl LoopRef {
    /// A reference to `lp`.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let _r = loop_transport::engine::hooks::LoopRef::new(&lp);
    /// ```
    pub fn new(lp: &EventLoop) -> LoopRef {
        LoopRef(RefCell::new(lp.downgrade()))
    }

    /// The loop, unless released or gone.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(loop_transport::engine::hooks::LoopRef::new(&lp).get().is_some());
    /// ```
    #[inline]
    pub fn get(&self) -> Option<EventLoop> {
        self.0.borrow().upgrade()
    }

    /// The loop, unless released or closed: where scheduling work can succeed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = loop_transport::engine::hooks::LoopRef::new(&lp);
    /// lp.close().unwrap();
    /// assert!(r.get_open().is_none());
    /// ```
    pub fn get_open(&self) -> Option<EventLoop> {
        self.get().filter(|lp| !lp.is_closed())
    }

    /// Lets go of the loop (teardown); later [`get`](LoopRef::get)s give `None`.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = loop_transport::engine::hooks::LoopRef::new(&lp);
    /// r.release();
    /// assert!(r.get().is_none());
    /// ```
    pub fn release(&self) {
        *self.0.borrow_mut() = WeakLoop::new();
    }
}

/// Per-loop state of type `T`, made by `init` on first use; `on_close` runs once when the loop
/// closes (also when an unclosed loop is dropped).
///
/// ```
/// fn closed(_: &loop_core::EventLoop) {}
/// let lp = loop_core::EventLoop::new().unwrap();
/// let a = loop_transport::engine::hooks::per_loop(&lp, || std::cell::Cell::new(1u8), closed);
/// let b = loop_transport::engine::hooks::per_loop(&lp, || std::cell::Cell::new(2u8), closed);
/// assert_eq!(b.get(), 1);
/// # drop(a);
/// ```
pub fn per_loop<T: 'static>(
    lp: &EventLoop,
    init: impl FnOnce() -> T,
    on_close: fn(&EventLoop),
) -> Rc<T> {
    lp.extension(|lp| {
        lp.on_close(on_close);
        init()
    })
}

/// Queues `handler.ready(readiness)` behind the work already in the ready queue (a read burst
/// that yields to other work continues this way).
///
/// # Errors
///
/// [`Error::Closed`](loop_core::Error::Closed) for a closed loop.
///
/// ```
/// use loop_transport::engine::hooks::{schedule_ready, IoHandler, Readiness};
/// struct Noop;
/// impl IoHandler for Noop {
///     fn ready(&self, _: &loop_core::EventLoop, _: Readiness) {}
/// }
/// let lp = loop_core::EventLoop::new().unwrap();
/// schedule_ready(&lp, std::rc::Rc::new(Noop), Readiness::READABLE).unwrap();
/// ```
pub fn schedule_ready(lp: &EventLoop, handler: Rc<dyn IoHandler>, r: Readiness) -> Result<()> {
    lp.schedule_io(handler, r)
}

/// A transport's fd and its edge-triggered registration with the loop's reactor.
///
/// The fd is held through loop-core's owning registration, which deregisters before it lets go
/// of the fd, so the reactor never watches a closed (or reused) fd number. The fd is shared with the
/// [`SocketRef`](crate::SocketRef)s handed out, which keep it open while they live.
///
/// ```
/// use loop_transport::engine::hooks::{IoHandler, IoSlot, Readiness};
/// struct Noop;
/// impl IoHandler for Noop {
///     fn ready(&self, _: &loop_core::EventLoop, _: Readiness) {}
/// }
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let mut slot = IoSlot::register(&lp, a.into(), "doc", std::rc::Rc::new(Noop)).unwrap();
/// assert!(slot.fd().is_some());
/// slot.release();
/// assert!(slot.fd().is_none());
/// ```
#[derive(Default)]
pub struct IoSlot {
    /// The registered fd; `None` once released.
    reg: Option<Registered<Rc<OwnedFd>>>,
}

impl IoSlot {
    /// Nothing registered.
    ///
    /// ```
    /// assert!(loop_transport::engine::hooks::IoSlot::empty().fd().is_none());
    /// ```
    pub fn empty() -> IoSlot {
        IoSlot::default()
    }

    /// Registers `fd` edge-triggered, with no interest yet; `owner` names the owner in the
    /// error another registration of the same fd gets.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](loop_core::Error::Closed),
    /// [`Error::FdInUse`](loop_core::Error::FdInUse), or the `epoll_ctl` error (`EPERM` for a
    /// regular file). The fd is closed on error.
    ///
    /// ```
    /// # use loop_transport::engine::hooks::{IoHandler, IoSlot, Readiness};
    /// # struct Noop;
    /// # impl IoHandler for Noop { fn ready(&self, _: &loop_core::EventLoop, _: Readiness) {} }
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = std::fs::File::open("/proc/self/status").unwrap();
    /// assert!(IoSlot::register(&lp, f.into(), "doc", std::rc::Rc::new(Noop)).is_err());
    /// ```
    pub fn register(
        lp: &EventLoop,
        fd: OwnedFd,
        owner: &str,
        handler: Rc<dyn IoHandler>,
    ) -> Result<IoSlot> {
        let reg = Registered::new(lp, Rc::new(fd), Mode::Edge, false, false, owner, handler)?;
        Ok(IoSlot { reg: Some(reg) })
    }

    /// Sets the readiness the handler hears about; nothing once released.
    ///
    /// # Errors
    ///
    /// The `epoll_ctl` error.
    ///
    /// ```
    /// assert!(loop_transport::engine::hooks::IoSlot::empty().set_interest(true, false).is_ok());
    /// ```
    pub fn set_interest(&self, readable: bool, writable: bool) -> io::Result<()> {
        match &self.reg {
            Some(reg) => reg.set_interest(readable, writable),
            None => Ok(()),
        }
    }

    /// The fd, until released.
    ///
    /// ```
    /// assert!(loop_transport::engine::hooks::IoSlot::empty().fd().is_none());
    /// ```
    #[inline]
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.reg.as_ref().map(|r| r.get_ref().as_fd())
    }

    /// The fd number, until released.
    ///
    /// ```
    /// assert!(loop_transport::engine::hooks::IoSlot::empty().raw().is_none());
    /// ```
    pub fn raw(&self) -> Option<RawFd> {
        self.reg.as_ref().map(|r| r.get_ref().as_raw_fd())
    }

    /// The shared fd, to keep it open beyond a borrow.
    ///
    /// ```
    /// assert!(loop_transport::engine::hooks::IoSlot::empty().shared().is_none());
    /// ```
    pub fn shared(&self) -> Option<Rc<OwnedFd>> {
        self.reg.as_ref().map(|r| r.get_ref().clone())
    }

    /// Deregisters, then lets go of the fd (it closes unless a `SocketRef` still holds it).
    ///
    /// ```
    /// let mut s = loop_transport::engine::hooks::IoSlot::empty();
    /// s.release();
    /// ```
    pub fn release(&mut self) {
        drop(self.reg.take());
    }
}
