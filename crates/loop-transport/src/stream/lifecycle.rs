//! The fd stream transport's life: creation ([`Transport::new`]), the engine's driver hooks
//! (interest, closing, teardown) and `write_eof`.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use loop_core::internal::HANGUP_REPORTED;
use loop_core::{Error, EventLoop, Result};
use rustix::io::Errno;

use super::{FdDriver, FdKind, StreamProtocol, StreamState, Transport, TransportOptions};
use crate::addr::Addr;
use crate::engine::hooks::{IoSlot, Readiness};
use crate::engine::{Core, Driver, Flow};

impl Transport {
    /// Wraps a connected fd: sets it non-blocking, registers it with the loop (edge-triggered,
    /// no interest yet) and schedules `protocol.connection_made(transport)` with `call_soon`;
    /// reading starts after that call returned (NET-51).
    ///
    /// `fd` may be anything that converts into an `OwnedFd` (`TcpStream`, `UnixStream`,
    /// `ChildStdout`, ...). The transport owns it from now on and closes it after
    /// `connection_lost` (or when the loop closes).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] for a closed loop; [`Error::InvalidArgument`] for a
    /// [`FdKind::Socket`] fd that is not a stream socket, or a zero maximum read size or bad
    /// write limits; [`Error::FdInUse`] if the fd is already watched by this loop; the OS error
    /// of `epoll_ctl` (`EPERM` for a regular file) or `ioctl`. On error the fd is closed.
    ///
    /// ```
    /// use loop_transport::{Protocol, Transport, TransportOptions};
    /// struct Nothing;
    /// impl Protocol for Nothing {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, Nothing, TransportOptions::socket()).unwrap();
    /// assert!(!t.is_closing());
    /// t.close();
    /// lp.run_until_complete(async {}).unwrap();
    /// ```
    #[track_caller]
    pub fn new(
        lp: &EventLoop,
        fd: impl Into<OwnedFd>,
        protocol: impl Into<StreamProtocol>,
        options: TransportOptions,
    ) -> Result<Transport> {
        let fd: OwnedFd = fd.into();
        let protocol = protocol.into();
        if lp.is_closed() {
            return Err(Error::Closed);
        }
        if options.max_read == 0 {
            return Err(Error::invalid_argument("max_read_size must be at least 1"));
        }
        let flow = Flow::with_limits(options.limits.0, options.limits.1)?;
        let kind = options.kind;
        let (mut peername, mut sockname) = (None, None);
        if kind == FdKind::Socket {
            match rustix::net::sockopt::socket_type(&fd) {
                Ok(rustix::net::SocketType::STREAM) => {}
                Ok(_) => {
                    return Err(Error::invalid_argument(
                        "a stream socket was expected (use a datagram endpoint for datagram sockets)",
                    ))
                }
                Err(Errno::NOTSOCK) => {
                    return Err(Error::invalid_argument(
                        "FdKind::Socket needs a socket; use FdKind::ReadPipe or FdKind::WritePipe for pipes",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
            // asyncio sets TCP_NODELAY on every TCP transport.
            if let Ok(rustix::net::AddressFamily::INET | rustix::net::AddressFamily::INET6) =
                crate::sys::socket_family(&fd)
            {
                let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
            }
            // EPIPE, not SIGPIPE, where sends cannot say so themselves (Apple).
            crate::sys::no_sigpipe(&fd)?;
            sockname = Addr::sockname_of(&fd).ok();
            peername = match options.peername {
                Some(p) => Some(p),
                None => Addr::peername_of(&fd).ok(),
            };
        }
        rustix::io::ioctl_fionbio(&fd, true)?;
        let raw = fd.as_raw_fd();
        let driver = FdDriver {
            kind,
            raw,
            max_read: options.max_read,
            drain_next: std::cell::Cell::new(false),
            st: std::cell::RefCell::new(StreamState::default()),
            io: std::cell::RefCell::new(IoSlot::empty()),
            peername,
            sockname,
            extra: options.extra,
        };
        let core = Core::new(lp, protocol, flow, driver);
        if let Some(w) = options.waiter {
            core.set_waiter(w);
        }
        if let Some(f) = options.on_lost {
            core.set_on_lost(f);
        }
        let owner = format!("<Transport fd={raw} {}>", kind.name());
        match IoSlot::register(lp, fd, &owner, core.clone()) {
            Ok(slot) => *core.driver.io.borrow_mut() = slot,
            Err(e) => {
                // Never live: nothing to tear down but the protocol, dropped with the core.
                return Err(e);
            }
        }
        core.schedule_made()?;
        core.make_live();
        Ok(Transport::fd(core))
    }
}

impl Driver for FdDriver {
    type Protocol = StreamProtocol;
    type Event = std::convert::Infallible;

    fn describe(core: &Core<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &core.driver;
        let state = core.lifecycle().label();
        write!(f, "<Transport fd={} {} {state}>", d.raw, d.kind.name())
    }

    fn handle(core: &Rc<Core<Self>>) -> Transport {
        Transport::fd(core.clone())
    }

    #[inline]
    fn buffer_size(core: &Core<Self>) -> usize {
        core.driver.st.borrow().wsize
    }

    #[inline]
    fn ready(core: &Core<Self>, r: Readiness) {
        core.ready(r)
    }

    fn update_interest(core: &Core<Self>) {
        core.update_interest();
    }

    fn discard(core: &Core<Self>) {
        let wakers = {
            let mut st = core.driver.st.borrow_mut();
            if st.wsize > 0 {
                st.wbuf.clear();
                st.head = 0;
                st.wsize = 0;
                st.unsent_lost = true;
            }
            st.want_write = false;
            std::mem::take(&mut st.flush_wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    fn release(core: &Core<Self>) {
        let wakers = {
            let mut st = core.driver.st.borrow_mut();
            st.wbuf.clear();
            st.wsize = 0;
            std::mem::take(&mut st.flush_wakers)
        };
        // Deregisters before closing.
        core.driver.io.borrow_mut().release();
        for w in wakers {
            w.wake();
        }
    }

    fn loop_closed(core: &Core<Self>, _lp: &EventLoop) {
        tracing::debug!(
            "{} still open when its loop closed; closing its fd",
            core.describe()
        );
    }
}

impl Core<FdDriver> {
    /// Registers read interest once `connection_made` ran (and while reading may happen), and
    /// write interest while data is buffered.
    pub(super) fn update_interest(&self) {
        let life = self.lifecycle();
        let d = &self.driver;
        let (read, write) = {
            let st = d.st.borrow();
            (
                (d.kind.is_readable() || self.watches_reader_of_write_pipe())
                    && life.is_open()
                    && !st.read_eof,
                st.want_write && !life.is_lost(),
            )
        };
        if let Err(e) = d.io.borrow().set_interest(read, write) {
            tracing::debug!("epoll_ctl failed for fd {}: {e}", d.raw);
        }
    }

    /// True if the fd is a character device (a pty, a terminal); asked only on the rare
    /// error readiness of a write pipe.
    pub(super) fn is_char_device(&self) -> bool {
        let io = self.driver.io.borrow();
        io.fd().is_some_and(|fd| {
            rustix::fs::fstat(fd).is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::CharacterDevice
            })
        })
    }

    /// True for a write pipe whose reader going away is learnt from readability: on a backend
    /// without hang-up reports (`polling`: kqueue reports the read filter's EOF on the write
    /// end), as asyncio does everywhere. Not for character devices (ptys), whose readability
    /// is the other side's output.
    fn watches_reader_of_write_pipe(&self) -> bool {
        !HANGUP_REPORTED && self.driver.kind == FdKind::WritePipe && !self.is_char_device()
    }

    /// Whether a write pipe that became readable lost its reader (on a backend without hang-up
    /// reports). The write end of a pipe or FIFO is readable only once the reader closed; a
    /// socket is readable also when the peer sent data, which says the peer is there. A
    /// one-byte `recv(MSG_PEEK | MSG_DONTWAIT)` tells the two apart: 0 bytes (the peer shut
    /// down or closed) or an error is gone; data, or nothing yet, is not. Nothing is consumed.
    ///
    /// The registration is edge-triggered, so data the peer keeps unread raises one event per
    /// arrival, not one per poll: no spin. (asyncio, level-triggered, takes any readability
    /// as the reader going away.) A peer that sent data and then closed is not seen here —
    /// its unread data stays in front of the EOF — but the next write fails (`EPIPE`) and
    /// closes the transport (PIPE-12).
    fn write_pipe_reader_gone(&self) -> bool {
        let io = self.driver.io.borrow();
        let Some(fd) = io.fd() else { return true };
        let mut byte = [0u8; 1];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        match rustix::net::recv(fd, &mut byte[..], flags) {
            Ok((0, _)) => true,
            Ok(_) | Err(Errno::AGAIN) | Err(Errno::INTR) => false,
            // A pipe or FIFO (ENOTSOCK): readable on its write end means the reader closed.
            // Any other error (ECONNRESET) means the peer is gone too.
            Err(_) => true,
        }
    }

    /// Dispatches one readiness event.
    fn ready(&self, r: Readiness) {
        let d = &self.driver;
        let hup = r.is_error() || (r | Readiness::READ_CLOSED) == r;
        // Without hang-up reports (the `polling` backend: kqueue) an EOF that came with the
        // last data raises no new edge, so every readable event reads until EAGAIN or EOF.
        let drain = d.drain_next.replace(false) || hup || !HANGUP_REPORTED;
        let gone = r.is_error()
            || (!HANGUP_REPORTED
                && r.is_readable()
                && d.kind == FdKind::WritePipe
                && self.write_pipe_reader_gone());
        if d.kind == FdKind::WritePipe && gone && !self.is_char_device() {
            // PIPE-09: the reader went away. Not for character devices (ptys): as in
            // asyncio, a hang-up there is learnt from the next write's error (EIO, PIPE-12).
            let buffered = d.st.borrow().wsize > 0;
            if buffered {
                self.force_close(Some(io::Error::from(io::ErrorKind::BrokenPipe)));
            } else {
                self.force_close(None);
            }
            return;
        }
        if r.is_readable() && d.kind.is_readable() {
            self.read_ready(drain);
        }
        if r.is_writable() {
            self.write_ready();
        }
    }

    /// Closes the write side once the buffer is flushed (NET-60); `close()` for a write pipe.
    pub(super) fn write_eof(&self) -> Result<()> {
        match self.driver.kind {
            FdKind::ReadPipe => {
                return Err(Error::invalid_state(
                    "write_eof() on a read-only pipe transport; use close()",
                ))
            }
            FdKind::WritePipe => {
                // PIPE-13: the same as close(); later writes are dropped, not refused.
                self.close();
                return Ok(());
            }
            FdKind::Socket => {}
        }
        if self.lifecycle().is_closing() {
            return Ok(());
        }
        let now = {
            let mut st = self.driver.st.borrow_mut();
            if st.eof_requested {
                return Ok(());
            }
            st.eof_requested = true;
            if st.wsize == 0 {
                st.eof_sent = true;
                true
            } else {
                false
            }
        };
        if now {
            self.shutdown_write();
        }
        Ok(())
    }

    /// `shutdown(SHUT_WR)`.
    pub(super) fn shutdown_write(&self) {
        let io = self.driver.io.borrow();
        if let Some(fd) = io.fd() {
            if let Err(e) = rustix::net::shutdown(fd, rustix::net::Shutdown::Write) {
                tracing::debug!("shutdown(SHUT_WR) of fd {} failed: {e}", self.driver.raw);
            }
        }
    }
}
