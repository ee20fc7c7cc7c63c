//! File descriptors and the loop: the owning registration [`Registered`] (transports, the
//! signal pipe, servers' listeners) and the fd watchers `add_reader` / `add_writer`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::rc::{Rc, Weak};

use crate::event_loop::{IoHandler, LoopReactor};
use crate::handle::Handle;
use crate::readiness::{Fileno, Mode};
use crate::EventLoop;

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
    reactor: Weak<LoopReactor>,
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
        self.inner.reactor.watch(fd, read, h.cb.clone())?;
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
