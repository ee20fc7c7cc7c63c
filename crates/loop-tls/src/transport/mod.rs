//! The TLS transport: asyncio's `SSLProtocol` on the loop. A layering protocol installed on a
//! stream transport (TCP, Unix, anything with the stream transport's contract) drives a
//! [`TlsEngine`] and presents the application protocol with a transport of its own, a
//! [`Layer`] on the transport engine.
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
mod proto;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use loop_core::{Error, EventLoop, LoopFuture, Result};
use loop_timers::{TimerHandle, TimersExt};
use loop_transport::engine::{Core, Driver, Flow, Policy};
use loop_transport::{Extra, ExtraValue, Layer, StreamProtocol, Transport};

use crate::args;
use crate::context::SslContext;
use crate::engine::{Events, TlsEngine};
use crate::error::TlsError;

#[doc(hidden)]
pub use api::{connect_over, server_protocol};
pub use api::{start_tls, tls_info, TlsExt, TlsOptions, TlsStreamExt};
pub use info::TlsInfo;
pub use proto::TlsProtocol;

/// The TLS transport's part of the engine's [`Core`].
pub struct Tls {
    /// The TLS state machine.
    engine: RefCell<TlsEngine>,
    /// The context the engine was made from (`sslcontext`).
    ctx: SslContext,
    /// The transport underneath, once the layering protocol was installed on it.
    lower: RefCell<Option<Transport>>,
    /// The transport underneath paused writing: ciphertext stays in the engine.
    lower_paused: Cell<bool>,
    /// The handshake timer, then the shutdown timer.
    timer: RefCell<Option<TimerHandle>>,
    /// Completed when the handshake is done (after the application's `connection_made`),
    /// failed with the reason it never will be.
    waiter: RefCell<Option<LoopFuture<()>>>,
    /// Deliver `connection_made` to the application (not for `start_tls`, as in asyncio).
    call_made: bool,
    /// On a forced close, close the transport underneath gently (a TLS alert waits in its
    /// buffer) rather than aborting it.
    gentle: Cell<bool>,
    /// Ciphertext on its way to the transport underneath (kept to reuse its allocation).
    scratch: RefCell<Vec<u8>>,
}

/// The core of a TLS transport.
pub(crate) type TlsCore = Core<Tls>;

impl Tls {
    /// A TLS transport driving `app`, not yet on a transport; `server_side` picks the engine.
    pub(crate) fn new_core(
        lp: &EventLoop,
        ctx: &SslContext,
        app: StreamProtocol,
        opts: &TlsOptions,
        call_made: bool,
    ) -> Result<Rc<TlsCore>> {
        let server_side = opts.server_side.unwrap_or(ctx.is_server());
        let mut engine = if server_side {
            if opts.server_hostname.is_some() {
                return Err(Error::invalid_argument(
                    "server_hostname is only meaningful for a client-side connection",
                ));
            }
            TlsEngine::server(ctx)
        } else {
            TlsEngine::client(ctx, opts.server_hostname.as_deref().unwrap_or(""))
        }
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
        engine
            .set_timeouts(opts.ssl_handshake_timeout, opts.ssl_shutdown_timeout)
            .map_err(|e| Error::invalid_argument(e.to_string()))?;
        let flow = Flow::with_limits(Some(args::FLOW_CONTROL_HIGH_WATER_SSL_WRITE), None)?;
        let core = Core::new(
            lp,
            app,
            flow,
            Tls {
                engine: RefCell::new(engine),
                ctx: ctx.clone(),
                lower: RefCell::new(None),
                lower_paused: Cell::new(false),
                timer: RefCell::new(None),
                waiter: RefCell::new(Some(lp.create_future())),
                call_made,
                gentle: Cell::new(false),
                scratch: RefCell::new(Vec::new()),
            },
        );
        core.make_live();
        Ok(core)
    }

    /// The future completed once the handshake is done.
    pub(crate) fn waiter(core: &TlsCore) -> Option<LoopFuture<()>> {
        core.driver.waiter.borrow().clone()
    }

    /// Starts the handshake over `lower` (the layering protocol's `connection_made`).
    pub(crate) fn begin(core: &Rc<TlsCore>, lower: &Transport) {
        *core.driver.lower.borrow_mut() = Some(lower.clone());
        let timeout = core.driver.engine.borrow().handshake_timeout();
        Tls::arm(core, timeout, Tls::on_handshake_timeout);
        let r = core.driver.engine.borrow_mut().start_handshake();
        Tls::apply(core, r);
    }

    /// Starts the handshake or shutdown timer.
    fn arm(core: &Rc<TlsCore>, delay: Duration, fire: fn(&Rc<TlsCore>)) {
        Tls::disarm(core);
        let Some(lp) = core.get_loop() else { return };
        let weak = Rc::downgrade(core);
        let handle = lp.call_later(delay, move |_| {
            if let Some(core) = weak.upgrade() {
                core.driver.timer.borrow_mut().take();
                fire(&core);
            }
        });
        if let Ok(h) = handle {
            *core.driver.timer.borrow_mut() = Some(h);
        }
    }

    /// Cancels the running timer.
    fn disarm(core: &TlsCore) {
        let timer = core.driver.timer.borrow_mut().take();
        if let Some(t) = timer {
            t.cancel();
        }
    }

    fn on_handshake_timeout(core: &Rc<TlsCore>) {
        let e = core.driver.engine.borrow_mut().on_handshake_timeout();
        if let Some(e) = e {
            Tls::fail(core, e, false);
        }
    }

    fn on_shutdown_timeout(core: &Rc<TlsCore>) {
        let e = core.driver.engine.borrow_mut().on_shutdown_timeout();
        if let Some(e) = e {
            Tls::fail(core, e, false);
        }
    }

    /// The transport underneath.
    fn lower_of(core: &TlsCore) -> Option<Transport> {
        core.driver.lower.borrow().clone()
    }

    /// Moves the engine's ciphertext to the transport underneath, until the engine has none
    /// left or that transport paused writing; then resumes the application if its buffer
    /// drained.
    pub(crate) fn pump(core: &TlsCore) {
        while !core.driver.lower_paused.get() {
            let Some(lower) = Tls::lower_of(core) else {
                break;
            };
            let mut buf = std::mem::take(&mut *core.driver.scratch.borrow_mut());
            buf.clear();
            let n = core
                .driver
                .engine
                .borrow_mut()
                .take_ciphertext_into(&mut buf);
            if n > 0 {
                // A closing transport underneath drops it, as asyncio's does.
                let _ = lower.write(&buf);
            }
            *core.driver.scratch.borrow_mut() = buf;
            if n == 0 {
                break;
            }
        }
        core.maybe_resume();
    }

    /// Acts on what the engine reported, in order.
    pub(crate) fn apply(core: &Rc<TlsCore>, r: std::result::Result<Events, TlsError>) {
        let ev = match r {
            Ok(ev) => ev,
            Err(e) => return Tls::fail(core, e, true),
        };
        if ev.handshake_complete {
            Tls::handshake_done(core);
        }
        if !ev.plaintext.is_empty() && !core.lifecycle().is_lost() {
            Tls::deliver(core, &ev.plaintext);
        }
        if ev.eof.is_some() && !core.lifecycle().is_lost() {
            let keep = core.call("eof_received", Policy::Fatal, |p| match p {
                StreamProtocol::Plain(p) => p.eof_received(),
                StreamProtocol::Buffered(b) => b.eof_received(),
            });
            if let Ok(true) = keep {
                tracing::debug!("returning true from eof_received() has no effect when using ssl");
            }
            core.mark_closing();
        }
        Tls::pump(core);
        if ev.shutdown_started && !ev.close {
            let timeout = core.driver.engine.borrow().shutdown_timeout();
            Tls::arm(core, timeout, Tls::on_shutdown_timeout);
        }
        if ev.close {
            Tls::disarm(core);
            core.mark_closing();
            if let Some(l) = Tls::lower_of(core) {
                l.close();
            }
        }
        if ev.abort {
            Tls::disarm(core);
            if let Some(l) = Tls::lower_of(core) {
                l.abort();
            }
        }
    }

    /// The handshake is done: the application's `connection_made` (unless `start_tls`), then
    /// the waiter.
    fn handshake_done(core: &Rc<TlsCore>) {
        Tls::disarm(core);
        if core.driver.call_made {
            core.deliver_made();
        } else {
            core.skip_made();
        }
        let waiter = core.driver.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = w.set_result(());
            }
        }
    }

    /// Delivers plaintext to the application protocol.
    fn deliver(core: &TlsCore, data: &[u8]) {
        let _ = core.call("data_received", Policy::Fatal, |p| match p {
            StreamProtocol::Plain(p) => p.data_received(data),
            StreamProtocol::Buffered(b) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let dst = b.get_buffer(rest.len());
                    let n = dst.len().min(rest.len());
                    if n == 0 {
                        break;
                    }
                    dst[..n].copy_from_slice(&rest[..n]);
                    b.buffer_updated(n);
                    rest = &rest[n..];
                }
            }
        });
    }

    /// Ends the connection with a TLS error: the alert rustls prepared goes out first when
    /// `gentle`, the waiter fails with the error, `connection_lost` gets it.
    pub(crate) fn fail(core: &TlsCore, e: TlsError, gentle: bool) {
        tracing::debug!("{}: TLS failure: {e}", core.describe());
        if gentle {
            Tls::pump(core);
        }
        core.driver.gentle.set(gentle);
        let waiter = core.driver.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = w.set_exception(Error::from(io::Error::from(e.clone())));
            }
        }
        core.force_close(Some(io::Error::from(e)));
    }

    /// The transport underneath is gone (its `connection_lost`).
    pub(crate) fn lower_lost(core: &TlsCore, exc: Option<io::Error>) {
        Tls::disarm(core);
        core.driver.engine.borrow_mut().abort();
        let waiter = core.driver.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let e = match &exc {
                    Some(e) => io::Error::new(e.kind(), e.to_string()),
                    None => io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the connection was lost during the TLS handshake",
                    ),
                };
                let _ = w.set_exception(Error::from(e));
            }
        }
        core.schedule_lost(exc);
    }

    /// The transport underneath paused (`true`) or resumed writing.
    pub(crate) fn lower_writing(core: &TlsCore, paused: bool) {
        core.driver.lower_paused.set(paused);
        if !paused {
            Tls::pump(core);
        }
    }
}

impl Driver for Tls {
    type Protocol = StreamProtocol;
    type Event = std::convert::Infallible;

    fn describe(core: &Core<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = if core.driver.engine.borrow().is_server_side() {
            "server"
        } else {
            "client"
        };
        write!(f, "<TlsTransport {side} {}>", core.lifecycle().label())
    }

    fn handle(core: &Rc<Core<Self>>) -> Transport {
        Transport::from_backend(core.clone())
    }

    /// Plaintext written and not yet encrypted into the transport underneath.
    fn buffer_size(core: &Core<Self>) -> usize {
        core.driver
            .engine
            .try_borrow()
            .map_or(0, |e| e.buffer_size())
    }

    /// A forced close (abort, a TLS failure, a panic in the application protocol): the
    /// engine stops and the transport underneath is aborted (closed, if an alert waits in it).
    fn discard(core: &Core<Self>) {
        Tls::disarm(core);
        core.driver.engine.borrow_mut().abort();
        if let Some(l) = Tls::lower_of(core) {
            if core.driver.gentle.get() {
                l.close();
            } else {
                l.abort();
            }
        }
    }

    /// Teardown: no timer left, the transport underneath let go of.
    fn release(core: &Core<Self>) {
        Tls::disarm(core);
        let lower = core.driver.lower.borrow_mut().take();
        drop(lower);
        let waiter = core.driver.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = w.set_exception(Error::invalid_state(
                    "the TLS transport was closed before the handshake completed",
                ));
            }
        }
    }
}

impl Layer for Tls {
    fn write(core: &Core<Self>, bufs: &[&[u8]]) -> Result<()> {
        if core.lifecycle().is_closing() {
            if bufs.iter().any(|b| !b.is_empty()) && core.count_dropped_write() {
                tracing::warn!("SSL connection is closed");
            }
            return Ok(());
        }
        {
            let mut engine = core.driver.engine.borrow_mut();
            for b in bufs {
                engine
                    .write_plaintext(b)
                    .map_err(|e| Error::from(io::Error::from(e)))?;
            }
        }
        Tls::pump(core);
        core.maybe_pause();
        Ok(())
    }

    fn lower(core: &Core<Self>) -> Option<Transport> {
        Tls::lower_of(core)
    }

    fn write_eof(_core: &Core<Self>) -> Result<()> {
        Err(Error::invalid_state(
            "write_eof() is not supported by TLS transports: TLS has no half-close",
        ))
    }

    /// Starts the TLS shutdown: pending data, then `close_notify`; `connection_lost` once
    /// the transport underneath is closed.
    fn close(core: &Core<Self>) {
        if !core.mark_closing() {
            return;
        }
        let Some(core) = core.me() else { return };
        if Tls::lower_of(&core).is_none() {
            // Not on a transport yet: nothing to shut down.
            core.force_close(None);
            return;
        }
        let r = core.driver.engine.borrow_mut().begin_shutdown();
        Tls::apply(&core, r);
    }

    fn pause_reading(core: &Core<Self>) {
        core.driver.engine.borrow_mut().pause_reading();
        if let Some(l) = Tls::lower_of(core) {
            l.pause_reading();
        }
    }

    fn resume_reading(core: &Core<Self>) {
        if let Some(l) = Tls::lower_of(core) {
            l.resume_reading();
        }
        let Some(core) = core.me() else { return };
        let r = core.driver.engine.borrow_mut().resume_reading();
        Tls::apply(&core, r);
    }

    /// Ready once the engine holds no plaintext and the transport underneath flushed.
    fn poll_flushed(core: &Core<Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let lower = match Tls::lower_of(core) {
            Some(l) => l.poll_flushed(cx),
            None => Poll::Ready(Ok(())),
        };
        match lower {
            Poll::Ready(Ok(())) if Tls::buffer_size(core) > 0 => {
                // The rest moves to the transport underneath when it resumes writing.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }

    fn get_extra_info(core: &Core<Self>, key: Extra) -> Option<ExtraValue> {
        match key {
            Extra::Custom(name) => match info::extra(core, name) {
                info::Answer::Value(v) => Some(v),
                info::Answer::None => None,
                info::Answer::NotTls => Tls::lower_of(core)?.get_extra_info(key),
            },
            _ => Tls::lower_of(core)?.get_extra_info(key),
        }
    }
}
