//! What a stream transport is made with: the fd kind and the creator's options.

use std::any::Any;
use std::fmt;
use std::rc::Rc;

use loop_core::LoopFuture;

use crate::addr::Addr;

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

/// Writes up to this size are appended to the last buffered chunk instead of making a new one.
pub(super) const COALESCE_MAX: usize = 16 * 1024;
/// A chunk is not grown past this size by coalescing.
pub(super) const CHUNK_MAX: usize = 64 * 1024;
/// Full reads in one readiness event before the transport yields to other work (fairness).
pub(super) const MAX_READS_PER_EVENT: u32 = 16;

/// What kind of file descriptor a [`Transport`](crate::Transport) drives.
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

    pub(super) fn name(self) -> &'static str {
        match self {
            FdKind::Socket => "socket",
            FdKind::ReadPipe => "read pipe",
            FdKind::WritePipe => "write pipe",
        }
    }
}

/// Options of [`Transport::new`](crate::Transport::new): the fd kind and what the creating crate attaches.
///
/// ```
/// use loop_transport::{FdKind, TransportOptions};
/// let o = TransportOptions::socket().write_buffer_limits(Some(1024), None).max_read_size(4096);
/// assert_eq!(o.kind(), FdKind::Socket);
/// ```
pub struct TransportOptions {
    /// The fd kind.
    pub(super) kind: FdKind,
    /// Peer address to report instead of asking `getpeername` (accepted connections).
    pub(super) peername: Option<Addr>,
    /// Most bytes read at once.
    pub(super) max_read: usize,
    /// Initial write limits.
    pub(super) limits: (Option<usize>, Option<usize>),
    /// Completed after `connection_made`.
    pub(super) waiter: Option<LoopFuture<()>>,
    /// Called after `connection_lost`.
    pub(super) on_lost: Option<Box<dyn FnOnce()>>,
    /// Custom extra info.
    pub(super) extra: Vec<(&'static str, Rc<dyn Any>)>,
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
    /// [`Transport::new`](crate::Transport::new).
    ///
    /// ```
    /// let _o = loop_transport::TransportOptions::read_pipe().max_read_size(64 * 1024);
    /// ```
    pub fn max_read_size(mut self, n: usize) -> TransportOptions {
        self.max_read = n;
        self
    }

    /// Initial write-buffer limits, as [`Transport::set_write_buffer_limits`](crate::Transport::set_write_buffer_limits).
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

/// [`TransportOptions::socket`]: the options of a socket transport with the defaults.
///
/// ```
/// let o = loop_transport::TransportOptions::default();
/// assert_eq!(o.kind(), loop_transport::FdKind::Socket);
/// ```
impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions::socket()
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
