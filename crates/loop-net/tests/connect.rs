//! `create_connection`, `connect_accepted_socket` and name resolution on the loop, over real
//! sockets (NET-16..NET-29).

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{fd_count, full_listener, run, serial, Rec};
use loop_core::{Error, EventLoop};
use loop_executor::{Executor, ExecutorExt, Job};
use loop_net::{ConnectOptions, ErrorGroup, Hints, NetExt, SOCK_STREAM};
use loop_transport::Transport;

/// An executor that counts its jobs (one thread per job).
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Executor for Counting {
    fn submit(&self, job: Job) -> loop_core::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || job.run());
        Ok(())
    }
}

fn counting(lp: &EventLoop) -> Arc<AtomicUsize> {
    let c = Counting::default();
    let n = c.0.clone();
    lp.set_default_executor(c);
    n
}

struct Quiet;
impl loop_transport::Protocol for Quiet {}

fn connect(
    lp: &EventLoop,
    host: &str,
    port: u16,
    o: ConnectOptions,
) -> loop_core::Result<Transport> {
    run(lp, 30, lp.create_connection(|| Quiet, host, port, o)).map(|(t, _)| t)
}

fn close(lp: &EventLoop, t: Transport) {
    t.close();
    run(lp, 10, async {});
}

#[test]
fn net_16_getaddrinfo_and_getnameinfo_run_on_the_default_executor() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let jobs = counting(&lp);
    let hints = Hints {
        socktype: SOCK_STREAM,
        ..Default::default()
    };
    // Even an IP literal goes through the executor when asked for explicitly.
    let r = run(&lp, 30, lp.getaddrinfo(Some("127.0.0.1"), 8080, hints)).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(r[0].socktype, SOCK_STREAM);
    assert_eq!(jobs.load(Ordering::SeqCst), 1);
    let (h, p) = run(
        &lp,
        30,
        lp.getnameinfo(
            "127.0.0.1:80".parse().unwrap(),
            loop_net::NI_NUMERICHOST | loop_net::NI_NUMERICSERV,
        ),
    )
    .unwrap();
    assert_eq!((h.as_str(), p.as_str()), ("127.0.0.1", "80"));
    assert_eq!(jobs.load(Ordering::SeqCst), 2);
}

#[test]
fn net_17_after_executor_shutdown_names_fail_but_ip_literals_connect() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    run(&lp, 30, lp.shutdown_default_executor(None)).unwrap();
    let err = run(
        &lp,
        30,
        lp.getaddrinfo(Some("localhost"), port, Hints::default()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ExecutorShutdown), "{err}");
    assert_eq!(err.to_string(), "Executor shutdown has been called");
    let err = connect(&lp, "localhost", port, ConnectOptions::new()).unwrap_err();
    assert!(matches!(err, Error::ExecutorShutdown), "{err}");
    let t = connect(&lp, "127.0.0.1", port, ConnectOptions::new()).unwrap();
    close(&lp, t);
}

#[test]
fn net_18_numeric_hosts_skip_the_resolver_names_use_it() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let jobs = counting(&lp);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = connect(&lp, "127.0.0.1", port, ConnectOptions::new()).unwrap();
    assert_eq!(
        jobs.load(Ordering::SeqCst),
        0,
        "an IP literal needs no resolver"
    );
    close(&lp, t);
    let t = connect(&lp, "localhost", port, ConnectOptions::new()).unwrap();
    assert_eq!(
        jobs.load(Ordering::SeqCst),
        1,
        "a name goes to the resolver"
    );
    close(&lp, t);
    // A service name is resolved too (to port 80); an unknown one is an OS error.
    let r = run(
        &lp,
        30,
        lp.getaddrinfo(Some("127.0.0.1"), "http", Hints::default()),
    )
    .unwrap();
    assert!(r.iter().all(|i| i.addr.port() == 80), "{r:?}");
    let err = run(
        &lp,
        30,
        lp.getaddrinfo(Some("127.0.0.1"), "no-such-service-xyz", Hints::default()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
}

#[test]
fn net_18_zone_literal_goes_through_the_resolver_and_keeps_the_scope() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let jobs = counting(&lp);
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        println!("no IPv6 loopback here; skipped");
        return;
    };
    let port = l.local_addr().unwrap().port();
    let t = connect(&lp, "::1%1", port, ConnectOptions::new()).unwrap();
    assert_eq!(jobs.load(Ordering::SeqCst), 1);
    let r = run(
        &lp,
        30,
        lp.getaddrinfo(Some("::1%1"), port, Hints::default()),
    )
    .unwrap();
    let std::net::SocketAddr::V6(v6) = r[0].addr else {
        panic!("{r:?}")
    };
    assert_eq!(v6.scope_id(), 1, "the zone becomes the scope id");
    let (conn, _) = l.accept().unwrap();
    assert_eq!(
        conn.peer_addr().unwrap(),
        t.sockname().unwrap().as_inet().unwrap()
    );
    close(&lp, t);
}

/// NET-19: a socket and a host/port cannot both be given (the socket has its own call,
/// `create_connection_sock`); giving neither is asyncio's value error.
#[test]
fn net_19_host_port_and_sock_are_exclusive() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let err = run(
        &lp,
        10,
        lp.create_connection(|| Quiet, "", None::<u16>, ConnectOptions::new()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("host and port was not specified and no sock specified"),
        "{err}"
    );
    let err = run(
        &lp,
        10,
        lp.open_connection("", None::<u16>, ConnectOptions::new()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("host and port was not specified and no sock specified"),
        "{err}"
    );
}

#[test]
fn net_20_sock_must_be_a_stream_socket_and_is_adopted() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let o = ConnectOptions::new();
    let err = run(&lp, 10, lp.create_connection_sock(|| Quiet, udp, o)).unwrap_err();
    assert!(
        err.to_string()
            .contains("A Stream Socket was expected, got <socket fd="),
        "{err}"
    );
    // A connected blocking TCP socket is adopted and made non-blocking.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let o = ConnectOptions::new();
    let lp2 = lp.clone();
    let (t, _protocol) = run(&lp, 10, lp2.create_connection_sock(|| Quiet, s, o)).unwrap();
    let nonblocking = t
        .with_fd(|fd| {
            rustix::fs::fcntl_getfl(fd)
                .unwrap()
                .contains(rustix::fs::OFlags::NONBLOCK)
        })
        .unwrap();
    assert!(nonblocking);
    t.write(b"adopted").unwrap();
    let mut buf = [0u8; 7];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"adopted");
    close(&lp, t);
}

#[test]
fn net_22_addresses_tried_in_resolver_order_failed_sockets_closed() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    // With no host, the resolver gives the loopback addresses (::1 then 127.0.0.1 on Linux).
    let order = loop_net::getaddrinfo_blocking(
        None,
        Some("1"),
        &Hints {
            socktype: SOCK_STREAM,
            ..Default::default()
        },
    )
    .unwrap();
    if order.len() < 2 {
        println!("the resolver gives one loopback address here; skipped");
        return;
    }
    // Only the last address listens: every earlier one is refused first.
    let last = order.last().unwrap().addr;
    let l = TcpListener::bind(std::net::SocketAddr::new(last.ip(), 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let before = fd_count();
    let t = connect(&lp, "", port, ConnectOptions::new()).unwrap();
    assert_eq!(t.peername().unwrap().as_inet().unwrap().ip(), last.ip());
    assert_eq!(fd_count(), before + 1, "only the winning socket stays open");
    close(&lp, t);
    // Nobody listens: the errors come in resolver order.
    drop(l);
    let err = connect(&lp, "", port, ConnectOptions::new()).unwrap_err();
    let text = err.to_string();
    let positions: Vec<usize> = order
        .iter()
        .map(|i| {
            let a = std::net::SocketAddr::new(i.addr.ip(), port);
            text.find(&format!("({a})"))
                .unwrap_or_else(|| panic!("{a} not in {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(fd_count(), before - 1, "only the listener is gone");
}

#[test]
fn net_22_cancelled_attempt_closes_its_socket() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let (l, _filler) = full_listener("127.0.0.1:0");
    let addr = l.local_addr().unwrap();
    let before = fd_count();
    let lp2 = lp.clone();
    let outcome = run(&lp, 30, async move {
        let task = lp2.create_task(lp2.create_connection(
            || Quiet,
            "127.0.0.1",
            addr.port(),
            ConnectOptions::new(),
        ))?;
        // Let the connect start (it cannot finish: the accept queue is full).
        for _ in 0..5 {
            loop_core::yield_now().await;
        }
        let during = fd_count();
        let r = task.task_ref();
        task.cancel();
        while !r.done() {
            loop_core::yield_now().await;
        }
        Ok::<_, Error>((during, r.cancelled()))
    })
    .unwrap();
    assert_eq!(outcome.0, before + 1, "the attempt's socket was open");
    assert!(outcome.1, "the task ended cancelled");
    assert_eq!(fd_count(), before, "cancelling closed it");
}

fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn net_23_error_aggregation() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    // One address: its error, with the address named and the errno kept as the source.
    let port = refused_port();
    let err = connect(&lp, "127.0.0.1", port, ConnectOptions::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Connect call failed (127.0.0.1:{port}): {}",
            std::io::Error::from_raw_os_error(libc::ECONNREFUSED)
        )
    );
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
    let order = loop_net::getaddrinfo_blocking(
        None,
        Some("1"),
        &Hints {
            socktype: SOCK_STREAM,
            ..Default::default()
        },
    )
    .unwrap();
    if order.len() < 2 {
        println!("one loopback address; the multiple-error cases are skipped");
        return;
    }
    // Several different errors: one OS error listing them all.
    let err = connect(&lp, "", port, ConnectOptions::new()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("Multiple exceptions: Connect call failed ("),
        "{text}"
    );
    assert_eq!(
        text.matches("Connect call failed").count(),
        order.len(),
        "{text}"
    );
    // all_errors: the group of every error.
    let o = ConnectOptions::new().all_errors(true);
    let err = connect(&lp, "", port, o).unwrap_err();
    let Error::Exception(e) = &err else {
        panic!("{err}")
    };
    let group = e.downcast_ref::<ErrorGroup>().expect("an ErrorGroup");
    assert_eq!(group.errors().len(), order.len());
    assert!(group
        .errors()
        .iter()
        .all(|e| e.raw_os_error() == Some(libc::ECONNREFUSED)));
    // The same errors through the accessor on `Error`.
    assert_eq!(err.errors().len(), order.len());
}

#[test]
fn net_24_local_addr_is_bound_before_connecting() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let o = ConnectOptions::new().local_addr(("127.0.0.1", 0));
    let t = connect(&lp, "127.0.0.1", port, o).unwrap();
    let local = t.sockname().unwrap().as_inet().unwrap();
    let (_conn, peer) = l.accept().unwrap();
    assert_eq!(peer, local);
    // The same local address again: in use.
    let o = ConnectOptions::new().local_addr(("127.0.0.1", local.port()));
    let err = connect(&lp, "127.0.0.1", port, o).unwrap_err();
    let Error::Io(io) = &err else { panic!("{err}") };
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "error while attempting to bind on address 127.0.0.1:{}: address",
            local.port()
        )),
        "{err}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    close(&lp, t);
    // No local address of the remote's family.
    let o = ConnectOptions::new().local_addr(("::1", 0));
    let err = connect(&lp, "127.0.0.1", port, o).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "no matching local address with family={} found",
            libc::AF_INET
        )),
        "{err}"
    );
}

#[test]
fn net_24_local_addr_skips_attempts_of_another_family() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // No host: both loopbacks are tried; the IPv6 one has no IPv4 local address and is skipped.
    let o = ConnectOptions::new().local_addr(("127.0.0.1", 0));
    let t = connect(&lp, "", port, o).unwrap();
    assert!(t.peername().unwrap().as_inet().unwrap().is_ipv4());
    close(&lp, t);
}

#[test]
fn net_25_happy_eyeballs_starts_the_next_attempt_after_the_delay_and_closes_the_loser() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let order = loop_net::getaddrinfo_blocking(
        None,
        Some("1"),
        &Hints {
            socktype: SOCK_STREAM,
            ..Default::default()
        },
    )
    .unwrap();
    if order.len() < 2 || !order[0].addr.is_ipv6() {
        println!("needs ::1 before 127.0.0.1 from the resolver; skipped");
        return;
    }
    // The first address hangs (accept queue full), the second accepts.
    let (hang, _filler) = full_listener("[::1]:0");
    let port = hang.local_addr().unwrap().port();
    let Ok(good) = TcpListener::bind(("127.0.0.1", port)) else {
        println!("port {port} taken on 127.0.0.1; skipped");
        return;
    };
    let before = fd_count();
    let o = ConnectOptions::new().happy_eyeballs_delay(Duration::from_millis(50));
    let t = connect(&lp, "", port, o).unwrap();
    assert_eq!(
        t.peername().unwrap().as_inet().unwrap(),
        good.local_addr().unwrap()
    );
    assert_eq!(
        fd_count(),
        before + 1,
        "the hanging attempt's socket was closed"
    );
    close(&lp, t);
    // Both fail fast: every error is reported, nothing stays open.
    drop(good);
    drop(hang);
    let o = ConnectOptions::new().happy_eyeballs_delay(Duration::from_secs(60));
    // A failure starts the next attempt at once (no 60 s wait).
    let err = connect(&lp, "", port, o).unwrap_err();
    assert!(err.to_string().starts_with("Multiple exceptions"), "{err}");
    assert_eq!(fd_count(), before - 2, "only the two listeners are gone");
}

#[test]
fn net_26_tcp_transports_get_tcp_nodelay() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = connect(
        &lp,
        "127.0.0.1",
        l.local_addr().unwrap().port(),
        ConnectOptions::new(),
    )
    .unwrap();
    assert!(t
        .with_fd(|fd| rustix::net::sockopt::tcp_nodelay(fd).unwrap())
        .unwrap());
    close(&lp, t);
}

#[test]
fn net_27_returns_after_connection_made_and_calls_the_factory_once() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let calls = Rc::new(std::cell::Cell::new(0));
    let c = calls.clone();
    let lp2 = lp.clone();
    let (t, _protocol) = run(
        &lp,
        30,
        lp.create_connection(
            move || {
                c.set(c.get() + 1);
                Rec::new(&lp2)
            },
            "127.0.0.1",
            port,
            ConnectOptions::new(),
        ),
    )
    .unwrap();
    assert_eq!(calls.get(), 1);
    let log = t
        .with_protocol(|r: &mut Rec| r.log.borrow().clone())
        .unwrap();
    assert_eq!(log, ["made"]);
    close(&lp, t);
}

#[test]
fn net_27_cancelled_after_the_connect_before_connection_made_closes_the_socket() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let before = fd_count();
    let lp2 = lp.clone();
    let (task_cancelled, fds_in_factory) = run(&lp, 30, async move {
        let lp3 = lp2.clone();
        let fds_in_factory = Rc::new(std::cell::Cell::new(0));
        let f2 = fds_in_factory.clone();
        let task = lp2.create_task(lp2.create_connection(
            move || {
                // The TCP connect is done (the socket is open); cancel the waiting task now,
                // before connection_made.
                f2.set(fd_count());
                assert!(lp3.current_task().unwrap().cancel());
                Quiet
            },
            "127.0.0.1",
            port,
            ConnectOptions::new(),
        ))?;
        let r = task.task_ref();
        while !r.done() {
            loop_core::yield_now().await;
        }
        // Let the transport's own callbacks (connection_lost) run.
        for _ in 0..=loop_core::POLL_EVERY {
            loop_core::yield_now().await;
        }
        Ok::<_, Error>((r.cancelled(), fds_in_factory.get()))
    })
    .unwrap();
    assert!(task_cancelled, "the task ended cancelled");
    assert_eq!(fds_in_factory, before + 1, "the socket was connected");
    assert_eq!(fd_count(), before, "the cancelled wait closed the socket");
    // The server side sees the connection closed.
    let (mut peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(peer.read(&mut buf).unwrap(), 0);
}

#[test]
fn net_28_tls_arguments_are_rejected_without_tls() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let cases: Vec<(ConnectOptions, &str)> = vec![
        (
            ConnectOptions::new().server_hostname("example.com"),
            "server_hostname is only meaningful with ssl",
        ),
        (
            ConnectOptions::new().ssl_handshake_timeout(Duration::from_secs(1)),
            "ssl_handshake_timeout is only meaningful with ssl",
        ),
        (
            ConnectOptions::new().ssl_shutdown_timeout(Duration::from_secs(1)),
            "ssl_shutdown_timeout is only meaningful with ssl",
        ),
    ];
    for (o, msg) in cases {
        let err = connect(&lp, "127.0.0.1", 1, o).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains(msg), "{err} / {msg}");
    }
}

#[test]
fn net_29_connect_accepted_socket_wraps_a_server_side_socket() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (conn, _) = l.accept().unwrap();
    let lp2 = lp.clone();
    let (t, _protocol) = run(
        &lp,
        30,
        lp.connect_accepted_socket(
            common::Echo::default,
            OwnedFd::from(conn),
            ConnectOptions::new(),
        ),
    )
    .unwrap();
    client.set_nonblocking(true).unwrap();
    let got = run(&lp, 30, async move {
        use loop_net::SockExt;
        lp2.sock_sendall(&client, b"echo me").await?;
        let mut got = Vec::new();
        while got.len() < 7 {
            let chunk = lp2.sock_recv(&client, 64).await?;
            assert!(!chunk.is_empty(), "EOF before the echo");
            got.extend_from_slice(&chunk);
        }
        Ok::<_, Error>(got)
    })
    .unwrap();
    assert_eq!(got, b"echo me");
    close(&lp, t);
    // Not a stream socket; TLS arguments.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = run(
        &lp,
        10,
        lp.connect_accepted_socket(|| Quiet, udp, ConnectOptions::new()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("A Stream Socket was expected"),
        "{err}"
    );
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let o = ConnectOptions::new().ssl_handshake_timeout(Duration::from_secs(1));
    let err = run(&lp, 10, lp.connect_accepted_socket(|| Quiet, a, o)).unwrap_err();
    assert!(
        err.to_string().contains("only meaningful with ssl"),
        "{err}"
    );
}

/// NET-22 with NET-25: cancelling `create_connection` while its first attempt is connecting
/// ends it cancelled at once: no further address is tried (the next one would accept).
#[test]
fn net_22_cancelling_during_an_attempt_tries_no_further_address() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let order = loop_net::getaddrinfo_blocking(
        None,
        Some("1"),
        &Hints {
            socktype: SOCK_STREAM,
            ..Default::default()
        },
    )
    .unwrap();
    if order.len() < 2 || !order[0].addr.is_ipv6() {
        println!("needs ::1 before 127.0.0.1 from the resolver; skipped");
        return;
    }
    // The first address hangs (accept queue full), the second would accept at once.
    let (hang, _filler) = full_listener("[::1]:0");
    let port = hang.local_addr().unwrap().port();
    let Ok(good) = TcpListener::bind(("127.0.0.1", port)) else {
        println!("port {port} taken on 127.0.0.1; skipped");
        return;
    };
    good.set_nonblocking(true).unwrap();
    let before = fd_count();
    let lp2 = lp.clone();
    let cancelled = run(&lp, 30, async move {
        // The second attempt starts only when the first one fails.
        let o = ConnectOptions::new().happy_eyeballs_delay(Duration::from_secs(60));
        let task = lp2.create_task(lp2.create_connection(|| Quiet, "", port, o))?;
        // Cancel once the first attempt's socket exists: the lookup before it runs on an
        // executor thread, whose own fds (the resolver's) must not be open when the test
        // counts. Under load the lookup can take longer than any fixed number of iterations.
        while fd_count() <= before {
            loop_core::yield_now().await;
        }
        let r = task.task_ref();
        task.cancel();
        for _ in 0..20 {
            loop_core::yield_now().await;
        }
        Ok::<_, Error>(r.done() && r.cancelled())
    })
    .unwrap();
    assert!(cancelled, "the task did not end cancelled");
    let accepted = good.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the next address was tried after the cancel: {accepted:?}"
    );
    // A lookup cancelled with the task finishes on its executor thread, whose resolver may
    // hold an fd for a moment: give it time (a socket the loop kept open stays open).
    let settled = std::time::Instant::now() + Duration::from_secs(5);
    while fd_count() != before && std::time::Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(fd_count(), before, "an attempt's socket stayed open");
}

/// NET-25: when the latest attempt fails while an earlier one is still connecting, the
/// earlier one goes on (the result waits for it); cancelling then ends everything cancelled
/// and closes the remaining socket.
#[test]
fn net_25_the_last_attempt_failing_first_leaves_the_earlier_one_running() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let order = loop_net::getaddrinfo_blocking(
        None,
        Some("1"),
        &Hints {
            socktype: SOCK_STREAM,
            ..Default::default()
        },
    )
    .unwrap();
    if order.len() < 2 || !order[0].addr.is_ipv6() {
        println!("needs ::1 before 127.0.0.1 from the resolver; skipped");
        return;
    }
    // The first address hangs (accept queue full); nothing listens on the second: refused.
    let (hang, _filler) = full_listener("[::1]:0");
    let port = hang.local_addr().unwrap().port();
    if TcpStream::connect(("127.0.0.1", port)).is_ok() {
        println!("port {port} taken on 127.0.0.1; skipped");
        return;
    }
    let before = fd_count();
    let lp2 = lp.clone();
    let (waiting, open, cancelled) = run(&lp, 30, async move {
        let o = ConnectOptions::new().happy_eyeballs_delay(Duration::from_millis(20));
        let task = lp2.create_task(lp2.create_connection(|| Quiet, "", port, o))?;
        let r = task.task_ref();
        // Long enough for the second attempt to start and be refused.
        loop_timers::TimersExt::sleep(&lp2, Duration::from_millis(300)).await?;
        let waiting = !r.done();
        let open = fd_count();
        task.cancel();
        while !r.done() {
            loop_core::yield_now().await;
        }
        Ok::<_, Error>((waiting, open, r.cancelled()))
    })
    .unwrap();
    assert!(
        waiting,
        "the refused second attempt ended the connection early"
    );
    assert_eq!(open, before + 1, "the first attempt's socket is open");
    assert!(cancelled, "the task did not end cancelled");
    assert_eq!(fd_count(), before, "a socket stayed open");
}
