//! The outgoing side of [`TlsEngine`]: the application's writes, the engine's own write buffer
//! in front of rustls, and the ciphertext handed to the transport.
//!
//! rustls accepts plaintext only while its outgoing buffer holds less than 64 KiB; what it
//! refuses waits here, in the order written, and moves into rustls each time
//! [`TlsEngine::take_ciphertext`] empties it. [`TlsEngine::buffer_size`] counts both parts in
//! plaintext bytes, which is what the transport's pause/resume water marks compare against.

use std::io::Write;

use crate::engine::{TlsEngine, TlsState};
use crate::error::TlsError;

impl TlsEngine {
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
    pub(crate) fn move_backlog(&mut self) -> Result<(), TlsError> {
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
        self.started && self.conn.wants_write()
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
        if !self.started {
            return 0; // a client's hello waits for start_handshake
        }
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
    TlsError::Protocol(rustls::Error::General(format!(
        "rustls refused plaintext: {e}"
    )))
}
