//! Datagram endpoints: asyncio's `create_datagram_endpoint`, for UDP over IPv4 / IPv6 and for
//! Unix-domain datagram sockets. This module makes, binds and connects the socket; the
//! datagram transport itself ([`DatagramTransport`]: reads, the send queue, flow control) is
//! loop-transport's.
//!
//! # Why it works the way it does
//!
//! **Addresses.** IP literals are used as they are (no resolver, NET-18); host names and
//! service names go through the system resolver on the loop's default executor (NET-16).
//! Unix-domain endpoints take paths; a stale socket file at the local path is removed before
//! binding (NET-70).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use loop_core::{Error, EventLoop, Result};
use loop_executor::ExecutorExt;
use loop_transport::{Addr, DatagramProtocol, DatagramTransport, ProtocolRef};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use crate::resolve::{
    getaddrinfo_blocking, numeric_addrinfo, AddrInfo, Hints, AF_INET, AF_INET6, AF_UNSPEC,
    AI_PASSIVE, SOCK_DGRAM,
};

/// `AF_UNIX`: the Unix-domain family, for [`DatagramOptions::family`] and
/// [`ServerSocket::family`](crate::ServerSocket::family).
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

/// The options of [`create_datagram_endpoint`](DatagramExt::create_datagram_endpoint) and
/// [`create_datagram_endpoint_sock`](DatagramExt::create_datagram_endpoint_sock) (asyncio's
/// keyword arguments), built with one chainable setter per option; [`new`](DatagramOptions::new)
/// (or `Default`) sets none.
///
/// ```
/// use loop_net::{DatagramOptions, AF_INET};
/// let o = DatagramOptions::new().local_addr(("127.0.0.1", 0)).family(AF_INET);
/// assert!(o.get_local_addr().is_some() && o.get_remote_addr().is_none());
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DatagramOptions {
    /// Address to bind the socket to.
    pub(crate) local_addr: Option<DatagramAddr>,
    /// Address to connect the socket to.
    pub(crate) remote_addr: Option<DatagramAddr>,
    /// Address family.
    pub(crate) family: i32,
    /// Protocol number.
    pub(crate) proto: i32,
    /// `AI_*` flags for the resolver.
    pub(crate) flags: i32,
    /// Set `SO_REUSEPORT`.
    pub(crate) reuse_port: bool,
    /// Set `SO_BROADCAST`.
    pub(crate) allow_broadcast: bool,
}

impl DatagramOptions {
    /// No option set: an unbound, unconnected socket of the family the addresses give.
    ///
    /// ```
    /// assert!(loop_net::DatagramOptions::new().get_local_addr().is_none());
    /// ```
    pub fn new() -> DatagramOptions {
        DatagramOptions::default()
    }

    /// Options with just a local address: `new().local_addr(addr)`.
    ///
    /// ```
    /// let o = loop_net::DatagramOptions::local(("127.0.0.1", 9999));
    /// assert!(o.get_local_addr().is_some());
    /// ```
    pub fn local(addr: impl Into<DatagramAddr>) -> DatagramOptions {
        DatagramOptions::new().local_addr(addr)
    }

    /// Options with just a remote address: `new().remote_addr(addr)`.
    ///
    /// ```
    /// let o = loop_net::DatagramOptions::remote(("127.0.0.1", 9999));
    /// assert!(o.get_remote_addr().is_some());
    /// ```
    pub fn remote(addr: impl Into<DatagramAddr>) -> DatagramOptions {
        DatagramOptions::new().remote_addr(addr)
    }

    /// Address to bind the socket to (a `(host, port)`, a `SocketAddr`, a Unix path).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().local_addr(("127.0.0.1", 0));
    /// ```
    pub fn local_addr(mut self, addr: impl Into<DatagramAddr>) -> DatagramOptions {
        self.local_addr = Some(addr.into());
        self
    }

    /// The local address set with [`local_addr`](DatagramOptions::local_addr).
    ///
    /// ```
    /// assert!(loop_net::DatagramOptions::new().get_local_addr().is_none());
    /// ```
    pub fn get_local_addr(&self) -> Option<&DatagramAddr> {
        self.local_addr.as_ref()
    }

    /// Address to connect the socket to (or, with `allow_broadcast`, the default destination).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().remote_addr(("127.0.0.1", 9999));
    /// ```
    pub fn remote_addr(mut self, addr: impl Into<DatagramAddr>) -> DatagramOptions {
        self.remote_addr = Some(addr.into());
        self
    }

    /// The remote address set with [`remote_addr`](DatagramOptions::remote_addr).
    ///
    /// ```
    /// assert!(loop_net::DatagramOptions::new().get_remote_addr().is_none());
    /// ```
    pub fn get_remote_addr(&self) -> Option<&DatagramAddr> {
        self.remote_addr.as_ref()
    }

    /// Address family (`AF_INET`, `AF_INET6`, [`AF_UNIX`]); 0 (the default) picks it from the
    /// addresses (Unix paths give `AF_UNIX`).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().family(loop_net::AF_INET6);
    /// ```
    pub fn family(mut self, family: i32) -> DatagramOptions {
        self.family = family;
        self
    }

    /// Protocol number (0, the default: the family's default, UDP for IP).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().proto(loop_net::IPPROTO_UDP);
    /// ```
    pub fn proto(mut self, proto: i32) -> DatagramOptions {
        self.proto = proto;
        self
    }

    /// `AI_*` flags for the resolver (default 0).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().flags(loop_net::AI_PASSIVE);
    /// ```
    pub fn flags(mut self, flags: i32) -> DatagramOptions {
        self.flags = flags;
        self
    }

    /// Set `SO_REUSEPORT`, so that several endpoints may bind the same address (NET-72).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().reuse_port(true);
    /// ```
    pub fn reuse_port(mut self, reuse: bool) -> DatagramOptions {
        self.reuse_port = reuse;
        self
    }

    /// Set `SO_BROADCAST`; the remote address then only sets the default destination and the
    /// socket is not connected (NET-73).
    ///
    /// ```
    /// let _o = loop_net::DatagramOptions::new().allow_broadcast(true);
    /// ```
    pub fn allow_broadcast(mut self, allow: bool) -> DatagramOptions {
        self.allow_broadcast = allow;
        self
    }

    /// The options that were given, as `name=value` (refused with a socket, NET-68).
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
/// impl loop_transport::DatagramProtocol for Quiet {}
/// let lp = loop_core::EventLoop::new()?;
/// let l = lp.clone();
/// let (t, _) = lp.run_until_complete(async move {
///     l.create_datagram_endpoint(|| Quiet, DatagramOptions::local(("127.0.0.1", 0))).await
/// })??;
/// t.close();
/// # lp.run_until_complete(async {})?;
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait DatagramExt: crate::sealed::Sealed {
    /// Creates a datagram endpoint (asyncio's `create_datagram_endpoint`): a socket, a
    /// [`DatagramTransport`] over it and the protocol made by `protocol_factory` (called once).
    /// Returns once `connection_made` ran (NET-74).
    ///
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
    /// * [`Error::InvalidArgument`]: no address and no family ("unexpected address family"); a host/port for a Unix endpoint
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
    /// impl DatagramProtocol for Echo {
    ///     fn connection_made(&mut self, t: &DatagramTransport) {
    ///         self.0 = Some(t.clone());
    ///     }
    ///     fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
    ///         self.0.as_ref().unwrap().sendto(data, Some(addr)).unwrap();
    ///     }
    /// }
    ///
    /// struct Client(LoopFuture<Vec<u8>>);
    /// impl DatagramProtocol for Client {
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
    ) -> impl Future<Output = Result<(DatagramTransport, ProtocolRef<P>)>> + 'static
    where
        P: DatagramProtocol + 'static,
        F: FnOnce() -> P + 'static;

    /// `create_datagram_endpoint(protocol_factory, sock=sock)`: adopts an existing datagram
    /// socket as it is (made non-blocking; a connected socket's peer is the default
    /// destination) (NET-68). `options` must be empty: the socket is set up by its owner.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidArgument`]: `sock` is not a datagram socket; any option set in
    ///   `options` ("socket modifier options can not be used when sock is specified").
    /// * [`Error::Closed`] for a closed loop; the panic of `connection_made`, if it panicked.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the transport is closed.
    ///
    /// ```
    /// use loop_net::{DatagramExt, DatagramOptions};
    /// struct Quiet;
    /// impl loop_transport::DatagramProtocol for Quiet {}
    /// let lp = loop_core::EventLoop::new()?;
    /// let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let at = sock.local_addr()?;
    /// let (t, _) = lp.run_until_complete(lp.create_datagram_endpoint_sock(|| Quiet, sock, DatagramOptions::new()))??;
    /// assert_eq!(t.sockname().unwrap().as_inet(), Some(at));
    /// t.close();
    /// # lp.run_until_complete(async {})?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn create_datagram_endpoint_sock<P, F>(
        &self,
        protocol_factory: F,
        sock: impl Into<OwnedFd>,
        options: DatagramOptions,
    ) -> impl Future<Output = Result<(DatagramTransport, ProtocolRef<P>)>> + 'static
    where
        P: DatagramProtocol + 'static,
        F: FnOnce() -> P + 'static;
}

impl DatagramExt for EventLoop {
    fn create_datagram_endpoint<P, F>(
        &self,
        protocol_factory: F,
        options: DatagramOptions,
    ) -> impl Future<Output = Result<(DatagramTransport, ProtocolRef<P>)>> + 'static
    where
        P: DatagramProtocol + 'static,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        async move {
            if lp.is_closed() {
                return Err(Error::Closed);
            }
            let opened = open(&lp, &options).await?;
            endpoint(lp, opened, protocol_factory).await
        }
    }

    fn create_datagram_endpoint_sock<P, F>(
        &self,
        protocol_factory: F,
        sock: impl Into<OwnedFd>,
        options: DatagramOptions,
    ) -> impl Future<Output = Result<(DatagramTransport, ProtocolRef<P>)>> + 'static
    where
        P: DatagramProtocol + 'static,
        F: FnOnce() -> P + 'static,
    {
        let lp = self.clone();
        let sock = sock.into();
        async move {
            if lp.is_closed() {
                return Err(Error::Closed);
            }
            let opened = adopt(sock, &options)?;
            endpoint(lp, opened, protocol_factory).await
        }
    }
}

/// The transport over an opened socket, once `connection_made` ran (NET-74).
async fn endpoint<P, F>(
    lp: EventLoop,
    opened: Opened,
    protocol_factory: F,
) -> Result<(DatagramTransport, ProtocolRef<P>)>
where
    P: DatagramProtocol + 'static,
    F: FnOnce() -> P,
{
    let protocol = protocol_factory();
    let waiter = lp.create_future::<()>();
    let t = DatagramTransport::with_parts(
        &lp,
        opened.fd,
        Box::new(protocol),
        opened.address,
        opened.connected,
        Some(waiter.clone()),
    )?;
    let p = t.protocol_ref::<P>();
    let mut guard = CloseOnDrop(Some(t.clone()));
    waiter.await?;
    // Made: the transport is the caller's now (the guard lets go of its clone).
    guard.0 = None;
    Ok((t, p))
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

/// NET-68: adopts `sock`, with no option set.
fn adopt(sock: OwnedFd, options: &DatagramOptions) -> Result<Opened> {
    DatagramTransport::check_socket(&sock)?;
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
    let fd = crate::sys::socket(AddressFamily::from_raw(family), SocketType::DGRAM, proto)?;
    if options.reuse_port && rustix::net::sockopt::set_socket_reuseport(&fd, true).is_err() {
        return Err(Error::invalid_argument(
            "reuse_port not supported by socket module (SO_REUSEPORT was refused)",
        ));
    }
    if options.allow_broadcast {
        rustix::net::sockopt::set_socket_broadcast(&fd, true)?;
    }
    if let Some(local) = &c.local {
        rustix::net::bind(&fd, &local.to_rustix()?)?;
    }
    let mut connected = false;
    if let Some(remote) = &c.remote {
        if !options.allow_broadcast {
            let target = remote.to_rustix()?;
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
