//! Unix signal handlers for evloop: asyncio's `add_signal_handler` and
//! `remove_signal_handler`, natively in Rust.
//!
//! # Why
//!
//! A signal handler interrupts whatever the process is doing, on whichever thread, and may
//! only make async-signal-safe calls: no allocation, no lock, no `RefCell`, nothing of the loop.
//! Almost every useful reaction to a signal (start a graceful shutdown, reload a
//! configuration, print statistics) needs exactly those things. So the handler does nothing
//! but wake the loop, and the reaction runs later as an ordinary loop callback, on the loop's
//! thread, where it may use everything (SIG-01).
//!
//! # How
//!
//! * **Self-pipe.** Each loop that handles signals owns a non-blocking Unix socket pair. Its
//!   read end is registered in the loop's reactor; the handler evloop installs for each signal
//!   (with `sigaction`, flag `SA_RESTART`, SIG-10) writes the signal number as one byte to the
//!   write end, keeping `errno` intact. The loop drains the read end (4096 bytes at a time,
//!   SIG-10) and schedules the callback of every signal it saw, once per drain: signals that
//!   arrive faster than the loop drains them coalesce, as Unix signals do anyway. A callback
//!   that panics is reported to the loop's exception handler like any other callback, and the
//!   handler stays installed.
//! * **evloop's handler replaces the signal's disposition** while a loop handles it, as
//!   asyncio's does: a handler the program installed before (or `SIG_IGN`) does not run, on
//!   any delivery. The same goes for handlers registered through other libraries, signal-hook
//!   included, for that signal: a process-wide disposition has one owner at a time.
//! * **One owner per signal.** For the same reason at most one loop at a time handles a given
//!   signal. A second loop asking for it gets
//!   [`Error::InvalidState`] naming the loop (and thread) that
//!   owns it (the Rust restatement of SIG-07, whose Python form is "main thread only"). A loop
//!   adds and removes its handlers on its own thread: [`EventLoop`] is not `Send`. One loop may
//!   handle any number of signals, through its one self-pipe; loops on different threads
//!   handle different signals.
//! * **Removing restores the default disposition** (SIG-11): `sigaction` installs `SIG_DFL`,
//!   so the next delivery does what the signal's default does (terminate, stop, ignore), with
//!   nothing else run first. CPython restores the interpreter's own handler for `SIGINT`; the
//!   analogue here is `SIGPIPE`, which Rust's runtime ignores: it goes back to `SIG_IGN`. As in
//!   CPython, the disposition from before `add_signal_handler` is not restored.
//! * **`close()`** of the loop removes every handler it installed (SIG-14), and so does
//!   dropping the last handle of an unclosed loop.
//! * **Fork.** A forked child inherits the process-wide handler but not the loop: the handler
//!   checks the process id and does nothing in a child, so signals sent to the child never run
//!   the parent's callbacks (SIG-15). A loop created in the child can take the signal over.
//!
//! Signal numbers are plain `i32`s ([`consts::SIGTERM`], `libc::SIGTERM`, ...). SIG-02 (a
//! signal that is not an integer) and SIG-05 (a coroutine given as the callback) are Python
//! type errors that Rust's types rule out at compile time.
//! `SIGKILL` and `SIGSTOP` cannot be caught; `SIGILL`, `SIGFPE` and `SIGSEGV` are refused too:
//! raised by a fault, their handler would return into the faulting instruction forever.
//!
//! # Example
//!
//! ```
//! use loop_core::EventLoop;
//! use loop_signals::SignalsExt;
//!
//! let lp = EventLoop::new()?;
//! lp.add_signal_handler(libc::SIGUSR2, |lp| {
//!     println!("got SIGUSR2");
//!     lp.stop();
//! })?;
//! // Signal ourselves; the callback runs on the loop, not in the signal handler.
//! signal_hook::low_level::raise(libc::SIGUSR2)?;
//! lp.run_forever()?;
//! assert!(lp.remove_signal_handler(libc::SIGUSR2)?);
//! lp.close()?;
//! # Ok::<(), loop_core::Error>(())
//! ```

#![warn(missing_docs)]

mod process;
mod sys;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::Location;
use std::rc::{Rc, Weak};

use loop_core::internal::{IoHandler, LoopInternals, Registered};
use loop_core::{Error, EventLoop, Handle, Mode, Readiness, Result};

/// The signal numbers (`SIGINT`, `SIGTERM`, `SIGUSR1`, ...) of this platform, from the C
/// library, re-exported from signal-hook so that no `libc` dependency is needed to name them.
///
/// ```
/// use loop_signals::consts::{SIGINT, SIGTERM};
/// assert_eq!((SIGINT, SIGTERM), (2, 15));
/// ```
pub use signal_hook::consts::signal as consts;

/// A signal callback; `FnMut`, called once per delivery.
type Callback = Rc<RefCell<Box<dyn FnMut(&EventLoop)>>>;

/// One installed handler.
struct Entry {
    /// The callback.
    cb: Callback,
    /// Cancelled by the user: the handler is removed at the next delivery (SIG-09).
    handle: Handle,
    /// Where `add_signal_handler` was called (exception reports name it).
    location: &'static Location<'static>,
}

/// The loop's self-pipe.
struct Pipe {
    /// The read end, registered with the loop's poller (deregistered before it is closed).
    read: Registered<UnixStream>,
    /// The write end evloop's signal handler writes to.
    write: UnixStream,
}

/// Per-loop signal state (in the loop's extension slot).
struct LoopSignals {
    /// The loop's id.
    loop_id: u64,
    /// Installed handlers, by signal.
    handlers: RefCell<BTreeMap<i32, Entry>>,
    /// The self-pipe, while at least one handler is installed.
    pipe: RefCell<Option<Pipe>>,
}

impl LoopSignals {
    /// Removes every handler: gives the signals up, restores their dispositions, closes the
    /// pipe (after no signal handler can write to it any more).
    fn release_all(&self) {
        let sigs: Vec<i32> = self.handlers.borrow().keys().copied().collect();
        process::release_all(sigs, self.loop_id);
        let entries = std::mem::take(&mut *self.handlers.borrow_mut());
        let pipe = self.pipe.borrow_mut().take();
        drop(pipe);
        drop(entries);
    }

    /// Drops the pipe if no handler is left (SIG-12).
    fn release_pipe_if_unused(&self) {
        if self.handlers.borrow().is_empty() {
            let pipe = self.pipe.borrow_mut().take();
            drop(pipe);
        }
    }
}

impl Drop for LoopSignals {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// The loop's signal state, created (with its close hook) on first use.
fn state(lp: &EventLoop) -> Rc<LoopSignals> {
    lp.extension(|lp| {
        lp.on_close(|lp| state(lp).release_all());
        LoopSignals {
            loop_id: lp.id(),
            handlers: RefCell::new(BTreeMap::new()),
            pipe: RefCell::new(None),
        }
    })
}

/// Reads the self-pipe and dispatches the signals found in it.
struct Reader {
    /// The loop's signal state.
    st: Weak<LoopSignals>,
}

impl IoHandler for Reader {
    fn ready(&self, lp: &EventLoop, _readiness: Readiness) {
        let Some(st) = self.st.upgrade() else {
            return;
        };
        // Which signals arrived, in order of first arrival, each once.
        let mut seen = [false; 256];
        let mut order: Vec<u8> = Vec::new();
        {
            let pipe = st.pipe.borrow();
            let Some(pipe) = pipe.as_ref() else {
                return;
            };
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read.get_ref().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for &b in &buf[..n] {
                            // Zero is never written by the signal handler: ignore it (SIG-10).
                            if b != 0 && !seen[b as usize] {
                                seen[b as usize] = true;
                                order.push(b);
                            }
                        }
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!("reading the signal self-pipe failed: {e}");
                        break;
                    }
                }
            }
        }
        for sig in order {
            dispatch(lp, &st, i32::from(sig));
        }
    }
}

/// Schedules the callback of `sig` as an ordinary loop callback (SIG-01).
fn dispatch(lp: &EventLoop, st: &Rc<LoopSignals>, sig: i32) {
    let found = st
        .handlers
        .borrow()
        .get(&sig)
        .map(|e| (e.cb.clone(), e.handle.clone(), e.location));
    let Some((cb, handle, location)) = found else {
        // A byte for a signal without a handler (removed meanwhile): ignored (SIG-09).
        return;
    };
    if handle.cancelled() {
        // SIG-09: a cancelled handle removes the handler at its next delivery.
        if let Err(e) = remove(lp, sig) {
            tracing::warn!("removing the cancelled handler of signal {sig} failed: {e}");
        }
        return;
    }
    let weak = Rc::downgrade(st);
    let h = Handle::with_location(location, move |lp| {
        // Removed, replaced or cancelled since the signal arrived: do not run it.
        let current = weak.upgrade().is_some_and(|st| {
            st.handlers
                .borrow()
                .get(&sig)
                .is_some_and(|e| Rc::ptr_eq(&e.cb, &cb) && !e.handle.cancelled())
        });
        if !current {
            return;
        }
        let Ok(mut f) = cb.try_borrow_mut() else {
            return;
        };
        (*f)(lp);
    });
    // Fails only on a closed loop, which has no handlers left.
    let _ = lp.schedule(&h);
}

/// Checks a signal number (SIG-03, SIG-04).
fn check_signal(sig: i32) -> Result<()> {
    if sig <= 0 || sig >= process::nsig() || process::reserved(sig) {
        return Err(Error::invalid_argument(format!(
            "invalid signal number {sig}"
        )));
    }
    Ok(())
}

/// Checks that a valid signal can be caught by a loop (SIG-04).
fn check_catchable(sig: i32) -> Result<()> {
    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return Err(Error::invalid_argument(format!(
            "sig {sig} cannot be caught"
        )));
    }
    if sig == libc::SIGILL || sig == libc::SIGFPE || sig == libc::SIGSEGV {
        return Err(Error::invalid_argument(format!(
            "sig {sig} cannot be caught by an event loop: it is raised by a fault, and a \
             handler that returns runs into the fault again"
        )));
    }
    Ok(())
}

/// Creates the self-pipe and registers its read end, if the loop has none.
fn ensure_pipe(lp: &EventLoop, st: &Rc<LoopSignals>) -> Result<()> {
    if st.pipe.borrow().is_some() {
        return Ok(());
    }
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let read = Registered::new(
        lp,
        read,
        Mode::Level,
        true,
        false,
        "the signal self-pipe",
        Rc::new(Reader {
            st: Rc::downgrade(st),
        }),
    )?;
    *st.pipe.borrow_mut() = Some(Pipe { read, write });
    Ok(())
}

/// Removes the handler of `sig` from this loop; true if there was one.
fn remove(lp: &EventLoop, sig: i32) -> Result<bool> {
    let st = state(lp);
    let entry = st.handlers.borrow_mut().remove(&sig);
    let Some(entry) = entry else {
        return Ok(false);
    };
    let r = process::release(sig, st.loop_id);
    st.release_pipe_if_unused();
    drop(entry);
    r.map(|()| true)
}

mod sealed {
    /// Only `EventLoop` implements [`SignalsExt`](super::SignalsExt).
    pub trait Sealed {}
    impl Sealed for loop_core::EventLoop {}
}

/// The signal methods of [`EventLoop`]: `add_signal_handler`, `remove_signal_handler`.
///
/// ```
/// use loop_core::EventLoop;
/// use loop_signals::SignalsExt;
///
/// let lp = EventLoop::new()?;
/// lp.add_signal_handler(libc::SIGHUP, |_| println!("reload the configuration"))?;
/// assert!(lp.remove_signal_handler(libc::SIGHUP)?);
/// assert!(!lp.remove_signal_handler(libc::SIGHUP)?);
/// # Ok::<(), loop_core::Error>(())
/// ```
///
/// A loop adds handlers from its own thread only: it cannot be sent to another one.
///
/// ```compile_fail
/// use loop_signals::SignalsExt;
/// let lp = loop_core::EventLoop::new().unwrap();
/// std::thread::spawn(move || lp.add_signal_handler(libc::SIGHUP, |_| {}));
/// ```
pub trait SignalsExt: sealed::Sealed {
    /// Runs `callback` on the loop whenever signal `sig` arrives (SIG-01): as an ordinary
    /// callback of the loop, on its thread, also while the loop is blocked waiting for I/O.
    /// Adding a handler for a signal this loop already handles replaces the callback (SIG-08).
    ///
    /// Returns a [`Handle`]: cancelling it removes the handler the next time the signal
    /// arrives (SIG-09), or use [`remove_signal_handler`](SignalsExt::remove_signal_handler).
    ///
    /// # Errors
    ///
    /// Checked in this order:
    /// [`Error::InvalidArgument`] "invalid signal number N" for 0, negative numbers, numbers
    /// past the platform's last signal and numbers the C library reserves (SIG-03);
    /// [`Error::InvalidArgument`] "sig 9 cannot be caught" for `SIGKILL` and `SIGSTOP`, and a
    /// refusal for the fault signals `SIGILL`, `SIGFPE`, `SIGSEGV` (SIG-04);
    /// [`Error::Closed`] after `close()` (SIG-06);
    /// [`Error::InvalidState`] if another loop of the process handles `sig` (SIG-07);
    /// the OS error of installing the handler (`EINVAL` reported as "cannot be caught").
    /// On any error nothing is left installed.
    ///
    /// ```
    /// use loop_core::{Error, EventLoop};
    /// use loop_signals::SignalsExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let err = lp.add_signal_handler(libc::SIGKILL, |_| {}).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid argument: sig 9 cannot be caught");
    /// let err = lp.add_signal_handler(0, |_| {}).unwrap_err();
    /// assert!(matches!(err, Error::InvalidArgument(_)));
    /// let h = lp.add_signal_handler(libc::SIGUSR1, |_| {})?;
    /// h.cancel(); // removed at the next SIGUSR1
    /// # lp.close()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn add_signal_handler(
        &self,
        sig: i32,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> Result<Handle>;

    /// Removes this loop's handler of `sig` and restores the signal's default disposition
    /// (SIG-11; see the crate docs for what "default" means for `SIGPIPE`). Returns false if
    /// this loop had no handler for it (also for `SIGKILL`, and for a second removal). A
    /// callback already scheduled for an earlier delivery does not run any more.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] "invalid signal number N" (SIG-03); the OS error of restoring
    /// the disposition (SIG-13; the handler is removed all the same).
    ///
    /// ```
    /// use loop_core::EventLoop;
    /// use loop_signals::SignalsExt;
    ///
    /// let lp = EventLoop::new()?;
    /// assert!(!lp.remove_signal_handler(libc::SIGKILL)?);
    /// assert!(lp.remove_signal_handler(-1).is_err());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    fn remove_signal_handler(&self, sig: i32) -> Result<bool>;
}

impl SignalsExt for EventLoop {
    #[track_caller]
    fn add_signal_handler(
        &self,
        sig: i32,
        callback: impl FnMut(&EventLoop) + 'static,
    ) -> Result<Handle> {
        let location = Location::caller();
        check_signal(sig)?;
        check_catchable(sig)?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let st = state(self);
        let cb: Callback = Rc::new(RefCell::new(Box::new(callback)));
        let handle = Handle::with_location(location, |_| {});
        let new = Entry {
            cb,
            handle: handle.clone(),
            location,
        };
        // SIG-08: this loop handles it already; the newest callback replaces the old one.
        let old = {
            let mut handlers = st.handlers.borrow_mut();
            match handlers.get_mut(&sig) {
                Some(e) => Some(std::mem::replace(e, new)),
                None => {
                    drop(handlers);
                    ensure_pipe(self, &st)?;
                    let fd = match st.pipe.borrow().as_ref() {
                        Some(p) => p.write.as_raw_fd(),
                        None => return Err(Error::Closed),
                    };
                    if let Err(e) = process::claim(sig, st.loop_id, fd) {
                        st.release_pipe_if_unused();
                        return Err(e);
                    }
                    st.handlers.borrow_mut().insert(sig, new);
                    None
                }
            }
        };
        drop(old);
        Ok(handle)
    }

    fn remove_signal_handler(&self, sig: i32) -> Result<bool> {
        check_signal(sig)?;
        if self.is_closed() {
            return Ok(false);
        }
        remove(self, sig)
    }
}
