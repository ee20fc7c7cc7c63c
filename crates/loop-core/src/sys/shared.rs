//! What both reactor backends use: the registration interest, the wake-up key, and borrowing
//! a registered fd for the poller.

use std::os::fd::{BorrowedFd, RawFd};

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
