//! The subprocess transport: one child, its pipe transports, its exit watcher, and the
//! delivery of [`SubprocessProtocol`] events in asyncio's order (SUB-04).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::thread::JoinHandle;

use loop_core::internal::LoopInternals;
use loop_core::{Error, EventLoop, Exception, ExceptionContext, Fatal, LoopFuture, Remote, Result};
use loop_transport::{
    Extra, ExtraValue, Protocol, StreamReader, StreamReaderProtocol, StreamWriter,
    SubprocessProtocol, Transport, TransportOptions,
};
use rustix::process::Signal;

use crate::child::{self, Child, Defaults, ReapGuard, REAPED_ELSEWHERE};
use crate::options::{self, ExitWatcher, SubprocessOptions};

/// The protocol of a subprocess transport, boxed.
type DynProtocol = Box<dyn SubprocessProtocol<SubprocessTransport>>;

/// What `get_extra_info(Extra::Custom("subprocess"))` returns: the child process as the loop
/// sees it (SUB-11).
///
/// ```
/// let info = loop_subprocess::ProcessInfo { pid: 42, program: "ls".into(), args: vec!["-l".into()] };
/// assert_eq!(info.pid, 42);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The child's pid.
    pub pid: u32,
    /// The program that was run (`/bin/sh` for the shell functions).
    pub program: OsString,
    /// Its arguments (`["-c", cmd]` for the shell functions).
    pub args: Vec<OsString>,
}

/// A protocol event, queued until it can be delivered.
enum Event {
    /// `connection_made`.
    Made,
    /// `pipe_data_received(fd, data)`.
    Data(i32, Vec<u8>),
    /// `pipe_connection_lost(fd, exc)`.
    PipeLost(i32, Option<io::Error>),
    /// `process_exited()`.
    Exited,
    /// `pause_writing()` (stdin).
    Pause,
    /// `resume_writing()` (stdin).
    Resume,
    /// `connection_lost(None)`.
    Lost,
}

impl Event {
    fn method(&self) -> &'static str {
        match self {
            Event::Made => "connection_made",
            Event::Data(..) => "pipe_data_received",
            Event::PipeLost(..) => "pipe_connection_lost",
            Event::Exited => "process_exited",
            Event::Pause => "pause_writing",
            Event::Resume => "resume_writing",
            Event::Lost => "connection_lost",
        }
    }

    fn apply(self, p: &mut dyn SubprocessProtocol<SubprocessTransport>, t: &SubprocessTransport) {
        match self {
            Event::Made => p.connection_made(t),
            Event::Data(fd, data) => p.pipe_data_received(fd, &data),
            Event::PipeLost(fd, exc) => p.pipe_connection_lost(fd, exc),
            Event::Exited => p.process_exited(),
            Event::Pause => p.pause_writing(),
            Event::Resume => p.resume_writing(),
            Event::Lost => p.connection_lost(None),
        }
    }
}

/// How the exit is being watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    /// Not yet started.
    None,
    /// A pidfd registered with `add_reader`.
    Pidfd(RawFd),
    /// A waiter thread.
    Thread,
    /// The status was collected.
    Done,
}

/// One pipe of the child.
struct Pipe {
    /// The pipe transport.
    transport: Transport,
    /// Its `connection_lost` ran.
    disconnected: bool,
}

/// Mutable state of a subprocess transport.
struct State {
    /// The return code, once the exit was observed.
    returncode: Option<i32>,
    /// `close()` was called.
    closed: bool,
    /// `connection_made` was delivered (or the setup was abandoned): events flow.
    started: bool,
    /// Exit and pipe closures are all in; `connection_lost` is scheduled.
    finished: bool,
    /// `connection_lost` was delivered: signals now fail with `ESRCH`.
    lost: bool,
    /// The pipes, by child fd.
    pipes: [Option<Pipe>; 3],
    /// `wait()`s started before the exit was observed (SUB-17).
    exit_waiters: Vec<LoopFuture<i32>>,
    /// The exit watcher.
    watch: Watch,
}

/// The protocol and its pending events.
struct ProtoSlot {
    /// The protocol, when no method of it is running.
    current: Option<DynProtocol>,
    /// One of its methods is running.
    in_call: bool,
    /// The setup was abandoned before `connection_made`: nothing is delivered.
    suppressed: bool,
    /// `connection_lost` was delivered or the loop closed: the protocol is dropped.
    gone: bool,
    /// Events waiting for `connection_made` or for the running method to return.
    queue: VecDeque<Event>,
}

/// The shared part of a [`SubprocessTransport`].
pub(crate) struct Inner {
    /// Key in the loop's registry.
    id: u64,
    /// The child.
    child: Arc<Child>,
    /// What `get_extra_info("subprocess")` gives.
    info: Rc<ProcessInfo>,
    /// The loop, until `connection_lost` ran.
    lp: RefCell<Option<EventLoop>>,
    /// State.
    st: RefCell<State>,
    /// The protocol.
    proto: RefCell<ProtoSlot>,
    /// The waiter thread, if any.
    thread: RefCell<Option<JoinHandle<()>>>,
}

/// A running (or finished) child process driven by the loop: asyncio's `SubprocessTransport`.
///
/// Made by [`SubprocessExt::subprocess_exec`](crate::SubprocessExt::subprocess_exec) /
/// [`subprocess_shell`](crate::SubprocessExt::subprocess_shell), and underlying every
/// [`Process`](crate::Process). A cheap clonable handle; the loop keeps the transport alive
/// until the child exited and its pipes closed.
///
/// # Examples
///
/// ```
/// use loop_subprocess::{SubprocessExt, SubprocessOptions, SubprocessProtocol, SubprocessTransport};
///
/// struct Quiet;
/// impl SubprocessProtocol<SubprocessTransport> for Quiet {}
///
/// let lp = loop_core::EventLoop::new()?;
/// let lp2 = lp.clone();
/// let t = lp.run_until_complete(async move {
///     lp2.subprocess_exec(|| Quiet, "true", [""; 0], SubprocessOptions::new()).await
/// })??;
/// assert!(t.get_pid() > 0);
/// assert!(t.get_pipe_transport(1).is_some()); // PIPE by default
/// t.close();
/// lp.close()?;
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Clone)]
pub struct SubprocessTransport {
    /// The shared transport.
    pub(crate) inner: Rc<Inner>,
}

/// The per-loop registry of children that are not finished: it keeps their transports alive,
/// lets a waiter thread's message find its transport, and lets `close()` of the loop kill and
/// collect what is left.
#[derive(Default)]
struct Registry {
    /// The next id.
    next_id: Cell<u64>,
    /// Unfinished transports.
    live: RefCell<BTreeMap<u64, Rc<Inner>>>,
}

fn registry(lp: &EventLoop) -> Rc<Registry> {
    lp.extension(|lp| {
        lp.on_close(loop_closed);
        Registry::default()
    })
}

/// The loop is closing: children still running are killed and collected (asyncio kills them
/// when their unclosed transport is collected), protocols are dropped without
/// `connection_lost`, as for every transport.
fn loop_closed(lp: &EventLoop) {
    let reg = registry(lp);
    let all: Vec<Rc<Inner>> = std::mem::take(&mut *reg.live.borrow_mut())
        .into_values()
        .collect();
    for inner in all {
        inner.loop_closed(lp);
    }
}

/// The protocol of a pipe transport of `subprocess_exec`: forwards to the subprocess protocol.
struct PipeProto {
    /// The child fd (0, 1, 2).
    fd: usize,
    /// The subprocess transport.
    core: Weak<Inner>,
}

impl Protocol for PipeProto {
    fn data_received(&mut self, data: &[u8]) {
        if let Some(c) = self.core.upgrade() {
            c.pipe_data(self.fd, data);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(c) = self.core.upgrade() {
            c.deliver(Event::Pause);
        }
    }

    fn resume_writing(&mut self) {
        if let Some(c) = self.core.upgrade() {
            c.deliver(Event::Resume);
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(c) = self.core.upgrade() {
            c.pipe_lost(self.fd, exc);
        }
    }
}

/// How the pipes are connected.
pub(crate) enum Mode {
    /// To the subprocess protocol (`subprocess_exec`).
    Forward,
    /// To streams (`create_subprocess_exec`), with this reader limit.
    Streams(usize),
}

/// The streams made in [`Mode::Streams`].
#[derive(Default)]
pub(crate) struct Streams {
    /// stdin.
    pub(crate) stdin: Option<StreamWriter>,
    /// stdout.
    pub(crate) stdout: Option<StreamReader>,
    /// stderr.
    pub(crate) stderr: Option<StreamReader>,
}

/// Abandons a setup that did not complete (error or cancellation, SUB-12, SUB-13): the child is
/// killed and collected, the pipes closed, the protocol never called.
struct SetupGuard(Option<Rc<Inner>>);

impl Drop for SetupGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.abort();
        }
    }
}

/// Spawns and connects a child: the common part of the four public functions.
pub(crate) async fn launch(
    lp: EventLoop,
    protocol: DynProtocol,
    program: OsString,
    args: Vec<OsString>,
    mut options: SubprocessOptions,
    defaults: Defaults,
    mode: Mode,
) -> Result<(SubprocessTransport, Streams)> {
    options::validate(&program, &args, &options)?;
    if lp.is_closed() {
        return Err(Error::Closed);
    }
    let watcher = options.exit_watcher;
    let spawned = child::spawn(&program, &args, &mut options, defaults)?;
    let reg = registry(&lp);
    let id = reg.next_id.get();
    reg.next_id.set(id + 1);
    let info = Rc::new(ProcessInfo {
        pid: spawned.child.pid(),
        program,
        args,
    });
    let inner = Rc::new(Inner {
        id,
        child: spawned.child,
        info: info.clone(),
        lp: RefCell::new(Some(lp.clone())),
        st: RefCell::new(State {
            returncode: None,
            closed: false,
            started: false,
            finished: false,
            lost: false,
            pipes: [None, None, None],
            exit_waiters: Vec::new(),
            watch: Watch::None,
        }),
        proto: RefCell::new(ProtoSlot {
            current: Some(protocol),
            in_call: false,
            suppressed: false,
            gone: false,
            queue: VecDeque::new(),
        }),
        thread: RefCell::new(None),
    });
    reg.live.borrow_mut().insert(id, inner.clone());
    let mut guard = SetupGuard(Some(inner.clone()));
    if let Err(e) = inner.start_watch(&lp, watcher) {
        // Nobody would collect the child: kill and collect it now.
        let _ = inner.child.signal(Some(Signal::KILL));
        let rc = inner.child.reap_blocking();
        inner.st.borrow_mut().watch = Watch::Done;
        inner.process_exited(rc);
        return Err(e);
    }

    let mut streams = Streams::default();
    let mut waiters = Vec::new();
    for (fd, end) in spawned.pipes.into_iter().enumerate() {
        let Some(end) = end else { continue };
        let waiter = lp.create_future::<()>();
        waiters.push(waiter.clone());
        let opts = if fd == 0 {
            TransportOptions::write_pipe()
        } else {
            TransportOptions::read_pipe()
        }
        .waiter(waiter)
        .extra("subprocess", info.clone() as Rc<dyn Any>);
        let t = inner.connect_pipe(&lp, fd, end, opts, &mode, &mut streams)?;
        inner.st.borrow_mut().pipes[fd] = Some(Pipe {
            transport: t,
            disconnected: false,
        });
    }
    for w in waiters {
        w.await?;
    }
    let made = lp.create_future::<()>();
    let m = made.clone();
    let me = inner.clone();
    lp.call_soon(move |_| {
        me.start();
        let _ = m.set_result(());
    })?;
    made.await?;
    guard.0 = None;
    Ok((SubprocessTransport { inner }, streams))
}

impl Inner {
    /// Makes the pipe transport of child fd `fd`.
    fn connect_pipe(
        self: &Rc<Self>,
        lp: &EventLoop,
        fd: usize,
        end: OwnedFd,
        opts: TransportOptions,
        mode: &Mode,
        streams: &mut Streams,
    ) -> Result<Transport> {
        let core = Rc::downgrade(self);
        match *mode {
            Mode::Forward => Transport::new(lp, end, PipeProto { fd, core }, opts),
            Mode::Streams(limit) => {
                let opts = opts.on_connection_lost(move || {
                    if let Some(c) = core.upgrade() {
                        c.pipe_lost(fd, None);
                    }
                });
                if fd == 0 {
                    let t = Transport::new(lp, end, StreamReaderProtocol::new(None), opts)?;
                    streams.stdin = Some(StreamWriter::new(t.clone())?);
                    Ok(t)
                } else {
                    let reader = StreamReader::with_limit(limit)?;
                    let t =
                        Transport::new(lp, end, StreamReaderProtocol::new(Some(&reader)), opts)?;
                    reader.set_transport(t.clone());
                    if fd == 1 {
                        streams.stdout = Some(reader);
                    } else {
                        streams.stderr = Some(reader);
                    }
                    Ok(t)
                }
            }
        }
    }

    /// Starts watching for the exit (see [`ExitWatcher`]).
    fn start_watch(self: &Rc<Self>, lp: &EventLoop, watcher: ExitWatcher) -> Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if watcher == ExitWatcher::Auto {
            match self.start_pidfd(lp) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(
                    "no pidfd for pid {} ({e}); watching it with a thread",
                    self.child.pid()
                ),
            }
        }
        let _ = watcher;
        self.start_thread(lp)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn start_pidfd(self: &Rc<Self>, lp: &EventLoop) -> Result<()> {
        let weak = Rc::downgrade(self);
        let raw = self.child.with_new_pidfd(|fd| {
            let raw = fd.as_raw_fd();
            lp.add_reader(fd, move |lp| match weak.upgrade() {
                Some(inner) => inner.pidfd_ready(lp, raw),
                None => {
                    let _ = lp.remove_reader(raw);
                }
            })?;
            Ok(raw)
        })?;
        self.st.borrow_mut().watch = Watch::Pidfd(raw);
        Ok(())
    }

    /// The pidfd is readable: the child exited.
    fn pidfd_ready(self: &Rc<Self>, lp: &EventLoop, raw: RawFd) {
        let Some(rc) = self.child.try_reap() else {
            return;
        };
        let _ = lp.remove_reader(raw);
        self.child.close_pidfd();
        self.st.borrow_mut().watch = Watch::Done;
        self.process_exited(rc);
    }

    fn start_thread(self: &Rc<Self>, lp: &EventLoop) -> Result<()> {
        let child = self.child.clone();
        let remote = lp.remote();
        let id = self.id;
        let handle = std::thread::Builder::new()
            .name(child::next_thread_name())
            .spawn(move || waiter_thread(child, remote, id))?;
        *self.thread.borrow_mut() = Some(handle);
        self.st.borrow_mut().watch = Watch::Thread;
        Ok(())
    }

    /// The waiter thread saw the exit; collect the status here, on the loop's thread.
    fn thread_reported(self: &Rc<Self>) {
        let rc = match self.child.try_reap() {
            Some(rc) => rc,
            None => self.child.reap_blocking(),
        };
        let handle = self.thread.borrow_mut().take();
        if let Some(h) = handle {
            // It is returning from `call_soon_threadsafe`: this does not wait.
            let _ = h.join();
        }
        self.st.borrow_mut().watch = Watch::Done;
        self.process_exited(rc);
    }

    fn loop_(&self) -> Option<EventLoop> {
        self.lp.borrow().clone()
    }

    fn debug(&self) -> bool {
        self.lp.borrow().as_ref().is_some_and(|lp| lp.get_debug())
    }

    /// Delivers `connection_made`, then what queued up meanwhile.
    fn start(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.started {
                return;
            }
            st.started = true;
        }
        self.proto.borrow_mut().queue.push_front(Event::Made);
        self.drain();
        self.try_finish();
    }

    /// The setup failed or was cancelled.
    fn abort(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if !st.started {
                st.started = true;
                let mut p = self.proto.borrow_mut();
                p.suppressed = true;
                p.queue.clear();
            }
        }
        self.close();
        self.try_finish();
    }

    /// Queues an event and delivers what can be delivered.
    fn deliver(self: &Rc<Self>, ev: Event) {
        {
            let mut p = self.proto.borrow_mut();
            if p.suppressed || p.gone {
                return;
            }
            p.queue.push_back(ev);
        }
        self.drain();
    }

    /// Delivers queued events while no protocol method runs.
    fn drain(self: &Rc<Self>) {
        if !self.st.borrow().started {
            return;
        }
        loop {
            let ev = {
                let mut p = self.proto.borrow_mut();
                if p.suppressed || p.gone {
                    p.queue.clear();
                    return;
                }
                if p.in_call {
                    return;
                }
                match p.queue.pop_front() {
                    Some(ev) => ev,
                    None => return,
                }
            };
            let method = ev.method();
            self.invoke(method, move |p, t| ev.apply(p, t));
        }
    }

    /// Calls one protocol method with the protocol taken out of its slot (so that whatever it
    /// calls on the transport never finds it borrowed); a panic is reported to the loop's
    /// exception handler and the transport goes on.
    fn invoke(
        self: &Rc<Self>,
        method: &'static str,
        f: impl FnOnce(&mut dyn SubprocessProtocol<SubprocessTransport>, &SubprocessTransport),
    ) {
        let mut p = {
            let mut slot = self.proto.borrow_mut();
            if slot.in_call || slot.gone {
                return;
            }
            let Some(p) = slot.current.take() else { return };
            slot.in_call = true;
            p
        };
        let name = (*p).protocol_type_name();
        let t = SubprocessTransport {
            inner: self.clone(),
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut *p, &t)));
        let leftover = {
            let mut slot = self.proto.borrow_mut();
            slot.in_call = false;
            if slot.gone {
                Some(p)
            } else {
                slot.current = Some(p);
                None
            }
        };
        drop(leftover);
        if let Err(payload) = r {
            if payload.is::<Fatal>() {
                resume_unwind(payload);
            }
            let exc = Exception::from_panic(&*payload);
            drop(payload);
            let ctx = ExceptionContext::new(format!("protocol.{method}() call failed."))
                .with_exception(Error::Exception(exc))
                .with_extra("transport", format!("{t:?}"))
                .with_extra("protocol", name);
            match self.loop_() {
                Some(lp) => lp.call_exception_handler(&ctx),
                None => tracing::error!("{}", ctx.render()),
            }
        }
    }

    /// Data from the child's stdout or stderr.
    fn pipe_data(self: &Rc<Self>, fd: usize, data: &[u8]) {
        let direct = {
            let p = self.proto.borrow();
            !p.in_call && !p.suppressed && !p.gone && p.queue.is_empty()
        } && self.st.borrow().started;
        if direct {
            // Nothing queued and nothing running: no copy.
            self.invoke("pipe_data_received", |p, _| {
                p.pipe_data_received(fd as i32, data)
            });
            self.drain();
        } else {
            self.deliver(Event::Data(fd as i32, data.to_vec()));
        }
    }

    /// A pipe transport's `connection_lost` ran.
    fn pipe_lost(self: &Rc<Self>, fd: usize, exc: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            match st.pipes.get_mut(fd).and_then(Option::as_mut) {
                Some(p) if !p.disconnected => p.disconnected = true,
                _ => return,
            }
        }
        if self.loop_().map_or(true, |lp| lp.is_closed()) {
            return;
        }
        self.deliver(Event::PipeLost(fd as i32, exc));
        self.try_finish();
    }

    /// The child exited with `rc`.
    fn process_exited(self: &Rc<Self>, rc: i32) {
        self.st.borrow_mut().returncode = Some(rc);
        if self.debug() {
            tracing::info!(
                "{:?} exited with return code {rc}",
                SubprocessTransport {
                    inner: self.clone()
                }
            );
        }
        self.deliver(Event::Exited);
        self.try_finish();
    }

    /// Schedules `connection_lost` once the child exited and every pipe closed.
    fn try_finish(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            let ready = st.started
                && !st.finished
                && st.returncode.is_some()
                && st
                    .pipes
                    .iter()
                    .all(|p| p.as_ref().map_or(true, |p| p.disconnected));
            if !ready {
                return;
            }
            st.finished = true;
        }
        if let Some(lp) = self.loop_() {
            let me = self.clone();
            if lp.call_soon(move |_| me.connection_lost()).is_ok() {
                return;
            }
        }
        self.finalize();
    }

    fn connection_lost(self: &Rc<Self>) {
        self.deliver(Event::Lost);
        self.finalize();
    }

    /// After `connection_lost`: wakes `wait()`ers, drops the protocol (breaking the
    /// protocol ↔ transport cycle), leaves the registry.
    fn finalize(self: &Rc<Self>) {
        let (waiters, rc) = {
            let mut st = self.st.borrow_mut();
            st.lost = true;
            (std::mem::take(&mut st.exit_waiters), st.returncode)
        };
        let rc = rc.unwrap_or(REAPED_ELSEWHERE);
        for w in waiters {
            if !w.done() {
                let _ = w.set_result(rc);
            }
        }
        self.drop_protocol();
        let lp = self.lp.borrow_mut().take();
        if let Some(lp) = lp {
            registry(&lp).live.borrow_mut().remove(&self.id);
        }
    }

    fn drop_protocol(&self) {
        let proto = {
            let mut p = self.proto.borrow_mut();
            p.gone = true;
            p.queue.clear();
            p.current.take()
        };
        drop(proto);
    }

    /// See [`loop_closed`].
    fn loop_closed(self: &Rc<Self>, lp: &EventLoop) {
        if !self.child.has_exited() {
            tracing::debug!(
                "the loop closed while child pid {} was running: killing it",
                self.child.pid()
            );
            let _ = self.child.signal(Some(Signal::KILL));
        }
        let watch = self.st.borrow().watch;
        match watch {
            Watch::Pidfd(raw) => {
                let _ = lp.remove_reader(raw);
                let rc = self.child.reap_blocking();
                self.child.close_pidfd();
                self.st.borrow_mut().returncode.get_or_insert(rc);
            }
            // The waiter thread collects the status when it finds the loop closed.
            Watch::Thread => drop(self.thread.borrow_mut().take()),
            Watch::None => {
                let rc = self.child.reap_blocking();
                self.st.borrow_mut().returncode.get_or_insert(rc);
            }
            Watch::Done => {}
        }
        {
            let mut st = self.st.borrow_mut();
            st.watch = Watch::Done;
            st.finished = true;
            st.lost = true;
            st.exit_waiters.clear();
        }
        self.drop_protocol();
        let lp = self.lp.borrow_mut().take();
        drop(lp);
    }

    /// `close()`: closes the pipes; kills the child if it has not exited (SUB-10).
    fn close(&self) {
        let pipes: Vec<Transport> = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.pipes
                .iter()
                .flatten()
                .map(|p| p.transport.clone())
                .collect()
        };
        for t in pipes {
            t.close();
        }
        if !self.child.has_exited() {
            if self.debug() {
                tracing::warn!("Close running child process: kill pid {}", self.child.pid());
            } else {
                tracing::debug!("Close running child process: kill pid {}", self.child.pid());
            }
            let _ = self.child.signal(Some(Signal::KILL));
        }
    }
}

/// The body of a waiter thread: waits for the exit without collecting it, then hands the child
/// to the loop. If the loop is closed, the message is dropped and its guard collects the
/// status here.
fn waiter_thread(child: Arc<Child>, remote: Remote, id: u64) {
    child.wait_exit_nowait();
    let pid = child.pid();
    let guard = ReapGuard(Some(child));
    let sent = remote.call_soon_threadsafe(move |lp| {
        let mut guard = guard;
        let Some(child) = guard.disarm() else { return };
        let inner = registry(lp).live.borrow().get(&id).cloned();
        match inner {
            Some(inner) => inner.thread_reported(),
            None => {
                child.try_reap();
            }
        }
    });
    if sent.is_err() {
        tracing::warn!("Loop that handles pid {pid} is closed");
    }
}

/// The error of signalling a process whose transport delivered `connection_lost` (asyncio's
/// `ProcessLookupError`).
fn process_lookup_error() -> Error {
    io::Error::from_raw_os_error(libc::ESRCH).into()
}

impl SubprocessTransport {
    /// The child's pid.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "true", [""; 0], SubprocessOptions::new()).await
    /// })??;
    /// assert!(t.get_pid() > 1);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_pid(&self) -> u32 {
        self.inner.info.pid
    }

    /// `None` while the child runs (or before the loop noticed its exit), then its return code:
    /// the exit code, or `-N` if signal N killed it (SUB-05).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", ["10"], SubprocessOptions::new()).await
    /// })??;
    /// assert_eq!(t.get_returncode(), None);
    /// t.kill()?;
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_returncode(&self) -> Option<i32> {
        self.inner.st.borrow().returncode
    }

    /// The pipe transport of child fd `fd` (0, 1 or 2), or `None` if that stream is not a
    /// pipe (SUB-06). Write to fd 0's transport to feed the child; closing it gives the child
    /// EOF (SUB-07).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     let o = SubprocessOptions::new().stderr(Stdio::Stdout);
    ///     lp2.subprocess_exec(|| Q, "cat", [""; 0], o).await
    /// })??;
    /// assert!(t.get_pipe_transport(0).is_some());
    /// assert!(t.get_pipe_transport(2).is_none());
    /// t.get_pipe_transport(0).unwrap().close(); // cat sees EOF and exits
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let st = self.inner.st.borrow();
        let idx = usize::try_from(fd).ok()?;
        st.pipes.get(idx)?.as_ref().map(|p| p.transport.clone())
    }

    /// Sends signal `sig` to the child (0 only checks). A child that already exited is left
    /// alone, silently (SUB-09); signals never reach another process that reused the pid.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a number that is not a signal; an `ESRCH` I/O error
    /// (asyncio's `ProcessLookupError`) once the transport delivered `connection_lost`; the OS
    /// error of `kill` / `pidfd_send_signal` otherwise (`EPERM`).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", ["10"], SubprocessOptions::new()).await
    /// })??;
    /// t.send_signal(libc::SIGHUP)?;
    /// assert!(t.send_signal(12345).is_err());
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        let s = child::to_signal(sig)?;
        if self.inner.st.borrow().lost {
            return Err(process_lookup_error());
        }
        self.inner.child.signal(s).map_err(Error::from)
    }

    /// `send_signal(SIGTERM)`.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", ["10"], SubprocessOptions::new()).await
    /// })??;
    /// t.terminate()?;
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn terminate(&self) -> Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// `send_signal(SIGKILL)`.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", ["10"], SubprocessOptions::new()).await
    /// })??;
    /// t.kill()?;
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Closes the pipe transports and, if the child has not exited (checked without collecting
    /// its status), kills it with SIGKILL; a child that already exited is not signalled, even
    /// if the loop has not noticed yet. Idempotent (SUB-10). The protocol still gets the
    /// remaining `pipe_connection_lost`, `process_exited` and `connection_lost` calls.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", ["10"], SubprocessOptions::new()).await
    /// })??;
    /// t.close();
    /// t.close();
    /// assert!(t.is_closing());
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn close(&self) {
        self.inner.close()
    }

    /// True once [`close`](Self::close) was called (a transport that finished on its own
    /// answers false, SUB-10).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "true", [""; 0], SubprocessOptions::new()).await
    /// })??;
    /// assert!(!t.is_closing());
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closed
    }

    /// Extra information: `Extra::Custom("subprocess")` gives the [`ProcessInfo`] of the child
    /// (SUB-11); other keys give `None`.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol<SubprocessTransport> for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "true", [""; 0], SubprocessOptions::new()).await
    /// })??;
    /// let v = t.get_extra_info(loop_transport::Extra::Custom("subprocess")).unwrap();
    /// assert_eq!(v.downcast_ref::<ProcessInfo>().unwrap().pid, t.get_pid());
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_extra_info(&self, key: Extra) -> Option<ExtraValue> {
        match key {
            Extra::Custom("subprocess") => Some(ExtraValue::Value(self.inner.info.clone())),
            _ => None,
        }
    }

    /// Calls `f` with the protocol as its concrete type `P`; `None` if it is another type, if
    /// one of its methods is running, or once it was dropped (after `connection_lost`).
    ///
    /// # Panics
    ///
    /// A panic of `f` unwinds to the caller (the protocol is put back first).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl SubprocessProtocol<SubprocessTransport> for Count {
    ///     fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) { self.0 += data.len(); }
    /// }
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let t = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(Count::default, "sleep", ["10"], SubprocessOptions::new()).await
    /// })??;
    /// assert_eq!(t.with_protocol(|c: &mut Count| c.0), Some(0));
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn with_protocol<P: 'static, R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        let mut p = {
            let mut slot = self.inner.proto.borrow_mut();
            if slot.in_call || slot.gone {
                return None;
            }
            let p = slot.current.take()?;
            slot.in_call = true;
            p
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            let d: &mut dyn SubprocessProtocol<SubprocessTransport> = &mut *p;
            d.as_any_mut().downcast_mut::<P>().map(f)
        }));
        {
            let mut slot = self.inner.proto.borrow_mut();
            slot.in_call = false;
            slot.current = Some(p);
        }
        self.inner.drain();
        match r {
            Ok(v) => v,
            Err(payload) => resume_unwind(payload),
        }
    }

    /// Waits for the exit: at once if the exit was already observed; otherwise until the
    /// child exited *and* its pipes closed (`connection_lost`), asyncio's `_wait` (SUB-17).
    pub(crate) async fn wait(&self) -> Result<i32> {
        let fut = {
            let mut st = self.inner.st.borrow_mut();
            if let Some(rc) = st.returncode {
                return Ok(rc);
            }
            if st.lost {
                return Ok(REAPED_ELSEWHERE);
            }
            let Some(lp) = self.inner.loop_() else {
                return Err(Error::Closed);
            };
            let f = lp.create_future::<i32>();
            st.exit_waiters.push(f.clone());
            f
        };
        fut.await
    }
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        write!(f, "<SubprocessTransport pid={}", self.inner.info.pid)?;
        if st.closed {
            f.write_str(" closed")?;
        }
        match st.returncode {
            Some(rc) => write!(f, " returncode={rc}")?,
            None => f.write_str(" running")?,
        }
        match st.watch {
            Watch::Pidfd(fd) => write!(f, " watched-by=pidfd:{fd}")?,
            Watch::Thread => f.write_str(" watched-by=thread")?,
            Watch::None | Watch::Done => {}
        }
        for (fd, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            if let Some(p) = &st.pipes[fd] {
                match p.transport.fileno() {
                    Some(n) => write!(f, " {name}=<pipe fd={n}>")?,
                    None => write!(f, " {name}=<closed pipe>")?,
                }
            }
        }
        f.write_str(">")
    }
}
