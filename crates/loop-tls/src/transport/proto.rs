//! [`TlsProtocol`]: the protocol installed on the transport underneath. It feeds what that
//! transport reads to the TLS engine and passes its notifications on to the TLS transport.

use std::fmt;
use std::io;
use std::rc::Rc;

use loop_transport::{Protocol, Transport};

use super::state::{Tls, TlsCore};
use crate::engine::TlsState;

/// The layering protocol of a TLS connection: the protocol of the TCP (or Unix) transport
/// underneath, driving the TLS transport the application protocol sees (asyncio's
/// `SSLProtocol`). Made by the connection and server calls and by [`start_tls`](super::start_tls);
/// a program only meets it as the protocol type of the transport underneath.
///
/// ```no_run
/// # async fn f(lp: loop_core::EventLoop, ctx: loop_tls::SslContext) -> loop_core::Result<()> {
/// use loop_tls::TlsProtocol;
/// struct App;
/// impl loop_transport::Protocol for App {}
/// let lower: loop_transport::Transport = todo!();
/// let (tls, _app) = loop_tls::start_tls(&lp, &lower, App, &ctx, Default::default()).await?;
/// assert!(lower.protocol_type_name().unwrap().ends_with("TlsProtocol"));
/// # let _ = tls; Ok(()) }
/// ```
pub struct TlsProtocol {
    /// The TLS transport it drives.
    core: Rc<TlsCore>,
}

impl TlsProtocol {
    pub(crate) fn new(core: Rc<TlsCore>) -> TlsProtocol {
        TlsProtocol { core }
    }
}

impl fmt::Debug for TlsProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<TlsProtocol {}>", self.core.describe())
    }
}

impl Protocol for TlsProtocol {
    /// The transport underneath is up: the handshake starts, with its timer.
    fn connection_made(&mut self, transport: &Transport) {
        Tls::begin(&self.core, transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let r = self.core.driver.engine.borrow_mut().feed_ciphertext(data);
        Tls::apply(&self.core, r);
    }

    /// End of file: a failure during the handshake; afterwards what was received is
    /// delivered, then the application's `eof_received`, and the connection closes, whether
    /// `close_notify` came or not. Kept open only while the application paused reading (the
    /// rest is delivered when it resumes).
    fn eof_received(&mut self) -> bool {
        let was_wrapped = self.core.driver.engine.borrow().state() == TlsState::Wrapped;
        let r = self.core.driver.engine.borrow_mut().on_transport_eof();
        let paused = !self.core.driver.engine.borrow().is_reading();
        Tls::apply(&self.core, r);
        was_wrapped && paused
    }

    fn pause_writing(&mut self) {
        Tls::lower_writing(&self.core, true);
    }

    fn resume_writing(&mut self) {
        Tls::lower_writing(&self.core, false);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        Tls::lower_lost(&self.core, exc);
    }
}
