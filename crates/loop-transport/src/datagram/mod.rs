//! The datagram transport: asyncio's `DatagramTransport` and `DatagramProtocol`, for UDP and
//! Unix datagram sockets (loop-net's `create_datagram_endpoint` makes the socket).
//!
//! A datagram socket shares little I/O with a byte stream: every read is one whole message
//! with a sender address, there is no EOF, no half-close and no partial write, and an OS error
//! on one datagram (an ICMP "port unreachable" reported back on a connected socket) must not
//! end the endpoint. So the driver here is its own; the engine gives it the same protocol call
//! policy, lifecycle and flow control as the stream transport.
//!
//! **Reads.** Each readiness event reads datagrams until `WouldBlock` (a short read says
//! nothing about what else is queued), at most 64 per event before yielding to other work
//! through the ready queue. Each read takes at most 256 KiB (NET-74) into the loop's shared
//! read buffer. An OS error from `recvfrom` goes to `error_received` and reading goes on
//! (NET-76).
//!
//! **Sends.** `sendto` sends at once when nothing is queued. A send that would block queues a
//! copy of the datagram; queued datagrams go out in order when the socket becomes writable,
//! and `close()` waits for them before `connection_lost` (NET-77). The write-buffer size used
//! for flow control counts each queued datagram's bytes plus 8 bytes of bookkeeping, as
//! asyncio 3.13 does. An OS error from a send goes to `error_received`; the datagram is dropped
//! and the endpoint stays open.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use loop_core::{Error, EventLoop, LoopFuture, Result};
use rustix::io::Errno;
use rustix::net::{SocketAddrAny, SocketType};

use crate::addr::Addr;
use crate::engine::hooks::{IoSlot, Readiness};
use crate::engine::{Core, Driver, EngineProtocol, Flow, ProtocolRef};
use crate::protocol::ProtocolAny;
use crate::stream::{Extra, ExtraValue, SocketRef};

mod io_path;

/// The most bytes one receive takes (NET-74): 256 KiB. A longer datagram is truncated.
///
/// ```
/// assert_eq!(loop_transport::MAX_DATAGRAM_READ, 256 * 1024);
/// ```
pub const MAX_DATAGRAM_READ: usize = 256 * 1024;

/// A datagram protocol: asyncio's `DatagramProtocol`, driven by a [`DatagramTransport`].
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
/// impl DatagramProtocol for Count {
///     fn datagram_received(&mut self, data: &[u8], _addr: &Addr) {
///         self.0 += data.len();
///     }
/// }
///
/// let mut c = Count::default();
/// c.datagram_received(b"abc", &Addr::Unnamed);
/// assert_eq!(c.0, 3);
/// ```
pub trait DatagramProtocol: ProtocolAny {
    /// The endpoint is set up.
    fn connection_made(&mut self, transport: &DatagramTransport) {
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

    /// As [`Protocol::pause_writing`](crate::Protocol::pause_writing).
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`](crate::Protocol::resume_writing).
    fn resume_writing(&mut self) {}

    /// The endpoint is closed.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}

impl EngineProtocol for Box<dyn DatagramProtocol> {
    type Handle = DatagramTransport;

    fn type_name(&self) -> &'static str {
        (**self).protocol_type_name()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        (**self).as_any_mut()
    }

    fn connection_made(&mut self, transport: &DatagramTransport) {
        (**self).connection_made(transport)
    }

    fn pause_writing(&mut self) {
        (**self).pause_writing()
    }

    fn resume_writing(&mut self) {
        (**self).resume_writing()
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        (**self).connection_lost(exc)
    }
}

/// The datagram transport's own state (the engine's [`Core`] holds the rest).
pub(crate) struct DgramDriver {
    /// fd number, for reports.
    raw: RawFd,
    /// Default destination.
    address: Option<Addr>,
    /// Connected socket (send, not sendto).
    connected: bool,
    /// Peer address (connected sockets).
    peername: Option<Addr>,
    /// Local address.
    sockname: Option<Addr>,
    /// Send queue.
    st: RefCell<DgramState>,
    /// Socket + registration.
    io: RefCell<IoSlot>,
}

/// The send queue.
#[derive(Default)]
struct DgramState {
    /// Queued datagrams and their destination (`None` on a connected socket).
    queue: VecDeque<(Vec<u8>, Option<SocketAddrAny>)>,
    /// Queued bytes plus the per-datagram overhead.
    qsize: usize,
    /// Write interest is registered.
    want_write: bool,
    /// Reads done in the current burst.
    burst: u32,
}

impl Driver for DgramDriver {
    type Protocol = Box<dyn DatagramProtocol>;
    /// `error_received(exc)`.
    type Event = io::Error;

    fn describe(core: &Core<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = core.lifecycle().label();
        write!(f, "<DatagramTransport fd={} {state}>", core.driver.raw)
    }

    fn handle(core: &Rc<Core<Self>>) -> DatagramTransport {
        DatagramTransport {
            inner: core.clone(),
        }
    }

    fn buffer_size(core: &Core<Self>) -> usize {
        core.driver.st.borrow().qsize
    }

    fn deliver_event(core: &Core<Self>, exc: io::Error) {
        let _ = core.call("error_received", crate::engine::Policy::Fatal, |p| {
            p.error_received(exc)
        });
    }

    fn ready(core: &Core<Self>, r: Readiness) {
        if r.is_readable() {
            core.read_ready();
        }
        if r.is_writable() {
            core.write_ready();
        }
    }

    fn update_interest(core: &Core<Self>) {
        core.update_interest();
    }

    fn discard(core: &Core<Self>) {
        let mut st = core.driver.st.borrow_mut();
        st.queue.clear();
        st.qsize = 0;
        st.want_write = false;
    }

    fn release(core: &Core<Self>) {
        {
            let mut st = core.driver.st.borrow_mut();
            st.queue.clear();
            st.qsize = 0;
        }
        core.driver.io.borrow_mut().release();
    }
}

/// NET-68: the fd must be a datagram socket.
fn check_datagram_socket(sock: &OwnedFd) -> Result<()> {
    let raw = sock.as_raw_fd();
    match rustix::net::sockopt::socket_type(sock) {
        Ok(SocketType::DGRAM) => Ok(()),
        Ok(t) => Err(Error::invalid_argument(format!(
            "A datagram socket was expected, got fd {raw}, {}; use create_connection for stream sockets",
            socket_type_name(t)
        ))),
        Err(Errno::NOTSOCK) => Err(Error::invalid_argument(format!(
            "A datagram socket was expected, got fd {raw}, which is not a socket"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// "a stream socket", "a raw socket"...
fn socket_type_name(t: SocketType) -> String {
    match t {
        SocketType::STREAM => "a stream socket".into(),
        SocketType::DGRAM => "a datagram socket".into(),
        SocketType::SEQPACKET => "a seqpacket socket".into(),
        SocketType::RAW => "a raw socket".into(),
        other => format!("a socket of type {}", other.as_raw()),
    }
}

/// A datagram endpoint: asyncio's `DatagramTransport`, a cheap clonable handle to a datagram
/// socket and its [`DatagramProtocol`].
///
/// Made by loop-net's `create_datagram_endpoint`, or by [`DatagramTransport::new`] from a
/// datagram socket. Every method may be called from protocol methods, callbacks and tasks of
/// the loop's thread. After `connection_lost` the handle still answers (`is_closing()` is
/// true, sends are dropped).
///
/// ```
/// use loop_transport::{DatagramProtocol, DatagramTransport};
/// struct Quiet;
/// impl DatagramProtocol for Quiet {}
/// let lp = loop_core::EventLoop::new()?;
/// let t = DatagramTransport::new(&lp, std::net::UdpSocket::bind("127.0.0.1:0")?, Quiet)?;
/// assert!(t.sockname().unwrap().as_inet().is_some());
/// assert!(t.peername().is_none());
/// t.close();
/// assert!(t.is_closing());
/// lp.run_until_complete(async {})?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DatagramTransport {
    /// The shared endpoint.
    inner: Rc<Core<DgramDriver>>,
}

impl DatagramTransport {
    /// Wraps a datagram socket (bound or not, connected or not): sets it non-blocking,
    /// registers it with the loop and schedules `protocol.connection_made(transport)`; reading
    /// starts after it returned. A connected socket sends to its peer by default (`sendto`
    /// with `None`). loop-net's `create_datagram_endpoint` makes the socket from addresses
    /// and awaits `connection_made`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] for a closed loop; [`Error::InvalidArgument`] for an fd that is not a
    /// datagram socket; [`Error::FdInUse`] if the loop watches it already; the OS error of
    /// `ioctl` / `epoll_ctl`. The socket is closed on error.
    ///
    /// ```
    /// use loop_transport::{DatagramProtocol, DatagramTransport};
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = DatagramTransport::new(&lp, std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), Quiet).unwrap();
    /// assert!(t.remote_address().is_none());
    /// let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(DatagramTransport::new(&lp, tcp, Quiet).is_err());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn new(
        lp: &EventLoop,
        sock: impl Into<OwnedFd>,
        protocol: impl DatagramProtocol,
    ) -> Result<DatagramTransport> {
        let sock: OwnedFd = sock.into();
        check_datagram_socket(&sock)?;
        let peer = Addr::peername_of(&sock).ok();
        let connected = peer.is_some();
        DatagramTransport::with_parts(lp, sock, Box::new(protocol), peer, connected, None)
    }

    /// Checks that `sock` is a datagram socket (NET-68), with the error `new` gives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming what the fd is instead.
    #[doc(hidden)]
    pub fn check_socket(sock: &OwnedFd) -> Result<()> {
        check_datagram_socket(sock)
    }

    /// Wraps a socket with its default destination `address` (`connected`: the socket is
    /// connected to it, so sends use `send`); `waiter` completes after `connection_made`.
    /// For loop-net's `create_datagram_endpoint`, which checked the socket.
    #[doc(hidden)]
    pub fn with_parts(
        lp: &EventLoop,
        sock: OwnedFd,
        protocol: Box<dyn DatagramProtocol>,
        address: Option<Addr>,
        connected: bool,
        waiter: Option<LoopFuture<()>>,
    ) -> Result<DatagramTransport> {
        if lp.is_closed() {
            return Err(Error::Closed);
        }
        rustix::io::ioctl_fionbio(&sock, true)?;
        let raw = sock.as_raw_fd();
        let peername = if connected {
            Addr::peername_of(&sock).ok()
        } else {
            None
        };
        let sockname = Addr::sockname_of(&sock).ok();
        let driver = DgramDriver {
            raw,
            address,
            connected,
            peername,
            sockname,
            st: RefCell::new(DgramState::default()),
            io: RefCell::new(IoSlot::empty()),
        };
        let inner = Core::new(lp, protocol, Flow::default(), driver);
        if let Some(w) = waiter {
            inner.set_waiter(w);
        }
        let owner = format!("<DatagramTransport fd={raw}>");
        let slot = IoSlot::register(lp, sock, &owner, inner.clone())?;
        *inner.driver.io.borrow_mut() = slot;
        inner.schedule_made()?;
        inner.make_live();
        Ok(DatagramTransport { inner })
    }

    /// The socket's fd, as a [`SocketRef`] that keeps it open while it lives (`None` once
    /// the endpoint closed it).
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = DatagramTransport::new(&lp, std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), Q).unwrap();
    /// let s = t.socket().unwrap();
    /// assert_eq!(rustix::net::sockopt::socket_type(&s).unwrap(), rustix::net::SocketType::DGRAM);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn socket(&self) -> Option<SocketRef> {
        self.inner.driver.io.borrow().shared().map(SocketRef::new)
    }

    /// A typed handle to the protocol that keeps it alive and reachable after
    /// `connection_lost` (what `create_datagram_endpoint` returns beside the transport).
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// struct Q(u8);
    /// impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let t = DatagramTransport::new(&lp, std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), Q(7)).unwrap();
    /// let p = t.protocol_ref::<Q>();
    /// t.abort();
    /// lp.run_until_complete(async {}).unwrap();
    /// assert_eq!(p.with(|q| q.0), Some(7));
    /// ```
    pub fn protocol_ref<P: 'static>(&self) -> ProtocolRef<P> {
        self.inner.protocol_ref()
    }

    /// Sends one datagram (NET-75). `addr` must be `None` or the remote address on an endpoint
    /// made with `remote_addr` (the datagram goes there); without one, `addr` is required.
    /// Empty data sends an empty datagram.
    ///
    /// Nothing queued: the datagram is sent at once. If the socket would block, a copy is
    /// queued and sent, in order, when the socket is writable (NET-77); the protocol's
    /// `pause_writing()` is called when the queue goes above the high-water mark. An OS error
    /// (`ECONNREFUSED` after an ICMP "port unreachable", say) goes to the protocol's
    /// `error_received` — at once, or right after the running protocol method returns — and
    /// the endpoint stays open (NET-76). After `close()` or `abort()` the datagram is dropped;
    /// from the fifth dropped datagram on, each logs a warning.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`]: "Invalid address: must be None or \<remote\>" on an endpoint
    /// with a remote address; no address on one without; an unnamed address.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let to = peer.local_addr().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// t.sendto(b"hi", Some(&to.into())).unwrap();
    /// assert!(t.sendto(b"hi", None).is_err()); // no default destination
    /// let mut buf = [0; 8];
    /// assert_eq!(peer.recv(&mut buf).unwrap(), 2);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn sendto(&self, data: &[u8], addr: Option<&Addr>) -> Result<()> {
        self.inner.sendto(data, addr)
    }

    /// Closes the endpoint: `is_closing()` is true at once and reading stops; queued
    /// datagrams are still sent, then `connection_lost(None)` is delivered through the ready
    /// queue (NET-77). Repeat calls do nothing.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// t.close();
    /// t.close();
    /// assert!(t.is_closing());
    /// lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn close(&self) {
        self.inner.close()
    }

    /// Closes at once: queued datagrams are discarded and `connection_lost(None)` is delivered
    /// through the ready queue.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// t.abort();
    /// assert!(t.is_closing());
    /// lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn abort(&self) {
        self.inner.force_close(None)
    }

    /// True once the endpoint is closing or closed.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(!t.is_closing());
    /// t.close();
    /// assert!(t.is_closing());
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn is_closing(&self) -> bool {
        self.inner.lifecycle().is_closing()
    }

    /// Bytes queued and not yet sent, plus 8 per queued datagram (NET-77).
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert_eq!(t.get_write_buffer_size(), 0);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.driver.st.borrow().qsize
    }

    /// Sets the send-queue limits, with the stream transports' rules (NET-65): both `None` →
    /// 64 KiB / 16 KiB; only `high` → low is `high / 4`; only `low` → high is `4 × low`.
    /// Lowering them below the current size pauses the protocol at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `high < low`.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// t.set_write_buffer_limits(Some(400), None).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (100, 400));
    /// assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        self.inner.set_write_buffer_limits(high, low)
    }

    /// `(low, high)`, asyncio's order.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// t.set_write_buffer_limits(Some(4096), None).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (1024, 4096));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.write_buffer_limits()
    }

    /// Extra information (NET-66): [`Extra::Peername`] (connected endpoints only),
    /// [`Extra::Sockname`], [`Extra::Socket`] (the fd number, while open). Other keys give
    /// `None`.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # use loop_transport::Extra;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.get_extra_info(Extra::Sockname).is_some());
    /// assert!(t.get_extra_info(Extra::Peername).is_none());
    /// assert!(t.get_extra_info(Extra::Socket).unwrap().as_fd().is_some());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_extra_info(&self, key: Extra) -> Option<ExtraValue> {
        match key {
            Extra::Peername => self.peername().map(ExtraValue::Addr),
            Extra::Sockname => self.sockname().map(ExtraValue::Addr),
            Extra::Socket => self.fileno().map(ExtraValue::Fd),
            _ => None,
        }
    }

    /// The peer address of a connected endpoint.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.peername().is_none()); // not connected
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn peername(&self) -> Option<Addr> {
        self.inner.driver.peername.clone()
    }

    /// The local address.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert_ne!(t.sockname().unwrap().as_inet().unwrap().port(), 0);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn sockname(&self) -> Option<Addr> {
        self.inner.driver.sockname.clone()
    }

    /// The default destination: `remote_addr` (also with `allow_broadcast`, where the socket
    /// is not connected), or the peer of an adopted connected socket.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.remote_address().is_none());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn remote_address(&self) -> Option<&Addr> {
        self.inner.driver.address.as_ref()
    }

    /// The socket's fd number while it is open.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.fileno().is_some());
    /// t.abort();
    /// lp.run_until_complete(async {}).unwrap();
    /// assert!(t.fileno().is_none());
    /// ```
    pub fn fileno(&self) -> Option<RawFd> {
        self.inner.driver.io.borrow().raw()
    }

    /// Calls `f` with a borrowed view of the socket (for `getsockopt` and the like); `None`
    /// once it is closed. Do not read from, write to or close it behind the transport's back.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// let ty = t.with_fd(|fd| rustix::net::sockopt::socket_type(fd).unwrap()).unwrap();
    /// assert_eq!(ty, rustix::net::SocketType::DGRAM);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let io = self.inner.driver.io.borrow();
        Some(f(io.fd()?))
    }

    /// asyncio's `get_protocol()`: calls `f` with the protocol as its concrete type `P`.
    /// `None` if it is of another type, gone (after `connection_lost`), or running right now.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// struct Q(u8);
    /// impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q(5)).unwrap();
    /// assert_eq!(t.with_protocol(|q: &mut Q| q.0), Some(5));
    /// assert_eq!(t.with_protocol(|_: &mut String| ()), None); // another type
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    #[doc(alias = "get_protocol")]
    pub fn with_protocol<P: 'static, R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        self.inner.with_protocol(f)
    }

    /// Replaces the protocol (no `connection_made` for the new one). Called from inside a
    /// protocol method, the switch happens when that method returns.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// struct A;
    /// impl loop_transport::DatagramProtocol for A {}
    /// struct B;
    /// impl loop_transport::DatagramProtocol for B {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, A).unwrap();
    /// t.set_protocol(B);
    /// assert!(t.protocol_type_name().unwrap().ends_with("B"));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_protocol(&self, protocol: impl DatagramProtocol) {
        self.inner.set_protocol(Box::new(protocol))
    }

    /// The protocol's type name (`None` once it is gone).
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.protocol_type_name().unwrap().ends_with("Q"));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn protocol_type_name(&self) -> Option<&'static str> {
        self.inner.protocol_name()
    }

    /// The loop, until the endpoint is torn down after `connection_lost`.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.get_loop().unwrap().ptr_eq(&lp));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.inner.get_loop()
    }

    /// True if both handles are the same endpoint.
    ///
    /// ```
    /// # use loop_transport::DatagramTransport;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let t = DatagramTransport::new(&lp, sock, Q).unwrap();
    /// assert!(t.ptr_eq(&t.clone()));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn ptr_eq(&self, other: &DatagramTransport) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.describe())
    }
}
