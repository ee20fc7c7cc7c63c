//! Opening datagram endpoints over real UDP and Unix datagram sockets: adopted sockets
//! (NET-68), families and addresses (NET-69..NET-71), resolution on the executor (NET-17), socket
//! options (NET-72, NET-73).

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;

use loop_core::{Error, EventLoop};
use loop_executor::ExecutorExt;
use loop_net::{Addr, DatagramAddr, DatagramExt, DatagramOptions, AF_INET, AF_UNIX, IPPROTO_TCP};

use common::datagram::*;

// ---------------------------------------------------------------------------------------------
// NET-68: sock=

#[test]
fn net_68_sock_must_be_a_datagram_socket() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_, f) = rec();
    let e = endpoint_sock(&lp, f, a).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(
        err_text(&e).contains("A datagram socket was expected")
            && err_text(&e).contains(", a stream socket;"),
        "{e}"
    );
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let (_, f) = rec();
    let e = endpoint_sock(&lp, f, r).unwrap_err();
    assert!(err_text(&e).contains("not a socket"), "{e}");
    drop(_w);
    drop(_b);
    assert_eq!(fd_count(), before, "rejected sockets are closed");
}

#[test]
fn net_68_sock_excludes_every_socket_modifier_and_names_them() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let cases: Vec<(DatagramOptions, &[&str])> = vec![
        (
            DatagramOptions::new().local_addr(("127.0.0.1", 0)),
            &["local_addr=127.0.0.1:0"],
        ),
        (
            DatagramOptions::new().remote_addr(("127.0.0.1", 9)),
            &["remote_addr=127.0.0.1:9"],
        ),
        (
            DatagramOptions::new().family(AF_INET).proto(17).flags(1),
            &["family=2", "proto=17", "flags=1"],
        ),
        (
            DatagramOptions::new()
                .reuse_port(true)
                .allow_broadcast(true),
            &["reuse_port=true", "allow_broadcast=true"],
        ),
    ];
    for (opts, names) in cases {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (_, f) = rec();
        let e = run(&lp, lp.create_datagram_endpoint_sock(f, sock, opts)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let text = err_text(&e);
        assert!(
            text.contains("can not be used when sock is specified"),
            "{text}"
        );
        for n in names {
            assert!(text.contains(n), "{text} should name {n}");
        }
    }
}

#[test]
fn net_68_adopted_socket_is_made_non_blocking_and_used() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap(); // blocking
    let at = sock.local_addr().unwrap();
    let (s, f) = echo_rec();
    let (t, _) = endpoint_sock(&lp, f, sock).unwrap();
    let nonblocking = t
        .with_fd(|fd| {
            rustix::fs::fcntl_getfl(fd)
                .unwrap()
                .contains(rustix::fs::OFlags::NONBLOCK)
        })
        .unwrap();
    assert!(nonblocking);
    assert_eq!(t.sockname().unwrap().as_inet(), Some(at));
    assert!(t.peername().is_none());
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"adopted", at).unwrap();
    wait_until(&lp, &s, |e| count_data(e) == 1);
    let mut buf = [0u8; 16];
    let n = peer.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"adopted");
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

// ---------------------------------------------------------------------------------------------
// NET-69: family without addresses

#[test]
fn net_69_no_address_and_no_family_is_an_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::new()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("unexpected address family"), "{e}");
}

#[test]
fn net_69_family_alone_gives_an_unbound_socket_of_that_family() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::new().family(AF_INET)).unwrap();
    let domain = t.with_fd(socket_family).unwrap();
    assert_eq!(domain, rustix::net::AddressFamily::INET);
    // Unbound: port 0 on the wildcard address.
    assert_eq!(
        t.sockname().unwrap().as_inet(),
        Some("0.0.0.0:0".parse().unwrap())
    );
    // It can still send (the kernel binds it on first use).
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    t.sendto(b"unbound", Some(&peer.local_addr().unwrap().into()))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(peer.recv(&mut buf).unwrap(), 7);
    t.abort();
    run(&lp, async {});

    let (_, f) = rec();
    let (u, _) = endpoint(&lp, f, DatagramOptions::new().family(AF_UNIX)).unwrap();
    let domain = u.with_fd(socket_family).unwrap();
    assert_eq!(domain, rustix::net::AddressFamily::UNIX);
    u.abort();
    run(&lp, async {});
}

#[test]
fn net_69_socket_creation_failure_is_an_os_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (_, f) = rec();
    // TCP is not a datagram protocol: socket() itself fails.
    let e = endpoint(
        &lp,
        f,
        DatagramOptions::new().family(AF_INET).proto(IPPROTO_TCP),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert_eq!(e.raw_os_error(), Some(libc::EPROTONOSUPPORT), "{e}");
    assert_eq!(fd_count(), before);
}

// ---------------------------------------------------------------------------------------------
// NET-70: address shapes and Unix endpoints

#[test]
fn net_70_unix_family_needs_paths_and_ip_families_need_host_and_port() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let e = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .local_addr(("127.0.0.1", 0))
            .family(AF_UNIX),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("string is expected"), "{e}");

    let (_, f) = rec();
    let e = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .remote_addr(std::path::Path::new("/tmp/nowhere.sock"))
            .family(AF_INET),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("2-tuple is expected"), "{e}");

    // A path mixed with a host: the path is refused for the IP endpoint.
    let (_, f) = rec();
    let e = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .local_addr(("127.0.0.1", 0))
            .remote_addr(std::path::Path::new("/tmp/nowhere.sock")),
    )
    .unwrap_err();
    assert!(err_text(&e).contains("2-tuple is expected"), "{e}");
}

#[test]
fn net_70_unix_datagram_endpoint_removes_a_stale_socket_file_and_echoes() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let path = loop_testkit::temp_path("server.sock");
    // A socket file left behind by a previous process.
    drop(UnixDatagram::bind(&path).unwrap());
    assert!(path.exists());
    let (ss, f) = echo_rec();
    let (server, _) = endpoint(&lp, f, DatagramOptions::local(path.as_path())).unwrap();
    assert_eq!(server.sockname(), Some(Addr::Unix(path.clone())));
    // A client bound to its own path, connected to the server.
    let cpath = loop_testkit::temp_path("client.sock");
    let (cs, f) = rec();
    let (client, _) = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .local_addr(cpath.as_path())
            .remote_addr(path.as_path()),
    )
    .unwrap();
    assert_eq!(client.peername(), Some(Addr::Unix(path.clone())));
    client.sendto(b"over unix", None).unwrap();
    wait_until(&lp, &cs, |e| count_data(e) == 1);
    assert_eq!(
        cs.events()[1],
        Ev::Data(b"over unix".to_vec(), Addr::Unix(path.clone()))
    );
    assert_eq!(
        ss.events()[1],
        Ev::Data(b"over unix".to_vec(), Addr::Unix(cpath.clone()))
    );
    client.close();
    server.close();
    wait_until(&lp, &ss, |e| e.contains(&Ev::Lost(None)));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&cpath);
}

#[test]
fn net_70_an_existing_non_socket_file_is_not_removed() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let path = loop_testkit::temp_path("regular-file");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"keep me")
        .unwrap();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::local(path.as_path())).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------------------------------------
// NET-71: resolution and candidates

#[test]
fn net_71_addresses_without_a_common_family_are_refused() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let e = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .local_addr(("127.0.0.1", 0))
            .remote_addr(("::1", 9)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(
        err_text(&e).contains("can not get address information"),
        "{e}"
    );
}

#[test]
fn net_71_host_names_are_resolved_on_the_executor() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (ss, f) = echo_rec();
    let (server, _) = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .local_addr(("localhost", 0))
            .family(AF_INET),
    )
    .unwrap();
    let at = server.sockname().unwrap().as_inet().unwrap();
    assert!(at.ip().is_loopback());
    let (cs, f) = rec();
    let (client, _) = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .remote_addr(DatagramAddr::host("localhost", at.port().to_string()))
            .family(AF_INET),
    )
    .unwrap();
    assert_eq!(client.peername().unwrap().as_inet(), Some(at));
    client.sendto(b"named", None).unwrap();
    wait_until(&lp, &cs, |e| count_data(e) == 1);
    // Service names need the services database (/etc/services), absent from minimal images.
    let hints = loop_net::Hints {
        socktype: loop_net::SOCK_DGRAM,
        ..Default::default()
    };
    if loop_net::getaddrinfo_blocking(Some("127.0.0.1"), Some("domain"), &hints).is_ok() {
        let (_, f) = rec();
        let (svc, _) = endpoint(
            &lp,
            f,
            DatagramOptions::new().remote_addr(("127.0.0.1", "domain")),
        )
        .unwrap();
        assert_eq!(svc.peername().unwrap().as_inet().unwrap().port(), 53);
        svc.abort();
    } else {
        eprintln!("part skipped: no services database");
    }
    client.close();
    server.close();
    wait_until(&lp, &ss, |e| e.contains(&Ev::Lost(None)));
}

#[test]
fn net_71_unknown_host_is_a_resolver_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::remote(("no-such-host.invalid", 9))).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert!(err_text(&e).contains("no-such-host.invalid"), "{e}");
}

#[test]
fn net_71_when_every_candidate_fails_the_first_error_is_raised_and_sockets_closed() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = fd_count();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::local(taken.local_addr().unwrap())).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE), "{e}");
    assert_eq!(fd_count(), before, "the failed socket is closed");
}

#[test]
fn net_17_numeric_addresses_skip_the_executor_names_need_it() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    run(&lp, lp.shutdown_default_executor(None)).unwrap();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::local(("localhost", 0))).unwrap_err();
    assert!(matches!(e, Error::ExecutorShutdown), "{e:?}");
    let (_, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    t.abort();
    run(&lp, async {});
}

// ---------------------------------------------------------------------------------------------
// NET-72, NET-73: socket options, connect, broadcast

#[test]
fn net_72_options_only_on_request_and_never_reuseaddr() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let (plain, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let (ra, rp, bc) = plain
        .with_fd(|fd| {
            use rustix::net::sockopt::*;
            (
                socket_reuseaddr(fd).unwrap(),
                socket_reuseport(fd).unwrap(),
                socket_broadcast(fd).unwrap(),
            )
        })
        .unwrap();
    assert!(!ra && !rp && !bc, "nothing set by default");

    let opts = || {
        DatagramOptions::new()
            .local_addr(("127.0.0.1", 0))
            .reuse_port(true)
            .allow_broadcast(true)
    };
    let (_, f) = rec();
    let (a, _) = endpoint(&lp, f, opts()).unwrap();
    let (ra, rp, bc) = a
        .with_fd(|fd| {
            use rustix::net::sockopt::*;
            (
                socket_reuseaddr(fd).unwrap(),
                socket_reuseport(fd).unwrap(),
                socket_broadcast(fd).unwrap(),
            )
        })
        .unwrap();
    assert!(!ra && rp && bc);
    // SO_REUSEPORT lets a second endpoint bind the same address.
    let port = a.sockname().unwrap().as_inet().unwrap().port();
    let (_, f) = rec();
    let (b, _) = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .local_addr(("127.0.0.1", port))
            .reuse_port(true),
    )
    .unwrap();
    assert_eq!(b.sockname(), a.sockname());
    // Without it, the same bind fails.
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", port))).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    for t in [plain, a, b] {
        t.abort();
    }
    run(&lp, async {});
}

#[test]
fn net_73_remote_addr_connects_and_connect_failure_is_an_os_error() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    // Connecting a UDP socket to a broadcast address (the loopback network's, always routed)
    // needs SO_BROADCAST: EACCES.
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::remote(("127.255.255.255", 9))).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // A connected endpoint only hears from its peer.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (s, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::remote(peer.local_addr().unwrap())).unwrap();
    let me = t.sockname().unwrap().as_inet().unwrap();
    stranger.send_to(b"from a stranger", me).unwrap();
    peer.send_to(b"from the peer", me).unwrap();
    wait_until(&lp, &s, |e| count_data(e) == 1);
    assert_eq!(s.data(), vec![b"from the peer".to_vec()]);
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

#[test]
fn net_73_allow_broadcast_keeps_remote_addr_as_default_destination_without_connecting() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: Addr = peer.local_addr().unwrap().into();
    let (s, f) = rec();
    let (t, _) = endpoint(
        &lp,
        f,
        DatagramOptions::new()
            .remote_addr(DatagramAddr::Addr(to.clone()))
            .allow_broadcast(true),
    )
    .unwrap();
    assert!(t.peername().is_none(), "not connected");
    assert_eq!(t.remote_address(), Some(&to));
    t.sendto(b"default destination", None).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"default destination");
    // Not connected: a datagram from anyone is received.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"hello", from).unwrap();
    wait_until(&lp, &s, |e| count_data(e) == 1);
    // Another destination is still refused.
    let other: Addr = stranger.local_addr().unwrap().into();
    let e = t.sendto(b"x", Some(&other)).unwrap_err();
    assert!(
        err_text(&e).contains("Invalid address: must be None or"),
        "{e}"
    );
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}
