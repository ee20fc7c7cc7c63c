//! Unix-domain connections and servers (NET-46..NET-49).

mod common;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use common::{run, serial, Echo};
use loop_core::{Error, EventLoop};
use loop_net::{ConnectOptions, NetExt, Server, ServerOptions, AF_UNIX};

struct Quiet;
impl loop_transport::Protocol for Quiet {}

fn temp_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("evloop-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn unix_server(
    lp: &EventLoop,
    path: &std::path::Path,
    o: ServerOptions,
) -> loop_core::Result<Server> {
    run(lp, 10, lp.create_unix_server(Echo::default, path, o))
}

#[test]
fn net_46_create_unix_connection_arguments() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = temp_path("n46");
    // A path and a socket cannot both be given: the socket has its own call,
    // `create_unix_connection_sock`, which wants a Unix stream socket.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inet = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let err = run(
        &lp,
        10,
        lp.create_unix_connection_sock(|| Quiet, inet, ConnectOptions::new()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("A UNIX Domain Stream Socket was expected, got"),
        "{err}"
    );
    // A connected Unix socket is adopted.
    let (a, b) = UnixStream::pair().unwrap();
    let (t, _protocol) = run(
        &lp,
        10,
        lp.create_unix_connection_sock(|| Quiet, a, ConnectOptions::new()),
    )
    .unwrap();
    t.write(b"via sock").unwrap();
    let mut got = [0u8; 8];
    std::io::Read::read_exact(&mut &b, &mut got).unwrap();
    assert_eq!(&got, b"via sock");
    t.close();
    // A missing path: file not found.
    let err = run(
        &lp,
        10,
        lp.create_unix_connection(|| Quiet, &path, ConnectOptions::new()),
    )
    .unwrap_err();
    let Error::Io(io) = &err else { panic!("{err}") };
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    let o = ConnectOptions::new().server_hostname("x");
    let err = run(&lp, 10, lp.create_unix_connection(|| Quiet, &path, o)).unwrap_err();
    assert!(
        err.to_string()
            .contains("server_hostname is only meaningful with ssl"),
        "{err}"
    );
    // A listening path connects.
    let l = UnixListener::bind(&path).unwrap();
    let (t, _protocol) = run(
        &lp,
        10,
        lp.create_unix_connection(|| Quiet, &path, ConnectOptions::new()),
    )
    .unwrap();
    let (_conn, _) = l.accept().unwrap();
    t.close();
    run(&lp, 10, async {});
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn net_47_create_unix_server_arguments() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    // A path and a socket cannot both be given: the socket has its own call,
    // `create_unix_server_sock`, which wants a Unix stream socket.
    let dgram = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let err = run(
        &lp,
        10,
        lp.create_unix_server_sock(|| Quiet, dgram, ServerOptions::new()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("A UNIX Domain Stream Socket was expected"),
        "{err}"
    );
    let o = ServerOptions::new().ssl_handshake_timeout(std::time::Duration::from_secs(1));
    let err = run(
        &lp,
        10,
        lp.create_unix_server(|| Quiet, &temp_path("n47"), o),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ssl_handshake_timeout is only meaningful with ssl"),
        "{err}"
    );
    // A pre-bound socket is served.
    let path = temp_path("n47b");
    let l = UnixListener::bind(&path).unwrap();
    l.set_nonblocking(true).unwrap();
    let s = run(
        &lp,
        10,
        lp.create_unix_server_sock(Echo::default, l, ServerOptions::new()),
    )
    .unwrap();
    assert!(s.is_serving());
    let _c = UnixStream::connect(&path).unwrap();
    s.close();
    assert!(
        !path.exists(),
        "cleanup_socket also applies to a passed sock"
    );
}

/// NET-39: a Unix server's socket view has the path as its address and `AF_UNIX` as its
/// family; after `close()` it lends nothing and the path refuses connections.
#[test]
fn net_39_unix_server_socket_view_has_the_path_and_af_unix() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = temp_path("n39");
    let s = unix_server(&lp, &path, ServerOptions::new()).unwrap();
    let socks = s.sockets();
    assert_eq!(socks.len(), 1);
    assert_eq!(socks[0].family(), AF_UNIX);
    assert_eq!(socks[0].local_addr().as_path(), Some(path.as_path()));
    let kind = socks[0].with_fd(|fd| rustix::net::sockopt::socket_type(fd));
    assert_eq!(kind.unwrap().unwrap(), rustix::net::SocketType::STREAM);
    UnixStream::connect(&path).unwrap();
    s.close();
    assert!(socks[0].with_fd(|_| ()).is_none());
    assert!(UnixStream::connect(&path).is_err(), "refused after close");
    run(&lp, 10, async {});
}

#[test]
fn net_48_stale_socket_file_removed_other_files_refused() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = temp_path("n48");
    drop(UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    assert!(path.exists());
    let s = unix_server(&lp, &path, ServerOptions::new()).unwrap();
    let _c = UnixStream::connect(&path).unwrap();
    s.close();
    std::fs::write(&path, b"not a socket").unwrap();
    let err = unix_server(&lp, &path, ServerOptions::new()).unwrap_err();
    let Error::Io(io) = &err else { panic!("{err}") };
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("is already in use"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not a socket",
        "a regular file is left alone"
    );
    std::fs::remove_file(&path).unwrap();
    // Abstract names have no file.
    let name = PathBuf::from(format!("\0evloop-abstract-{}", std::process::id()));
    let s = run(
        &lp,
        10,
        lp.create_unix_server(Echo::default, &name, ServerOptions::new()),
    )
    .unwrap();
    assert_eq!(s.local_addrs().len(), 1);
    s.close();
}

#[test]
fn net_49_cleanup_socket_checks_the_inode() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = temp_path("n49");
    // Removed on close.
    unix_server(&lp, &path, ServerOptions::new())
        .unwrap()
        .close();
    assert!(!path.exists());
    // Replaced meanwhile: the new file stays.
    let s = unix_server(&lp, &path, ServerOptions::new()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    s.close();
    assert!(path.exists(), "someone else's socket is not removed");
    drop(other);
    std::fs::remove_file(&path).unwrap();
    // Already gone: nothing to do.
    let s = unix_server(&lp, &path, ServerOptions::new()).unwrap();
    std::fs::remove_file(&path).unwrap();
    s.close();
    // cleanup_socket = false leaves the file.
    let o = ServerOptions::new().cleanup_socket(false);
    unix_server(&lp, &path, o).unwrap().close();
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
}
