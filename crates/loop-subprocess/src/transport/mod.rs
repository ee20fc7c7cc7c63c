//! The subprocess transport: one child, its pipe transports, its exit watcher, and the
//! delivery of [`SubprocessProtocol`] events in asyncio's order (SUB-04), on loop-transport's
//! engine (protocol cell and call policy, lifecycle, `connection_lost` once, the loop's live
//! set). `driver` holds the engine hooks, the pipe and exit events and the exit watchers;
//! `launch` spawns and connects.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use loop_core::{Error, LoopFuture, Result};
use loop_transport::engine::{Core, EngineProtocol};
use loop_transport::{Extra, ExtraValue, ProtocolAny, ProtocolRef, Transport};

use crate::child::{self, Child, REAPED_ELSEWHERE};

mod driver;
pub(crate) mod launch;

/// A subprocess protocol: asyncio's `SubprocessProtocol`, driven by a [`SubprocessTransport`].
///
/// Order (SUB-04): `connection_made` first; per fd, `pipe_data_received`* then one
/// `pipe_connection_lost`; `process_exited` once, in no fixed order relative to the pipe
/// events; `connection_lost` last.
///
/// # Examples
///
/// ```
/// use loop_subprocess::SubprocessProtocol;
///
/// #[derive(Default)]
/// struct Output {
///     stdout: Vec<u8>,
///     exited: bool,
/// }
///
/// impl SubprocessProtocol for Output {
///     fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
///         if fd == 1 {
///             self.stdout.extend_from_slice(data);
///         }
///     }
///     fn process_exited(&mut self) {
///         self.exited = true;
///     }
/// }
///
/// let mut o = Output::default();
/// o.pipe_data_received(1, b"hi");
/// assert_eq!(o.stdout, b"hi");
/// ```
pub trait SubprocessProtocol: ProtocolAny {
    /// The process was started and its pipes are connected.
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let _ = transport;
    }

    /// The child wrote `data` to its stdout (`fd == 1`) or stderr (`fd == 2`).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// One of the child's pipes closed (`exc` is the error, if any).
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }

    /// The child exited.
    fn process_exited(&mut self) {}

    /// As `Protocol::pause_writing` (for the stdin pipe).
    fn pause_writing(&mut self) {}

    /// As `Protocol::resume_writing`.
    fn resume_writing(&mut self) {}

    /// The process exited and every pipe is closed.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}

/// The protocol of a subprocess transport, as the engine drives it.
pub(crate) struct SubProto(pub(crate) Box<dyn SubprocessProtocol>);

impl EngineProtocol for SubProto {
    type Handle = SubprocessTransport;

    fn type_name(&self) -> &'static str {
        (*self.0).protocol_type_name()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        (*self.0).as_any_mut()
    }

    fn connection_made(&mut self, transport: &SubprocessTransport) {
        self.0.connection_made(transport)
    }

    fn pause_writing(&mut self) {
        self.0.pause_writing()
    }

    fn resume_writing(&mut self) {
        self.0.resume_writing()
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.connection_lost(exc)
    }
}

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

/// A protocol event beyond pause / resume, queued until it can be delivered.
pub(crate) enum Event {
    /// `pipe_data_received(fd, data)`.
    Data(i32, Vec<u8>),
    /// `pipe_connection_lost(fd, exc)`.
    PipeLost(i32, Option<io::Error>),
    /// `process_exited()`.
    Exited,
}

/// How the exit is being watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Not yet started.
    None,
    /// The exit fd (a pidfd, or a kqueue with the process filter) registered with
    /// `add_reader`.
    ExitFd(RawFd),
    /// A waiter thread.
    Thread,
    /// The status was collected.
    Done,
}

/// One pipe of the child.
pub(crate) struct Pipe {
    /// The pipe transport.
    pub(crate) transport: Transport,
    /// Its `connection_lost` ran.
    pub(crate) disconnected: bool,
}

/// Mutable state of a subprocess transport (the engine's lifecycle says whether
/// `connection_made` ran, `connection_lost` is scheduled, and the transport was torn down).
pub(crate) struct State {
    /// The return code, once the exit was observed.
    pub(crate) returncode: Option<i32>,
    /// `close()` was called (asyncio's `is_closing()`: a transport that finished on its own
    /// is not closing).
    pub(crate) closed: bool,
    /// The pipes, by child fd.
    pub(crate) pipes: [Option<Pipe>; 3],
    /// `wait()`s started before the exit was observed (SUB-17).
    pub(crate) exit_waiters: Vec<LoopFuture<i32>>,
    /// The exit watcher.
    pub(crate) watch: Watch,
}

/// The subprocess transport's own part (the engine's [`Core`] holds the rest).
pub(crate) struct SubprocessDriver {
    /// The child.
    pub(crate) child: Arc<Child>,
    /// What `get_extra_info("subprocess")` gives.
    pub(crate) info: Rc<ProcessInfo>,
    /// State.
    pub(crate) st: RefCell<State>,
    /// The waiter thread, if any.
    pub(crate) thread: RefCell<Option<JoinHandle<()>>>,
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
/// impl SubprocessProtocol for Quiet {}
///
/// let lp = loop_core::EventLoop::new()?;
/// let lp2 = lp.clone();
/// let (t, _p) = lp.run_until_complete(async move {
///     lp2.subprocess_exec(|| Quiet, "true", SubprocessOptions::new()).await
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
    pub(crate) inner: Rc<Core<SubprocessDriver>>,
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
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "true", SubprocessOptions::new()).await
    /// })??;
    /// assert!(t.get_pid() > 1);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_pid(&self) -> u32 {
        self.inner.driver.info.pid
    }

    /// `None` while the child runs (or before the loop noticed its exit), then its return code:
    /// the exit code, or `-N` if signal N killed it (SUB-05).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", SubprocessOptions::new().arg("10")).await
    /// })??;
    /// assert_eq!(t.get_returncode(), None);
    /// t.kill()?;
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_returncode(&self) -> Option<i32> {
        self.inner.driver.st.borrow().returncode
    }

    /// The pipe transport of child fd `fd` (0, 1 or 2), or `None` if that stream is not a
    /// pipe (SUB-06). Write to fd 0's transport to feed the child; closing it gives the child
    /// EOF (SUB-07).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     let o = SubprocessOptions::new().stderr(Stdio::Stdout);
    ///     lp2.subprocess_exec(|| Q, "cat", o).await
    /// })??;
    /// assert!(t.get_pipe_transport(0).is_some());
    /// assert!(t.get_pipe_transport(2).is_none());
    /// t.get_pipe_transport(0).unwrap().close(); // cat sees EOF and exits
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let st = self.inner.driver.st.borrow();
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
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", SubprocessOptions::new().arg("10")).await
    /// })??;
    /// t.send_signal(libc::SIGHUP)?;
    /// assert!(t.send_signal(12345).is_err());
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        let s = child::to_signal(sig)?;
        if self.inner.lifecycle().is_torn_down() {
            return Err(process_lookup_error());
        }
        self.inner.driver.child.signal(s).map_err(Error::from)
    }

    /// `send_signal(SIGTERM)`.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", SubprocessOptions::new().arg("10")).await
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
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", SubprocessOptions::new().arg("10")).await
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
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "sleep", SubprocessOptions::new().arg("10")).await
    /// })??;
    /// t.close();
    /// t.close();
    /// assert!(t.is_closing());
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn close(&self) {
        SubprocessDriver::close(&self.inner)
    }

    /// True once [`close`](Self::close) was called (a transport that finished on its own
    /// answers false, SUB-10).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "true", SubprocessOptions::new()).await
    /// })??;
    /// assert!(!t.is_closing());
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn is_closing(&self) -> bool {
        self.inner.driver.st.borrow().closed
    }

    /// Extra information: `Extra::Custom("subprocess")` gives the [`ProcessInfo`] of the child
    /// (SUB-11); other keys give `None`.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # struct Q; impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q, "true", SubprocessOptions::new()).await
    /// })??;
    /// let v = t.get_extra_info(loop_transport::Extra::Custom("subprocess")).unwrap();
    /// assert_eq!(v.downcast_ref::<ProcessInfo>().unwrap().pid, t.get_pid());
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn get_extra_info(&self, key: Extra) -> Option<ExtraValue> {
        match key {
            Extra::Custom("subprocess") => Some(ExtraValue::Value(self.inner.driver.info.clone())),
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
    /// impl SubprocessProtocol for Count {
    ///     fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) { self.0 += data.len(); }
    /// }
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _p) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(Count::default, "sleep", SubprocessOptions::new().arg("10")).await
    /// })??;
    /// assert_eq!(t.with_protocol(|c: &mut Count| c.0), Some(0));
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn with_protocol<P: 'static, R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        self.inner.with_protocol(f)
    }

    /// Waits for the exit: at once if the exit was already observed; otherwise until the
    /// child exited *and* its pipes closed (`connection_lost`), asyncio's `_wait` (SUB-17).
    pub(crate) async fn wait(&self) -> Result<i32> {
        let fut = {
            let mut st = self.inner.driver.st.borrow_mut();
            if let Some(rc) = st.returncode {
                return Ok(rc);
            }
            if self.inner.lifecycle().is_torn_down() {
                return Ok(REAPED_ELSEWHERE);
            }
            let Some(lp) = self.inner.get_loop() else {
                return Err(Error::Closed);
            };
            let f = lp.create_future::<i32>();
            st.exit_waiters.push(f.clone());
            f
        };
        fut.await
    }

    /// A typed handle to the protocol that keeps it alive and reachable after
    /// `connection_lost` (what `subprocess_exec` returns beside the transport).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// struct Q(u8);
    /// impl SubprocessProtocol for Q {}
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (t, _) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(|| Q(3), "true", SubprocessOptions::new()).await
    /// })??;
    /// assert_eq!(t.protocol_ref::<Q>().with(|q| q.0), Some(3));
    /// # t.close(); lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn protocol_ref<P: 'static>(&self) -> ProtocolRef<P> {
        self.inner.protocol_ref()
    }
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.describe())
    }
}
