//! [`TlsEngine`]: asyncio's SSL protocol state machine over a rustls connection, with no I/O
//! and no timers of its own.
//!
//! The transport that drives it feeds it what the socket delivers ([`TlsEngine::feed_ciphertext`],
//! [`TlsEngine::on_transport_eof`]), hands it what the application writes
//! ([`TlsEngine::write_plaintext`]), sends what [`TlsEngine::take_ciphertext`] returns, and acts
//! on the [`Events`] each call reports. Keeping the engine free of the loop makes every edge of
//! the state machine testable with two engines pumping bytes in memory, and fuzzable.
//!
//! States, as in asyncio's `sslproto.py`:
//!
//! ```text
//! UNWRAPPED -start_handshake-> DO_HANDSHAKE -handshake done-> WRAPPED
//! WRAPPED -begin_shutdown / peer close_notify / transport EOF-> FLUSHING
//! FLUSHING -pending plaintext delivered, write buffer handed to rustls-> SHUTDOWN
//! SHUTDOWN -both close_notify seen, or transport EOF-> UNWRAPPED (Events::close)
//! any state -error, abort, timeout-> UNWRAPPED
//! ```
//!
//! Writes: rustls holds at most 64 KiB of outgoing data; the rest of what the application wrote
//! waits in the engine's own write buffer and moves into rustls each time
//! [`TlsEngine::take_ciphertext`] frees room. [`TlsEngine::buffer_size`] counts both, in
//! plaintext bytes, for the pause/resume water marks. On shutdown the whole buffer is handed to
//! rustls at once so that `close_notify` follows the last byte.

use std::collections::VecDeque;
use std::io::BufRead;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use rustls::{ClientConnection, Connection, ServerConnection};

use crate::args;
use crate::context::SslContext;
use crate::error::{ContextError, TlsError};

/// The state of a [`TlsEngine`] (asyncio's `SSLProtocolState`).
///
/// ```
/// let ctx = loop_tls::SslContext::client().check_hostname(false).build()?;
/// let engine = loop_tls::TlsEngine::client(&ctx, "")?;
/// assert_eq!(engine.state(), loop_tls::TlsState::Unwrapped);
/// # Ok::<(), loop_tls::ContextError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsState {
    /// Before the handshake, and after the connection ended.
    Unwrapped,
    /// The handshake is running.
    DoHandshake,
    /// Application data flows both ways.
    Wrapped,
    /// Closing: delivering what was received, handing the write buffer to rustls.
    Flushing,
    /// Closing: `close_notify` sent, waiting for the peer's (or for end of file).
    Shutdown,
}

/// How the peer ended its side.
///
/// ```
/// let eof = loop_tls::Eof::TransportEof;
/// assert_ne!(eof, loop_tls::Eof::CloseNotify);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eof {
    /// A TLS `close_notify` alert: a clean close.
    CloseNotify,
    /// End of file on the transport without `close_notify`; treated as a plain end of file, as
    /// asyncio does (a protocol that must detect truncation can tell it from this variant).
    TransportEof,
}

/// What a call to the engine asks of the transport, to act on in field order.
///
/// ```
/// let events = loop_tls::Events::default();
/// assert!(events.is_empty());
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "the events say what the transport must do next"]
pub struct Events {
    /// The handshake finished: call the application protocol's `connection_made` (or wake the
    /// `start_tls` waiter) and cancel the handshake timer.
    pub handshake_complete: bool,
    /// Decrypted application data for `data_received`.
    pub plaintext: Vec<u8>,
    /// The peer is done sending: call `eof_received` (once per connection).
    pub eof: Option<Eof>,
    /// Closing began: start the shutdown timer (unless `close` is also set).
    pub shutdown_started: bool,
    /// The TLS session is over: send what [`TlsEngine::take_ciphertext`] still returns, then
    /// close the transport (its `connection_lost` ends the application's connection).
    pub close: bool,
    /// Abort the transport now, dropping buffered data (a close during the handshake).
    pub abort: bool,
}

impl Events {
    /// Whether nothing happened.
    ///
    /// ```
    /// assert!(loop_tls::Events::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Events::default()
    }
}

/// The TLS protocol of one connection, without I/O: bytes in, bytes out, events.
///
/// ```
/// use loop_tls::{SslContext, TlsEngine, TlsState};
///
/// let ctx = SslContext::client().check_hostname(false).build()?;
/// let mut client = TlsEngine::client(&ctx, "")?;
/// let _ = client.start_handshake()?;
/// assert_eq!(client.state(), TlsState::DoHandshake);
/// let hello = client.take_ciphertext(); // the ClientHello, for the socket
/// assert!(!hello.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TlsEngine {
    pub(crate) conn: Connection,
    pub(crate) state: TlsState,
    pub(crate) started: bool,
    pub(crate) server_hostname: Option<String>,
    /// Ciphertext received and not yet taken by rustls; `incoming[pos..]` is pending.
    pub(crate) incoming: Vec<u8>,
    pub(crate) pos: usize,
    /// Plaintext written by the application and not yet taken by rustls.
    pub(crate) backlog: VecDeque<Vec<u8>>,
    pub(crate) backlog_off: usize,
    pub(crate) backlog_len: usize,
    /// Plaintext taken by rustls since its output was last drained.
    pub(crate) in_rustls: usize,
    pub(crate) reading_paused: bool,
    pub(crate) eof_received: bool,
    pub(crate) close_notify_received: bool,
    pub(crate) close_notify_sent: bool,
    pub(crate) eof_delivered: bool,
    pub(crate) handshake_completed: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl std::fmt::Debug for TlsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEngine")
            .field("server_side", &self.is_server_side())
            .field("state", &self.state)
            .field("buffer_size", &self.buffer_size())
            .field("read_buffer_size", &self.read_buffer_size())
            .finish_non_exhaustive()
    }
}

impl TlsEngine {
    fn new(conn: Connection, server_hostname: Option<String>) -> TlsEngine {
        TlsEngine {
            conn,
            state: TlsState::Unwrapped,
            started: false,
            server_hostname,
            incoming: Vec::new(),
            pos: 0,
            backlog: VecDeque::new(),
            backlog_off: 0,
            backlog_len: 0,
            in_rustls: 0,
            reading_paused: false,
            eof_received: false,
            close_notify_received: false,
            close_notify_sent: false,
            eof_delivered: false,
            handshake_completed: false,
            handshake_timeout: args::SSL_HANDSHAKE_TIMEOUT,
            shutdown_timeout: args::SSL_SHUTDOWN_TIMEOUT,
        }
    }

    /// A client engine for a connection to `server_hostname`: the name the certificate is
    /// checked against and sent as SNI (an IP address is checked as an IP SAN and not sent).
    /// Empty: no SNI and no name check, which the context must allow (hostname checking off).
    ///
    /// # Errors
    ///
    /// [`ContextError::WrongSide`] for a server context,
    /// [`ContextError::CheckHostnameRequiresServerHostname`] for an empty name with hostname
    /// checking on, [`ContextError::InvalidServerHostname`], [`ContextError::Rustls`].
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert_eq!(engine.server_hostname(), Some("example.com"));
    /// assert!(loop_tls::TlsEngine::client(&ctx, "").is_err()); // check_hostname needs a name
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn client(ctx: &SslContext, server_hostname: &str) -> Result<TlsEngine, ContextError> {
        let (config, name) = ctx.client_for(server_hostname)?;
        let conn = ClientConnection::new(config, name)?;
        let hostname = (!server_hostname.is_empty()).then(|| server_hostname.to_owned());
        Ok(TlsEngine::new(Connection::Client(conn), hostname))
    }

    /// A server engine.
    ///
    /// # Errors
    ///
    /// [`ContextError::WrongSide`] for a client context ("Server side SSL needs a valid
    /// SSLContext"), [`ContextError::Rustls`].
    ///
    /// ```
    /// let client_ctx = loop_tls::SslContext::client().build()?;
    /// let err = loop_tls::TlsEngine::server(&client_ctx).unwrap_err();
    /// assert!(err.to_string().starts_with("Server side SSL needs a valid SSLContext"));
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn server(ctx: &SslContext) -> Result<TlsEngine, ContextError> {
        let config = ctx
            .server_config()
            .ok_or(ContextError::WrongSide { needed: "server" })?;
        let conn = ServerConnection::new(config.clone())?;
        Ok(TlsEngine::new(Connection::Server(conn), None))
    }

    /// The current state.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert_eq!(engine.state(), loop_tls::TlsState::Unwrapped);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn state(&self) -> TlsState {
        self.state
    }

    /// Whether the handshake finished at some point (so the application protocol saw
    /// `connection_made` and must see `connection_lost`).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert!(!engine.handshake_completed());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn handshake_completed(&self) -> bool {
        self.handshake_completed
    }

    /// Starts the handshake (the transport's `connection_made`): a client's first flight becomes
    /// available from [`Self::take_ciphertext`]; ciphertext fed earlier is processed now. The
    /// transport starts the handshake timer.
    ///
    /// # Errors
    ///
    /// [`TlsError::InvalidState`] if already started; a handshake failure on early input.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let events = engine.start_handshake()?;
    /// assert!(events.is_empty());
    /// assert!(engine.has_ciphertext());
    /// assert!(engine.start_handshake().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_handshake(&mut self) -> Result<Events, TlsError> {
        if self.started {
            return Err(TlsError::InvalidState("the handshake was already started"));
        }
        self.started = true;
        self.state = TlsState::DoHandshake;
        let mut ev = Events::default();
        self.run(|e, ev| e.do_handshake(ev), &mut ev)?;
        Ok(ev)
    }

    /// Takes ciphertext received from the transport and runs the state machine on it.
    ///
    /// # Errors
    ///
    /// A handshake failure (untrusted certificate, name mismatch, alert...) or a connection
    /// failure (corrupted record, alert). The engine is then `Unwrapped`; the events of this
    /// call are lost except [`Self::handshake_completed`]. [`Self::take_ciphertext`] may still
    /// return an alert telling the peer why; the transport then closes (asyncio aborts).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut client = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = client.start_handshake()?;
    /// let err = client.feed_ciphertext(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
    /// assert!(err.to_string().contains("corrupted TLS record"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn feed_ciphertext(&mut self, data: &[u8]) -> Result<Events, TlsError> {
        let mut ev = Events::default();
        if self.started && self.state == TlsState::Unwrapped {
            return Ok(ev); // the connection is over; late bytes are dropped
        }
        self.incoming.extend_from_slice(data);
        if !self.started {
            return Ok(ev);
        }
        self.run(|e, ev| e.step(ev), &mut ev)?;
        Ok(ev)
    }

    /// The transport reached end of file (asyncio's `eof_received`). During the handshake that
    /// is a failure; afterwards a plain end of file, `close_notify` or not: what was received is
    /// delivered, then `eof` and `close`.
    ///
    /// # Errors
    ///
    /// [`TlsError::HandshakeEof`] during the handshake.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.start_handshake()?;
    /// assert!(matches!(engine.on_transport_eof(), Err(loop_tls::TlsError::HandshakeEof)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_transport_eof(&mut self) -> Result<Events, TlsError> {
        let mut ev = Events::default();
        self.eof_received = true;
        match self.state {
            TlsState::Unwrapped => {}
            TlsState::DoHandshake => {
                self.state = TlsState::Unwrapped;
                return Err(TlsError::HandshakeEof);
            }
            TlsState::Wrapped => {
                self.state = TlsState::Flushing;
                if !self.reading_paused {
                    self.run(|e, ev| e.do_flush(ev), &mut ev)?;
                }
            }
            TlsState::Flushing => {
                self.state = TlsState::Shutdown;
                self.run(|e, ev| e.do_shutdown(ev), &mut ev)?;
            }
            TlsState::Shutdown => self.run(|e, ev| e.do_shutdown(ev), &mut ev)?,
        }
        Ok(ev)
    }

    /// Closes the TLS session (the application transport's `close`): received data still
    /// pending is delivered, the write buffer is sent, then `close_notify`; the session is over
    /// when the peer's `close_notify` (or end of file) arrives. During the handshake the
    /// connection is aborted instead; once closing, this does nothing.
    ///
    /// # Errors
    ///
    /// A failure while delivering pending data (a corrupted record).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.start_handshake()?;
    /// let events = engine.begin_shutdown()?;
    /// assert!(events.abort); // still handshaking: asyncio aborts
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin_shutdown(&mut self) -> Result<Events, TlsError> {
        let mut ev = Events::default();
        match self.state {
            TlsState::Flushing | TlsState::Shutdown | TlsState::Unwrapped => {}
            TlsState::DoHandshake => {
                self.state = TlsState::Unwrapped;
                ev.abort = true;
            }
            TlsState::Wrapped => self.run(|e, ev| e.start_shutdown(ev), &mut ev)?,
        }
        Ok(ev)
    }

    /// Runs one step, turning a failure into the `Unwrapped` state.
    pub(crate) fn run(
        &mut self,
        step: impl FnOnce(&mut TlsEngine, &mut Events) -> Result<(), TlsError>,
        ev: &mut Events,
    ) -> Result<(), TlsError> {
        let r = step(self, ev);
        if r.is_err() {
            self.state = TlsState::Unwrapped;
            self.backlog.clear();
            self.backlog_off = 0;
            self.backlog_len = 0;
        }
        r
    }

    /// Runs the state's reaction to new input (asyncio's `buffer_updated`).
    pub(crate) fn step(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        match self.state {
            TlsState::DoHandshake => self.do_handshake(ev),
            TlsState::Wrapped => self.do_read(ev),
            TlsState::Flushing => self.do_flush(ev),
            TlsState::Shutdown => self.do_shutdown(ev),
            TlsState::Unwrapped => Ok(()),
        }
    }

    pub(crate) fn do_handshake(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        while self.conn.is_handshaking() {
            if !self.read_records()? {
                return Ok(());
            }
        }
        self.state = TlsState::Wrapped;
        self.handshake_completed = true;
        ev.handshake_complete = true;
        self.move_backlog()?;
        self.do_read(ev)
    }

    /// Delivers plaintext until input runs out; the peer's `close_notify` starts the shutdown.
    pub(crate) fn do_read(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        if self.reading_paused {
            return Ok(());
        }
        loop {
            if self.drain_plaintext(ev, true) {
                self.close_notify_received = true;
                self.deliver_eof(ev, Eof::CloseNotify);
                return match self.state {
                    TlsState::Wrapped => self.start_shutdown(ev),
                    _ => Ok(()),
                };
            }
            if !self.read_records()? {
                return Ok(());
            }
        }
    }

    pub(crate) fn start_shutdown(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        self.state = TlsState::Flushing;
        ev.shutdown_started = true;
        self.do_flush(ev)
    }

    pub(crate) fn do_flush(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        self.do_read(ev)?;
        self.state = TlsState::Shutdown;
        self.do_shutdown(ev)
    }

    /// Sends `close_notify` after the whole write buffer, then waits for the peer's (discarding
    /// data) unless the transport already reached end of file.
    pub(crate) fn do_shutdown(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        if !self.eof_received {
            if !self.close_notify_sent {
                self.conn.set_buffer_limit(None);
                self.move_backlog()?;
                self.conn.send_close_notify();
                self.close_notify_sent = true;
            }
            while !self.close_notify_received {
                if self.drain_plaintext(ev, false) {
                    self.close_notify_received = true;
                    break;
                }
                if !self.read_records()? {
                    return Ok(());
                }
            }
        }
        let kind = if self.close_notify_received {
            Eof::CloseNotify
        } else {
            Eof::TransportEof
        };
        self.deliver_eof(ev, kind);
        self.state = TlsState::Unwrapped;
        self.incoming = Vec::new();
        self.pos = 0;
        ev.close = true;
        Ok(())
    }

    pub(crate) fn deliver_eof(&mut self, ev: &mut Events, kind: Eof) {
        if !self.eof_delivered {
            self.eof_delivered = true;
            ev.eof = Some(kind);
        }
    }

    /// Moves received plaintext out of rustls (into `ev` when `deliver`); true once the peer's
    /// `close_notify` has been read.
    pub(crate) fn drain_plaintext(&mut self, ev: &mut Events, deliver: bool) -> bool {
        let mut reader = self.conn.reader();
        loop {
            let n = match reader.fill_buf() {
                Ok([]) => return true,
                Ok(chunk) => {
                    if deliver {
                        ev.plaintext.extend_from_slice(chunk);
                    }
                    chunk.len()
                }
                // WouldBlock: nothing more for now. (UnexpectedEof cannot happen: rustls is
                // never told about the transport's end of file.)
                Err(_) => return false,
            };
            reader.consume(n);
        }
    }

    /// Hands the next piece of received ciphertext to rustls and processes it; false when
    /// there was nothing rustls could take.
    pub(crate) fn read_records(&mut self) -> Result<bool, TlsError> {
        if self.pos == self.incoming.len() {
            return Ok(false);
        }
        let mut rd = &self.incoming[self.pos..];
        let n = match self.conn.read_tls(&mut rd) {
            Ok(n) => n,
            Err(e) => {
                return Err(TlsError::CorruptedRecord(format!(
                    "rustls refused the input: {e}"
                )))
            }
        };
        self.pos += n;
        if self.pos == self.incoming.len() {
            self.incoming.clear();
            self.pos = 0;
        } else if self.pos >= 64 * 1024 {
            self.incoming.drain(..self.pos);
            self.pos = 0;
        }
        let processed = if self.close_notify_sent {
            // Once close_notify is sent, a bad record from the peer makes rustls queue a fatal
            // alert too, which its debug assertions forbid: in a debug build that is a panic
            // inside rustls. It happens before rustls changes anything (the connection is left
            // failed), so it is contained here and reported like the release build's error.
            std::panic::catch_unwind(AssertUnwindSafe(|| self.conn.process_new_packets()))
                .unwrap_or_else(|_| {
                    Err(rustls::Error::General(
                        "a record after close_notify could not be processed".into(),
                    ))
                })
        } else {
            self.conn.process_new_packets()
        };
        if let Err(e) = processed {
            if self.close_notify_sent {
                return Err(TlsError::CorruptedRecord(format!(
                    "after close_notify: {}",
                    TlsError::from_rustls(e, None)
                )));
            }
            return Err(TlsError::from_rustls(e, self.server_hostname.as_deref()));
        }
        Ok(n > 0)
    }
}
