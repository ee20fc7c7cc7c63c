//! Layered transports on the engine: a [`Layer`] driver gets [`TransportBackend`] for free,
//! with the fd transport's protocol call policy, lifecycle and flow control.

use std::any::Any;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use loop_core::{Error, EventLoop, Result};

use super::{Extra, ExtraValue, FdKind, SocketRef, StreamProtocol, Transport, TransportBackend};
use crate::engine::{Core, Driver, ProtocolHost};

/// The driver of a layered stream transport: a transport whose protocol gets its data from
/// another transport's protocol (the *layering protocol*, installed on the transport
/// underneath with `set_protocol` or at its creation) instead of from an fd. TLS over TCP is
/// the model; a message-framing transport is the simplest case.
///
/// `Core<D>` for a `D: Layer` implements [`TransportBackend`], so
/// `Transport::from_backend(core)` is the handle the application protocol gets. The engine
/// gives it what the fd transport has: the protocol cell (never re-entered; a panic in
/// `data_received` or `eof_received` is "Fatal error: protocol.X() call failed." and
/// force-closes, [`Core::call`] with `Policy::Fatal`), the lifecycle (`close()` is
/// immediate for `is_closing()`, `connection_lost` comes once, through the ready queue:
/// [`Core::schedule_lost`]), write flow control over [`Driver::buffer_size`]
/// ([`Core::maybe_pause`] after a write, [`Core::maybe_resume`] when the lower transport
/// drains), `set_protocol` / `get_protocol`, the loop reference.
///
/// The layering protocol drives the core: data from below goes to the application protocol
/// through `core.call("data_received", Policy::Fatal, ..)`; the lower transport's
/// `pause_writing` / `resume_writing` reach it as upcalls (pass them on with
/// `core.maybe_pause()` / `core.maybe_resume()`); its `connection_lost(exc)` becomes
/// `core.schedule_lost(exc)`. The defaults below delegate to the [`lower`](Layer::lower)
/// transport: reading pauses and resumes it, extra info and the socket are its own.
///
/// A TLS transport maps onto this as asyncio's `SSLProtocol` does: `write` hands plaintext
/// to the TLS engine and writes the ciphertext it produces to the lower transport;
/// `buffer_size` is the engine's plaintext backlog; `close` starts the shutdown
/// (`close_notify`); `force_close` aborts the engine and closes the lower transport with
/// [`Transport::force_close`] so that the error reaches `connection_lost`. The layering
/// protocol feeds ciphertext to the engine and delivers `connection_made`
/// ([`Core::deliver_made`]) when the handshake completes. `start_tls` on a live connection
/// pauses the lower transport's reading, installs the layering protocol with
/// [`Transport::set_protocol`] (inside a protocol method the switch happens when the method
/// returns) and resumes reading.
pub trait Layer: Driver<Protocol = StreamProtocol> {
    /// Writes the application's data (framed, encrypted...) to the transport underneath.
    ///
    /// # Errors
    ///
    /// As [`Transport::write`].
    fn write(core: &Core<Self>, bufs: &[&[u8]]) -> Result<()>;

    /// The transport underneath, while there is one.
    fn lower(core: &Core<Self>) -> Option<Transport>;

    /// As [`Transport::write_eof`]; by default not supported.
    ///
    /// # Errors
    ///
    /// By default [`Error::InvalidState`].
    fn write_eof(core: &Core<Self>) -> Result<()> {
        let _ = core;
        Err(Error::invalid_state(
            "write_eof() is not supported by this transport",
        ))
    }

    /// As [`Transport::can_write_eof`]; false by default.
    fn can_write_eof(core: &Core<Self>) -> bool {
        let _ = core;
        false
    }

    /// As [`Transport::close`]; by default the engine's close (`is_closing()` at once,
    /// `connection_lost` once [`Driver::buffer_size`] is zero). A layer that must close the
    /// lower transport (or start a TLS shutdown) does it here, after `core.close()`.
    fn close(core: &Core<Self>) {
        core.close()
    }

    /// Closes at once with `exc` (abort, a fatal error); by default the engine's force-close.
    fn force_close(core: &Core<Self>, exc: Option<io::Error>) {
        core.force_close(exc)
    }

    /// As [`Transport::set_write_buffer_limits`]: by default the layer's own water marks over
    /// [`Driver::buffer_size`]. A layer whose buffer is the lower transport's passes them on.
    ///
    /// # Errors
    ///
    /// As [`Transport::set_write_buffer_limits`].
    fn set_write_buffer_limits(
        core: &Core<Self>,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<()> {
        core.set_write_buffer_limits(high, low)
    }

    /// As [`Transport::pause_reading`]: pauses the lower transport.
    fn pause_reading(core: &Core<Self>) {
        if let Some(l) = Self::lower(core) {
            l.pause_reading();
        }
    }

    /// As [`Transport::resume_reading`]: resumes the lower transport.
    fn resume_reading(core: &Core<Self>) {
        if let Some(l) = Self::lower(core) {
            l.resume_reading();
        }
    }

    /// As [`Transport::is_reading`]: not closing, and the lower transport reads.
    fn is_reading(core: &Core<Self>) -> bool {
        !core.lifecycle().is_closing() && Self::lower(core).is_some_and(|l| l.is_reading())
    }

    /// As [`Transport::get_extra_info`]: the lower transport's.
    fn get_extra_info(core: &Core<Self>, key: Extra) -> Option<ExtraValue> {
        Self::lower(core)?.get_extra_info(key)
    }

    /// As [`Transport::socket`]: the lower transport's.
    fn socket(core: &Core<Self>) -> Option<SocketRef> {
        Self::lower(core)?.socket()
    }

    /// As [`Transport::poll_flushed`]: ready when [`Driver::buffer_size`] is zero and the
    /// lower transport flushed.
    fn poll_flushed(core: &Core<Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Self::lower(core) {
            Some(l) => l.poll_flushed(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<D: Layer> TransportBackend for Core<D> {
    fn write(&self, bufs: &[&[u8]]) -> Result<()> {
        D::write(self, bufs)
    }

    fn write_eof(&self) -> Result<()> {
        D::write_eof(self)
    }

    fn can_write_eof(&self) -> bool {
        D::can_write_eof(self)
    }

    fn close(&self) {
        D::close(self)
    }

    fn force_close(&self, exc: Option<io::Error>) {
        D::force_close(self, exc)
    }

    fn is_closing(&self) -> bool {
        self.lifecycle().is_closing()
    }

    fn pause_reading(&self) {
        D::pause_reading(self)
    }

    fn resume_reading(&self) {
        D::resume_reading(self)
    }

    fn is_reading(&self) -> bool {
        D::is_reading(self)
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        D::set_write_buffer_limits(self, high, low)
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.write_buffer_limits()
    }

    fn get_write_buffer_size(&self) -> usize {
        D::buffer_size(self)
    }

    fn get_extra_info(&self, key: Extra) -> Option<ExtraValue> {
        D::get_extra_info(self, key)
    }

    fn socket(&self) -> Option<SocketRef> {
        D::socket(self)
    }

    fn kind(&self) -> FdKind {
        D::lower(self).map_or(FdKind::Socket, |l| l.kind())
    }

    fn set_protocol(&self, protocol: StreamProtocol) {
        Core::set_protocol(self, protocol)
    }

    fn with_protocol_any(&self, f: &mut dyn FnMut(&mut dyn Any) -> bool) -> bool {
        !self.cell().is_detached() && ProtocolHost::with_any(self, f)
    }

    fn protocol_host(&self) -> Rc<dyn ProtocolHost> {
        self.me().expect("a method runs on a live transport")
    }

    fn protocol_type_name(&self) -> Option<&'static str> {
        self.protocol_name()
    }

    fn get_loop(&self) -> Option<EventLoop> {
        Core::get_loop(self)
    }

    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        D::poll_flushed(self, cx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        D::describe(self, f)
    }
}
