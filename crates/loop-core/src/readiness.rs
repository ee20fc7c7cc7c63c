//! What the reactor reports and how a registration is triggered: [`Readiness`], [`Mode`], and
//! [`Fileno`] (an fd given by number or by its owner). Shared by the reactor and its OS
//! backends.

use std::os::fd::{BorrowedFd, RawFd};

/// What became ready on a file descriptor.
///
/// ```
/// use loop_core::Readiness;
/// let r = Readiness::READABLE | Readiness::WRITABLE;
/// assert!(r.is_readable() && r.is_writable() && !r.is_error());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    pub const EMPTY: Readiness = Readiness(0);
    /// Data (or EOF) can be read.
    pub const READABLE: Readiness = Readiness(1);
    /// Data can be written.
    pub const WRITABLE: Readiness = Readiness(2);
    /// An error or hang-up is pending on the fd.
    pub const ERROR: Readiness = Readiness(4);
    /// The peer shut down its writing side.
    pub const READ_CLOSED: Readiness = Readiness(8);

    /// True if readable (or in error, which a read reports).
    ///
    /// ```
    /// assert!(loop_core::Readiness::READABLE.is_readable());
    /// ```
    pub fn is_readable(self) -> bool {
        self.0 & (Self::READABLE.0 | Self::ERROR.0 | Self::READ_CLOSED.0) != 0
    }

    /// True if writable (or in error, which a write reports).
    ///
    /// ```
    /// assert!(loop_core::Readiness::WRITABLE.is_writable());
    /// ```
    pub fn is_writable(self) -> bool {
        self.0 & (Self::WRITABLE.0 | Self::ERROR.0) != 0
    }

    /// True if an error or hang-up is pending.
    ///
    /// ```
    /// assert!(loop_core::Readiness::ERROR.is_error());
    /// ```
    pub fn is_error(self) -> bool {
        self.0 & Self::ERROR.0 != 0
    }
}

impl std::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}

/// A file descriptor given by number or by reference to its owner (asyncio accepts an int or an
/// object with `fileno()`).
///
/// ```
/// use loop_core::Fileno;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// use std::os::fd::AsRawFd;
/// assert_eq!((&a).fileno(), a.as_raw_fd());
/// assert_eq!(7.fileno(), 7);
/// ```
pub trait Fileno {
    /// The descriptor number.
    fn fileno(&self) -> RawFd;
}

impl Fileno for RawFd {
    fn fileno(&self) -> RawFd {
        *self
    }
}

impl<T: std::os::fd::AsRawFd + ?Sized> Fileno for &T {
    fn fileno(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl Fileno for BorrowedFd<'_> {
    fn fileno(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// How a registration is triggered.
///
/// ```
/// assert_ne!(loop_core::Mode::Edge, loop_core::Mode::Level);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reported every poll while the condition holds (`add_reader` semantics).
    Level,
    /// Reported once per change; the handler must read or write until `WouldBlock` or a short
    /// transfer before it is reported again.
    Edge,
}
