//! Networking for evloop: the low-level `sock_*` calls and socket addresses.
//!
//! [`SockExt`] adds asyncio's `sock_recv`, `sock_recv_into`, `sock_sendall`, `sock_connect`,
//! `sock_accept`, `sock_recvfrom`, `sock_recvfrom_into` and `sock_sendto` to
//! [`EventLoop`](loop_core::EventLoop). Each works on a socket the caller owns, by reference,
//! whatever its type (`std::net`, `std::os::unix::net`, `socket2`, or a raw `OwnedFd`).
//!
//! [`NetExt`] adds the high-level calls: `getaddrinfo` / `getnameinfo` (the system resolver on
//! the default executor), `create_connection` (with happy eyeballs), `create_server` and
//! [`Server`], their Unix-domain variants, and the streams functions `open_connection` /
//! `start_server`.
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
mod connect;
mod datagram;
mod errors;
mod ext;
mod lookup;
mod plain;
mod resolve;
mod sealed;
mod server;
mod server_options;
mod server_socket;
mod sock;
mod streams;
mod sys;
mod tls;
mod unix;

pub use addr::{peername, sockname, Addr};
pub use connect::ConnectOptions;
pub use datagram::{DatagramAddr, DatagramExt, DatagramOptions, AF_UNIX};
pub use ext::NetExt;
pub use lookup::Service;
/// Every attempt's error of a failed `create_connection` with `all_errors` (defined in
/// loop-core: [`Error::errors`](loop_core::Error::errors) reads it).
pub use loop_core::ErrorGroup;
pub use loop_transport::{DatagramTransport, MAX_DATAGRAM_READ};
pub use resolve::{
    getaddrinfo_blocking, getnameinfo_blocking, numeric_addrinfo, AddrInfo, Hints, AF_INET,
    AF_INET6, AF_UNSPEC, AI_CANONNAME, AI_PASSIVE, IPPROTO_TCP, IPPROTO_UDP, NI_NUMERICHOST,
    NI_NUMERICSERV, SOCK_DGRAM, SOCK_STREAM,
};
pub use server::{Hosts, Server, ServerOptions, ACCEPT_RETRY_DELAY};
pub use server_socket::ServerSocket;
pub use sock::SockExt;
