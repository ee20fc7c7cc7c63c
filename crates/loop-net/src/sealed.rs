//! The seal of loop-net's extension traits ([`NetExt`](crate::NetExt),
//! [`SockExt`](crate::SockExt), [`DatagramExt`](crate::DatagramExt)): only
//! [`EventLoop`](loop_core::EventLoop) implements them, so methods can be added without a
//! breaking change.

/// Implemented for [`EventLoop`](loop_core::EventLoop) only.
pub trait Sealed {}

impl Sealed for loop_core::EventLoop {}
