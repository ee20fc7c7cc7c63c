//! The server-certificate verifier used when hostname checking is off.
//!
//! asyncio connects with `check_hostname = False` when the default context is used with an
//! empty `server_hostname`: the chain must still lead to a trusted root, signatures are still
//! checked, only the name is not compared. rustls has no switch for that, so
//! [`ChainOnlyVerifier`] verifies the chain itself with rustls's public
//! `verify_server_cert_signed_by_trust_anchor` (trust anchors, intermediates, validity dates,
//! the server-auth key usage, every signature on the path) and leaves the handshake signatures
//! and the scheme list to the [`WebPkiServerVerifier`] built over the same roots. Nothing that
//! the normal verifier rejects for a reason other than the name is accepted here.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// Verifies the chain and signatures of the server's certificate, not its name.
#[derive(Debug)]
pub(crate) struct ChainOnlyVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    signatures: Arc<WebPkiServerVerifier>,
}

impl ChainOnlyVerifier {
    /// A verifier over `roots`, with the provider's signature algorithms.
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<ChainOnlyVerifier, rustls::client::VerifierBuilderError> {
        let signatures =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        Ok(ChainOnlyVerifier {
            roots,
            algorithms: provider.signature_verification_algorithms,
            signatures,
        })
    }
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}
