//! The TLS options of the connection and server calls. With the `tls` feature they run the
//! connection through loop-tls's TLS transport; without it, `ssl` does not exist and the
//! TLS-only options are rejected with asyncio's messages (NET-28, NET-29, NET-30, NET-46).

use std::os::fd::OwnedFd;

use loop_core::{Error, EventLoop, Result};
use loop_transport::{ProtocolRef, StreamProtocol, Transport, TransportOptions};

use crate::plain::{make_transport, Factory};

#[cfg(any(feature = "tls", feature = "tls-ring"))]
use loop_tls::{SslContext, TlsOptions};

/// The TLS options of a connection or server call (asyncio's `ssl`, `server_hostname`,
/// `ssl_handshake_timeout`, `ssl_shutdown_timeout`), borrowed from its options.
pub(crate) struct TlsArgs<'a> {
    /// The context.
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    pub(crate) ssl: Option<&'a SslContext>,
    /// The name to check the server's certificate against (client side).
    pub(crate) server_hostname: Option<&'a str>,
    /// How long the handshake may take.
    pub(crate) ssl_handshake_timeout: Option<std::time::Duration>,
    /// How long closing waits for the peer's `close_notify`.
    pub(crate) ssl_shutdown_timeout: Option<std::time::Duration>,
}

/// The TLS setup of one connection (uninhabited without the `tls` feature).
pub(crate) struct TlsSetup {
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    ctx: SslContext,
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    opts: TlsOptions,
    #[cfg(not(any(feature = "tls", feature = "tls-ring")))]
    never: std::convert::Infallible,
}

fn only_with_ssl(what: &str) -> Error {
    Error::invalid_argument(format!("{what} is only meaningful with ssl"))
}

/// The timeouts without TLS (both sides).
fn check_timeouts(
    ssl: bool,
    handshake: Option<std::time::Duration>,
    shutdown: Option<std::time::Duration>,
) -> Result<()> {
    if !ssl && handshake.is_some() {
        return Err(only_with_ssl("ssl_handshake_timeout"));
    }
    if !ssl && shutdown.is_some() {
        return Err(only_with_ssl("ssl_shutdown_timeout"));
    }
    Ok(())
}

/// The client side of `create_connection` (`host` given) and `create_unix_connection`
/// (`host` `None`): asyncio's argument rules; the host is the default `server_hostname`.
pub(crate) fn client(o: &TlsArgs<'_>, host: Option<&str>, unix: bool) -> Result<Option<TlsSetup>> {
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    {
        let Some(ctx) = o.ssl else {
            if o.server_hostname.is_some() {
                return Err(only_with_ssl("server_hostname"));
            }
            check_timeouts(false, o.ssl_handshake_timeout, o.ssl_shutdown_timeout)?;
            return Ok(None);
        };
        if unix && o.server_hostname.is_none() {
            return Err(Error::invalid_argument(
                "you have to pass server_hostname when using ssl",
            ));
        }
        if ctx.is_server() {
            return Err(Error::invalid_argument(
                "ssl must be a client-side SslContext for a client connection",
            ));
        }
        let args = loop_tls::args::check_client_args(
            true,
            host,
            o.server_hostname,
            o.ssl_handshake_timeout,
            o.ssl_shutdown_timeout,
        )
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
        let Some(args) = args else { return Ok(None) };
        let opts = TlsOptions::new()
            .server_side(false)
            .server_hostname(args.server_hostname)
            .ssl_handshake_timeout(args.handshake_timeout)
            .ssl_shutdown_timeout(args.shutdown_timeout);
        Ok(Some(TlsSetup {
            ctx: ctx.clone(),
            opts,
        }))
    }
    #[cfg(not(any(feature = "tls", feature = "tls-ring")))]
    {
        let _ = (host, unix);
        if o.server_hostname.is_some() {
            return Err(only_with_ssl("server_hostname"));
        }
        check_timeouts(false, o.ssl_handshake_timeout, o.ssl_shutdown_timeout)?;
        Ok(None)
    }
}

/// The server side of one connection: `create_server`, `create_unix_server`, and
/// `connect_accepted_socket` (`accepted`, with `server_hostname` refused).
fn server_side(
    ssl: bool,
    handshake: Option<std::time::Duration>,
    shutdown: Option<std::time::Duration>,
) -> Result<()> {
    check_timeouts(ssl, handshake, shutdown)?;
    if let Some(t) = handshake {
        if t.is_zero() {
            return Err(Error::invalid_argument(format!(
                "ssl_handshake_timeout should be a positive number, got {}",
                t.as_secs_f64()
            )));
        }
    }
    if let Some(t) = shutdown {
        if t.is_zero() {
            return Err(Error::invalid_argument(format!(
                "ssl_shutdown_timeout should be a positive number, got {}",
                t.as_secs_f64()
            )));
        }
    }
    Ok(())
}

/// `connect_accepted_socket`: TLS as the server of an accepted socket.
pub(crate) fn accepted(o: &TlsArgs<'_>) -> Result<Option<TlsSetup>> {
    if o.server_hostname.is_some() {
        return Err(only_with_ssl("server_hostname"));
    }
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    {
        let ssl = o.ssl;
        server_side(
            ssl.is_some(),
            o.ssl_handshake_timeout,
            o.ssl_shutdown_timeout,
        )?;
        Ok(ssl.map(|ctx| TlsSetup {
            ctx: ctx.clone(),
            opts: server_opts(o.ssl_handshake_timeout, o.ssl_shutdown_timeout),
        }))
    }
    #[cfg(not(any(feature = "tls", feature = "tls-ring")))]
    {
        server_side(false, o.ssl_handshake_timeout, o.ssl_shutdown_timeout)?;
        Ok(None)
    }
}

#[cfg(any(feature = "tls", feature = "tls-ring"))]
fn server_opts(
    handshake: Option<std::time::Duration>,
    shutdown: Option<std::time::Duration>,
) -> TlsOptions {
    let mut opts = TlsOptions::new().server_side(true);
    opts.ssl_handshake_timeout = handshake;
    opts.ssl_shutdown_timeout = shutdown;
    opts
}

/// `create_server` / `create_unix_server`: the TLS setup every accepted connection gets.
pub(crate) fn server(o: &TlsArgs<'_>) -> Result<Option<TlsSetup>> {
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    {
        let ssl = o.ssl;
        server_side(
            ssl.is_some(),
            o.ssl_handshake_timeout,
            o.ssl_shutdown_timeout,
        )?;
        let Some(ctx) = ssl else { return Ok(None) };
        if !ctx.is_server() {
            return Err(Error::invalid_argument(
                "Server side SSL needs a valid SSLContext: ssl must be a server-side SslContext \
                 (SslContext::server()) for a server",
            ));
        }
        Ok(Some(TlsSetup {
            ctx: ctx.clone(),
            opts: server_opts(o.ssl_handshake_timeout, o.ssl_shutdown_timeout),
        }))
    }
    #[cfg(not(any(feature = "tls", feature = "tls-ring")))]
    {
        server_side(false, o.ssl_handshake_timeout, o.ssl_shutdown_timeout)?;
        Ok(None)
    }
}

/// Wraps a connected socket in a transport, with TLS if set up, and waits for the
/// application's `connection_made` (after the handshake, with TLS).
pub(crate) async fn connect<P: Into<StreamProtocol> + 'static>(
    lp: &EventLoop,
    fd: OwnedFd,
    protocol: P,
    tls: Option<TlsSetup>,
) -> Result<(Transport, ProtocolRef<P>)> {
    match tls {
        None => make_transport(lp, fd, protocol, TransportOptions::socket()).await,
        #[cfg(any(feature = "tls", feature = "tls-ring"))]
        Some(t) => {
            loop_tls::connect_over(
                lp,
                fd,
                protocol,
                &t.ctx,
                &t.opts,
                TransportOptions::socket(),
            )
            .await
        }
        #[cfg(not(any(feature = "tls", feature = "tls-ring")))]
        Some(t) => match t.never {},
    }
}

/// A server's protocol factory, with TLS if set up: each accepted connection gets the TLS
/// layer, driving the protocol `factory` makes.
pub(crate) fn wrap_factory(lp: &EventLoop, factory: Factory, tls: Option<TlsSetup>) -> Factory {
    match tls {
        None => factory,
        #[cfg(any(feature = "tls", feature = "tls-ring"))]
        Some(t) => {
            let lp = lp.clone();
            let mut factory = factory;
            Box::new(move || loop_tls::server_protocol(&lp, &t.ctx, factory(), &t.opts))
        }
        #[cfg(not(any(feature = "tls", feature = "tls-ring")))]
        Some(t) => {
            let _ = lp;
            match t.never {}
        }
    }
}
