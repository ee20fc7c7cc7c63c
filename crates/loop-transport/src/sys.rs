//! What differs between the platforms the transports run on, in one place: the flag that keeps
//! a send to a closed peer from raising SIGPIPE, a socket's address family, and Linux's
//! abstract Unix socket names.

use std::os::fd::AsFd;

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix};

/// Flags of every socket send: `MSG_NOSIGNAL` where it exists, so that a peer that went away
/// gives `EPIPE` instead of killing the process. Apple has no such flag: its sockets get
/// `SO_NOSIGPIPE` instead ([`no_sigpipe`]).
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_NOSIGNAL: SendFlags = SendFlags::NOSIGNAL;
/// Flags of every socket send (Apple: none; see [`no_sigpipe`]).
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_NOSIGNAL: SendFlags = SendFlags::empty();

/// Makes sends on `fd` give `EPIPE` instead of SIGPIPE where the send flag cannot (Apple:
/// `SO_NOSIGPIPE`); nothing elsewhere.
pub(crate) fn no_sigpipe(fd: impl AsFd) -> rustix::io::Result<()> {
    #[cfg(target_vendor = "apple")]
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
    #[cfg(not(target_vendor = "apple"))]
    let _ = fd;
    Ok(())
}

/// The address family of socket `fd`: `SO_DOMAIN` on Linux, the family of its own address
/// (`getsockname`) where that option does not exist.
pub(crate) fn socket_family(fd: impl AsFd) -> rustix::io::Result<AddressFamily> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::net::sockopt::socket_domain(fd)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Ok(rustix::net::getsockname(fd)?.address_family())
    }
}

/// The abstract name of a Unix socket address (Linux only; `None` elsewhere).
pub(crate) fn abstract_name(u: &SocketAddrUnix) -> Option<&[u8]> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        u.abstract_name()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = u;
        None
    }
}

/// A Unix socket address with an abstract name; `Unsupported` outside Linux.
pub(crate) fn new_abstract(name: &[u8]) -> std::io::Result<SocketAddrUnix> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Ok(SocketAddrUnix::new_abstract_name(name)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = name;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "abstract Unix socket names exist only on Linux; use a path",
        ))
    }
}
