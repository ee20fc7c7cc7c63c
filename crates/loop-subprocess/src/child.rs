//! The child process itself: spawning it with its pipes, collecting its exit status for that
//! pid only, and signalling it without ever hitting a recycled pid.
//!
//! **PID reuse.** A pid names our child until its status is collected; after that the kernel
//! may give the number to an unrelated process. So every signal and every status collection
//! of a child happens under the child's mutex, and a signal is sent only while the status has
//! not been collected. Where a pidfd exists, signals go through `pidfd_send_signal`, which
//! cannot reach another process at all.
//!
//! **Exit fd.** The loop learns of the exit from a descriptor it watches with `add_reader`: a
//! pidfd on Linux, and on macOS and the BSDs a kqueue of the child's own holding one
//! `EVFILT_PROC` / `NOTE_EXIT` filter for its pid (a kqueue is readable while it has an event
//! pending, so it nests in the loop's reactor like any fd).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use loop_core::{Error, Result};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, WaitOptions};

use crate::options::{Stdio, SubprocessOptions};

/// The return code reported for a child whose status someone else collected (SUB-24).
pub(crate) const REAPED_ELSEWHERE: i32 = 255;

/// The stream defaults of the function that spawns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Defaults {
    /// `subprocess_exec` / `subprocess_shell`: pipes.
    Pipe,
    /// `create_subprocess_*`: inherit.
    Inherit,
}

/// What the child gets for one standard stream.
enum ChildSide {
    Inherit,
    Null,
    Fd(OwnedFd),
}

impl ChildSide {
    fn into_std(self) -> std::process::Stdio {
        match self {
            ChildSide::Inherit => std::process::Stdio::inherit(),
            ChildSide::Null => std::process::Stdio::null(),
            ChildSide::Fd(fd) => std::process::Stdio::from(fd),
        }
    }
}

/// A spawned child and the loop's ends of its pipes (`[stdin, stdout, stderr]`).
pub(crate) struct Spawned {
    /// The child.
    pub(crate) child: Arc<Child>,
    /// The parent's pipe ends, by child fd.
    pub(crate) pipes: [Option<OwnedFd>; 3],
}

/// A pipe with both ends close-on-exec (so no other child inherits the loop's end):
/// atomically with `pipe2` where it exists, set right after creation on Apple, which has no
/// `pipe2`.
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
    }
    #[cfg(target_vendor = "apple")]
    {
        let (r, w) = rustix::pipe::pipe()?;
        rustix::io::fcntl_setfd(&r, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::fcntl_setfd(&w, rustix::io::FdFlags::CLOEXEC)?;
        Ok((r, w))
    }
}

/// Splits one stream choice into the child's side and, for a pipe, the parent's end.
/// `parent_reads` is true for stdout/stderr.
fn side(s: Stdio, parent_reads: bool) -> io::Result<(ChildSide, Option<OwnedFd>)> {
    Ok(match s {
        Stdio::Pipe => {
            let (r, w) = cloexec_pipe()?;
            if parent_reads {
                (ChildSide::Fd(w), Some(r))
            } else {
                (ChildSide::Fd(r), Some(w))
            }
        }
        Stdio::Inherit => (ChildSide::Inherit, None),
        Stdio::Null => (ChildSide::Null, None),
        Stdio::Fd(fd) => (ChildSide::Fd(fd), None),
        // Rejected by `validate` for stdin and stdout; stderr is handled by the caller.
        Stdio::Stdout => (ChildSide::Inherit, None),
    })
}

/// Spawns `program args` with `opts` (already validated). The spawn error, if any, is returned
/// as is (`ENOENT`, `EACCES`...); every descriptor made for the child is closed on all paths.
pub(crate) fn spawn(
    program: &OsStr,
    args: &[OsString],
    opts: &mut SubprocessOptions,
    defaults: Defaults,
) -> Result<Spawned> {
    let default = || match defaults {
        Defaults::Pipe => Stdio::Pipe,
        Defaults::Inherit => Stdio::Inherit,
    };
    let stdin = opts.stdin.take().unwrap_or_else(default);
    let stdout = opts.stdout.take().unwrap_or_else(default);
    let stderr = opts.stderr.take().unwrap_or_else(default);

    let (in_child, in_parent) = side(stdin, false)?;
    let (out_child, out_parent) = side(stdout, true)?;
    let (err_child, err_parent) = match stderr {
        Stdio::Stdout => {
            // The same place as the child's stdout: a duplicate of what stdout gets.
            let dup = match &out_child {
                ChildSide::Inherit => ChildSide::Fd(io::stdout().as_fd().try_clone_to_owned()?),
                ChildSide::Null => ChildSide::Null,
                ChildSide::Fd(fd) => ChildSide::Fd(fd.try_clone()?),
            };
            (dup, None)
        }
        other => side(other, true)?,
    };

    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(in_child.into_std())
        .stdout(out_child.into_std())
        .stderr(err_child.into_std());
    if opts.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &opts.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(dir) = &opts.cwd {
        cmd.current_dir(dir);
    }
    if opts.start_new_session || !opts.pass_fds.is_empty() {
        let new_session = opts.start_new_session;
        let keep: Vec<RawFd> = opts.pass_fds.clone();
        crate::sys::set_pre_exec(&mut cmd, new_session, keep);
    }
    let spawned = cmd.spawn();
    // The child's ends live in `cmd`: close them now, so that the loop sees EOF when the child
    // (and whatever it started) closes its side.
    drop(cmd);
    let child = spawned?;
    let pid = child.id();
    // `child` holds no handle (no stdio was piped by std); dropping it neither waits nor kills.
    drop(child);
    Ok(Spawned {
        child: Arc::new(Child::new(pid)),
        pipes: [in_parent, out_parent, err_parent],
    })
}

/// The shared state of one child: touched by the loop's thread and, for the thread watcher, by
/// the waiter thread.
pub(crate) struct Child {
    /// The pid (valid as long as `returncode` is `None`).
    pid: Pid,
    /// Collected status and exit fd.
    st: Mutex<ChildState>,
}

/// What [`Child::with_new_exit_fd`] opens: a pidfd.
#[cfg(any(target_os = "linux", target_os = "android"))]
type ExitFd = OwnedFd;

/// What [`Child::with_new_exit_fd`] opens: a kqueue with the child's process filter.
#[cfg(exit_kqueue)]
type ExitFd = polling::Poller;

/// What the exit fd is, as [`fmt::Debug`](std::fmt::Debug) of the transport shows it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const EXIT_FD_KIND: &str = "pidfd";

/// What the exit fd is, as [`fmt::Debug`](std::fmt::Debug) of the transport shows it.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const EXIT_FD_KIND: &str = "kqueue";

/// See [`Child`].
struct ChildState {
    /// The exit fd (pidfd or kqueue), while the loop watches it.
    #[cfg(any(exit_pidfd, exit_kqueue))]
    exit_fd: Option<ExitFd>,
    /// The return code, once the status was collected.
    returncode: Option<i32>,
}

impl Child {
    fn new(pid: u32) -> Child {
        let raw = i32::try_from(pid).expect("pids fit in i32");
        Child {
            pid: Pid::from_raw(raw).expect("a spawned child has a positive pid"),
            st: Mutex::new(ChildState {
                #[cfg(any(exit_pidfd, exit_kqueue))]
                exit_fd: None,
                returncode: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChildState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pid as a number.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// Opens the exit fd for the child — a pidfd on Linux, a kqueue with an `EVFILT_PROC` /
    /// `NOTE_EXIT` filter for its pid on macOS and the BSDs — and calls `f` with it; keeps it
    /// on success. The fd becomes readable when the child exits, also when that happened
    /// before it was opened (a pidfd), or fails to open for a child that is already gone
    /// (`ESRCH` where the process filter does not attach to an exited child).
    #[cfg(any(exit_pidfd, exit_kqueue))]
    pub(crate) fn with_new_exit_fd<R>(
        &self,
        f: impl FnOnce(BorrowedFd<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut st = self.lock();
        if st.returncode.is_some() {
            return Err(Error::invalid_state("the child was already reaped"));
        }
        // The status is uncollected (checked under the lock, which every collection takes),
        // so the pid is still this child's.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let fd = rustix::process::pidfd_open(self.pid, rustix::process::PidfdFlags::empty())?;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let fd = crate::sys::exit_kqueue(self.pid)?;
        let r = f(fd.as_fd())?;
        st.exit_fd = Some(fd);
        Ok(r)
    }

    /// Closes the exit fd (after it was removed from the reactor).
    pub(crate) fn close_exit_fd(&self) {
        #[cfg(any(exit_pidfd, exit_kqueue))]
        {
            let fd = self.lock().exit_fd.take();
            drop(fd);
        }
    }

    /// Sends `sig` (`None`: only checks), unless the status was collected already. A process
    /// that vanished (`ESRCH`) is not an error (SUB-09).
    pub(crate) fn signal(&self, sig: Option<Signal>) -> io::Result<()> {
        let st = self.lock();
        if st.returncode.is_some() {
            return Ok(());
        }
        let Some(sig) = sig else { return Ok(()) };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let r = match &st.exit_fd {
            Some(pidfd) => rustix::process::pidfd_send_signal(pidfd, sig),
            None => rustix::process::kill_process(self.pid, sig),
        };
        // The status is uncollected (checked above, under the lock): the pid is the child's.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let r = rustix::process::kill_process(self.pid, sig);
        match r {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// True if the child exited (or was collected), checked without collecting anything.
    pub(crate) fn has_exited(&self) -> bool {
        let st = self.lock();
        if st.returncode.is_some() {
            return true;
        }
        // The status was not collected (checked under the lock), so the pid is still ours.
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match rustix::process::waitid(WaitId::Pid(self.pid), opts) {
            Ok(Some(_)) => true,
            Ok(None) => false,
            // Collected by someone else: gone.
            Err(Errno::CHILD) => true,
            Err(_) => false,
        }
    }

    /// Collects the status if the child exited; `None` while it runs.
    pub(crate) fn try_reap(&self) -> Option<i32> {
        let mut st = self.lock();
        if let Some(rc) = st.returncode {
            return Some(rc);
        }
        let rc = match rustix::process::waitpid(Some(self.pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => returncode_from_raw(status.as_raw()),
            Ok(None) => return None,
            Err(e) => self.lost_status(e),
        };
        st.returncode = Some(rc);
        Some(rc)
    }

    /// Collects the status, waiting for the exit.
    pub(crate) fn reap_blocking(&self) -> i32 {
        let mut st = self.lock();
        if let Some(rc) = st.returncode {
            return rc;
        }
        let rc = loop {
            match rustix::process::waitpid(Some(self.pid), WaitOptions::empty()) {
                Ok(Some((_, status))) => break returncode_from_raw(status.as_raw()),
                Ok(None) | Err(Errno::INTR) => continue,
                Err(e) => break self.lost_status(e),
            }
        };
        st.returncode = Some(rc);
        rc
    }

    /// The status cannot be collected (someone else did): 255 and a warning (SUB-24).
    fn lost_status(&self, e: Errno) -> i32 {
        tracing::warn!(
            "child process pid {} exit status already read ({}): will report returncode {}",
            self.pid(),
            io::Error::from(e),
            REAPED_ELSEWHERE
        );
        REAPED_ELSEWHERE
    }

    /// Blocks until the child exited, without collecting its status (the waiter thread).
    pub(crate) fn wait_exit_nowait(&self) {
        loop {
            match rustix::process::waitid(
                WaitId::Pid(self.pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Err(Errno::INTR) => continue,
                // Exited, or collected elsewhere (ECHILD): either way, report.
                _ => return,
            }
        }
    }
}

/// A raw wait status as a return code: the exit code, `-N` for death by signal N, or the raw
/// status when it is neither (SUB-05, SUB-24).
pub(crate) fn returncode_from_raw(raw: i32) -> i32 {
    if libc::WIFEXITED(raw) {
        libc::WEXITSTATUS(raw)
    } else if libc::WIFSIGNALED(raw) {
        -libc::WTERMSIG(raw)
    } else {
        raw
    }
}

/// A signal number as a rustix signal: `None` for 0 (existence check only).
pub(crate) fn to_signal(sig: i32) -> Result<Option<Signal>> {
    if sig == 0 {
        return Ok(None);
    }
    if let Some(s) = Signal::from_named_raw(sig) {
        return Ok(Some(s));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(s) = crate::sys::realtime_signal(sig) {
        return Ok(Some(s));
    }
    Err(Error::invalid_argument(format!(
        "invalid signal number {sig}; use a signal such as libc::SIGTERM"
    )))
}

/// Numbers the waiter threads (`evloop-waitpid-<n>`).
static THREADS: AtomicU64 = AtomicU64::new(0);

/// The next waiter thread name.
pub(crate) fn next_thread_name() -> String {
    format!(
        "evloop-waitpid-{}",
        THREADS.fetch_add(1, Ordering::Relaxed) + 1
    )
}

/// Collects the child's status when dropped, unless disarmed: the message a waiter thread sends
/// to the loop owns one, so the child is reaped even if the loop closes before running it.
pub(crate) struct ReapGuard(pub(crate) Option<Arc<Child>>);

impl ReapGuard {
    /// Takes the child out; the guard no longer reaps.
    pub(crate) fn disarm(&mut self) -> Option<Arc<Child>> {
        self.0.take()
    }
}

impl Drop for ReapGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            // The waiter thread saw the exit, so this does not block.
            child.try_reap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_24_status_decoding() {
        // exit(3)
        assert_eq!(returncode_from_raw(3 << 8), 3);
        assert_eq!(returncode_from_raw(0), 0);
        // killed by SIGKILL, and by SIGSEGV with a core dump
        assert_eq!(returncode_from_raw(9), -9);
        assert_eq!(returncode_from_raw(11 | 0x80), -11);
        // stopped by SIGSTOP: neither exited nor signalled, passed through raw
        let stopped = 0x7f | (19 << 8);
        assert_eq!(returncode_from_raw(stopped), stopped);
    }

    #[test]
    fn sub_05_signal_numbers() {
        assert_eq!(to_signal(0).unwrap(), None);
        assert_eq!(to_signal(libc::SIGTERM).unwrap(), Some(Signal::TERM));
        // Real-time signals: Linux's.
        #[cfg(target_os = "linux")]
        assert!(to_signal(libc::SIGRTMIN()).unwrap().is_some());
        assert!(to_signal(-1).is_err());
        assert!(to_signal(1000).is_err());
    }

    /// SUB-25: a child that exited before anyone watched it is still collected, by either
    /// watcher, and exactly once.
    #[test]
    fn sub_25_exit_before_watching_is_seen() {
        let mut o = SubprocessOptions::new();
        let s = spawn(
            OsStr::new("/bin/sh"),
            &["-c".into(), "exit 4".into()],
            &mut o,
            Defaults::Inherit,
        )
        .unwrap();
        // Wait for the exit (without collecting): the watchers start only now.
        s.child.wait_exit_nowait();
        assert!(s.child.has_exited());
        #[cfg(target_os = "linux")]
        {
            let readable = s
                .child
                .with_new_exit_fd(|fd| {
                    let mut fds = [rustix::event::PollFd::new(
                        &fd,
                        rustix::event::PollFlags::IN,
                    )];
                    Ok(rustix::event::poll(&mut fds, None)? == 1)
                })
                .unwrap();
            assert!(readable, "the pidfd of an exited child is readable at once");
        }
        assert_eq!(s.child.try_reap(), Some(4));
        // Collected once: later calls give the same value, signals are no-ops.
        assert_eq!(s.child.try_reap(), Some(4));
        s.child.signal(Some(Signal::KILL)).unwrap();
        s.child.close_exit_fd();
    }
}
