//! Socket addresses: IPv4/IPv6 and Unix-domain, in one type.
//!
//! asyncio passes addresses as tuples (IP) or strings (Unix paths); evloop uses one enum so the
//! same `sock_*` calls, `peername` / `sockname` and datagram endpoints serve both families.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustix::net::{SocketAddrAny, SocketAddrUnix};

/// An address of an IP or Unix-domain socket.
///
/// ```
/// use loop_net::Addr;
/// let a: Addr = "127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(a.to_string(), "127.0.0.1:8080");
/// let u = Addr::from(std::path::Path::new("/tmp/sock"));
/// assert_eq!(u.to_string(), "/tmp/sock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix-domain socket bound to a path.
    Unix(PathBuf),
    /// A Unix-domain socket with an abstract name (Linux), without the leading NUL byte.
    UnixAbstract(Vec<u8>),
    /// An unbound or unnamed socket (e.g. one end of a socketpair).
    Unnamed,
}

impl Addr {
    /// The IP address, if this is one.
    ///
    /// ```
    /// let a = loop_net::Addr::from("[::1]:9".parse::<std::net::SocketAddr>().unwrap());
    /// assert_eq!(a.as_inet().unwrap().port(), 9);
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            _ => None,
        }
    }

    /// The path, if this is a path-bound Unix address.
    ///
    /// ```
    /// let a = loop_net::Addr::from(std::path::Path::new("/run/x.sock"));
    /// assert_eq!(a.as_path().unwrap().to_str(), Some("/run/x.sock"));
    /// ```
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(p) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn from_any(a: Option<SocketAddrAny>) -> Addr {
        let Some(a) = a else { return Addr::Unnamed };
        if let Ok(ip) = SocketAddr::try_from(a.clone()) {
            return Addr::Inet(ip);
        }
        if let Ok(u) = SocketAddrUnix::try_from(a) {
            if let Some(p) = u.path() {
                use std::os::unix::ffi::OsStrExt;
                let bytes = p.to_bytes();
                if !bytes.is_empty() {
                    return Addr::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)));
                }
            }
            if let Some(name) = u.abstract_name() {
                if !name.is_empty() {
                    return Addr::UnixAbstract(name.to_vec());
                }
            }
        }
        Addr::Unnamed
    }

    pub(crate) fn to_any(&self) -> std::io::Result<SocketAddrAny> {
        Ok(match self {
            Addr::Inet(a) => SocketAddrAny::from(*a),
            Addr::Unix(p) => SocketAddrAny::from(SocketAddrUnix::new(p.as_path())?),
            Addr::UnixAbstract(n) => SocketAddrAny::from(SocketAddrUnix::new_abstract_name(n)?),
            Addr::Unnamed => return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an unnamed address cannot be connected or sent to; give an IP address or a path",
            )),
        })
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Inet(a)
    }
}

impl From<&Path> for Addr {
    fn from(p: &Path) -> Addr {
        Addr::Unix(p.to_path_buf())
    }
}

impl From<PathBuf> for Addr {
    fn from(p: PathBuf) -> Addr {
        Addr::Unix(p)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "{}", p.display()),
            Addr::UnixAbstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            Addr::Unnamed => f.write_str("<unnamed>"),
        }
    }
}

/// The address a socket is bound to.
///
/// # Errors
///
/// The `getsockname` error.
///
/// ```
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let a = loop_net::sockname(&l).unwrap();
/// assert_eq!(a.as_inet().unwrap(), l.local_addr().unwrap());
/// ```
pub fn sockname(sock: impl std::os::fd::AsFd) -> std::io::Result<Addr> {
    Ok(Addr::from_any(Some(rustix::net::getsockname(sock)?)))
}

/// The address a socket is connected to.
///
/// # Errors
///
/// The `getpeername` error (`ENOTCONN` for an unconnected socket).
///
/// ```
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// assert_eq!(loop_net::peername(&a).unwrap(), loop_net::Addr::Unnamed);
/// ```
pub fn peername(sock: impl std::os::fd::AsFd) -> std::io::Result<Addr> {
    Ok(Addr::from_any(rustix::net::getpeername(sock)?))
}
