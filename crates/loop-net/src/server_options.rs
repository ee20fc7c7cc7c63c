//! The options of the server calls ([`ServerOptions`]) and the hosts a server listens on
//! ([`Hosts`]): what `create_server` and its relatives are asked to do, apart from doing it.

use std::time::Duration;

/// Options of `create_server`, `start_server`, `create_unix_server`, `start_unix_server` and
/// their `_sock` forms (asyncio's keyword arguments), built with one chainable setter per
/// option. [`new`](ServerOptions::new) (or `Default`) gives asyncio's defaults.
///
/// ```
/// use loop_net::ServerOptions;
/// let o = ServerOptions::new().backlog(16).start_serving(false);
/// assert_eq!(o.get_backlog(), 16);
/// assert!(!o.get_start_serving());
/// assert_eq!(ServerOptions::new().get_backlog(), 100);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Address family for the resolver.
    pub(crate) family: i32,
    /// `AI_*` flags for the resolver.
    pub(crate) flags: i32,
    /// `listen()` backlog and accept batch.
    pub(crate) backlog: u32,
    /// SO_REUSEADDR; `None`: on.
    pub(crate) reuse_address: Option<bool>,
    /// SO_REUSEPORT.
    pub(crate) reuse_port: bool,
    /// SO_KEEPALIVE on the listening sockets.
    pub(crate) keep_alive: bool,
    /// Start accepting before the call returns.
    pub(crate) start_serving: bool,
    /// Unlink the Unix socket file on close.
    pub(crate) cleanup_socket: bool,
    /// The clients' `StreamReader` limit.
    pub(crate) limit: usize,
    /// TLS: the server context.
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    pub(crate) ssl: Option<loop_tls::SslContext>,
    /// TLS: the handshake timeout.
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    /// TLS: the shutdown timeout.
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            family: 0,
            flags: 0,
            backlog: 100,
            reuse_address: None,
            reuse_port: false,
            keep_alive: false,
            start_serving: true,
            cleanup_socket: true,
            limit: loop_transport::DEFAULT_LIMIT,
            #[cfg(any(feature = "tls", feature = "tls-ring"))]
            ssl: None,
            ssl_handshake_timeout: None,
            ssl_shutdown_timeout: None,
        }
    }
}

impl ServerOptions {
    /// asyncio's defaults: backlog 100, `SO_REUSEADDR` on, serving at once, the Unix socket
    /// file removed on close, a 64 KiB reader limit, no TLS.
    ///
    /// ```
    /// let o = loop_net::ServerOptions::new();
    /// assert!(o.get_start_serving() && o.get_cleanup_socket());
    /// ```
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// Address family for the resolver (`AF_UNSPEC` = 0, the default: any).
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().family(loop_net::AF_INET);
    /// ```
    pub fn family(mut self, family: i32) -> ServerOptions {
        self.family = family;
        self
    }

    /// `AI_*` flags for the resolver (`AI_PASSIVE` is always added).
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().flags(loop_net::AI_CANONNAME);
    /// ```
    pub fn flags(mut self, flags: i32) -> ServerOptions {
        self.flags = flags;
        self
    }

    /// `listen()` backlog, and the most connections accepted per readiness event. Default 100.
    ///
    /// ```
    /// assert_eq!(loop_net::ServerOptions::new().backlog(8).get_backlog(), 8);
    /// ```
    pub fn backlog(mut self, backlog: u32) -> ServerOptions {
        self.backlog = backlog;
        self
    }

    /// The backlog set with [`backlog`](ServerOptions::backlog).
    ///
    /// ```
    /// assert_eq!(loop_net::ServerOptions::new().get_backlog(), 100);
    /// ```
    pub fn get_backlog(&self) -> u32 {
        self.backlog
    }

    /// SO_REUSEADDR (TCP). Not set: on, as asyncio on POSIX.
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().reuse_address(false);
    /// ```
    pub fn reuse_address(mut self, reuse: bool) -> ServerOptions {
        self.reuse_address = Some(reuse);
        self
    }

    /// SO_REUSEPORT (TCP): several sockets (of this or other processes) may bind the same port.
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().reuse_port(true);
    /// ```
    pub fn reuse_port(mut self, reuse: bool) -> ServerOptions {
        self.reuse_port = reuse;
        self
    }

    /// SO_KEEPALIVE on the listening sockets (TCP).
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().keep_alive(true);
    /// ```
    pub fn keep_alive(mut self, keep_alive: bool) -> ServerOptions {
        self.keep_alive = keep_alive;
        self
    }

    /// Start accepting before the call returns (default true). With `false`, call
    /// [`Server::start_serving`](crate::Server::start_serving) or
    /// [`Server::serve_forever`](crate::Server::serve_forever) later.
    ///
    /// ```
    /// assert!(!loop_net::ServerOptions::new().start_serving(false).get_start_serving());
    /// ```
    pub fn start_serving(mut self, start: bool) -> ServerOptions {
        self.start_serving = start;
        self
    }

    /// Whether the server starts accepting before the call returns.
    ///
    /// ```
    /// assert!(loop_net::ServerOptions::new().get_start_serving());
    /// ```
    pub fn get_start_serving(&self) -> bool {
        self.start_serving
    }

    /// Unix servers: unlink the socket file on `close()` if it is still the one created
    /// (default true).
    ///
    /// ```
    /// assert!(!loop_net::ServerOptions::new().cleanup_socket(false).get_cleanup_socket());
    /// ```
    pub fn cleanup_socket(mut self, cleanup: bool) -> ServerOptions {
        self.cleanup_socket = cleanup;
        self
    }

    /// Whether a Unix server removes its socket file on `close()`.
    ///
    /// ```
    /// assert!(loop_net::ServerOptions::new().get_cleanup_socket());
    /// ```
    pub fn get_cleanup_socket(&self) -> bool {
        self.cleanup_socket
    }

    /// The buffer limit of each client's `StreamReader` (`start_server` only): 64 KiB by
    /// default.
    ///
    /// ```
    /// assert_eq!(loop_net::ServerOptions::new().limit(1024).get_limit(), 1024);
    /// ```
    pub fn limit(mut self, limit: usize) -> ServerOptions {
        self.limit = limit;
        self
    }

    /// The `StreamReader` buffer limit set with [`limit`](ServerOptions::limit).
    ///
    /// ```
    /// assert_eq!(loop_net::ServerOptions::new().get_limit(), 65536);
    /// ```
    pub fn get_limit(&self) -> usize {
        self.limit
    }

    /// TLS (feature `tls`): the server context; each connection's protocol gets
    /// `connection_made` after its handshake.
    ///
    /// ```no_run
    /// let ctx = loop_tls::SslContext::server()
    ///     .load_cert_chain("server.crt", "server.key")?
    ///     .build()?;
    /// let _o = loop_net::ServerOptions::new().ssl(ctx);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    #[cfg(any(feature = "tls", feature = "tls-ring"))]
    pub fn ssl(mut self, ctx: loop_tls::SslContext) -> ServerOptions {
        self.ssl = Some(ctx);
        self
    }

    /// TLS: how long each handshake may take (default 60 s). Refused without `ssl`.
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().ssl_handshake_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> ServerOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// TLS: how long closing waits for the peer's `close_notify` (default 30 s). Refused
    /// without `ssl`.
    ///
    /// ```
    /// let _o = loop_net::ServerOptions::new().ssl_shutdown_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> ServerOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }
}

/// The hosts a server listens on: one host, several, or none / `""` for every interface.
///
/// ```
/// use loop_net::Hosts;
/// assert_eq!(Hosts::from("127.0.0.1").as_slice(), ["127.0.0.1"]);
/// assert_eq!(Hosts::from(["127.0.0.1", "::1"]).as_slice().len(), 2);
/// assert!(Hosts::any().as_slice().is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts(pub(crate) Vec<String>);

impl Hosts {
    /// No host: every interface (asyncio's `host=None`).
    ///
    /// ```
    /// assert!(loop_net::Hosts::any().as_slice().is_empty());
    /// ```
    pub fn any() -> Hosts {
        Hosts(Vec::new())
    }

    /// The host names.
    ///
    /// ```
    /// assert_eq!(loop_net::Hosts::from("localhost").as_slice(), ["localhost"]);
    /// ```
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl From<&str> for Hosts {
    fn from(h: &str) -> Hosts {
        Hosts(vec![h.to_string()])
    }
}

impl From<String> for Hosts {
    fn from(h: String) -> Hosts {
        Hosts(vec![h])
    }
}

impl From<&[&str]> for Hosts {
    fn from(h: &[&str]) -> Hosts {
        Hosts(h.iter().map(|s| s.to_string()).collect())
    }
}

impl<const N: usize> From<[&str; N]> for Hosts {
    fn from(h: [&str; N]) -> Hosts {
        Hosts(h.iter().map(|s| s.to_string()).collect())
    }
}

impl From<Vec<String>> for Hosts {
    fn from(h: Vec<String>) -> Hosts {
        Hosts(h)
    }
}

impl From<Vec<&str>> for Hosts {
    fn from(h: Vec<&str>) -> Hosts {
        Hosts(h.into_iter().map(str::to_string).collect())
    }
}
