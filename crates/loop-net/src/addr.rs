//! Socket addresses: loop-net uses loop-transport's [`Addr`], so the address a transport
//! reports (`peername`, `sockname`) is the same type that `sock_*` calls, servers and datagram
//! endpoints take and return.

use rustix::net::SocketAddrAny;

pub use loop_transport::Addr;

/// Crate-internal shorthands for the rustix conversions of [`Addr`].
#[allow(dead_code)]
pub(crate) trait AddrExt {
    /// [`Addr::from_rustix`].
    fn from_any(a: Option<SocketAddrAny>) -> Addr;
    /// [`Addr::to_rustix`].
    fn to_any(&self) -> std::io::Result<SocketAddrAny>;
}

impl AddrExt for Addr {
    fn from_any(a: Option<SocketAddrAny>) -> Addr {
        Addr::from_rustix(a)
    }

    fn to_any(&self) -> std::io::Result<SocketAddrAny> {
        self.to_rustix()
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
    Addr::sockname_of(sock)
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
    Addr::peername_of(sock)
}
