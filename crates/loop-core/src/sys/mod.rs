//! The operating system under the reactor: two backends behind one small interface, chosen at
//! compile time (no trait object, no dynamic dispatch on the hot path).
//!
//! - `epoll` (Linux and Android, by default): epoll through rustix, one `epoll_wait` per
//!   poll; the loop is woken through an eventfd registered in the epoll set.
//! - `polling` (every other Unix, and Linux with the `reactor-polling` feature): the
//!   `polling` crate — kqueue on macOS and the BSDs, one `kevent` per poll; the loop is woken
//!   by `Poller::notify`. It reports only what every platform reports (readable, writable):
//!   no hang-up and no error bit, so transports learn of EOF and errors by reading and
//!   writing, as asyncio does on macOS.
//!
//! Both offer the same items: `Poller` (`new` / `add` / `modify` / `delete` / `wait` /
//! `close`), `Events` (the buffer `wait` fills, iterated as (key, [`Readiness`]) pairs) and
//! `Waker` (the [`WakeFd`](crate::wake::WakeFd) of the cross-thread wake protocol, with
//! `close`), plus `HANGUP_REPORTED` and `LOOP_FDS`.
//!
//! [`Readiness`]: crate::readiness::Readiness
#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, RawFd};

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
mod epoll;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
pub(crate) use epoll::{Events, Poller, Waker, HANGUP_REPORTED, LOOP_FDS};

#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "reactor-polling"
))]
mod polling;
#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "reactor-polling"
))]
pub(crate) use self::polling::{Events, Poller, Waker, HANGUP_REPORTED, LOOP_FDS};

/// The key of the loop's own wake-up in the poller's events (the epoll backend's eventfd).
pub(crate) const WAKE_KEY: u64 = u64::MAX;

/// What a registration asks the backend to report.
///
/// ```text
/// Interest::READ | Interest::EDGE   a transport's reads, edge-triggered
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Interest(u8);

impl Interest {
    /// Nothing (the fd stays registered).
    pub(crate) const NONE: Interest = Interest(0);
    /// Readable.
    pub(crate) const READ: Interest = Interest(1);
    /// Writable.
    pub(crate) const WRITE: Interest = Interest(2);
    /// Edge-triggered instead of level-triggered.
    pub(crate) const EDGE: Interest = Interest(4);
    /// The peer's shutdown of its writing side (transports; epoll's `EPOLLRDHUP`).
    pub(crate) const READ_CLOSED: Interest = Interest(8);

    /// True if every bit of `other` is set.
    #[inline]
    pub(crate) const fn contains(self, other: Interest) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    #[inline]
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Interest {
    #[inline]
    fn bitor_assign(&mut self, rhs: Interest) {
        self.0 |= rhs.0;
    }
}

/// The fd `fd` as a borrowed fd, for a call on the loop's own poller (add, modify, delete).
///
/// Callers use the result only for those calls; see the `# Invariant` of the reactor's
/// registration `fd` field.
pub(crate) fn borrow_registered(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the invariant of `Reg::fd` (reactor.rs): the borrowed fd is used only to add it
    // to, change it in or remove it from this loop's own poller, which cannot cause memory
    // unsafety. If the fd was closed meanwhile the kernel answers EBADF (ignored); if its
    // number was reused, the call can only touch this loop's poller, whose entries are all the
    // loop's own.
    unsafe { BorrowedFd::borrow_raw(fd) }
}
