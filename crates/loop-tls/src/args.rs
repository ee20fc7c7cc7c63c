//! asyncio's argument rules for the TLS options, as functions the connection and server
//! options call before anything is opened.
//!
//! The rules and messages are those of `create_connection`, `create_server`,
//! `connect_accepted_socket` and `SSLProtocol.__init__`, so a program moved from asyncio gets
//! the same complaint for the same mistake.
//!
//! ```
//! use loop_tls::args;
//!
//! // create_connection(host, port, server_hostname=..., ssl_handshake_timeout=...) without ssl:
//! let err = args::check_client_args(false, Some("example.com"), Some("example.com"), None, None)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "server_hostname is only meaningful with ssl");
//! ```

use std::time::Duration;

use crate::error::ArgumentError;

/// How long the handshake may take before the connection is aborted (asyncio's
/// `SSL_HANDSHAKE_TIMEOUT`).
///
/// ```
/// assert_eq!(loop_tls::args::SSL_HANDSHAKE_TIMEOUT.as_secs(), 60);
/// ```
pub const SSL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the closing handshake may take before the connection is closed anyway (asyncio's
/// `SSL_SHUTDOWN_TIMEOUT`).
///
/// ```
/// assert_eq!(loop_tls::args::SSL_SHUTDOWN_TIMEOUT.as_secs(), 30);
/// ```
pub const SSL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The default high-water mark of the incoming ciphertext buffer: past it the transport stops
/// reading from the socket (asyncio's `FLOW_CONTROL_HIGH_WATER_SSL_READ`, 256 KiB).
///
/// ```
/// assert_eq!(loop_tls::args::FLOW_CONTROL_HIGH_WATER_SSL_READ, 256 * 1024);
/// ```
pub const FLOW_CONTROL_HIGH_WATER_SSL_READ: usize = 256 * 1024;

/// The default high-water mark of the outgoing buffer: past it the application protocol's
/// `pause_writing` runs (asyncio's `FLOW_CONTROL_HIGH_WATER_SSL_WRITE`, 512 KiB).
///
/// ```
/// assert_eq!(loop_tls::args::FLOW_CONTROL_HIGH_WATER_SSL_WRITE, 512 * 1024);
/// ```
pub const FLOW_CONTROL_HIGH_WATER_SSL_WRITE: usize = 512 * 1024;

fn positive(
    name: &str,
    timeout: Option<Duration>,
    default: Duration,
) -> Result<Duration, ArgumentError> {
    match timeout {
        None => Ok(default),
        Some(t) if t.is_zero() => Err(ArgumentError(format!(
            "{name} should be a positive number, got {:?}",
            t.as_secs_f64()
        ))),
        Some(t) => Ok(t),
    }
}

/// The handshake timeout to use: the default when none is given.
///
/// # Errors
///
/// A zero duration: "ssl_handshake_timeout should be a positive number, got 0.0".
///
/// ```
/// use std::time::Duration;
/// use loop_tls::args;
///
/// assert_eq!(args::handshake_timeout(None)?, args::SSL_HANDSHAKE_TIMEOUT);
/// assert_eq!(args::handshake_timeout(Some(Duration::from_secs(5)))?, Duration::from_secs(5));
/// assert!(args::handshake_timeout(Some(Duration::ZERO)).is_err());
/// # Ok::<(), loop_tls::ArgumentError>(())
/// ```
pub fn handshake_timeout(timeout: Option<Duration>) -> Result<Duration, ArgumentError> {
    positive("ssl_handshake_timeout", timeout, SSL_HANDSHAKE_TIMEOUT)
}

/// The shutdown timeout to use: the default when none is given.
///
/// # Errors
///
/// A zero duration: "ssl_shutdown_timeout should be a positive number, got 0.0".
///
/// ```
/// use std::time::Duration;
/// use loop_tls::args;
///
/// assert_eq!(args::shutdown_timeout(None)?, args::SSL_SHUTDOWN_TIMEOUT);
/// let e = args::shutdown_timeout(Some(Duration::ZERO)).unwrap_err();
/// assert_eq!(e.to_string(), "ssl_shutdown_timeout should be a positive number, got 0.0");
/// # Ok::<(), loop_tls::ArgumentError>(())
/// ```
pub fn shutdown_timeout(timeout: Option<Duration>) -> Result<Duration, ArgumentError> {
    positive("ssl_shutdown_timeout", timeout, SSL_SHUTDOWN_TIMEOUT)
}

/// The timeouts may only be given with TLS (every connection and server call checks this).
///
/// # Errors
///
/// "ssl_handshake_timeout is only meaningful with ssl", then "ssl_shutdown_timeout is only
/// meaningful with ssl", in asyncio's order.
///
/// ```
/// use std::time::Duration;
/// use loop_tls::args::check_ssl_only;
///
/// assert!(check_ssl_only(true, Some(Duration::from_secs(1)), None).is_ok());
/// assert!(check_ssl_only(false, None, None).is_ok());
/// let e = check_ssl_only(false, None, Some(Duration::from_secs(1))).unwrap_err();
/// assert_eq!(e.to_string(), "ssl_shutdown_timeout is only meaningful with ssl");
/// ```
pub fn check_ssl_only(
    ssl: bool,
    handshake_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
) -> Result<(), ArgumentError> {
    if ssl {
        return Ok(());
    }
    if handshake_timeout.is_some() {
        return Err(ArgumentError(
            "ssl_handshake_timeout is only meaningful with ssl".into(),
        ));
    }
    if shutdown_timeout.is_some() {
        return Err(ArgumentError(
            "ssl_shutdown_timeout is only meaningful with ssl".into(),
        ));
    }
    Ok(())
}

/// `create_connection`'s `server_hostname` rule: the name the client checks the certificate
/// against and sends as SNI.
///
/// Without TLS there is none (and giving one is an error). With TLS and no `server_hostname`
/// it is `host`; an empty `server_hostname` is kept, and turns hostname checking off for the
/// default context (see [`SslContext::default_client`](crate::SslContext::default_client)).
/// A numeric `host` is kept too: it is verified as an IP address.
///
/// # Errors
///
/// "server_hostname is only meaningful with ssl"; "You must set server_hostname when using ssl
/// without a host" (an already connected socket, or only a port).
///
/// ```
/// use loop_tls::args::resolve_server_hostname;
///
/// assert_eq!(resolve_server_hostname(true, None, Some("example.com"))?.as_deref(), Some("example.com"));
/// assert_eq!(resolve_server_hostname(true, Some(""), Some("example.com"))?.as_deref(), Some(""));
/// assert_eq!(resolve_server_hostname(false, None, Some("example.com"))?, None);
/// assert!(resolve_server_hostname(true, None, None).is_err());
/// assert!(resolve_server_hostname(false, Some("example.com"), None).is_err());
/// # Ok::<(), loop_tls::ArgumentError>(())
/// ```
pub fn resolve_server_hostname(
    ssl: bool,
    server_hostname: Option<&str>,
    host: Option<&str>,
) -> Result<Option<String>, ArgumentError> {
    match (ssl, server_hostname) {
        (false, Some(_)) => Err(ArgumentError(
            "server_hostname is only meaningful with ssl".into(),
        )),
        (false, None) => Ok(None),
        (true, Some(name)) => Ok(Some(name.to_owned())),
        (true, None) => match host {
            Some(h) if !h.is_empty() => Ok(Some(h.to_owned())),
            _ => Err(ArgumentError(
                "You must set server_hostname when using ssl without a host".into(),
            )),
        },
    }
}

/// Every check `create_connection` makes on its TLS options, in asyncio's order, and the values
/// to use: the server name and both timeouts, or `None` without TLS.
///
/// # Errors
///
/// The first rule broken, as in [`resolve_server_hostname`], [`check_ssl_only`],
/// [`handshake_timeout`] and [`shutdown_timeout`].
///
/// ```
/// use std::time::Duration;
/// use loop_tls::args::{check_client_args, SSL_SHUTDOWN_TIMEOUT};
///
/// let tls = check_client_args(true, Some("db.internal"), None, Some(Duration::from_secs(5)), None)?
///     .expect("TLS is on");
/// assert_eq!(tls.server_hostname, "db.internal");
/// assert_eq!(tls.handshake_timeout, Duration::from_secs(5));
/// assert_eq!(tls.shutdown_timeout, SSL_SHUTDOWN_TIMEOUT);
/// assert!(check_client_args(false, Some("h"), None, None, None)?.is_none());
/// # Ok::<(), loop_tls::ArgumentError>(())
/// ```
pub fn check_client_args(
    ssl: bool,
    host: Option<&str>,
    server_hostname: Option<&str>,
    handshake: Option<Duration>,
    shutdown: Option<Duration>,
) -> Result<Option<ClientTlsArgs>, ArgumentError> {
    let name = resolve_server_hostname(ssl, server_hostname, host)?;
    check_ssl_only(ssl, handshake, shutdown)?;
    let Some(server_hostname) = name else {
        return Ok(None);
    };
    Ok(Some(ClientTlsArgs {
        server_hostname,
        handshake_timeout: handshake_timeout(handshake)?,
        shutdown_timeout: shutdown_timeout(shutdown)?,
    }))
}

/// The checked TLS options of a client connection (from [`check_client_args`]).
///
/// ```
/// let a = loop_tls::args::check_client_args(true, Some("example.com"), None, None, None)?.unwrap();
/// assert_eq!(a.server_hostname, "example.com");
/// # Ok::<(), loop_tls::ArgumentError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientTlsArgs {
    /// The name to verify and send as SNI; empty: neither.
    pub server_hostname: String,
    /// The handshake timeout.
    pub handshake_timeout: Duration,
    /// The shutdown timeout.
    pub shutdown_timeout: Duration,
}
