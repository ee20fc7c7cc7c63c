//! The one operation of loop-core that needs `unsafe`: naming a registered fd by its number for
//! `epoll_ctl`. Everything else goes through rustix's safe wrappers.
#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, RawFd};

/// The fd `fd` as a borrowed fd, for an `epoll_ctl` call on the loop's own epoll set.
///
/// Callers use the result only for `epoll_ctl` (add, modify, delete) on the loop's epoll fd;
/// see the `# Invariant` of the reactor's registration `fd` field.
pub(crate) fn borrow_for_epoll(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the invariant of `Reg::fd` (reactor.rs): the borrowed fd is used only for
    // `epoll_ctl` on this loop's own epoll set, which cannot cause memory unsafety. If the fd
    // was closed meanwhile the kernel answers EBADF (ignored); if its number was reused, the
    // call can only touch this loop's epoll set, whose entries are all the loop's own.
    unsafe { BorrowedFd::borrow_raw(fd) }
}
