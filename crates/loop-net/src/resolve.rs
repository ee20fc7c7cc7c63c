//! Name resolution: the system resolver (`getaddrinfo` / `getnameinfo` from the C library, so
//! `/etc/hosts`, `nsswitch.conf` and service names behave as in every other program), plus the
//! numeric fast path that skips it.
//!
//! The blocking calls here are what the loop runs on its default executor; IP literals never
//! reach them (NET-18), so connecting to `127.0.0.1` works even after the executor was shut
//! down.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// `AF_UNSPEC`, `AF_INET`, `AF_INET6` (the values of this platform).
pub const AF_UNSPEC: i32 = libc::AF_UNSPEC;
/// IPv4.
pub const AF_INET: i32 = libc::AF_INET;
/// IPv6.
pub const AF_INET6: i32 = libc::AF_INET6;
/// Stream sockets (TCP).
pub const SOCK_STREAM: i32 = libc::SOCK_STREAM;
/// Datagram sockets (UDP).
pub const SOCK_DGRAM: i32 = libc::SOCK_DGRAM;
/// TCP.
pub const IPPROTO_TCP: i32 = libc::IPPROTO_TCP;
/// UDP.
pub const IPPROTO_UDP: i32 = libc::IPPROTO_UDP;
/// `AI_PASSIVE`: addresses for binding (with no host: the wildcard addresses).
pub const AI_PASSIVE: i32 = libc::AI_PASSIVE;
/// `AI_CANONNAME`: fill in the canonical name of the first result.
pub const AI_CANONNAME: i32 = libc::AI_CANONNAME;
/// `NI_NUMERICHOST`: numeric host in `getnameinfo`.
pub const NI_NUMERICHOST: i32 = libc::NI_NUMERICHOST;
/// `NI_NUMERICSERV`: numeric port in `getnameinfo`.
pub const NI_NUMERICSERV: i32 = libc::NI_NUMERICSERV;

/// What `getaddrinfo` should look for (its `hints`). All zero by default: any family, type and
/// protocol.
///
/// ```
/// let h = loop_net::Hints { socktype: loop_net::SOCK_STREAM, ..Default::default() };
/// assert_eq!(h.family, loop_net::AF_UNSPEC);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// Address family (`AF_UNSPEC` = 0 for any).
    pub family: i32,
    /// Socket type (0 for any).
    pub socktype: i32,
    /// Protocol (0 for any).
    pub protocol: i32,
    /// `AI_*` flags.
    pub flags: i32,
}

/// One `getaddrinfo` result: `(family, type, proto, canonname, sockaddr)` in asyncio.
///
/// ```
/// let r = loop_net::getaddrinfo_blocking(Some("127.0.0.1"), Some("80"), &Default::default()).unwrap();
/// assert_eq!(r[0].addr, "127.0.0.1:80".parse().unwrap());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// Address family.
    pub family: i32,
    /// Socket type.
    pub socktype: i32,
    /// Protocol.
    pub protocol: i32,
    /// Canonical name (with `AI_CANONNAME`, on the first result).
    pub canonname: Option<String>,
    /// The address.
    pub addr: SocketAddr,
}

fn cstring(s: &str, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte: {s:?}"),
        )
    })
}

/// The system resolver, blocking: what the loop's `getaddrinfo` runs on the executor. `host`
/// `None` with `AI_PASSIVE` gives the wildcard addresses; `port` may be a number or a service
/// name (`"http"`).
///
/// # Errors
///
/// The resolver's error (`NotFound` for an unknown host or service), naming the host and port.
///
/// ```
/// use loop_net::{getaddrinfo_blocking, Hints, SOCK_STREAM};
/// let hints = Hints { socktype: SOCK_STREAM, ..Default::default() };
/// let r = getaddrinfo_blocking(Some("localhost"), Some("8080"), &hints).unwrap();
/// assert!(r.iter().all(|a| a.addr.port() == 8080 && a.addr.ip().is_loopback()));
/// ```
pub fn getaddrinfo_blocking(
    host: Option<&str>,
    port: Option<&str>,
    hints: &Hints,
) -> io::Result<Vec<AddrInfo>> {
    let what = format!(
        "getaddrinfo({}, {})",
        host.unwrap_or("None"),
        port.unwrap_or("None")
    );
    let c_host = host.map(|h| cstring(h, "host")).transpose()?;
    let c_port = port
        .filter(|p| !p.is_empty())
        .map(|p| cstring(p, "port"))
        .transpose()?;
    let hints = [hints.family, hints.socktype, hints.protocol, hints.flags];
    let found = crate::sys::getaddrinfo(c_host.as_deref(), c_port.as_deref(), hints, &what)?;
    Ok(found
        .into_iter()
        .map(|(family, socktype, protocol, canonname, addr)| AddrInfo {
            family,
            socktype,
            protocol,
            canonname,
            addr,
        })
        .collect())
}

/// The system's reverse lookup, blocking: `(host, service)` for an address.
///
/// # Errors
///
/// The resolver's error.
///
/// ```
/// use loop_net::{getnameinfo_blocking, NI_NUMERICHOST, NI_NUMERICSERV};
/// let (h, p) = getnameinfo_blocking(&"127.0.0.1:80".parse().unwrap(), NI_NUMERICHOST | NI_NUMERICSERV).unwrap();
/// assert_eq!((h.as_str(), p.as_str()), ("127.0.0.1", "80"));
/// ```
pub fn getnameinfo_blocking(addr: &SocketAddr, flags: i32) -> io::Result<(String, String)> {
    crate::sys::getnameinfo(addr, flags)
}

/// NET-18: builds the result without the resolver when `host` is an IP literal (no `%zone`),
/// the port numeric or absent, and the type/protocol stream/TCP or datagram/UDP (or any).
///
/// ```
/// let r = loop_net::numeric_addrinfo(Some("::1"), Some("443"), &Default::default()).unwrap();
/// assert_eq!(r[0].family, loop_net::AF_INET6);
/// assert!(loop_net::numeric_addrinfo(Some("localhost"), Some("1"), &Default::default()).is_none());
/// assert!(loop_net::numeric_addrinfo(Some("1.2.3.4"), Some("http"), &Default::default()).is_none());
/// ```
pub fn numeric_addrinfo(
    host: Option<&str>,
    port: Option<&str>,
    hints: &Hints,
) -> Option<Vec<AddrInfo>> {
    let host = host?;
    if host.contains('%') {
        return None;
    }
    let port: u16 = match port {
        None => 0,
        Some("") => 0,
        Some(p) => p.parse().ok()?,
    };
    let ip: IpAddr = host.parse().ok()?;
    let family = match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    if hints.family != AF_UNSPEC && hints.family != family {
        return None;
    }
    let pairs: Vec<(i32, i32)> = match (hints.socktype, hints.protocol) {
        (0, 0) => vec![(SOCK_STREAM, IPPROTO_TCP), (SOCK_DGRAM, IPPROTO_UDP)],
        (SOCK_STREAM, 0) | (SOCK_STREAM, IPPROTO_TCP) => vec![(SOCK_STREAM, IPPROTO_TCP)],
        (SOCK_DGRAM, 0) | (SOCK_DGRAM, IPPROTO_UDP) => vec![(SOCK_DGRAM, IPPROTO_UDP)],
        _ => return None,
    };
    Some(
        pairs
            .into_iter()
            .map(|(socktype, protocol)| AddrInfo {
                family,
                socktype,
                protocol,
                canonname: None,
                addr: SocketAddr::new(ip, port),
            })
            .collect(),
    )
}
