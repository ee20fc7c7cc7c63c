//! Networking for evloop: the low-level `sock_*` calls and socket addresses.
//!
//! [`SockExt`] adds asyncio's `sock_recv`, `sock_recv_into`, `sock_sendall`, `sock_connect`,
//! `sock_accept`, `sock_recvfrom`, `sock_recvfrom_into` and `sock_sendto` to
//! [`EventLoop`](loop_core::EventLoop). Each works on a socket the caller owns, by reference,
//! whatever its type (`std::net`, `std::os::unix::net`, `socket2`, or a raw `OwnedFd`).
//!
//! ```
//! use loop_net::SockExt;
//! use std::os::unix::net::UnixStream;
//!
//! let lp = loop_core::EventLoop::new()?;
//! let (a, b) = UnixStream::pair()?;
//! a.set_nonblocking(true)?;
//! b.set_nonblocking(true)?;
//! let lp2 = lp.clone();
//! let echoed = lp.run_until_complete(async move {
//!     lp2.sock_sendall(&a, b"ping").await?;
//!     let got = lp2.sock_recv(&b, 16).await?;
//!     lp2.sock_sendall(&b, &got).await?;
//!     lp2.sock_recv(&a, 16).await
//! })??;
//! assert_eq!(echoed, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod addr;
mod resolve;
mod sock;

pub use addr::{peername, sockname, Addr};
pub use resolve::{
    getaddrinfo_blocking, getnameinfo_blocking, numeric_addrinfo, AddrInfo, Hints, AF_INET,
    AF_INET6, AF_UNSPEC, AI_CANONNAME, AI_PASSIVE, IPPROTO_TCP, IPPROTO_UDP, NI_NUMERICHOST,
    NI_NUMERICSERV, SOCK_DGRAM, SOCK_STREAM,
};
pub use sock::SockExt;
