//! `get_extra_info`: its keys and values, and [`SocketRef`], a borrowed view of a transport's fd.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::addr::Addr;

/// A key of [`Transport::get_extra_info`](crate::Transport::get_extra_info) (asyncio's string keys, typed).
///
/// ```
/// use loop_transport::Extra;
/// assert_ne!(Extra::Peername, Extra::Sockname);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Extra {
    /// `peername`: the remote address of a socket.
    Peername,
    /// `sockname`: the local address of a socket.
    Sockname,
    /// `socket`: the socket's fd, a non-owning view (sockets only).
    Socket,
    /// `pipe`: the pipe's fd, a non-owning view (pipes only).
    Pipe,
    /// A value attached with [`TransportOptions::extra`](crate::TransportOptions::extra), by key (`"subprocess"`, ...).
    Custom(&'static str),
}

/// A value of [`Transport::get_extra_info`](crate::Transport::get_extra_info).
///
/// ```
/// use loop_transport::{Addr, ExtraValue};
/// let v = ExtraValue::Addr(Addr::Unnamed);
/// assert_eq!(v.as_addr(), Some(&Addr::Unnamed));
/// assert_eq!(v.as_fd(), None);
/// ```
#[derive(Clone)]
pub enum ExtraValue {
    /// An address (`peername`, `sockname`).
    Addr(Addr),
    /// A file descriptor number, valid while the transport is open (`socket`, `pipe`).
    Fd(RawFd),
    /// A custom value.
    Value(Rc<dyn Any>),
}

impl ExtraValue {
    /// The address, if this is one.
    ///
    /// ```
    /// assert!(loop_transport::ExtraValue::Fd(3).as_addr().is_none());
    /// ```
    pub fn as_addr(&self) -> Option<&Addr> {
        match self {
            ExtraValue::Addr(a) => Some(a),
            _ => None,
        }
    }

    /// The fd number, if this is one.
    ///
    /// ```
    /// assert_eq!(loop_transport::ExtraValue::Fd(3).as_fd(), Some(3));
    /// ```
    pub fn as_fd(&self) -> Option<RawFd> {
        match self {
            ExtraValue::Fd(fd) => Some(*fd),
            _ => None,
        }
    }

    /// The custom value as `T`, if it is one of that type.
    ///
    /// ```
    /// let v = loop_transport::ExtraValue::Value(std::rc::Rc::new(7u8));
    /// assert_eq!(v.downcast_ref::<u8>(), Some(&7));
    /// ```
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match self {
            ExtraValue::Value(v) => v.downcast_ref::<T>(),
            _ => None,
        }
    }
}

impl fmt::Debug for ExtraValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtraValue::Addr(a) => f.debug_tuple("Addr").field(a).finish(),
            ExtraValue::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            ExtraValue::Value(_) => f.write_str("Value(..)"),
        }
    }
}

/// A borrowed view of a transport's socket (or pipe) fd: what [`Transport::socket`](crate::Transport::socket) gives, for
/// `getsockopt` and the like (wrap it in `socket2::SockRef` for a socket API).
///
/// It keeps the fd open while it lives, so the number never names another file; the transport
/// still stops watching it at teardown. Do not read from or write to it behind the
/// transport's back.
///
/// [`Transport::socket`](crate::Transport::socket): crate::Transport::socket
///
/// ```
/// use loop_transport::{Protocol, Transport, TransportOptions};
/// struct P;
/// impl Protocol for P {}
/// let lp = loop_core::EventLoop::new().unwrap();
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let t = Transport::new(&lp, a, P, TransportOptions::socket()).unwrap();
/// let s = t.socket().unwrap();
/// assert_eq!(rustix::net::sockopt::socket_type(&s).unwrap(), rustix::net::SocketType::STREAM);
/// # t.abort(); lp.run_until_complete(async {}).unwrap();
/// ```
#[derive(Clone)]
pub struct SocketRef(Rc<OwnedFd>);

impl SocketRef {
    /// A view of a shared fd (transports make these).
    #[doc(hidden)]
    pub fn new(fd: Rc<OwnedFd>) -> SocketRef {
        SocketRef(fd)
    }
}

impl AsFd for SocketRef {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for SocketRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl fmt::Debug for SocketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<SocketRef fd={}>", self.0.as_raw_fd())
    }
}
