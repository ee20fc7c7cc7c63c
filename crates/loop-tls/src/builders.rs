//! The builders of [`SslContext`]: a client's trust (the OS store or given roots), a server's
//! certificate chain and key (PEM files, PEM text or DER), and what both share: ALPN, protocol
//! versions, the crypto provider.
//!
//! Loading methods return `Result` at once, so a bad file is reported by the call that named
//! it; `build` reports what only the whole set can tell (a key that is not the certificate's).

use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::context::{default_provider, native_roots, SslContext, TlsVersion};
use crate::error::ContextError;
use crate::pem;
use crate::verify::ChainOnlyVerifier;

/// The options both builders share.
#[derive(Default)]
struct Common {
    alpn: Vec<Vec<u8>>,
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
    provider: Option<Arc<CryptoProvider>>,
}

impl Common {
    fn provider(&self) -> Arc<CryptoProvider> {
        self.provider.clone().unwrap_or_else(default_provider)
    }

    fn versions(&self) -> Result<Vec<&'static SupportedProtocolVersion>, ContextError> {
        let min = self.min.unwrap_or(TlsVersion::Tls12);
        let max = self.max.unwrap_or(TlsVersion::Tls13);
        let mut v = Vec::new();
        if min <= TlsVersion::Tls13 && TlsVersion::Tls13 <= max {
            v.push(&rustls::version::TLS13);
        }
        if min <= TlsVersion::Tls12 && TlsVersion::Tls12 <= max {
            v.push(&rustls::version::TLS12);
        }
        if v.is_empty() {
            return Err(ContextError::Rustls(rustls::Error::General(format!(
                "minimum_version {min} is above maximum_version {max}"
            ))));
        }
        Ok(v)
    }
}

fn alpn_list<I, P>(protocols: I) -> Vec<Vec<u8>>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    protocols.into_iter().map(|p| p.as_ref().to_vec()).collect()
}

/// Builds a client [`SslContext`] (from [`SslContext::client`]).
///
/// ```
/// let ca_pem = std::fs::read("ca.pem");
/// # let ca_pem: std::io::Result<Vec<u8>> = Err(std::io::ErrorKind::NotFound.into());
/// let mut builder = loop_tls::SslContext::client().alpn_protocols(["http/1.1"]);
/// if let Ok(pem) = ca_pem {
///     builder = builder.root_certificates_pem(&pem)?; // trust this CA instead of the OS store
/// }
/// let ctx = builder.build()?;
/// # Ok::<(), loop_tls::ContextError>(())
/// ```
#[derive(Default)]
pub struct ClientContextBuilder {
    common: Common,
    roots: Option<RootCertStore>,
    no_hostname_check: bool,
}

impl ClientContextBuilder {
    /// Trusts these DER certificates (instead of the OS store); may be called more than once.
    ///
    /// # Errors
    ///
    /// [`ContextError::Rustls`] for a certificate that cannot be a trust anchor.
    ///
    /// ```
    /// let err = loop_tls::SslContext::client()
    ///     .root_certificates_der([rustls::pki_types::CertificateDer::from(vec![1, 2, 3])])
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("invalid TLS configuration"));
    /// ```
    pub fn root_certificates_der<I>(mut self, certs: I) -> Result<Self, ContextError>
    where
        I: IntoIterator<Item = CertificateDer<'static>>,
    {
        let roots = self.roots.get_or_insert_with(RootCertStore::empty);
        for cert in certs {
            roots.add(cert)?;
        }
        Ok(self)
    }

    /// Trusts the certificates of this PEM text (asyncio's `cadata`).
    ///
    /// # Errors
    ///
    /// [`ContextError::Pem`] for malformed PEM, [`ContextError::NoCertificates`] when it holds
    /// none, [`ContextError::Rustls`] for one that cannot be a trust anchor.
    ///
    /// ```
    /// let err = loop_tls::SslContext::client().root_certificates_pem(b"").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "no certificate found in <bytes>: expected PEM blocks '-----BEGIN CERTIFICATE-----'"
    /// );
    /// ```
    pub fn root_certificates_pem(self, pem: &[u8]) -> Result<Self, ContextError> {
        let certs = pem::certificates(pem, "<bytes>", "root certificates")?;
        self.root_certificates_der(certs)
    }

    /// Trusts the certificates of this PEM file (asyncio's `cafile`).
    ///
    /// # Errors
    ///
    /// [`ContextError::Io`] naming the file, then as [`Self::root_certificates_pem`].
    ///
    /// ```
    /// let err = loop_tls::SslContext::client().root_certificates_pem_file("/no/such/ca.pem").unwrap_err();
    /// assert!(err.to_string().starts_with("cannot read the root certificates file /no/such/ca.pem"));
    /// ```
    pub fn root_certificates_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ContextError> {
        let (text, origin) = pem::read_file(path.as_ref(), "root certificates")?;
        let certs = pem::certificates(&text, &origin, "root certificates")?;
        self.root_certificates_der(certs)
    }

    /// The ALPN protocols to offer, most preferred first.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().alpn_protocols(["h2", "http/1.1"]).build()?;
    /// assert_eq!(ctx.client_config().unwrap().alpn_protocols.len(), 2);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.common.alpn = alpn_list(protocols);
        self
    }

    /// Whether the server's certificate must name `server_hostname` (on by default). Off, the
    /// chain and signatures are still verified, and an empty `server_hostname` is allowed.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().check_hostname(false).build()?;
    /// assert!(!ctx.check_hostname());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn check_hostname(mut self, check: bool) -> Self {
        self.no_hostname_check = !check;
        self
    }

    /// The lowest protocol version to accept (TLS 1.2 by default).
    ///
    /// ```
    /// use loop_tls::{SslContext, TlsVersion};
    /// let ctx = SslContext::client().minimum_version(TlsVersion::Tls13).build()?;
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn minimum_version(mut self, version: TlsVersion) -> Self {
        self.common.min = Some(version);
        self
    }

    /// The highest protocol version to offer (TLS 1.3 by default).
    ///
    /// ```
    /// use loop_tls::{SslContext, TlsVersion};
    /// let ctx = SslContext::client().maximum_version(TlsVersion::Tls12).build()?;
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn maximum_version(mut self, version: TlsVersion) -> Self {
        self.common.max = Some(version);
        self
    }

    /// The crypto provider to build the configs with, instead of [`default_provider`].
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client()
    ///     .crypto_provider(loop_tls::default_provider())
    ///     .build()?;
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.common.provider = Some(provider);
        self
    }

    /// Builds the context.
    ///
    /// # Errors
    ///
    /// [`ContextError::NativeRoots`] without root certificates when the OS store is unusable;
    /// [`ContextError::Rustls`] when the provider supports none of the protocol versions.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(ctx.check_hostname());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn build(self) -> Result<SslContext, ContextError> {
        let provider = self.common.provider();
        let versions = self.common.versions()?;
        let roots = match self.roots {
            Some(r) => Arc::new(r),
            None => native_roots()?,
        };
        let base = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let mut checked = base
            .clone()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        checked.alpn_protocols = self.common.alpn;
        let unchecked = if self.no_hostname_check {
            let verifier = ChainOnlyVerifier::new(roots, &provider)
                .map_err(|e| ContextError::Rustls(rustls::Error::General(e.to_string())))?;
            let mut sni = base
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            sni.alpn_protocols = checked.alpn_protocols.clone();
            let mut no_sni = sni.clone();
            no_sni.enable_sni = false;
            no_sni.resumption = Resumption::disabled();
            Some((Arc::new(sni), Arc::new(no_sni)))
        } else {
            None
        };
        Ok(SslContext::from_client_parts(Arc::new(checked), unchecked))
    }
}

impl std::fmt::Debug for ClientContextBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientContextBuilder")
            .field("root_certificates", &self.roots.as_ref().map(|r| r.len()))
            .field("check_hostname", &!self.no_hostname_check)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServerContextBuilder {
    /// Shows whether the credentials are set, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContextBuilder")
            .field("cert_chain", &self.chain.as_ref().map(|c| c.len()))
            .field("private_key", &self.key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// Builds a server [`SslContext`] (from [`SslContext::server`]).
///
/// ```no_run
/// let ctx = loop_tls::SslContext::server()
///     .cert_chain_pem(&std::fs::read("chain.pem")?)?
///     .private_key_pem(&std::fs::read("key.pem")?)?
///     .alpn_protocols(["h2", "http/1.1"])
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct ServerContextBuilder {
    common: Common,
    chain: Option<Vec<CertificateDer<'static>>>,
    key: Option<PrivateKeyDer<'static>>,
}

impl ServerContextBuilder {
    /// asyncio's `load_cert_chain(certfile, keyfile)`: the PEM chain (the server's certificate
    /// first) and the PEM private key, from files (they may be the same file).
    ///
    /// # Errors
    ///
    /// [`ContextError::Io`], [`ContextError::Pem`], [`ContextError::NoCertificates`] or
    /// [`ContextError::NoPrivateKey`], each naming the file.
    ///
    /// ```
    /// let err = loop_tls::SslContext::server()
    ///     .load_cert_chain("/no/such/cert.pem", "/no/such/key.pem")
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("/no/such/cert.pem"));
    /// ```
    pub fn load_cert_chain(
        self,
        certfile: impl AsRef<Path>,
        keyfile: impl AsRef<Path>,
    ) -> Result<Self, ContextError> {
        self.cert_chain_pem_file(certfile)?
            .private_key_pem_file(keyfile)
    }

    /// The certificate chain from a PEM file, the server's certificate first.
    ///
    /// # Errors
    ///
    /// As [`Self::load_cert_chain`].
    ///
    /// ```
    /// let err = loop_tls::SslContext::server().cert_chain_pem_file("/no/such/cert.pem").unwrap_err();
    /// assert!(matches!(err, loop_tls::ContextError::Io { .. }));
    /// ```
    pub fn cert_chain_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ContextError> {
        let (text, origin) = pem::read_file(path.as_ref(), "certificate chain")?;
        let chain = pem::certificates(&text, &origin, "certificate chain")?;
        Ok(self.cert_chain_der(chain))
    }

    /// The private key from a PEM file (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// As [`Self::load_cert_chain`].
    ///
    /// ```
    /// let err = loop_tls::SslContext::server().private_key_pem_file("/no/such/key.pem").unwrap_err();
    /// assert!(err.to_string().starts_with("cannot read the private key file"));
    /// ```
    pub fn private_key_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ContextError> {
        let (text, origin) = pem::read_file(path.as_ref(), "private key")?;
        let key = pem::private_key(&text, &origin)?;
        Ok(self.private_key_der(key))
    }

    /// The certificate chain from PEM text, the server's certificate first.
    ///
    /// # Errors
    ///
    /// [`ContextError::Pem`] or [`ContextError::NoCertificates`].
    ///
    /// ```
    /// let err = loop_tls::SslContext::server().cert_chain_pem(b"hello").unwrap_err();
    /// assert!(matches!(err, loop_tls::ContextError::NoCertificates { .. }));
    /// ```
    pub fn cert_chain_pem(self, pem: &[u8]) -> Result<Self, ContextError> {
        let chain = pem::certificates(pem, "<bytes>", "certificate chain")?;
        Ok(self.cert_chain_der(chain))
    }

    /// The private key from PEM text (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// [`ContextError::Pem`] or [`ContextError::NoPrivateKey`].
    ///
    /// ```
    /// let err = loop_tls::SslContext::server().private_key_pem(b"").unwrap_err();
    /// assert!(err.to_string().starts_with("no private key found in <bytes>"));
    /// ```
    pub fn private_key_pem(self, pem: &[u8]) -> Result<Self, ContextError> {
        let key = pem::private_key(pem, "<bytes>")?;
        Ok(self.private_key_der(key))
    }

    /// The certificate chain as DER, the server's certificate first.
    ///
    /// ```
    /// let b = loop_tls::SslContext::server().cert_chain_der(Vec::new());
    /// assert!(b.build().is_err()); // an empty chain, and no key
    /// ```
    pub fn cert_chain_der(mut self, chain: Vec<CertificateDer<'static>>) -> Self {
        self.chain = Some(chain);
        self
    }

    /// The private key as DER.
    ///
    /// ```
    /// use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    /// let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0u8; 4]));
    /// let b = loop_tls::SslContext::server().private_key_der(key);
    /// assert!(b.build().is_err()); // no chain
    /// ```
    pub fn private_key_der(mut self, key: PrivateKeyDer<'static>) -> Self {
        self.key = Some(key);
        self
    }

    /// The ALPN protocols to accept, most preferred first.
    ///
    /// ```
    /// let b = loop_tls::SslContext::server().alpn_protocols(["h2"]);
    /// ```
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.common.alpn = alpn_list(protocols);
        self
    }

    /// The lowest protocol version to accept (TLS 1.2 by default).
    ///
    /// ```
    /// let b = loop_tls::SslContext::server().minimum_version(loop_tls::TlsVersion::Tls13);
    /// ```
    pub fn minimum_version(mut self, version: TlsVersion) -> Self {
        self.common.min = Some(version);
        self
    }

    /// The highest protocol version to accept (TLS 1.3 by default).
    ///
    /// ```
    /// let b = loop_tls::SslContext::server().maximum_version(loop_tls::TlsVersion::Tls12);
    /// ```
    pub fn maximum_version(mut self, version: TlsVersion) -> Self {
        self.common.max = Some(version);
        self
    }

    /// The crypto provider to build the config with, instead of [`default_provider`].
    ///
    /// ```
    /// let b = loop_tls::SslContext::server().crypto_provider(loop_tls::default_provider());
    /// ```
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.common.provider = Some(provider);
        self
    }

    /// Builds the context.
    ///
    /// # Errors
    ///
    /// [`ContextError::MissingCredentials`] without a chain or key,
    /// [`ContextError::KeyMismatch`] when the key is not the certificate's,
    /// [`ContextError::Rustls`] for a key the provider cannot load.
    ///
    /// ```
    /// let err = loop_tls::SslContext::server().build().unwrap_err();
    /// assert!(matches!(err, loop_tls::ContextError::MissingCredentials("certificate chain")));
    /// ```
    pub fn build(self) -> Result<SslContext, ContextError> {
        let chain = match self.chain {
            Some(c) if !c.is_empty() => c,
            _ => return Err(ContextError::MissingCredentials("certificate chain")),
        };
        let key = self
            .key
            .ok_or(ContextError::MissingCredentials("private key"))?;
        let mut config = ServerConfig::builder_with_provider(self.common.provider())
            .with_protocol_versions(&self.common.versions()?)?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = self.common.alpn;
        Ok(SslContext::from_server_config(Arc::new(config)))
    }
}

/// The builders are reached from the context type (`SslContext::client()`, `::server()`).
impl SslContext {
    /// A builder for a client context; without root certificates it trusts the OS store.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client()
    ///     .alpn_protocols(["h2", "http/1.1"])
    ///     .build()?;
    /// assert!(!ctx.is_server());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn client() -> ClientContextBuilder {
        ClientContextBuilder::default()
    }

    /// A builder for a server context; it needs a certificate chain and its private key.
    ///
    /// ```no_run
    /// let ctx = loop_tls::SslContext::server()
    ///     .load_cert_chain("server.crt", "server.key")?
    ///     .build()?;
    /// assert!(ctx.is_server());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn server() -> ServerContextBuilder {
        ServerContextBuilder::default()
    }
}
