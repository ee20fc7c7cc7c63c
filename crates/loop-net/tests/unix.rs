//! Unix-domain connections and servers (NET-46..NET-49).

mod common;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use common::{run, serial, Echo};
use loop_core::{Error, EventLoop};
use loop_net::{ConnectOptions, NetExt, Server, ServerOptions};

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
    run(lp, 10, lp.create_unix_server(Echo::default, Some(path), o))
}

#[test]
fn net_46_create_unix_connection_arguments() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = temp_path("n46");
    let (a, _b) = UnixStream::pair().unwrap();
    let o = ConnectOptions {
        sock: Some(a.into()),
        ..Default::default()
    };
    let err = run(&lp, 10, lp.create_unix_connection(|| Quiet, Some(&path), o)).unwrap_err();
    assert!(
        err.to_string()
            .contains("path and sock can not be specified at the same time"),
        "{err}"
    );
    let err = run(
        &lp,
        10,
        lp.create_unix_connection(|| Quiet, None, ConnectOptions::default()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no path and sock were specified"),
        "{err}"
    );
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inet = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let o = ConnectOptions {
        sock: Some(inet.into()),
        ..Default::default()
    };
    let err = run(&lp, 10, lp.create_unix_connection(|| Quiet, None, o)).unwrap_err();
    assert!(
        err.to_string()
            .contains("A UNIX Domain Stream Socket was expected, got"),
        "{err}"
    );
    // A missing path: file not found.
    let err = run(
        &lp,
        10,
        lp.create_unix_connection(|| Quiet, Some(&path), ConnectOptions::default()),
    )
    .unwrap_err();
    let Error::Io(io) = &err else { panic!("{err}") };
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    let o = ConnectOptions {
        server_hostname: Some("x".into()),
        ..Default::default()
    };
    let err = run(&lp, 10, lp.create_unix_connection(|| Quiet, Some(&path), o)).unwrap_err();
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
        lp.create_unix_connection(|| Quiet, Some(&path), ConnectOptions::default()),
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
    let err = run(
        &lp,
        10,
        lp.create_unix_server(|| Quiet, None, ServerOptions::default()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("path was not specified, and no sock specified"),
        "{err}"
    );
    let dgram = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let o = ServerOptions {
        sock: Some(dgram.into()),
        ..Default::default()
    };
    let err = run(&lp, 10, lp.create_unix_server(|| Quiet, None, o)).unwrap_err();
    assert!(
        err.to_string()
            .contains("A UNIX Domain Stream Socket was expected"),
        "{err}"
    );
    let o = ServerOptions {
        ssl_handshake_timeout: Some(std::time::Duration::from_secs(1)),
        ..Default::default()
    };
    let err = run(
        &lp,
        10,
        lp.create_unix_server(|| Quiet, Some(&temp_path("n47")), o),
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
    let o = ServerOptions {
        sock: Some(l.into()),
        ..Default::default()
    };
    let s = run(&lp, 10, lp.create_unix_server(Echo::default, None, o)).unwrap();
    assert!(s.is_serving());
    let _c = UnixStream::connect(&path).unwrap();
    s.close();
    assert!(
        !path.exists(),
        "cleanup_socket also applies to a passed sock"
    );
}

#[test]
fn net_48_stale_socket_file_removed_other_files_refused() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = temp_path("n48");
    drop(UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    assert!(path.exists());
    let s = unix_server(&lp, &path, ServerOptions::default()).unwrap();
    let _c = UnixStream::connect(&path).unwrap();
    s.close();
    std::fs::write(&path, b"not a socket").unwrap();
    let err = unix_server(&lp, &path, ServerOptions::default()).unwrap_err();
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
        lp.create_unix_server(Echo::default, Some(&name), ServerOptions::default()),
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
    unix_server(&lp, &path, ServerOptions::default())
        .unwrap()
        .close();
    assert!(!path.exists());
    // Replaced meanwhile: the new file stays.
    let s = unix_server(&lp, &path, ServerOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    s.close();
    assert!(path.exists(), "someone else's socket is not removed");
    drop(other);
    std::fs::remove_file(&path).unwrap();
    // Already gone: nothing to do.
    let s = unix_server(&lp, &path, ServerOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    s.close();
    // cleanup_socket = false leaves the file.
    let o = ServerOptions {
        cleanup_socket: false,
        ..Default::default()
    };
    unix_server(&lp, &path, o).unwrap().close();
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
}
