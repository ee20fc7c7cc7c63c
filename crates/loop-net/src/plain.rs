//! The plain (not TLS) stream socket under every connection: checking that a socket is a
//! stream socket and naming it in errors, wrapping a connected one in a transport, and a
//! server's protocol factory. The connection and server calls use it, and so does [`tls`](crate::tls)
//! for the transport a TLS connection runs over.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use loop_core::{Error, EventLoop, Result};
use loop_transport::{ProtocolRef, StreamProtocol, Transport, TransportOptions};
use rustix::net::{AddressFamily, SocketType};

/// `<socket fd=7, family=2, type=2>`: how error messages name a socket.
pub(crate) fn describe_sock(fd: BorrowedFd<'_>) -> String {
    let family = crate::sys::socket_family(fd)
        .map(|f| f.as_raw().to_string())
        .unwrap_or_else(|e| format!("? ({e})"));
    let ty = rustix::net::sockopt::socket_type(fd)
        .map(|t| t.as_raw().to_string())
        .unwrap_or_else(|e| format!("? ({e})"));
    format!("<socket fd={}, family={family}, type={ty}>", fd.as_raw_fd())
}

/// Checks that `fd` is a stream socket (of `family`, if given) (NET-20, NET-29, NET-46).
pub(crate) fn check_stream_socket(
    fd: BorrowedFd<'_>,
    family: Option<AddressFamily>,
    what: &str,
) -> Result<()> {
    let ok_type = matches!(
        rustix::net::sockopt::socket_type(fd),
        Ok(SocketType::STREAM)
    );
    let ok_family = match family {
        None => true,
        Some(f) => crate::sys::socket_family(fd).is_ok_and(|d| d == f),
    };
    if ok_type && ok_family {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "{what} was expected, got {}",
            describe_sock(fd)
        )))
    }
}

/// Closes the transport if the wait for `connection_made` is cut short (NET-27).
struct CloseUnlessDone(Option<Transport>);

impl Drop for CloseUnlessDone {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}

/// Wraps a connected socket in a transport with a fresh protocol and waits for
/// `connection_made` (NET-27).
pub(crate) async fn make_transport<P: Into<StreamProtocol> + 'static>(
    lp: &EventLoop,
    fd: OwnedFd,
    protocol: P,
    options: TransportOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let waiter = lp.create_future::<()>();
    let t = Transport::new(lp, fd, protocol, options.waiter(waiter.clone()))?;
    let p = t.protocol_ref::<P>();
    let mut guard = CloseUnlessDone(Some(t.clone()));
    waiter.await?;
    guard.0 = None;
    Ok((t, p))
}

/// Makes each connection's protocol.
pub(crate) type Factory = Box<dyn FnMut() -> StreamProtocol>;
