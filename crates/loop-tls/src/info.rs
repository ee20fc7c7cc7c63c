//! What asyncio exposes through `get_extra_info` once the handshake is done (`peercert`,
//! `cipher`, `ssl_object`...): the peer's certificates, the negotiated cipher suite, protocol
//! version and ALPN protocol, the SNI name a server received. Each is `None` before the
//! handshake has got that far.

use rustls::pki_types::CertificateDer;
use rustls::{Connection, ProtocolVersion};

use crate::context::TlsVersion;
use crate::engine::TlsEngine;

impl TlsEngine {
    /// Whether this is the server side of the connection.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(!loop_tls::TlsEngine::client(&ctx, "example.com")?.is_server_side());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn is_server_side(&self) -> bool {
        matches!(self.conn, Connection::Server(_))
    }

    /// The name a client checks and sends (`None` for an empty one, and on a server).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "127.0.0.1")?;
    /// assert_eq!(engine.server_hostname(), Some("127.0.0.1"));
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn server_hostname(&self) -> Option<&str> {
        self.server_hostname.as_deref()
    }

    /// The SNI name the client sent (server side; `None` on a client or without SNI).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert_eq!(loop_tls::TlsEngine::client(&ctx, "example.com")?.sni_name(), None);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn sni_name(&self) -> Option<&str> {
        match &self.conn {
            Connection::Server(s) => s.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// The peer's certificate chain as DER, its own certificate first (asyncio's `peercert`,
    /// undecoded). A server sees one only if it asked for client certificates.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(loop_tls::TlsEngine::client(&ctx, "example.com")?.peer_certificates().is_none());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The negotiated cipher suite's name, e.g. `TLS13_AES_256_GCM_SHA384` (asyncio's
    /// `cipher`).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(loop_tls::TlsEngine::client(&ctx, "example.com")?.cipher_suite().is_none());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn cipher_suite(&self) -> Option<&'static str> {
        self.conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
    }

    /// The negotiated protocol version (`SSLObject.version()`).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(loop_tls::TlsEngine::client(&ctx, "example.com")?.protocol_version().is_none());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn protocol_version(&self) -> Option<TlsVersion> {
        match self.conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            _ => None,
        }
    }

    /// The ALPN protocol both sides agreed on (`SSLObject.selected_alpn_protocol()`).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().alpn_protocols(["h2"]).build()?;
    /// assert!(loop_tls::TlsEngine::client(&ctx, "example.com")?.alpn_protocol().is_none());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Whether the peer's `close_notify` arrived (a clean TLS close rather than a bare end
    /// of file).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert!(!engine.close_notify_received());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn close_notify_received(&self) -> bool {
        self.close_notify_received
    }

    /// The rustls connection itself (asyncio's `ssl_object`), for what the accessors above do
    /// not cover.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert!(engine.connection().is_handshaking());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
