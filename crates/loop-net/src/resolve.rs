//! Name resolution: the system resolver (`getaddrinfo` / `getnameinfo` from the C library, so
//! `/etc/hosts`, `nsswitch.conf` and service names behave as in every other program), plus the
//! numeric fast path that skips it.
//!
//! The blocking calls here are what the loop runs on its default executor; IP literals never
//! reach them (NET-18), so connecting to `127.0.0.1` works even after the executor was shut
//! down.

use std::ffi::{CStr, CString};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

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

fn gai_error(code: i32, what: &str) -> io::Error {
    if code == libc::EAI_SYSTEM {
        let e = io::Error::last_os_error();
        return io::Error::new(e.kind(), format!("{what}: {e}"));
    }
    // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated message for any code.
    let msg = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    let kind = match code {
        libc::EAI_NONAME | libc::EAI_NODATA | libc::EAI_SERVICE => io::ErrorKind::NotFound,
        libc::EAI_AGAIN => io::ErrorKind::WouldBlock,
        libc::EAI_BADFLAGS | libc::EAI_FAMILY | libc::EAI_SOCKTYPE => io::ErrorKind::InvalidInput,
        libc::EAI_MEMORY => io::ErrorKind::OutOfMemory,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{what}: {msg}"))
}

fn cstring(s: &str, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte: {s:?}"),
        )
    })
}

/// Converts a C `sockaddr` of `len` bytes to an IP address.
fn sockaddr_to_std(sa: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: `sa` points to a sockaddr of `len` bytes filled in by getaddrinfo; the family
    // field is read first and the structure is only reinterpreted as the type of that family
    // when `len` is large enough for it.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let sin = &*(sa as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
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
    // SAFETY: an all-zero addrinfo is a valid "no hints" value; the fields we set are plain ints.
    let mut h: libc::addrinfo = unsafe { std::mem::zeroed() };
    h.ai_family = hints.family;
    h.ai_socktype = hints.socktype;
    h.ai_protocol = hints.protocol;
    h.ai_flags = hints.flags;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: host and port are NUL-terminated strings or null, `h` is a valid hints struct and
    // `res` receives a list that we free with freeaddrinfo below.
    let rc = unsafe {
        libc::getaddrinfo(
            c_host.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            c_port.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &h,
            &mut res,
        )
    };
    if rc != 0 {
        return Err(gai_error(rc, &what));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*cur };
        if let Some(addr) = sockaddr_to_std(ai.ai_addr, ai.ai_addrlen) {
            let canonname = if ai.ai_canonname.is_null() {
                None
            } else {
                // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
                Some(
                    unsafe { CStr::from_ptr(ai.ai_canonname) }
                        .to_string_lossy()
                        .into_owned(),
                )
            };
            out.push(AddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                canonname,
                addr,
            });
        }
        cur = ai.ai_next;
    }
    // SAFETY: `res` came from a successful getaddrinfo and is freed exactly once.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
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
    let mut host = [0 as libc::c_char; 1025];
    let mut serv = [0 as libc::c_char; 32];
    let rc = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero sockaddr_in is valid; we fill family, port and address.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: the sockaddr and both output buffers are valid for the lengths given.
            unsafe {
                libc::getnameinfo(
                    &sin as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    serv.as_mut_ptr(),
                    serv.len() as libc::socklen_t,
                    flags,
                )
            }
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero sockaddr_in6 is valid; we fill every meaningful field.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            // SAFETY: the sockaddr and both output buffers are valid for the lengths given.
            unsafe {
                libc::getnameinfo(
                    &sin6 as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    serv.as_mut_ptr(),
                    serv.len() as libc::socklen_t,
                    flags,
                )
            }
        }
    };
    if rc != 0 {
        return Err(gai_error(rc, &format!("getnameinfo({addr})")));
    }
    // SAFETY: on success both buffers hold NUL-terminated strings.
    let (h, s) = unsafe { (CStr::from_ptr(host.as_ptr()), CStr::from_ptr(serv.as_ptr())) };
    Ok((
        h.to_string_lossy().into_owned(),
        s.to_string_lossy().into_owned(),
    ))
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
