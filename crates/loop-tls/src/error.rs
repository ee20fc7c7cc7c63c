//! The three error types of the crate, split by when they happen.
//!
//! * [`ArgumentError`]: an option was rejected before any connection exists (asyncio's
//!   `ValueError`s from `create_connection` and `SSLProtocol`); the text is asyncio's.
//! * [`ContextError`]: a context or engine could not be built (unreadable or malformed PEM,
//!   no private key, a key that does not match its certificate, an invalid server name).
//! * [`TlsError`]: a live connection failed (certificate not trusted, name mismatch, timeout,
//!   alert from the peer, corrupted record). It converts into the `std::io::Error` that a
//!   protocol's `connection_lost` receives, keeping the kind asyncio's exception class implies.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

/// An option rejected by the argument checks in [`crate::args`]; the text is asyncio's.
///
/// ```
/// let e = loop_tls::args::handshake_timeout(Some(std::time::Duration::ZERO)).unwrap_err();
/// assert_eq!(e.to_string(), "ssl_handshake_timeout should be a positive number, got 0.0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError(pub(crate) String);

impl ArgumentError {
    /// The message, as asyncio words it.
    ///
    /// ```
    /// let e = loop_tls::args::check_ssl_only(false, Some(std::time::Duration::from_secs(1)), None)
    ///     .unwrap_err();
    /// assert_eq!(e.message(), "ssl_handshake_timeout is only meaningful with ssl");
    /// ```
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgumentError {}

impl From<ArgumentError> for io::Error {
    fn from(e: ArgumentError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// A context or an engine could not be built.
///
/// ```
/// use loop_tls::{ContextError, SslContext};
///
/// let err = SslContext::server()
///     .cert_chain_pem(b"not pem at all")
///     .unwrap_err();
/// assert!(matches!(err, ContextError::NoCertificates { .. }));
/// assert!(err.to_string().contains("no certificate"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ContextError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What it was meant to hold ("certificate chain", "private key", ...).
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// PEM text is malformed (a section without its end line, bad base64...).
    Pem {
        /// Where the text came from: a file name, or `<bytes>`.
        origin: String,
        /// What it was meant to hold.
        what: &'static str,
        /// The parser's complaint.
        source: rustls_pki_types::pem::Error,
    },
    /// PEM text holds no certificate.
    NoCertificates {
        /// Where the text came from: a file name, or `<bytes>`.
        origin: String,
    },
    /// PEM text holds no private key (PKCS#8, PKCS#1 or SEC1).
    NoPrivateKey {
        /// Where the text came from: a file name, or `<bytes>`.
        origin: String,
    },
    /// A server context was built without a certificate chain or without a private key.
    MissingCredentials(&'static str),
    /// The private key is not the key of the chain's first certificate.
    KeyMismatch,
    /// rustls rejected the configuration (an unusable key, no protocol versions in common with
    /// the provider...).
    Rustls(rustls::Error),
    /// The OS trust store could not be loaded, or held no usable certificate.
    NativeRoots(String),
    /// `server_hostname` is neither a DNS name nor an IP address.
    InvalidServerHostname(String),
    /// Hostname checking is on but no `server_hostname` was given (asyncio: "check_hostname
    /// requires server_hostname").
    CheckHostnameRequiresServerHostname,
    /// A client context was given where a server one is needed, or the reverse.
    WrongSide {
        /// The side the caller needs: `"server"` or `"client"`.
        needed: &'static str,
    },
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Io { path, what, source } => {
                write!(
                    f,
                    "cannot read the {what} file {}: {source}",
                    path.display()
                )
            }
            ContextError::Pem {
                origin,
                what,
                source,
            } => write!(f, "bad PEM in the {what} from {origin}: {source}"),
            ContextError::NoCertificates { origin } => write!(
                f,
                "no certificate found in {origin}: expected PEM blocks \
                 '-----BEGIN CERTIFICATE-----'"
            ),
            ContextError::NoPrivateKey { origin } => write!(
                f,
                "no private key found in {origin}: expected a PEM block 'BEGIN PRIVATE KEY', \
                 'BEGIN RSA PRIVATE KEY' or 'BEGIN EC PRIVATE KEY'"
            ),
            ContextError::MissingCredentials(what) => write!(
                f,
                "a server context needs a {what}: call load_cert_chain or cert_chain_pem and \
                 private_key_pem before build"
            ),
            ContextError::KeyMismatch => f.write_str(
                "the private key does not match the certificate: the first certificate of the \
                 chain must be the one issued for this key",
            ),
            ContextError::Rustls(e) => write!(f, "invalid TLS configuration: {e}"),
            ContextError::NativeRoots(m) => write!(f, "cannot load the OS trust store: {m}"),
            ContextError::InvalidServerHostname(h) => write!(
                f,
                "server_hostname {h:?} is neither a DNS name nor an IP address"
            ),
            ContextError::CheckHostnameRequiresServerHostname => f.write_str(
                "check_hostname requires server_hostname: pass the server's name, or switch \
                 hostname checking off with ClientContextBuilder::check_hostname(false)",
            ),
            ContextError::WrongSide { needed: "server" } => {
                f.write_str("Server side SSL needs a valid SSLContext: give a server context")
            }
            ContextError::WrongSide { needed } => {
                write!(f, "this connection needs a {needed} context")
            }
        }
    }
}

impl std::error::Error for ContextError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ContextError::Io { source, .. } => Some(source),
            ContextError::Pem { source, .. } => Some(source),
            ContextError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rustls::Error> for ContextError {
    fn from(e: rustls::Error) -> ContextError {
        match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                ContextError::KeyMismatch
            }
            e => ContextError::Rustls(e),
        }
    }
}

impl From<ContextError> for io::Error {
    fn from(e: ContextError) -> io::Error {
        let kind = match &e {
            ContextError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// A TLS connection failed.
///
/// [`TlsError::is_certificate_error`] tells the two messages asyncio logs apart ("SSL handshake
/// failed on verifying the certificate" / "SSL handshake failed").
///
/// ```
/// use std::time::Duration;
/// use loop_tls::TlsError;
///
/// let e = TlsError::HandshakeTimeout(Duration::from_secs(60));
/// assert_eq!(
///     e.to_string(),
///     "SSL handshake is taking longer than 60.0 seconds: aborting the connection"
/// );
/// assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::ConnectionAborted);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate chain does not lead to a trusted root (unknown CA).
    UnknownIssuer,
    /// The certificate is valid, but not for the name that was asked for.
    NameMismatch {
        /// The `server_hostname` the certificate was checked against.
        expected: String,
        /// The names the certificate holds, when rustls reports them.
        presented: Vec<String>,
    },
    /// Any other certificate problem (expired, not yet valid, revoked, wrong usage, bad
    /// signature...).
    Certificate(CertificateError),
    /// The handshake did not finish within the handshake timeout.
    HandshakeTimeout(Duration),
    /// The closing handshake did not finish within the shutdown timeout.
    ShutdownTimeout,
    /// The peer ended the connection with a fatal alert.
    PeerAlert(AlertDescription),
    /// A record could not be decrypted or parsed: the stream was corrupted or tampered with.
    CorruptedRecord(String),
    /// The transport reached end of file before the handshake finished.
    HandshakeEof,
    /// Data was written after the connection began closing; it was dropped.
    WriteAfterClose,
    /// A call that the engine's state does not allow (starting the handshake twice).
    InvalidState(&'static str),
    /// Any other TLS protocol failure (no protocol version or cipher in common, no ALPN
    /// protocol in common, a peer breaking the protocol...).
    Protocol(rustls::Error),
}

impl TlsError {
    /// Whether the failure was the peer's certificate (asyncio's `ssl.CertificateError`).
    ///
    /// ```
    /// assert!(loop_tls::TlsError::UnknownIssuer.is_certificate_error());
    /// assert!(!loop_tls::TlsError::ShutdownTimeout.is_certificate_error());
    /// ```
    pub fn is_certificate_error(&self) -> bool {
        matches!(
            self,
            TlsError::UnknownIssuer | TlsError::NameMismatch { .. } | TlsError::Certificate(_)
        )
    }

    /// The message asyncio gives the exception handler for a failed handshake.
    ///
    /// ```
    /// assert_eq!(
    ///     loop_tls::TlsError::UnknownIssuer.handshake_failure_message(),
    ///     "SSL handshake failed on verifying the certificate"
    /// );
    /// ```
    pub fn handshake_failure_message(&self) -> &'static str {
        if self.is_certificate_error() {
            "SSL handshake failed on verifying the certificate"
        } else {
            "SSL handshake failed"
        }
    }

    /// Maps a rustls error, naming `server_hostname` for a name mismatch.
    pub(crate) fn from_rustls(e: rustls::Error, server_hostname: Option<&str>) -> TlsError {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(CertificateError::UnknownIssuer) => TlsError::UnknownIssuer,
            E::InvalidCertificate(CertificateError::NotValidForName) => TlsError::NameMismatch {
                expected: server_hostname.unwrap_or_default().to_owned(),
                presented: Vec::new(),
            },
            E::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected,
                presented,
            }) => TlsError::NameMismatch {
                expected: server_hostname
                    .map(str::to_owned)
                    .unwrap_or_else(|| expected.to_str().into_owned()),
                presented,
            },
            E::InvalidCertificate(c) => TlsError::Certificate(c),
            E::AlertReceived(a) => TlsError::PeerAlert(a),
            E::DecryptError => TlsError::CorruptedRecord(
                "a record failed authentication (bad record MAC): the data was corrupted or \
                 tampered with"
                    .into(),
            ),
            E::InvalidMessage(m) => TlsError::CorruptedRecord(format!("malformed record: {m:?}")),
            e => TlsError::Protocol(e),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::UnknownIssuer => f.write_str(
                "certificate verify failed: the peer's certificate is not signed by a trusted \
                 certificate authority (unknown CA); add its issuer to the context's root \
                 certificates",
            ),
            TlsError::NameMismatch {
                expected,
                presented,
            } => {
                write!(
                    f,
                    "certificate verify failed: the certificate is not valid for {expected:?}"
                )?;
                if !presented.is_empty() {
                    write!(f, " (it names {})", presented.join(", "))?;
                }
                Ok(())
            }
            TlsError::Certificate(c) => write!(f, "certificate verify failed: {c}"),
            TlsError::HandshakeTimeout(t) => write!(
                f,
                "SSL handshake is taking longer than {:?} seconds: aborting the connection",
                t.as_secs_f64()
            ),
            TlsError::ShutdownTimeout => f.write_str("SSL shutdown timed out"),
            TlsError::PeerAlert(a) => write!(f, "the peer sent the fatal TLS alert {a:?}"),
            TlsError::CorruptedRecord(m) => write!(f, "corrupted TLS record: {m}"),
            TlsError::HandshakeEof => {
                f.write_str("the connection was closed by the peer during the TLS handshake")
            }
            TlsError::WriteAfterClose => {
                f.write_str("SSL connection is closed: data written after close was dropped")
            }
            TlsError::InvalidState(m) => f.write_str(m),
            TlsError::Protocol(e) => write!(f, "TLS protocol error: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TlsError> for io::Error {
    /// The kind follows asyncio's exception class: `ConnectionAbortedError` for the handshake
    /// timeout, `TimeoutError` for the shutdown timeout, `ConnectionResetError` for end of file
    /// during the handshake, `InvalidData` for the `ssl.SSLError` family.
    fn from(e: TlsError) -> io::Error {
        let kind = match e {
            TlsError::HandshakeTimeout(_) => io::ErrorKind::ConnectionAborted,
            TlsError::ShutdownTimeout => io::ErrorKind::TimedOut,
            TlsError::HandshakeEof => io::ErrorKind::ConnectionReset,
            TlsError::WriteAfterClose => io::ErrorKind::BrokenPipe,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
