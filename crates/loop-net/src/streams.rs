//! The streams functions: `open_connection`, `start_server` and their Unix variants, which
//! give a [`StreamReader`] / [`StreamWriter`] pair instead of a protocol.
//!
//! `start_server` runs the client callback as a task per connection. A callback that fails
//! (returns an error or panics) has nobody to return the error to, so the loop's exception
//! handler gets it as "Unhandled exception in client_connected_cb" and the connection is closed;
//! a cancelled callback just closes the connection (STREAM-03).

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;

use loop_core::{EventLoop, ExceptionContext, Result};
use loop_transport::{StreamProtocol, StreamReader, StreamReaderProtocol, StreamWriter};

use std::os::fd::OwnedFd;

use loop_transport::Transport;

use crate::connect::{create_connection, create_connection_sock, ConnectOptions};
use crate::lookup::Service;
use crate::plain::Factory;
use crate::server::{create_server, create_server_sock, Hosts, Server, ServerOptions};
use crate::unix::{
    create_unix_connection, create_unix_connection_sock, create_unix_server,
    create_unix_server_sock,
};

/// A reader and a protocol that feeds it.
fn reader_and_protocol(limit: usize) -> Result<(StreamReader, StreamReaderProtocol)> {
    let reader = StreamReader::with_limit(limit)?;
    let protocol = StreamReaderProtocol::new(Some(&reader));
    Ok((reader, protocol))
}

/// How a streams call connects: to a host, a Unix path, or over a given socket.
pub(crate) enum Target {
    /// `host:port`.
    Host(String, Service),
    /// A Unix socket path.
    UnixPath(PathBuf),
    /// A connected stream socket (TCP or Unix).
    Sock(OwnedFd),
    /// A connected Unix stream socket.
    UnixSock(OwnedFd),
}

/// `open_connection`, `open_unix_connection` and their `sock=` forms (STREAM-01).
pub(crate) async fn open_connection(
    lp: EventLoop,
    target: Target,
    o: ConnectOptions,
) -> Result<(StreamReader, StreamWriter)> {
    let (reader, protocol) = reader_and_protocol(o.limit)?;
    let factory = move || protocol;
    let (t, _): (Transport, _) = match target {
        Target::Host(host, port) => create_connection(lp, factory, host, port, o).await?,
        Target::UnixPath(path) => create_unix_connection(lp, factory, path, o).await?,
        Target::Sock(sock) => create_connection_sock(lp, factory, sock, o).await?,
        Target::UnixSock(sock) => create_unix_connection_sock(lp, factory, sock, o).await?,
    };
    reader.set_transport(t.clone());
    let writer = StreamWriter::new(t)?;
    Ok((reader, writer))
}

/// The protocol factory of `start_server`: each connection's protocol hands the reader and
/// writer to `cb`, run as a task (STREAM-02, STREAM-03).
pub(crate) fn client_factory<C, Fut>(lp: &EventLoop, cb: C, limit: usize) -> Factory
where
    C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = Result<()>> + 'static,
{
    let cb = Rc::new(RefCell::new(cb));
    let lp = lp.clone();
    Box::new(move || {
        let cb = cb.clone();
        let lp = lp.clone();
        // The limit was checked when the server was created.
        let reader = StreamReader::with_limit(limit).unwrap_or_default();
        StreamProtocol::plain(StreamReaderProtocol::with_client_connected(
            reader,
            move |r, w| {
                let transport = w.transport().clone();
                let fut = (cb.borrow_mut())(r, w);
                let t2 = transport.clone();
                let lp_body = lp.clone();
                let body = async move {
                    match fut.await {
                        Ok(()) => {}
                        Err(e) if e.is_cancelled() => t2.close(),
                        Err(e) => {
                            report(&lp_body, e, &t2);
                            t2.close();
                        }
                    }
                };
                let lp_done = lp.clone();
                match lp.create_task(body) {
                    Ok(task) => {
                        task.add_done_callback(move |t| {
                            if t.cancelled() {
                                transport.close();
                            } else if let Some(e) = t.exception() {
                                report(&lp_done, e, &transport);
                                transport.close();
                            }
                        });
                    }
                    Err(_) => transport.close(),
                }
            },
        ))
    })
}

fn report(lp: &EventLoop, e: loop_core::Error, t: &loop_transport::Transport) {
    let ctx = ExceptionContext::new("Unhandled exception in client_connected_cb")
        .with_exception(e)
        .with_extra("transport", format!("{t:?}"));
    lp.call_exception_handler(&ctx);
}

/// Where a streams server listens: hosts and a port, a Unix path, or a given socket.
pub(crate) enum Listen {
    /// Hosts and a port.
    Hosts(Hosts, Service),
    /// A Unix socket path.
    UnixPath(PathBuf),
    /// A bound stream socket (TCP or Unix).
    Sock(OwnedFd),
    /// A bound Unix stream socket.
    UnixSock(OwnedFd),
}

/// `start_server`, `start_unix_server` and their `sock=` forms (STREAM-02).
pub(crate) async fn start_server<C, Fut>(
    lp: EventLoop,
    cb: C,
    listen: Listen,
    o: ServerOptions,
) -> Result<Server>
where
    C: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = Result<()>> + 'static,
{
    StreamReader::with_limit(o.limit)?;
    let factory = client_factory(&lp, cb, o.limit);
    match listen {
        Listen::Hosts(hosts, port) => create_server(lp, factory, hosts, port, o).await,
        Listen::UnixPath(path) => create_unix_server(lp, factory, path, o).await,
        Listen::Sock(sock) => create_server_sock(lp, factory, sock, o).await,
        Listen::UnixSock(sock) => create_unix_server_sock(lp, factory, sock, o).await,
    }
}
