//! [`ServerSocket`]: a typed view of one of a server's listening sockets (asyncio's
//! `Server.sockets` items).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};

use loop_transport::Addr;

/// One listening socket of a [`Server`](crate::Server), as
/// [`Server::sockets`](crate::Server::sockets) lists them: the address it is bound to, its
/// family, and access to the socket itself while the server keeps it (NET-39).
///
/// The view does not own the socket: the server does, and closes it on
/// [`close()`](crate::Server::close) however many views exist (new connections are refused
/// from then on). So the fd is lent only for the length of a call:
/// [`with_fd`](ServerSocket::with_fd) gives `None` once the server closed the socket.
///
/// ```
/// use loop_net::{NetExt, ServerOptions, AF_INET};
/// struct Quiet;
/// impl loop_transport::Protocol for Quiet {}
/// let lp = loop_core::EventLoop::new()?;
/// let server = lp.run_until_complete(lp.create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new()))??;
/// let sock = &server.sockets()[0];
/// assert_eq!(sock.family(), AF_INET);
/// assert!(sock.local_addr().as_inet().unwrap().ip().is_loopback());
/// let reuse = sock.with_fd(|fd| rustix::net::sockopt::socket_reuseaddr(fd)).unwrap()?;
/// assert!(reuse);
/// server.close();
/// assert!(sock.with_fd(|_| ()).is_none() && sock.fileno().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ServerSocket {
    /// The server's socket, while the server holds it.
    fd: Weak<OwnedFd>,
    /// The address it was bound to when the view was made.
    addr: Addr,
    /// Its address family.
    family: i32,
}

impl ServerSocket {
    /// A view of `fd`, which the server holds.
    pub(crate) fn new(fd: &Rc<OwnedFd>) -> ServerSocket {
        let addr = Addr::sockname_of(&**fd).unwrap_or(Addr::Unnamed);
        let family = crate::sys::socket_family(fd.as_fd())
            .map(|f| i32::from(f.as_raw()))
            .unwrap_or(0);
        ServerSocket {
            fd: Rc::downgrade(fd),
            addr,
            family,
        }
    }

    /// The address the socket is bound to (asyncio's `sock.getsockname()`): an IP address and
    /// port, or a Unix path or abstract name.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct Quiet; impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert_ne!(s.sockets()[0].local_addr().as_inet().unwrap().port(), 0);
    /// # s.close();
    /// ```
    pub fn local_addr(&self) -> &Addr {
        &self.addr
    }

    /// The address family (asyncio's `sock.family`): [`AF_INET`](crate::AF_INET),
    /// [`AF_INET6`](crate::AF_INET6) or [`AF_UNIX`](crate::AF_UNIX).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct Quiet; impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| Quiet, "::1", 0, ServerOptions::new()));
    /// if let Ok(Ok(s)) = s {
    ///     assert_eq!(s.sockets()[0].family(), loop_net::AF_INET6);
    ///     s.close();
    /// }
    /// ```
    pub fn family(&self) -> i32 {
        self.family
    }

    /// Runs `f` with the socket borrowed (to read or set a socket option, or to duplicate it);
    /// `None` once the server has closed the socket. Even if `f` closes the server, the fd
    /// stays valid until `f` returns.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct Quiet; impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// let kind = s.sockets()[0].with_fd(|fd| rustix::net::sockopt::socket_type(fd)).unwrap().unwrap();
    /// assert_eq!(kind, rustix::net::SocketType::STREAM);
    /// # s.close();
    /// ```
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let fd = self.fd.upgrade()?;
        Some(f(fd.as_fd()))
    }

    /// The fd number while the server holds the socket (asyncio's `sock.fileno()`), `None`
    /// after `close()`. The number is for display and lookups; use
    /// [`with_fd`](ServerSocket::with_fd) to act on the socket.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct Quiet; impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.sockets()[0].fileno().is_some());
    /// # s.close();
    /// ```
    pub fn fileno(&self) -> Option<RawFd> {
        self.fd.upgrade().map(|fd| fd.as_raw_fd())
    }
}

impl fmt::Debug for ServerSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fileno() {
            Some(fd) => write!(
                f,
                "<ServerSocket fd={fd} family={} {}>",
                self.family, self.addr
            ),
            None => write!(
                f,
                "<ServerSocket [closed] family={} {}>",
                self.family, self.addr
            ),
        }
    }
}
