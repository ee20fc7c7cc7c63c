//! PEM loading through `rustls_pki_types::pem::PemObject`, with errors that name the file (or
//! `<bytes>`) and what it was meant to hold.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ContextError;

/// Reads a whole file; the error names it.
pub(crate) fn read_file(
    path: &Path,
    what: &'static str,
) -> Result<(Vec<u8>, String), ContextError> {
    match std::fs::read(path) {
        Ok(text) => Ok((text, path.display().to_string())),
        Err(source) => Err(ContextError::Io {
            path: path.to_owned(),
            what,
            source,
        }),
    }
}

/// Every certificate of a PEM text (other sections, such as a key, are skipped).
pub(crate) fn certificates(
    text: &[u8],
    origin: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ContextError> {
    let certs = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|source| ContextError::Pem {
            origin: origin.to_owned(),
            what,
            source,
        })?;
    if certs.is_empty() {
        return Err(ContextError::NoCertificates {
            origin: origin.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM text.
pub(crate) fn private_key(
    text: &[u8],
    origin: &str,
) -> Result<PrivateKeyDer<'static>, ContextError> {
    PrivateKeyDer::from_pem_slice(text).map_err(|source| match source {
        pem::Error::NoItemsFound => ContextError::NoPrivateKey {
            origin: origin.to_owned(),
        },
        source => ContextError::Pem {
            origin: origin.to_owned(),
            what: "private key",
            source,
        },
    })
}
