//! Subprocesses for evloop: asyncio's `loop.subprocess_exec` / `loop.subprocess_shell`
//! (a [`SubprocessProtocol`] driven by a [`SubprocessTransport`]) and
//! `asyncio.create_subprocess_exec` / `create_subprocess_shell` (a [`Process`] whose standard
//! streams are `StreamWriter` / `StreamReader`), as the extension trait [`SubprocessExt`] of
//! [`EventLoop`].
//!
//! ```
//! use loop_subprocess::{Stdio, SubprocessExt, SubprocessOptions};
//!
//! let lp = loop_core::EventLoop::new()?;
//! let lp2 = lp.clone();
//! let line = lp.run_until_complete(async move {
//!     let o = SubprocessOptions::new().stdout(Stdio::Pipe);
//!     let mut p = lp2.create_subprocess_exec("echo", o.args(["hello", "world"])).await?;
//!     let line = p.stdout.as_mut().unwrap().readline().await?;
//!     p.wait().await?;
//!     Ok::<_, loop_core::Error>(line)
//! })??;
//! assert_eq!(line, b"hello world\n");
//! lp.close()?;
//! # Ok::<(), loop_core::Error>(())
//! ```
//!
//! # Defaults differ by level (SUB-15)
//!
//! The loop-level [`subprocess_exec`](SubprocessExt::subprocess_exec) /
//! [`subprocess_shell`](SubprocessExt::subprocess_shell) pipe stdin, stdout and stderr unless
//! told otherwise; the high-level [`create_subprocess_exec`](SubprocessExt::create_subprocess_exec)
//! / [`create_subprocess_shell`](SubprocessExt::create_subprocess_shell) let the child inherit
//! all three unless told otherwise. Both take the same [`SubprocessOptions`].
//!
//! # Event order (SUB-04)
//!
//! `connection_made` comes first (events that happen earlier wait for it); for each pipe,
//! `pipe_data_received(fd, ..)`* then one `pipe_connection_lost(fd, ..)`; `process_exited()`
//! exactly once, in no fixed order relative to the pipe events; `connection_lost(None)` last,
//! once the child exited *and* every pipe closed. A protocol method is never re-entered: what
//! happens while one runs (a `pause_writing` caused by a write to stdin) is delivered right
//! after it returns. A panic in a protocol method is reported to the loop's exception handler
//! (`"protocol.<method>() failed"`, as for the stream and datagram transports) and the transport goes on.
//!
//! # How it is built, and why
//!
//! **Spawning: `std::process::Command` plus rustix, not async-process.** async-process
//! registers the child's pipes with async-io's reactor (driven by its own thread) and observes
//! exits with a process-wide reaper of its own (a SIGCHLD handler or a pidfd on async-io's
//! reactor, with a driver thread). evloop needs the pipe fds in *its* reactor, as loop-transport
//! [`Transport`](loop_transport::Transport)s, and the exit observed by the loop that owns the
//! child; taking the fds back out of async-process and keeping its reaper from racing ours
//! would cost more than spawning directly. `Command` already does what is hard to get right:
//! fork/exec (or `posix_spawn`), reporting an exec failure as the spawn error (SUB-12),
//! putting the right fds on 0/1/2. This crate makes the pipes itself (close-on-exec on both
//! ends, so no other child inherits the loop's end, SUB-21), hands the child's ends to
//! `Command` and closes them as soon as the child is started, and wraps the loop's ends in
//! pipe transports (`TransportOptions::read_pipe()` / `write_pipe()`).
//!
//! **Exit: per child, never `waitpid(-1)` (SUB-22, SUB-26).** Each loop watches only its own
//! children, one pid at a time, so other code's children are never reaped here:
//!
//! * On Linux, a pidfd (`pidfd_open`) is registered with the loop's reactor (`add_reader`).
//!   It becomes readable when the child exits, even if that happened before it was registered
//!   (SUB-25); the loop then collects the status with `waitpid(pid, WNOHANG)`. No thread.
//! * On macOS and the BSDs, a kqueue of the child's own, holding one process filter for its
//!   pid (`EVFILT_PROC`, `NOTE_EXIT`), is registered the same way: a kqueue is readable while
//!   an event is pending. A child that is already gone when the filter is added (macOS refuses
//!   it with `ESRCH`), or whose status is not yet collectable when the exit is reported, is
//!   handed to a waiter thread, which returns at once.
//! * Where neither is available (an old kernel, a seccomp filter, another Unix), or
//!   with [`ExitWatcher::Thread`], one thread per child, named `evloop-waitpid-<n>`, blocks in
//!   `waitid(pid, WEXITED | WNOWAIT)`: it learns of the exit *without* collecting the status,
//!   wakes the loop with `call_soon_threadsafe`, and ends; the loop collects the status. If the
//!   loop is closed by then, the thread collects it itself (and logs a warning), so no zombie
//!   is left.
//!
//! So the threads that exist are: none with a pidfd or kqueue; otherwise one short-lived waiter
//! thread per running child. There is no process-global watcher and no SIGCHLD handler.
//!
//! **Signals never hit a recycled pid.** A pid stays the child's until its status is
//! collected. Signals and status collection of one child are serialised by a mutex, and a
//! signal is sent only while the status is uncollected; with a pidfd it goes through
//! `pidfd_send_signal`. A child that already exited is not signalled ([`SubprocessTransport::close`]
//! checks with `waitid(.., WNOWAIT)`, which collects nothing).
//!
//! **Return codes.** The exit code; `-N` when signal N killed the child (SUB-05); the raw
//! status when it is neither; 255 with a warning when someone else collected the status
//! first (SUB-24).
//!
//! **Lifetime.** The loop keeps a subprocess transport alive until the child exited and its
//! pipes closed, then delivers `connection_lost` and drops the protocol. Closing the loop
//! with children still running kills them (SIGKILL) and collects them, as asyncio does when an
//! unclosed transport is collected; their protocols are dropped without `connection_lost`.
//!
//! SUB-23 (a child watcher that reports itself inactive) has no counterpart: there is no
//! watcher object to configure or to be inactive.

#![warn(missing_docs)]

mod child;
mod options;
mod process;
mod sys;
mod transport;

use std::ffi::{OsStr, OsString};
use std::future::Future;

use loop_core::{EventLoop, Result};
use loop_transport::ProtocolRef;

pub use options::{ExitWatcher, Stdio, SubprocessOptions};
pub use process::Process;
pub use transport::{ProcessInfo, SubprocessProtocol, SubprocessTransport};

use child::Defaults;
use transport::launch::{launch, Mode};

/// The shell that runs the commands of `subprocess_shell` / `create_subprocess_shell`.
pub const SHELL: &str = "/bin/sh";

mod sealed {
    pub trait Sealed {}
    impl Sealed for loop_core::EventLoop {}
}

/// asyncio's subprocess functions as methods of [`EventLoop`].
///
/// Every method spawns when its future is first polled and completes once the pipes are
/// connected (and, for the protocol functions, `connection_made` ran). Dropping or cancelling
/// the future before that kills and collects the child (SUB-13).
///
/// ```
/// use loop_subprocess::{Stdio, SubprocessExt, SubprocessOptions};
/// let lp = loop_core::EventLoop::new()?;
/// let l = lp.clone();
/// let (out, code) = lp.run_until_complete(async move {
///     let o = SubprocessOptions::new().stdout(Stdio::Pipe);
///     let mut p = l.create_subprocess_exec("echo", o.arg("hi")).await?;
///     let (out, _) = p.communicate(None).await?;
///     Ok::<_, loop_core::Error>((out.unwrap(), p.returncode()))
/// })??;
/// assert_eq!((out.as_slice(), code), (&b"hi\n"[..], Some(0)));
/// # lp.close()?;
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait SubprocessExt: sealed::Sealed {
    /// Runs `program` with the arguments of `options` ([`SubprocessOptions::arg`], no shell)
    /// under a protocol made by `protocol_factory`: asyncio's `loop.subprocess_exec`. stdin, stdout and stderr are pipes unless `options`
    /// says otherwise (SUB-01). Returns the transport and a [`ProtocolRef`] to the protocol
    /// (asyncio's `(transport, protocol)`), which reads the protocol after `connection_lost`
    /// too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for an empty program,
    /// a NUL byte in the program or an argument, `Stdio::Stdout` for stdin or stdout, a bad
    /// environment name, a `pass_fds` entry that is not open, a zero limit;
    /// [`Error::Closed`](loop_core::Error::Closed); the spawn error (`ENOENT` for a missing
    /// program...) with every descriptor closed (SUB-12); `Cancelled`.
    ///
    /// # Cancel safety
    ///
    /// Cancelling before completion kills and collects the child; the protocol is never called.
    ///
    /// ```
    /// use loop_subprocess::{SubprocessExt, SubprocessOptions, SubprocessProtocol};
    ///
    /// struct Collect(Vec<u8>, loop_core::LoopFuture<()>);
    /// impl SubprocessProtocol for Collect {
    ///     fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
    ///         self.0.extend_from_slice(data);
    ///     }
    ///     fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
    ///         let _ = self.1.set_result(());
    ///     }
    /// }
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let done = lp.create_future();
    /// let (d, lp2) = (done.clone(), lp.clone());
    /// let (t, protocol) = lp.run_until_complete(async move {
    ///     lp2.subprocess_exec(move || Collect(Vec::new(), d), "echo", SubprocessOptions::new().arg("hi")).await
    /// })??;
    /// lp.run_until_complete(done)??;
    /// assert_eq!(protocol.with(|c| c.0.clone()), Some(b"hi\n".to_vec()));
    /// assert_eq!(t.get_returncode(), Some(0));
    /// lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn subprocess_exec<P, F>(
        &self,
        protocol_factory: F,
        program: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> impl Future<Output = Result<(SubprocessTransport, ProtocolRef<P>)>>
    where
        F: FnOnce() -> P,
        P: SubprocessProtocol;

    /// Runs `cmd` with the shell ([`SHELL`]` -c cmd`) under a protocol: asyncio's
    /// `loop.subprocess_shell`. Pipes by default, as [`subprocess_exec`](Self::subprocess_exec).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](loop_core::Error::InvalidArgument) for an empty command or
    /// one with a NUL byte (asyncio's "cmd must be a string", SUB-03), or arguments set in
    /// `options` (a shell command carries its own); otherwise as
    /// [`subprocess_exec`](Self::subprocess_exec).
    ///
    /// # Cancel safety
    ///
    /// As [`subprocess_exec`](Self::subprocess_exec).
    ///
    /// ```
    /// use loop_subprocess::{SubprocessExt, SubprocessOptions, SubprocessProtocol, SubprocessTransport};
    /// struct Quiet;
    /// impl SubprocessProtocol for Quiet {}
    ///
    /// let lp = loop_core::EventLoop::new()?;
    /// let lp2 = lp.clone();
    /// let err = lp.run_until_complete(async move {
    ///     lp2.subprocess_shell(|| Quiet, "", SubprocessOptions::new()).await
    /// })?.unwrap_err();
    /// assert!(err.to_string().contains("non-empty"));
    /// lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn subprocess_shell<P, F>(
        &self,
        protocol_factory: F,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> impl Future<Output = Result<(SubprocessTransport, ProtocolRef<P>)>>
    where
        F: FnOnce() -> P,
        P: SubprocessProtocol;

    /// Runs `program` with the arguments of `options` (no shell) and returns a [`Process`]:
    /// `asyncio.create_subprocess_exec`. The child inherits stdin, stdout and stderr unless
    /// `options` pipes them (SUB-15).
    ///
    /// # Errors
    ///
    /// As [`subprocess_exec`](Self::subprocess_exec).
    ///
    /// # Cancel safety
    ///
    /// As [`subprocess_exec`](Self::subprocess_exec).
    ///
    /// ```
    /// use loop_subprocess::{Stdio, SubprocessExt, SubprocessOptions};
    /// let lp = loop_core::EventLoop::new()?;
    /// let lp2 = lp.clone();
    /// let out = lp.run_until_complete(async move {
    ///     let o = SubprocessOptions::new().args(["%s-%s", "a", "b"]).stdout(Stdio::Pipe);
    ///     let mut p = lp2.create_subprocess_exec("printf", o).await?;
    ///     Ok::<_, loop_core::Error>(p.communicate(None).await?.0)
    /// })??;
    /// assert_eq!(out.unwrap(), b"a-b");
    /// lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn create_subprocess_exec(
        &self,
        program: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> impl Future<Output = Result<Process>>;

    /// Runs `cmd` with the shell and returns a [`Process`]: `asyncio.create_subprocess_shell`.
    /// Streams are inherited by default, as [`create_subprocess_exec`](Self::create_subprocess_exec).
    ///
    /// # Errors
    ///
    /// As [`subprocess_shell`](Self::subprocess_shell).
    ///
    /// # Cancel safety
    ///
    /// As [`subprocess_exec`](Self::subprocess_exec).
    ///
    /// ```
    /// use loop_subprocess::{Stdio, SubprocessExt, SubprocessOptions};
    /// let lp = loop_core::EventLoop::new()?;
    /// let lp2 = lp.clone();
    /// let out = lp.run_until_complete(async move {
    ///     let o = SubprocessOptions::new().stdout(Stdio::Pipe).env_var("WHO", "shell");
    ///     let mut p = lp2.create_subprocess_shell("echo \"hi $WHO\"", o).await?;
    ///     Ok::<_, loop_core::Error>(p.communicate(None).await?.0)
    /// })??;
    /// assert_eq!(out.unwrap(), b"hi shell\n");
    /// lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn create_subprocess_shell(
        &self,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> impl Future<Output = Result<Process>>;
}

fn shell_args(cmd: &OsStr, options: &SubprocessOptions) -> Result<(OsString, Vec<OsString>)> {
    options::validate_shell_cmd(cmd, options)?;
    Ok((SHELL.into(), vec!["-c".into(), cmd.to_owned()]))
}

impl SubprocessExt for EventLoop {
    fn subprocess_exec<P, F>(
        &self,
        protocol_factory: F,
        program: impl AsRef<OsStr>,
        mut options: SubprocessOptions,
    ) -> impl Future<Output = Result<(SubprocessTransport, ProtocolRef<P>)>>
    where
        F: FnOnce() -> P,
        P: SubprocessProtocol,
    {
        let lp = self.clone();
        let program = program.as_ref().to_owned();
        let args = std::mem::take(&mut options.args);
        let protocol = Box::new(protocol_factory());
        async move {
            let (t, _) = launch(
                lp,
                protocol,
                program,
                args,
                options,
                Defaults::Pipe,
                Mode::Forward,
            )
            .await?;
            let p = t.protocol_ref::<P>();
            Ok((t, p))
        }
    }

    fn subprocess_shell<P, F>(
        &self,
        protocol_factory: F,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> impl Future<Output = Result<(SubprocessTransport, ProtocolRef<P>)>>
    where
        F: FnOnce() -> P,
        P: SubprocessProtocol,
    {
        let lp = self.clone();
        let shell = shell_args(cmd.as_ref(), &options);
        let protocol = Box::new(protocol_factory());
        async move {
            let (program, args) = shell?;
            let (t, _) = launch(
                lp,
                protocol,
                program,
                args,
                options,
                Defaults::Pipe,
                Mode::Forward,
            )
            .await?;
            let p = t.protocol_ref::<P>();
            Ok((t, p))
        }
    }

    fn create_subprocess_exec(
        &self,
        program: impl AsRef<OsStr>,
        mut options: SubprocessOptions,
    ) -> impl Future<Output = Result<Process>> {
        let lp = self.clone();
        let program = program.as_ref().to_owned();
        let args = std::mem::take(&mut options.args);
        async move { create(lp, program, args, options).await }
    }

    fn create_subprocess_shell(
        &self,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> impl Future<Output = Result<Process>> {
        let lp = self.clone();
        let shell = shell_args(cmd.as_ref(), &options);
        async move {
            let (program, args) = shell?;
            create(lp, program, args, options).await
        }
    }
}

/// The streams protocol of a [`Process`]: the streams are fed by their own pipe transports,
/// so the subprocess-level events need no handling.
struct StreamsProtocol;

impl SubprocessProtocol for StreamsProtocol {}

async fn create(
    lp: EventLoop,
    program: OsString,
    args: Vec<OsString>,
    options: SubprocessOptions,
) -> Result<Process> {
    let limit = options.limit;
    let (t, s) = launch(
        lp,
        Box::new(StreamsProtocol),
        program,
        args,
        options,
        Defaults::Inherit,
        Mode::Streams(limit),
    )
    .await?;
    Ok(Process::new(t, s.stdin, s.stdout, s.stderr))
}
