//! Unix-domain stream sockets: `create_unix_connection` and `create_unix_server`.
//!
//! A socket file left behind by a server that did not clean up would make every restart fail
//! with "address in use", so an existing *socket* file at the path is removed before binding
//! (a regular file is never touched). On `close()` the server removes its file again, but only
//! if the file is still the one it created (same device and inode): another server may have
//! replaced it meanwhile (NET-48, NET-49). Abstract names (a leading NUL byte, Linux) have no
//! file and are never checked or removed.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use loop_core::{Error, EventLoop, Result};
use loop_transport::{Addr, ProtocolRef, StreamProtocol, Transport};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use crate::connect::ConnectOptions;
use crate::errors::with_context;
use crate::plain::{check_stream_socket, Factory};
use crate::server::{finish_server, Server, ServerOptions, UnixCleanup};
use crate::SockExt;

/// The address of a Unix socket path; a leading NUL byte makes it an abstract name.
pub(crate) fn unix_addr(p: &Path) -> Addr {
    let b = p.as_os_str().as_bytes();
    match b.split_first() {
        Some((0, name)) => Addr::UnixAbstract(name.to_vec()),
        _ => Addr::Unix(p.to_path_buf()),
    }
}

fn unix_socket() -> io::Result<OwnedFd> {
    crate::sys::socket(AddressFamily::UNIX, SocketType::STREAM, None)
}

/// Rejects the options that only make sense for TCP.
fn check_unix_connect_options(o: &ConnectOptions) -> Result<()> {
    let bad = [
        (o.local_addr.is_some(), "local_addr"),
        (o.happy_eyeballs_delay.is_some(), "happy_eyeballs_delay"),
        (o.interleave.is_some(), "interleave"),
        (o.family != 0, "family"),
        (o.proto != 0, "proto"),
        (o.flags != 0, "flags"),
    ];
    match bad.iter().find(|(set, _)| *set) {
        Some((_, name)) => Err(Error::invalid_argument(format!(
            "{name} is not supported for Unix sockets (it is a create_connection option)"
        ))),
        None => Ok(()),
    }
}

/// `create_unix_connection` (NET-46).
pub(crate) async fn create_unix_connection<P: Into<StreamProtocol> + 'static>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    path: PathBuf,
    o: ConnectOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let tls = crate::tls::client(&crate::connect::tls_args(&o), None, true)?;
    check_unix_connect_options(&o)?;
    let sock = unix_socket()?;
    lp.sock_connect(&sock, unix_addr(&path)).await?;
    crate::tls::connect(&lp, sock, factory(), tls).await
}

/// `create_unix_connection(sock=)`: adopts a connected Unix stream socket (NET-46).
pub(crate) async fn create_unix_connection_sock<P: Into<StreamProtocol> + 'static>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    sock: OwnedFd,
    o: ConnectOptions,
) -> Result<(Transport, ProtocolRef<P>)> {
    let tls = crate::tls::client(&crate::connect::tls_args(&o), None, true)?;
    check_unix_connect_options(&o)?;
    check_unix_stream_socket(&sock)?;
    crate::tls::connect(&lp, sock, factory(), tls).await
}

/// Checks that `sock` is a Unix stream socket (NET-46, NET-47).
fn check_unix_stream_socket(sock: &OwnedFd) -> Result<()> {
    check_stream_socket(
        sock.as_fd(),
        Some(AddressFamily::UNIX),
        "A UNIX Domain Stream Socket",
    )
}

/// The device and inode of `path`.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::stat(path).ok()?;
    Some(crate::server::file_id_of(&st))
}

/// The TLS setup and the option checks of `create_unix_server` and its `_sock` form.
fn unix_server_factory(lp: &EventLoop, factory: Factory, o: &ServerOptions) -> Result<Factory> {
    let tls = crate::tls::server(&crate::server::tls_args(o))?;
    let factory = crate::tls::wrap_factory(lp, factory, tls);
    let bad = [
        (o.reuse_address.is_some(), "reuse_address"),
        (o.reuse_port, "reuse_port"),
        (o.keep_alive, "keep_alive"),
        (o.family != 0, "family"),
        (o.flags != 0, "flags"),
    ];
    if let Some((_, name)) = bad.iter().find(|(set, _)| *set) {
        return Err(Error::invalid_argument(format!(
            "{name} is not supported for Unix sockets (it is a create_server option)"
        )));
    }
    Ok(factory)
}

/// A socket bound to `path`; a stale socket file there is removed first (NET-48).
fn bind_unix(path: &Path) -> Result<(OwnedFd, Option<PathBuf>)> {
    let addr = unix_addr(path);
    let sock = unix_socket()?;
    if let Addr::Unix(p) = &addr {
        // A socket file left behind is stale: remove it (NET-48).
        match rustix::fs::stat(p) {
            Ok(st)
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Socket =>
            {
                if let Err(e) = rustix::fs::unlink(p) {
                    tracing::error!(
                        "Unable to check or remove stale UNIX socket {}: {e}",
                        p.display()
                    );
                }
            }
            _ => {}
        }
    }
    match rustix::net::bind(&sock, &addr.to_rustix()?) {
        Ok(()) => {}
        Err(Errno::ADDRINUSE) => {
            let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
            return Err(with_context(
                e,
                format!("Address {:?} is already in use", path.display().to_string()),
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    let file = addr.as_path().map(Path::to_path_buf);
    Ok((sock, file))
}

/// The server over a bound Unix socket, removing `file` on close if asked (NET-49).
async fn finish_unix_server(
    lp: &EventLoop,
    sock: OwnedFd,
    file: Option<PathBuf>,
    factory: Factory,
    o: &ServerOptions,
) -> Result<Server> {
    let cleanup = if o.cleanup_socket {
        file.and_then(|path| file_id(&path).map(|id| UnixCleanup { path, id }))
    } else {
        None
    };
    finish_server(lp, vec![sock], factory, o, cleanup).await
}

/// `create_unix_server` (NET-47..NET-49).
pub(crate) async fn create_unix_server(
    lp: EventLoop,
    factory: Factory,
    path: PathBuf,
    o: ServerOptions,
) -> Result<Server> {
    let factory = unix_server_factory(&lp, factory, &o)?;
    let (sock, file) = bind_unix(&path)?;
    finish_unix_server(&lp, sock, file, factory, &o).await
}

/// `create_unix_server(sock=)`: serves on a bound Unix stream socket (NET-47).
pub(crate) async fn create_unix_server_sock(
    lp: EventLoop,
    factory: Factory,
    sock: OwnedFd,
    o: ServerOptions,
) -> Result<Server> {
    let factory = unix_server_factory(&lp, factory, &o)?;
    check_unix_stream_socket(&sock)?;
    rustix::io::ioctl_fionbio(&sock, true)?;
    let file = Addr::sockname_of(&sock)
        .ok()
        .and_then(|a| a.as_path().map(Path::to_path_buf));
    finish_unix_server(&lp, sock, file, factory, &o).await
}
