//! Datagram endpoints: asyncio's `create_datagram_endpoint` and its datagram transport, for UDP
//! over IPv4 / IPv6 and for Unix-domain datagram sockets.
//!
//! # Why it works the way it does
//!
//! **Its own transport.** A datagram socket shares little with a byte stream: every read is one
//! whole message with a sender address, there is no EOF, no half-close and no partial write,
//! and an OS error on one datagram (an ICMP "port unreachable" reported back on a connected
//! socket) must not end the endpoint. So [`DatagramTransport`] is a separate, small transport
//! rather than another mode of the stream transport; it follows the same rules (edge-triggered
//! registration, deferred `connection_made` / `connection_lost`, protocol methods never
//! re-entered, panics caught and reported).
//!
//! **Reads.** Each readiness event reads datagrams until `WouldBlock` (a short read says
//! nothing about what else is queued), at most 64 per event before yielding to other work
//! through the ready queue. Each read takes at most 256 KiB (NET-74) into one buffer shared by
//! every datagram endpoint of the loop. An OS error from `recvfrom` goes to
//! `error_received` and reading goes on (NET-76).
//!
//! **Sends.** `sendto` sends at once when nothing is queued. A send that would block queues a
//! copy of the datagram; queued datagrams go out in order when the socket becomes writable,
//! and `close()` waits for them before `connection_lost` (NET-77). The write-buffer size used
//! for flow control counts each queued datagram's bytes plus 8 bytes of bookkeeping, as
//! asyncio 3.13 does. An OS error from a send goes to `error_received`; the datagram is dropped
//! and the endpoint stays open.
//!
//! **Addresses.** IP literals are used as they are (no resolver, NET-18); host names and
//! service names go through the system resolver on the loop's default executor (NET-16).
//! Unix-domain endpoints take paths; a stale socket file at the local path is removed before
//! binding (NET-70).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use loop_core::internal::{IoHandler, LoopInternals, Registered};
use loop_core::{
    Error, EventLoop, Exception, ExceptionContext, Fatal, LoopFuture, Mode, Readiness, Result,
};
use loop_executor::ExecutorExt;
use loop_transport::{Addr, DatagramProtocol, Extra, ExtraValue};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrAny, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::resolve::{
    getaddrinfo_blocking, numeric_addrinfo, AddrInfo, Hints, AF_INET, AF_INET6, AF_UNSPEC,
    AI_PASSIVE, SOCK_DGRAM,
};

/// The most bytes one receive takes (NET-74): 256 KiB. A longer datagram is truncated.
///
/// ```
/// assert_eq!(loop_net::MAX_DATAGRAM_READ, 256 * 1024);
/// ```
pub const MAX_DATAGRAM_READ: usize = 256 * 1024;

/// Bookkeeping bytes counted per queued datagram in the write-buffer size (NET-77).
const QUEUE_OVERHEAD: usize = 8;
/// Datagrams read in one readiness event before yielding to other work.
const MAX_READS_PER_EVENT: u32 = 64;
/// Default high-water mark of the send queue.
const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Dropped sends after which each further one logs a warning (NET-77).
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// `AF_UNIX`: the Unix-domain family, for [`DatagramOptions::family`].
///
/// ```
/// assert_eq!(loop_net::AF_UNIX, libc::AF_UNIX);
/// ```
pub const AF_UNIX: i32 = libc::AF_UNIX;

/// An address given to [`create_datagram_endpoint`](DatagramExt::create_datagram_endpoint):
/// a host and port to resolve, or a ready address (IP address, Unix path, abstract name).
///
/// Built with `into()` from `(&str, u16)`, `(String, u16)`, `(&str, &str)` (a service name as
/// port), `SocketAddr`, [`Addr`], `&Path` or `PathBuf`.
///
/// ```
/// use loop_net::DatagramAddr;
/// let a: DatagramAddr = ("localhost", 9999).into();
/// assert_eq!(a.to_string(), "localhost:9999");
/// let b: DatagramAddr = "127.0.0.1:53".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(b.to_string(), "127.0.0.1:53");
/// let c: DatagramAddr = std::path::Path::new("/tmp/d.sock").into();
/// assert!(c.is_unix());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatagramAddr {
    /// A host name or IP literal and a port number or service name. IP literals skip the
    /// resolver; an empty host means every local interface (for a local address) or the
    /// loopback interface (for a remote one).
    Host {
        /// Host name or IP literal.
        host: String,
        /// Port number or service name (`"domain"`).
        port: String,
    },
    /// A ready address.
    Addr(Addr),
}

impl DatagramAddr {
    /// A host and a port (or service name).
    ///
    /// ```
    /// let a = loop_net::DatagramAddr::host("example.org", "domain");
    /// assert_eq!(a.to_string(), "example.org:domain");
    /// ```
    pub fn host(host: impl Into<String>, port: impl Into<String>) -> DatagramAddr {
        DatagramAddr::Host {
            host: host.into(),
            port: port.into(),
        }
    }

    /// True for a Unix-domain address (path or abstract name).
    ///
    /// ```
    /// assert!(!loop_net::DatagramAddr::host("::1", "9").is_unix());
    /// ```
    pub fn is_unix(&self) -> bool {
        matches!(
            self,
            DatagramAddr::Addr(Addr::Unix(_) | Addr::UnixAbstract(_))
        )
    }
}

impl fmt::Display for DatagramAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramAddr::Host { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            DatagramAddr::Host { host, port } => write!(f, "{host}:{port}"),
            DatagramAddr::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl From<(&str, u16)> for DatagramAddr {
    fn from((h, p): (&str, u16)) -> DatagramAddr {
        DatagramAddr::host(h, p.to_string())
    }
}

impl From<(String, u16)> for DatagramAddr {
    fn from((h, p): (String, u16)) -> DatagramAddr {
        DatagramAddr::host(h, p.to_string())
    }
}

impl From<(&str, &str)> for DatagramAddr {
    fn from((h, p): (&str, &str)) -> DatagramAddr {
        DatagramAddr::host(h, p)
    }
}

impl From<SocketAddr> for DatagramAddr {
    fn from(a: SocketAddr) -> DatagramAddr {
        DatagramAddr::Addr(Addr::Inet(a))
    }
}

impl From<Addr> for DatagramAddr {
    fn from(a: Addr) -> DatagramAddr {
        DatagramAddr::Addr(a)
    }
}

impl From<&Path> for DatagramAddr {
    fn from(p: &Path) -> DatagramAddr {
        DatagramAddr::Addr(Addr::Unix(p.to_path_buf()))
    }
}

impl From<PathBuf> for DatagramAddr {
    fn from(p: PathBuf) -> DatagramAddr {
        DatagramAddr::Addr(Addr::Unix(p))
    }
}

/// The options of [`create_datagram_endpoint`](DatagramExt::create_datagram_endpoint)
/// (asyncio's keyword arguments). Build it with struct update syntax from `Default`:
///
/// ```
/// use loop_net::{DatagramOptions, AF_INET};
/// let o = DatagramOptions {
///     local_addr: Some(("127.0.0.1", 0).into()),
///     family: AF_INET,
///     ..Default::default()
/// };
/// assert!(o.remote_addr.is_none() && !o.reuse_port);
/// ```
#[derive(Debug, Default)]
pub struct DatagramOptions {
    /// Address to bind the socket to.
    pub local_addr: Option<DatagramAddr>,
    /// Address to connect the socket to (or, with `allow_broadcast`, the default destination).
    pub remote_addr: Option<DatagramAddr>,
    /// Address family (`AF_INET`, `AF_INET6`, [`AF_UNIX`]); 0 picks it from the addresses
    /// (Unix paths give `AF_UNIX`).
    pub family: i32,
    /// Protocol number (0: the family's default, UDP for IP).
    pub proto: i32,
    /// `AI_*` flags for the resolver.
    pub flags: i32,
    /// Set `SO_REUSEPORT`, so that several endpoints may bind the same address (NET-72).
    pub reuse_port: bool,
    /// Set `SO_BROADCAST`; `remote_addr` then only sets the default destination and the
    /// socket is not connected (NET-73).
    pub allow_broadcast: bool,
    /// An existing datagram socket to use instead of creating one; none of the other options
    /// may then be given (NET-68).
    pub sock: Option<OwnedFd>,
}

impl DatagramOptions {
    /// Options with just a local address.
    ///
    /// ```
    /// let o = loop_net::DatagramOptions::local(("127.0.0.1", 9999));
    /// assert!(o.local_addr.is_some());
    /// ```
    pub fn local(addr: impl Into<DatagramAddr>) -> DatagramOptions {
        DatagramOptions {
            local_addr: Some(addr.into()),
            ..Default::default()
        }
    }

    /// Options with just a remote address.
    ///
    /// ```
    /// let o = loop_net::DatagramOptions::remote(("127.0.0.1", 9999));
    /// assert!(o.remote_addr.is_some());
    /// ```
    pub fn remote(addr: impl Into<DatagramAddr>) -> DatagramOptions {
        DatagramOptions {
            remote_addr: Some(addr.into()),
            ..Default::default()
        }
    }

    /// Options adopting an existing socket.
    ///
    /// ```
    /// let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let o = loop_net::DatagramOptions::sock(s);
    /// assert!(o.sock.is_some());
    /// ```
    pub fn sock(sock: impl Into<OwnedFd>) -> DatagramOptions {
        DatagramOptions {
            sock: Some(sock.into()),
            ..Default::default()
        }
    }

    /// The options other than `sock` that were given, as `name=value` (NET-68).
    fn modifiers(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(a) = &self.local_addr {
            v.push(format!("local_addr={a}"));
        }
        if let Some(a) = &self.remote_addr {
            v.push(format!("remote_addr={a}"));
        }
        if self.family != 0 {
            v.push(format!("family={}", self.family));
        }
        if self.proto != 0 {
            v.push(format!("proto={}", self.proto));
        }
        if self.flags != 0 {
            v.push(format!("flags={}", self.flags));
        }
        if self.reuse_port {
            v.push("reuse_port=true".into());
        }
        if self.allow_broadcast {
            v.push("allow_broadcast=true".into());
        }
        v
    }
}

/// `create_datagram_endpoint`, as a method of [`EventLoop`].
///
/// ```
/// use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
/// struct Quiet;
/// impl loop_transport::DatagramProtocol<DatagramTransport> for Quiet {}
/// let lp = loop_core::EventLoop::new()?;
/// let l = lp.clone();
/// let (t, _) = lp.run_until_complete(async move {
///     l.create_datagram_endpoint(|| Quiet, DatagramOptions::local(("127.0.0.1", 0))).await
/// })??;
/// t.close();
/// # lp.run_until_complete(async {})?;
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait DatagramExt {
    /// Creates a datagram endpoint (asyncio's `create_datagram_endpoint`): a socket, a
    /// [`DatagramTransport`] over it and the protocol made by `protocol_factory` (called once).
    /// Returns once `connection_made` ran (NET-74).
    ///
    /// * With `sock`: the socket is adopted as it is (made non-blocking); it must be a
    ///   datagram socket and no other option may be given (NET-68).
    /// * Without addresses: an unbound socket of `family` (NET-69).
    /// * With Unix paths (or `family` [`AF_UNIX`]): a Unix datagram socket; a stale socket
    ///   file at the local path is removed first (NET-70).
    /// * Otherwise both addresses are resolved (IP literals directly, names on the default
    ///   executor) and the first (family, protocol) pair that both resolve to and that can be
    ///   bound / connected is used (NET-71).
    ///
    /// The socket is bound to `local_addr`, connected to `remote_addr` (unless
    /// `allow_broadcast`), and gets `SO_REUSEPORT` / `SO_BROADCAST` only on request; never
    /// `SO_REUSEADDR` (NET-72, NET-73).
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`]: `sock` with other options or not a datagram socket; no
    ///   address and no family ("unexpected address family"); a host/port for a Unix endpoint
    ///   or a path for an IP one; no (family, protocol) pair common to both addresses ("can not
    ///   get address information"); `reuse_port` unsupported.
    /// * [`Error::Io`]: the resolver's error or an empty result; socket creation, bind or
    ///   connect failures (of the first candidate when all fail).
    /// * [`Error::ExecutorShutdown`] if a name must be resolved after the default executor was
    ///   shut down; [`Error::Closed`] for a closed loop.
    /// * The panic of `connection_made`, if it panicked.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the socket is closed (or the transport,
    /// once made, is closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use loop_core::{EventLoop, LoopFuture};
    /// use loop_net::{Addr, DatagramExt, DatagramOptions, DatagramTransport};
    /// use loop_transport::DatagramProtocol;
    ///
    /// struct Echo(Option<DatagramTransport>);
    /// impl DatagramProtocol<DatagramTransport> for Echo {
    ///     fn connection_made(&mut self, t: &DatagramTransport) {
    ///         self.0 = Some(t.clone());
    ///     }
    ///     fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
    ///         self.0.as_ref().unwrap().sendto(data, Some(addr)).unwrap();
    ///     }
    /// }
    ///
    /// struct Client(LoopFuture<Vec<u8>>);
    /// impl DatagramProtocol<DatagramTransport> for Client {
    ///     fn datagram_received(&mut self, data: &[u8], _addr: &Addr) {
    ///         let _ = self.0.set_result(data.to_vec());
    ///     }
    /// }
    ///
    /// let lp = EventLoop::new()?;
    /// let l = lp.clone();
    /// let reply = lp.run_until_complete(async move {
    ///     let (server, _) = l
    ///         .create_datagram_endpoint(|| Echo(None), DatagramOptions::local(("127.0.0.1", 0)))
    ///         .await?;
    ///     let at = server.sockname().unwrap();
    ///     let got = l.create_future();
    ///     let g = got.clone();
    ///     let (client, _) = l
    ///         .create_datagram_endpoint(move || Client(g), DatagramOptions::remote(at))
    ///         .await?;
    ///     client.sendto(b"ping", None)?;
    ///     let reply = got.await?;
    ///     client.close();
    ///     server.close();
    ///     Ok::<_, loop_core::Error>(reply)
    /// })??;
    /// assert_eq!(reply, b"ping");
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn create_datagram_endpoint<P, F>(
        &self,
        protocol_factory: F,
        options: DatagramOptions,
    ) -> impl Future<Output = Result<(DatagramTransport, DatagramProtocolRef<P>)>> + 'static
    where
        P: DatagramProtocol<DatagramTransport> + 'static,
        F: FnOnce() -> P + 'static;
}

impl DatagramExt for EventLoop {
    fn create_datagram_endpoint<P, F>(
        &self,
        protocol_factory: F,
        options: DatagramOptions,
    ) -> impl Future<Output = Result<(DatagramTransport, DatagramProtocolRef<P>)>> + 'static
    where
        P: DatagramProtocol<DatagramTransport> + 'static,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        async move {
            if lp.is_closed() {
                return Err(Error::Closed);
            }
            let opened = match options.sock {
                Some(_) => adopt(options)?,
                None => open(&lp, &options).await?,
            };
            let protocol = protocol_factory();
            let waiter = lp.create_future::<()>();
            let t = DatagramTransport::new(&lp, opened, Box::new(protocol), waiter.clone())?;
            let guard = CloseOnDrop(Some(t.clone()));
            waiter.await?;
            std::mem::forget(guard);
            Ok((
                t.clone(),
                DatagramProtocolRef {
                    transport: t,
                    _p: PhantomData,
                },
            ))
        }
    }
}

/// Closes a transport whose creation was interrupted.
struct CloseOnDrop(Option<DatagramTransport>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}

/// A socket ready to be wrapped.
struct Opened {
    /// The socket.
    fd: OwnedFd,
    /// The default destination (`remote_addr`, or the peer of an adopted connected socket).
    address: Option<Addr>,
    /// The socket is connected: send with `send`, not `sendto`.
    connected: bool,
}

fn type_name(t: SocketType) -> String {
    match t {
        SocketType::STREAM => "a stream socket".into(),
        SocketType::DGRAM => "a datagram socket".into(),
        SocketType::SEQPACKET => "a seqpacket socket".into(),
        SocketType::RAW => "a raw socket".into(),
        other => format!("a socket of type {}", other.as_raw()),
    }
}

/// NET-68: adopts `options.sock`.
fn adopt(mut options: DatagramOptions) -> Result<Opened> {
    let Some(sock) = options.sock.take() else {
        return Err(Error::invalid_argument("no sock given"));
    };
    let raw = sock.as_raw_fd();
    match rustix::net::sockopt::socket_type(&sock) {
        Ok(SocketType::DGRAM) => {}
        Ok(t) => {
            return Err(Error::invalid_argument(format!(
                "A datagram socket was expected, got fd {raw}, {}; use create_connection for stream sockets",
                type_name(t)
            )))
        }
        Err(Errno::NOTSOCK) => {
            return Err(Error::invalid_argument(format!(
                "A datagram socket was expected, got fd {raw}, which is not a socket"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let problems = options.modifiers();
    if !problems.is_empty() {
        return Err(Error::invalid_argument(format!(
            "socket modifier options can not be used when sock is specified ({}); \
             set them on the socket before passing it",
            problems.join(", ")
        )));
    }
    rustix::io::ioctl_fionbio(&sock, true)?;
    let peer = Addr::peername_of(&sock).ok();
    Ok(Opened {
        fd: sock,
        connected: peer.is_some(),
        address: peer,
    })
}

/// An address family and protocol number.
type FamilyProto = (i32, i32);

/// One (family, protocol) candidate with its addresses.
#[derive(Debug)]
struct Candidate {
    /// Address family.
    family: i32,
    /// Protocol (0 = default).
    proto: i32,
    /// Where to bind.
    local: Option<Addr>,
    /// Where to connect (or send by default).
    remote: Option<Addr>,
}

/// Resolves a host / port for a datagram socket: IP literals directly, names on the default
/// executor.
async fn resolve(
    lp: &EventLoop,
    host: &str,
    port: &str,
    mut hints: Hints,
    local: bool,
) -> Result<Vec<AddrInfo>> {
    if let Some(v) = numeric_addrinfo(Some(host), Some(port), &hints) {
        return Ok(v);
    }
    let host = if host.is_empty() {
        if local {
            hints.flags |= AI_PASSIVE;
        }
        None
    } else {
        Some(host.to_owned())
    };
    let port = port.to_owned();
    let fut = lp.run_in_executor(None, move || {
        getaddrinfo_blocking(host.as_deref(), Some(&port), &hints)
    })?;
    Ok(fut.await??)
}

/// Resolves one address of an IP endpoint.
async fn resolve_ip(
    lp: &EventLoop,
    addr: &DatagramAddr,
    options: &DatagramOptions,
    local: bool,
) -> Result<Vec<AddrInfo>> {
    let hints = Hints {
        family: options.family,
        socktype: SOCK_DGRAM,
        protocol: options.proto,
        flags: options.flags,
    };
    match addr {
        DatagramAddr::Host { host, port } => resolve(lp, host, port, hints, local).await,
        DatagramAddr::Addr(Addr::Inet(sa)) => {
            // Already an address: only its family must fit.
            let family = if sa.is_ipv4() { AF_INET } else { AF_INET6 };
            if options.family != AF_UNSPEC && options.family != family {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "address {sa} is not of the requested family {}",
                        options.family
                    ),
                )
                .into());
            }
            let proto = if options.proto == 0 {
                libc::IPPROTO_UDP
            } else {
                options.proto
            };
            Ok(vec![AddrInfo {
                family,
                socktype: SOCK_DGRAM,
                protocol: proto,
                canonname: None,
                addr: *sa,
            }])
        }
        DatagramAddr::Addr(other) => Err(Error::invalid_argument(format!(
            "an IP endpoint needs a host and port (2-tuple is expected), got {other}"
        ))),
    }
}

/// The Unix address of a Unix endpoint (NET-70).
fn unix_addr(addr: &DatagramAddr) -> Result<Addr> {
    match addr {
        DatagramAddr::Addr(a @ (Addr::Unix(_) | Addr::UnixAbstract(_))) => Ok(a.clone()),
        other => Err(Error::invalid_argument(format!(
            "a Unix datagram endpoint needs a path (string is expected), got {other}"
        ))),
    }
}

/// Removes a stale socket file at `path` (NET-70); a non-socket file is left for bind to refuse.
fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::error!("Unable to remove stale UNIX socket {}: {e}", path.display());
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!(
            "Unable to check or remove stale UNIX socket {}: {e}",
            path.display()
        ),
    }
}

/// NET-69..NET-73: makes the candidates, then the socket.
async fn open(lp: &EventLoop, options: &DatagramOptions) -> Result<Opened> {
    let (local, remote) = (&options.local_addr, &options.remote_addr);
    let unix = options.family == AF_UNIX
        || (options.family == AF_UNSPEC
            && (local.is_some() || remote.is_some())
            && local.iter().chain(remote.iter()).all(DatagramAddr::is_unix));
    let candidates = if local.is_none() && remote.is_none() {
        if options.family == AF_UNSPEC {
            return Err(Error::invalid_argument(
                "unexpected address family: give local_addr, remote_addr or family",
            ));
        }
        vec![Candidate {
            family: options.family,
            proto: options.proto,
            local: None,
            remote: None,
        }]
    } else if unix {
        let local = local.as_ref().map(unix_addr).transpose()?;
        let remote = remote.as_ref().map(unix_addr).transpose()?;
        if let Some(Addr::Unix(p)) = &local {
            remove_stale_socket(p);
        }
        vec![Candidate {
            family: AF_UNIX,
            proto: options.proto,
            local,
            remote,
        }]
    } else {
        // (family, proto) → [local, remote], in first-seen order.
        let mut pairs: Vec<(FamilyProto, [Option<SocketAddr>; 2])> = Vec::new();
        for (idx, addr) in [(0, local), (1, remote)] {
            let Some(addr) = addr else { continue };
            let infos = resolve_ip(lp, addr, options, idx == 0).await?;
            if infos.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("getaddrinfo() returned empty list for {addr}"),
                )
                .into());
            }
            for info in infos {
                let key = (info.family, info.protocol);
                match pairs.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, slots)) => {
                        if slots[idx].is_none() {
                            slots[idx] = Some(info.addr);
                        }
                    }
                    None => {
                        let mut slots = [None, None];
                        slots[idx] = Some(info.addr);
                        pairs.push((key, slots));
                    }
                }
            }
        }
        let candidates: Vec<Candidate> = pairs
            .into_iter()
            .filter(|(_, [l, r])| {
                !(local.is_some() && l.is_none() || remote.is_some() && r.is_none())
            })
            .map(|((family, proto), [l, r])| Candidate {
                family,
                proto,
                local: l.map(Addr::Inet),
                remote: r.map(Addr::Inet),
            })
            .collect();
        if candidates.is_empty() {
            return Err(Error::invalid_argument(
                "can not get address information: local_addr and remote_addr have no address \
                 family in common",
            ));
        }
        candidates
    };
    let mut first_error: Option<Error> = None;
    for c in &candidates {
        match try_open(c, options) {
            Ok(o) => return Ok(o),
            Err(e @ Error::Io(_)) => {
                tracing::debug!("datagram endpoint candidate {c:?} failed: {e}");
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(first_error.unwrap_or_else(|| Error::invalid_argument("no address to try")))
}

/// Creates, configures, binds and connects one candidate socket; the socket is closed on error.
fn try_open(c: &Candidate, options: &DatagramOptions) -> Result<Opened> {
    let proto = u32::try_from(c.proto)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(rustix::net::Protocol::from_raw);
    let family = u16::try_from(c.family).map_err(|_| {
        Error::invalid_argument(format!("family {} is not an address family", c.family))
    })?;
    let fd = rustix::net::socket_with(
        AddressFamily::from_raw(family),
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        proto,
    )?;
    if options.reuse_port && rustix::net::sockopt::set_socket_reuseport(&fd, true).is_err() {
        return Err(Error::invalid_argument(
            "reuse_port not supported by socket module (SO_REUSEPORT was refused)",
        ));
    }
    if options.allow_broadcast {
        rustix::net::sockopt::set_socket_broadcast(&fd, true)?;
    }
    if let Some(local) = &c.local {
        rustix::net::bind(&fd, &to_any(local)?)?;
    }
    let mut connected = false;
    if let Some(remote) = &c.remote {
        if !options.allow_broadcast {
            let target = to_any(remote)?;
            loop {
                match rustix::net::connect(&fd, &target) {
                    Ok(()) => break,
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            connected = true;
        }
    }
    Ok(Opened {
        fd,
        address: c.remote.clone(),
        connected,
    })
}

/// The rustix form of an address.
fn to_any(a: &Addr) -> io::Result<SocketAddrAny> {
    Ok(match a {
        Addr::Inet(a) => SocketAddrAny::from(*a),
        Addr::Unix(p) => SocketAddrAny::from(SocketAddrUnix::new(p.as_path())?),
        Addr::UnixAbstract(n) => SocketAddrAny::from(SocketAddrUnix::new_abstract_name(n)?),
        Addr::Unnamed => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an unnamed address cannot be sent to; give an IP address or a path",
            ))
        }
    })
}

/// Per-loop state shared by every datagram endpoint of a loop.
#[derive(Default)]
struct Runtime {
    /// The receive buffer (reads happen one at a time).
    read_buf: RefCell<Vec<u8>>,
    /// Open endpoints, so that closing the loop closes their sockets.
    live: RefCell<Vec<Weak<Inner>>>,
}

impl Runtime {
    fn get(lp: &EventLoop) -> Rc<Runtime> {
        lp.extension(|lp| {
            lp.on_close(|lp| {
                let rt = Runtime::get(lp);
                let open: Vec<Rc<Inner>> = rt
                    .live
                    .borrow_mut()
                    .drain(..)
                    .filter_map(|w| w.upgrade())
                    .collect();
                for t in open {
                    t.teardown();
                }
            });
            Runtime::default()
        })
    }

    fn add(&self, t: Weak<Inner>) {
        let mut live = self.live.borrow_mut();
        live.retain(|w| w.strong_count() > 0);
        live.push(t);
    }
}

/// A notification for the protocol.
enum Note {
    /// `pause_writing()`.
    Pause,
    /// `resume_writing()`.
    Resume,
    /// `error_received(exc)`.
    Error(io::Error),
}

/// How a panic in a protocol method is handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Reported, then the endpoint closes with the panic as the error.
    Fatal,
    /// Reported; the endpoint goes on.
    Report,
}

/// The boxed protocol.
type BoxedProtocol = Box<dyn DatagramProtocol<DatagramTransport>>;

/// Where the protocol lives: taken out while one of its methods runs.
#[derive(Default)]
struct Slot {
    /// The protocol, when no method of it runs.
    current: Option<BoxedProtocol>,
    /// A method runs.
    in_call: bool,
    /// Set by `set_protocol` during a call.
    replacement: Option<BoxedProtocol>,
    /// Type name of the running protocol.
    running: Option<&'static str>,
}

/// Mutable state.
struct State {
    /// `connection_made` ran.
    made: bool,
    /// `close()` / `abort()` / a fatal error happened.
    closing: bool,
    /// `connection_lost` is scheduled.
    lost_scheduled: bool,
    /// `connection_lost` ran.
    lost: bool,
    /// Socket closed, protocol dropped.
    torn_down: bool,
    /// Dropped-send counter (NET-77).
    conn_lost: u32,
    /// `pause_writing` was delivered without its `resume_writing`.
    write_paused: bool,
    /// High-water mark.
    high: usize,
    /// Low-water mark.
    low: usize,
    /// Queued datagrams and their destination (`None` on a connected socket).
    queue: VecDeque<(Vec<u8>, Option<SocketAddrAny>)>,
    /// Queued bytes plus the per-datagram overhead.
    qsize: usize,
    /// Write interest is registered.
    want_write: bool,
}

/// The socket, registered with the loop's poller (`Registered` deregisters before closing it).
struct Io {
    /// The registered socket; `None` once torn down.
    reg: Option<Registered<OwnedFd>>,
}

impl Io {
    /// The socket, until teardown.
    fn fd(&self) -> Option<&OwnedFd> {
        self.reg.as_ref().map(Registered::get_ref)
    }
}

/// The endpoint behind the handle.
struct Inner {
    /// Itself.
    me: Weak<Inner>,
    /// Per-loop state.
    rt: Rc<Runtime>,
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
    /// State.
    st: RefCell<State>,
    /// Protocol.
    proto: RefCell<Slot>,
    /// Notifications raised while a protocol method ran.
    notes: RefCell<VecDeque<Note>>,
    /// Socket + registration.
    io: RefCell<Io>,
    /// The loop, until teardown.
    lp: RefCell<Option<EventLoop>>,
    /// Completed after `connection_made`.
    waiter: RefCell<Option<LoopFuture<()>>>,
    /// Reads left in a burst continued through the ready queue.
    burst: Cell<u32>,
}

/// A datagram endpoint: asyncio's `DatagramTransport`, a cheap clonable handle to a datagram
/// socket and its [`DatagramProtocol`].
///
/// Made by [`create_datagram_endpoint`](DatagramExt::create_datagram_endpoint). Every method may
/// be called from protocol methods, callbacks and tasks of the loop's thread. After
/// `connection_lost` the handle still answers (`is_closing()` is true, sends are dropped).
///
/// ```
/// use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
/// struct Quiet;
/// impl loop_transport::DatagramProtocol<DatagramTransport> for Quiet {}
/// let lp = loop_core::EventLoop::new()?;
/// let l = lp.clone();
/// let (t, _) = lp.run_until_complete(async move {
///     l.create_datagram_endpoint(|| Quiet, DatagramOptions::local(("127.0.0.1", 0))).await
/// })??;
/// assert!(t.sockname().unwrap().as_inet().is_some());
/// assert!(t.peername().is_none());
/// t.close();
/// assert!(t.is_closing());
/// lp.run_until_complete(async {})?;
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Clone)]
pub struct DatagramTransport {
    /// The shared endpoint.
    inner: Rc<Inner>,
}

/// A typed handle to the protocol of a [`DatagramTransport`], returned by
/// [`create_datagram_endpoint`](DatagramExt::create_datagram_endpoint) in place of asyncio's
/// protocol object (the transport owns the protocol).
///
/// ```
/// use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
/// struct Counter(u32);
/// impl loop_transport::DatagramProtocol<DatagramTransport> for Counter {}
/// let lp = loop_core::EventLoop::new()?;
/// let l = lp.clone();
/// let (t, p) = lp.run_until_complete(async move {
///     l.create_datagram_endpoint(|| Counter(7), DatagramOptions::local(("127.0.0.1", 0))).await
/// })??;
/// assert_eq!(p.with(|c| c.0), Some(7));
/// t.abort();
/// lp.run_until_complete(async {})?;
/// assert_eq!(p.with(|c| c.0), None); // dropped after connection_lost
/// # Ok::<(), loop_core::Error>(())
/// ```
pub struct DatagramProtocolRef<P> {
    /// The transport that owns the protocol.
    transport: DatagramTransport,
    /// The protocol type.
    _p: PhantomData<fn() -> P>,
}

impl<P: 'static> DatagramProtocolRef<P> {
    /// Calls `f` with the protocol. `None` once the protocol is gone (after
    /// `connection_lost`), was replaced by one of another type, or while one of its methods
    /// runs.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// struct Q(u8);
    /// impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, p) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q(1), DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// p.with(|q| q.0 += 1);
    /// assert_eq!(p.with(|q| q.0), Some(2));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        self.transport.with_protocol(f)
    }

    /// The transport.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, p) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(p.transport().ptr_eq(&t));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn transport(&self) -> &DatagramTransport {
        &self.transport
    }
}

impl<P> Clone for DatagramProtocolRef<P> {
    fn clone(&self) -> Self {
        DatagramProtocolRef {
            transport: self.transport.clone(),
            _p: PhantomData,
        }
    }
}

impl<P> fmt::Debug for DatagramProtocolRef<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<DatagramProtocolRef {} of {:?}>",
            std::any::type_name::<P>(),
            self.transport
        )
    }
}

impl DatagramTransport {
    /// Wraps a socket; `connection_made` is scheduled, reading starts after it.
    fn new(
        lp: &EventLoop,
        opened: Opened,
        protocol: BoxedProtocol,
        waiter: LoopFuture<()>,
    ) -> Result<DatagramTransport> {
        let Opened {
            fd,
            address,
            connected,
        } = opened;
        if lp.is_closed() {
            return Err(Error::Closed);
        }
        rustix::io::ioctl_fionbio(&fd, true)?;
        let rt = Runtime::get(lp);
        let raw = fd.as_raw_fd();
        let peername = if connected {
            Addr::peername_of(&fd).ok()
        } else {
            None
        };
        let sockname = Addr::sockname_of(&fd).ok();
        let inner = Rc::new_cyclic(|me| Inner {
            me: me.clone(),
            rt: rt.clone(),
            raw,
            address,
            connected,
            peername,
            sockname,
            st: RefCell::new(State {
                made: false,
                closing: false,
                lost_scheduled: false,
                lost: false,
                torn_down: false,
                conn_lost: 0,
                write_paused: false,
                high: DEFAULT_HIGH_WATER,
                low: DEFAULT_HIGH_WATER / 4,
                queue: VecDeque::new(),
                qsize: 0,
                want_write: false,
            }),
            proto: RefCell::new(Slot {
                current: Some(protocol),
                ..Default::default()
            }),
            notes: RefCell::new(VecDeque::new()),
            io: RefCell::new(Io { reg: None }),
            lp: RefCell::new(Some(lp.clone())),
            waiter: RefCell::new(Some(waiter)),
            burst: Cell::new(0),
        });
        let owner = format!("<DatagramTransport fd={raw}>");
        let reg = Registered::new(lp, fd, Mode::Edge, false, false, &owner, inner.clone())?;
        inner.io.borrow_mut().reg = Some(reg);
        let me = inner.clone();
        if let Err(e) = lp.call_soon(move |_| me.connection_made()) {
            inner.teardown();
            return Err(e);
        }
        rt.add(Rc::downgrade(&inner));
        Ok(DatagramTransport { inner })
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let to = peer.local_addr().unwrap();
    /// let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(!t.is_closing());
    /// t.close();
    /// assert!(t.is_closing());
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// Bytes queued and not yet sent, plus 8 per queued datagram (NET-77).
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert_eq!(t.get_write_buffer_size(), 0);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.st.borrow().qsize
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// t.set_write_buffer_limits(Some(400), None).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (100, 400));
    /// assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// t.set_write_buffer_limits(Some(4096), None).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (1024, 4096));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        let st = self.inner.st.borrow();
        (st.low, st.high)
    }

    /// Extra information (NET-66): [`Extra::Peername`] (connected endpoints only),
    /// [`Extra::Sockname`], [`Extra::Socket`] (the fd number, while open). Other keys give
    /// `None`.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # use loop_transport::Extra;
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
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
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(t.peername().is_none()); // not connected
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn peername(&self) -> Option<Addr> {
        self.inner.peername.clone()
    }

    /// The local address.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert_ne!(t.sockname().unwrap().as_inet().unwrap().port(), 0);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn sockname(&self) -> Option<Addr> {
        self.inner.sockname.clone()
    }

    /// The default destination: `remote_addr` (also with `allow_broadcast`, where the socket
    /// is not connected), or the peer of an adopted connected socket.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(t.remote_address().is_none());
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn remote_address(&self) -> Option<&Addr> {
        self.inner.address.as_ref()
    }

    /// The socket's fd number while it is open.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(t.fileno().is_some());
    /// t.abort();
    /// lp.run_until_complete(async {}).unwrap();
    /// assert!(t.fileno().is_none());
    /// ```
    pub fn fileno(&self) -> Option<RawFd> {
        self.inner.io.borrow().fd().map(|fd| fd.as_raw_fd())
    }

    /// Calls `f` with a borrowed view of the socket (for `getsockopt` and the like); `None`
    /// once it is closed. Do not read from, write to or close it behind the transport's back.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// let ty = t.with_fd(|fd| rustix::net::sockopt::socket_type(fd).unwrap()).unwrap();
    /// assert_eq!(ty, rustix::net::SocketType::DGRAM);
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let io = self.inner.io.borrow();
        Some(f(io.fd()?.as_fd()))
    }

    /// asyncio's `get_protocol()`: calls `f` with the protocol as its concrete type `P`.
    /// `None` if it is of another type, gone (after `connection_lost`), or running right now.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// struct Q(u8);
    /// impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q(5), DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert_eq!(t.with_protocol(|q: &mut Q| q.0), Some(5));
    /// assert_eq!(t.with_protocol(|_: &mut String| ()), None); // another type
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
            slot.running = Some((*p).protocol_type_name());
            p
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            let any: &mut dyn Any = (*p).as_any_mut();
            any.downcast_mut::<P>().map(f)
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

    /// Replaces the protocol (no `connection_made` for the new one). Called from inside a
    /// protocol method, the switch happens when that method returns.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// struct A;
    /// impl loop_transport::DatagramProtocol<DatagramTransport> for A {}
    /// struct B;
    /// impl loop_transport::DatagramProtocol<DatagramTransport> for B {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| A, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// t.set_protocol(B);
    /// assert!(t.protocol_type_name().unwrap().ends_with("B"));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn set_protocol(&self, protocol: impl DatagramProtocol<DatagramTransport> + 'static) {
        let new: BoxedProtocol = Box::new(protocol);
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

    /// The protocol's type name (`None` once it is gone).
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(t.protocol_type_name().unwrap().ends_with("Q"));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn protocol_type_name(&self) -> Option<&'static str> {
        self.inner.proto_name()
    }

    /// The loop, until the endpoint is torn down after `connection_lost`.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(t.get_loop().unwrap().ptr_eq(&lp));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.inner.lp.borrow().clone()
    }

    /// True if both handles are the same endpoint.
    ///
    /// ```
    /// # use loop_net::{DatagramExt, DatagramOptions, DatagramTransport};
    /// # struct Q;
    /// # impl loop_transport::DatagramProtocol<DatagramTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new().unwrap();
    /// # let l = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     l.create_datagram_endpoint(|| Q, DatagramOptions::local(("127.0.0.1", 0))).await
    /// }).unwrap().unwrap();
    /// assert!(t.ptr_eq(&t.clone()));
    /// # t.abort(); lp.run_until_complete(async {}).unwrap();
    /// ```
    pub fn ptr_eq(&self, other: &DatagramTransport) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.st.try_borrow() {
            Ok(st) if st.lost => "closed",
            Ok(st) if st.closing => "closing",
            Ok(_) => "open",
            Err(_) => "busy",
        };
        write!(f, "<DatagramTransport fd={} {state}>", self.inner.raw)
    }
}

impl IoHandler for Inner {
    fn ready(&self, _lp: &EventLoop, r: Readiness) {
        if r.is_readable() {
            self.read_ready();
        }
        if r.is_writable() {
            self.write_ready();
        }
    }
}

/// The `io::Error` handed to `connection_lost` for a protocol panic.
#[allow(clippy::io_other_error)]
fn exception_to_io(exc: &Exception) -> io::Error {
    io::Error::new(io::ErrorKind::Other, Error::Exception(exc.clone()))
}

impl Inner {
    fn handle(&self) -> DatagramTransport {
        DatagramTransport {
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
        slot.current.as_ref().map(|p| (**p).protocol_type_name())
    }

    fn put_back(&self, p: BoxedProtocol) {
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

    /// Calls a protocol method with the protocol taken out of its slot; a panic is caught and
    /// handled per `policy`. Returns `false` if the method did not run to completion.
    fn call_proto(
        &self,
        method: &'static str,
        policy: Policy,
        f: impl FnOnce(&mut dyn DatagramProtocol<DatagramTransport>, &DatagramTransport),
    ) -> std::result::Result<(), Option<Exception>> {
        let mut p = {
            let mut slot = self.proto.borrow_mut();
            if slot.in_call {
                return Err(None);
            }
            let Some(p) = slot.current.take() else {
                return Err(None);
            };
            slot.in_call = true;
            slot.running = Some((*p).protocol_type_name());
            p
        };
        let name = (*p).protocol_type_name();
        let t = self.handle();
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut *p, &t)));
        self.put_back(p);
        match r {
            Ok(()) => {
                self.flush_notes();
                Ok(())
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
                        self.report(format!("protocol.{method}() failed"), &exc, name)
                    }
                }
                self.flush_notes();
                Err(Some(exc))
            }
        }
    }

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

    /// Delivers a notification now, or after the running protocol method.
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
            Note::Error(e) => {
                self.call_proto("error_received", Policy::Fatal, |p, _| p.error_received(e))
            }
        };
    }

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
            if st.lost || st.lost_scheduled {
                return;
            }
            st.made = true;
        }
        let r = self.call_proto("connection_made", Policy::Fatal, |p, t| {
            p.connection_made(t)
        });
        self.update_interest();
        let waiter = self.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = match r {
                    Err(Some(e)) => w.set_exception(Error::Exception(e)),
                    _ => w.set_result(()),
                };
            }
        }
    }

    fn update_interest(&self) {
        let (read, write) = {
            let st = self.st.borrow();
            (
                st.made && !st.closing && !st.lost,
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
        st.made && !st.closing && !st.lost
    }

    /// Reads datagrams until `WouldBlock`, at most [`MAX_READS_PER_EVENT`] per event.
    fn read_ready(&self) {
        self.burst.set(0);
        loop {
            if !self.can_read() {
                return;
            }
            if self.burst.get() >= MAX_READS_PER_EVENT {
                let lp = self.lp.borrow().clone();
                if let (Some(lp), Some(me)) = (lp, self.me.upgrade()) {
                    let _ = lp.schedule_io(me, Readiness::READABLE);
                }
                return;
            }
            self.burst.set(self.burst.get() + 1);
            let mut buf = std::mem::take(&mut *self.rt.read_buf.borrow_mut());
            if buf.len() < MAX_DATAGRAM_READ {
                buf.resize(MAX_DATAGRAM_READ, 0);
            }
            let res = {
                let io = self.io.borrow();
                match io.fd() {
                    Some(fd) => rustix::net::recvfrom(fd, &mut buf[..], RecvFlags::DONTWAIT),
                    None => Err(Errno::BADF),
                }
            };
            let go_on = match res {
                Ok((n, _, from)) => {
                    let from = Addr::from_rustix(from);
                    let data = &buf[..n];
                    self.call_proto("datagram_received", Policy::Fatal, |p, _| {
                        p.datagram_received(data, &from)
                    })
                    .is_ok()
                }
                Err(Errno::AGAIN) => false,
                Err(Errno::INTR) => true,
                Err(Errno::BADF) => false,
                Err(e) => {
                    self.notify(Note::Error(e.into()));
                    true
                }
            };
            let mut slot = self.rt.read_buf.borrow_mut();
            if slot.len() < buf.len() {
                *slot = buf;
            }
            drop(slot);
            if !go_on {
                return;
            }
        }
    }

    /// Sends one datagram.
    fn send_one(&self, data: &[u8], to: Option<&SocketAddrAny>) -> rustix::io::Result<usize> {
        let io = self.io.borrow();
        let fd = io.fd().ok_or(Errno::BADF)?;
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        loop {
            let r = match to {
                Some(a) => rustix::net::sendto(fd, data, flags, a),
                None => rustix::net::send(fd, data, flags),
            };
            match r {
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    fn sendto(&self, data: &[u8], addr: Option<&Addr>) -> Result<()> {
        let target = match (&self.address, addr) {
            (Some(default), Some(a)) if a != default => {
                return Err(Error::invalid_argument(format!(
                    "Invalid address: must be None or {default}"
                )))
            }
            (Some(default), _) => {
                if self.connected {
                    None
                } else {
                    Some(to_any(default)?)
                }
            }
            (None, Some(a)) => Some(to_any(a)?),
            (None, None) if self.connected => None,
            (None, None) => {
                return Err(Error::invalid_argument(
                    "sendto() needs an address: this endpoint was made without remote_addr",
                ))
            }
        };
        let queue_now = {
            let mut st = self.st.borrow_mut();
            if st.closing || st.lost_scheduled {
                if st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                    tracing::warn!("socket.send() raised exception.");
                }
                st.conn_lost += 1;
                return Ok(());
            }
            !st.queue.is_empty()
        };
        if !queue_now {
            match self.send_one(data, target.as_ref()) {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) => {}
                Err(e) => {
                    self.notify(Note::Error(e.into()));
                    return Ok(());
                }
            }
        }
        let register = {
            let mut st = self.st.borrow_mut();
            st.qsize += data.len() + QUEUE_OVERHEAD;
            st.queue.push_back((data.to_vec(), target));
            !std::mem::replace(&mut st.want_write, true)
        };
        if register {
            self.update_interest();
        }
        self.maybe_pause();
        Ok(())
    }

    fn maybe_pause(&self) {
        let fire = {
            let mut st = self.st.borrow_mut();
            if st.qsize > st.high && !st.write_paused && !st.lost {
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

    fn maybe_resume(&self) {
        let fire = {
            let mut st = self.st.borrow_mut();
            if st.write_paused && st.qsize <= st.low {
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

    /// Sends queued datagrams in order until the queue is empty or the socket would block.
    fn write_ready(&self) {
        loop {
            let item = {
                let mut st = self.st.borrow_mut();
                if st.lost_scheduled {
                    return;
                }
                match st.queue.pop_front() {
                    Some(item) => {
                        st.qsize -= item.0.len() + QUEUE_OVERHEAD;
                        item
                    }
                    None => break,
                }
            };
            match self.send_one(&item.0, item.1.as_ref()) {
                Ok(_) => {}
                Err(Errno::AGAIN) => {
                    let mut st = self.st.borrow_mut();
                    st.qsize += item.0.len() + QUEUE_OVERHEAD;
                    st.queue.push_front(item);
                    break;
                }
                // The datagram is dropped; the rest still goes out.
                Err(e) => self.notify(Note::Error(e.into())),
            }
        }
        self.maybe_resume();
        let (stop_watching, closing) = {
            let mut st = self.st.borrow_mut();
            if !st.queue.is_empty() || st.lost_scheduled {
                return;
            }
            (std::mem::replace(&mut st.want_write, false), st.closing)
        };
        if stop_watching {
            self.update_interest();
        }
        if closing {
            self.schedule_lost(None);
        }
    }

    fn close(&self) {
        let empty = {
            let mut st = self.st.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            st.queue.is_empty()
        };
        self.update_interest();
        if empty {
            self.schedule_lost(None);
        }
    }

    fn force_close(&self, exc: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            st.queue.clear();
            st.qsize = 0;
            st.want_write = false;
            st.closing = true;
        }
        self.update_interest();
        self.schedule_lost(exc);
    }

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
        match (lp, self.me.upgrade()) {
            (Some(lp), Some(me)) if !lp.is_closed() => {
                if let Err(e) = lp.call_soon(move |_| me.call_connection_lost(exc)) {
                    tracing::error!("cannot schedule connection_lost: {e}");
                }
            }
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

    /// Closes the socket and drops the protocol and the loop reference.
    fn teardown(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.torn_down {
                return;
            }
            st.torn_down = true;
            st.lost = true;
            st.closing = true;
            st.queue.clear();
            st.qsize = 0;
        }
        // Deregisters, then closes the socket.
        let reg = self.io.borrow_mut().reg.take();
        drop(reg);
        let proto = {
            let mut slot = self.proto.borrow_mut();
            (slot.current.take(), slot.replacement.take())
        };
        drop(proto);
        let waiter = self.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = w.set_exception(Error::invalid_state(
                    "the datagram endpoint was closed before connection_made ran",
                ));
            }
        }
        let lp = self.lp.borrow_mut().take();
        drop(lp);
    }
}
