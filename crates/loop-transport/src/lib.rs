//! Transports and protocols for evloop: asyncio's `Protocol` / `Transport` contracts, the one
//! fd stream transport that TCP, Unix stream sockets and pipes share, and `StreamReader` /
//! `StreamWriter` on top of it.
//!
//! * [`Protocol`], [`BufferedProtocol`], [`DatagramProtocol`]: traits with asyncio's methods,
//!   each with a do-nothing default.
//! * [`Transport`]: a cheap clonable handle to a stream transport: over a connected fd, built
//!   by [`Transport::new`] from any `OwnedFd` and a [`TransportOptions`] naming its [`FdKind`]
//!   (socket, read pipe, write pipe) — loop-net (`create_connection`, `create_server`),
//!   loop-pipes and loop-subprocess build their stream transports with it — or over another
//!   transport's protocol ([`Transport::from_backend`], a layered transport such as TLS).
//! * [`DatagramTransport`]: a datagram socket and its [`DatagramProtocol`] (loop-net's
//!   `create_datagram_endpoint` makes the socket).
//! * [`ProtocolRef`]: the typed handle to a transport's protocol that every call asyncio
//!   answers with `(transport, protocol)` returns beside the transport.
//! * [`StreamReader`], [`StreamWriter`], [`StreamReaderProtocol`], and [`open_stream`] /
//!   [`open_read_stream`] / [`open_write_stream`] to make streams from a connected fd. They
//!   implement futures-io's `AsyncRead` + `AsyncBufRead` and `AsyncWrite`.
//!
//! # Example
//!
//! ```
//! use loop_core::{EventLoop, LoopFuture};
//! use loop_transport::{Protocol, Transport, TransportOptions};
//! use std::io::{Read, Write};
//!
//! /// Echoes everything back, then closes when the peer is done.
//! struct Echo {
//!     transport: Option<Transport>,
//!     closed: LoopFuture<()>,
//! }
//!
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, transport: &Transport) {
//!         self.transport = Some(transport.clone());
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.transport.as_ref().unwrap().write(data).unwrap();
//!     }
//!     fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
//!         self.transport = None;
//!         self.closed.set_result(()).unwrap();
//!     }
//! }
//!
//! let lp = EventLoop::new()?;
//! let (ours, mut peer) = std::os::unix::net::UnixStream::pair()?;
//! let closed = lp.create_future();
//! Transport::new(&lp, ours, Echo { transport: None, closed: closed.clone() }, TransportOptions::socket())?;
//! peer.write_all(b"hello")?;
//! peer.shutdown(std::net::Shutdown::Write)?; // EOF: eof_received() -> false closes
//! lp.run_until_complete(closed)??;
//! let mut echoed = Vec::new();
//! peer.read_to_end(&mut echoed)?;
//! assert_eq!(echoed, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Why it works the way it does
//!
//! **Edge-triggered, read until short.** Each fd is registered once with the loop's epoll in
//! edge-triggered mode and never re-armed: re-arming (one-shot or level-triggered interest
//! toggling) costs an `epoll_ctl` system call per event. Edge-triggered readiness is reported
//! once per change, so on each event the transport reads until a read comes back shorter than
//! the buffer (the socket is then drained: any later data raises a new edge) or `WouldBlock`.
//! When the event says the peer hung up (`EPOLLRDHUP` / `EPOLLHUP`), or right after
//! `resume_reading()`, it reads until `WouldBlock`/EOF instead, since no further edge would
//! announce the pending EOF. One event reads at most 16 full buffers before yielding to
//! other work, then continues through the ready queue. Reads are 256 KiB at most and go into
//! one buffer shared by all transports of the loop (reads never overlap), so no allocation
//! happens per read.
//!
//! **Interest.** Read interest is added only after `connection_made` returned (NET-51).
//! `pause_reading()` only sets a flag (no system call); `resume_reading()` queues a read retry,
//! because data that arrived while paused raised its edge already. Write interest is
//! registered only while data is buffered: `write()` sends straight to the fd when the buffer
//! is empty and buffers only what the kernel did not take; buffered pieces (small writes are
//! coalesced) go out with one vectored `sendmsg` / `writev` of up to [`MAX_IOV`] buffers.
//!
//! **Signals.** Sockets are written with `MSG_NOSIGNAL`, so a peer that went away gives `EPIPE`
//! (then `connection_lost(Some(EPIPE))`), never `SIGPIPE`. Pipes are written with `write(2)`,
//! which relies on `SIGPIPE` being ignored, as Rust's runtime arranges for every binary.
//!
//! **Re-entrancy.** A protocol method may call back into its transport (`write`, `close`,
//! `pause_reading`, `set_protocol`, ...), and the transport must never call a protocol method
//! that is still running. So the transport takes the protocol out of its slot while calling
//! it: a notification raised meanwhile (`pause_writing()` when a `write()` inside
//! `data_received()` crosses the high-water mark) finds the slot empty and is queued, then
//! delivered as soon as the running method returns; `set_protocol()` inside a method installs
//! the new protocol when the method returns. Outside protocol methods (a task writing),
//! `pause_writing()` is called synchronously inside `write()`, as asyncio does (NET-64).
//! `connection_made` and `connection_lost` always go through the ready queue
//! (`call_soon`), `connection_lost` exactly once, after everything else (NET-61, NET-62).
//!
//! **Errors.** An OS error while reading or writing closes the connection with
//! `connection_lost(Some(err))` (the `io::Error` keeps its `raw_os_error`) and is only logged
//! at debug level (NET-54, NET-58). A panic in a protocol method is caught, reported to the
//! loop's exception handler ("Fatal error: protocol.data_received() call failed.", with
//! `transport` and `protocol` keys), and the connection is closed with the panic as the error
//! (NET-53). A panic in `pause_writing` / `resume_writing` is reported but not fatal. Read
//! pipes follow asyncio's pipe transport: a read error other than `EIO` is reported as "Fatal
//! read error on pipe transport" as well (PIPE-05). A non-OS read error (asyncio's "Fatal read
//! error on socket transport") cannot happen here: every read error is an OS error.
//!
//! **Lifetime.** The loop keeps a transport alive (in its one set of live transports) until
//! the transport is torn down, and the transport keeps its loop reference until then. After
//! `connection_lost` the transport deregisters and closes the fd, lets go of its protocol
//! (which breaks the protocol ↔ transport reference cycle; a [`ProtocolRef`] keeps the
//! protocol alive and readable) and drops its loop reference. Closing the loop closes the fds
//! of transports still open (their protocols are let go of without `connection_lost`, since
//! nothing can run any more).
//!
//! **One engine.** The stream, datagram and subprocess transports share one engine (the
//! `engine` module, unstable, for evloop's own crates): the protocol cell and call policy
//! above, one lifecycle state (`connection_lost` delivered in one place, exactly once), write
//! flow control over each transport's buffer size, one live-transport set per loop. Each
//! transport kind supplies only its I/O; a layered transport supplies its `write` and what it
//! does with the data from below.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod addr;
mod datagram;
#[doc(hidden)]
pub mod engine;
mod protocol;
mod stream;
mod streams;
mod sys;

pub use addr::Addr;
pub use datagram::{DatagramProtocol, DatagramTransport, MAX_DATAGRAM_READ};
pub use engine::{ProtocolRef, DEFAULT_HIGH_WATER, LOG_THRESHOLD_FOR_CONNLOST_WRITES};
pub use protocol::ProtocolAny;
pub use stream::layer::Layer;
pub use stream::{
    BufferedProtocol, Extra, ExtraValue, FdKind, Protocol, SocketRef, StreamProtocol, Transport,
    TransportBackend, TransportOptions, DEFAULT_MAX_READ, MAX_IOV,
};
pub use streams::{
    open_read_stream, open_stream, open_write_stream, Lines, StreamError, StreamReader,
    StreamReaderProtocol, StreamWriter, DEFAULT_LIMIT,
};
