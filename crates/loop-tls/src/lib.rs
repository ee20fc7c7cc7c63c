//! TLS for evloop: asyncio's SSL protocol (`ssl=`, `server_hostname=`, `start_tls`) on rustls.
//!
//! asyncio runs TLS as a protocol sitting on the TCP transport that presents the application
//! protocol with a TLS transport of its own. This crate does the same on evloop's layered
//! transports, with the state machine kept free of the loop so that it can be tested and fuzzed
//! alone:
//!
//! * [`SslContext`]: the configuration (asyncio's `ssl.SSLContext`): the OS trust store or given
//!   roots, a server's certificate chain and key, ALPN, hostname checking, protocol versions.
//! * [`TlsEngine`]: the state machine of asyncio's `SSLProtocol` over a rustls connection, with
//!   no I/O and no timers: ciphertext in, plaintext and [`Events`] out, plaintext in with its own
//!   write buffer, ciphertext out.
//! * The TLS transport: [`TlsProtocol`] on the transport underneath drives an engine and gives
//!   the application protocol a [`Transport`](loop_transport::Transport) of its own, with the
//!   handshake and shutdown timers on the loop. loop-net's `ssl=` options (its `tls` feature)
//!   build it; [`start_tls`] / [`TlsExt`] upgrade a live connection and [`TlsStreamExt`] a
//!   `StreamWriter`; [`tls_info`] tells what was negotiated.
//! * [`args`]: asyncio's argument rules and defaults for the TLS options.
//!
//! The crypto provider is aws-lc-rs by default, ring with the `ring` feature; every config is
//! built with an explicit provider so that two providers in one program never panic.
//!
//! Two engines talking to each other in memory:
//!
//! ```
//! use loop_tls::{SslContext, TlsEngine};
//!
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
//! let server_ctx = SslContext::server()
//!     .cert_chain_pem(cert.cert.pem().as_bytes())?
//!     .private_key_pem(cert.key_pair.serialize_pem().as_bytes())?
//!     .build()?;
//! let client_ctx = SslContext::client()
//!     .root_certificates_pem(cert.cert.pem().as_bytes())?
//!     .build()?;
//!
//! let mut client = TlsEngine::client(&client_ctx, "localhost")?;
//! let mut server = TlsEngine::server(&server_ctx)?;
//! let _ = client.start_handshake()?;
//! let _ = server.start_handshake()?;
//! client.write_plaintext(b"hello")?; // waits for the handshake
//!
//! let mut received = Vec::new();
//! for _ in 0..10 {
//!     let to_server = client.take_ciphertext();
//!     received.extend(server.feed_ciphertext(&to_server)?.plaintext);
//!     let to_client = server.take_ciphertext();
//!     let _ = client.feed_ciphertext(&to_client)?;
//! }
//! assert_eq!(received, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "loop-tls needs a crypto provider: enable the `aws-lc-rs` (default) or `ring` feature"
);

pub mod args;
mod builders;
mod context;
mod control;
mod engine;
mod error;
mod info;
mod outgoing;
mod pem;
mod transport;
mod verify;

pub use builders::{ClientContextBuilder, ServerContextBuilder};
pub use context::{default_provider, SslContext, TlsVersion};
pub use engine::{Eof, Events, TlsEngine, TlsState};
pub use error::{ArgumentError, ContextError, TlsError};
#[doc(hidden)]
pub use transport::{connect_over, server_protocol};
pub use transport::{start_tls, tls_info, TlsExt, TlsInfo, TlsOptions, TlsProtocol, TlsStreamExt};

/// The rustls version this crate is built on, re-exported for ready configs and certificates.
///
/// ```
/// let roots = loop_tls::rustls::RootCertStore::empty();
/// assert!(roots.is_empty());
/// ```
pub use rustls;
