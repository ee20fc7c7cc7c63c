//! `create_server` and [`Server`]: listening sockets whose connections each get a transport and
//! a fresh protocol.
//!
//! Each listening socket is registered with the loop once, level-triggered, and every
//! readiness event accepts up to `backlog` connections (asyncio's batch, NET-35), so a burst
//! of clients is drained in few iterations without starving other work. Running out of file
//! descriptors (or kernel memory) while accepting cannot be fixed by retrying at once, so the
//! listener is muted for a second and the exception handler is told (NET-37).
//!
//! The loop keeps a serving server alive (dropping every `Server` handle does not stop it);
//! `close()` or closing the loop stops it. Accepted connections are tracked until their
//! `connection_lost` ran, so `wait_closed()` can wait for them (NET-43).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::Duration;

use loop_core::internal::{IoHandler, LoopInternals, Registered, WeakLoop};
use loop_core::{
    Error, EventLoop, Exception, ExceptionContext, LoopFuture, Mode, Readiness, Result,
};
use loop_timers::{TimerHandle, TimersExt};
use loop_transport::{Addr, Transport, TransportOptions};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use crate::errors::with_context;
use crate::lookup::{ensure_resolved, Service};
use crate::plain::{check_stream_socket, Factory};
pub use crate::server_options::{Hosts, ServerOptions};
use crate::server_socket::ServerSocket;
use crate::tls::TlsArgs;
use crate::{AddrInfo, Hints, AF_INET6, AI_PASSIVE, SOCK_STREAM};

/// How long accepting stays paused after running out of file descriptors or memory (NET-37).
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A socket file to unlink on close, if it is still ours (NET-49).
pub(crate) struct UnixCleanup {
    /// The path.
    pub(crate) path: PathBuf,
    /// Device and inode recorded when the server was created.
    pub(crate) id: (u64, u64),
}

/// A listening socket: registered with the poller once the server serves.
///
/// The socket is shared (`Rc`) only with the [`ServerSocket`] views, which hold it weakly and
/// borrow it for the length of a call: the server's is the one strong reference that lasts.
enum Sock {
    /// Bound, not registered yet (`start_serving=False`).
    Idle(Rc<OwnedFd>),
    /// Registered with the loop's poller.
    Serving(Registered<Rc<OwnedFd>>),
    /// Being moved from `Idle` to `Serving` inside `start()`, which holds the state borrowed
    /// throughout: never seen elsewhere.
    Moving,
}

/// One listening socket.
struct Listener {
    /// The timer that resumes accepting after a resource error.
    retry: Option<TimerHandle>,
    /// The socket.
    sock: Sock,
}

impl Listener {
    /// The socket.
    fn fd(&self) -> &Rc<OwnedFd> {
        match &self.sock {
            Sock::Idle(fd) => fd,
            Sock::Serving(r) => r.get_ref(),
            Sock::Moving => unreachable!("only inside start(), under the state borrow"),
        }
    }

    /// The registration, once serving.
    fn reg(&self) -> Option<&Registered<Rc<OwnedFd>>> {
        match &self.sock {
            Sock::Serving(r) => Some(r),
            Sock::Idle(_) | Sock::Moving => None,
        }
    }
}

/// Mutable state of a server.
struct State {
    /// Listening sockets (empty after close).
    listeners: Vec<Listener>,
    /// Accepting.
    serving: bool,
    /// `close()` was called.
    closed: bool,
    /// Connections accepted and not yet lost, by id.
    clients: HashMap<u64, Transport>,
    /// Next client id.
    next_client: u64,
    /// `wait_closed()` callers.
    waiters: Vec<LoopFuture<()>>,
    /// Closed with no client left: `wait_closed()` returns at once.
    finished: bool,
    /// The future a `serve_forever()` call waits on.
    serving_forever: Option<LoopFuture<()>>,
    /// Unix socket file to remove on close.
    cleanup: Option<UnixCleanup>,
}

/// The shared server.
pub(crate) struct ServerInner {
    /// Self, for callbacks.
    me: Weak<ServerInner>,
    /// The loop (weak: the loop keeps its servers, not the other way round).
    lp: WeakLoop,
    /// Makes protocols.
    factory: RefCell<Factory>,
    /// Accept batch and listen backlog.
    backlog: u32,
    /// State.
    st: RefCell<State>,
    /// Id for the loop's registry.
    id: u64,
}

/// The loop's open servers: keeps them alive while they serve, closes them with the loop.
#[derive(Default)]
struct Registry {
    /// Open servers by id.
    servers: RefCell<HashMap<u64, Rc<ServerInner>>>,
    /// Next id.
    next: Cell<u64>,
}

fn registry(lp: &EventLoop) -> Rc<Registry> {
    lp.extension(|lp| {
        lp.on_close(|lp| {
            let reg = lp.extension(|_| Registry::default());
            let servers: Vec<_> = reg.servers.borrow_mut().drain().map(|(_, s)| s).collect();
            for s in servers {
                s.close();
            }
        });
        Registry::default()
    })
}

/// Reports readiness of a listener to its server.
struct AcceptHandler {
    /// The server.
    server: Weak<ServerInner>,
    /// Which listener.
    idx: usize,
}

impl IoHandler for AcceptHandler {
    fn ready(&self, _lp: &EventLoop, _r: Readiness) {
        if let Some(s) = self.server.upgrade() {
            s.accept_batch(self.idx);
        }
    }
}

impl ServerInner {
    pub(crate) fn new(
        lp: &EventLoop,
        fds: Vec<OwnedFd>,
        factory: Factory,
        backlog: u32,
        cleanup: Option<UnixCleanup>,
    ) -> Rc<ServerInner> {
        let reg = registry(lp);
        let id = reg.next.get();
        reg.next.set(id + 1);
        let inner = Rc::new_cyclic(|me| ServerInner {
            me: me.clone(),
            lp: lp.downgrade(),
            factory: RefCell::new(factory),
            backlog,
            id,
            st: RefCell::new(State {
                listeners: fds
                    .into_iter()
                    .map(|fd| Listener {
                        retry: None,
                        sock: Sock::Idle(Rc::new(fd)),
                    })
                    .collect(),
                serving: false,
                closed: false,
                clients: HashMap::new(),
                next_client: 0,
                waiters: Vec::new(),
                finished: false,
                serving_forever: None,
                cleanup,
            }),
        });
        reg.servers.borrow_mut().insert(id, inner.clone());
        inner
    }

    /// The loop, while it exists.
    fn lp(&self) -> Result<EventLoop> {
        self.lp.upgrade().ok_or(Error::Closed)
    }

    fn describe(&self) -> String {
        let st = self.st.borrow();
        let socks: Vec<String> = st
            .listeners
            .iter()
            .map(|l| match Addr::sockname_of(&**l.fd()) {
                Ok(a) => format!("fd={} {a}", l.fd().as_raw_fd()),
                Err(_) => format!("fd={}", l.fd().as_raw_fd()),
            })
            .collect();
        format!("<Server sockets=[{}]>", socks.join(", "))
    }

    /// Listens and registers every listener (NET-36).
    pub(crate) fn start(&self) -> Result<()> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            drop(st);
            return Err(Error::invalid_state(format!(
                "server {} is closed",
                self.describe()
            )));
        }
        if st.serving {
            return Ok(());
        }
        let backlog = i32::try_from(self.backlog).unwrap_or(i32::MAX);
        let lp = self.lp()?;
        for (idx, l) in st.listeners.iter_mut().enumerate() {
            let fd = match std::mem::replace(&mut l.sock, Sock::Moving) {
                Sock::Idle(fd) => fd,
                other => {
                    l.sock = other;
                    continue;
                }
            };
            if let Err(e) = rustix::net::listen(&fd, backlog) {
                l.sock = Sock::Idle(fd);
                return Err(e.into());
            }
            let handler = Rc::new(AcceptHandler {
                server: self.me.clone(),
                idx,
            });
            let owner = format!("<Server listener fd={}>", fd.as_raw_fd());
            match Registered::try_new(&lp, fd, Mode::Level, true, false, &owner, handler) {
                Ok(reg) => l.sock = Sock::Serving(reg),
                Err((e, fd)) => {
                    l.sock = Sock::Idle(fd);
                    return Err(e);
                }
            }
        }
        st.serving = true;
        Ok(())
    }

    /// Accepts up to `backlog` connections on listener `idx` (NET-35, NET-37).
    fn accept_batch(&self, idx: usize) {
        for _ in 0..self.backlog.max(1) {
            let res = {
                let st = self.st.borrow();
                if !st.serving || st.closed {
                    return;
                }
                let Some(l) = st.listeners.get(idx) else {
                    return;
                };
                crate::sys::accept(std::os::fd::AsFd::as_fd(l.fd()))
            };
            match res {
                Ok((conn, addr)) => self.accept_connection(conn, Addr::from_rustix(addr)),
                Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => return,
                Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    self.pause_accepting(idx, e);
                    return;
                }
                Err(e) => {
                    let ctx = ExceptionContext::new("Exception in callback accept_connection")
                        .with_exception(e.into())
                        .with_extra("socket", self.listener_desc(idx));
                    if let Some(lp) = self.lp.upgrade() {
                        lp.call_exception_handler(&ctx);
                    }
                    return;
                }
            }
        }
    }

    fn listener_desc(&self, idx: usize) -> String {
        self.st
            .borrow()
            .listeners
            .get(idx)
            .map(|l| crate::plain::describe_sock(l.fd().as_fd()))
            .unwrap_or_default()
    }

    /// NET-37: out of descriptors or memory: tell the handler, mute the listener for a second.
    fn pause_accepting(&self, idx: usize, e: Errno) {
        let ctx = ExceptionContext::new("socket.accept() out of system resource")
            .with_exception(e.into())
            .with_extra("socket", self.listener_desc(idx));
        let Some(lp) = self.lp.upgrade() else {
            return;
        };
        lp.call_exception_handler(&ctx);
        let me = self.me.clone();
        let timer = lp.call_later(ACCEPT_RETRY_DELAY, move |_| {
            if let Some(s) = me.upgrade() {
                s.resume_accepting(idx);
            }
        });
        let mut st = self.st.borrow_mut();
        if let Some(l) = st.listeners.get_mut(idx) {
            if let Some(reg) = l.reg() {
                let _ = reg.set_interest(false, false);
            }
            l.retry = timer.ok();
        }
    }

    fn resume_accepting(&self, idx: usize) {
        let mut st = self.st.borrow_mut();
        let serving = st.serving && !st.closed;
        if let Some(l) = st.listeners.get_mut(idx) {
            l.retry = None;
            if serving {
                if let Some(reg) = l.reg() {
                    let _ = reg.set_interest(true, false);
                }
            }
        }
    }

    /// A new connection: a fresh protocol and a transport, tracked until lost (NET-38).
    fn accept_connection(&self, conn: OwnedFd, peer: Addr) {
        let protocol = match self.factory.try_borrow_mut() {
            Ok(mut f) => catch_unwind(AssertUnwindSafe(&mut *f))
                .map_err(|p| Error::Exception(Exception::from_panic(&*p))),
            Err(_) => Err(Error::invalid_state(
                "the protocol factory was called while it was already running",
            )),
        };
        let id = {
            let mut st = self.st.borrow_mut();
            st.next_client += 1;
            st.next_client
        };
        let me = self.me.clone();
        let Some(lp) = self.lp.upgrade() else {
            return;
        };
        let result = protocol.and_then(|p| {
            let opts = TransportOptions::socket()
                .peername(peer)
                .on_connection_lost(move || {
                    if let Some(s) = me.upgrade() {
                        s.detach(id);
                    }
                });
            Transport::new(&lp, conn, p, opts)
        });
        match result {
            Ok(t) => {
                self.st.borrow_mut().clients.insert(id, t);
            }
            Err(e) => {
                if lp.get_debug() {
                    let ctx = ExceptionContext::new(
                        "Error on transport creation for incoming connection",
                    )
                    .with_exception(e);
                    lp.call_exception_handler(&ctx);
                }
            }
        }
    }

    fn detach(&self, id: u64) {
        let wake = {
            let mut st = self.st.borrow_mut();
            st.clients.remove(&id);
            st.closed && st.clients.is_empty()
        };
        if wake {
            self.wakeup();
        }
    }

    fn wakeup(&self) {
        let waiters = {
            let mut st = self.st.borrow_mut();
            st.finished = true;
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            if !w.done() {
                let _ = w.set_result(());
            }
        }
    }

    /// NET-40: stop accepting, close the listeners, keep the connections.
    pub(crate) fn close(&self) {
        let (listeners, forever, cleanup, idle) = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.serving = false;
            (
                std::mem::take(&mut st.listeners),
                st.serving_forever.take(),
                st.cleanup.take(),
                st.clients.is_empty(),
            )
        };
        for mut l in listeners {
            if let Some(t) = l.retry.take() {
                t.cancel();
            }
            // The registration goes first, then the socket (both inside `Registered`).
            drop(l);
        }
        if let Some(c) = cleanup {
            unlink_if_same(&c);
        }
        if let Some(f) = forever {
            f.cancel();
        }
        if idle {
            self.wakeup();
        }
        if let Some(lp) = self.lp.upgrade() {
            registry(&lp).servers.borrow_mut().remove(&self.id);
        }
    }
}

/// Device and inode of a stat result (their integer types differ between platforms).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn file_id_of(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Unlinks the socket file if it still has the recorded device and inode (NET-49).
fn unlink_if_same(c: &UnixCleanup) {
    if let Ok(st) = rustix::fs::stat(&c.path) {
        if file_id_of(&st) == c.id {
            let _ = rustix::fs::unlink(&c.path);
        }
    }
}

/// A listening server: asyncio's `Server`.
///
/// A cheap handle (clones share the server). The loop keeps the server running until
/// [`close`](Server::close) or the loop's `close()`; dropping every handle does not stop it.
///
/// ```
/// use loop_net::{NetExt, ServerOptions};
/// use loop_transport::Protocol;
///
/// struct Nothing;
/// impl Protocol for Nothing {}
///
/// let lp = loop_core::EventLoop::new()?;
/// let server = lp.run_until_complete(lp.create_server(|| Nothing, "127.0.0.1", 0, ServerOptions::new()))??;
/// assert!(server.is_serving());
/// let port = server.local_addrs()[0].as_inet().unwrap().port();
/// std::net::TcpStream::connect(("127.0.0.1", port))?;
/// server.close();
/// assert!(server.sockets().is_empty());
/// lp.run_until_complete(server.wait_closed())??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Server {
    /// The shared server.
    pub(crate) inner: Rc<ServerInner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.describe())
    }
}

/// Resets `serving_forever` when `serve_forever()` ends or is dropped.
struct ForeverGuard<'a>(&'a ServerInner);

impl Drop for ForeverGuard<'_> {
    fn drop(&mut self) {
        self.0.st.borrow_mut().serving_forever = None;
    }
}

impl Server {
    /// The loop the server runs on; `None` once the loop is gone (the server holds it weakly:
    /// the loop keeps its servers, not the other way round).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.get_loop().unwrap().ptr_eq(&lp));
    /// # s.close();
    /// ```
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.inner.lp.upgrade()
    }

    /// True while accepting connections (NET-36, NET-40).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let o = ServerOptions::new().start_serving(false);
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, o)).unwrap().unwrap();
    /// assert!(!s.is_serving());
    /// # s.close();
    /// ```
    pub fn is_serving(&self) -> bool {
        let st = self.inner.st.borrow();
        st.serving && !st.closed
    }

    /// The listening sockets (asyncio's `sockets`): typed views with the bound address and
    /// family; the server keeps owning the sockets and closes them on `close()`. Empty after
    /// `close()` (NET-39).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// let socks = s.sockets();
    /// assert_eq!(socks.len(), 1);
    /// assert_eq!(socks[0].family(), loop_net::AF_INET);
    /// s.close();
    /// assert!(s.sockets().is_empty());
    /// ```
    pub fn sockets(&self) -> Vec<ServerSocket> {
        self.inner
            .st
            .borrow()
            .listeners
            .iter()
            .map(|l| ServerSocket::new(l.fd()))
            .collect()
    }

    /// The addresses the listening sockets are bound to (empty after `close()`).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert!(s.local_addrs()[0].as_inet().unwrap().ip().is_loopback());
    /// # s.close();
    /// ```
    pub fn local_addrs(&self) -> Vec<Addr> {
        self.inner
            .st
            .borrow()
            .listeners
            .iter()
            .filter_map(|l| Addr::sockname_of(&**l.fd()).ok())
            .collect()
    }

    /// Starts accepting (idempotent), then yields once to the loop (NET-36).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] "server … is closed" after [`close`](Server::close) (NET-45); the
    /// `listen` or registration error.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let o = ServerOptions::new().start_serving(false);
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, o)).unwrap().unwrap();
    /// let s2 = s.clone();
    /// lp.run_until_complete(async move { s2.start_serving().await }).unwrap().unwrap();
    /// assert!(s.is_serving());
    /// # s.close();
    /// ```
    pub async fn start_serving(&self) -> Result<()> {
        self.inner.start()?;
        loop_core::yield_now().await;
        Ok(())
    }

    /// Starts serving if needed and waits until the server is closed; then ends with
    /// [`Error::Cancelled`] (NET-41, NET-42). If the awaiting task is cancelled, the server is
    /// closed, `wait_closed()` awaited, and the cancellation returned.
    ///
    /// # Errors
    ///
    /// Always ends with an error: [`Error::Cancelled`] once closed or cancelled;
    /// [`Error::InvalidState`] for a closed server or a second concurrent call.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the task closes the server. Dropping the future without cancelling only
    /// stops waiting.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// let lp2 = lp.clone();
    /// let cancelled = lp.run_until_complete(async move {
    ///     let s2 = s.clone();
    ///     let forever = lp2.create_task(async move { s2.serve_forever().await })?;
    ///     loop_core::yield_now().await;
    ///     s.close(); // ends serve_forever() with a cancellation
    ///     Ok::<_, loop_core::Error>(forever.await.is_err_and(|e| e.is_cancelled()))
    /// }).unwrap().unwrap();
    /// assert!(cancelled);
    /// ```
    pub async fn serve_forever(&self) -> Result<()> {
        let fut = {
            let mut st = self.inner.st.borrow_mut();
            if st.closed {
                drop(st);
                return Err(Error::invalid_state(format!(
                    "server {} is closed",
                    self.inner.describe()
                )));
            }
            if st.serving_forever.is_some() {
                drop(st);
                return Err(Error::invalid_state(format!(
                    "server {} is already being awaited on serve_forever()",
                    self.inner.describe()
                )));
            }
            let f = self.inner.lp()?.create_future::<()>();
            st.serving_forever = Some(f.clone());
            f
        };
        let _guard = ForeverGuard(&self.inner);
        // No foreign `await` before `fut`: a cancellation is then always delivered there.
        self.inner.start()?;
        match fut.await {
            Err(e) if e.is_cancelled() => {
                self.inner.close();
                self.wait_closed().await?;
                Err(e)
            }
            Err(e) => Err(e),
            Ok(()) => Err(Error::Cancelled(loop_core::Cancelled::new(None))),
        }
    }

    /// Stops accepting and closes the listening sockets at once (new connections are
    /// refused); existing connections stay open. Idempotent (NET-40). A pending
    /// [`serve_forever`](Server::serve_forever) ends cancelled (NET-41).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// let port = s.local_addrs()[0].as_inet().unwrap().port();
    /// s.close();
    /// s.close();
    /// assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Waits until the server is closed **and** every connection it accepted is gone, in
    /// either order; returns at once after that (NET-43).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] if the waiting task is cancelled.
    ///
    /// # Cancel safety
    ///
    /// Cancelling only stops this wait.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// s.close();
    /// lp.run_until_complete(s.wait_closed()).unwrap().unwrap();
    /// ```
    pub fn wait_closed(&self) -> impl std::future::Future<Output = Result<()>> + 'static {
        // The future owns a handle of the server, so it can be given to `run_until_complete`
        // directly.
        let inner = self.inner.clone();
        async move {
            let fut = {
                let mut st = inner.st.borrow_mut();
                if st.finished {
                    return Ok(());
                }
                let f = inner.lp()?.create_future::<()>();
                st.waiters.push(f.clone());
                f
            };
            fut.await
        }
    }

    /// Closes every live connection of the server (their buffers are flushed first) (NET-44).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// s.close();
    /// s.close_clients();
    /// ```
    pub fn close_clients(&self) {
        for t in self.clients() {
            t.close();
        }
    }

    /// Aborts every live connection of the server (buffered data is discarded) (NET-44).
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// s.close();
    /// s.abort_clients();
    /// ```
    pub fn abort_clients(&self) {
        for t in self.clients() {
            t.abort();
        }
    }

    /// How many accepted connections have not been lost yet.
    ///
    /// ```
    /// # use loop_net::{NetExt, ServerOptions};
    /// # struct P; impl loop_transport::Protocol for P {}
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let s = lp.run_until_complete(lp.create_server(|| P, "127.0.0.1", 0, ServerOptions::new())).unwrap().unwrap();
    /// assert_eq!(s.client_count(), 0);
    /// # s.close();
    /// ```
    pub fn client_count(&self) -> usize {
        self.inner.st.borrow().clients.len()
    }

    fn clients(&self) -> Vec<Transport> {
        self.inner.st.borrow().clients.values().cloned().collect()
    }
}

/// Polls every future until all are done; the outputs in order.
pub(crate) async fn join_all<T>(mut futs: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    let mut done = vec![false; futs.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match f.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    out[i] = Some(v);
                    done[i] = true;
                }
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}

fn new_listener(info: &AddrInfo) -> io::Result<OwnedFd> {
    let protocol = u32::try_from(info.protocol)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(rustix::net::Protocol::from_raw);
    crate::sys::socket(
        AddressFamily::from_raw(info.family as u16),
        SocketType::STREAM,
        protocol,
    )
}

/// One host's resolution, in flight.
type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Vec<AddrInfo>>> + 'a>>;

/// Resolves every host and binds one socket per distinct address (NET-31..NET-34).
async fn bind_all(
    lp: &EventLoop,
    hosts: &Hosts,
    port: &Service,
    o: &ServerOptions,
) -> Result<Vec<OwnedFd>> {
    let hints = Hints {
        family: o.family,
        socktype: SOCK_STREAM,
        protocol: 0,
        flags: o.flags | AI_PASSIVE,
    };
    let names: Vec<Option<&str>> = if hosts.0.is_empty() || hosts.0.iter().any(|h| h.is_empty()) {
        vec![None]
    } else {
        hosts.0.iter().map(|h| Some(h.as_str())).collect()
    };
    let port_arg = port.as_resolver_arg();
    let lookups: Vec<Lookup<'_>> = names
        .iter()
        .map(|h| {
            Box::pin(ensure_resolved(lp, *h, port_arg.clone(), hints))
                as Pin<Box<dyn Future<Output = _>>>
        })
        .collect();
    let results = join_all(lookups).await;
    let mut seen = HashSet::new();
    let mut infos = Vec::new();
    for (host, r) in names.iter().zip(results) {
        let r = r?;
        if r.is_empty() {
            return Err(io::Error::other(format!(
                "getaddrinfo({}) returned empty list",
                host.unwrap_or("None")
            ))
            .into());
        }
        for info in r {
            if seen.insert((info.family, info.socktype, info.protocol, info.addr)) {
                infos.push(info);
            }
        }
    }
    let mut socks = Vec::new();
    for info in &infos {
        let sock = match new_listener(info) {
            Ok(s) => s,
            Err(e) => {
                if lp.get_debug() {
                    tracing::warn!(
                        "create_server() failed to create socket for {}: {e}",
                        info.addr
                    );
                }
                continue;
            }
        };
        if o.reuse_address.unwrap_or(true) {
            rustix::net::sockopt::set_socket_reuseaddr(&sock, true)?;
        }
        if o.reuse_port && rustix::net::sockopt::set_socket_reuseport(&sock, true).is_err() {
            return Err(Error::invalid_argument(
                "reuse_port not supported by socket module",
            ));
        }
        if o.keep_alive {
            rustix::net::sockopt::set_socket_keepalive(&sock, true)?;
        }
        if info.family == AF_INET6 {
            rustix::net::sockopt::set_ipv6_v6only(&sock, true)?;
        }
        match rustix::net::bind(&sock, &rustix::net::SocketAddrAny::from(info.addr)) {
            Ok(()) => socks.push(sock),
            Err(Errno::ADDRNOTAVAIL) => {
                // The family is not enabled on this host (no IPv6 address, say).
                continue;
            }
            Err(e) => {
                let e = io::Error::from(e);
                let msg = format!(
                    "error while attempting to bind on address {}: {}",
                    info.addr,
                    e.to_string().to_lowercase()
                );
                return Err(with_context(e, msg).into());
            }
        }
    }
    if socks.is_empty() {
        let list: Vec<String> = infos.iter().map(|i| i.addr.to_string()).collect();
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("could not bind on any address out of [{}]", list.join(", ")),
        )
        .into());
    }
    Ok(socks)
}

/// Builds the server and starts it if asked (shared by TCP and Unix).
pub(crate) async fn finish_server(
    lp: &EventLoop,
    fds: Vec<OwnedFd>,
    factory: Factory,
    o: &ServerOptions,
    cleanup: Option<UnixCleanup>,
) -> Result<Server> {
    let inner = ServerInner::new(lp, fds, factory, o.backlog, cleanup);
    let server = Server { inner };
    if o.start_serving {
        if let Err(e) = server.start_serving().await {
            server.close();
            return Err(e);
        }
    }
    Ok(server)
}

/// The TLS options of a server call, as [`tls`](crate::tls) checks them.
pub(crate) fn tls_args(o: &ServerOptions) -> TlsArgs<'_> {
    TlsArgs {
        #[cfg(any(feature = "tls", feature = "tls-ring"))]
        ssl: o.ssl.as_ref(),
        server_hostname: None,
        ssl_handshake_timeout: o.ssl_handshake_timeout,
        ssl_shutdown_timeout: o.ssl_shutdown_timeout,
    }
}

/// `create_server` (NET-30..NET-45).
pub(crate) async fn create_server(
    lp: EventLoop,
    factory: Factory,
    hosts: Hosts,
    port: Service,
    o: ServerOptions,
) -> Result<Server> {
    let tls = crate::tls::server(&tls_args(&o))?;
    let factory = crate::tls::wrap_factory(&lp, factory, tls);
    if hosts.0.is_empty() && !port.is_specified() {
        return Err(Error::invalid_argument(
            "Neither host/port nor sock were specified \
             (create_server_sock serves on a bound socket)",
        ));
    }
    let fds = bind_all(&lp, &hosts, &port, &o).await?;
    finish_server(&lp, fds, factory, &o, None).await
}

/// `create_server(sock=)`: serves on a bound stream socket (NET-30).
pub(crate) async fn create_server_sock(
    lp: EventLoop,
    factory: Factory,
    sock: OwnedFd,
    o: ServerOptions,
) -> Result<Server> {
    let tls = crate::tls::server(&tls_args(&o))?;
    let factory = crate::tls::wrap_factory(&lp, factory, tls);
    check_stream_socket(sock.as_fd(), None, "A Stream Socket")?;
    rustix::io::ioctl_fionbio(&sock, true)?;
    finish_server(&lp, vec![sock], factory, &o, None).await
}
