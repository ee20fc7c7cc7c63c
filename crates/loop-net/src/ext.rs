//! [`NetExt`]: name resolution, connections and servers as methods of the loop.
//!
//! Every method returns a `'static` future (arguments are copied in), so it can be passed to
//! `run_until_complete`, spawned with `create_task`, or awaited inside a task.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;

use loop_core::{EventLoop, Result};
use loop_transport::{ProtocolRef, StreamProtocol, StreamReader, StreamWriter, Transport};

use crate::connect::{self, ConnectOptions};
use crate::lookup::{self, Service};
use crate::sealed::Sealed;
use crate::server::{self, Hosts, Server, ServerOptions};
use crate::streams::{Listen, Target};
use crate::{streams, unix, AddrInfo, Hints};

/// Networking methods of [`EventLoop`]: `getaddrinfo`, `getnameinfo`, `create_connection`,
/// `create_server`, their Unix variants, and the streams functions `open_connection` /
/// `start_server`.
///
/// Protocol factories return anything that converts into a
/// [`StreamProtocol`] (any [`Protocol`](loop_transport::Protocol), or
/// `StreamProtocol::buffered(..)`). The transport owns the protocol; the connection calls
/// return a [`ProtocolRef`] to it beside the transport, asyncio's `(transport, protocol)`.
///
/// ```
/// use loop_net::{ConnectOptions, NetExt, ServerOptions};
/// use loop_transport::{Protocol, Transport};
///
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
///     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(data).unwrap(); }
/// }
///
/// let lp = loop_core::EventLoop::new()?;
/// let lp2 = lp.clone();
/// let echoed = lp.run_until_complete(async move {
///     let server = lp2.create_server(|| Echo(None), "127.0.0.1", 0, ServerOptions::new()).await?;
///     let port = server.local_addrs()[0].as_inet().unwrap().port();
///     let (mut reader, writer) = lp2.open_connection("127.0.0.1", port, ConnectOptions::new()).await?;
///     writer.write(b"ping\n")?;
///     let line = reader.readline().await?;
///     writer.close();
///     server.close();
///     Ok::<_, loop_core::Error>(line)
/// })??;
/// assert_eq!(echoed, b"ping\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait NetExt: Sealed {
    /// Resolves `host` and `port` with the system resolver on the default executor (NET-16),
    /// always — even an IP literal (the connection functions skip the resolver for those,
    /// NET-18).
    ///
    /// # Errors
    ///
    /// The resolver's error (`NotFound` for an unknown host or service);
    /// [`Error::ExecutorShutdown`](loop_core::Error::ExecutorShutdown) after
    /// `shutdown_default_executor()` (NET-17).
    ///
    /// ```
    /// use loop_net::{Hints, NetExt, SOCK_STREAM};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let hints = Hints { socktype: SOCK_STREAM, ..Default::default() };
    /// let r = lp.run_until_complete(lp.getaddrinfo(Some("localhost"), "http", hints)).unwrap().unwrap();
    /// assert!(r.iter().all(|i| i.addr.port() == 80));
    /// ```
    fn getaddrinfo(
        &self,
        host: Option<&str>,
        port: impl Into<Service>,
        hints: Hints,
    ) -> impl Future<Output = Result<Vec<AddrInfo>>> + 'static;

    /// Reverse lookup `(host, service)` on the default executor (NET-16).
    ///
    /// # Errors
    ///
    /// The resolver's error; [`Error::ExecutorShutdown`](loop_core::Error::ExecutorShutdown)
    /// after `shutdown_default_executor()`.
    ///
    /// ```
    /// use loop_net::{NetExt, NI_NUMERICHOST, NI_NUMERICSERV};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let f = lp.getnameinfo("127.0.0.1:22".parse().unwrap(), NI_NUMERICHOST | NI_NUMERICSERV);
    /// assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), ("127.0.0.1".into(), "22".into()));
    /// ```
    fn getnameinfo(
        &self,
        addr: SocketAddr,
        flags: i32,
    ) -> impl Future<Output = Result<(String, String)>> + 'static;

    /// Connects to `host:port`, wraps the socket in a transport with the protocol `factory()`
    /// makes, and returns once `connection_made` has run (NET-19 .. NET-28). Addresses are
    /// tried in resolver order, or staggered with `happy_eyeballs_delay`. A connected socket
    /// is adopted with [`create_connection_sock`](NetExt::create_connection_sock) instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for an empty `host` with
    /// an unspecified port, or TLS arguments; the resolver's error; when every attempt fails,
    /// its error, or
    /// "Multiple exceptions: …", or an [`ErrorGroup`](crate::ErrorGroup) with `all_errors`.
    ///
    /// # Cancel safety
    ///
    /// Cancelling closes every socket of the attempts in progress; a transport made but not
    /// yet returned is closed.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = l.local_addr().unwrap().port();
    /// let (t, _p) = lp.run_until_complete(lp.create_connection(|| Quiet, "127.0.0.1", port, ConnectOptions::new())).unwrap().unwrap();
    /// assert_eq!(t.peername().unwrap().as_inet().unwrap().port(), port);
    /// t.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn create_connection<F, P>(
        &self,
        factory: F,
        host: &str,
        port: impl Into<Service>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// Wraps an already accepted (connected) stream socket as a transport (NET-29).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for a socket that is not a
    /// stream socket or TLS arguments.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (t, _p) = lp.run_until_complete(lp.connect_accepted_socket(|| Quiet, a, ConnectOptions::new())).unwrap().unwrap();
    /// t.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn connect_accepted_socket<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// Listens on every address of `hosts` at `port`; each accepted connection gets a
    /// transport and a protocol from `factory` (NET-30 .. NET-45). An empty [`Hosts`] or `""`
    /// means every interface (one IPv4 and one IPv6 socket, the latter IPV6_V6ONLY). A bound
    /// socket is served with [`create_server_sock`](NetExt::create_server_sock) instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for no host and an
    /// unspecified port, TLS arguments, or an unsupported `reuse_port`; the resolver's error;
    /// "error while attempting to bind on address …" (kind `AddrInUse` for a port in use).
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.is_serving());
    /// s.close();
    /// ```
    fn create_server<F, P>(
        &self,
        factory: F,
        hosts: impl Into<Hosts>,
        port: impl Into<Service>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// Connects to the Unix socket at `path` (NET-46). A path starting with a NUL byte is an
    /// abstract name. A connected socket is adopted with
    /// [`create_unix_connection_sock`](NetExt::create_unix_connection_sock) instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for TCP-only options or
    /// TLS arguments; the connect error (`NotFound` for a missing path).
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    /// let (t, _p) = lp.run_until_complete(lp.create_unix_connection(|| Quiet, &path, ConnectOptions::new())).unwrap().unwrap();
    /// t.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    fn create_unix_connection<F, P>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// `create_unix_connection(protocol_factory, sock=sock)`: wraps an already connected Unix
    /// stream socket in a transport with the protocol `factory` makes (NET-46). The socket is
    /// made non-blocking and owned by the transport.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `sock` is not a Unix
    /// stream socket; TCP-only options or TLS arguments.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (t, _p) = lp
    ///     .run_until_complete(lp.create_unix_connection_sock(|| Quiet, a, ConnectOptions::new()))
    ///     .unwrap()
    ///     .unwrap();
    /// assert!(!t.is_closing());
    /// t.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn create_unix_connection_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// Listens on the Unix socket `path` (NET-47 .. NET-49). A stale socket file at `path` is
    /// removed first; with `cleanup_socket` (default) `close()` removes the file if it is
    /// still the one created. A bound socket is served with
    /// [`create_unix_server_sock`](NetExt::create_unix_server_sock) instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for TCP-only options or
    /// TLS arguments; "Address '…' is already in use" (kind
    /// `AddrInUse`) when a non-socket file is in the way; the bind error.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("evloop-doc-srv-{}.sock", std::process::id()));
    /// let s = lp.run_until_complete(lp.create_unix_server(|| Quiet, &path, ServerOptions::new())).unwrap().unwrap();
    /// assert!(path.exists());
    /// s.close();
    /// assert!(!path.exists());
    /// ```
    fn create_unix_server<F, P>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// `create_server(protocol_factory, sock=sock)`: serves on an already bound stream socket
    /// (TCP or Unix; NET-30). The server owns the socket from now on, makes it non-blocking and
    /// calls `listen()` when it starts serving.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `sock` is not a stream
    /// socket; TLS arguments.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let s = lp.run_until_complete(lp.create_server_sock(|| Quiet, l, ServerOptions::new())).unwrap().unwrap();
    /// assert_eq!(s.local_addrs()[0].as_inet(), Some(addr));
    /// s.close();
    /// ```
    fn create_server_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// `create_unix_server(protocol_factory, sock=sock)`: serves on an already bound Unix
    /// stream socket (NET-47). With `cleanup_socket`, `close()` removes the socket's file if it
    /// is still the one bound.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `sock` is not a Unix
    /// stream socket; TCP-only options or TLS arguments.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("evloop-doc-srv-sock-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    /// let s = lp.run_until_complete(lp.create_unix_server_sock(|| Quiet, l, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.is_serving());
    /// s.close();
    /// assert!(!path.exists());
    /// ```
    fn create_unix_server_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// `create_connection(protocol_factory, sock=sock)`: wraps an already connected stream
    /// socket (TCP or Unix) in a transport with the protocol `factory` makes (NET-20). The
    /// socket is made non-blocking and owned by the transport.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) if `sock` is not a stream
    /// socket; TLS arguments.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// struct Quiet;
    /// impl loop_transport::Protocol for Quiet {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (t, _p) = lp
    ///     .run_until_complete(lp.create_connection_sock(|| Quiet, a, ConnectOptions::new()))
    ///     .unwrap()
    ///     .unwrap();
    /// assert!(!t.is_closing());
    /// t.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn create_connection_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static;

    /// `open_connection(sock=sock)`: [`create_connection_sock`](NetExt::create_connection_sock)
    /// with a [`StreamReader`] / [`StreamWriter`] pair (STREAM-01); `options.limit` is the
    /// reader's limit.
    ///
    /// # Errors
    ///
    /// As [`create_connection_sock`](NetExt::create_connection_sock); a zero limit.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = lp
    ///     .run_until_complete(lp.open_connection_sock(a, ConnectOptions::new()))
    ///     .unwrap()
    ///     .unwrap();
    /// w.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn open_connection_sock(
        &self,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static;

    /// `create_connection` with a [`StreamReader`] / [`StreamWriter`] pair instead of a
    /// protocol (STREAM-01); `options.limit` is the reader's limit.
    ///
    /// # Errors
    ///
    /// As [`create_connection`](NetExt::create_connection); a zero limit.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = l.local_addr().unwrap().port();
    /// let (_r, w) = lp.run_until_complete(lp.open_connection("127.0.0.1", port, ConnectOptions::new())).unwrap().unwrap();
    /// w.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn open_connection(
        &self,
        host: &str,
        port: impl Into<Service>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static;

    /// `create_unix_connection` with streams (STREAM-01).
    ///
    /// # Errors
    ///
    /// As [`create_unix_connection`](NetExt::create_unix_connection); a zero limit.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("evloop-doc-ouc-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    /// let (_r, w) = lp.run_until_complete(lp.open_unix_connection(&path, ConnectOptions::new())).unwrap().unwrap();
    /// w.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    fn open_unix_connection(
        &self,
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static;

    /// `open_unix_connection(sock=sock)`:
    /// [`create_unix_connection_sock`](NetExt::create_unix_connection_sock) with a
    /// [`StreamReader`] / [`StreamWriter`] pair (STREAM-01).
    ///
    /// # Errors
    ///
    /// As [`create_unix_connection_sock`](NetExt::create_unix_connection_sock); a zero limit.
    ///
    /// ```
    /// use loop_net::{ConnectOptions, NetExt};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let (_r, w) = lp.run_until_complete(lp.open_unix_connection_sock(a, ConnectOptions::new())).unwrap().unwrap();
    /// w.close();
    /// # lp.run_until_complete(async {}).unwrap();
    /// ```
    fn open_unix_connection_sock(
        &self,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static;

    /// `create_server` whose connections call `cb(reader, writer)`; the future it returns runs
    /// as a task per client (STREAM-02). A failing task is reported to the exception handler
    /// ("Unhandled exception in client_connected_cb") and its connection closed (STREAM-03).
    ///
    /// # Errors
    ///
    /// As [`create_server`](NetExt::create_server); a zero limit.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.start_server(
    ///     |mut r: loop_transport::StreamReader, w: loop_transport::StreamWriter| async move {
    ///         let line = r.readline().await?;
    ///         w.write(&line)?;
    ///         w.drain().await
    ///     },
    ///     "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.is_serving());
    /// s.close();
    /// ```
    fn start_server<C, Fut>(
        &self,
        cb: C,
        hosts: impl Into<Hosts>,
        port: impl Into<Service>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static;

    /// `create_unix_server` with streams (STREAM-02).
    ///
    /// # Errors
    ///
    /// As [`create_unix_server`](NetExt::create_unix_server); a zero limit.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("evloop-doc-ss-{}.sock", std::process::id()));
    /// let s = lp.run_until_complete(lp.start_unix_server(
    ///     |_r, w: loop_transport::StreamWriter| async move { w.close(); Ok(()) },
    ///     &path, ServerOptions::new())).unwrap().unwrap();
    /// s.close();
    /// ```
    fn start_unix_server<C, Fut>(
        &self,
        cb: C,
        path: impl AsRef<Path>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static;

    /// `start_server(cb, sock=sock)`: [`create_server_sock`](NetExt::create_server_sock)
    /// whose connections call `cb(reader, writer)` (STREAM-02).
    ///
    /// # Errors
    ///
    /// As [`create_server_sock`](NetExt::create_server_sock); a zero limit.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = lp.run_until_complete(lp.start_server_sock(
    ///     |_r, w: loop_transport::StreamWriter| async move { w.close(); Ok(()) },
    ///     l, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.is_serving());
    /// s.close();
    /// ```
    fn start_server_sock<C, Fut>(
        &self,
        cb: C,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static;

    /// `start_unix_server(cb, sock=sock)`:
    /// [`create_unix_server_sock`](NetExt::create_unix_server_sock) whose connections call
    /// `cb(reader, writer)` (STREAM-02).
    ///
    /// # Errors
    ///
    /// As [`create_unix_server_sock`](NetExt::create_unix_server_sock); a zero limit.
    ///
    /// ```
    /// use loop_net::{NetExt, ServerOptions};
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("evloop-doc-sus-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    /// let s = lp.run_until_complete(lp.start_unix_server_sock(
    ///     |_r, w: loop_transport::StreamWriter| async move { w.close(); Ok(()) },
    ///     l, ServerOptions::new())).unwrap().unwrap();
    /// s.close();
    /// assert!(!path.exists());
    /// ```
    fn start_unix_server_sock<C, Fut>(
        &self,
        cb: C,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static;
}

fn boxed_factory<F, P>(mut factory: F) -> crate::plain::Factory
where
    F: FnMut() -> P + 'static,
    P: Into<StreamProtocol>,
{
    Box::new(move || factory().into())
}

impl NetExt for EventLoop {
    fn getaddrinfo(
        &self,
        host: Option<&str>,
        port: impl Into<Service>,
        hints: Hints,
    ) -> impl Future<Output = Result<Vec<AddrInfo>>> + 'static {
        lookup::getaddrinfo(
            self.clone(),
            host.map(str::to_string),
            port.into().as_resolver_arg(),
            hints,
        )
    }

    fn getnameinfo(
        &self,
        addr: SocketAddr,
        flags: i32,
    ) -> impl Future<Output = Result<(String, String)>> + 'static {
        lookup::getnameinfo(self.clone(), addr, flags)
    }

    fn create_connection<F, P>(
        &self,
        factory: F,
        host: &str,
        port: impl Into<Service>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        connect::create_connection(
            self.clone(),
            factory,
            host.to_string(),
            port.into(),
            options,
        )
    }

    fn connect_accepted_socket<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        connect::connect_accepted_socket(self.clone(), factory, sock.into(), options)
    }

    fn create_server<F, P>(
        &self,
        factory: F,
        hosts: impl Into<Hosts>,
        port: impl Into<Service>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        server::create_server(
            self.clone(),
            boxed_factory(factory),
            hosts.into(),
            port.into(),
            options,
        )
    }

    fn create_unix_connection<F, P>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        let path = path.as_ref().to_path_buf();
        unix::create_unix_connection(self.clone(), factory, path, options)
    }

    fn create_unix_connection_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        unix::create_unix_connection_sock(self.clone(), factory, sock.into(), options)
    }

    fn create_unix_server<F, P>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        let path = path.as_ref().to_path_buf();
        unix::create_unix_server(self.clone(), boxed_factory(factory), path, options)
    }

    fn create_server_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        server::create_server_sock(self.clone(), boxed_factory(factory), sock.into(), options)
    }

    fn create_unix_server_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        F: FnMut() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        let factory = boxed_factory(factory);
        unix::create_unix_server_sock(self.clone(), factory, sock.into(), options)
    }

    fn open_connection(
        &self,
        host: &str,
        port: impl Into<Service>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static {
        let target = Target::Host(host.to_string(), port.into());
        streams::open_connection(self.clone(), target, options)
    }

    fn create_connection_sock<F, P>(
        &self,
        factory: F,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static
    where
        F: FnOnce() -> P + 'static,
        P: Into<StreamProtocol> + 'static,
    {
        connect::create_connection_sock(self.clone(), factory, sock.into(), options)
    }

    fn open_connection_sock(
        &self,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static {
        streams::open_connection(self.clone(), Target::Sock(sock.into()), options)
    }

    fn open_unix_connection(
        &self,
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static {
        let target = Target::UnixPath(path.as_ref().to_path_buf());
        streams::open_connection(self.clone(), target, options)
    }

    fn open_unix_connection_sock(
        &self,
        sock: impl Into<OwnedFd>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter)>> + 'static {
        streams::open_connection(self.clone(), Target::UnixSock(sock.into()), options)
    }

    fn start_server<C, Fut>(
        &self,
        cb: C,
        hosts: impl Into<Hosts>,
        port: impl Into<Service>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let listen = Listen::Hosts(hosts.into(), port.into());
        streams::start_server(self.clone(), cb, listen, options)
    }

    fn start_unix_server<C, Fut>(
        &self,
        cb: C,
        path: impl AsRef<Path>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let listen = Listen::UnixPath(path.as_ref().to_path_buf());
        streams::start_server(self.clone(), cb, listen, options)
    }

    fn start_server_sock<C, Fut>(
        &self,
        cb: C,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        streams::start_server(self.clone(), cb, Listen::Sock(sock.into()), options)
    }

    fn start_unix_server_sock<C, Fut>(
        &self,
        cb: C,
        sock: impl Into<OwnedFd>,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server>> + 'static
    where
        C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        streams::start_server(self.clone(), cb, Listen::UnixSock(sock.into()), options)
    }
}
