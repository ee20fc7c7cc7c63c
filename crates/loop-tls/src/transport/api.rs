//! The calls: [`start_tls`] (and [`TlsExt::start_tls`] on the loop), [`TlsStreamExt::start_tls`]
//! on a `StreamWriter`, [`tls_info`], and the two entry points the connection and server calls
//! of loop-net use.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use loop_core::{Error, EventLoop, Handle, Result};
use loop_transport::{
    Extra, Protocol, ProtocolRef, StreamProtocol, StreamWriter, Transport, TransportOptions,
};

use super::info::TlsInfo;
use super::proto::TlsProtocol;
use super::state::{Tls, TlsCore};
use crate::context::SslContext;
use crate::engine::TlsEngine;

/// The TLS arguments of a connection (asyncio's `server_side`, `server_hostname`,
/// `ssl_handshake_timeout`, `ssl_shutdown_timeout`). `Default`: the context's side, no name,
/// 60 s for the handshake, 30 s for the shutdown.
///
/// ```
/// use std::time::Duration;
/// let o = loop_tls::TlsOptions::new()
///     .server_hostname("example.com")
///     .ssl_handshake_timeout(Duration::from_secs(5));
/// assert_eq!(o.server_hostname.as_deref(), Some("example.com"));
/// assert_eq!(o.server_side, None);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Which end of the TLS connection this is; `None`: the context's side (a server context
    /// makes a server).
    pub server_side: Option<bool>,
    /// A client's name for the server: checked against its certificate (an IP address
    /// against the IP SANs) and sent as SNI. Empty: no check (the context must have hostname
    /// checking off).
    pub server_hostname: Option<String>,
    /// How long the handshake may take (default 60 s).
    pub ssl_handshake_timeout: Option<Duration>,
    /// How long the shutdown may wait for the peer's `close_notify` (default 30 s).
    pub ssl_shutdown_timeout: Option<Duration>,
}

impl TlsOptions {
    /// The defaults.
    ///
    /// ```
    /// assert!(loop_tls::TlsOptions::new().server_hostname.is_none());
    /// ```
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// Sets [`server_side`](TlsOptions::server_side).
    ///
    /// ```
    /// assert_eq!(loop_tls::TlsOptions::new().server_side(true).server_side, Some(true));
    /// ```
    pub fn server_side(mut self, server_side: bool) -> TlsOptions {
        self.server_side = Some(server_side);
        self
    }

    /// Sets [`server_hostname`](TlsOptions::server_hostname).
    ///
    /// ```
    /// let o = loop_tls::TlsOptions::new().server_hostname("localhost");
    /// assert_eq!(o.server_hostname.as_deref(), Some("localhost"));
    /// ```
    pub fn server_hostname(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// Sets [`ssl_handshake_timeout`](TlsOptions::ssl_handshake_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = loop_tls::TlsOptions::new().ssl_handshake_timeout(Duration::from_secs(1));
    /// assert_eq!(o.ssl_handshake_timeout, Some(Duration::from_secs(1)));
    /// ```
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> TlsOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// Sets [`ssl_shutdown_timeout`](TlsOptions::ssl_shutdown_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = loop_tls::TlsOptions::new().ssl_shutdown_timeout(Duration::from_secs(1));
    /// assert_eq!(o.ssl_shutdown_timeout, Some(Duration::from_secs(1)));
    /// ```
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> TlsOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }
}

/// The engine `opts` ask for on `ctx`: the context's side unless `opts` say otherwise, with
/// the options' name and timeouts.
fn make_engine(ctx: &SslContext, opts: &TlsOptions) -> Result<TlsEngine> {
    let server_side = opts.server_side.unwrap_or(ctx.is_server());
    let mut engine = if server_side {
        if opts.server_hostname.is_some() {
            return Err(Error::invalid_argument(
                "server_hostname is only meaningful for a client-side connection",
            ));
        }
        TlsEngine::server(ctx)
    } else {
        TlsEngine::client(ctx, opts.server_hostname.as_deref().unwrap_or(""))
    }
    .map_err(|e| Error::invalid_argument(e.to_string()))?;
    engine
        .set_timeouts(opts.ssl_handshake_timeout, opts.ssl_shutdown_timeout)
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    Ok(engine)
}

/// What the handshake's waiter needs cleaned up if the wait is cut short (cancelled): the
/// transport underneath is aborted, the queued start-up callbacks cancelled.
struct Unwind {
    core: Option<Rc<TlsCore>>,
    lower: Option<Transport>,
    handles: Vec<Handle>,
    close: bool,
}

impl Drop for Unwind {
    fn drop(&mut self) {
        let Some(core) = self.core.take() else { return };
        drop(core.driver.waiter.borrow_mut().take());
        for h in self.handles.drain(..) {
            h.cancel();
        }
        if let Some(l) = self.lower.take() {
            if self.close {
                l.close();
            } else {
                l.abort();
            }
        }
    }
}

/// TLS over a connected socket, as the client (or, with a server context, the server) of
/// `create_connection(ssl=...)`, `create_unix_connection` and `connect_accepted_socket`:
/// waits for the handshake and the application's `connection_made`. Used by loop-net.
///
/// # Errors
///
/// The TLS failure (untrusted certificate, name mismatch, timeout, connection lost); the
/// context's errors for bad arguments.
#[doc(hidden)]
pub async fn connect_over<P: Into<StreamProtocol> + 'static>(
    lp: &EventLoop,
    fd: OwnedFd,
    app: P,
    ctx: &SslContext,
    opts: &TlsOptions,
    transport: TransportOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let core = Tls::new_core(lp, ctx, app.into(), make_engine(ctx, opts)?, true)?;
    let waiter = Tls::waiter(&core).ok_or(Error::Closed)?;
    let lower = match Transport::new(lp, fd, TlsProtocol::new(core.clone()), transport) {
        Ok(l) => l,
        Err(e) => {
            core.teardown();
            return Err(e);
        }
    };
    let mut unwind = Unwind {
        core: Some(core.clone()),
        lower: Some(lower),
        handles: Vec::new(),
        close: false,
    };
    waiter.await?;
    unwind.core = None;
    let t = Transport::from_backend(core);
    let p = t.protocol_ref::<P>();
    Ok((t, p))
}

/// Refuses a connection whose TLS transport could not be made (the error is logged).
struct Refuse(String);

impl Protocol for Refuse {
    fn connection_made(&mut self, transport: &Transport) {
        tracing::error!("TLS setup of an accepted connection failed: {}", self.0);
        transport.abort();
    }
}

/// The protocol a TLS server installs on an accepted connection: the TLS layer over it,
/// driving `app` (whose `connection_made` comes after the handshake). Used by loop-net's
/// servers.
#[doc(hidden)]
pub fn server_protocol(
    lp: &EventLoop,
    ctx: &SslContext,
    app: StreamProtocol,
    opts: &TlsOptions,
) -> StreamProtocol {
    match make_engine(ctx, opts).and_then(|engine| Tls::new_core(lp, ctx, app, engine, true)) {
        Ok(core) => {
            // Nobody waits for a server's handshake.
            drop(core.driver.waiter.borrow_mut().take());
            StreamProtocol::plain(TlsProtocol::new(core))
        }
        Err(e) => StreamProtocol::plain(Refuse(e.to_string())),
    }
}

/// Upgrades a live connection to TLS (asyncio's `loop.start_tls`): the transport's reading
/// pauses, a [`TlsProtocol`] takes its place as the transport's protocol (the old protocol
/// is dropped), the handshake runs; then `protocol` drives the returned TLS transport. As in
/// asyncio, `protocol` gets no `connection_made`: the returned transport is its transport.
/// Use the old transport no more.
///
/// The side is the context's unless [`TlsOptions::server_side`] says otherwise; a client
/// needs [`TlsOptions::server_hostname`] unless its context checks no names.
///
/// # Errors
///
/// [`Error::InvalidState`] for a closing transport; [`Error::InvalidArgument`] for options the
/// context rejects (a client without a name, a server context on the client side); the TLS
/// failure (the transport is closed then).
///
/// ```no_run
/// # async fn f(lp: loop_core::EventLoop, plain: loop_transport::Transport, ctx: loop_tls::SslContext) -> loop_core::Result<()> {
/// use loop_tls::TlsOptions;
/// struct App;
/// impl loop_transport::Protocol for App {}
/// let opts = TlsOptions::new().server_hostname("mail.example.com");
/// let (tls, _app) = loop_tls::start_tls(&lp, &plain, App, &ctx, opts).await?;
/// tls.write(b"EHLO evloop\r\n")?;
/// # Ok(()) }
/// ```
pub fn start_tls<P: Into<StreamProtocol> + 'static>(
    lp: &EventLoop,
    transport: &Transport,
    protocol: P,
    ctx: &SslContext,
    opts: TlsOptions,
) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static {
    let lp = lp.clone();
    let lower = transport.clone();
    let ctx = ctx.clone();
    async move {
        if lower.is_closing() {
            return Err(Error::invalid_state(
                "start_tls() needs an open transport; this one is closing",
            ));
        }
        let core = Tls::new_core(&lp, &ctx, protocol.into(), make_engine(&ctx, &opts)?, false)?;
        let waiter = Tls::waiter(&core).ok_or(Error::Closed)?;
        // Paused first, so that no data reaches the TLS protocol before the handshake starts.
        lower.pause_reading();
        lower.set_protocol(TlsProtocol::new(core.clone()));
        let mut unwind = Unwind {
            core: Some(core.clone()),
            lower: Some(lower.clone()),
            handles: Vec::new(),
            close: true,
        };
        let (c, l) = (core.clone(), lower.clone());
        unwind
            .handles
            .push(lp.call_soon(move |_| Tls::begin(&c, &l))?);
        let l = lower.clone();
        unwind
            .handles
            .push(lp.call_soon(move |_| l.resume_reading())?);
        waiter.await?;
        unwind.core = None;
        let t = Transport::from_backend(core);
        let p = t.protocol_ref::<P>();
        Ok((t, p))
    }
}

/// The typed snapshot of what a TLS transport negotiated (`None` for a transport without
/// TLS): the `ssl_object` of its extra info.
///
/// ```
/// struct P;
/// impl loop_transport::Protocol for P {}
/// let lp = loop_core::EventLoop::new()?;
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let t = loop_transport::Transport::new(&lp, a, P, loop_transport::TransportOptions::socket())?;
/// assert!(loop_tls::tls_info(&t).is_none());
/// # t.abort(); lp.run_until_complete(async {})?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tls_info(transport: &Transport) -> Option<TlsInfo> {
    transport
        .get_extra_info(Extra::Custom("ssl_object"))?
        .downcast_ref::<TlsInfo>()
        .cloned()
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for loop_core::EventLoop {}
    impl Sealed for loop_transport::StreamWriter {}
}

/// `start_tls` as a method of the loop (asyncio's `loop.start_tls`).
///
/// ```no_run
/// # async fn f(lp: loop_core::EventLoop, plain: loop_transport::Transport, ctx: loop_tls::SslContext) -> loop_core::Result<()> {
/// use loop_tls::{TlsExt, TlsOptions};
/// struct App;
/// impl loop_transport::Protocol for App {}
/// let (tls, _app) = lp.start_tls(&plain, App, &ctx, TlsOptions::new().server_side(true)).await?;
/// # let _ = tls; Ok(()) }
/// ```
pub trait TlsExt: sealed::Sealed {
    /// See [`start_tls`].
    ///
    /// # Errors
    ///
    /// As [`start_tls`].
    fn start_tls<P: Into<StreamProtocol> + 'static>(
        &self,
        transport: &Transport,
        protocol: P,
        ctx: &SslContext,
        opts: TlsOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static;
}

impl TlsExt for EventLoop {
    fn start_tls<P: Into<StreamProtocol> + 'static>(
        &self,
        transport: &Transport,
        protocol: P,
        ctx: &SslContext,
        opts: TlsOptions,
    ) -> impl Future<Output = Result<(Transport, ProtocolRef<P>)>> + 'static {
        start_tls(self, transport, protocol, ctx, opts)
    }
}

/// `start_tls` for streams (asyncio's `StreamWriter.start_tls`): drains the writer, upgrades
/// its connection, and from then on the writer and its reader use the TLS transport.
///
/// ```no_run
/// # async fn f(mut reader: loop_transport::StreamReader, mut writer: loop_transport::StreamWriter, ctx: loop_tls::SslContext) -> loop_core::Result<()> {
/// use loop_tls::{TlsOptions, TlsStreamExt};
/// writer.write(b"STARTTLS\r\n")?;
/// let _ok = reader.readline().await?;
/// writer.start_tls(&ctx, TlsOptions::new().server_hostname("mail.example.com")).await?;
/// writer.write(b"EHLO evloop\r\n")?; // encrypted
/// # Ok(()) }
/// ```
pub trait TlsStreamExt: sealed::Sealed {
    /// Upgrades the stream to TLS. The side is the context's unless the options say
    /// otherwise.
    ///
    /// # Errors
    ///
    /// As [`start_tls`]; the writer's `drain` errors.
    fn start_tls(
        &mut self,
        ctx: &SslContext,
        opts: TlsOptions,
    ) -> impl Future<Output = Result<()>> + '_;
}

impl TlsStreamExt for StreamWriter {
    fn start_tls(
        &mut self,
        ctx: &SslContext,
        opts: TlsOptions,
    ) -> impl Future<Output = Result<()>> + '_ {
        let ctx = ctx.clone();
        async move {
            self.drain().await?;
            let lp = self.transport().get_loop().ok_or(Error::Closed)?;
            let protocol = self.protocol_for_upgrade();
            let (t, _) = start_tls(&lp, self.transport(), protocol, &ctx, opts).await?;
            self.replace_transport(t);
            Ok(())
        }
    }
}
