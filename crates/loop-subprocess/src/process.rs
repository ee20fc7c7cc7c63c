//! `Process`: the high-level child of `create_subprocess_exec` / `create_subprocess_shell`,
//! with its standard streams as `StreamWriter` / `StreamReader`.

use std::fmt;
use std::io;

use futures_lite::future;
use loop_core::{Error, Result};
use loop_transport::{StreamReader, StreamWriter};

use crate::SubprocessTransport;

/// A child process with stream access: asyncio's `asyncio.subprocess.Process`.
///
/// Made by [`SubprocessExt::create_subprocess_exec`](crate::SubprocessExt::create_subprocess_exec)
/// and [`create_subprocess_shell`](crate::SubprocessExt::create_subprocess_shell). Each stream
/// field is `Some` only if that stream was given [`Stdio::Pipe`](crate::Stdio::Pipe) (the
/// default there is to inherit, SUB-15).
///
/// # Examples
///
/// ```
/// use loop_subprocess::{Stdio, SubprocessExt, SubprocessOptions};
///
/// let lp = loop_core::EventLoop::new()?;
/// let lp2 = lp.clone();
/// let (out, code) = lp.run_until_complete(async move {
///     let o = SubprocessOptions::new().stdin(Stdio::Pipe).stdout(Stdio::Pipe);
///     let mut p = lp2.create_subprocess_exec("tr", o.args(["a-z", "A-Z"])).await?;
///     let (out, _err) = p.communicate(Some(b"hello")).await?;
///     Ok::<_, loop_core::Error>((out, p.returncode()))
/// })??;
/// assert_eq!(out.unwrap(), b"HELLO");
/// assert_eq!(code, Some(0));
/// lp.close()?;
/// # Ok::<(), loop_core::Error>(())
/// ```
pub struct Process {
    /// The child's stdin, if piped: write to it, then `close()` it to give the child EOF.
    pub stdin: Option<StreamWriter>,
    /// The child's stdout, if piped. Reading is paused while more than twice the limit is
    /// buffered (SUB-21).
    pub stdout: Option<StreamReader>,
    /// The child's stderr, if piped.
    pub stderr: Option<StreamReader>,
    /// The transport underneath.
    transport: SubprocessTransport,
}

impl Process {
    pub(crate) fn new(
        transport: SubprocessTransport,
        stdin: Option<StreamWriter>,
        stdout: Option<StreamReader>,
        stderr: Option<StreamReader>,
    ) -> Process {
        Process {
            stdin,
            stdout,
            stderr,
            transport,
        }
    }

    /// The child's pid.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let p = lp.run_until_complete(async move {
    ///     lp2.create_subprocess_exec("true", SubprocessOptions::new()).await
    /// })??;
    /// assert!(p.pid() > 1);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.transport.get_pid()
    }

    /// `None` until the exit was observed, then the return code (`-N`: killed by signal N).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let code = lp.run_until_complete(async move {
    ///     let p = lp2.create_subprocess_shell("exit 3", SubprocessOptions::new()).await?;
    ///     p.wait().await?;
    ///     Ok::<_, loop_core::Error>(p.returncode())
    /// })??;
    /// assert_eq!(code, Some(3));
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn returncode(&self) -> Option<i32> {
        self.transport.get_returncode()
    }

    /// The subprocess transport underneath (pipe transports, extra info).
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let p = lp.run_until_complete(async move {
    ///     lp2.create_subprocess_exec("true", SubprocessOptions::new().stdout(Stdio::Pipe)).await
    /// })??;
    /// assert!(p.transport().get_pipe_transport(1).is_some());
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn transport(&self) -> &SubprocessTransport {
        &self.transport
    }

    /// Waits for the child to exit and returns its return code. Any number of `wait()`s may
    /// run at once; all get the same value (SUB-16).
    ///
    /// A `wait()` started before the exit was observed completes once the child exited *and*
    /// its pipes closed; one started after returns at once (SUB-17). So a piped stdout that
    /// nobody reads can block `wait()` when the child writes more than the pipe buffer plus
    /// twice the limit: read the streams, or use [`communicate`](Self::communicate).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] if the waiting task is cancelled; [`Error::Closed`] if the loop
    /// is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: cancelling one `wait()` affects neither the child nor other waiters.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let code = lp.run_until_complete(async move {
    ///     let p = lp2.create_subprocess_exec("false", SubprocessOptions::new()).await?;
    ///     p.wait().await
    /// })??;
    /// assert_eq!(code, 1);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub async fn wait(&self) -> Result<i32> {
        self.transport.wait().await
    }

    /// Sends `input` (if given and stdin is piped), closes stdin, reads stdout and stderr to
    /// EOF *at the same time* (so a child that fills one pipe while we write the other never
    /// deadlocks), then waits for the exit. Returns `(stdout, stderr)`, each `None` if that
    /// stream is not piped (SUB-18).
    ///
    /// Broken-pipe and connection-reset errors while feeding stdin (the child exited without
    /// reading everything) are ignored (SUB-19).
    ///
    /// # Errors
    ///
    /// Other write errors; a read error of stdout / stderr; the errors of [`wait`](Self::wait).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: output read before the cancellation is lost.
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let (out, err) = lp.run_until_complete(async move {
    ///     let o = SubprocessOptions::new().stdout(Stdio::Pipe).stderr(Stdio::Pipe);
    ///     let mut p = lp2.create_subprocess_shell("echo out; echo err >&2", o).await?;
    ///     p.communicate(None).await
    /// })??;
    /// assert_eq!(out.unwrap(), b"out\n");
    /// assert_eq!(err.unwrap(), b"err\n");
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub async fn communicate(
        &mut self,
        input: Option<&[u8]>,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let stdin = self.stdin.as_ref();
        let feed = async move {
            match stdin {
                Some(w) => feed_stdin(w, input).await,
                None => Ok(()),
            }
        };
        let out = read_to_end(self.stdout.as_mut());
        let err = read_to_end(self.stderr.as_mut());
        let (fed, (out, err)) = future::zip(feed, future::zip(out, err)).await;
        fed?;
        let (out, err) = (out?, err?);
        self.wait().await?;
        Ok((out, err))
    }

    /// [`SubprocessTransport::send_signal`].
    ///
    /// # Errors
    ///
    /// As [`SubprocessTransport::send_signal`].
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let code = lp.run_until_complete(async move {
    ///     let p = lp2.create_subprocess_exec("sleep", SubprocessOptions::new().arg("10")).await?;
    ///     p.send_signal(libc::SIGUSR1)?;
    ///     p.wait().await
    /// })??;
    /// assert_eq!(code, -libc::SIGUSR1);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        self.transport.send_signal(sig)
    }

    /// SIGTERM.
    ///
    /// # Errors
    ///
    /// As [`SubprocessTransport::send_signal`].
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let code = lp.run_until_complete(async move {
    ///     let p = lp2.create_subprocess_exec("sleep", SubprocessOptions::new().arg("10")).await?;
    ///     p.terminate()?;
    ///     p.wait().await
    /// })??;
    /// assert_eq!(code, -libc::SIGTERM);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn terminate(&self) -> Result<()> {
        self.transport.terminate()
    }

    /// SIGKILL.
    ///
    /// # Errors
    ///
    /// As [`SubprocessTransport::send_signal`].
    ///
    /// ```
    /// # use loop_subprocess::*;
    /// # let lp = loop_core::EventLoop::new()?; let lp2 = lp.clone();
    /// let code = lp.run_until_complete(async move {
    ///     let p = lp2.create_subprocess_exec("sleep", SubprocessOptions::new().arg("10")).await?;
    ///     p.kill()?;
    ///     p.wait().await
    /// })??;
    /// assert_eq!(code, -libc::SIGKILL);
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.transport.kill()
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Process {}>", self.pid())
    }
}

/// True for the errors `communicate()` ignores while feeding stdin.
fn is_pipe_gone(e: &Error) -> bool {
    matches!(e, Error::Io(io) if matches!(io.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset))
}

async fn feed_stdin(w: &StreamWriter, input: Option<&[u8]>) -> Result<()> {
    if let Some(data) = input {
        let r = match w.write(data) {
            Ok(()) => w.drain().await,
            Err(e) => Err(e),
        };
        match r {
            Err(e) if is_pipe_gone(&e) => {
                tracing::debug!("communicate(): the child's stdin is gone: {e}");
            }
            other => other?,
        }
    }
    w.close();
    Ok(())
}

async fn read_to_end(r: Option<&mut StreamReader>) -> Result<Option<Vec<u8>>> {
    match r {
        Some(r) => Ok(Some(r.read_all().await?)),
        None => Ok(None),
    }
}
