//! The TLS transport's state ([`Tls`], its part of the engine's [`Core`]) and what it does
//! with the engine's events: the handshake and shutdown timers, ciphertext to the transport
//! underneath, plaintext to the application, failures. The calls that make it are in `api`,
//! the transport calls the application makes in `layer`, the layering protocol in `proto`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use loop_core::{Error, EventLoop, LoopFuture, Result};
use loop_timers::{TimerHandle, TimersExt};
use loop_transport::engine::{Core, Driver, Flow, Policy};
use loop_transport::{StreamProtocol, Transport};

use crate::args;
use crate::context::SslContext;
use crate::engine::{Events, TlsEngine};
use crate::error::TlsError;

/// The TLS transport's part of the engine's [`Core`].
pub struct Tls {
    /// The TLS state machine.
    pub(super) engine: RefCell<TlsEngine>,
    /// The context the engine was made from (`sslcontext`).
    pub(super) ctx: SslContext,
    /// The transport underneath, once the layering protocol was installed on it.
    pub(super) lower: RefCell<Option<Transport>>,
    /// The transport underneath paused writing: ciphertext stays in the engine.
    pub(super) lower_paused: Cell<bool>,
    /// The handshake timer, then the shutdown timer.
    pub(super) timer: RefCell<Option<TimerHandle>>,
    /// Completed when the handshake is done (after the application's `connection_made`),
    /// failed with the reason it never will be.
    pub(super) waiter: RefCell<Option<LoopFuture<()>>>,
    /// Deliver `connection_made` to the application (not for `start_tls`, as in asyncio).
    pub(super) call_made: bool,
    /// On a forced close, close the transport underneath gently (a TLS alert waits in its
    /// buffer) rather than aborting it.
    pub(super) gentle: Cell<bool>,
    /// Ciphertext on its way to the transport underneath (kept to reuse its allocation).
    pub(super) scratch: RefCell<Vec<u8>>,
}

/// The core of a TLS transport.
pub(crate) type TlsCore = Core<Tls>;

impl Tls {
    /// A TLS transport driving `app` with `engine`, not yet on a transport.
    pub(crate) fn new_core(
        lp: &EventLoop,
        ctx: &SslContext,
        app: StreamProtocol,
        engine: TlsEngine,
        call_made: bool,
    ) -> Result<Rc<TlsCore>> {
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
    pub(super) fn lower_of(core: &TlsCore) -> Option<Transport> {
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
