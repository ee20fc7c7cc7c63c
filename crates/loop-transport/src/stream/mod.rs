//! The stream transport: [`Transport`], the handle every stream protocol gets, over one fd
//! (TCP, Unix stream sockets, pipes: this module's driver) or over another transport's
//! protocol (a layered transport, [`TransportBackend`]); and the stream protocol traits.
//!
//! See the crate documentation for the rules the fd transport follows (edge-triggered reads
//! until a short read, direct writes, deferred notifications). The fd transport's parts:
//! [`options`] (what it is made with), [`extra`] (`get_extra_info`), `read` (the read path),
//! `write` (the write path), `lifecycle` (creation, the driver hooks, teardown), `layer`
//! (layered transports on the engine).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use loop_core::{EventLoop, Result};

use crate::addr::Addr;
use crate::engine::hooks::IoSlot;
use crate::engine::{Core, EngineProtocol, ProtocolHost, ProtocolRef};
use crate::protocol::ProtocolAny;

pub(crate) mod extra;
pub(crate) mod layer;
mod lifecycle;
pub(crate) mod options;
mod read;
mod write;

pub use self::extra::{Extra, ExtraValue, SocketRef};
pub use self::options::{FdKind, TransportOptions, DEFAULT_MAX_READ, MAX_IOV};

/// A stream protocol: asyncio's `Protocol`, receiving data as byte slices.
///
/// Call sequence (NET-50): `connection_made` → `data_received`* → `eof_received`? →
/// `connection_lost`, with `connection_made` and `connection_lost` called exactly once each.
/// `pause_writing` / `resume_writing` come in pairs, in between.
///
/// * The transport handle given to `connection_made` is a cheap clone-able handle: keep a clone
///   to write from later methods or from tasks.
/// * Methods may call any [`Transport`] method, including `write`, `close` and
///   `set_protocol`; notifications that such a call raises (`pause_writing` for instance) are
///   delivered after the running method returns, never inside it.
/// * A panic in a method is caught: the exception handler gets "Fatal error:
///   protocol.\<method\>() call failed." and the connection is closed with
///   `connection_lost(Some(err))`.
///
/// # Examples
///
/// ```
/// use loop_transport::{Protocol, Transport};
///
/// #[derive(Default)]
/// struct Echo {
///     transport: Option<Transport>,
/// }
///
/// impl Protocol for Echo {
///     fn connection_made(&mut self, transport: &Transport) {
///         self.transport = Some(transport.clone());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.transport {
///             t.write(data).unwrap();
///         }
///     }
///     fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
///         self.transport = None; // break the protocol <-> transport reference cycle
///     }
/// }
/// ```
pub trait Protocol: ProtocolAny {
    /// The connection is set up; `transport` is the handle to write, close, pause...
    /// Called once, through the ready queue, before any other method; reading starts only
    /// after it returned (NET-51).
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Some data arrived. The slice is only valid during the call (the transport reuses its
    /// read buffer): copy what you keep.
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// The peer closed its writing side. Return `true` to keep the transport open for writing
    /// (half-close); `false` (the default) closes the transport (NET-52). Read pipes always
    /// close, whatever this returns.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The transport's write buffer went above the high-water mark: stop writing until
    /// [`resume_writing`](Protocol::resume_writing).
    ///
    /// Called from inside `Transport::write` when the write comes from outside the protocol
    /// (a task, a callback); when one of this protocol's own methods writes, it is called right
    /// after that method returns. A protocol that writes in a loop from its own methods should
    /// therefore also watch [`Transport::get_write_buffer_size`] against the high-water mark.
    fn pause_writing(&mut self) {}

    /// The transport's write buffer drained to the low-water mark or below.
    fn resume_writing(&mut self) {}

    /// The connection is closed: `None` for a normal close (EOF, `close()`, `abort()`), or the
    /// error that closed it. Called once, through the ready queue, after everything else; the
    /// transport drops the protocol afterwards.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}

/// A stream protocol that receives into its own buffer: asyncio's `BufferedProtocol` (NET-67),
/// for zero-copy reads.
///
/// For each read the transport calls `get_buffer(size_hint)`, reads from the fd straight into the
/// returned slice, then calls `buffer_updated(n)` with the number of bytes written into it.
/// Returning an empty slice is a fatal error for the connection.
///
/// # Examples
///
/// ```
/// use loop_transport::{BufferedProtocol, Transport};
///
/// struct Collect {
///     buf: Vec<u8>,
///     filled: usize,
/// }
///
/// impl BufferedProtocol for Collect {
///     fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
///         if self.filled == self.buf.len() {
///             self.buf.resize(self.buf.len() + 4096, 0);
///         }
///         &mut self.buf[self.filled..]
///     }
///     fn buffer_updated(&mut self, nbytes: usize) {
///         self.filled += nbytes;
///     }
/// }
/// ```
pub trait BufferedProtocol: ProtocolAny {
    /// As [`Protocol::connection_made`].
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// The buffer to read into. `size_hint` is the most the transport will read at once (its
    /// maximum read size, 256 KiB by default); any non-empty length is fine.
    fn get_buffer(&mut self, size_hint: usize) -> &mut [u8];

    /// `nbytes` bytes were written at the start of the buffer last returned by `get_buffer`.
    fn buffer_updated(&mut self, nbytes: usize) {
        let _ = nbytes;
    }

    /// As [`Protocol::eof_received`].
    fn eof_received(&mut self) -> bool {
        false
    }

    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}

    /// As [`Protocol::connection_lost`].
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}

/// The protocol of a stream [`Transport`]: a plain [`Protocol`] or a [`BufferedProtocol`].
///
/// Any `Protocol` converts into it with `into()`; a buffered protocol goes through
/// [`StreamProtocol::buffered`]. The transport may switch between the two at run time
/// ([`Transport::set_protocol`]).
///
/// ```
/// use loop_transport::{BufferedProtocol, Protocol, StreamProtocol};
///
/// struct Plain;
/// impl Protocol for Plain {}
///
/// struct Zero([u8; 64]);
/// impl BufferedProtocol for Zero {
///     fn get_buffer(&mut self, _hint: usize) -> &mut [u8] { &mut self.0 }
/// }
///
/// let a: StreamProtocol = Plain.into();
/// let b = StreamProtocol::buffered(Zero([0; 64]));
/// assert!(!a.is_buffered());
/// assert!(b.is_buffered());
/// ```
pub enum StreamProtocol {
    /// A protocol receiving `data_received(&[u8])`.
    Plain(Box<dyn Protocol>),
    /// A protocol receiving into its own buffer.
    Buffered(Box<dyn BufferedProtocol>),
}

impl StreamProtocol {
    /// Wraps a plain protocol (same as `p.into()`).
    ///
    /// ```
    /// struct P;
    /// impl loop_transport::Protocol for P {}
    /// assert!(!loop_transport::StreamProtocol::plain(P).is_buffered());
    /// ```
    pub fn plain(p: impl Protocol) -> StreamProtocol {
        StreamProtocol::Plain(Box::new(p))
    }

    /// Wraps a buffered protocol.
    ///
    /// ```
    /// struct B(Vec<u8>);
    /// impl loop_transport::BufferedProtocol for B {
    ///     fn get_buffer(&mut self, _: usize) -> &mut [u8] { &mut self.0 }
    /// }
    /// assert!(loop_transport::StreamProtocol::buffered(B(vec![0; 8])).is_buffered());
    /// ```
    pub fn buffered(p: impl BufferedProtocol) -> StreamProtocol {
        StreamProtocol::Buffered(Box::new(p))
    }

    /// True for a [`BufferedProtocol`].
    ///
    /// ```
    /// struct P;
    /// impl loop_transport::Protocol for P {}
    /// assert!(!loop_transport::StreamProtocol::from(P).is_buffered());
    /// ```
    pub fn is_buffered(&self) -> bool {
        matches!(self, StreamProtocol::Buffered(_))
    }

    /// The protocol's type name.
    ///
    /// ```
    /// struct P;
    /// impl loop_transport::Protocol for P {}
    /// assert!(loop_transport::StreamProtocol::from(P).type_name().ends_with("P"));
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            StreamProtocol::Plain(p) => (**p).protocol_type_name(),
            StreamProtocol::Buffered(p) => (**p).protocol_type_name(),
        }
    }

    /// The protocol as `&mut dyn Any`, to downcast to its concrete type.
    ///
    /// ```
    /// struct P(u8);
    /// impl loop_transport::Protocol for P {}
    /// let mut s = loop_transport::StreamProtocol::from(P(3));
    /// assert_eq!(s.as_any_mut().downcast_mut::<P>().unwrap().0, 3);
    /// ```
    pub fn as_any_mut(&mut self) -> &mut dyn Any {
        match self {
            StreamProtocol::Plain(p) => (**p).as_any_mut(),
            StreamProtocol::Buffered(p) => (**p).as_any_mut(),
        }
    }

    pub(crate) fn connection_made(&mut self, t: &Transport) {
        match self {
            StreamProtocol::Plain(p) => p.connection_made(t),
            StreamProtocol::Buffered(p) => p.connection_made(t),
        }
    }

    pub(crate) fn eof_received(&mut self) -> bool {
        match self {
            StreamProtocol::Plain(p) => p.eof_received(),
            StreamProtocol::Buffered(p) => p.eof_received(),
        }
    }

    pub(crate) fn pause_writing(&mut self) {
        match self {
            StreamProtocol::Plain(p) => p.pause_writing(),
            StreamProtocol::Buffered(p) => p.pause_writing(),
        }
    }

    pub(crate) fn resume_writing(&mut self) {
        match self {
            StreamProtocol::Plain(p) => p.resume_writing(),
            StreamProtocol::Buffered(p) => p.resume_writing(),
        }
    }

    pub(crate) fn connection_lost(&mut self, exc: Option<io::Error>) {
        match self {
            StreamProtocol::Plain(p) => p.connection_lost(exc),
            StreamProtocol::Buffered(p) => p.connection_lost(exc),
        }
    }
}

impl<P: Protocol> From<P> for StreamProtocol {
    fn from(p: P) -> StreamProtocol {
        StreamProtocol::Plain(Box::new(p))
    }
}

impl From<Box<dyn Protocol>> for StreamProtocol {
    fn from(p: Box<dyn Protocol>) -> StreamProtocol {
        StreamProtocol::Plain(p)
    }
}

impl From<Box<dyn BufferedProtocol>> for StreamProtocol {
    fn from(p: Box<dyn BufferedProtocol>) -> StreamProtocol {
        StreamProtocol::Buffered(p)
    }
}

impl fmt::Debug for StreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_buffered() {
            "Buffered"
        } else {
            "Plain"
        };
        write!(f, "StreamProtocol::{kind}({})", self.type_name())
    }
}

impl EngineProtocol for StreamProtocol {
    type Handle = Transport;

    fn type_name(&self) -> &'static str {
        StreamProtocol::type_name(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        StreamProtocol::as_any_mut(self)
    }

    fn connection_made(&mut self, transport: &Transport) {
        StreamProtocol::connection_made(self, transport)
    }

    fn pause_writing(&mut self) {
        StreamProtocol::pause_writing(self)
    }

    fn resume_writing(&mut self) {
        StreamProtocol::resume_writing(self)
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        StreamProtocol::connection_lost(self, exc)
    }

    fn is_buffered(&self) -> bool {
        StreamProtocol::is_buffered(self)
    }
}

/// What a layered transport implements: the methods of [`Transport`] for a transport that is
/// backed by another transport's protocol rather than an fd (asyncio's TLS transport sits on
/// a TCP one this way). [`Transport::from_backend`] makes the handle its protocol gets.
///
/// A backend built on the engine's [`Core`] with a [`Layer`](crate::Layer) driver gets this trait for free,
/// and with it the fd transport's rules: the same protocol call policy (never re-entered,
/// panics reported), lifecycle (`connection_lost` once, through the ready queue) and write
/// flow control.
///
/// The contract of each method is that of the [`Transport`] method of the same name.
pub trait TransportBackend: 'static {
    /// Writes the buffers in order (`write` gives one, `writelines` several).
    ///
    /// # Errors
    ///
    /// As [`Transport::write`].
    fn write(&self, bufs: &[&[u8]]) -> Result<()>;
    /// As [`Transport::write_eof`].
    ///
    /// # Errors
    ///
    /// As [`Transport::write_eof`].
    fn write_eof(&self) -> Result<()>;
    /// As [`Transport::can_write_eof`].
    fn can_write_eof(&self) -> bool;
    /// As [`Transport::close`].
    fn close(&self);
    /// As [`Transport::abort`].
    fn abort(&self) {
        self.force_close(None)
    }
    /// Closes at once with `exc` as `connection_lost`'s error.
    fn force_close(&self, exc: Option<io::Error>);
    /// As [`Transport::is_closing`].
    fn is_closing(&self) -> bool;
    /// As [`Transport::pause_reading`].
    fn pause_reading(&self);
    /// As [`Transport::resume_reading`].
    fn resume_reading(&self);
    /// As [`Transport::is_reading`].
    fn is_reading(&self) -> bool;
    /// As [`Transport::set_write_buffer_limits`].
    ///
    /// # Errors
    ///
    /// As [`Transport::set_write_buffer_limits`].
    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()>;
    /// As [`Transport::get_write_buffer_limits`].
    fn get_write_buffer_limits(&self) -> (usize, usize);
    /// As [`Transport::get_write_buffer_size`].
    fn get_write_buffer_size(&self) -> usize;
    /// As [`Transport::get_extra_info`] (a layered transport adds its own keys to those of
    /// the transport underneath).
    fn get_extra_info(&self, key: Extra) -> Option<ExtraValue>;
    /// As [`Transport::socket`]: the fd underneath, if any.
    fn socket(&self) -> Option<SocketRef> {
        None
    }
    /// As [`Transport::kind`].
    fn kind(&self) -> FdKind {
        FdKind::Socket
    }
    /// As [`Transport::set_protocol`].
    fn set_protocol(&self, protocol: StreamProtocol);
    /// Calls `f` with the protocol as `&mut dyn Any` (as [`ProtocolHost::with_any`]); false
    /// once the transport let go of it.
    fn with_protocol_any(&self, f: &mut dyn FnMut(&mut dyn Any) -> bool) -> bool;
    /// The protocol cell, for [`Transport::protocol_ref`].
    fn protocol_host(&self) -> Rc<dyn ProtocolHost>;
    /// As [`Transport::protocol_type_name`].
    fn protocol_type_name(&self) -> Option<&'static str>;
    /// As [`Transport::get_loop`].
    fn get_loop(&self) -> Option<EventLoop>;
    /// As [`Transport::poll_flushed`].
    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// The transport as its `Debug` shows it.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// The fd stream transport's own state (the engine's [`Core`] holds the rest).
pub(crate) struct FdDriver {
    /// Fd kind.
    pub(crate) kind: FdKind,
    /// The fd number (for reports).
    pub(crate) raw: RawFd,
    /// Max bytes per read.
    pub(crate) max_read: usize,
    /// The next read burst reads until `WouldBlock` (set by `resume_reading`).
    pub(crate) drain_next: Cell<bool>,
    /// State.
    pub(crate) st: RefCell<StreamState>,
    /// fd + registration.
    pub(crate) io: RefCell<IoSlot>,
    /// Peer address.
    pub(crate) peername: Option<Addr>,
    /// Local address.
    pub(crate) sockname: Option<Addr>,
    /// Custom extra info.
    pub(crate) extra: Vec<(&'static str, Rc<dyn Any>)>,
}

/// Mutable state of the fd stream transport.
#[derive(Default)]
pub(crate) struct StreamState {
    /// `write_eof()` was called.
    pub(crate) eof_requested: bool,
    /// The write side was shut down.
    pub(crate) eof_sent: bool,
    /// `pause_reading()` is in effect.
    pub(crate) read_paused: bool,
    /// The peer's EOF was read.
    pub(crate) read_eof: bool,
    /// Buffered chunks.
    pub(crate) wbuf: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already sent.
    pub(crate) head: usize,
    /// Buffered bytes not yet sent.
    pub(crate) wsize: usize,
    /// Write interest is registered.
    pub(crate) want_write: bool,
    /// Buffered data was discarded by `abort()` or an error.
    pub(crate) unsent_lost: bool,
    /// Tasks waiting for the buffer to empty.
    pub(crate) flush_wakers: Vec<Waker>,
}

/// What a [`Transport`] handle points at.
#[derive(Clone)]
enum Repr {
    /// An fd transport (static dispatch).
    Fd(Rc<Core<FdDriver>>),
    /// A layered transport.
    Layered(Rc<dyn TransportBackend>),
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
    /// The transport.
    repr: Repr,
}

impl Transport {
    /// The handle of an fd transport.
    pub(crate) fn fd(core: Rc<Core<FdDriver>>) -> Transport {
        Transport {
            repr: Repr::Fd(core),
        }
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
    /// [`Error::InvalidState`](loop_core::Error::InvalidState) after `write_eof()` ("Cannot call write() after write_eof()",
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
    #[inline]
    pub fn write(&self, data: &[u8]) -> Result<()> {
        match &self.repr {
            Repr::Fd(c) => c.write_one(data),
            Repr::Layered(b) => b.write(&[data]),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.write_slices(&slices),
            Repr::Layered(b) => b.write(&slices),
        }
    }

    /// Closes the write side once the buffer is flushed (`shutdown(SHUT_WR)` for sockets,
    /// NET-60); for a write pipe, the same as [`close`](Transport::close) (PIPE-13). Repeat
    /// calls and calls on a closing transport do nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`](loop_core::Error::InvalidState) on a read-only pipe transport.
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
        match &self.repr {
            Repr::Fd(c) => c.write_eof(),
            Repr::Layered(b) => b.write_eof(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.driver.kind.is_writable(),
            Repr::Layered(b) => b.can_write_eof(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.close(),
            Repr::Layered(b) => b.close(),
        }
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
        self.force_close(None)
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
    #[inline]
    pub fn is_closing(&self) -> bool {
        match &self.repr {
            Repr::Fd(c) => c.lifecycle().is_closing(),
            Repr::Layered(b) => b.is_closing(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.pause_reading(),
            Repr::Layered(b) => b.pause_reading(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.resume_reading(),
            Repr::Layered(b) => b.resume_reading(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.is_reading(),
            Repr::Layered(b) => b.is_reading(),
        }
    }

    /// Sets the write-buffer limits (NET-65): both `None` → 64 KiB / 16 KiB; only `high` → low
    /// is `high / 4`; only `low` → high is `4 × low`. Lowering the limits below the current
    /// buffer size pauses the protocol at once; `high = 0` pauses on any buffered byte.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `high < low`: "high (…) must be >= low (…) must be >= 0".
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
        match &self.repr {
            Repr::Fd(c) => c.set_write_buffer_limits(high, low),
            Repr::Layered(b) => b.set_write_buffer_limits(high, low),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.write_buffer_limits(),
            Repr::Layered(b) => b.get_write_buffer_limits(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.driver.st.borrow().wsize,
            Repr::Layered(b) => b.get_write_buffer_size(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.extra_info(key),
            Repr::Layered(b) => b.get_extra_info(key),
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
        match &self.repr {
            Repr::Fd(c) => c.driver.peername.clone(),
            Repr::Layered(b) => b.get_extra_info(Extra::Peername)?.as_addr().cloned(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.driver.sockname.clone(),
            Repr::Layered(b) => b.get_extra_info(Extra::Sockname)?.as_addr().cloned(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.driver.io.borrow().raw(),
            Repr::Layered(b) => b.socket().map(|s| s.as_raw_fd()),
        }
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
        match &self.repr {
            Repr::Fd(c) => {
                let io = c.driver.io.borrow();
                Some(f(io.fd()?))
            }
            Repr::Layered(b) => b.socket().map(|s| f(s.as_fd())),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.driver.kind,
            Repr::Layered(b) => b.kind(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.set_protocol(protocol.into()),
            Repr::Layered(b) => b.set_protocol(protocol.into()),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.with_protocol(f),
            Repr::Layered(b) => {
                let mut f = Some(f);
                let mut out = None;
                b.with_protocol_any(&mut |any| match any.downcast_mut::<P>() {
                    Some(p) => {
                        out = f.take().map(|f| f(p));
                        true
                    }
                    None => false,
                });
                out
            }
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
        match &self.repr {
            Repr::Fd(c) => c.protocol_name(),
            Repr::Layered(b) => TransportBackend::protocol_type_name(&**b),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.get_loop(),
            Repr::Layered(b) => b.get_loop(),
        }
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
        match &self.repr {
            Repr::Fd(c) => c.poll_flushed(cx),
            Repr::Layered(b) => b.poll_flushed(cx),
        }
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
        self.as_ptr() == other.as_ptr()
    }

    /// The socket (or pipe) fd, as a [`SocketRef`] that keeps it open while it lives (`None`
    /// once the transport closed it). For a layered transport, the fd of the transport
    /// underneath.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let raw = std::os::fd::AsRawFd::as_raw_fd(&a);
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&t.socket().unwrap()), raw);
    /// t.abort();
    /// lp.run_until_complete(async {}).unwrap();
    /// assert!(t.socket().is_none());
    /// ```
    pub fn socket(&self) -> Option<SocketRef> {
        match &self.repr {
            Repr::Fd(c) => c.driver.io.borrow().shared().map(SocketRef::new),
            Repr::Layered(b) => b.socket(),
        }
    }

    /// A typed handle to the protocol (asyncio's `get_protocol()`), which keeps it alive and
    /// reachable after `connection_lost`. `with` gives `None` if the protocol is not a `P`.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// struct Counter(u32);
    /// impl Protocol for Counter {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, Counter(5), TransportOptions::socket()).unwrap();
    /// let p = t.protocol_ref::<Counter>();
    /// t.abort();
    /// lp.run_until_complete(async {}).unwrap(); // connection_lost ran
    /// assert_eq!(p.with(|c| c.0), Some(5));
    /// ```
    pub fn protocol_ref<P: 'static>(&self) -> ProtocolRef<P> {
        match &self.repr {
            Repr::Fd(c) => c.protocol_ref(),
            Repr::Layered(b) => ProtocolRef::new(b.protocol_host()),
        }
    }

    /// Closes at once with `exc` as `connection_lost`'s error (asyncio's `_force_close`):
    /// buffered data is discarded. For layered transports (TLS closing the transport under it
    /// on a protocol error).
    #[doc(hidden)]
    pub fn force_close(&self, exc: Option<io::Error>) {
        match &self.repr {
            Repr::Fd(c) => c.force_close(exc),
            Repr::Layered(b) => b.force_close(exc),
        }
    }

    /// A transport backed by another transport's protocol (a layered transport: TLS over TCP,
    /// message framing over a stream) instead of an fd. Its methods go to `backend`.
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let fd = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(!fd.is_layered());
    /// # fd.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn from_backend(backend: Rc<dyn TransportBackend>) -> Transport {
        Transport {
            repr: Repr::Layered(backend),
        }
    }

    /// True for a layered transport ([`from_backend`](Transport::from_backend)).
    ///
    /// ```
    /// # use loop_transport::{Protocol, Transport, TransportOptions};
    /// # struct P; impl Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
    /// assert!(!t.is_layered());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn is_layered(&self) -> bool {
        matches!(self.repr, Repr::Layered(_))
    }

    /// The address of the transport object (for `ptr_eq`).
    fn as_ptr(&self) -> *const () {
        match &self.repr {
            Repr::Fd(c) => Rc::as_ptr(c).cast(),
            Repr::Layered(b) => Rc::as_ptr(b).cast(),
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Fd(c) => f.write_str(&c.describe()),
            Repr::Layered(b) => b.describe(f),
        }
    }
}
