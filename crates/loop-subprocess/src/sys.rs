//! The system calls of loop-subprocess that the safe wrappers (std, rustix) do not cover: the
//! one module of the crate that may use `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

#[cfg(any(target_os = "linux", target_os = "android"))]
use rustix::process::Signal;

/// Makes the child start a new session (`setsid`) and keep the descriptors `keep` open across
/// `exec` (clears their close-on-exec flag), in the forked child before `exec`.
pub(crate) fn set_pre_exec(cmd: &mut Command, new_session: bool, keep: Vec<RawFd>) {
    // SAFETY: the closure runs in the forked child before exec. It only makes
    // async-signal-safe system calls (`setsid`, `fcntl`) and allocates nothing: `keep` was
    // built in the parent and is only read.
    unsafe {
        cmd.pre_exec(move || {
            if new_session && libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// True if `fd` is an open descriptor of this process.
pub(crate) fn is_open_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags of `fd`; on a number that is not an open
    // descriptor it fails with EBADF and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// A real-time signal number as a rustix signal; `None` outside SIGRTMIN..=SIGRTMAX.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn realtime_signal(sig: i32) -> Option<Signal> {
    if !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) {
        return None;
    }
    // SAFETY: `sig` is a real-time signal between the C library's SIGRTMIN and SIGRTMAX, a
    // valid, non-zero signal number that applications may send.
    Some(unsafe { Signal::from_raw_unchecked(sig) })
}

/// A kqueue of its own holding one `EVFILT_PROC` / `NOTE_EXIT` filter for `pid` (one-shot):
/// readable once the child exits. `ESRCH` if the process is already gone (macOS does not
/// attach the filter to an exited child; FreeBSD does and reports the exit at once).
///
/// The caller must hold the child's lock with its status uncollected, so that `pid` is still
/// this child's.
#[cfg(exit_kqueue)]
pub(crate) fn exit_kqueue(pid: rustix::process::Pid) -> io::Result<polling::Poller> {
    use polling::os::kqueue::{PollerKqueueExt, Process, ProcessOps};
    let kq = polling::Poller::new()?;
    // SAFETY: `from_pid` asks that the pid be tied to an actual child process: it is our
    // child, whose status is uncollected (the caller holds the child's lock), so the number
    // has not been reused. The filter names the pid only; no memory is shared with it.
    let filter = unsafe { Process::from_pid(pid.as_raw_nonzero(), ProcessOps::Exit) };
    kq.add_filter(filter, 0, polling::PollMode::Oneshot)?;
    Ok(kq)
}
