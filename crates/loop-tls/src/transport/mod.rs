//! The TLS transport: asyncio's `SSLProtocol` on the loop. A layering protocol installed on a
//! stream transport (TCP, Unix, anything with the stream transport's contract) drives a
//! [`TlsEngine`](crate::TlsEngine) and presents the application protocol with a transport of its own, a
//! [`Layer`](loop_transport::Layer) on the transport engine.
//!
//! * The application's `connection_made` comes only once the handshake is done; the
//!   handshake and the shutdown each run under a timer of the loop (60 s and 30 s by default).
//! * `close()` sends what is buffered, then `close_notify`, waits for the peer's (or end of
//!   file), then closes the transport underneath; `connection_lost` follows that.
//! * End of file without `close_notify` is a plain end of file (`eof_received`, then the
//!   connection closes), as asyncio treats it. `write_eof()` is refused and `can_write_eof()`
//!   is false: TLS has no half-close.
//! * Writes go into the engine (rustls holds at most 64 KiB of plaintext; the rest waits in the
//!   engine's own buffer); the ciphertext goes to the transport underneath unless that one
//!   paused writing. The TLS transport's write-buffer size is the engine's plaintext backlog,
//!   compared against its own water marks (asyncio's TLS defaults: 512 KiB high, a quarter of
//!   it low). Read flow control passes through to the transport underneath.
//! * A TLS failure (untrusted certificate, name mismatch, peer alert, corrupted record) sends
//!   the alert rustls prepared, closes the transport underneath and ends the connection with
//!   the error: the waiting call (`create_connection`, `start_tls`) returns it, or, after the
//!   handshake, `connection_lost` gets it. Like asyncio (TLS errors are `OSError`s there), it
//!   is not reported to the loop's exception handler.

mod api;
mod info;
mod layer;
mod proto;
mod state;

#[doc(hidden)]
pub use api::{connect_over, server_protocol};
pub use api::{start_tls, tls_info, TlsExt, TlsOptions, TlsStreamExt};
pub use info::TlsInfo;
pub use proto::TlsProtocol;
