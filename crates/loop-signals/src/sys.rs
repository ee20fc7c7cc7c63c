//! The signal dispositions evloop installs with `sigaction`, and the handler itself.
//!
//! While a loop handles a signal, the kernel's disposition of that signal is [`on_signal`]:
//! it replaces whatever was installed before (asyncio's `signal.signal` does the same), and
//! it does not call that earlier handler. Removal installs `SIG_DFL` (or `SIG_IGN`) directly.
//!
//! The handler finds where to write in a table indexed by signal number, written by the
//! loop's thread and read by the handler with atomics only: the write end of the self-pipe of
//! the loop that owns the signal, and the process that installed it. A per-signal count of
//! running handlers lets [`clear_target`] wait until no handler can still write to a pipe that
//! is about to be closed.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// Table size: above every signal number of the supported platforms (Linux: 64).
const TABLE: usize = 128;

/// Where the handler of one signal writes.
struct Target {
    /// The write end of the owning loop's self-pipe; -1: none.
    fd: AtomicI32,
    /// The process that installed it (a forked child inherits the table, not the loop).
    pid: AtomicI32,
    /// Handlers running for this signal now.
    running: AtomicUsize,
}

// A `const` item is the way to repeat a value with interior mutability in an array initialiser
// on the minimum supported Rust version; each array element is its own `Target`.
#[allow(clippy::declare_interior_mutable_const)]
const NO_TARGET: Target = Target {
    fd: AtomicI32::new(-1),
    pid: AtomicI32::new(0),
    running: AtomicUsize::new(0),
};

static TARGETS: [Target; TABLE] = [NO_TARGET; TABLE];

fn target(sig: i32) -> Option<&'static Target> {
    usize::try_from(sig).ok().and_then(|i| TARGETS.get(i))
}

/// The handler evloop installs: writes the signal number as one byte to the owning loop's
/// self-pipe (SIG-10) and returns; nothing else.
///
/// Async-signal-safe: atomics, `getpid` and `write` (on a non-blocking socket: a full pipe
/// already holds a wake-up, and the signal coalesces with it); no allocation, no lock, no
/// panic. `errno` is saved and restored, since the interrupted code may be about to read it.
extern "C" fn on_signal(sig: c_int) {
    let Some(t) = target(sig) else {
        return;
    };
    // SAFETY: the errno location of the calling thread is always valid to read and write.
    let saved = unsafe { *errno_location() };
    // Counted before the fd is read: `clear_target` clears the fd first, then waits for the
    // count to drop to zero (both sequentially consistent), so a handler either sees the
    // cleared fd or is waited for.
    t.running.fetch_add(1, Ordering::SeqCst);
    let fd = t.fd.load(Ordering::SeqCst);
    // SAFETY: `getpid` has no preconditions.
    if fd >= 0 && t.pid.load(Ordering::SeqCst) == unsafe { libc::getpid() } {
        let byte = [sig as u8];
        // SAFETY: `fd` stays open while it is in the table and until `running` is back to zero
        // (see `clear_target`); the buffer is valid for one byte.
        unsafe {
            libc::write(fd, byte.as_ptr().cast(), 1);
        }
    }
    t.running.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *errno_location() = saved };
}

/// The calling thread's `errno`.
#[cfg(any(target_os = "linux", target_os = "emscripten", target_os = "redox"))]
fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns the calling thread's errno.
    unsafe { libc::__errno_location() }
}

/// The calling thread's `errno`.
#[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns the calling thread's errno.
    unsafe { libc::__errno() }
}

/// The calling thread's `errno`.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns the calling thread's errno.
    unsafe { libc::__error() }
}

/// Points the handler of `sig` at `fd`, for the handlers running in process `pid`.
pub(crate) fn set_target(sig: i32, fd: RawFd, pid: i32) {
    if let Some(t) = target(sig) {
        t.pid.store(pid, Ordering::SeqCst);
        t.fd.store(fd, Ordering::SeqCst);
    }
}

/// Stops the handler of `sig` from writing anywhere, and returns once no handler that could
/// still use the old fd is running: the caller may close it then.
pub(crate) fn clear_target(sig: i32) {
    if let Some(t) = target(sig) {
        t.fd.store(-1, Ordering::SeqCst);
        while t.running.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

/// What to install for a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// evloop's handler, [`on_signal`], with `SA_RESTART` (SIG-10): system calls it interrupts
    /// are restarted instead of failing with `EINTR` where the kernel allows it.
    Loop,
    /// `SIG_DFL`.
    Default,
    /// `SIG_IGN`.
    Ignore,
}

/// Installs `d` as the disposition of `sig` (process-wide).
///
/// # Errors
///
/// The OS error of `sigaction`: `EINVAL` for a signal that cannot be caught or a number out
/// of range.
pub(crate) fn set_disposition(sig: i32, d: Disposition) -> io::Result<()> {
    let (handler, flags) = match d {
        Disposition::Loop => {
            let f: extern "C" fn(c_int) = on_signal;
            (f as libc::sighandler_t, libc::SA_RESTART)
        }
        Disposition::Default => (libc::SIG_DFL, 0),
        Disposition::Ignore => (libc::SIG_IGN, 0),
    };
    // SAFETY: `act` is a plain C struct, zeroed (a valid value) and then given an empty signal
    // mask, the flags and a handler that is `SIG_DFL`, `SIG_IGN` or an `extern "C" fn(c_int)`
    // (no `SA_SIGINFO`, so the one-argument form is the one called); the pointers are valid for
    // the duration of the call, and a null old-action pointer is allowed.
    let r = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        libc::sigemptyset(&mut act.sa_mask);
        act.sa_flags = flags;
        act.sa_sigaction = handler;
        libc::sigaction(sig, &act, std::ptr::null_mut())
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
