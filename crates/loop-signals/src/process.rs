//! The process-wide side of signal handling: which loop owns which signal, installing
//! evloop's handler for it, and restoring the default disposition.
//!
//! The handler itself and the `sigaction` calls are in [`crate::sys`].

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Mutex, MutexGuard};

use loop_core::{Error, Result};

use crate::sys::{self, Disposition};

/// Who handles a signal now.
struct Owner {
    /// The loop's id.
    loop_id: u64,
    /// The process that installed it (a forked child inherits the table, not the loop).
    pid: i32,
    /// The loop's thread, for the error message.
    thread: String,
}

/// Signal number → the loop handling it.
static OWNERS: Mutex<BTreeMap<i32, Owner>> = Mutex::new(BTreeMap::new());

fn owners() -> MutexGuard<'static, BTreeMap<i32, Owner>> {
    OWNERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current process id, as a plain number (async-signal-safe: one system call).
fn pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// One past the highest valid signal number.
pub(crate) fn nsig() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        libc::SIGRTMAX() + 1
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        32
    }
}

/// True for numbers between the classic signals and `SIGRTMIN`, which the C library keeps for
/// itself (32 and 33 with glibc, 32 to 34 with musl): not in the platform's valid set.
pub(crate) fn reserved(sig: i32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        (32..libc::SIGRTMIN()).contains(&sig)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = sig;
        false
    }
}

/// Describes a signal for messages: `10 (SIGUSR1)`, or just the number.
pub(crate) fn describe(sig: i32) -> String {
    match signal_hook::low_level::signal_name(sig) {
        Some(name) => format!("{sig} ({name})"),
        None => sig.to_string(),
    }
}

/// Turns an error of installing or restoring a disposition into evloop's error: `EINVAL`
/// means the OS refuses this signal (SIG-04, SIG-13); anything else propagates.
fn install_error(sig: i32, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::EINVAL) {
        Error::invalid_argument(format!("sig {sig} cannot be caught"))
    } else {
        Error::from(e)
    }
}

/// Makes loop `loop_id` the owner of `sig`: installs evloop's handler, which writes the
/// signal number to `wake_fd` (the write end of the loop's self-pipe). The handler replaces the
/// signal's disposition, whatever it was: an earlier handler does not run while it is installed.
///
/// The caller must keep `wake_fd` open until [`release`] (or [`release_all`]) returned for
/// every signal it claimed with it.
pub(crate) fn claim(sig: i32, loop_id: u64, wake_fd: RawFd) -> Result<()> {
    let mut owners = owners();
    let me = pid();
    if let Some(o) = owners.get(&sig) {
        if o.pid == me {
            return Err(Error::invalid_state(format!(
                "signal {} is already handled by event loop {} (thread {}); a signal's handler \
                 is process-wide, so one loop at a time may handle it: remove it from that loop \
                 first",
                describe(sig),
                o.loop_id,
                o.thread
            )));
        }
        // Inherited through fork: the loop that installed it does not exist in this process.
        owners.remove(&sig);
    }
    sys::set_target(sig, wake_fd, me);
    if let Err(e) = sys::set_disposition(sig, Disposition::Loop) {
        sys::clear_target(sig);
        return Err(install_error(sig, e));
    }
    let t = std::thread::current();
    owners.insert(
        sig,
        Owner {
            loop_id,
            pid: me,
            thread: match t.name() {
                Some(n) => format!("'{n}'"),
                None => format!("{:?}", t.id()),
            },
        },
    );
    Ok(())
}

/// Gives `sig` up if loop `loop_id` owns it, and restores the default disposition (SIG-11).
pub(crate) fn release(sig: i32, loop_id: u64) -> Result<()> {
    let mut owners = owners();
    release_locked(&mut owners, sig, loop_id)
}

/// Gives up every signal loop `loop_id` owns (loop close, SIG-14). Errors are logged.
pub(crate) fn release_all(sigs: impl IntoIterator<Item = i32>, loop_id: u64) {
    let mut owners = owners();
    for sig in sigs {
        if let Err(e) = release_locked(&mut owners, sig, loop_id) {
            tracing::warn!("restoring the default disposition of signal {sig} failed: {e}");
        }
    }
}

fn release_locked(owners: &mut BTreeMap<i32, Owner>, sig: i32, loop_id: u64) -> Result<()> {
    let mine = matches!(owners.get(&sig), Some(o) if o.loop_id == loop_id && o.pid == pid());
    if !mine {
        return Ok(());
    }
    owners.remove(&sig);
    // SIG_DFL, as asyncio restores (CPython's SIGINT exception aside). Rust's runtime starts
    // every program with SIGPIPE ignored (so that a write to a closed pipe fails with EPIPE
    // instead of killing the process): that is the default it goes back to.
    let default = if sig == libc::SIGPIPE {
        Disposition::Ignore
    } else {
        Disposition::Default
    };
    // The default first, then the pipe is let go: a signal in between is a byte nobody reads
    // (SIG-09), not a lost default action.
    let r = sys::set_disposition(sig, default);
    sys::clear_target(sig);
    r.map_err(|e| install_error(sig, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SIG-13: the OS refusing to restore a disposition (`EINVAL`) reads "sig N cannot be
    /// caught"; any other OS error comes through unchanged. (Restoring cannot fail for a
    /// signal the loop accepted, so the mapping is tested directly.)
    #[test]
    fn sig_13_restore_einval_is_cannot_be_caught_other_errors_propagate() {
        let e = install_error(10, io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert_eq!(e.to_string(), "invalid argument: sig 10 cannot be caught");
        let e = install_error(10, io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }
}
