//! The TLS keys of `get_extra_info` (asyncio's `sslcontext`, `ssl_object`, `peercert`,
//! `cipher`, `compression`) and [`TlsInfo`], the typed snapshot behind `ssl_object`.

use std::rc::Rc;

use loop_transport::engine::Core;
use loop_transport::ExtraValue;
use rustls::pki_types::CertificateDer;

use super::state::Tls;
use crate::context::{SslContext, TlsVersion};

/// What a TLS connection negotiated, as asyncio's `ssl_object` tells it: the peer's
/// certificate chain, the cipher suite, the protocol version, the ALPN protocol, the names.
/// [`tls_info`](super::tls_info) takes it from a transport; `get_extra_info(Extra::Custom("ssl_object"))`
/// gives it as a value.
///
/// ```
/// let ctx = loop_tls::SslContext::client().build()?;
/// let info = loop_tls::TlsInfo::empty(&ctx);
/// assert!(info.cipher.is_none() && info.peer_certificates.is_empty());
/// # Ok::<(), loop_tls::ContextError>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsInfo {
    /// Whether this end is the server.
    pub server_side: bool,
    /// The name a client checked the certificate against (and sent as SNI).
    pub server_hostname: Option<String>,
    /// The SNI name a server received.
    pub sni: Option<String>,
    /// The peer's certificate chain, leaf first (DER); empty before the handshake, or when a
    /// client sent none.
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The negotiated cipher suite (IANA name, `TLS13_AES_256_GCM_SHA384`).
    pub cipher: Option<&'static str>,
    /// The negotiated protocol version.
    pub version: Option<TlsVersion>,
    /// The negotiated ALPN protocol.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The context the connection was made with (asyncio's `sslcontext`).
    pub context: SslContext,
    /// The peer's `close_notify` arrived (so far): its end of file was a clean TLS close.
    pub close_notify_received: bool,
}

impl TlsInfo {
    /// Nothing negotiated yet, for `ctx`.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(!loop_tls::TlsInfo::empty(&ctx).server_side);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn empty(ctx: &SslContext) -> TlsInfo {
        TlsInfo {
            server_side: ctx.is_server(),
            server_hostname: None,
            sni: None,
            peer_certificates: Vec::new(),
            cipher: None,
            version: None,
            alpn_protocol: None,
            context: ctx.clone(),
            close_notify_received: false,
        }
    }

    /// The peer's leaf certificate (DER), asyncio's `peercert` in binary form.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(loop_tls::TlsInfo::empty(&ctx).peer_certificate().is_none());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificates.first()
    }
}

/// The snapshot of a TLS transport.
pub(crate) fn snapshot(core: &Core<Tls>) -> TlsInfo {
    let e = core.driver.engine.borrow();
    TlsInfo {
        server_side: e.is_server_side(),
        server_hostname: e.server_hostname().map(str::to_owned),
        sni: e.sni_name().map(str::to_owned),
        peer_certificates: e
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default(),
        cipher: e.cipher_suite(),
        version: e.protocol_version(),
        alpn_protocol: e.alpn_protocol().map(<[u8]>::to_vec),
        context: core.driver.ctx.clone(),
        close_notify_received: e.close_notify_received(),
    }
}

/// The answer to one key.
pub(crate) enum Answer {
    /// A TLS key with a value.
    Value(ExtraValue),
    /// A TLS key without a value (yet).
    None,
    /// Not a TLS key: ask the transport underneath.
    NotTls,
}

/// `get_extra_info` for the TLS keys.
pub(crate) fn extra(core: &Core<Tls>, name: &str) -> Answer {
    let value = |v: Rc<dyn std::any::Any>| Answer::Value(ExtraValue::Value(v));
    match name {
        "sslcontext" => value(Rc::new(core.driver.ctx.clone())),
        "ssl_object" => value(Rc::new(snapshot(core))),
        "peercert" => match snapshot(core).peer_certificates.into_iter().next() {
            Some(c) => value(Rc::new(c)),
            None => Answer::None,
        },
        "cipher" => match core.driver.engine.borrow().cipher_suite() {
            Some(c) => value(Rc::new(c)),
            None => Answer::None,
        },
        "compression" => Answer::None,
        _ => Answer::NotTls,
    }
}
