//! `create_connection` and `connect_accepted_socket`: from a host name (or a socket) to a
//! connected [`Transport`] whose protocol has seen `connection_made`.
//!
//! Attempts are made one address at a time in resolver order, or, with a happy-eyeballs
//! delay, staggered (RFC 8305): the next attempt starts when the delay passes or the previous
//! one fails, the first connected socket wins and the others are dropped. Every attempt is a
//! future owned by the call, so a losing or cancelled attempt closes its socket and removes its
//! readiness watch the moment it is dropped — nothing outlives the call but the winner.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use loop_core::{Error, EventLoop, Result};
use loop_timers::TimersExt;
use loop_transport::{ProtocolRef, StreamProtocol, Transport};
use rustix::net::{AddressFamily, SocketType};

use crate::errors::{aggregate, with_context};
use crate::lookup::{ensure_resolved, Service};
use crate::plain::check_stream_socket;
use crate::tls::TlsArgs;
use crate::{AddrInfo, Hints, SockExt, SOCK_STREAM};

/// Options of `create_connection`, `open_connection`, `create_unix_connection`,
/// `connect_accepted_socket` and their `_sock` forms (asyncio's keyword arguments), built with
/// one chainable setter per option. [`new`](ConnectOptions::new) (or `Default`) gives asyncio's
/// defaults.
///
/// ```
/// use loop_net::ConnectOptions;
/// use std::time::Duration;
/// let o = ConnectOptions::new()
///     .happy_eyeballs_delay(Duration::from_millis(250))
///     .local_addr(("127.0.0.1", 0))
///     .limit(1024);
/// assert_eq!(o.get_limit(), 1024);
/// assert_eq!(ConnectOptions::new().get_limit(), 65536);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Address family for the resolver (`AF_UNSPEC` = 0: any).
    pub(crate) family: i32,
    /// Protocol for the resolver (0: any).
    pub(crate) proto: i32,
    /// `AI_*` flags for the resolver.
    pub(crate) flags: i32,
    /// Local `(host, port)` to bind each attempt's socket to.
    pub(crate) local_addr: Option<(String, u16)>,
    /// Happy eyeballs delay (RFC 8305).
    pub(crate) happy_eyeballs_delay: Option<Duration>,
    /// Reorder the resolved addresses by family.
    pub(crate) interleave: Option<usize>,
    /// Return every attempt's error as a group.
    pub(crate) all_errors: bool,
    /// The `StreamReader`'s buffer limit.
    pub(crate) limit: usize,
    /// TLS: the context.
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    pub(crate) ssl: Option<loop_tls::SslContext>,
    /// TLS: the expected server name.
    pub(crate) server_hostname: Option<String>,
    /// TLS: the handshake timeout.
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    /// TLS: the shutdown timeout.
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            family: 0,
            proto: 0,
            flags: 0,
            local_addr: None,
            happy_eyeballs_delay: None,
            interleave: None,
            all_errors: false,
            limit: loop_transport::DEFAULT_LIMIT,
            #[cfg(any(feature = "tls", feature = "tls-ring"))]
            ssl: None,
            server_hostname: None,
            ssl_handshake_timeout: None,
            ssl_shutdown_timeout: None,
        }
    }
}

impl ConnectOptions {
    /// asyncio's defaults: any family, one attempt at a time, a 64 KiB reader limit, no TLS.
    ///
    /// ```
    /// assert_eq!(loop_net::ConnectOptions::new().get_limit(), 65536);
    /// ```
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Address family for the resolver (`AF_UNSPEC` = 0, the default: any).
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().family(loop_net::AF_INET);
    /// ```
    pub fn family(mut self, family: i32) -> ConnectOptions {
        self.family = family;
        self
    }

    /// Protocol for the resolver (0, the default: any).
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().proto(loop_net::IPPROTO_TCP);
    /// ```
    pub fn proto(mut self, proto: i32) -> ConnectOptions {
        self.proto = proto;
        self
    }

    /// `AI_*` flags for the resolver (default 0).
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().flags(loop_net::AI_CANONNAME);
    /// ```
    pub fn flags(mut self, flags: i32) -> ConnectOptions {
        self.flags = flags;
        self
    }

    /// Local `(host, port)` to bind each attempt's socket to before connecting; resolved like
    /// the remote address (an empty host: any address).
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().local_addr(("127.0.0.1", 0));
    /// ```
    pub fn local_addr(mut self, (host, port): (impl Into<String>, u16)) -> ConnectOptions {
        self.local_addr = Some((host.into(), port));
        self
    }

    /// Happy eyeballs (RFC 8305): start the next attempt after this delay even if the previous
    /// one has not failed yet. Not set (the default): one attempt at a time.
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().happy_eyeballs_delay(std::time::Duration::from_millis(250));
    /// ```
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> ConnectOptions {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Reorder the resolved addresses by family, round-robin, the first family contributing
    /// this many leading entries. Defaults to 1 when a happy-eyeballs delay is given.
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().interleave(2);
    /// ```
    pub fn interleave(mut self, first_count: usize) -> ConnectOptions {
        self.interleave = Some(first_count);
        self
    }

    /// When every attempt fails, return all their errors as an [`ErrorGroup`](crate::ErrorGroup)
    /// (read with [`Error::errors`](loop_core::Error::errors)) instead of one OS error.
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().all_errors(true);
    /// ```
    pub fn all_errors(mut self, all: bool) -> ConnectOptions {
        self.all_errors = all;
        self
    }

    /// The buffer limit of the `StreamReader` (streams functions only): 64 KiB by default.
    ///
    /// ```
    /// assert_eq!(loop_net::ConnectOptions::new().limit(1024).get_limit(), 1024);
    /// ```
    pub fn limit(mut self, limit: usize) -> ConnectOptions {
        self.limit = limit;
        self
    }

    /// The `StreamReader` buffer limit set with [`limit`](ConnectOptions::limit).
    ///
    /// ```
    /// assert_eq!(loop_net::ConnectOptions::new().get_limit(), 65536);
    /// ```
    pub fn get_limit(&self) -> usize {
        self.limit
    }

    /// TLS (feature `tls`): the client context; the connection's protocol gets
    /// `connection_made` after the handshake. For `connect_accepted_socket`, a server
    /// context: this end is the TLS server.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let _o = loop_net::ConnectOptions::new().ssl(ctx);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    pub fn ssl(mut self, ctx: loop_tls::SslContext) -> ConnectOptions {
        self.ssl = Some(ctx);
        self
    }

    /// TLS: the name the server's certificate is checked against and sent as SNI; by
    /// default the host (`create_unix_connection` needs it); an empty name turns the hostname
    /// check off. Refused without `ssl` (feature `tls`).
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().server_hostname("example.com");
    /// ```
    pub fn server_hostname(mut self, name: impl Into<String>) -> ConnectOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// TLS: how long the handshake may take (default 60 s). Refused without `ssl`.
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().ssl_handshake_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// TLS: how long closing waits for the peer's `close_notify` (default 30 s). Refused
    /// without `ssl`.
    ///
    /// ```
    /// let _o = loop_net::ConnectOptions::new().ssl_shutdown_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }
}

/// The TLS options of a connection call, as [`tls`](crate::tls) checks them.
pub(crate) fn tls_args(o: &ConnectOptions) -> TlsArgs<'_> {
    TlsArgs {
        #[cfg(any(feature = "tls", feature = "tls-ring"))]
        ssl: o.ssl.as_ref(),
        server_hostname: o.server_hostname.as_deref(),
        ssl_handshake_timeout: o.ssl_handshake_timeout,
        ssl_shutdown_timeout: o.ssl_shutdown_timeout,
    }
}

/// How one attempt ended without a socket.
pub(crate) enum AttemptError {
    /// Stop everything and return this (cancellation, a closed loop).
    Propagate(Error),
    /// This attempt failed with these errors; try the next address.
    Failed(Vec<Error>),
}

fn is_propagating(e: &Error) -> bool {
    matches!(e, Error::Cancelled(_) | Error::Closed)
}

fn new_socket(family: i32, proto: i32) -> io::Result<OwnedFd> {
    let protocol = u32::try_from(proto)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(rustix::net::Protocol::from_raw);
    crate::sys::socket(
        AddressFamily::from_raw(family as u16),
        SocketType::STREAM,
        protocol,
    )
}

/// One attempt: a socket for `info`, bound to the first local address of its family, then
/// connected (NET-22, NET-24).
async fn connect_one(
    lp: &EventLoop,
    info: &AddrInfo,
    local: Option<&[AddrInfo]>,
) -> std::result::Result<OwnedFd, AttemptError> {
    let sock =
        new_socket(info.family, info.protocol).map_err(|e| AttemptError::Failed(vec![e.into()]))?;
    if let Some(local) = local {
        let mut errors = Vec::new();
        let mut bound = false;
        for la in local.iter().filter(|la| la.family == info.family) {
            match rustix::net::bind(&sock, &rustix::net::SocketAddrAny::from(la.addr)) {
                Ok(()) => {
                    bound = true;
                    break;
                }
                Err(e) => {
                    let e = io::Error::from(e);
                    let msg = format!(
                        "error while attempting to bind on address {}: {}",
                        la.addr,
                        e.to_string().to_lowercase()
                    );
                    errors.push(with_context(e, msg).into());
                }
            }
        }
        if !bound {
            if errors.is_empty() {
                errors.push(
                    io::Error::other(format!(
                        "no matching local address with family={} found",
                        info.family
                    ))
                    .into(),
                );
            }
            return Err(AttemptError::Failed(errors));
        }
    }
    match lp.sock_connect(&sock, info.addr).await {
        Ok(()) => Ok(sock),
        Err(e) if is_propagating(&e) => Err(AttemptError::Propagate(e)),
        Err(Error::Io(io)) => {
            let source = io::Error::new(io.kind(), io.to_string());
            let source = match io.raw_os_error() {
                Some(n) => io::Error::from_raw_os_error(n),
                None => source,
            };
            let msg = format!("Connect call failed ({}): {source}", info.addr);
            Err(AttemptError::Failed(vec![with_context(source, msg).into()]))
        }
        Err(e) => Err(AttemptError::Failed(vec![e])),
    }
}

/// Reorders addresses by family, round-robin; the first family contributes `first_count`
/// leading entries (asyncio's `interleave`, NET-25).
pub(crate) fn interleave(infos: Vec<AddrInfo>, first_count: usize) -> Vec<AddrInfo> {
    let mut by_family: Vec<(i32, std::collections::VecDeque<AddrInfo>)> = Vec::new();
    for info in infos {
        match by_family.iter_mut().find(|(f, _)| *f == info.family) {
            Some((_, list)) => list.push_back(info),
            None => by_family.push((info.family, std::collections::VecDeque::from([info]))),
        }
    }
    let mut out = Vec::new();
    if let Some((_, first)) = by_family.first_mut() {
        for _ in 1..first_count {
            match first.pop_front() {
                Some(i) => out.push(i),
                None => break,
            }
        }
    }
    loop {
        let mut any = false;
        for (_, list) in by_family.iter_mut() {
            if let Some(i) = list.pop_front() {
                out.push(i);
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    out
}

type Attempt<'a> = Pin<Box<dyn Future<Output = std::result::Result<OwnedFd, AttemptError>> + 'a>>;

/// Happy eyeballs: attempts started `delay` apart, or as soon as the latest one failed; the
/// first socket connected wins (NET-25). Dropping the returned future (or returning) drops
/// every attempt still running, which closes its socket.
async fn staggered(
    lp: &EventLoop,
    infos: &[AddrInfo],
    local: Option<&[AddrInfo]>,
    delay: Duration,
    errors: &mut Vec<Vec<Error>>,
) -> Result<Option<OwnedFd>> {
    let mut attempts: Vec<Option<Attempt<'_>>> = Vec::new();
    let mut timer: Option<Pin<Box<loop_timers::Sleep>>> = None;
    errors.clear();
    let mut start_next = true;
    let outcome = futures_poll_fn(|cx| loop {
        if start_next && attempts.len() < infos.len() {
            let i = attempts.len();
            attempts.push(Some(Box::pin(connect_one(lp, &infos[i], local))));
            errors.push(Vec::new());
            timer = (attempts.len() < infos.len()).then(|| Box::pin(lp.sleep(delay)));
        }
        start_next = false;
        let latest = attempts.len() - 1;
        for (i, slot) in attempts.iter_mut().enumerate() {
            let Some(f) = slot else { continue };
            if let Poll::Ready(r) = f.as_mut().poll(cx) {
                *slot = None;
                match r {
                    Ok(sock) => return Poll::Ready(Ok(Some(sock))),
                    Err(AttemptError::Propagate(e)) => return Poll::Ready(Err(e)),
                    Err(AttemptError::Failed(v)) => {
                        errors[i] = v;
                        if i == latest {
                            start_next = true;
                        }
                    }
                }
            }
        }
        if let Some(t) = &mut timer {
            if let Poll::Ready(r) = t.as_mut().poll(cx) {
                timer = None;
                if let Err(e) = r {
                    return Poll::Ready(Err(e));
                }
                start_next = true;
            }
        }
        if start_next && attempts.len() < infos.len() {
            continue;
        }
        if attempts.len() == infos.len() && attempts.iter().all(Option::is_none) {
            return Poll::Ready(Ok(None));
        }
        return Poll::Pending;
    })
    .await;
    drop(attempts);
    outcome
}

/// `std::future::poll_fn` with a name that reads well here.
fn futures_poll_fn<T, F>(f: F) -> std::future::PollFn<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> Poll<T>,
{
    std::future::poll_fn(f)
}

/// A resolver answer with no address is an OS-style error, as in asyncio (NET-21). The system
/// resolver reports "no such name" as an error of its own, so only an unusual resolver (an NSS
/// module answering with nothing) gets here.
fn nonempty(infos: Vec<AddrInfo>) -> Result<Vec<AddrInfo>> {
    if infos.is_empty() {
        return Err(io::Error::other("getaddrinfo() returned empty list").into());
    }
    Ok(infos)
}

/// Resolves and connects to `host:port` (NET-21..NET-25); returns the connected socket.
pub(crate) async fn connect_host(
    lp: &EventLoop,
    host: Option<&str>,
    port: &Service,
    o: &ConnectOptions,
) -> Result<OwnedFd> {
    let hints = Hints {
        family: o.family,
        socktype: SOCK_STREAM,
        protocol: o.proto,
        flags: o.flags,
    };
    let mut infos = nonempty(ensure_resolved(lp, host, port.as_resolver_arg(), hints).await?)?;
    let local = match &o.local_addr {
        None => None,
        Some((lh, lport)) => {
            let lh = (!lh.is_empty()).then_some(lh.as_str());
            let l = ensure_resolved(lp, lh, Some(lport.to_string()), hints).await?;
            Some(nonempty(l)?)
        }
    };
    let inter = o
        .interleave
        .or(o.happy_eyeballs_delay.map(|_| 1))
        .filter(|n| *n > 0);
    if let Some(n) = inter {
        infos = interleave(infos, n);
    }
    let mut errors: Vec<Vec<Error>> = Vec::new();
    match o.happy_eyeballs_delay {
        None => {
            for info in &infos {
                match connect_one(lp, info, local.as_deref()).await {
                    Ok(sock) => return Ok(sock),
                    Err(AttemptError::Propagate(e)) => return Err(e),
                    Err(AttemptError::Failed(v)) => errors.push(v),
                }
            }
        }
        Some(delay) => {
            if let Some(sock) = staggered(lp, &infos, local.as_deref(), delay, &mut errors).await? {
                return Ok(sock);
            }
        }
    }
    Err(aggregate(
        errors.into_iter().flatten().collect(),
        o.all_errors,
    ))
}

/// `create_connection` (NET-19..NET-28).
pub(crate) async fn create_connection<P: Into<StreamProtocol> + 'static>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    host: String,
    port: Service,
    o: ConnectOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let h = (!host.is_empty()).then_some(host.as_str());
    let tls = crate::tls::client(&tls_args(&o), h, false)?;
    if h.is_none() && !port.is_specified() {
        return Err(Error::invalid_argument(
            "host and port was not specified and no sock specified \
             (create_connection_sock takes a connected socket)",
        ));
    }
    let fd = connect_host(&lp, h, &port, &o).await?;
    crate::tls::connect(&lp, fd, factory(), tls).await
}

/// `create_connection(sock=)`: adopts a connected stream socket (NET-20).
pub(crate) async fn create_connection_sock<P: Into<StreamProtocol> + 'static>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    sock: OwnedFd,
    o: ConnectOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let tls = crate::tls::client(&tls_args(&o), None, false)?;
    check_stream_socket(sock.as_fd(), None, "A Stream Socket")?;
    crate::tls::connect(&lp, sock, factory(), tls).await
}

/// `connect_accepted_socket` (NET-29).
pub(crate) async fn connect_accepted_socket<P: Into<StreamProtocol> + 'static>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    sock: OwnedFd,
    o: ConnectOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let tls = crate::tls::accepted(&tls_args(&o))?;
    check_stream_socket(sock.as_fd(), None, "A Stream Socket")?;
    crate::tls::connect(&lp, sock, factory(), tls).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(family: i32, last: u8) -> AddrInfo {
        let ip: std::net::IpAddr = if family == crate::AF_INET {
            [10, 0, 0, last].into()
        } else {
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(last)).into()
        };
        AddrInfo {
            family,
            socktype: SOCK_STREAM,
            protocol: 0,
            canonname: None,
            addr: std::net::SocketAddr::new(ip, 1),
        }
    }

    #[test]
    fn net_21_an_empty_resolver_answer_is_an_os_error() {
        let e = nonempty(Vec::new()).unwrap_err();
        let io = std::io::Error::from(e);
        assert_eq!(io.kind(), std::io::ErrorKind::Other);
        assert_eq!(io.to_string(), "getaddrinfo() returned empty list");
        let one = vec![info(crate::AF_INET, 1)];
        assert_eq!(nonempty(one).unwrap().len(), 1);
    }

    #[test]
    fn net_25_interleave_round_robin_by_family() {
        let (v6, v4) = (crate::AF_INET6, crate::AF_INET);
        let infos = vec![
            info(v6, 1),
            info(v6, 2),
            info(v6, 3),
            info(v4, 1),
            info(v4, 2),
        ];
        let order = |n| -> Vec<(i32, u8)> {
            interleave(infos.clone(), n)
                .iter()
                .map(|i| {
                    let last = match i.addr.ip() {
                        std::net::IpAddr::V4(a) => a.octets()[3],
                        std::net::IpAddr::V6(a) => a.octets()[15],
                    };
                    (i.family, last)
                })
                .collect()
        };
        assert_eq!(order(1), [(v6, 1), (v4, 1), (v6, 2), (v4, 2), (v6, 3)]);
        assert_eq!(order(2), [(v6, 1), (v6, 2), (v4, 1), (v6, 3), (v4, 2)]);
    }
}
