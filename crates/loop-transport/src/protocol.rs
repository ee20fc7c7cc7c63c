//! The protocol traits: what a transport tells the code that owns a connection.
//!
//! Every method has a default that does nothing (the default `eof_received` answers "close"),
//! so a protocol implements only what it needs. Methods take `&mut self`: the transport owns the
//! protocol and calls one method at a time, never re-entering a method that is still running
//! (see the crate documentation, "Re-entrancy").

use std::any::Any;
use std::fmt;
use std::io;

use crate::{Addr, Transport};

/// Downcasting and naming support for protocols, implemented for every `'static` type.
///
/// It is a supertrait of the protocol traits so that a transport can hand its protocol back as
/// its concrete type ([`Transport::with_protocol`]) and name it in error reports. You never
/// implement it yourself.
///
/// ```
/// use loop_transport::ProtocolAny;
/// struct Echo;
/// let mut e = Echo;
/// assert!(e.as_any_mut().downcast_mut::<Echo>().is_some());
/// assert!(e.protocol_type_name().ends_with("Echo"));
/// ```
pub trait ProtocolAny: Any {
    /// `self` as `&mut dyn Any`.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The type name of the protocol (`std::any::type_name`), used in error reports.
    fn protocol_type_name(&self) -> &'static str;
}

impl<T: Any> ProtocolAny for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn protocol_type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

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

/// A datagram protocol: asyncio's `DatagramProtocol`. The datagram transport itself lives in
/// loop-net; `T` is its type (so this crate does not depend on it), and a protocol that works
/// with any transport can implement the trait for every `T`.
///
/// Call sequence (NET-74): `connection_made` → (`datagram_received` | `error_received`)* →
/// `connection_lost`.
///
/// # Examples
///
/// ```
/// use loop_transport::{Addr, DatagramProtocol};
///
/// #[derive(Default)]
/// struct Count(usize);
///
/// impl<T> DatagramProtocol<T> for Count {
///     fn datagram_received(&mut self, data: &[u8], _addr: &Addr) {
///         self.0 += data.len();
///     }
/// }
///
/// let mut c = Count::default();
/// DatagramProtocol::<()>::datagram_received(&mut c, b"abc", &Addr::Unnamed);
/// assert_eq!(c.0, 3);
/// ```
pub trait DatagramProtocol<T: ?Sized>: ProtocolAny {
    /// The endpoint is set up.
    fn connection_made(&mut self, transport: &T) {
        let _ = transport;
    }

    /// A datagram arrived from `addr`.
    fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
        let _ = (data, addr);
    }

    /// A send or receive failed with an OS error (e.g. ICMP port unreachable); the endpoint
    /// stays open (NET-76).
    fn error_received(&mut self, exc: io::Error) {
        let _ = exc;
    }

    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}

    /// The endpoint is closed.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}

/// A subprocess protocol: asyncio's `SubprocessProtocol`. The subprocess transport lives in
/// loop-subprocess; `T` is its type.
///
/// Order (SUB-04): `connection_made` first; per fd, `pipe_data_received`* then one
/// `pipe_connection_lost`; `process_exited` once, in no fixed order relative to the pipe
/// events; `connection_lost` last.
///
/// # Examples
///
/// ```
/// use loop_transport::SubprocessProtocol;
///
/// #[derive(Default)]
/// struct Output {
///     stdout: Vec<u8>,
///     exited: bool,
/// }
///
/// impl<T> SubprocessProtocol<T> for Output {
///     fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
///         if fd == 1 {
///             self.stdout.extend_from_slice(data);
///         }
///     }
///     fn process_exited(&mut self) {
///         self.exited = true;
///     }
/// }
///
/// let mut o = Output::default();
/// SubprocessProtocol::<()>::pipe_data_received(&mut o, 1, b"hi");
/// assert_eq!(o.stdout, b"hi");
/// ```
pub trait SubprocessProtocol<T: ?Sized>: ProtocolAny {
    /// The process was started and its pipes are connected.
    fn connection_made(&mut self, transport: &T) {
        let _ = transport;
    }

    /// The child wrote `data` to its stdout (`fd == 1`) or stderr (`fd == 2`).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// One of the child's pipes closed (`exc` is the error, if any).
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }

    /// The child exited.
    fn process_exited(&mut self) {}

    /// As [`Protocol::pause_writing`] (for the stdin pipe).
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}

    /// The process exited and every pipe is closed.
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
