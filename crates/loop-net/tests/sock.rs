//! The `sock_*` calls over real sockets (NET-08..NET-15).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use loop_core::{Error, EventLoop};
use loop_net::{Addr, SockExt};

use loop_testkit::fd_count;

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn net_08_sock_recv_returns_data_then_empty_at_eof() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (a, b) = pair();
    let lp2 = lp.clone();
    let got = lp
        .run_until_complete(async move {
            let first_read = lp2.create_future::<()>();
            let reader = {
                let lp = lp2.clone();
                let first_read = first_read.clone();
                lp2.create_task(async move {
                    // Nothing sent yet: this waits for readability.
                    let first = lp.sock_recv(&a, 100).await?;
                    first_read.set_result(())?;
                    let eof = lp.sock_recv(&a, 100).await?;
                    Ok::<_, Error>((first, eof))
                })?
            };
            loop_core::yield_now().await;
            (&b).write_all(b"data")?;
            first_read.await?;
            drop(b);
            reader.await?
        })
        .unwrap()
        .unwrap();
    assert_eq!(got.0, b"data");
    assert!(got.1.is_empty(), "EOF gives an empty read");
}

#[test]
fn net_08_sock_recv_huge_content_round_trip() {
    let _w = loop_testkit::watchdog();
    // 4 MiB through a socketpair: the writer waits for writability many times, the reader for
    // readability; every byte arrives in order.
    let lp = EventLoop::new().unwrap();
    let (a, b) = pair();
    let data: Rc<Vec<u8>> = Rc::new((0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect());
    let lp2 = lp.clone();
    let d2 = data.clone();
    let received = lp
        .run_until_complete(async move {
            let writer = {
                let lp = lp2.clone();
                lp2.create_task(async move {
                    lp.sock_sendall(&a, &d2).await?;
                    drop(a);
                    Ok::<_, Error>(())
                })?
            };
            let mut all = Vec::new();
            loop {
                let chunk = lp2.sock_recv(&b, 65536).await?;
                if chunk.is_empty() {
                    break;
                }
                all.extend_from_slice(&chunk);
            }
            writer.await??;
            Ok::<_, Error>(all)
        })
        .unwrap()
        .unwrap();
    assert_eq!(received.len(), data.len());
    assert!(received == *data, "bytes arrive intact and in order");
}

#[test]
fn net_09_sock_recv_into_returns_count() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = pair();
    b.write_all(b"0123456789").unwrap();
    let lp2 = lp.clone();
    let (n, head) = lp
        .run_until_complete(async move {
            let mut buf = [0u8; 4];
            let n = lp2.sock_recv_into(&a, &mut buf).await?;
            Ok::<_, Error>((n, buf))
        })
        .unwrap()
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(&head, b"0123");
}

#[test]
fn net_10_sock_sendall_sends_every_byte_to_a_slow_reader() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (a, b) = pair();
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let expected = payload.clone();
    // A blocking reader thread that reads slowly.
    b.set_nonblocking(false).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        let mut b = b;
        loop {
            let n = b.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() % (256 * 1024) < 8192 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        got
    });
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        lp2.sock_sendall(&a, &payload).await?;
        drop(a);
        Ok::<_, Error>(())
    })
    .unwrap()
    .unwrap();
    assert!(reader.join().unwrap() == expected);
}

#[test]
fn net_10_sock_sendall_to_closed_peer_is_epipe_not_sigpipe() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (a, b) = pair();
    drop(b);
    let lp2 = lp.clone();
    let err = lp
        .run_until_complete(async move { lp2.sock_sendall(&a, b"into the void").await })
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::PIPE.raw_os_error())
    );
}

fn nonblocking_tcp_socket() -> TcpStream {
    // Flags set after creation: `SOCK_NONBLOCK` does not exist on every platform.
    let s = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    rustix::io::ioctl_fionbio(&s, true).unwrap();
    rustix::io::fcntl_setfd(&s, rustix::io::FdFlags::CLOEXEC).unwrap();
    TcpStream::from(s)
}

#[test]
fn net_11_sock_connect_connects_and_refused_is_an_os_error() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let s = nonblocking_tcp_socket();
    let lp2 = lp.clone();
    let s = lp
        .run_until_complete(async move {
            lp2.sock_connect(&s, addr).await?;
            Ok::<_, Error>(s)
        })
        .unwrap()
        .unwrap();
    let (peer, _) = listener.accept().unwrap();
    assert_eq!(peer.peer_addr().unwrap(), s.local_addr().unwrap());

    // A port nobody listens on: bind, note the port, close.
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s2 = nonblocking_tcp_socket();
    let lp2 = lp.clone();
    let err = lp
        .run_until_complete(async move { lp2.sock_connect(&s2, closed_port).await })
        .unwrap()
        .unwrap_err();
    match err {
        Error::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected connection refused, got {other:?}"),
    }
}

#[test]
fn net_12_sock_accept_returns_nonblocking_connection_and_peer() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
    let lp2 = lp.clone();
    let (conn, peer): (TcpStream, Addr) = lp
        .run_until_complete(async move { lp2.sock_accept(&listener).await })
        .unwrap()
        .unwrap();
    let client = client.join().unwrap();
    assert_eq!(peer.as_inet().unwrap(), client.local_addr().unwrap());
    let fl = rustix::fs::fcntl_getfl(&conn).unwrap();
    assert!(
        fl.contains(rustix::fs::OFlags::NONBLOCK),
        "accepted socket is non-blocking"
    );
    let fdfl = rustix::io::fcntl_getfd(&conn).unwrap();
    assert!(
        fdfl.contains(rustix::io::FdFlags::CLOEXEC),
        "accepted socket is close-on-exec"
    );
}

#[test]
fn net_13_cancelled_recv_leaves_no_registration_and_loses_no_data() {
    let _w = loop_testkit::exclusive();
    let base = fd_count();
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = pair();
    let a = Rc::new(a);
    let lp2 = lp.clone();
    let a2 = a.clone();
    let result = lp
        .run_until_complete(async move {
            let waiting = {
                let lp = lp2.clone();
                let a = a2.clone();
                lp2.create_task(async move { lp.sock_recv(&*a, 100).await })?
            };
            // Let it start and block on readability.
            loop_core::yield_now().await;
            loop_core::yield_now().await;
            assert_eq!(
                lp2.stats().fds_registered,
                1,
                "the pending recv watches the fd"
            );
            waiting.cancel_with("no longer needed");
            let r = waiting.await;
            assert!(r.unwrap_err().is_cancelled());
            assert_eq!(
                lp2.stats().fds_registered,
                0,
                "cancel removed the registration"
            );
            b.write_all(b"after cancel").unwrap();
            lp2.sock_recv(&*a2, 100).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(result, b"after cancel");
    drop(a);
    lp.close().unwrap();
    drop(lp);
    assert_eq!(fd_count(), base);
}

#[test]
fn net_13_cancelled_accept_then_accept_works() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let lp2 = lp.clone();
    let l2 = listener.clone();
    let peer = lp
        .run_until_complete(async move {
            let pending = {
                let lp = lp2.clone();
                let l = l2.clone();
                lp2.create_task(async move { lp.sock_accept::<_, TcpStream>(&*l).await })?
            };
            loop_core::yield_now().await;
            loop_core::yield_now().await;
            pending.cancel();
            assert!(pending.await.unwrap_err().is_cancelled());
            let c = TcpStream::connect(addr).unwrap();
            let (_conn, peer) = lp2.sock_accept::<_, TcpStream>(&*l2).await?;
            Ok::<_, Error>((peer, c.local_addr().unwrap()))
        })
        .unwrap()
        .unwrap();
    assert_eq!(peer.0.as_inet().unwrap(), peer.1);
}

#[test]
fn net_14_recvfrom_sendto_and_recvfrom_into() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        // The receive waits: nothing was sent yet.
        let recv = {
            let lp = lp2.clone();
            lp2.create_task(async move {
                let r = lp.sock_recvfrom(&b, 1500).await?;
                let mut buf = [0u8; 8];
                let r2 = lp.sock_recvfrom_into(&b, &mut buf, Some(3)).await?;
                let too_big = lp.sock_recvfrom_into(&b, &mut buf, Some(9)).await;
                Ok::<_, Error>((r, r2, buf, too_big.is_err()))
            })?
        };
        loop_core::yield_now().await;
        assert_eq!(lp2.sock_sendto(&a, b"first", ba).await?, 5);
        assert_eq!(lp2.sock_sendto(&a, b"second", ba).await?, 6);
        let ((d1, from1), (n2, from2), buf, rejected) = recv.await??;
        assert_eq!(d1, b"first");
        assert_eq!(from1.as_inet().unwrap(), aa);
        assert_eq!(n2, 3, "nbytes caps the datagram");
        assert_eq!(&buf[..3], b"sec");
        assert_eq!(from2.as_inet().unwrap(), aa);
        assert!(rejected, "nbytes larger than the buffer is rejected");
        Ok::<_, Error>(())
    })
    .unwrap()
    .unwrap();
}

#[test]
fn net_15_blocking_socket_rejected_in_debug_mode_and_for_accept() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap(); // blocking
    b.write_all(b"x").unwrap();
    // Outside debug mode a receive on a blocking socket still never blocks the loop.
    let lp2 = lp.clone();
    let a = Rc::new(a);
    let a2 = a.clone();
    let got = lp
        .run_until_complete(async move { lp2.sock_recv(&*a2, 8).await })
        .unwrap()
        .unwrap();
    assert_eq!(got, b"x");
    lp.set_debug(true);
    let lp2 = lp.clone();
    let a2 = a.clone();
    let err = lp
        .run_until_complete(async move { lp2.sock_recv(&*a2, 8).await })
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(ref m) if m.contains("non-blocking")),
        "{err}"
    );
    lp.set_debug(false);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap(); // blocking
    let lp2 = lp.clone();
    let err = lp
        .run_until_complete(
            async move { lp2.sock_accept::<_, TcpStream>(&listener).await.map(|_| ()) },
        )
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}
