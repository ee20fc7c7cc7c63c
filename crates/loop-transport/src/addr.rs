//! Socket addresses of both families in one type, for `peername` / `sockname` and datagrams.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::net::{SocketAddrAny, SocketAddrUnix};

/// The address of an IP or Unix-domain socket (asyncio's address tuple or path string).
///
/// ```
/// use loop_transport::Addr;
/// let a: Addr = "127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(a.to_string(), "127.0.0.1:8080");
/// assert_eq!(Addr::from(std::path::Path::new("/tmp/s")).to_string(), "/tmp/s");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix-domain socket bound to a path.
    Unix(PathBuf),
    /// A Unix-domain socket with an abstract name (Linux), without the leading NUL byte.
    UnixAbstract(Vec<u8>),
    /// An unbound or unnamed socket (one end of a socketpair, say).
    Unnamed,
}

impl Addr {
    /// The IP address and port, if this is one.
    ///
    /// ```
    /// let a = loop_transport::Addr::from("[::1]:9".parse::<std::net::SocketAddr>().unwrap());
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
    /// let a = loop_transport::Addr::from(std::path::Path::new("/run/x.sock"));
    /// assert_eq!(a.as_path().unwrap().to_str(), Some("/run/x.sock"));
    /// ```
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(p) => Some(p),
            _ => None,
        }
    }

    /// Converts a rustix socket address (`None` → [`Addr::Unnamed`]).
    ///
    /// ```
    /// let a = loop_transport::Addr::from_rustix(None);
    /// assert_eq!(a, loop_transport::Addr::Unnamed);
    /// ```
    pub fn from_rustix(a: Option<SocketAddrAny>) -> Addr {
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
            match crate::sys::abstract_name(&u) {
                // An unnamed socket reports an empty abstract name.
                Some(name) if !name.is_empty() => return Addr::UnixAbstract(name.to_vec()),
                _ => {}
            }
        }
        Addr::Unnamed
    }

    /// Converts to a rustix socket address, for `connect`, `bind` and `sendto`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for [`Addr::Unnamed`] (nothing to connect or send to) or a path too long
    /// for a Unix socket address.
    ///
    /// ```
    /// use loop_transport::Addr;
    /// let a = Addr::from("127.0.0.1:80".parse::<std::net::SocketAddr>().unwrap());
    /// assert_eq!(Addr::from_rustix(Some(a.to_rustix().unwrap())), a);
    /// assert!(Addr::Unnamed.to_rustix().is_err());
    /// ```
    pub fn to_rustix(&self) -> std::io::Result<SocketAddrAny> {
        Ok(match self {
            Addr::Inet(a) => SocketAddrAny::from(*a),
            Addr::Unix(p) => SocketAddrAny::from(SocketAddrUnix::new(p.as_path())?),
            Addr::UnixAbstract(n) => SocketAddrAny::from(crate::sys::new_abstract(n)?),
            Addr::Unnamed => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "an unnamed address cannot be connected, bound or sent to; give an IP address or a path",
                ))
            }
        })
    }

    /// The address `sock` is bound to.
    ///
    /// # Errors
    ///
    /// The `getsockname` error (`ENOTSOCK` for a non-socket).
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let a = loop_transport::Addr::sockname_of(&l).unwrap();
    /// assert_eq!(a.as_inet().unwrap(), l.local_addr().unwrap());
    /// ```
    pub fn sockname_of(sock: impl AsFd) -> std::io::Result<Addr> {
        Ok(Addr::from_rustix(Some(rustix::net::getsockname(sock)?)))
    }

    /// The address `sock` is connected to.
    ///
    /// # Errors
    ///
    /// The `getpeername` error (`ENOTCONN` for an unconnected socket).
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert_eq!(loop_transport::Addr::peername_of(&a).unwrap(), loop_transport::Addr::Unnamed);
    /// ```
    pub fn peername_of(sock: impl AsFd) -> std::io::Result<Addr> {
        Ok(Addr::from_rustix(rustix::net::getpeername(sock)?))
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
