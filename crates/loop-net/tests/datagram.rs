//! Datagram endpoints over real UDP and Unix datagram sockets (NET-50, NET-66, NET-68..NET-77).

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use loop_core::{Error, EventLoop, ExceptionContext, LoopFuture};
use loop_executor::ExecutorExt;
use loop_net::{
    Addr, DatagramAddr, DatagramExt, DatagramOptions, DatagramTransport, AF_INET, AF_UNIX,
    IPPROTO_TCP, MAX_DATAGRAM_READ,
};
use loop_transport::{DatagramProtocol, Extra, ProtocolRef};

// ---------------------------------------------------------------------------------------------
// helpers

/// The test's watchdog, holding the test lock exclusively: several tests count the process'
/// fds, so the tests of this file run one at a time.
fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

use loop_testkit::fd_count;

/// What a recording protocol saw.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Made,
    Data(Vec<u8>, Addr),
    Err(Option<i32>),
    Pause,
    Resume,
    Lost(Option<Option<i32>>),
}

#[derive(Default)]
struct Shared {
    log: RefCell<Vec<Ev>>,
    wake: RefCell<Option<LoopFuture<()>>>,
}

type S = Rc<Shared>;

impl Shared {
    fn push(&self, ev: Ev) {
        self.log.borrow_mut().push(ev);
        if let Some(f) = self.wake.borrow_mut().take() {
            let _ = f.set_result(());
        }
    }

    fn events(&self) -> Vec<Ev> {
        self.log.borrow().clone()
    }

    fn data(&self) -> Vec<Vec<u8>> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(d, _) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    fn lost(&self) -> bool {
        self.log.borrow().iter().any(|e| matches!(e, Ev::Lost(_)))
    }
}

/// A protocol that records every call.
struct Rec {
    s: S,
    t: Option<DatagramTransport>,
    echo: bool,
    panic_on_data: bool,
}

fn rec() -> (S, impl FnOnce() -> Rec) {
    let s: S = Rc::default();
    let s2 = s.clone();
    (s, move || Rec {
        s: s2,
        t: None,
        echo: false,
        panic_on_data: false,
    })
}

fn echo_rec() -> (S, impl FnOnce() -> Rec) {
    let s: S = Rc::default();
    let s2 = s.clone();
    (s, move || Rec {
        s: s2,
        t: None,
        echo: true,
        panic_on_data: false,
    })
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.t = Some(t.clone());
        self.s.push(Ev::Made);
    }
    fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
        self.s.push(Ev::Data(data.to_vec(), addr.clone()));
        if self.panic_on_data {
            panic!("datagram_received exploded");
        }
        if self.echo {
            self.t.as_ref().unwrap().sendto(data, Some(addr)).unwrap();
        }
    }
    fn error_received(&mut self, exc: io::Error) {
        self.s.push(Ev::Err(exc.raw_os_error()));
    }
    fn pause_writing(&mut self) {
        self.s.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.s.push(Ev::Resume);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.t = None;
        self.s.push(Ev::Lost(exc.map(|e| e.raw_os_error())));
    }
}

/// Runs `fut` with a 60 s watchdog (a generous bound against hangs, not a timing assertion).
fn run<F>(lp: &EventLoop, fut: F) -> F::Output
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    loop_testkit::run(lp, 60, fut)
}

/// Runs the loop until `cond` holds for the recorded events (woken by each event).
fn wait_until(lp: &EventLoop, s: &S, cond: impl Fn(&[Ev]) -> bool) {
    loop {
        if cond(&s.log.borrow()) {
            return;
        }
        let f = lp.create_future::<()>();
        *s.wake.borrow_mut() = Some(f.clone());
        run(lp, f).unwrap();
    }
}

fn count_data(evs: &[Ev]) -> usize {
    evs.iter().filter(|e| matches!(e, Ev::Data(..))).count()
}

/// Creates an endpoint on `lp`.
fn endpoint<P: DatagramProtocol + 'static>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    options: DatagramOptions,
) -> Result<(DatagramTransport, ProtocolRef<P>), Error> {
    let l = lp.clone();
    run(lp, async move {
        l.create_datagram_endpoint(factory, options).await
    })
}

fn capture_reports(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp, ctx| {
        l.borrow_mut().push(ctx.clone())
    })));
    log
}

fn err_text(e: &Error) -> String {
    e.to_string()
}

/// The address family of socket `fd`: SO_DOMAIN on Linux, the family of its own address
/// elsewhere (no SO_DOMAIN there).
fn socket_family(fd: std::os::fd::BorrowedFd<'_>) -> rustix::net::AddressFamily {
    #[cfg(target_os = "linux")]
    return rustix::net::sockopt::socket_domain(fd).unwrap();
    #[cfg(not(target_os = "linux"))]
    return rustix::net::getsockname(fd).unwrap().address_family();
}

fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

// ---------------------------------------------------------------------------------------------
// NET-50, NET-74, NET-66: the protocol sequence, the return after connection_made

#[test]
fn net_50_datagram_protocol_defaults_do_nothing() {
    let _g = serial();
    // A protocol implementing nothing receives datagrams and errors and closes without harm.
    struct Nothing;
    impl DatagramProtocol for Nothing {}
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (t, p) = endpoint(&lp, || Nothing, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let at = t.sockname().unwrap().as_inet().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"ignored", at).unwrap();
    t.sendto(b"x", Some(&peer.local_addr().unwrap().into()))
        .unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(peer.recv(&mut buf).unwrap(), 1);
    t.close();
    run(&lp, async {});
    for _ in 0..3 {
        run(&lp, loop_core::yield_now());
    }
    assert!(
        t.with_protocol(|_: &mut Nothing| ()).is_none(),
        "the transport let go of its protocol"
    );
    assert!(
        p.with(|_: &mut Nothing| ()).is_some(),
        "the ProtocolRef keeps it alive"
    );
    assert!(reports.borrow().is_empty());
}

#[test]
fn net_74_sequence_returns_after_connection_made_and_echoes_over_udp() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (ss, server_factory) = echo_rec();
    let (server, _) = endpoint(
        &lp,
        server_factory,
        DatagramOptions::local(("127.0.0.1", 0)),
    )
    .unwrap();
    // The call returned after connection_made ran.
    assert_eq!(ss.events(), vec![Ev::Made]);
    let at = server.sockname().unwrap();
    let (cs, client_factory) = rec();
    let (client, _) = endpoint(&lp, client_factory, DatagramOptions::remote(at.clone())).unwrap();
    assert_eq!(cs.events(), vec![Ev::Made]);
    assert_eq!(client.peername(), Some(at.clone()));
    client.sendto(b"first", None).unwrap();
    client.sendto(b"second", Some(&at)).unwrap();
    wait_until(&lp, &cs, |e| count_data(e) == 2);
    assert_eq!(cs.data(), vec![b"first".to_vec(), b"second".to_vec()]);
    // The server saw the client's address.
    let client_addr = client.sockname().unwrap();
    assert!(ss
        .events()
        .iter()
        .all(|e| !matches!(e, Ev::Data(_, a) if *a != client_addr)));
    // NET-66 keys.
    assert_eq!(
        client.get_extra_info(Extra::Peername).unwrap().as_addr(),
        Some(&at)
    );
    assert_eq!(
        server.get_extra_info(Extra::Sockname).unwrap().as_addr(),
        Some(&at)
    );
    assert!(server.get_extra_info(Extra::Peername).is_none());
    assert!(server.get_extra_info(Extra::Pipe).is_none());
    let fd = server
        .get_extra_info(Extra::Socket)
        .unwrap()
        .as_fd()
        .unwrap();
    assert_eq!(Some(fd), server.fileno());
    // close(): closing at once, connection_lost(None) later, exactly once, then the fd closed.
    assert!(!server.is_closing());
    server.close();
    client.abort();
    assert!(server.is_closing() && client.is_closing());
    assert!(!ss.lost() && !cs.lost(), "connection_lost is deferred");
    wait_until(&lp, &ss, |e| e.iter().any(|x| matches!(x, Ev::Lost(_))));
    wait_until(&lp, &cs, |e| e.iter().any(|x| matches!(x, Ev::Lost(_))));
    assert_eq!(ss.events().first(), Some(&Ev::Made));
    assert_eq!(ss.events().last(), Some(&Ev::Lost(None)));
    assert_eq!(cs.events().last(), Some(&Ev::Lost(None)));
    assert_eq!(
        ss.events()
            .iter()
            .filter(|e| matches!(e, Ev::Lost(_)))
            .count(),
        1
    );
    assert!(server.fileno().is_none());
    assert_eq!(fd_count(), before);
}

#[test]
fn net_74_ipv6_endpoint() {
    let _g = serial();
    if !ipv6_available() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let lp = EventLoop::new().unwrap();
    let (_ss, f) = echo_rec();
    let (server, _) = endpoint(&lp, f, DatagramOptions::local(("::1", 0))).unwrap();
    let at = server.sockname().unwrap();
    assert!(at.as_inet().unwrap().is_ipv6());
    let (cs, f) = rec();
    let (client, _) = endpoint(&lp, f, DatagramOptions::remote(at)).unwrap();
    client.sendto(b"six", None).unwrap();
    wait_until(&lp, &cs, |e| count_data(e) == 1);
    assert_eq!(cs.data(), vec![b"six".to_vec()]);
    client.close();
    server.close();
    wait_until(&lp, &cs, |e| e.contains(&Ev::Lost(None)));
}

#[test]
fn net_74_large_datagrams_arrive_whole_and_reads_are_capped_at_256_kib() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixDatagram::pair().unwrap();
    let (s, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::sock(b)).unwrap();
    // Bigger than any stream read chunk: one datagram, one delivery.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    a.send(&big).unwrap();
    wait_until(&lp, &s, |e| count_data(e) == 1);
    assert_eq!(s.data()[0], big);
    // A datagram above 256 KiB is cut at 256 KiB, if the socket buffer can hold one.
    let huge = vec![7u8; MAX_DATAGRAM_READ + 40_000];
    let fits = rustix::net::sockopt::set_socket_send_buffer_size(&a, 2 * huge.len()).is_ok()
        && rustix::net::sockopt::socket_send_buffer_size(&a).unwrap() > huge.len() + 4096;
    // Past the limit with SO_SNDBUFFORCE where there is one (Linux, as root).
    #[cfg(target_os = "linux")]
    let fits = fits
        || (rustix::net::sockopt::set_socket_send_buffer_size_force(&a, 2 * huge.len()).is_ok()
            && rustix::net::sockopt::socket_send_buffer_size(&a).unwrap() > huge.len() + 4096);
    if fits && a.send(&huge).is_ok() {
        wait_until(&lp, &s, |e| count_data(e) == 2);
        assert_eq!(s.data()[1].len(), MAX_DATAGRAM_READ);
    } else {
        eprintln!("part skipped: the socket buffer cannot hold a datagram above 256 KiB");
    }
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

// ---------------------------------------------------------------------------------------------
// NET-68: sock=

#[test]
fn net_68_sock_must_be_a_datagram_socket() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::sock(a)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(
        err_text(&e).contains("A datagram socket was expected")
            && err_text(&e).contains(", a stream socket;"),
        "{e}"
    );
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let (_, f) = rec();
    let e = endpoint(&lp, f, DatagramOptions::sock(r)).unwrap_err();
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
            DatagramOptions {
                local_addr: Some(("127.0.0.1", 0).into()),
                ..Default::default()
            },
            &["local_addr=127.0.0.1:0"],
        ),
        (
            DatagramOptions {
                remote_addr: Some(("127.0.0.1", 9).into()),
                ..Default::default()
            },
            &["remote_addr=127.0.0.1:9"],
        ),
        (
            DatagramOptions {
                family: AF_INET,
                proto: 17,
                flags: 1,
                ..Default::default()
            },
            &["family=2", "proto=17", "flags=1"],
        ),
        (
            DatagramOptions {
                reuse_port: true,
                allow_broadcast: true,
                ..Default::default()
            },
            &["reuse_port=true", "allow_broadcast=true"],
        ),
    ];
    for (mut opts, names) in cases {
        opts.sock = Some(UdpSocket::bind("127.0.0.1:0").unwrap().into());
        let (_, f) = rec();
        let e = endpoint(&lp, f, opts).unwrap_err();
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
    let (t, _) = endpoint(&lp, f, DatagramOptions::sock(sock)).unwrap();
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
    let e = endpoint(&lp, f, DatagramOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("unexpected address family"), "{e}");
}

#[test]
fn net_69_family_alone_gives_an_unbound_socket_of_that_family() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let (t, _) = endpoint(
        &lp,
        f,
        DatagramOptions {
            family: AF_INET,
            ..Default::default()
        },
    )
    .unwrap();
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
    let (u, _) = endpoint(
        &lp,
        f,
        DatagramOptions {
            family: AF_UNIX,
            ..Default::default()
        },
    )
    .unwrap();
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
        DatagramOptions {
            family: AF_INET,
            proto: IPPROTO_TCP,
            ..Default::default()
        },
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
        DatagramOptions {
            local_addr: Some(("127.0.0.1", 0).into()),
            family: AF_UNIX,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("string is expected"), "{e}");

    let (_, f) = rec();
    let e = endpoint(
        &lp,
        f,
        DatagramOptions {
            remote_addr: Some(std::path::Path::new("/tmp/nowhere.sock").into()),
            family: AF_INET,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("2-tuple is expected"), "{e}");

    // A path mixed with a host: the path is refused for the IP endpoint.
    let (_, f) = rec();
    let e = endpoint(
        &lp,
        f,
        DatagramOptions {
            local_addr: Some(("127.0.0.1", 0).into()),
            remote_addr: Some(std::path::Path::new("/tmp/nowhere.sock").into()),
            ..Default::default()
        },
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
        DatagramOptions {
            local_addr: Some(cpath.as_path().into()),
            remote_addr: Some(path.as_path().into()),
            ..Default::default()
        },
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
        DatagramOptions {
            local_addr: Some(("127.0.0.1", 0).into()),
            remote_addr: Some(("::1", 9).into()),
            ..Default::default()
        },
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
        DatagramOptions {
            local_addr: Some(("localhost", 0).into()),
            family: AF_INET,
            ..Default::default()
        },
    )
    .unwrap();
    let at = server.sockname().unwrap().as_inet().unwrap();
    assert!(at.ip().is_loopback());
    let (cs, f) = rec();
    let (client, _) = endpoint(
        &lp,
        f,
        DatagramOptions {
            remote_addr: Some(DatagramAddr::host("localhost", at.port().to_string())),
            family: AF_INET,
            ..Default::default()
        },
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
            DatagramOptions {
                remote_addr: Some(("127.0.0.1", "domain").into()),
                ..Default::default()
            },
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

    let opts = || DatagramOptions {
        local_addr: Some(("127.0.0.1", 0).into()),
        reuse_port: true,
        allow_broadcast: true,
        ..Default::default()
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
        DatagramOptions {
            local_addr: Some(("127.0.0.1", port).into()),
            reuse_port: true,
            ..Default::default()
        },
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
        DatagramOptions {
            remote_addr: Some(DatagramAddr::Addr(to.clone())),
            allow_broadcast: true,
            ..Default::default()
        },
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

// ---------------------------------------------------------------------------------------------
// NET-75: sendto arguments

#[test]
fn net_75_sendto_address_rules_and_empty_datagrams() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let remote: Addr = peer.local_addr().unwrap().into();
    let (_, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::remote(remote.clone())).unwrap();
    let other: Addr = "127.0.0.1:1".parse::<SocketAddr>().unwrap().into();
    let e = t.sendto(b"x", Some(&other)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert_eq!(
        err_text(&e),
        format!("invalid argument: Invalid address: must be None or {remote}")
    );
    t.sendto(b"", None).unwrap(); // a zero-length datagram
    t.sendto(b"named", Some(&remote)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(peer.recv(&mut buf).unwrap(), 0);
    assert_eq!(peer.recv(&mut buf).unwrap(), 5);
    t.abort();

    // Without a remote address, one is needed.
    let (_, f) = rec();
    let (u, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let e = u.sendto(b"x", None).unwrap_err();
    assert!(err_text(&e).contains("needs an address"), "{e}");
    let e = u.sendto(b"x", Some(&Addr::Unnamed)).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    u.abort();
    run(&lp, async {});
}

// ---------------------------------------------------------------------------------------------
// NET-76: errors

#[test]
fn net_76_icmp_refusal_goes_to_error_received_and_the_endpoint_stays_open() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    // A port nobody listens on (just released).
    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port_addr = gone.local_addr().unwrap();
    drop(gone);
    let (s, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::remote(port_addr)).unwrap();
    t.sendto(b"anyone?", None).unwrap();
    wait_until(&lp, &s, |e| e.iter().any(|x| matches!(x, Ev::Err(_))));
    assert!(s.events().contains(&Ev::Err(Some(libc::ECONNREFUSED))));
    assert!(!t.is_closing(), "an OS error does not close the endpoint");
    assert!(!s.lost());
    // Someone starts listening there: the endpoint still sends and receives.
    let back = UdpSocket::bind(port_addr).unwrap();
    t.sendto(b"still here", None).unwrap();
    let mut buf = [0u8; 32];
    let (n, from) = back.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still here");
    back.send_to(b"reply", from).unwrap();
    wait_until(&lp, &s, |e| count_data(e) == 1);
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

#[test]
fn net_76_sending_to_a_closed_port_does_not_stop_later_receives() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (s1, f) = rec();
    let (t1, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let (s2, f) = rec();
    let (t2, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let (_, f) = rec();
    let (t3, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let addr2 = t2.sockname().unwrap();
    let addr3 = t3.sockname().unwrap();
    t3.abort();
    run(&lp, async {});
    t1.sendto(b"a", Some(&addr2)).unwrap();
    wait_until(&lp, &s2, |e| count_data(e) == 1);
    t1.sendto(b"b", Some(&addr3)).unwrap();
    t1.sendto(b"c", Some(&addr2)).unwrap();
    wait_until(&lp, &s2, |e| count_data(e) == 2);
    assert_eq!(s2.data(), vec![b"a".to_vec(), b"c".to_vec()]);
    // And back the other way.
    t2.sendto(b"d", Some(&t1.sockname().unwrap())).unwrap();
    wait_until(&lp, &s1, |e| count_data(e) == 1);
    assert!(!t1.is_closing());
    t1.close();
    t2.close();
    wait_until(&lp, &s2, |e| e.contains(&Ev::Lost(None)));
}

#[test]
fn net_76_a_panic_in_datagram_received_is_fatal_and_reported() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let s: S = Rc::default();
    let s2 = s.clone();
    let (t, _) = endpoint(
        &lp,
        move || Rec {
            s: s2,
            t: None,
            echo: false,
            panic_on_data: true,
        },
        DatagramOptions::local(("127.0.0.1", 0)),
    )
    .unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"boom", t.sockname().unwrap().as_inet().unwrap())
        .unwrap();
    wait_until(&lp, &s, |e| e.iter().any(|x| matches!(x, Ev::Lost(_))));
    assert!(matches!(s.events().last(), Some(Ev::Lost(Some(None)))));
    let r = reports.borrow();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].message,
        "Fatal error: protocol.datagram_received() call failed."
    );
    assert!(r[0].extra.iter().any(|(k, _)| *k == "transport"));
    assert!(r[0]
        .extra
        .iter()
        .any(|(k, v)| *k == "protocol" && v.contains("Rec")));
    assert!(t.is_closing());
}

// ---------------------------------------------------------------------------------------------
// NET-77: the send queue

/// Fills the peer's queue of a Unix datagram pair until a send is queued; returns the number
/// of datagrams sent directly.
fn fill_until_queued(t: &DatagramTransport, size: usize) -> usize {
    let mut seq = 0u32;
    while t.get_write_buffer_size() == 0 {
        t.sendto(&numbered(seq, size), None).unwrap();
        seq += 1;
        assert!(seq < 100_000, "never queued");
    }
    seq as usize - 1
}

fn numbered(seq: u32, size: usize) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.resize(size, (seq % 251) as u8);
    v
}

#[test]
fn net_77_would_block_sends_are_queued_in_order_and_close_waits_for_them() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let (a, b) = UnixDatagram::pair().unwrap();
    let (s, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::sock(a)).unwrap();
    assert!(t.peername().is_some(), "a socketpair end is connected");
    let size = 1000;
    let direct = fill_until_queued(&t, size);
    // One queued so far: its bytes plus 8.
    assert_eq!(t.get_write_buffer_size(), size + 8);
    // Queue more, enough to cross a lowered high-water mark.
    t.set_write_buffer_limits(Some(4 * (size + 8)), Some(0))
        .unwrap();
    let total = direct + 1 + 10;
    for seq in (direct + 1)..total {
        t.sendto(&numbered(seq as u32, size), None).unwrap();
    }
    assert_eq!(t.get_write_buffer_size(), 11 * (size + 8));
    assert_eq!(
        s.events(),
        vec![Ev::Made, Ev::Pause],
        "paused inside sendto"
    );
    t.close();
    assert!(t.is_closing());
    // Sends after close are dropped, not queued.
    t.sendto(b"dropped", None).unwrap();
    assert_eq!(t.get_write_buffer_size(), 11 * (size + 8));
    // Nothing is read yet: connection_lost must wait for the queue.
    for _ in 0..=loop_core::POLL_EVERY {
        run(&lp, loop_core::yield_now());
    }
    assert!(!s.lost());
    // The peer reads everything; the queue drains in order, then connection_lost(None).
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        for _ in 0..total {
            let n = b.recv(&mut buf).unwrap();
            got.push(buf[..n].to_vec());
        }
        got
    });
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
    let got = reader.join().unwrap();
    let expect: Vec<Vec<u8>> = (0..total).map(|i| numbered(i as u32, size)).collect();
    assert!(got == expect, "every datagram, in order, none dropped");
    assert_eq!(
        s.events(),
        vec![Ev::Made, Ev::Pause, Ev::Resume, Ev::Lost(None)]
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(fd_count(), before);
}

#[test]
fn net_77_abort_discards_the_queue() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixDatagram::pair().unwrap();
    let (s, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::sock(a)).unwrap();
    let direct = fill_until_queued(&t, 500);
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
    b.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while b.recv(&mut buf).is_ok() {
        n += 1;
    }
    assert_eq!(n, direct, "the queued datagram was never sent");
}

#[test]
fn net_77_sends_after_close_are_dropped_with_a_warning_from_the_fifth_on() {
    let _g = serial();
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let cap = Capture::default();
    let c2 = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || c2.clone())
        .finish();
    let count = |c: &Capture| {
        String::from_utf8_lossy(&c.0.lock().unwrap())
            .matches("socket.send() raised exception.")
            .count()
    };
    tracing::subscriber::with_default(sub, || {
        let lp = EventLoop::new().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_nonblocking(true).unwrap();
        let (s, f) = rec();
        let (t, _) = endpoint(&lp, f, DatagramOptions::remote(peer.local_addr().unwrap())).unwrap();
        t.close(); // the close counts as the first lost send
        for _ in 0..4 {
            t.sendto(b"x", None).unwrap();
        }
        assert_eq!(count(&cap), 0);
        t.sendto(b"x", None).unwrap();
        t.sendto(b"x", None).unwrap();
        assert_eq!(count(&cap), 2);
        wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
        let mut buf = [0u8; 4];
        assert!(peer.recv(&mut buf).is_err(), "nothing was sent");
    });
}

/// Runs the loop until the send queue of `t` shrank (the peer made room); returns its size.
fn queue_step(lp: &EventLoop, t: &DatagramTransport) -> usize {
    let before = t.get_write_buffer_size();
    for _ in 0..100_000 {
        run(lp, loop_core::yield_now());
        if t.get_write_buffer_size() < before {
            return t.get_write_buffer_size();
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    panic!("the queue never shrank");
}

/// An endpoint on a Unix datagram socket connected to a bound receiver whose queue is full,
/// with `queued` datagrams of `size` bytes in the send queue. The receiver is not connected
/// back, so its queue is bounded by a datagram count (`net.unix.max_dgram_qlen`), not by the
/// sender's buffer: each datagram the test reads wakes the sender and makes room for exactly
/// one queued datagram, so the queue drains in steps of `size + 8`.
fn full_unix_pair<P: DatagramProtocol + 'static>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    size: usize,
    queued: usize,
) -> (DatagramTransport, UnixDatagram) {
    let path = loop_testkit::temp_path(&format!("full-{size}-{queued}"));
    let _ = std::fs::remove_file(&path);
    let b = UnixDatagram::bind(&path).unwrap();
    let a = UnixDatagram::unbound().unwrap();
    a.connect(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (t, _) = endpoint(lp, factory, DatagramOptions::sock(a)).unwrap();
    t.set_write_buffer_limits(Some(usize::MAX / 4), None)
        .unwrap();
    let direct = fill_until_queued(&t, size);
    for seq in 1..queued {
        t.sendto(&numbered((direct + 1 + seq) as u32, size), None)
            .unwrap();
    }
    assert_eq!(t.get_write_buffer_size(), queued * (size + 8));
    (t, b)
}

#[test]
fn net_64_datagram_resume_writing_when_the_queue_drains_to_exactly_low() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (s, f) = rec();
    let size = 100;
    let one = size + 8;
    let (t, b) = full_unix_pair(&lp, f, size, 4);
    // 4 queued > high = 2: pause; low = 2 datagrams.
    t.set_write_buffer_limits(Some(2 * one), Some(2 * one))
        .unwrap();
    assert_eq!(s.events(), vec![Ev::Made, Ev::Pause]);
    let mut buf = [0u8; 256];
    b.recv(&mut buf).unwrap();
    assert_eq!(queue_step(&lp, &t), 3 * one);
    assert_eq!(s.events(), vec![Ev::Made, Ev::Pause], "above low");
    b.recv(&mut buf).unwrap();
    assert_eq!(queue_step(&lp, &t), 2 * one);
    assert_eq!(
        s.events(),
        vec![Ev::Made, Ev::Pause, Ev::Resume],
        "resume_writing when the queue is at (not below) low"
    );
    t.abort();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

#[test]
fn net_64_datagram_failing_resume_writing_is_reported_once_and_not_fatal() {
    let _g = serial();
    struct BadResume(S);
    impl DatagramProtocol for BadResume {
        fn pause_writing(&mut self) {
            self.0.push(Ev::Pause);
        }
        fn resume_writing(&mut self) {
            self.0.push(Ev::Resume);
            panic!("resume hook");
        }
        fn connection_lost(&mut self, exc: Option<io::Error>) {
            self.0.push(Ev::Lost(exc.map(|e| e.raw_os_error())));
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let s: S = Rc::default();
    let s2 = s.clone();
    let size = 100;
    let (t, b) = full_unix_pair(&lp, move || BadResume(s2), size, 2);
    // low = 0: resume once the queue is empty.
    t.set_write_buffer_limits(Some(size + 8), Some(0)).unwrap();
    assert_eq!(s.events(), vec![Ev::Pause]);
    let mut buf = [0u8; 256];
    b.recv(&mut buf).unwrap();
    assert_eq!(queue_step(&lp, &t), size + 8);
    b.recv(&mut buf).unwrap();
    assert_eq!(queue_step(&lp, &t), 0);
    assert_eq!(s.events(), vec![Ev::Pause, Ev::Resume]);
    for _ in 0..3 {
        run(&lp, loop_core::yield_now());
    }
    {
        let r = reports.borrow();
        assert_eq!(r.len(), 1, "reported exactly once: {r:?}");
        assert_eq!(r[0].message, "protocol.resume_writing() failed");
    }
    assert!(!t.is_closing(), "not fatal");
    // Sends still work: the peer gets the next datagram.
    b.set_nonblocking(true).unwrap();
    while b.recv(&mut buf).is_ok() {}
    t.sendto(b"after", None).unwrap();
    b.set_nonblocking(false).unwrap();
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    t.abort();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
    assert_eq!(reports.borrow().len(), 1);
}

#[test]
fn net_77_loop_close_closes_open_endpoints() {
    let _g = serial();
    let before = fd_count();
    let lp = EventLoop::new().unwrap();
    let (_, f) = rec();
    let (t, _) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    assert!(t.fileno().is_some());
    lp.close().unwrap();
    assert!(t.fileno().is_none());
    assert!(t.is_closing());
    assert_eq!(fd_count(), before);
    // The handle still answers; sends are dropped.
    t.sendto(
        b"x",
        Some(&"127.0.0.1:9".parse::<SocketAddr>().unwrap().into()),
    )
    .unwrap();
    let _ = t.as_fd_probe();
}

/// Keeps the handle's `Debug` in use after the loop closed (must not fail).
trait Probe {
    fn as_fd_probe(&self) -> String;
}

impl Probe for DatagramTransport {
    fn as_fd_probe(&self) -> String {
        let _ = self.with_fd(|fd| fd.as_fd().try_clone_to_owned().is_ok());
        format!("{self:?}")
    }
}

// ---------------------------------------------------------------------------------------------
// NET-65 on a datagram endpoint; the protocol handle's Debug

/// NET-65: a datagram endpoint starts at 64 KiB / 16 KiB; only `high` gives `low = high / 4`,
/// only `low` gives `high = 4 × low`, both `None` restores the defaults, `high < low` is
/// refused with the values in the message and leaves the limits as they were.
#[test]
fn net_65_datagram_write_buffer_limits_defaults_and_derived_values() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (s, f) = rec();
    let (t, _p) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.set_write_buffer_limits(Some(400), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (100, 400));
    t.set_write_buffer_limits(None, Some(300)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (300, 1200));
    t.set_write_buffer_limits(Some(1000), Some(10)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (10, 1000));
    t.set_write_buffer_limits(None, None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    let e = t.set_write_buffer_limits(Some(1), Some(2)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(err_text(&e).contains("high (1) must be >= low (2)"), "{e}");
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

/// NET-74: the protocol handle returned with the transport names the protocol's type and the
/// transport it belongs to when debug-printed.
#[test]
fn net_74_protocol_ref_debug_names_the_protocol_and_its_transport() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (s, f) = rec();
    let (t, p) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let text = format!("{p:?}");
    assert!(text.starts_with("<ProtocolRef "), "{text}");
    assert!(text.contains("datagram::Rec of "), "{text}");
    assert!(text.ends_with(&format!(" of {t:?}>")), "{text}");
    t.close();
    wait_until(&lp, &s, |e| e.contains(&Ev::Lost(None)));
}

/// NET-74 with NET-67's `set_protocol`: a datagram endpoint's protocol can be replaced; the
/// next datagram goes to the new one, `protocol_type_name` names it, and it is `None` once the
/// protocol is gone after `connection_lost`.
#[test]
fn net_74_set_protocol_replaces_the_receiver_and_its_type_name() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let (s, f) = rec();
    let (t, _p) = endpoint(&lp, f, DatagramOptions::local(("127.0.0.1", 0))).unwrap();
    let name = t.protocol_type_name().unwrap();
    assert!(name.ends_with("::Rec"), "{name}");
    let (s2, f2) = rec();
    let mut second = f2();
    second.connection_made(&t);
    s2.log.borrow_mut().clear();
    t.set_protocol(Replacement(second));
    let name = t.protocol_type_name().unwrap();
    assert!(name.ends_with("::Replacement"), "{name}");
    let at = t.sockname().unwrap().as_inet().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"to the new one", at).unwrap();
    wait_until(&lp, &s2, |e| count_data(e) == 1);
    assert_eq!(s2.data(), vec![b"to the new one".to_vec()]);
    assert_eq!(count_data(&s.events()), 0, "the old protocol received it");
    t.close();
    wait_until(&lp, &s2, |e| e.contains(&Ev::Lost(None)));
    for _ in 0..3 {
        run(&lp, loop_core::yield_now());
    }
    assert_eq!(t.protocol_type_name(), None);
}

/// A protocol of another type, delegating to a [`Rec`].
struct Replacement(Rec);

impl DatagramProtocol for Replacement {
    fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
        self.0.datagram_received(data, addr);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.connection_lost(exc);
    }
}
