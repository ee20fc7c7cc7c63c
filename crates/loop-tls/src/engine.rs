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
use std::io::{BufRead, Write};
use std::time::Duration;

use rustls::{ClientConnection, Connection, ServerConnection};

use crate::args;
use crate::context::SslContext;
use crate::error::{ArgumentError, ContextError, TlsError};

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
    state: TlsState,
    started: bool,
    pub(crate) server_hostname: Option<String>,
    /// Ciphertext received and not yet taken by rustls; `incoming[pos..]` is pending.
    incoming: Vec<u8>,
    pos: usize,
    /// Plaintext written by the application and not yet taken by rustls.
    backlog: VecDeque<Vec<u8>>,
    backlog_off: usize,
    backlog_len: usize,
    /// Plaintext taken by rustls since its output was last drained.
    in_rustls: usize,
    reading_paused: bool,
    eof_received: bool,
    close_notify_received: bool,
    close_notify_sent: bool,
    eof_delivered: bool,
    handshake_completed: bool,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
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

    /// Sets the timeouts the transport should apply (the defaults when `None`).
    ///
    /// # Errors
    ///
    /// asyncio's "ssl_handshake_timeout should be a positive number, got 0.0" (and the same for
    /// `ssl_shutdown_timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// engine.set_timeouts(Some(Duration::from_secs(5)), None)?;
    /// assert_eq!(engine.handshake_timeout(), Duration::from_secs(5));
    /// assert_eq!(engine.shutdown_timeout(), loop_tls::args::SSL_SHUTDOWN_TIMEOUT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_timeouts(
        &mut self,
        handshake: Option<Duration>,
        shutdown: Option<Duration>,
    ) -> Result<(), ArgumentError> {
        let h = args::handshake_timeout(handshake)?;
        let s = args::shutdown_timeout(shutdown)?;
        self.handshake_timeout = h;
        self.shutdown_timeout = s;
        Ok(())
    }

    /// How long the transport lets the handshake run (60 s by default).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert_eq!(engine.handshake_timeout().as_secs(), 60);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// How long the transport lets the closing handshake run (30 s by default).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert_eq!(engine.shutdown_timeout().as_secs(), 30);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
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

    /// Ends the session at once (the transport's `abort`): buffers are dropped.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// engine.abort();
    /// assert_eq!(engine.state(), loop_tls::TlsState::Unwrapped);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn abort(&mut self) {
        self.started = true;
        self.state = TlsState::Unwrapped;
        self.backlog.clear();
        self.backlog_off = 0;
        self.backlog_len = 0;
        self.incoming = Vec::new();
        self.pos = 0;
    }

    /// The handshake timer fired: the error to end the connection with, or `None` if the
    /// handshake is no longer running.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.start_handshake()?;
    /// let err = engine.on_handshake_timeout().unwrap();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "SSL handshake is taking longer than 60.0 seconds: aborting the connection"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_handshake_timeout(&mut self) -> Option<TlsError> {
        if self.state != TlsState::DoHandshake {
            return None;
        }
        self.abort();
        Some(TlsError::HandshakeTimeout(self.handshake_timeout))
    }

    /// The shutdown timer fired: the error to close the transport with ("SSL shutdown timed
    /// out"), or `None` if the session is no longer closing.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert!(engine.on_shutdown_timeout().is_none()); // not closing
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn on_shutdown_timeout(&mut self) -> Option<TlsError> {
        if !matches!(self.state, TlsState::Flushing | TlsState::Shutdown) {
            return None;
        }
        self.abort();
        Some(TlsError::ShutdownTimeout)
    }

    /// Stops delivering plaintext (the application transport's `pause_reading`). Received
    /// ciphertext then piles up in [`Self::read_buffer_size`]; the transport pauses the socket
    /// past its high-water mark.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// engine.pause_reading();
    /// assert!(!engine.is_reading());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn pause_reading(&mut self) {
        self.reading_paused = true;
    }

    /// Delivers plaintext again, starting with what piled up (asyncio runs this from
    /// `call_soon`; so should the transport).
    ///
    /// # Errors
    ///
    /// As [`Self::feed_ciphertext`].
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// engine.pause_reading();
    /// let _ = engine.resume_reading()?;
    /// assert!(engine.is_reading());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_reading(&mut self) -> Result<Events, TlsError> {
        let mut ev = Events::default();
        if !self.reading_paused {
            return Ok(ev);
        }
        self.reading_paused = false;
        match self.state {
            TlsState::Wrapped => self.run(|e, ev| e.do_read(ev), &mut ev)?,
            TlsState::Flushing => self.run(|e, ev| e.do_flush(ev), &mut ev)?,
            TlsState::Shutdown => self.run(|e, ev| e.do_shutdown(ev), &mut ev)?,
            TlsState::Unwrapped | TlsState::DoHandshake => {}
        }
        Ok(ev)
    }

    /// Whether plaintext is being delivered (not paused).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// assert!(loop_tls::TlsEngine::client(&ctx, "example.com")?.is_reading());
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn is_reading(&self) -> bool {
        !self.reading_paused
    }

    /// Bytes of received ciphertext not yet processed (for the transport's read flow control).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.feed_ciphertext(&[22, 3, 3])?; // before the handshake: kept
    /// assert_eq!(engine.read_buffer_size(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_buffer_size(&self) -> usize {
        self.incoming.len() - self.pos
    }

    /// Runs one step, turning a failure into the `Unwrapped` state.
    fn run(
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
    fn step(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        match self.state {
            TlsState::DoHandshake => self.do_handshake(ev),
            TlsState::Wrapped => self.do_read(ev),
            TlsState::Flushing => self.do_flush(ev),
            TlsState::Shutdown => self.do_shutdown(ev),
            TlsState::Unwrapped => Ok(()),
        }
    }

    fn do_handshake(&mut self, ev: &mut Events) -> Result<(), TlsError> {
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
    fn do_read(&mut self, ev: &mut Events) -> Result<(), TlsError> {
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

    fn start_shutdown(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        self.state = TlsState::Flushing;
        ev.shutdown_started = true;
        self.do_flush(ev)
    }

    fn do_flush(&mut self, ev: &mut Events) -> Result<(), TlsError> {
        self.do_read(ev)?;
        self.state = TlsState::Shutdown;
        self.do_shutdown(ev)
    }

    /// Sends `close_notify` after the whole write buffer, then waits for the peer's (discarding
    /// data) unless the transport already reached end of file.
    fn do_shutdown(&mut self, ev: &mut Events) -> Result<(), TlsError> {
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

    fn deliver_eof(&mut self, ev: &mut Events, kind: Eof) {
        if !self.eof_delivered {
            self.eof_delivered = true;
            ev.eof = Some(kind);
        }
    }

    /// Moves received plaintext out of rustls (into `ev` when `deliver`); true once the peer's
    /// `close_notify` has been read.
    fn drain_plaintext(&mut self, ev: &mut Events, deliver: bool) -> bool {
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
    fn read_records(&mut self) -> Result<bool, TlsError> {
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
        if let Err(e) = self.conn.process_new_packets() {
            return Err(TlsError::from_rustls(e, self.server_hostname.as_deref()));
        }
        Ok(n > 0)
    }

    /// Queues plaintext to send (the application transport's `write`). During the handshake it
    /// waits in the write buffer; afterwards rustls takes what it has room for.
    ///
    /// # Errors
    ///
    /// [`TlsError::WriteAfterClose`] once closing began or the session ended (the data is
    /// dropped; asyncio logs "SSL connection is closed" after a few such writes).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.start_handshake()?;
    /// engine.write_plaintext(b"GET / HTTP/1.1\r\n\r\n")?; // kept until the handshake is done
    /// assert_eq!(engine.buffer_size(), 18);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.state {
            TlsState::Flushing | TlsState::Shutdown => return Err(TlsError::WriteAfterClose),
            TlsState::Unwrapped if self.started => return Err(TlsError::WriteAfterClose),
            _ => {}
        }
        let mut rest = data;
        if self.state == TlsState::Wrapped && self.backlog.is_empty() {
            let n = self.write_to_rustls(rest)?;
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            self.backlog_len += rest.len();
            self.backlog.push_back(rest.to_vec());
        }
        Ok(())
    }

    fn write_to_rustls(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        let n = self.conn.writer().write(data).map_err(write_error)?;
        self.in_rustls += n;
        Ok(n)
    }

    /// Moves the write buffer into rustls as far as rustls has room.
    fn move_backlog(&mut self) -> Result<(), TlsError> {
        while let Some(front) = self.backlog.front() {
            let chunk = &front[self.backlog_off..];
            let len = chunk.len();
            let n = self.conn.writer().write(chunk).map_err(write_error)?;
            self.in_rustls += n;
            self.backlog_len -= n;
            if n < len {
                self.backlog_off += n;
                return Ok(());
            }
            self.backlog.pop_front();
            self.backlog_off = 0;
        }
        Ok(())
    }

    /// Plaintext written and not yet handed out as ciphertext: the write buffer plus what
    /// rustls holds. The transport applies the pause/resume water marks to it.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert_eq!(engine.buffer_size(), 0);
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn buffer_size(&self) -> usize {
        self.backlog_len + self.in_rustls
    }

    /// Whether [`Self::take_ciphertext`] has something to return.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.start_handshake()?;
    /// assert!(engine.has_ciphertext());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_ciphertext(&self) -> bool {
        self.conn.wants_write()
    }

    /// Appends the ciphertext to send to `out` (at most about 64 KiB of records per call, more
    /// during shutdown) and refills rustls from the write buffer; returns the byte count. Call
    /// again while [`Self::has_ciphertext`] and the transport accepts more.
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// let _ = engine.start_handshake()?;
    /// let mut out = Vec::new();
    /// let n = engine.take_ciphertext_into(&mut out);
    /// assert_eq!(n, out.len());
    /// assert_eq!(out[0], 22); // a handshake record
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_ciphertext_into(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break, // writing to a Vec cannot fail
                Ok(_) => {}
            }
        }
        self.in_rustls = 0;
        if self.state == TlsState::Wrapped && self.move_backlog().is_err() {
            // rustls refused plaintext it had room for: nothing more can be sent; the next
            // write reports the failure.
            self.state = TlsState::Unwrapped;
        }
        out.len() - before
    }

    /// The ciphertext to send, as a new vector (see [`Self::take_ciphertext_into`]).
    ///
    /// ```
    /// let ctx = loop_tls::SslContext::client().build()?;
    /// let mut engine = loop_tls::TlsEngine::client(&ctx, "example.com")?;
    /// assert!(engine.take_ciphertext().is_empty()); // not started
    /// # Ok::<(), loop_tls::ContextError>(())
    /// ```
    pub fn take_ciphertext(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.take_ciphertext_into(&mut out);
        out
    }
}

fn write_error(e: std::io::Error) -> TlsError {
    TlsError::Protocol(rustls::Error::General(format!("rustls refused plaintext: {e}")))
}
