//! [`SslContext`]: what asyncio's `ssl.SSLContext` is to a connection — which side, which
//! roots are trusted, which certificate is shown, which ALPN protocols are offered, whether the
//! server's name is checked.
//!
//! A context is built once and shared by every connection (it is a cheap `Clone` over
//! `Arc`ed rustls configs). Every config is built with an explicit `CryptoProvider` (the one of
//! the crate's enabled provider feature, or the one given to the builder), never through
//! rustls's process-wide default, so two providers in one program cannot make rustls panic.
//!
//! A client context with hostname checking off holds two more configs whose verifier checks the
//! chain but not the name: one sends SNI (a name was given), one sends none and never resumes
//! a session (no name: nothing to key a session cache on).

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::ContextError;

/// A TLS protocol version (Python's `ssl.TLSVersion`, the two rustls speaks).
///
/// ```
/// use loop_tls::TlsVersion;
/// assert_eq!(TlsVersion::Tls13.to_string(), "TLSv1.3");
/// assert!(TlsVersion::Tls12 < TlsVersion::Tls13);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    /// As Python's `SSLObject.version()` names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

/// The TLS configuration of connections: a client or a server side.
///
/// ```
/// use loop_tls::SslContext;
///
/// // asyncio's `ssl=True`: the OS trust store, hostname checked.
/// let ctx = SslContext::default_client("example.com")?;
/// assert!(!ctx.is_server());
/// assert!(ctx.check_hostname());
/// # Ok::<(), loop_tls::ContextError>(())
/// ```
#[derive(Clone)]
pub struct SslContext {
    side: Side,
}

#[derive(Clone)]
enum Side {
    Client(Arc<ClientSide>),
    Server(Arc<ServerConfig>),
}

struct ClientSide {
    /// Name checked, SNI sent.
    checked: Arc<ClientConfig>,
    /// With hostname checking off: chain only, SNI sent / no SNI and no resumption.
    unchecked: Option<(Arc<ClientConfig>, Arc<ClientConfig>)>,
}

impl std::fmt::Debug for SslContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslContext")
            .field("server_side", &self.is_server())
            .field("check_hostname", &self.check_hostname())
            .finish_non_exhaustive()
    }
}

impl SslContext {
    /// asyncio's default client context (`ssl=True`): the OS trust store, and hostname checking
    /// on unless `server_hostname` is empty.
    ///
    /// # Errors
    ///
    /// [`ContextError::NativeRoots`] when the OS trust store cannot be read or is empty.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::default_client("")?;
    /// assert!(!ctx.check_hostname());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn default_client(server_hostname: &str) -> Result<SslContext, ContextError> {
        SslContext::client()
            .check_hostname(!server_hostname.is_empty())
            .build()
    }

    /// A client context over a ready rustls config. Its verifier decides everything, so the
    /// hostname is always passed to it and an empty `server_hostname` is refused.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let config = rustls::ClientConfig::builder_with_provider(loop_tls::default_provider())
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(rustls::RootCertStore::empty())
    ///     .with_no_client_auth();
    /// let ctx = loop_tls::SslContext::from_client_config(Arc::new(config));
    /// assert!(ctx.client_config().is_some());
    /// # Ok::<(), rustls::Error>(())
    /// ```
    pub fn from_client_config(config: Arc<ClientConfig>) -> SslContext {
        SslContext {
            side: Side::Client(Arc::new(ClientSide {
                checked: config,
                unchecked: None,
            })),
        }
    }

    /// A server context over a ready rustls config.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let resolver = Arc::new(rustls::server::ResolvesServerCertUsingSni::new());
    /// let config = rustls::ServerConfig::builder_with_provider(loop_tls::default_provider())
    ///     .with_safe_default_protocol_versions()?
    ///     .with_no_client_auth()
    ///     .with_cert_resolver(resolver);
    /// let ctx = loop_tls::SslContext::from_server_config(Arc::new(config));
    /// assert!(ctx.is_server());
    /// # Ok::<(), rustls::Error>(())
    /// ```
    pub fn from_server_config(config: Arc<ServerConfig>) -> SslContext {
        SslContext {
            side: Side::Server(config),
        }
    }

    /// Whether this is a server context.
    ///
    /// ```
    /// assert!(!loop_tls::SslContext::default_client("example.com")?.is_server());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn is_server(&self) -> bool {
        matches!(self.side, Side::Server(_))
    }

    /// Whether a client checks the server's name (asyncio's `check_hostname`); `false` for a
    /// server context.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().check_hostname(false).build()?;
    /// assert!(!ctx.check_hostname());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn check_hostname(&self) -> bool {
        match &self.side {
            Side::Client(c) => c.unchecked.is_none(),
            Side::Server(_) => false,
        }
    }

    /// The client config (the name-checking one), or `None` for a server context.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().alpn_protocols(["h2"]).build()?;
    /// assert_eq!(ctx.client_config().unwrap().alpn_protocols, vec![b"h2".to_vec()]);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn client_config(&self) -> Option<&Arc<ClientConfig>> {
        match &self.side {
            Side::Client(c) => Some(&c.checked),
            Side::Server(_) => None,
        }
    }

    /// The server config, or `None` for a client context.
    ///
    /// ```
    /// assert!(loop_tls::SslContext::default_client("example.com")?.server_config().is_none());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn server_config(&self) -> Option<&Arc<ServerConfig>> {
        match &self.side {
            Side::Server(s) => Some(s),
            Side::Client(_) => None,
        }
    }

    /// A client context from its configs (the builder's output).
    pub(crate) fn from_client_parts(
        checked: Arc<ClientConfig>,
        unchecked: Option<(Arc<ClientConfig>, Arc<ClientConfig>)>,
    ) -> SslContext {
        SslContext {
            side: Side::Client(Arc::new(ClientSide { checked, unchecked })),
        }
    }

    /// The config and name for a client connection to `server_hostname` (empty: none).
    pub(crate) fn client_for(
        &self,
        server_hostname: &str,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), ContextError> {
        let Side::Client(c) = &self.side else {
            return Err(ContextError::WrongSide { needed: "client" });
        };
        if server_hostname.is_empty() {
            let Some((_, no_sni)) = &c.unchecked else {
                return Err(ContextError::CheckHostnameRequiresServerHostname);
            };
            // Never sent (SNI is off) nor checked: only a key rustls needs.
            let name = ServerName::try_from("unnamed.invalid").expect("a valid DNS name");
            return Ok((no_sni.clone(), name));
        }
        let name = ServerName::try_from(server_hostname.to_owned())
            .map_err(|_| ContextError::InvalidServerHostname(server_hostname.to_owned()))?;
        let config = match &c.unchecked {
            Some((sni, _)) => sni.clone(),
            None => c.checked.clone(),
        };
        Ok((config, name))
    }
}

/// The crypto provider of the enabled provider feature: aws-lc-rs by default, ring with the
/// `ring` feature alone.
///
/// ```
/// let provider = loop_tls::default_provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
pub fn default_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// The OS trust store, read once per process.
pub(crate) fn native_roots() -> Result<Arc<RootCertStore>, ContextError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "no usable certificate found{}{}; give root certificates to the context \
                     instead",
                    if errors.is_empty() { "" } else { ": " },
                    errors.join("; ")
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
        .map_err(ContextError::NativeRoots)
}
