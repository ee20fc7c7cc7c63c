//! The process-wide side of signal handling: which loop owns which signal, the low-level
//! actions installed through `signal-hook-registry`, and restoring the default disposition.
//!
//! Everything that runs inside a signal handler is here, and each such piece only makes
//! async-signal-safe system calls (`getpid`, `write`, `sigaction`, `raise`): no allocation, no
//! lock, no panic.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use loop_core::{Error, Result};
use signal_hook_registry::SigId;

/// Who handles a signal now.
struct Owner {
    /// The loop's id.
    loop_id: u64,
    /// The process that installed it (a forked child inherits the table, not the loop).
    pid: i32,
    /// The loop's thread, for the error message.
    thread: String,
    /// The installed action (writes the signal number to the loop's self-pipe).
    action: SigId,
}

/// The process-wide state of one signal.
#[derive(Default)]
struct Slot {
    /// The loop handling it, if any.
    owner: Option<Owner>,
    /// The "behave as the default disposition" action, installed at the first removal and
    /// switched on and off with the flag afterwards.
    default: Option<(Arc<AtomicBool>, SigId)>,
}

/// Signal number → slot.
static SLOTS: Mutex<BTreeMap<i32, Slot>> = Mutex::new(BTreeMap::new());

fn slots() -> MutexGuard<'static, BTreeMap<i32, Slot>> {
    SLOTS.lock().unwrap_or_else(|e| e.into_inner())
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

/// Makes loop `loop_id` the owner of `sig`: installs an action that writes the signal number
/// to `wake_fd` (the write end of the loop's self-pipe).
///
/// The caller must keep `wake_fd` open until [`release`] (or [`release_all`]) returned for
/// every signal it claimed with it.
pub(crate) fn claim(sig: i32, loop_id: u64, wake_fd: RawFd) -> Result<()> {
    let mut slots = slots();
    let me = pid();
    let slot = slots.entry(sig).or_default();
    if let Some(o) = &slot.owner {
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
        signal_hook_registry::unregister(o.action);
        slot.owner = None;
    }
    if let Some((flag, _)) = &slot.default {
        flag.store(false, Ordering::SeqCst);
    }
    let byte = [sig as u8];
    let action = move || {
        if pid() != me {
            // A forked child: the pipe belongs to the parent's loop (SIG-15).
            return;
        }
        // SAFETY: the loop keeps `wake_fd` open for as long as this action is registered: it
        // unregisters the action (which returns only once no handler runs it any more) before
        // it closes the pipe.
        let fd = unsafe { BorrowedFd::borrow_raw(wake_fd) };
        // A full pipe (EAGAIN) already holds a wake-up; the signal coalesces with it.
        let _ = rustix::io::write(fd, &byte);
    };
    // SAFETY: the action is async-signal-safe: it makes two system calls (`getpid`, `write` on
    // a non-blocking socket), allocates nothing, takes no lock and cannot panic.
    let registered = unsafe { signal_hook_registry::register(sig, action) };
    let action = match registered {
        Ok(id) => id,
        Err(e) => {
            if let Some((flag, _)) = &slot.default {
                flag.store(true, Ordering::SeqCst);
            }
            if slot.default.is_none() {
                slots.remove(&sig);
            }
            return Err(install_error(sig, e));
        }
    };
    let t = std::thread::current();
    slot.owner = Some(Owner {
        loop_id,
        pid: me,
        thread: match t.name() {
            Some(n) => format!("'{n}'"),
            None => format!("{:?}", t.id()),
        },
        action,
    });
    Ok(())
}

/// Gives `sig` up if loop `loop_id` owns it, and restores the default disposition (SIG-11).
pub(crate) fn release(sig: i32, loop_id: u64) -> Result<()> {
    let mut slots = slots();
    release_locked(&mut slots, sig, loop_id)
}

/// Gives up every signal loop `loop_id` owns (loop close, SIG-14). Errors are logged.
pub(crate) fn release_all(sigs: impl IntoIterator<Item = i32>, loop_id: u64) {
    let mut slots = slots();
    for sig in sigs {
        if let Err(e) = release_locked(&mut slots, sig, loop_id) {
            tracing::warn!("restoring the default disposition of signal {sig} failed: {e}");
        }
    }
}

fn release_locked(slots: &mut BTreeMap<i32, Slot>, sig: i32, loop_id: u64) -> Result<()> {
    let Some(slot) = slots.get_mut(&sig) else {
        return Ok(());
    };
    let mine = matches!(&slot.owner, Some(o) if o.loop_id == loop_id && o.pid == pid());
    if !mine {
        return Ok(());
    }
    if let Some(o) = slot.owner.take() {
        // Returns once no signal handler is running the action.
        signal_hook_registry::unregister(o.action);
    }
    if sig == libc::SIGPIPE {
        // Rust's runtime ignores SIGPIPE (so that writes to a closed pipe fail with EPIPE
        // instead of killing the process): that is its default here, and signal-hook's
        // handler with no action left behaves exactly so.
        return Ok(());
    }
    match &slot.default {
        Some((flag, _)) => flag.store(true, Ordering::SeqCst),
        None => {
            let flag = Arc::new(AtomicBool::new(true));
            let f = flag.clone();
            let action = move || {
                if f.load(Ordering::SeqCst) {
                    behave_as_default(sig);
                }
            };
            // SAFETY: `behave_as_default` is async-signal-safe (see there); the closure only
            // adds an atomic load.
            let id = unsafe { signal_hook_registry::register(sig, action) }
                .map_err(|e| install_error(sig, e))?;
            slot.default = Some((flag, id));
        }
    }
    Ok(())
}

/// What the default disposition of `sig` does, done from inside its handler.
///
/// signal-hook-registry keeps its handler installed once a signal was registered, and a handler
/// with no action ignores the signal; so after a removal, this action makes the signal behave
/// as `SIG_DFL` would: nothing for the signals whose default is to be ignored, a stop for the
/// stop signals, and for every other one (real-time signals included) the disposition is reset
/// to `SIG_DFL` and the signal raised again, which terminates the process by that signal (with
/// a core dump where the default does so) as soon as the handler returns.
fn behave_as_default(sig: i32) {
    match sig {
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH => {}
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
            let _ = signal_hook::low_level::emulate_default_handler(sig);
        }
        _ => {
            // SAFETY: `sigaction` and `raise` are async-signal-safe; the `sigaction` struct is
            // a plain C struct for which all-zero is a valid value (empty mask, no flags), and
            // both pointers are valid for the duration of the call.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = libc::SIG_DFL;
                if libc::sigaction(sig, &act, std::ptr::null_mut()) == 0 {
                    // Pending while this handler runs (the signal is blocked during it), then
                    // delivered with SIG_DFL when it returns.
                    libc::raise(sig);
                }
            }
        }
    }
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
