//! The low-level `sock_*` calls: one system call at a time on a non-blocking socket.
//!
//! Each call tries the operation at once and waits for readiness only if it would block —
//! asyncio's `sock_recv` & co. The wait registers the fd with `add_reader` / `add_writer` for
//! its duration and removes it however the wait ends (completion, error, cancellation or drop),
//! so a cancelled call leaves nothing registered and the next call on the socket sees every byte
//! (NET-13).
//!
//! Receives and sends pass `MSG_DONTWAIT`, so they never block the loop even on a socket left in
//! blocking mode; `sock_accept` and `sock_connect` cannot, and reject a blocking socket. In debug
//! mode every call rejects one (NET-15). Sends pass `MSG_NOSIGNAL`: a peer that closed gives
//! `EPIPE`, never a `SIGPIPE`.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use loop_core::{Error, EventLoop, Result};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use crate::addr::{Addr, AddrExt};

/// Removes the watcher added for one wait, however the wait ends.
struct Unwatch {
    /// The loop.
    lp: EventLoop,
    /// The fd.
    fd: RawFd,
    /// Reader (true) or writer.
    read: bool,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let _ = if self.read {
            self.lp.remove_reader(self.fd)
        } else {
            self.lp.remove_writer(self.fd)
        };
    }
}

/// Waits until `fd` is readable (`read`) or writable.
///
/// # Errors
///
/// [`Error::Closed`], [`Error::FdInUse`] if a transport owns the fd, [`Error::Cancelled`] if
/// the calling task was cancelled.
pub(crate) async fn wait_fd(lp: &EventLoop, fd: BorrowedFd<'_>, read: bool) -> Result<()> {
    let fut = lp.create_future::<()>();
    let done = fut.clone();
    let cb = move |_: &EventLoop| {
        let _ = done.set_result(());
    };
    if read {
        lp.add_reader(fd, cb)?;
    } else {
        lp.add_writer(fd, cb)?;
    }
    let _unwatch = Unwatch {
        lp: lp.clone(),
        fd: fd.as_raw_fd(),
        read,
    };
    fut.await
}

fn is_nonblocking(fd: BorrowedFd<'_>) -> Result<bool> {
    let fl = rustix::fs::fcntl_getfl(fd)?;
    Ok(fl.contains(rustix::fs::OFlags::NONBLOCK))
}

/// NET-15: a blocking socket is refused where it would block the loop (always for accept and
/// connect, in debug mode for every call).
fn check_nonblocking(lp: &EventLoop, fd: BorrowedFd<'_>, always: bool) -> Result<()> {
    if (always || lp.get_debug()) && !is_nonblocking(fd)? {
        return Err(Error::invalid_argument(
            "the socket must be non-blocking (call set_nonblocking(true) on it first)",
        ));
    }
    Ok(())
}

fn send_flags() -> SendFlags {
    SendFlags::DONTWAIT | crate::sys::SEND_NOSIGNAL
}

/// The `sock_*` calls, as methods of [`EventLoop`].
///
/// Every method takes the socket by reference: the caller keeps owning it.
///
/// # Cancel safety
///
/// Every method is cancel safe in asyncio's sense: if the future is dropped or the task is
/// cancelled while it waits, no data was consumed (receives) and the registration is removed.
/// `sock_sendall` may have sent part of the data when cancelled, as in asyncio.
///
/// ```
/// use loop_net::SockExt;
/// use std::os::unix::net::UnixStream;
/// let lp = loop_core::EventLoop::new()?;
/// let (a, b) = UnixStream::pair()?;
/// a.set_nonblocking(true)?;
/// b.set_nonblocking(true)?;
/// let l = lp.clone();
/// let got = lp.run_until_complete(async move {
///     l.sock_sendall(&a, b"ping").await?;
///     l.sock_recv(&b, 16).await
/// })??;
/// assert_eq!(got, b"ping");
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait SockExt: crate::sealed::Sealed {
    /// Receives up to `n` bytes (an empty vector at EOF). Tries at once, waits only if the
    /// socket would block (NET-08).
    ///
    /// # Errors
    ///
    /// The OS error of `recv`; [`Error::Cancelled`] if the task was cancelled while waiting.
    ///
    /// ```
    /// use loop_net::SockExt;
    /// use std::io::Write;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// a.set_nonblocking(true).unwrap();
    /// b.write_all(b"ping").unwrap();
    /// let lp2 = lp.clone();
    /// let data = lp.run_until_complete(async move { lp2.sock_recv(&a, 16).await }).unwrap().unwrap();
    /// assert_eq!(data, b"ping");
    /// ```
    fn sock_recv<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        n: usize,
    ) -> impl Future<Output = Result<Vec<u8>>> + 'a;

    /// Receives into `buf`; returns the number of bytes written (0 at EOF) (NET-09).
    ///
    /// # Errors
    ///
    /// As for [`sock_recv`](SockExt::sock_recv).
    ///
    /// ```
    /// use loop_net::SockExt;
    /// use std::io::Write;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// b.write_all(b"xy").unwrap();
    /// let lp2 = lp.clone();
    /// let n = lp.run_until_complete(async move {
    ///     let mut buf = [0u8; 8];
    ///     lp2.sock_recv_into(&a, &mut buf).await
    /// }).unwrap().unwrap();
    /// assert_eq!(n, 2);
    /// ```
    fn sock_recv_into<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<usize>> + 'a;

    /// Sends all of `data`, waiting for writability as needed (NET-10). On error there is no
    /// way to know how much was sent.
    ///
    /// # Errors
    ///
    /// The OS error of `send` (e.g. `EPIPE` when the peer closed).
    ///
    /// ```
    /// use loop_net::SockExt;
    /// use std::io::Read;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let lp2 = lp.clone();
    /// lp.run_until_complete(async move { lp2.sock_sendall(&a, b"hello").await }).unwrap().unwrap();
    /// let mut buf = [0u8; 5];
    /// b.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"hello");
    /// ```
    fn sock_sendall<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        data: &'a [u8],
    ) -> impl Future<Output = Result<()>> + 'a;

    /// Connects a non-blocking socket to `addr`, waiting for the connection to complete
    /// (NET-11).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a blocking socket; the connect error (e.g.
    /// `ECONNREFUSED`).
    ///
    /// ```
    /// use loop_net::SockExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let s = rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::STREAM, None).unwrap();
    /// let s = std::net::TcpStream::from(s);
    /// s.set_nonblocking(true).unwrap();
    /// let lp2 = lp.clone();
    /// lp.run_until_complete(async move { lp2.sock_connect(&s, addr).await }).unwrap().unwrap();
    /// ```
    fn sock_connect<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        addr: impl Into<Addr>,
    ) -> impl Future<Output = Result<()>> + 'a;

    /// Accepts a connection on a non-blocking listening socket; the new socket is already
    /// non-blocking and close-on-exec (NET-12). `T` is any owner of the fd: `TcpStream`,
    /// `UnixStream`, `OwnedFd`, ...
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a blocking socket; the accept error.
    ///
    /// ```
    /// use loop_net::SockExt;
    /// use std::net::{TcpListener, TcpStream};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = TcpListener::bind("127.0.0.1:0").unwrap();
    /// l.set_nonblocking(true).unwrap();
    /// let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let lp2 = lp.clone();
    /// let (conn, peer) = lp.run_until_complete(async move { lp2.sock_accept::<_, TcpStream>(&l).await }).unwrap().unwrap();
    /// assert_eq!(peer.as_inet().unwrap(), conn.peer_addr().unwrap());
    /// ```
    fn sock_accept<'a, S: AsFd, T: From<OwnedFd>>(
        &'a self,
        sock: &'a S,
    ) -> impl Future<Output = Result<(T, Addr)>> + 'a;

    /// Receives one datagram of at most `n` bytes and its sender (NET-14).
    ///
    /// # Errors
    ///
    /// The OS error of `recvfrom`.
    ///
    /// ```
    /// use loop_net::SockExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// b.send_to(b"dgram", a.local_addr().unwrap()).unwrap();
    /// let lp2 = lp.clone();
    /// let (data, from) = lp.run_until_complete(async move { lp2.sock_recvfrom(&a, 64).await }).unwrap().unwrap();
    /// assert_eq!(data, b"dgram");
    /// assert_eq!(from.as_inet().unwrap(), b.local_addr().unwrap());
    /// ```
    fn sock_recvfrom<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        n: usize,
    ) -> impl Future<Output = Result<(Vec<u8>, Addr)>> + 'a;

    /// Receives one datagram into `buf` (at most `nbytes` bytes, default the buffer's length)
    /// (NET-14).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `nbytes` exceeds the buffer; the OS error of `recvfrom`.
    ///
    /// ```
    /// use loop_net::SockExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// b.send_to(b"abc", a.local_addr().unwrap()).unwrap();
    /// let lp2 = lp.clone();
    /// let n = lp.run_until_complete(async move {
    ///     let mut buf = [0u8; 16];
    ///     lp2.sock_recvfrom_into(&a, &mut buf, None).await.map(|(n, _)| n)
    /// }).unwrap().unwrap();
    /// assert_eq!(n, 3);
    /// ```
    fn sock_recvfrom_into<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        buf: &'a mut [u8],
        nbytes: Option<usize>,
    ) -> impl Future<Output = Result<(usize, Addr)>> + 'a;

    /// Sends one datagram to `addr`; a would-block send is retried when writable (NET-14).
    ///
    /// # Errors
    ///
    /// The OS error of `sendto`.
    ///
    /// ```
    /// use loop_net::SockExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let to = b.local_addr().unwrap();
    /// let lp2 = lp.clone();
    /// let n = lp.run_until_complete(async move { lp2.sock_sendto(&a, b"hi", to).await }).unwrap().unwrap();
    /// assert_eq!(n, 2);
    /// let mut buf = [0u8; 4];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// ```
    fn sock_sendto<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        data: &'a [u8],
        addr: impl Into<Addr>,
    ) -> impl Future<Output = Result<usize>> + 'a;
}

// The trait spells out each future's lifetime so that callers see `+ 'a`; the
// impl keeps the same shape rather than `async fn`.
#[allow(clippy::manual_async_fn)]
impl SockExt for EventLoop {
    fn sock_recv<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        n: usize,
    ) -> impl Future<Output = Result<Vec<u8>>> + 'a {
        async move {
            let mut buf = vec![0u8; n];
            let len = recv_into(self, sock.as_fd(), &mut buf).await?;
            buf.truncate(len);
            Ok(buf)
        }
    }

    fn sock_recv_into<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<usize>> + 'a {
        recv_into(self, sock.as_fd(), buf)
    }

    fn sock_sendall<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        data: &'a [u8],
    ) -> impl Future<Output = Result<()>> + 'a {
        async move {
            let fd = sock.as_fd();
            check_nonblocking(self, fd, false)?;
            let mut sent = 0;
            while sent < data.len() {
                match rustix::net::send(fd, &data[sent..], send_flags()) {
                    Ok(n) => sent += n,
                    Err(Errno::AGAIN) => wait_fd(self, fd, false).await?,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
    }

    fn sock_connect<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        addr: impl Into<Addr>,
    ) -> impl Future<Output = Result<()>> + 'a {
        let addr = addr.into();
        async move {
            let fd = sock.as_fd();
            check_nonblocking(self, fd, true)?;
            let target = addr.to_any()?;
            loop {
                match rustix::net::connect(fd, &target) {
                    Ok(()) => return Ok(()),
                    Err(Errno::INTR) => continue,
                    Err(Errno::INPROGRESS) | Err(Errno::AGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            wait_fd(self, fd, false).await?;
            match rustix::net::sockopt::socket_error(fd)? {
                Ok(()) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }

    fn sock_accept<'a, S: AsFd, T: From<OwnedFd>>(
        &'a self,
        sock: &'a S,
    ) -> impl Future<Output = Result<(T, Addr)>> + 'a {
        async move {
            let fd = sock.as_fd();
            check_nonblocking(self, fd, true)?;
            loop {
                match crate::sys::accept(fd) {
                    Ok((conn, addr)) => return Ok((T::from(conn), Addr::from_any(addr))),
                    Err(Errno::AGAIN) | Err(Errno::CONNABORTED) => wait_fd(self, fd, true).await?,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    fn sock_recvfrom<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        n: usize,
    ) -> impl Future<Output = Result<(Vec<u8>, Addr)>> + 'a {
        async move {
            let mut buf = vec![0u8; n];
            let (len, addr) = recvfrom_into(self, sock.as_fd(), &mut buf).await?;
            buf.truncate(len);
            Ok((buf, addr))
        }
    }

    fn sock_recvfrom_into<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        buf: &'a mut [u8],
        nbytes: Option<usize>,
    ) -> impl Future<Output = Result<(usize, Addr)>> + 'a {
        async move {
            let n = nbytes.unwrap_or(buf.len());
            if n > buf.len() {
                return Err(Error::invalid_argument(format!(
                    "nbytes ({n}) is greater than the length of the buffer ({})",
                    buf.len()
                )));
            }
            recvfrom_into(self, sock.as_fd(), &mut buf[..n]).await
        }
    }

    fn sock_sendto<'a, S: AsFd>(
        &'a self,
        sock: &'a S,
        data: &'a [u8],
        addr: impl Into<Addr>,
    ) -> impl Future<Output = Result<usize>> + 'a {
        let addr = addr.into();
        async move {
            let fd = sock.as_fd();
            check_nonblocking(self, fd, false)?;
            let target = addr.to_any()?;
            loop {
                match rustix::net::sendto(fd, data, send_flags(), &target) {
                    Ok(n) => return Ok(n),
                    Err(Errno::AGAIN) => wait_fd(self, fd, false).await?,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

async fn recv_into(lp: &EventLoop, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    check_nonblocking(lp, fd, false)?;
    loop {
        match rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(n),
            Err(Errno::AGAIN) => wait_fd(lp, fd, true).await?,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

async fn recvfrom_into(
    lp: &EventLoop,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Addr)> {
    check_nonblocking(lp, fd, false)?;
    loop {
        match rustix::net::recvfrom(fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _, addr)) => return Ok((n, Addr::from_any(addr))),
            Err(Errno::AGAIN) => wait_fd(lp, fd, true).await?,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
