//! The portable backend: the `polling` crate (kqueue on macOS and the BSDs, epoll on Linux with
//! the `reactor-polling` feature), woken by `Poller::notify`.
//!
//! Its events carry only what every platform reports: readable and writable. kqueue has no
//! hang-up flag and reports a read filter's EV_EOF as plain readiness, so this backend passes
//! on no hang-up and no error bit on any platform (on Linux too, so that the tests run here
//! exercise what macOS and the BSDs get): a transport learns of EOF from a read that returns
//! nothing and of an error from the read or write that fails, as asyncio does on macOS.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use polling::{Event, PollMode};
use rustix::io::Errno;

use super::shared::{borrow_registered, Interest};
use crate::readiness::Readiness;
use crate::wake::WakeFd;

// Registration keys are a slot index and a generation, 32 bits each, given to `polling` as a
// `usize`.
const _: () = assert!(
    usize::BITS >= 64,
    "the polling reactor backend needs 64-bit registration keys"
);

/// No hang-up or error bit: see the module documentation.
pub(crate) const HANGUP_REPORTED: bool = false;

/// The fds a loop keeps open: `polling`'s own. On Linux its epoll fd, eventfd and timerfd;
/// on macOS, FreeBSD and DragonFly one kqueue (woken through `EVFILT_USER`); on the other
/// kqueue systems a kqueue and the two ends of its wake-up pipe.
pub(crate) const LOOP_FDS: usize = if cfg!(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_vendor = "apple"
)) {
    1
} else {
    3
};

/// A `polling` poller, shared with the loop's [`Waker`] (which other threads use).
pub(crate) struct Poller {
    /// `None` once closed.
    inner: RefCell<Option<Arc<polling::Poller>>>,
}

/// The buffer `wait` fills, and its events as (key, readiness) pairs.
pub(crate) struct Events(polling::Events, Vec<(u64, Readiness)>);

impl Events {
    /// Room for `n` events per wait.
    pub(crate) fn with_capacity(n: usize) -> Events {
        let n = std::num::NonZeroUsize::new(n).unwrap_or(std::num::NonZeroUsize::MIN);
        Events(
            polling::Events::with_capacity(n),
            Vec::with_capacity(n.get()),
        )
    }

    /// How many events the last wait returned.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.1.len()
    }

    /// The `i`-th event of the last wait: (key, readiness).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<(u64, Readiness)> {
        self.1.get(i).copied()
    }

    /// Reads the events `polling` returned into (key, readiness) pairs.
    fn fill(&mut self) {
        self.1.clear();
        self.1.extend(self.0.iter().map(|ev| {
            let mut r = Readiness::EMPTY;
            if ev.readable {
                r = r | Readiness::READABLE;
            }
            if ev.writable {
                r = r | Readiness::WRITABLE;
            }
            (ev.key as u64, r)
        }));
    }
}

/// The `polling` event asking for `interest` under `key`, and its mode.
fn event(key: u64, interest: Interest) -> (Event, PollMode) {
    let ev = Event::new(
        key as usize,
        interest.contains(Interest::READ),
        interest.contains(Interest::WRITE),
    );
    let mode = if interest.contains(Interest::EDGE) {
        PollMode::Edge
    } else {
        PollMode::Level
    };
    (ev, mode)
}

impl Poller {
    /// A new poller, and its waker.
    pub(crate) fn new() -> io::Result<(Poller, Waker)> {
        let p = Arc::new(polling::Poller::new()?);
        Ok((
            Poller {
                inner: RefCell::new(Some(p.clone())),
            },
            Waker {
                poller: RwLock::new(Some(p)),
            },
        ))
    }

    /// Registers `fd` under `key` (or changes its registration if it is already in the set).
    pub(crate) fn add(&self, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        let p = self.inner.borrow();
        let Some(p) = p.as_ref() else {
            return Err(Errno::BADF.into());
        };
        let (ev, mode) = event(key, interest);
        // SAFETY: `polling` requires the fd to be removed before it is closed. The reactor's
        // registration invariant (`Reg::fd`, reactor.rs) guarantees that for transports
        // (`Registered` removes the slot before it drops the fd); for `add_reader` watches it
        // is the user's rule, as in asyncio, and on the Unix backends (epoll, kqueue) a closed
        // fd leaves the set by itself, so breaking it loses events but not memory safety.
        match unsafe { p.add_with_mode(fd, ev, mode) } {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                p.modify_with_mode(borrow_registered(fd), ev, mode)
            }
            r => r,
        }
    }

    /// Changes the registration of `fd` (or adds it if it is not in the set).
    pub(crate) fn modify(&self, fd: RawFd, key: u64, interest: Interest) -> io::Result<()> {
        let p = self.inner.borrow();
        let Some(p) = p.as_ref() else {
            return Err(Errno::BADF.into());
        };
        let (ev, mode) = event(key, interest);
        match p.modify_with_mode(borrow_registered(fd), ev, mode) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // SAFETY: as in `add`.
                unsafe { p.add_with_mode(fd, ev, mode) }
            }
            r => r,
        }
    }

    /// Removes `fd`; errors (the fd was closed, or never added) are ignored.
    pub(crate) fn delete(&self, fd: RawFd) {
        if let Some(p) = self.inner.borrow().as_ref() {
            let _ = p.delete(borrow_registered(fd));
        }
    }

    /// Waits up to `timeout` (forever if `None`) and fills `events`. Returns true: `polling`
    /// consumes its notification inside `wait` without an event for it, so every return may
    /// follow a wake-up, and the loop checks its wake-up state after each one (two atomic
    /// operations).
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> bool {
        events.0.clear();
        events.1.clear();
        let p = self.inner.borrow();
        let Some(p) = p.as_ref() else {
            return false;
        };
        if let Err(e) = p.wait(&mut events.0, timeout) {
            tracing::error!("polling wait failed: {e}");
        }
        events.fill();
        true
    }

    /// Lets go of the poller; its fds close once the [`Waker`] is closed too.
    pub(crate) fn close(&self) {
        *self.inner.borrow_mut() = None;
    }
}

/// Wakes the loop through `Poller::notify`.
pub(crate) struct Waker {
    /// `None` once the loop is closed. Writers hold the read lock, as with the eventfd.
    poller: RwLock<Option<Arc<polling::Poller>>>,
}

impl Waker {
    /// Lets go of the poller; later wake-ups do nothing.
    pub(crate) fn close(&self) {
        *self.poller.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl WakeFd for Waker {
    fn write(&self) -> Result<(), Errno> {
        let guard = self.poller.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(p) => p
                .notify()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO)),
            None => Ok(()),
        }
    }

    /// Nothing to drain: `polling`'s `wait` consumed the notification.
    fn read(&self) -> Result<(), Errno> {
        Err(Errno::AGAIN)
    }
}
