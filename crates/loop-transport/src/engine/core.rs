//! [`Core`]: what every transport shares, after uvloop's `UVBaseTransport`: the protocol cell
//! and its call policy, the lifecycle with `connection_made` / `connection_lost` scheduling,
//! write flow control over the transport's buffer size, the live set, the creator's hooks.
//! A transport kind supplies a [`Driver`]: its I/O, its buffer size, its notifications.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use loop_core::{Error, EventLoop, Exception, ExceptionContext, Fatal, LoopFuture, Result};

use super::flow::Flow;
use super::hooks::{self, IoHandler, LoopRef, Readiness};
use super::lifecycle::Lifecycle;
use super::live::{Live, LiveKey, Runtime};
use super::protocol_cell::{EngineProtocol, Note, ProtocolCell};
use super::protocol_ref::{ProtocolHost, ProtocolRef};

/// Once this many writes were dropped on a lost connection, each further one logs a warning
/// (asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`, NET-57).
///
/// ```
/// assert_eq!(loop_transport::LOG_THRESHOLD_FOR_CONNLOST_WRITES, 5);
/// ```
pub const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// How a panic in a protocol method is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Reported as "Fatal error: protocol.\<method\>() call failed.", then the transport is
    /// force-closed with the panic as `connection_lost`'s error.
    Fatal,
    /// Reported as "protocol.\<method\>() failed"; the transport goes on.
    Report,
}

/// Why a protocol method did not run to completion.
#[derive(Debug)]
pub enum CallError {
    /// No protocol to call: one of its methods runs already (never re-entered), or it is gone.
    Absent,
    /// It panicked (reported already, and handled by the policy).
    Panicked(Exception),
}

/// The part of a transport that differs by kind: its I/O and what it buffers.
///
/// Every hook has a default that does nothing, so a driver implements what its kind needs.
/// The engine calls the hooks at fixed points of the transport's life; none is called while a
/// protocol method runs unless that method caused it (a `close()` inside `data_received`).
pub trait Driver: Sized + 'static {
    /// The protocol type the transport drives.
    type Protocol: EngineProtocol;
    /// Notifications of this kind beyond pause / resume (delivered by
    /// [`deliver_event`](Driver::deliver_event)).
    type Event;
    /// How a panic in `connection_made` is handled.
    const MADE_POLICY: Policy = Policy::Fatal;

    /// Writes the transport as its `Debug` shows it (`<Transport fd=5 socket open>`).
    fn describe(core: &Core<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// The handle given to the protocol's `connection_made`.
    fn handle(core: &Rc<Core<Self>>) -> <Self::Protocol as EngineProtocol>::Handle;
    /// Bytes buffered and not yet handed to the OS (flow control, `close()`).
    fn buffer_size(core: &Core<Self>) -> usize {
        let _ = core;
        0
    }
    /// Delivers one notification of this kind (through [`Core::call`]).
    fn deliver_event(core: &Core<Self>, event: Self::Event) {
        let _ = (core, event);
    }
    /// The fd became ready (transports registered through [`hooks::IoSlot`]).
    fn ready(core: &Core<Self>, readiness: Readiness) {
        let _ = (core, readiness);
    }
    /// What the transport watches may have changed: after `connection_made` (start
    /// reading), when closing starts (stop reading), when `connection_lost` is scheduled, when
    /// the buffer is discarded, when the first bytes are buffered (watch writability).
    fn update_interest(core: &Core<Self>) {
        let _ = core;
    }
    /// `connection_made` returned (after [`update_interest`](Driver::update_interest)).
    fn started(core: &Core<Self>) {
        let _ = core;
    }
    /// A force-close: drop what is buffered (and whatever waits on it); interest is
    /// updated after.
    fn discard(core: &Core<Self>) {
        let _ = core;
    }
    /// Teardown: release the fd and what else the transport holds.
    fn release(core: &Core<Self>) {
        let _ = core;
    }
    /// The loop is closing (teardown follows, without `connection_lost`).
    fn loop_closed(core: &Core<Self>, lp: &EventLoop) {
        let _ = (core, lp);
    }
}

/// The shared part of every transport (see the module docs).
pub struct Core<D: Driver> {
    /// Itself.
    me: Weak<Core<D>>,
    /// The loop.
    lp: LoopRef,
    /// Per-loop state.
    rt: Rc<Runtime>,
    /// The protocol.
    cell: ProtocolCell<D::Protocol, Note<D::Event>>,
    /// Lifecycle.
    life: Cell<Lifecycle>,
    /// Write flow control.
    flow: Cell<Flow>,
    /// Writes dropped after close, plus one for the loss itself (NET-57).
    dropped_writes: Cell<u32>,
    /// Key in the live set.
    live: Cell<Option<LiveKey>>,
    /// Completed after `connection_made`.
    waiter: RefCell<Option<LoopFuture<()>>>,
    /// Run after teardown.
    on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
    /// The kind's part.
    pub driver: D,
}

/// `Display` of a core: its driver's description.
struct Describe<'a, D: Driver>(&'a Core<D>);

impl<D: Driver> fmt::Display for Describe<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        D::describe(self.0, f)
    }
}

/// The `io::Error` handed to `connection_lost` for a protocol panic.
// `io::Error::other` is newer than this crate's MSRV.
#[allow(clippy::io_other_error)]
pub fn exception_to_io(exc: &Exception) -> io::Error {
    io::Error::new(io::ErrorKind::Other, Error::Exception(exc.clone()))
}

impl<D: Driver> Core<D> {
    /// A transport of `lp` driving `protocol`, with write limits `flow`. Not yet live: see
    /// [`schedule_made`](Core::schedule_made) and [`make_live`](Core::make_live).
    pub fn new(lp: &EventLoop, protocol: D::Protocol, flow: Flow, driver: D) -> Rc<Core<D>> {
        Rc::new_cyclic(|me| Core {
            me: me.clone(),
            lp: LoopRef::new(lp),
            rt: Runtime::get(lp),
            cell: ProtocolCell::new(protocol),
            life: Cell::new(Lifecycle::new()),
            flow: Cell::new(flow),
            dropped_writes: Cell::new(0),
            live: Cell::new(None),
            waiter: RefCell::new(None),
            on_lost: RefCell::new(None),
            driver,
        })
    }

    /// Adds the transport to the loop's live set (closing the loop tears it down).
    pub fn make_live(self: &Rc<Self>) -> LiveKey {
        let key = self.rt.add(self.clone());
        self.live.set(Some(key));
        key
    }

    /// Schedules `connection_made` through the ready queue; tears the transport down if it
    /// cannot.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] for a closed loop.
    pub fn schedule_made(self: &Rc<Self>) -> Result<()> {
        let r = match self.lp.get_open() {
            Some(lp) => {
                let me = self.clone();
                lp.call_soon(move |_| me.deliver_made()).map(drop)
            }
            None => Err(Error::Closed),
        };
        if r.is_err() {
            self.teardown();
        }
        r
    }

    /// Itself, while alive.
    pub fn me(&self) -> Option<Rc<Core<D>>> {
        self.me.upgrade()
    }

    /// The loop, until teardown.
    pub fn get_loop(&self) -> Option<EventLoop> {
        self.lp.get()
    }

    /// The loop reference.
    pub fn loop_ref(&self) -> &LoopRef {
        &self.lp
    }

    /// The per-loop state.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The protocol cell.
    pub fn cell(&self) -> &ProtocolCell<D::Protocol, Note<D::Event>> {
        &self.cell
    }

    /// The lifecycle state.
    #[inline]
    pub fn lifecycle(&self) -> Lifecycle {
        self.life.get()
    }

    /// The key in the live set, while live.
    pub fn live_key(&self) -> Option<LiveKey> {
        self.live.get()
    }

    /// A future completed right after `connection_made` returned (failed with its panic).
    pub fn set_waiter(&self, waiter: LoopFuture<()>) {
        *self.waiter.borrow_mut() = Some(waiter);
    }

    /// A hook run once at teardown (after `connection_lost`).
    pub fn set_on_lost(&self, f: Box<dyn FnOnce()>) {
        *self.on_lost.borrow_mut() = Some(f);
    }

    /// The transport as its `Debug` shows it.
    pub fn describe(&self) -> String {
        Describe(self).to_string()
    }

    /// Calls a protocol method in place in its cell ([`ProtocolCell::call`]): whatever the
    /// method calls on the transport never finds it borrowed and no method is re-entered. A
    /// panic is caught and handled per `policy`; notifications raised meanwhile are delivered
    /// when it returns.
    #[inline]
    pub fn call<R>(
        &self,
        method: &'static str,
        policy: Policy,
        f: impl FnOnce(&mut D::Protocol) -> R,
    ) -> std::result::Result<R, CallError> {
        let r = self.cell.call(|p| {
            let r = catch_unwind(AssertUnwindSafe(|| f(&mut *p)));
            r.map_err(|payload| (payload, p.type_name()))
        });
        match r {
            Some(Ok(v)) => {
                self.flush();
                Ok(v)
            }
            Some(Err((payload, name))) => Err(self.panicked(method, policy, name, payload)),
            None => Err(CallError::Absent),
        }
    }

    /// [`call`](Core::call) for a caller that only needs the result: `None` if the method did
    /// not run to completion (absent, or it panicked: reported and handled per `policy` as
    /// there). The hot paths use it: a small result stays in registers.
    #[inline]
    pub fn call_quiet<R>(
        &self,
        method: &'static str,
        policy: Policy,
        f: impl FnOnce(&mut D::Protocol) -> R,
    ) -> Option<R> {
        let r = self.cell.call(|p| {
            let r = catch_unwind(AssertUnwindSafe(|| f(&mut *p)));
            r.map_err(|payload| (payload, p.type_name()))
        });
        match r {
            Some(Ok(v)) => {
                self.flush();
                Some(v)
            }
            Some(Err((payload, name))) => {
                drop(self.panicked(method, policy, name, payload));
                None
            }
            None => None,
        }
    }

    /// Reports a protocol panic and applies the policy.
    #[cold]
    fn panicked(
        &self,
        method: &'static str,
        policy: Policy,
        name: &'static str,
        payload: Box<dyn Any + Send>,
    ) -> CallError {
        if payload.is::<Fatal>() {
            resume_unwind(payload);
        }
        let exc = Exception::from_panic(&*payload);
        drop(payload);
        match policy {
            Policy::Fatal => {
                self.report(
                    format!("Fatal error: protocol.{method}() call failed."),
                    &exc,
                    name,
                );
                self.force_close(Some(exception_to_io(&exc)));
            }
            Policy::Report => self.report(format!("protocol.{method}() failed"), &exc, name),
        }
        self.flush();
        CallError::Panicked(exc)
    }

    /// Reports to the loop's exception handler, with the `transport` and `protocol` keys.
    pub fn report(&self, message: String, exc: &Exception, protocol: &str) {
        let ctx = ExceptionContext::new(message)
            .with_exception(Error::Exception(exc.clone()))
            .with_extra("transport", self.describe())
            .with_extra("protocol", protocol);
        match self.lp.get() {
            Some(lp) => lp.call_exception_handler(&ctx),
            None => tracing::error!("{}", ctx.render()),
        }
    }

    /// Delivers a notification: now, or (while a protocol method runs, or while held) after.
    pub fn notify(&self, note: Note<D::Event>) {
        if self.cell.is_detached() {
            return;
        }
        if self.cell.is_quiet() {
            self.deliver_note(note);
            return;
        }
        self.cell.push_note(note);
        if !self.cell.in_call() {
            self.flush();
        }
    }

    /// Delivers the queued notifications (unless held).
    #[inline]
    pub fn flush(&self) {
        if self.cell.has_deliverable() {
            self.flush_queued();
        }
    }

    #[inline(never)]
    fn flush_queued(&self) {
        if self.cell.is_held() {
            return;
        }
        while let Some(note) = self.cell.pop_note() {
            self.deliver_note(note);
        }
    }

    fn deliver_note(&self, note: Note<D::Event>) {
        if self.life.get().is_lost() {
            return;
        }
        match note {
            Note::Pause => {
                let _ = self.call("pause_writing", Policy::Report, |p| p.pause_writing());
            }
            Note::Resume => {
                let _ = self.call("resume_writing", Policy::Report, |p| p.resume_writing());
            }
            Note::Event(e) => D::deliver_event(self, e),
        }
    }

    /// Delivers `connection_made` (scheduled by [`schedule_made`](Core::schedule_made)):
    /// once, unless `connection_lost` ran; notifications held until now follow it. Then the
    /// driver starts reading and the waiter completes.
    pub fn deliver_made(self: &Rc<Self>) {
        let mut life = self.life.get();
        if !life.start() {
            return;
        }
        self.life.set(life);
        self.cell.release();
        let t = D::handle(self);
        let r = self.call("connection_made", D::MADE_POLICY, |p| p.connection_made(&t));
        drop(t);
        self.flush();
        D::update_interest(self);
        D::started(self);
        let waiter = self.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = match r {
                    Err(CallError::Panicked(e)) => w.set_exception(Error::Exception(e)),
                    _ => w.set_result(()),
                };
            }
        }
    }

    /// Marks `connection_made` as done without delivering it (a setup that was abandoned:
    /// the protocol is never called).
    pub fn skip_made(&self) {
        let mut life = self.life.get();
        life.start();
        self.life.set(life);
    }

    /// Marks the transport closing without scheduling anything (a read pipe at EOF, before
    /// `eof_received`); true for the call that did.
    pub fn mark_closing(&self) -> bool {
        let mut life = self.life.get();
        let first = life.close();
        self.life.set(life);
        first
    }

    /// `close()`: closing at once; `connection_lost(None)` once the buffer is empty (now, or
    /// when the driver drained it and calls [`schedule_lost`](Core::schedule_lost)).
    pub fn close(&self) {
        if !self.mark_closing() {
            return;
        }
        D::update_interest(self);
        if D::buffer_size(self) == 0 {
            self.schedule_lost(None);
        }
    }

    /// `abort()` / a fatal error: the buffer is discarded and `connection_lost(exc)` scheduled,
    /// unless it was already.
    pub fn force_close(&self, exc: Option<io::Error>) {
        if self.life.get().lost_scheduled() {
            return;
        }
        self.mark_closing();
        D::discard(self);
        D::update_interest(self);
        self.schedule_lost(exc);
    }

    /// Schedules `connection_lost(exc)` through the ready queue, once (at once if the loop
    /// cannot run it any more).
    pub fn schedule_lost(&self, exc: Option<io::Error>) {
        let mut life = self.life.get();
        if !life.schedule_lost() {
            return;
        }
        self.life.set(life);
        self.dropped_writes.set(self.dropped_writes.get() + 1);
        D::update_interest(self);
        match (self.lp.get_open(), self.me.upgrade()) {
            (Some(lp), Some(me)) => {
                if let Err(e) = lp.call_soon(move |_| me.deliver_lost(exc)) {
                    tracing::error!("cannot schedule connection_lost: {e}");
                }
            }
            _ => self.deliver_lost(exc),
        }
    }

    /// Delivers `connection_lost(exc)`: exactly once, and only to a protocol that got
    /// `connection_made`; never re-entered (every way back here is closed by the lifecycle).
    /// Then tears the transport down.
    pub fn deliver_lost(&self, exc: Option<io::Error>) {
        let mut life = self.life.get();
        let Some(made) = life.begin_lost() else {
            return;
        };
        self.life.set(life);
        self.cell.clear_notes();
        if made {
            let _ = self.call("connection_lost", Policy::Report, |p| {
                p.connection_lost(exc)
            });
        }
        self.teardown();
    }

    /// Releases everything (NET-62): the driver's resources (fd), the protocol (kept alive
    /// only by `ProtocolRef`s), the live-set entry, the waiter (failed if still pending), the
    /// creator's hook (run), the loop reference. Once.
    pub fn teardown(&self) {
        let mut life = self.life.get();
        if !life.tear_down() {
            return;
        }
        self.life.set(life);
        D::release(self);
        self.cell.detach();
        if let Some(key) = self.live.take() {
            drop(self.rt.remove(key));
        }
        let waiter = self.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            if !w.done() {
                let _ = w.set_exception(Error::invalid_state(
                    "the transport was closed before connection_made ran",
                ));
            }
        }
        let hook = self.on_lost.borrow_mut().take();
        if let Some(f) = hook {
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                if p.is::<Fatal>() {
                    resume_unwind(p);
                }
                tracing::error!("on_connection_lost hook panicked");
            }
        }
        self.lp.release();
    }

    /// Data was added to the buffer (the driver's send would have blocked): `first` if the
    /// buffer was empty before (then the driver starts watching writability); pauses the
    /// protocol if the buffer went above the high-water mark.
    pub fn buffered(&self, first: bool) {
        if first {
            D::update_interest(self);
        }
        self.maybe_pause();
    }

    /// NET-64: `pause_writing()` when the buffer went strictly above the high-water mark.
    pub fn maybe_pause(&self) {
        let mut flow = self.flow.get();
        if flow.pause(D::buffer_size(self)) && !self.life.get().is_lost() {
            self.flow.set(flow);
            self.notify(Note::Pause);
        }
    }

    /// NET-64: `resume_writing()` when the buffer drained to the low-water mark or below.
    pub fn maybe_resume(&self) {
        let mut flow = self.flow.get();
        if flow.resume(D::buffer_size(self)) {
            self.flow.set(flow);
            self.notify(Note::Resume);
        }
    }

    /// Sets the write-buffer limits (NET-65); lowering them may pause at once.
    ///
    /// # Errors
    ///
    /// As [`resolve_limits`](super::flow::resolve_limits).
    pub fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        let mut flow = self.flow.get();
        flow.set_limits(high, low)?;
        self.flow.set(flow);
        self.maybe_pause();
        Ok(())
    }

    /// `(low, high)`.
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        self.flow.get().limits()
    }

    /// Counts a write dropped after close; true from the warning threshold on (NET-57).
    pub fn count_dropped_write(&self) -> bool {
        let n = self.dropped_writes.get();
        self.dropped_writes.set(n + 1);
        n >= LOG_THRESHOLD_FOR_CONNLOST_WRITES
    }

    /// `set_protocol`: at once, or when the running protocol method returns.
    pub fn set_protocol(&self, protocol: D::Protocol) {
        self.cell.set(protocol);
    }

    /// The protocol's type name (`None` once gone).
    pub fn protocol_name(&self) -> Option<&'static str> {
        if self.cell.is_detached() {
            return None;
        }
        self.cell.type_name()
    }

    /// `get_protocol()` as the concrete type: `None` if it is another type, one of its
    /// methods runs, or the transport let go of it (after `connection_lost`).
    pub fn with_protocol<P: 'static, R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        if self.cell.is_detached() {
            return None;
        }
        let mut f = Some(f);
        let mut out = None;
        self.with_any(&mut |any| match any.downcast_mut::<P>() {
            Some(p) => {
                out = f.take().map(|f| f(p));
                true
            }
            None => false,
        });
        out
    }

    /// A typed handle to the protocol that keeps it alive after `connection_lost`.
    pub fn protocol_ref<P: 'static>(self: &Rc<Self>) -> ProtocolRef<P> {
        ProtocolRef::new(self.clone())
    }

    /// Queues a readiness event for the driver behind the work already queued.
    pub fn schedule_ready(&self, r: Readiness) {
        if let (Some(lp), Some(me)) = (self.lp.get(), self.me.upgrade()) {
            let _ = hooks::schedule_ready(&lp, me, r);
        }
    }
}

impl<D: Driver> ProtocolHost for Core<D> {
    fn with_any(&self, f: &mut dyn FnMut(&mut dyn Any) -> bool) -> bool {
        let Some(mut p) = self.cell.take() else {
            return false;
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            f(p.as_any_mut()) || f(&mut p as &mut dyn Any)
        }));
        self.cell.put_back(p);
        match r {
            Ok(hit) => {
                self.flush();
                hit
            }
            Err(payload) => resume_unwind(payload),
        }
    }

    fn add_ref(&self) {
        self.cell.add_ref();
    }

    fn release_ref(&self) {
        self.cell.release_ref();
    }

    fn describe(&self) -> String {
        Core::describe(self)
    }
}

impl<D: Driver> Live for Core<D> {
    fn loop_closed(&self, lp: &EventLoop) {
        D::loop_closed(self, lp);
        self.teardown();
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
}

impl<D: Driver> IoHandler for Core<D> {
    #[inline]
    fn ready(&self, _lp: &EventLoop, readiness: Readiness) {
        D::ready(self, readiness)
    }
}
