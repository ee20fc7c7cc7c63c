//! The transport's controls over a [`TlsEngine`]: the two timers (the engine owns none, it
//! says what a firing timer means), aborting, and read flow control (pausing delivery to the
//! application while received ciphertext piles up for the transport to pause the socket).

use std::time::Duration;

use crate::args;
use crate::engine::{Events, TlsEngine, TlsState};
use crate::error::{ArgumentError, TlsError};

impl TlsEngine {
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
}
