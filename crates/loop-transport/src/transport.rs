//! The fd stream transport: one implementation for TCP, Unix stream sockets and pipes.
//!
//! See the crate documentation for the rules it follows (edge-triggered reads until a short
//! read, direct writes, deferred notifications).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use loop_core::internal::{IoHandler, LoopInternals, Registered};
use loop_core::{
    Error, EventLoop, Exception, ExceptionContext, Fatal, LoopFuture, Mode, Readiness, Result,
};
use rustix::io::Errno;

use crate::{Addr, StreamProtocol};

/// Default high-water mark of the write buffer (NET-65): 64 KiB.
///
/// ```
/// assert_eq!(loop_transport::DEFAULT_HIGH_WATER, 65536);
/// ```
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// Default maximum size of one read (NET-74, PIPE-03): 256 KiB.
///
/// ```
/// assert_eq!(loop_transport::DEFAULT_MAX_READ, 262144);
/// ```
pub const DEFAULT_MAX_READ: usize = 256 * 1024;

/// Most buffers handed to one vectored send (`sendmsg` / `writev`); below Linux's `IOV_MAX`
/// (1024). Small writes are coalesced into larger buffer chunks, so this is rarely the limit.
///
/// ```
/// assert!(loop_transport::MAX_IOV <= 1024);
/// ```
pub const MAX_IOV: usize = 256;

/// Once this many writes were dropped on a lost connection, each further one logs a warning
/// (asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`, NET-57).
///
/// ```
/// assert_eq!(loop_transport::LOG_THRESHOLD_FOR_CONNLOST_WRITES, 5);
/// ```
pub const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// Writes up to this size are appended to the last buffered chunk instead of making a new one.
const COALESCE_MAX: usize = 16 * 1024;
/// A chunk is not grown past this size by coalescing.
const CHUNK_MAX: usize = 64 * 1024;
/// Full reads in one readiness event before the transport yields to other work (fairness).
const MAX_READS_PER_EVENT: u32 = 16;

/// What kind of file descriptor a [`Transport`] drives.
///
/// ```
/// use loop_transport::FdKind;
/// assert!(FdKind::Socket.is_readable() && FdKind::Socket.is_writable());
/// assert!(!FdKind::ReadPipe.is_writable());
/// assert!(!FdKind::WritePipe.is_readable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FdKind {
    /// A connected stream socket (TCP, Unix stream, one end of a socketpair): read and write,
    /// `eof_received` may keep the connection half-open, `write_eof` shuts down the write side,
    /// sends use `MSG_NOSIGNAL`.
    Socket,
    /// The read end of a pipe (or a pty, a FIFO, a socket used one way): read only; EOF always
    /// closes the transport (PIPE-04); a read error other than `EIO` is also reported to the
    /// exception handler ("Fatal read error on pipe transport", PIPE-05).
    ReadPipe,
    /// The write end of a pipe: write only; `write_eof` is `close`; the reader going away
    /// (`EPOLLERR` / `EPOLLHUP`) closes the transport (PIPE-09), except on a character device
    /// (a pty), where the next write's error does (PIPE-12). Writes use `write(2)`, so the
    /// process must ignore `SIGPIPE` (Rust's runtime does by default).
    WritePipe,
}

impl FdKind {
    /// True if the transport reads from the fd.
    ///
    /// ```
    /// assert!(loop_transport::FdKind::ReadPipe.is_readable());
    /// ```
    pub fn is_readable(self) -> bool {
        !matches!(self, FdKind::WritePipe)
    }

    /// True if the transport writes to the fd.
    ///
    /// ```
    /// assert!(loop_transport::FdKind::WritePipe.is_writable());
    /// ```
    pub fn is_writable(self) -> bool {
        !matches!(self, FdKind::ReadPipe)
    }

    fn name(self) -> &'static str {
        match self {
            FdKind::Socket => "socket",
            FdKind::ReadPipe => "read pipe",
            FdKind::WritePipe => "write pipe",
        }
    }
}

/// Options of [`Transport::new`]: the fd kind and what the creating crate attaches.
///
/// ```
/// use loop_transport::{FdKind, TransportOptions};
/// let o = TransportOptions::socket().write_buffer_limits(Some(1024), None).max_read_size(4096);
/// assert_eq!(o.kind(), FdKind::Socket);
/// ```
pub struct TransportOptions {
    /// The fd kind.
    kind: FdKind,
    /// Peer address to report instead of asking `getpeername` (accepted connections).
    peername: Option<Addr>,
    /// Most bytes read at once.
    max_read: usize,
    /// Initial write limits.
    limits: (Option<usize>, Option<usize>),
    /// Completed after `connection_made`.
    waiter: Option<LoopFuture<()>>,
    /// Called after `connection_lost`.
    on_lost: Option<Box<dyn FnOnce()>>,
    /// Custom extra info.
    extra: Vec<(&'static str, Rc<dyn Any>)>,
}

impl TransportOptions {
    /// Options for an fd of the given kind, with the defaults: 256 KiB reads, 64 KiB / 16 KiB
    /// write limits.
    ///
    /// ```
    /// let o = loop_transport::TransportOptions::new(loop_transport::FdKind::ReadPipe);
    /// assert_eq!(o.kind(), loop_transport::FdKind::ReadPipe);
    /// ```
    pub fn new(kind: FdKind) -> TransportOptions {
        TransportOptions {
            kind,
            peername: None,
            max_read: DEFAULT_MAX_READ,
            limits: (None, None),
            waiter: None,
            on_lost: None,
            extra: Vec::new(),
        }
    }

    /// `new(FdKind::Socket)`.
    ///
    /// ```
    /// assert_eq!(loop_transport::TransportOptions::socket().kind(), loop_transport::FdKind::Socket);
    /// ```
    pub fn socket() -> TransportOptions {
        TransportOptions::new(FdKind::Socket)
    }

    /// `new(FdKind::ReadPipe)`.
    ///
    /// ```
    /// assert_eq!(loop_transport::TransportOptions::read_pipe().kind(), loop_transport::FdKind::ReadPipe);
    /// ```
    pub fn read_pipe() -> TransportOptions {
        TransportOptions::new(FdKind::ReadPipe)
    }

    /// `new(FdKind::WritePipe)`.
    ///
    /// ```
    /// assert_eq!(loop_transport::TransportOptions::write_pipe().kind(), loop_transport::FdKind::WritePipe);
    /// ```
    pub fn write_pipe() -> TransportOptions {
        TransportOptions::new(FdKind::WritePipe)
    }

    /// The fd kind.
    ///
    /// ```
    /// assert!(loop_transport::TransportOptions::socket().kind().is_writable());
    /// ```
    pub fn kind(&self) -> FdKind {
        self.kind
    }

    /// The peer address to report (for accepted connections: the address `accept` returned);
    /// by default the transport asks `getpeername`.
    ///
    /// ```
    /// let a: std::net::SocketAddr = "10.0.0.1:5".parse().unwrap();
    /// let _o = loop_transport::TransportOptions::socket().peername(a.into());
    /// ```
    pub fn peername(mut self, addr: Addr) -> TransportOptions {
        self.peername = Some(addr);
        self
    }

    /// The most bytes read from the fd at once (default 256 KiB); also the `size_hint` given to
    /// [`BufferedProtocol::get_buffer`](crate::BufferedProtocol::get_buffer). Zero is rejected by
    /// [`Transport::new`].
    ///
    /// ```
    /// let _o = loop_transport::TransportOptions::read_pipe().max_read_size(64 * 1024);
    /// ```
    pub fn max_read_size(mut self, n: usize) -> TransportOptions {
        self.max_read = n;
        self
    }

    /// Initial write-buffer limits, as [`Transport::set_write_buffer_limits`].
    ///
    /// ```
    /// let _o = loop_transport::TransportOptions::socket().write_buffer_limits(Some(0), Some(0));
    /// ```
    pub fn write_buffer_limits(
        mut self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> TransportOptions {
        self.limits = (high, low);
        self
    }

    /// A future completed right after `connection_made` returned (failed with the panic if it
    /// panicked); `create_connection` and friends await it.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let _o = loop_transport::TransportOptions::socket().waiter(lp.create_future());
    /// ```
    pub fn waiter(mut self, fut: LoopFuture<()>) -> TransportOptions {
        self.waiter = Some(fut);
        self
    }

    /// A hook run once after `connection_lost` returned and the fd was closed (a server uses it
    /// to forget the client, NET-62).
    ///
    /// ```
    /// let _o = loop_transport::TransportOptions::socket().on_connection_lost(|| println!("gone"));
    /// ```
    pub fn on_connection_lost(mut self, f: impl FnOnce() + 'static) -> TransportOptions {
        self.on_lost = Some(Box::new(f));
        self
    }

    /// Attaches a custom extra-info value, returned by
    /// `get_extra_info(Extra::Custom(key))` (for example `"subprocess"`).
    ///
    /// ```
    /// let _o = loop_transport::TransportOptions::read_pipe().extra("subprocess", std::rc::Rc::new(42u32));
    /// ```
    pub fn extra(mut self, key: &'static str, value: Rc<dyn Any>) -> TransportOptions {
        self.extra.push((key, value));
        self
    }
}

impl fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportOptions")
            .field("kind", &self.kind)
            .field("peername", &self.peername)
            .field("max_read", &self.max_read)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A key of [`Transport::get_extra_info`] (asyncio's string keys, typed).
///
/// ```
/// use loop_transport::Extra;
/// assert_ne!(Extra::Peername, Extra::Sockname);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Extra {
    /// `peername`: the remote address of a socket.
    Peername,
    /// `sockname`: the local address of a socket.
    Sockname,
    /// `socket`: the socket's fd, a non-owning view (sockets only).
    Socket,
    /// `pipe`: the pipe's fd, a non-owning view (pipes only).
    Pipe,
    /// A value attached with [`TransportOptions::extra`], by key (`"subprocess"`, ...).
    Custom(&'static str),
}

/// A value of [`Transport::get_extra_info`].
///
/// ```
/// use loop_transport::{Addr, ExtraValue};
/// let v = ExtraValue::Addr(Addr::Unnamed);
/// assert_eq!(v.as_addr(), Some(&Addr::Unnamed));
/// assert_eq!(v.as_fd(), None);
/// ```
#[derive(Clone)]
pub enum ExtraValue {
    /// An address (`peername`, `sockname`).
    Addr(Addr),
    /// A file descriptor number, valid while the transport is open (`socket`, `pipe`).
    Fd(RawFd),
    /// A custom value.
    Value(Rc<dyn Any>),
}

impl ExtraValue {
    /// The address, if this is one.
    ///
    /// ```
    /// assert!(loop_transport::ExtraValue::Fd(3).as_addr().is_none());
    /// ```
    pub fn as_addr(&self) -> Option<&Addr> {
        match self {
            ExtraValue::Addr(a) => Some(a),
            _ => None,
        }
    }

    /// The fd number, if this is one.
    ///
    /// ```
    /// assert_eq!(loop_transport::ExtraValue::Fd(3).as_fd(), Some(3));
    /// ```
    pub fn as_fd(&self) -> Option<RawFd> {
        match self {
            ExtraValue::Fd(fd) => Some(*fd),
            _ => None,
        }
    }

    /// The custom value as `T`, if it is one of that type.
    ///
    /// ```
    /// let v = loop_transport::ExtraValue::Value(std::rc::Rc::new(7u8));
    /// assert_eq!(v.downcast_ref::<u8>(), Some(&7));
    /// ```
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match self {
            ExtraValue::Value(v) => v.downcast_ref::<T>(),
            _ => None,
        }
    }
}

impl fmt::Debug for ExtraValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtraValue::Addr(a) => f.debug_tuple("Addr").field(a).finish(),
            ExtraValue::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            ExtraValue::Value(_) => f.write_str("Value(..)"),
        }
    }
}

/// Per-loop state shared by all transports of a loop.
#[derive(Default)]
struct Runtime {
    /// The read buffer, shared by every plain-protocol transport of the loop: reads happen one
    /// at a time, so one buffer serves all (taken out while in use).
    read_buf: RefCell<Vec<u8>>,
    /// Open transports, so that closing the loop closes their fds.
    live: RefCell<Live>,
}

/// A slab of weak transport references.
#[derive(Default)]
struct Live {
    /// Slots.
    slots: Vec<Option<Weak<Inner>>>,
    /// Free slot indexes.
    free: Vec<usize>,
}

impl Runtime {
    fn get(lp: &EventLoop) -> Rc<Runtime> {
        lp.extension(|lp| {
            lp.on_close(close_all);
            Runtime::default()
        })
    }

    fn add(&self, t: Weak<Inner>) -> usize {
        let mut live = self.live.borrow_mut();
        match live.free.pop() {
            Some(i) => {
                live.slots[i] = Some(t);
                i
            }
            None => {
                live.slots.push(Some(t));
                live.slots.len() - 1
            }
        }
    }

    fn remove(&self, idx: usize) {
        let mut live = self.live.borrow_mut();
        if let Some(slot) = live.slots.get_mut(idx) {
            if slot.take().is_some() {
                live.free.push(idx);
            }
        }
    }
}

/// Loop close hook: closes the fds of transports still open (their protocols are dropped
/// without `connection_lost`, since nothing can run any more).
fn close_all(lp: &EventLoop) {
    let rt = Runtime::get(lp);
    let open: Vec<Rc<Inner>> = {
        let mut live = rt.live.borrow_mut();
        let all = live
            .slots
            .drain(..)
            .flatten()
            .filter_map(|w| w.upgrade())
            .collect();
        live.free.clear();
        all
    };
    for t in open {
        tracing::debug!(
            "{:?} still open when its loop closed; closing its fd",
            Transport { inner: t.clone() }
        );
        t.teardown();
    }
}

/// A deferred protocol notification.
#[derive(Clone, Copy, Debug)]
enum Note {
    /// `pause_writing()`.
    Pause,
    /// `resume_writing()`.
    Resume,
}

/// How a panic in a protocol method is handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Reported as "Fatal error: protocol.<m>() call failed.", then the connection closes.
    Fatal,
    /// Reported as "protocol.<m>() failed"; the connection goes on.
    Report,
}

/// Why a protocol method was not run to completion.
enum CallError {
    /// No protocol to call (it is running already, or the transport is gone).
    Absent,
    /// It panicked (already reported).
    Panicked(Exception),
}

/// Where the protocol lives: taken out while one of its methods runs.
#[derive(Default)]
struct ProtoSlot {
    /// The protocol, when no method of it is running.
    current: Option<StreamProtocol>,
    /// True while a method runs (then `current` is `None`).
    in_call: bool,
    /// A protocol set by `set_protocol` during a call; installed when the call returns.
    replacement: Option<StreamProtocol>,
    /// Type name of the protocol taken out for a call.
    running: Option<&'static str>,
}

/// The fd, registered with the loop's poller (`Registered` deregisters before closing it).
struct Io {
    /// The registered fd; `None` once torn down.
    reg: Option<Registered<OwnedFd>>,
}

impl Io {
    /// The fd, until teardown.
    fn fd(&self) -> Option<&OwnedFd> {
        self.reg.as_ref().map(Registered::get_ref)
    }
}

/// Mutable transport state.
struct State {
    /// `connection_made` was called.
    made: bool,
    /// `close()`, `abort()`, `write_eof()` on a pipe, or a fatal error happened.
    closing: bool,
    /// `connection_lost` is scheduled (or ran).
    lost_scheduled: bool,
    /// `connection_lost` ran (or the transport was torn down).
    lost: bool,
    /// fd closed, protocol dropped.
    torn_down: bool,
    /// Lost-connection counter (NET-57).
    conn_lost: u32,
    /// `write_eof()` was called.
    eof_requested: bool,
    /// The write side was shut down.
    eof_sent: bool,
    /// `pause_reading()` is in effect.
    read_paused: bool,
    /// The peer's EOF was read.
    read_eof: bool,
    /// `pause_writing()` was delivered (or queued) without its `resume_writing()`.
    write_paused: bool,
    /// High-water mark.
    high: usize,
    /// Low-water mark.
    low: usize,
    /// Buffered chunks.
    wbuf: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already sent.
    head: usize,
    /// Buffered bytes not yet sent.
    wsize: usize,
    /// Write interest is registered.
    want_write: bool,
    /// Buffered data was discarded by `abort()` or an error.
    unsent_lost: bool,
    /// Tasks waiting for the buffer to empty.
    flush_wakers: Vec<Waker>,
}

/// Attached by the creator.
struct Hooks {
    /// Completed after `connection_made`.
    waiter: Option<LoopFuture<()>>,
    /// Run after `connection_lost`.
    on_lost: Option<Box<dyn FnOnce()>>,
}

/// The transport behind the [`Transport`] handle.
pub(crate) struct Inner {
    /// Itself, to make handles.
    me: Weak<Inner>,
    /// Per-loop shared state.
    rt: Rc<Runtime>,
    /// Fd kind.
    kind: FdKind,
    /// The fd number (for reports).
    raw: RawFd,
    /// Max bytes per read.
    max_read: usize,
    /// Index in the runtime's live table.
    live_idx: Cell<usize>,
    /// The next read burst reads until `WouldBlock` (set by `resume_reading`).
    drain_next: Cell<bool>,
    /// State.
    st: RefCell<State>,
    /// The protocol.
    proto: RefCell<ProtoSlot>,
    /// Notifications raised while a protocol method ran.
    notes: RefCell<VecDeque<Note>>,
    /// fd + registration.
    io: RefCell<Io>,
    /// The loop (dropped at teardown).
    lp: RefCell<Option<EventLoop>>,
    /// Peer address.
    peername: Option<Addr>,
    /// Local address.
    sockname: Option<Addr>,
    /// Custom extra info.
    extra: Vec<(&'static str, Rc<dyn Any>)>,
    /// Creator hooks.
    hooks: RefCell<Hooks>,
}

/// A stream transport: a cheap, clonable handle to one connected fd (socket or pipe) and its
/// protocol — asyncio's `Transport`.
///
/// Created with [`Transport::new`], which takes ownership of the fd. Every method may be called
/// from protocol methods, callbacks and tasks of the loop's thread. The transport stays alive
/// while the loop watches its fd, until `connection_lost` ran; after that the handle still
/// answers (`is_closing()` is true, writes are dropped).
///
/// # Examples
///
/// ```
/// use loop_core::{EventLoop, LoopFuture};
/// use loop_transport::{Protocol, Transport, TransportOptions};
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// struct Upper {
///     transport: Option<Transport>,
///     done: LoopFuture<()>,
/// }
/// impl Protocol for Upper {
///     fn connection_made(&mut self, t: &Transport) {
///         self.transport = Some(t.clone());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         let t = self.transport.as_ref().unwrap();
///         t.write(&data.to_ascii_uppercase()).unwrap();
///         t.close();
///     }
///     fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
///         self.transport = None;
///         self.done.set_result(()).unwrap();
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let (ours, mut theirs) = UnixStream::pair()?;
/// let done = lp.create_future();
/// Transport::new(&lp, ours, Upper { transport: None, done: done.clone() }, TransportOptions::socket())?;
/// theirs.write_all(b"hello")?;
/// lp.run_until_complete(done)??;
/// let mut got = String::new();
/// theirs.read_to_string(&mut got)?;
/// assert_eq!(got, "HELLO");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Transport {
    /// The shared transport.
    pub(crate) inner: Rc<Inner>,
}

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
        let (high, low) = resolve_limits(options.limits.0, options.limits.1)?;
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
                rustix::net::sockopt::socket_domain(&fd)
            {
                let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
            }
            sockname = Addr::sockname_of(&fd).ok();
            peername = match options.peername {
                Some(p) => Some(p),
                None => Addr::peername_of(&fd).ok(),
            };
        }
        rustix::io::ioctl_fionbio(&fd, true)?;
        let rt = Runtime::get(lp);
        let raw = fd.as_raw_fd();
        let inner = Rc::new_cyclic(|me| Inner {
            me: me.clone(),
            rt: rt.clone(),
            kind,
            raw,
            max_read: options.max_read,
            live_idx: Cell::new(usize::MAX),
            drain_next: Cell::new(false),
            st: RefCell::new(State {
                made: false,
                closing: false,
                lost_scheduled: false,
                lost: false,
                torn_down: false,
                conn_lost: 0,
                eof_requested: false,
                eof_sent: false,
                read_paused: false,
                read_eof: false,
                write_paused: false,
                high,
                low,
                wbuf: VecDeque::new(),
                head: 0,
                wsize: 0,
                want_write: false,
                unsent_lost: false,
                flush_wakers: Vec::new(),
            }),
            proto: RefCell::new(ProtoSlot {
                current: Some(protocol),
                in_call: false,
                replacement: None,
                running: None,
            }),
            notes: RefCell::new(VecDeque::new()),
            io: RefCell::new(Io { reg: None }),
            lp: RefCell::new(Some(lp.clone())),
            peername,
            sockname,
            extra: options.extra,
            hooks: RefCell::new(Hooks {
                waiter: options.waiter,
                on_lost: options.on_lost,
            }),
        });
        let owner = format!("<Transport fd={raw} {}>", kind.name());
        let reg = Registered::new(lp, fd, Mode::Edge, false, false, &owner, inner.clone())?;
        inner.io.borrow_mut().reg = Some(reg);
        let me = inner.clone();
        if let Err(e) = lp.call_soon(move |_| me.connection_made()) {
            inner.teardown();
            return Err(e);
        }
        inner.live_idx.set(rt.add(Rc::downgrade(&inner)));
        Ok(Transport { inner })
    }

    /// Writes `data`: sent straight to the fd when nothing is buffered, the rest buffered and
    /// sent when the fd becomes writable (NET-55). Empty data does nothing. The slice is copied
    /// if it must be kept; it is never aliased.
    ///
    /// If the buffer goes above the high-water mark, the protocol's `pause_writing()` is called
    /// before this returns — or, if this is called from inside a protocol method, right after
    /// that method returns (NET-64).
    ///
    /// After `close()`, `abort()` or a lost connection the data is dropped silently; from the
    /// fifth dropped write on, each logs a warning (NET-57, PIPE-11). On a write pipe,
    /// `write_eof()` is `close()`, so later writes are dropped too. A send error closes the connection
    /// (`connection_lost(Some(err))`, NET-58); it is not returned here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] after `write_eof()` ("Cannot call write() after write_eof()",
    /// NET-56) or on a read-only pipe transport.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.write(b"ping").unwrap();
    /// let mut buf = [0; 4];
    /// std::io::Read::read_exact(&mut &b, &mut buf).unwrap();
    /// assert_eq!(&buf, b"ping");
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.inner.write_slices(&[data])
    }

    /// Writes every buffer in order: the same as writing their concatenation, but sent with
    /// vectored system calls (`sendmsg` / `writev`, at most [`MAX_IOV`] buffers each, NET-59).
    ///
    /// # Errors
    ///
    /// As [`write`](Transport::write).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.writelines([&b"ab"[..], b"cd"]).unwrap();
    /// let mut buf = [0; 4];
    /// std::io::Read::read_exact(&mut &b, &mut buf).unwrap();
    /// assert_eq!(&buf, b"abcd");
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn writelines<I, B>(&self, bufs: I) -> Result<()>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let owned: Vec<B> = bufs.into_iter().collect();
        let slices: Vec<&[u8]> = owned.iter().map(|b| b.as_ref()).collect();
        self.inner.write_slices(&slices)
    }

    /// Closes the write side once the buffer is flushed (`shutdown(SHUT_WR)` for sockets,
    /// NET-60); for a write pipe, the same as [`close`](Transport::close) (PIPE-13). Repeat
    /// calls and calls on a closing transport do nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] on a read-only pipe transport.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.write_eof().unwrap();
    /// let mut rest = Vec::new();
    /// std::io::Read::read_to_end(&mut &b, &mut rest).unwrap(); // EOF arrives
    /// assert!(t.write(b"x").is_err());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn write_eof(&self) -> Result<()> {
        self.inner.write_eof()
    }

    /// True if [`write_eof`](Transport::write_eof) is supported: sockets and write pipes.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(t.can_write_eof());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn can_write_eof(&self) -> bool {
        self.inner.kind.is_writable()
    }

    /// Closes the transport: `is_closing()` is true at once and reading stops; buffered data is
    /// still sent, then `connection_lost(None)` is delivered through the ready queue (never
    /// inside this call). Repeat calls do nothing (NET-61).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.close();
    /// t.close();
    /// assert!(t.is_closing());
    /// lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn close(&self) {
        self.inner.close()
    }

    /// Closes at once: buffered data is discarded, the fd is no longer watched and
    /// `connection_lost(None)` is delivered through the ready queue (NET-62).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.abort();
    /// assert!(t.is_closing());
    /// lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn abort(&self) {
        self.inner.force_close(None)
    }

    /// True once the transport is closing or closed.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(!t.is_closing());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// Stops delivering data until [`resume_reading`](Transport::resume_reading). Idempotent; does
    /// nothing on a closing transport or a write pipe (NET-63). The fd stays registered (no
    /// system call); data simply stays in the kernel buffer.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.pause_reading();
    /// t.pause_reading();
    /// assert!(!t.is_reading());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn pause_reading(&self) {
        let mut st = self.inner.st.borrow_mut();
        if st.closing || !self.inner.kind.is_readable() {
            return;
        }
        st.read_paused = true;
    }

    /// Resumes delivering data. Idempotent; does nothing on a closing transport. Because the fd
    /// is edge-triggered, a read is retried through the ready queue (data may have arrived
    /// while paused).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.pause_reading();
    /// t.resume_reading();
    /// assert!(t.is_reading());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn resume_reading(&self) {
        self.inner.resume_reading()
    }

    /// True unless reading is paused, the peer's EOF was read, the transport is closing, or
    /// it is a write pipe.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(t.is_reading());
    /// t.close();
    /// assert!(!t.is_reading());
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn is_reading(&self) -> bool {
        let st = self.inner.st.borrow();
        self.inner.kind.is_readable() && !st.closing && !st.read_paused && !st.read_eof
    }

    /// Sets the write-buffer limits (NET-65): both `None` → 64 KiB / 16 KiB; only `high` → low
    /// is `high / 4`; only `low` → high is `4 × low`. Lowering the limits below the current
    /// buffer size pauses the protocol at once; `high = 0` pauses on any buffered byte.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `high < low`: "high (…) must be >= low (…) must be >= 0".
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.set_write_buffer_limits(Some(400), None).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (100, 400));
    /// assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        let (high, low) = resolve_limits(high, low)?;
        {
            let mut st = self.inner.st.borrow_mut();
            st.high = high;
            st.low = low;
        }
        self.inner.maybe_pause();
        Ok(())
    }

    /// `(low, high)`, asyncio's order.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        let st = self.inner.st.borrow();
        (st.low, st.high)
    }

    /// Bytes buffered and not yet handed to the OS.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.write(b"small").unwrap(); // sent at once
    /// assert_eq!(t.get_write_buffer_size(), 0);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.st.borrow().wsize
    }

    /// Extra information (NET-66): sockets give [`Extra::Peername`], [`Extra::Sockname`] and
    /// [`Extra::Socket`]; pipes give [`Extra::Pipe`]; [`Extra::Custom`] keys give what the
    /// creator attached. Anything else, or an fd after the transport closed, gives `None` (use
    /// `unwrap_or` for asyncio's `default`).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions, Extra, Addr};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(t.get_extra_info(Extra::Peername).unwrap().as_addr(), Some(&Addr::Unnamed));
    /// assert!(t.get_extra_info(Extra::Socket).unwrap().as_fd().is_some());
    /// assert!(t.get_extra_info(Extra::Pipe).is_none());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_extra_info(&self, key: Extra) -> Option<ExtraValue> {
        let i = &self.inner;
        match key {
            Extra::Peername => i.peername.clone().map(ExtraValue::Addr),
            Extra::Sockname => i.sockname.clone().map(ExtraValue::Addr),
            Extra::Socket if i.kind == FdKind::Socket => self.fileno().map(ExtraValue::Fd),
            Extra::Pipe if i.kind != FdKind::Socket => self.fileno().map(ExtraValue::Fd),
            Extra::Socket | Extra::Pipe => None,
            Extra::Custom(k) => i
                .extra
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| ExtraValue::Value(v.clone())),
        }
    }

    /// The peer address of a socket transport (`None` for pipes or if unknown).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let t = Transport::new(&lp, c, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(t.peername().unwrap().as_inet(), Some(l.local_addr().unwrap()));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn peername(&self) -> Option<Addr> {
        self.inner.peername.clone()
    }

    /// The local address of a socket transport.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let local = c.local_addr().unwrap();
    /// let t = Transport::new(&lp, c, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(t.sockname().unwrap().as_inet(), Some(local));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn sockname(&self) -> Option<Addr> {
        self.inner.sockname.clone()
    }

    /// The fd number while the fd is open.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let raw = std::os::fd::AsRawFd::as_raw_fd(&a);
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(t.fileno(), Some(raw));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn fileno(&self) -> Option<RawFd> {
        self.inner.io.borrow().fd().map(|fd| fd.as_raw_fd())
    }

    /// Calls `f` with a borrowed view of the fd (for `getsockopt` and the like; wrap it in
    /// `socket2::SockRef` for a socket API). `None` once the fd is closed. Do not close or
    /// replace the fd, nor read from or write to it behind the transport's back.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// let ty = t.with_fd(|fd| rustix::net::sockopt::socket_type(fd).unwrap()).unwrap();
    /// assert_eq!(ty, rustix::net::SocketType::STREAM);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let io = self.inner.io.borrow();
        let fd = io.fd()?.as_fd();
        Some(f(fd))
    }

    /// The fd kind.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions, FdKind};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(t.kind(), FdKind::Socket);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn kind(&self) -> FdKind {
        self.inner.kind
    }

    /// Replaces the protocol (NET-67: a plain and a buffered protocol may be switched at run
    /// time). The new protocol is not sent `connection_made`. Called from inside a protocol
    /// method, the switch happens when that method returns; the old protocol is dropped then.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// struct A;
    /// impl Protocol for A {}
    /// struct B;
    /// impl Protocol for B {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, A, TransportOptions::socket()).unwrap();
    /// t.set_protocol(B);
    /// assert!(t.protocol_type_name().unwrap().ends_with("B"));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_protocol(&self, protocol: impl Into<StreamProtocol>) {
        let new = protocol.into();
        let torn = self.inner.st.borrow().torn_down;
        let old = {
            let mut slot = self.inner.proto.borrow_mut();
            if torn {
                Some(new)
            } else if slot.in_call {
                slot.replacement.replace(new)
            } else {
                slot.current.replace(new)
            }
        };
        drop(old);
    }

    /// asyncio's `get_protocol()`: calls `f` with the protocol as its concrete type `P`.
    /// `None` if the protocol is of another type, is gone (after `connection_lost`), or one of
    /// its methods is running right now (it already has `&mut self` then).
    ///
    /// Notifications raised while `f` runs (a `write` that crosses the high-water mark) are
    /// delivered after `f` returns.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// struct Counter(u32);
    /// impl Protocol for Counter {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, Counter(5), TransportOptions::socket()).unwrap();
    /// assert_eq!(t.with_protocol(|c: &mut Counter| c.0), Some(5));
    /// assert_eq!(t.with_protocol(|s: &mut String| s.len()), None);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    #[doc(alias = "get_protocol")]
    pub fn with_protocol<P: 'static, R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        let mut p = {
            let mut slot = self.inner.proto.borrow_mut();
            if slot.in_call {
                return None;
            }
            let p = slot.current.take()?;
            slot.in_call = true;
            slot.running = Some(p.type_name());
            p
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            p.as_any_mut().downcast_mut::<P>().map(f)
        }));
        self.inner.put_back(p);
        match r {
            Ok(v) => {
                self.inner.flush_notes();
                v
            }
            Err(payload) => resume_unwind(payload),
        }
    }

    /// The type name of the current protocol (`None` once it is gone). While one of its
    /// methods runs, that protocol, even if `set_protocol` was called meanwhile.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// struct Echo;
    /// impl Protocol for Echo {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, Echo, TransportOptions::socket()).unwrap();
    /// assert!(t.protocol_type_name().unwrap().ends_with("Echo"));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn protocol_type_name(&self) -> Option<&'static str> {
        self.inner.proto_name()
    }

    /// The loop, until the transport is torn down after `connection_lost`.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(t.get_loop().unwrap().ptr_eq(&lp));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.inner.lp.borrow().clone()
    }

    /// Ready once the write buffer is empty (everything was handed to the OS). Fails with
    /// `BrokenPipe` if buffered data was discarded by `abort()` or an error. Used by
    /// `StreamWriter`'s `AsyncWrite::poll_flush`.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// t.write(b"x").unwrap();
    /// let t2 = t.clone();
    /// lp.run_until_complete(futures_lite::future::poll_fn(move |cx| t2.poll_flushed(cx))).unwrap().unwrap();
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.inner.st.borrow_mut();
        if st.unsent_lost {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection was lost with data still buffered",
            )));
        }
        if st.wsize == 0 {
            return Poll::Ready(Ok(()));
        }
        if !st.flush_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.flush_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// True if both handles are the same transport.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(t.ptr_eq(&t.clone()));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn ptr_eq(&self, other: &Transport) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.st.try_borrow() {
            Ok(st) if st.lost => "closed",
            Ok(st) if st.closing => "closing",
            Ok(_) => "open",
            Err(_) => "busy",
        };
        write!(
            f,
            "<Transport fd={} {} {state}>",
            self.inner.raw,
            self.inner.kind.name()
        )
    }
}

/// NET-65's rules.
fn resolve_limits(high: Option<usize>, low: Option<usize>) -> Result<(usize, usize)> {
    let (high, low) = match (high, low) {
        (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_HIGH_WATER / 4),
        (Some(h), None) => (h, h / 4),
        (None, Some(l)) => (l.saturating_mul(4), l),
        (Some(h), Some(l)) => (h, l),
    };
    if high < low {
        return Err(Error::invalid_argument(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high, low))
}

/// What one read attempt did.
enum ReadStep {
    /// Data delivered; `full` if the read filled the buffer (more may be waiting).
    Data {
        /// The read filled the whole buffer.
        full: bool,
    },
    /// Interrupted or the protocol changed kind: try again.
    Again,
    /// Nothing more to do in this burst.
    Done,
}

/// What a buffered read did.
enum BufRead {
    /// The protocol is not a buffered protocol (any more).
    NotBuffered,
    /// `get_buffer` returned an empty slice.
    Empty,
    /// The read result and the buffer length.
    Read(rustix::io::Result<usize>, usize),
}

impl IoHandler for Inner {
    fn ready(&self, _lp: &EventLoop, r: Readiness) {
        let hup = r.is_error() || (r | Readiness::READ_CLOSED) == r;
        let drain = self.drain_next.replace(false) || hup;
        if self.kind == FdKind::WritePipe && r.is_error() && !self.is_char_device() {
            // PIPE-09: the reader went away. Not for character devices (ptys): as in
            // asyncio, a hang-up there is learnt from the next write's error (EIO, PIPE-12).
            let buffered = self.st.borrow().wsize > 0;
            if buffered {
                self.force_close(Some(io::Error::from(io::ErrorKind::BrokenPipe)));
            } else {
                self.force_close(None);
            }
            return;
        }
        if r.is_readable() && self.kind.is_readable() {
            self.read_ready(drain);
        }
        if r.is_writable() {
            self.write_ready();
        }
    }
}

impl Inner {
    /// True if the fd is a character device (a pty, a terminal); asked only on the rare
    /// error readiness of a write pipe.
    fn is_char_device(&self) -> bool {
        let io = self.io.borrow();
        io.fd().is_some_and(|fd| {
            rustix::fs::fstat(fd).is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::CharacterDevice
            })
        })
    }

    /// A handle to this transport.
    fn handle(&self) -> Transport {
        Transport {
            inner: self
                .me
                .upgrade()
                .expect("a transport method runs on a live transport"),
        }
    }

    fn proto_name(&self) -> Option<&'static str> {
        let slot = self.proto.borrow();
        if slot.in_call {
            return slot.running;
        }
        slot.current.as_ref().map(StreamProtocol::type_name)
    }

    /// Puts a taken-out protocol back (or installs the replacement set meanwhile, or drops it
    /// if the transport was torn down).
    fn put_back(&self, p: StreamProtocol) {
        let torn = self.st.borrow().torn_down;
        let dropped = {
            let mut slot = self.proto.borrow_mut();
            slot.in_call = false;
            slot.running = None;
            if torn {
                Some(p)
            } else if let Some(new) = slot.replacement.take() {
                slot.current = Some(new);
                Some(p)
            } else {
                slot.current = Some(p);
                None
            }
        };
        drop(dropped);
    }

    /// Calls a protocol method with the protocol taken out of its slot, so that whatever the
    /// method calls on the transport never finds it borrowed. A panic is caught and handled
    /// per `policy`; notifications raised meanwhile are delivered afterwards.
    fn call_proto<R>(
        &self,
        method: &'static str,
        policy: Policy,
        f: impl FnOnce(&mut StreamProtocol, &Transport) -> R,
    ) -> std::result::Result<R, CallError> {
        let mut p = {
            let mut slot = self.proto.borrow_mut();
            if slot.in_call {
                return Err(CallError::Absent);
            }
            let Some(p) = slot.current.take() else {
                return Err(CallError::Absent);
            };
            slot.in_call = true;
            slot.running = Some(p.type_name());
            p
        };
        let name = p.type_name();
        let t = self.handle();
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut p, &t)));
        self.put_back(p);
        match r {
            Ok(v) => {
                self.flush_notes();
                Ok(v)
            }
            Err(payload) => {
                if payload.is::<Fatal>() {
                    resume_unwind(payload);
                }
                let exc = Exception::from_panic(&*payload);
                drop(payload);
                match policy {
                    Policy::Fatal => {
                        self.report(
                            format!("Fatal error: protocol.{method}() call failed."),
                            &exc,
                            name,
                        );
                        self.force_close(Some(exception_to_io(&exc)));
                    }
                    Policy::Report => {
                        self.report(format!("protocol.{method}() failed"), &exc, name);
                    }
                }
                self.flush_notes();
                Err(CallError::Panicked(exc))
            }
        }
    }

    /// Reports an error to the loop's exception handler, with the transport and protocol keys.
    fn report(&self, message: String, exc: &Exception, protocol: &str) {
        let ctx = ExceptionContext::new(message)
            .with_exception(Error::Exception(exc.clone()))
            .with_extra("transport", format!("{:?}", self.handle()))
            .with_extra("protocol", protocol);
        let lp = self.lp.borrow().clone();
        match lp {
            Some(lp) => lp.call_exception_handler(&ctx),
            None => tracing::error!("{ctx:?}"),
        }
    }

    /// Delivers `pause_writing` / `resume_writing`: now, or after the running protocol method.
    fn notify(&self, note: Note) {
        let in_call = self.proto.borrow().in_call;
        if in_call {
            self.notes.borrow_mut().push_back(note);
        } else {
            self.deliver(note);
        }
    }

    fn deliver(&self, note: Note) {
        if self.st.borrow().lost {
            return;
        }
        let _ = match note {
            Note::Pause => {
                self.call_proto("pause_writing", Policy::Report, |p, _| p.pause_writing())
            }
            Note::Resume => {
                self.call_proto("resume_writing", Policy::Report, |p, _| p.resume_writing())
            }
        };
    }

    /// Delivers the notifications queued while a protocol method ran.
    fn flush_notes(&self) {
        loop {
            let note = self.notes.borrow_mut().pop_front();
            match note {
                Some(n) => self.deliver(n),
                None => break,
            }
        }
    }

    fn connection_made(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost {
                return;
            }
            st.made = true;
        }
        let r = self.call_proto("connection_made", Policy::Fatal, |p, t| {
            p.connection_made(t)
        });
        self.update_interest();
        let waiter = self.hooks.borrow_mut().waiter.take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = match r {
                    Err(CallError::Panicked(e)) => w.set_exception(Error::Exception(e)),
                    _ => w.set_result(()),
                };
            }
        }
    }

    /// Registers read interest once `connection_made` ran (and while reading may happen), and
    /// write interest while data is buffered.
    fn update_interest(&self) {
        let (read, write) = {
            let st = self.st.borrow();
            (
                self.kind.is_readable() && st.made && !st.read_eof && !st.closing && !st.lost,
                st.want_write && !st.lost,
            )
        };
        let io = self.io.borrow();
        if let Some(reg) = io.reg.as_ref() {
            if let Err(e) = reg.set_interest(read, write) {
                tracing::debug!("epoll_ctl failed for fd {}: {e}", self.raw);
            }
        }
    }

    fn can_read(&self) -> bool {
        let st = self.st.borrow();
        st.made && !st.read_paused && !st.closing && !st.read_eof && !st.lost
    }

    /// Reads until a short read, `WouldBlock`, EOF or an error; with `drain`, past short reads
    /// too (the peer hung up, or reading was just resumed).
    fn read_ready(&self, drain: bool) {
        let mut full_reads = 0;
        loop {
            if !self.can_read() {
                return;
            }
            let buffered = matches!(
                self.proto.borrow().current,
                Some(StreamProtocol::Buffered(_))
            );
            let step = if buffered {
                self.read_buffered()
            } else {
                self.read_plain()
            };
            match step {
                ReadStep::Data { full } => {
                    if !full && !drain {
                        return;
                    }
                    full_reads += 1;
                    if full_reads >= MAX_READS_PER_EVENT {
                        // Let other work run; continue in a later iteration.
                        self.drain_next.set(self.drain_next.get() || drain);
                        self.schedule_read();
                        return;
                    }
                }
                ReadStep::Again => {}
                ReadStep::Done => return,
            }
        }
    }

    fn schedule_read(&self) {
        let lp = self.lp.borrow().clone();
        if let (Some(lp), Some(me)) = (lp, self.me.upgrade()) {
            let _ = lp.schedule_io(me, Readiness::READABLE);
        }
    }

    fn read_plain(&self) -> ReadStep {
        let mut buf = std::mem::take(&mut *self.rt.read_buf.borrow_mut());
        if buf.len() < self.max_read {
            buf.resize(self.max_read, 0);
        }
        let res = {
            let io = self.io.borrow();
            match io.fd() {
                Some(fd) => rustix::io::read(fd, &mut buf[..self.max_read]),
                None => Err(Errno::BADF),
            }
        };
        let step = match res {
            Ok(0) => {
                self.on_eof();
                ReadStep::Done
            }
            Ok(n) => {
                let data = &buf[..n];
                match self.call_proto("data_received", Policy::Fatal, |p, _| match p {
                    StreamProtocol::Plain(p) => {
                        p.data_received(data);
                        true
                    }
                    StreamProtocol::Buffered(_) => false,
                }) {
                    Ok(true) => {}
                    Ok(false) => {
                        // The protocol became a buffered one between the check and the read:
                        // hand the bytes over through its buffers.
                        self.feed_buffered(data);
                    }
                    Err(_) => {}
                }
                ReadStep::Data {
                    full: n == self.max_read,
                }
            }
            Err(Errno::AGAIN) => ReadStep::Done,
            Err(Errno::INTR) => ReadStep::Again,
            Err(e) => {
                self.fatal_os(e.into(), "read");
                ReadStep::Done
            }
        };
        let mut slot = self.rt.read_buf.borrow_mut();
        if slot.len() < buf.len() {
            *slot = buf;
        }
        step
    }

    /// Copies already-read bytes into a buffered protocol (rare: protocol switched mid-read).
    fn feed_buffered(&self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = match self.call_proto("get_buffer", Policy::Fatal, |p, _| match p {
                StreamProtocol::Buffered(b) => {
                    let dst = b.get_buffer(data.len());
                    let n = dst.len().min(data.len());
                    dst[..n].copy_from_slice(&data[..n]);
                    n
                }
                StreamProtocol::Plain(p) => {
                    p.data_received(data);
                    data.len()
                }
            }) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                self.empty_buffer_error();
                return;
            }
            let r = self.call_proto("buffer_updated", Policy::Fatal, |p, _| {
                if let StreamProtocol::Buffered(b) = p {
                    b.buffer_updated(n)
                }
            });
            if r.is_err() {
                return;
            }
            data = &data[n..];
        }
    }

    fn read_buffered(&self) -> ReadStep {
        let max = self.max_read;
        let r = self.call_proto("get_buffer", Policy::Fatal, |p, _| {
            let StreamProtocol::Buffered(b) = p else {
                return BufRead::NotBuffered;
            };
            let dst = b.get_buffer(max);
            if dst.is_empty() {
                return BufRead::Empty;
            }
            let len = dst.len().min(max);
            let io = self.io.borrow();
            let res = match io.fd() {
                Some(fd) => rustix::io::read(fd, &mut dst[..len]),
                None => Err(Errno::BADF),
            };
            BufRead::Read(res, len)
        });
        match r {
            Err(_) => ReadStep::Done,
            Ok(BufRead::NotBuffered) => ReadStep::Again,
            Ok(BufRead::Empty) => {
                self.empty_buffer_error();
                ReadStep::Done
            }
            Ok(BufRead::Read(Ok(0), _)) => {
                self.on_eof();
                ReadStep::Done
            }
            Ok(BufRead::Read(Ok(n), len)) => {
                let r = self.call_proto("buffer_updated", Policy::Fatal, |p, _| {
                    if let StreamProtocol::Buffered(b) = p {
                        b.buffer_updated(n)
                    }
                });
                match r {
                    Ok(()) => ReadStep::Data { full: n == len },
                    Err(_) => ReadStep::Done,
                }
            }
            Ok(BufRead::Read(Err(Errno::AGAIN), _)) => ReadStep::Done,
            Ok(BufRead::Read(Err(Errno::INTR), _)) => ReadStep::Again,
            Ok(BufRead::Read(Err(e), _)) => {
                self.fatal_os(e.into(), "read");
                ReadStep::Done
            }
        }
    }

    /// NET-67: `get_buffer()` returned an empty buffer.
    fn empty_buffer_error(&self) {
        let exc = Exception::new(Error::invalid_state(
            "get_buffer() returned an empty buffer",
        ));
        let name = self.proto_name().unwrap_or("?");
        self.report(
            "Fatal error: protocol.get_buffer() call failed.".into(),
            &exc,
            name,
        );
        self.force_close(Some(exception_to_io(&exc)));
    }

    /// The peer's EOF was read (NET-52, PIPE-04).
    fn on_eof(&self) {
        let pipe = self.kind == FdKind::ReadPipe;
        {
            let mut st = self.st.borrow_mut();
            st.read_eof = true;
            if pipe {
                st.closing = true;
            }
        }
        self.update_interest();
        let keep_open = self.call_proto("eof_received", Policy::Fatal, |p, _| p.eof_received());
        match keep_open {
            Err(CallError::Panicked(_)) => {}
            _ if pipe => self.force_close(None),
            Ok(true) => {}
            Ok(false) | Err(CallError::Absent) => self.close(),
        }
    }

    /// An OS error closes the connection quietly (NET-54, NET-58): debug log, no report.
    ///
    /// The exception: a read pipe reports read errors other than `EIO` (a pty whose other side
    /// closed) as "Fatal read error on pipe transport" (PIPE-05).
    fn fatal_os(&self, e: io::Error, what: &str) {
        let reported = self.kind == FdKind::ReadPipe
            && what == "read"
            && e.raw_os_error() != Some(Errno::IO.raw_os_error());
        if reported {
            let copy = match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            };
            let name = self.proto_name().unwrap_or("?");
            self.report(
                "Fatal read error on pipe transport".into(),
                &Exception::new(copy),
                name,
            );
        } else {
            tracing::debug!("{:?}: {what} failed: {e}; closing", self.handle());
        }
        self.force_close(Some(e));
    }

    fn resume_reading(&self) {
        let retry = {
            let mut st = self.st.borrow_mut();
            if st.closing || !st.read_paused {
                return;
            }
            st.read_paused = false;
            st.made && !st.read_eof
        };
        if retry {
            self.drain_next.set(true);
            self.schedule_read();
        }
    }

    /// Sends one buffer.
    fn send_one(&self, data: &[u8]) -> rustix::io::Result<usize> {
        let io = self.io.borrow();
        let fd = io.fd().ok_or(Errno::BADF)?;
        loop {
            let r = if self.kind == FdKind::Socket {
                rustix::net::send(fd, data, rustix::net::SendFlags::NOSIGNAL)
            } else {
                rustix::io::write(fd, data)
            };
            match r {
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Sends several buffers with one system call.
    fn send_iov(&self, iov: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
        if iov.len() == 1 {
            return self.send_one(&iov[0]);
        }
        let io = self.io.borrow();
        let fd = io.fd().ok_or(Errno::BADF)?;
        loop {
            let r = if self.kind == FdKind::Socket {
                rustix::net::sendmsg(
                    fd,
                    iov,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::NOSIGNAL,
                )
            } else {
                rustix::io::writev(fd, iov)
            };
            match r {
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Sends the caller's buffers straight to the fd; returns bytes sent and a fatal error.
    fn send_direct(&self, bufs: &[&[u8]]) -> (usize, Option<io::Error>) {
        if let [one] = bufs {
            return match self.send_one(one) {
                Ok(n) => (n, None),
                Err(Errno::AGAIN) => (0, None),
                Err(e) => (0, Some(e.into())),
            };
        }
        let mut sent = 0;
        let mut i = 0;
        while i < bufs.len() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            let mut batch = 0;
            while i + k < bufs.len() && k < MAX_IOV {
                iov[k] = IoSlice::new(bufs[i + k]);
                batch += bufs[i + k].len();
                k += 1;
            }
            match self.send_iov(&iov[..k]) {
                Ok(n) => {
                    sent += n;
                    if n < batch {
                        return (sent, None);
                    }
                    i += k;
                }
                Err(Errno::AGAIN) => return (sent, None),
                Err(e) => return (sent, Some(e.into())),
            }
        }
        (sent, None)
    }

    fn write_slices(&self, bufs: &[&[u8]]) -> Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if !self.kind.is_writable() {
            return Err(Error::invalid_state(
                "write() on a read-only pipe transport; it only reads",
            ));
        }
        let direct = {
            let mut st = self.st.borrow_mut();
            if st.eof_requested {
                return Err(Error::invalid_state(
                    "Cannot call write() after write_eof()",
                ));
            }
            if total == 0 {
                return Ok(());
            }
            if st.closing || st.lost_scheduled {
                // NET-57: dropped; warn once the counter reached the threshold.
                if st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                    if self.kind == FdKind::Socket {
                        tracing::warn!("socket.send() raised exception.");
                    } else {
                        tracing::warn!(
                            "pipe closed by peer or os.write(pipe, data) raised exception."
                        );
                    }
                }
                st.conn_lost += 1;
                return Ok(());
            }
            st.wsize == 0
        };
        let mut skip = 0;
        if direct {
            let (n, err) = self.send_direct(bufs);
            if let Some(e) = err {
                self.fatal_os(e, "send");
                return Ok(());
            }
            if n == total {
                return Ok(());
            }
            skip = n;
        }
        let register = {
            let mut st = self.st.borrow_mut();
            for b in bufs {
                if skip >= b.len() {
                    skip -= b.len();
                    continue;
                }
                push_chunk(&mut st, &b[skip..]);
                skip = 0;
            }
            !std::mem::replace(&mut st.want_write, true)
        };
        if register {
            self.update_interest();
        }
        self.maybe_pause();
        Ok(())
    }

    /// NET-64: pause when strictly above high.
    fn maybe_pause(&self) {
        let fire = {
            let mut st = self.st.borrow_mut();
            if st.wsize > st.high && !st.write_paused && !st.lost {
                st.write_paused = true;
                true
            } else {
                false
            }
        };
        if fire {
            self.notify(Note::Pause);
        }
    }

    /// NET-64: resume when at or below low.
    fn maybe_resume(&self) {
        let fire = {
            let mut st = self.st.borrow_mut();
            if st.write_paused && st.wsize <= st.low {
                st.write_paused = false;
                true
            } else {
                false
            }
        };
        if fire {
            self.notify(Note::Resume);
        }
    }

    fn write_ready(&self) {
        loop {
            let res = {
                let st = self.st.borrow();
                if st.wsize == 0 || st.lost_scheduled {
                    break;
                }
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                let mut batch = 0;
                for (i, chunk) in st.wbuf.iter().enumerate().take(MAX_IOV) {
                    let part = if i == 0 {
                        &chunk[st.head..]
                    } else {
                        &chunk[..]
                    };
                    iov[k] = IoSlice::new(part);
                    batch += part.len();
                    k += 1;
                }
                self.send_iov(&iov[..k]).map(|n| (n, batch))
            };
            match res {
                Ok((n, batch)) => {
                    let mut st = self.st.borrow_mut();
                    consume(&mut st, n);
                    if n < batch || st.wsize == 0 {
                        break;
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(e) => {
                    self.fatal_os(e.into(), "send");
                    return;
                }
            }
        }
        self.maybe_resume();
        let (empty, closing, shutdown, wakers) = {
            let mut st = self.st.borrow_mut();
            if st.wsize > 0 || st.lost_scheduled {
                return;
            }
            let was_watching = std::mem::replace(&mut st.want_write, false);
            let shutdown = !st.closing && st.eof_requested && !st.eof_sent;
            if shutdown {
                st.eof_sent = true;
            }
            (
                was_watching,
                st.closing,
                shutdown,
                std::mem::take(&mut st.flush_wakers),
            )
        };
        if empty {
            self.update_interest();
        }
        for w in wakers {
            w.wake();
        }
        if closing {
            self.schedule_lost(None);
        } else if shutdown {
            self.shutdown_write();
        }
    }

    fn shutdown_write(&self) {
        let io = self.io.borrow();
        if let Some(fd) = io.fd() {
            if let Err(e) = rustix::net::shutdown(fd, rustix::net::Shutdown::Write) {
                tracing::debug!("shutdown(SHUT_WR) of fd {} failed: {e}", self.raw);
            }
        }
    }

    fn write_eof(&self) -> Result<()> {
        match self.kind {
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
        let now = {
            let mut st = self.st.borrow_mut();
            if st.closing || st.eof_requested {
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

    fn close(&self) {
        let empty = {
            let mut st = self.st.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            st.wsize == 0
        };
        self.update_interest();
        if empty {
            self.schedule_lost(None);
        }
    }

    /// Discards the buffer and schedules `connection_lost(exc)`, unless already scheduled.
    fn force_close(&self, exc: Option<io::Error>) {
        let wakers = {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            if st.wsize > 0 {
                st.wbuf.clear();
                st.head = 0;
                st.wsize = 0;
                st.unsent_lost = true;
            }
            st.want_write = false;
            st.closing = true;
            std::mem::take(&mut st.flush_wakers)
        };
        self.update_interest();
        for w in wakers {
            w.wake();
        }
        self.schedule_lost(exc);
    }

    /// Schedules `connection_lost(exc)` through the ready queue (once).
    fn schedule_lost(&self, exc: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            st.lost_scheduled = true;
            st.conn_lost += 1;
        }
        self.update_interest();
        let lp = self.lp.borrow().clone();
        let me = self.me.upgrade();
        match (lp, me) {
            (Some(lp), Some(me)) if !lp.is_closed() => {
                if let Err(e) = lp.call_soon(move |_| me.call_connection_lost(exc)) {
                    tracing::error!("cannot schedule connection_lost: {e}");
                }
            }
            // Nothing can run any more: close now.
            _ => self.call_connection_lost(exc),
        }
    }

    fn call_connection_lost(&self, exc: Option<io::Error>) {
        let made = {
            let mut st = self.st.borrow_mut();
            if st.lost {
                return;
            }
            st.lost = true;
            st.made
        };
        self.notes.borrow_mut().clear();
        if made {
            let _ = self.call_proto("connection_lost", Policy::Report, |p, _| {
                p.connection_lost(exc)
            });
        }
        self.teardown();
    }

    /// Closes the fd and drops the protocol and the loop reference (NET-62).
    fn teardown(&self) {
        let wakers = {
            let mut st = self.st.borrow_mut();
            if st.torn_down {
                return;
            }
            st.torn_down = true;
            st.lost = true;
            st.closing = true;
            st.wbuf.clear();
            st.wsize = 0;
            std::mem::take(&mut st.flush_wakers)
        };
        // Deregisters, then closes the fd.
        let reg = self.io.borrow_mut().reg.take();
        drop(reg);
        let proto = {
            let mut slot = self.proto.borrow_mut();
            (slot.current.take(), slot.replacement.take())
        };
        self.rt.remove(self.live_idx.get());
        let (waiter, on_lost) = {
            let mut h = self.hooks.borrow_mut();
            (h.waiter.take(), h.on_lost.take())
        };
        drop(waiter);
        drop(proto);
        for w in wakers {
            w.wake();
        }
        if let Some(f) = on_lost {
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                if p.is::<Fatal>() {
                    resume_unwind(p);
                }
                tracing::error!("on_connection_lost hook panicked");
            }
        }
        let lp = self.lp.borrow_mut().take();
        drop(lp);
    }
}

/// Appends to the write buffer, coalescing small writes.
fn push_chunk(st: &mut State, data: &[u8]) {
    st.wsize += data.len();
    if data.len() <= COALESCE_MAX {
        if let Some(last) = st.wbuf.back_mut() {
            if last.len() + data.len() <= CHUNK_MAX {
                last.extend_from_slice(data);
                return;
            }
        }
        let mut v = Vec::with_capacity(COALESCE_MAX.max(data.len()));
        v.extend_from_slice(data);
        st.wbuf.push_back(v);
    } else {
        st.wbuf.push_back(data.to_vec());
    }
}

/// Drops `n` sent bytes from the front of the write buffer.
fn consume(st: &mut State, mut n: usize) {
    st.wsize -= n;
    while n > 0 {
        let Some(front) = st.wbuf.front() else { break };
        let rest = front.len() - st.head;
        if n >= rest {
            n -= rest;
            st.wbuf.pop_front();
            st.head = 0;
        } else {
            st.head += n;
            n = 0;
        }
    }
}

/// The `io::Error` handed to `connection_lost` for a protocol panic.
// `io::Error::other` needs Rust 1.74; the MSRV asked of this crate is 1.71.
#[allow(clippy::io_other_error)]
fn exception_to_io(exc: &Exception) -> io::Error {
    io::Error::new(io::ErrorKind::Other, Error::Exception(exc.clone()))
}
