//! `Server` over real sockets: its sockets, closing, `serve_forever`, `wait_closed` and the
//! clients (NET-39..NET-45).
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use common::{echo_roundtrip, fd_count, port_of, run, serial, server, Keep};
use loop_core::{Error, EventLoop};
use loop_net::{Addr, NetExt, ServerOptions, AF_INET, AF_INET6};
use loop_transport::Transport;

#[test]
fn net_39_40_close_stops_accepting_keeps_connections() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
    let addr = s.local_addrs()[0].as_inet().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    let s2 = s.clone();
    run(&lp, 10, async move {
        while s2.client_count() == 0 {
            loop_core::yield_now().await;
        }
    });
    s.close();
    s.close();
    assert!(!s.is_serving());
    assert!(s.sockets().is_empty() && s.local_addrs().is_empty());
    assert!(
        TcpStream::connect(addr).is_err(),
        "new connections are refused"
    );
    // The existing connection still echoes.
    c.write_all(b"still here").unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 10];
        c.read_exact(&mut buf).unwrap();
        buf
    });
    let s2 = s.clone();
    run(&lp, 10, async move {
        // Runs until the client hangs up after reading its echo.
        while s2.client_count() > 0 {
            loop_core::yield_now().await;
        }
    });
    assert_eq!(&h.join().unwrap(), b"still here");
}

/// NET-39: `sockets()` lists typed views of the listening sockets: each one's address is the
/// socket's own `getsockname` and its family the address's; the fd is lent (read, duplicated)
/// while the server holds it. A view kept past `close()` lends nothing: the server closed the
/// socket (new connections are refused) even while views exist, and no fd is left.
#[test]
fn net_39_server_sockets_are_typed_views_the_server_keeps_owning() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let before = fd_count();
    let hosts = if TcpListener::bind("[::1]:0").is_ok() {
        vec!["127.0.0.1", "::1"]
    } else {
        vec!["127.0.0.1"]
    };
    let s = server(&lp, hosts.clone(), 0, ServerOptions::new());
    let socks = s.sockets();
    let addrs = s.local_addrs();
    assert_eq!(socks.len(), hosts.len(), "{socks:?}");
    for (sock, addr) in socks.iter().zip(&addrs) {
        assert_eq!(sock.local_addr(), addr);
        let inet = addr.as_inet().unwrap();
        let family = if inet.is_ipv4() { AF_INET } else { AF_INET6 };
        assert_eq!(sock.family(), family, "{sock:?}");
        let own = sock.with_fd(|fd| Addr::sockname_of(fd).unwrap());
        assert_eq!(
            own.as_ref(),
            Some(addr),
            "the view's address is the socket's own"
        );
        assert_eq!(sock.fileno(), sock.with_fd(|fd| fd.as_raw_fd()));
        assert_eq!(echo_roundtrip(&lp, inet, b"typed"), b"typed");
    }
    // A duplicate may be made while the server holds the socket.
    let dup = socks[0]
        .with_fd(|fd| fd.try_clone_to_owned().unwrap())
        .unwrap();
    assert_eq!(Addr::sockname_of(&dup).unwrap(), addrs[0]);
    drop(dup);
    // Closed from inside a borrow: the fd stays valid until the borrow ends.
    let s2 = s.clone();
    let inside = socks[0].with_fd(move |fd| {
        s2.close();
        Addr::sockname_of(fd).is_ok()
    });
    assert_eq!(inside, Some(true));
    assert!(s.sockets().is_empty());
    for sock in &socks {
        assert!(sock.with_fd(|_| ()).is_none(), "{sock:?}");
        assert_eq!(sock.fileno(), None);
        let at = sock.local_addr().as_inet().unwrap();
        assert!(TcpStream::connect(at).is_err(), "refused after close: {at}");
    }
    run(&lp, 10, s.wait_closed()).unwrap();
    drop(socks);
    assert_eq!(
        fd_count(),
        before,
        "a listening socket or a connection was left open"
    );
}

#[test]
fn net_41_close_cancels_serve_forever() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
    let s2 = s.clone();
    let lp2 = lp.clone();
    let err = run(&lp, 10, async move {
        let s3 = s2.clone();
        let forever = lp2.create_task(async move { s3.serve_forever().await })?;
        loop_core::yield_now().await;
        s2.close();
        let r = forever.await;
        Ok::<_, Error>(r.is_err_and(|e| e.is_cancelled()))
    })
    .unwrap();
    assert!(err, "serve_forever ended cancelled");
    assert!(!s.is_serving());
}

#[test]
fn net_42_serve_forever_errors_and_cancellation_closes() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let o = ServerOptions::new().start_serving(false);
    let s = server(&lp, "127.0.0.1", 0, o);
    let lp2 = lp.clone();
    let s2 = s.clone();
    let (second, task_cancelled) = run(&lp, 10, async move {
        let a = s2.clone();
        let first = lp2.create_task(async move { a.serve_forever().await })?;
        loop_core::yield_now().await;
        let second = s2.serve_forever().await.unwrap_err();
        let r = first.task_ref();
        first.cancel();
        while !r.done() {
            loop_core::yield_now().await;
        }
        Ok::<_, Error>((second, r.cancelled()))
    })
    .unwrap();
    assert!(
        second
            .to_string()
            .contains("is already being awaited on serve_forever()"),
        "{second}"
    );
    assert!(task_cancelled);
    assert!(
        !s.is_serving(),
        "cancelling serve_forever closed the server"
    );
    let s2 = s.clone();
    let err = run(&lp, 10, async move { s2.serve_forever().await }).unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
}

#[test]
fn net_43_wait_closed_needs_closed_and_no_clients() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
    let addr = s.local_addrs()[0].as_inet().unwrap();
    let c = TcpStream::connect(addr).unwrap();
    let lp2 = lp.clone();
    let s2 = s.clone();
    let done = run(&lp, 10, async move {
        while s2.client_count() == 0 {
            loop_core::yield_now().await;
        }
        let waits: Vec<_> = (0..3)
            .map(|_| {
                let s = s2.clone();
                lp2.create_task(async move { s.wait_closed().await })
            })
            .collect::<Result<_, _>>()?;
        for _ in 0..5 {
            loop_core::yield_now().await;
        }
        let before_close = waits.iter().any(|t| t.done());
        s2.close();
        for _ in 0..5 {
            loop_core::yield_now().await;
        }
        let after_close = waits.iter().any(|t| t.done());
        Ok::<_, Error>((before_close, after_close, waits))
    })
    .unwrap();
    assert!(!done.0, "not closed yet");
    assert!(!done.1, "a client is still connected");
    drop(c);
    let waits = done.2;
    run(&lp, 10, async move {
        for w in waits {
            w.await??;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // Afterwards it returns at once.
    let s2 = s.clone();
    run(&lp, 10, async move { s2.wait_closed().await }).unwrap();
}

#[test]
fn net_44_close_clients_and_abort_clients() {
    let _s = serial();
    for abort in [false, true] {
        let lp = EventLoop::new().unwrap();
        let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
        let addr = s.local_addrs()[0].as_inet().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        let s2 = s.clone();
        run(&lp, 10, async move {
            while s2.client_count() == 0 {
                loop_core::yield_now().await;
            }
            s2.close();
            if abort {
                s2.abort_clients();
            } else {
                s2.close_clients();
            }
            s2.wait_closed().await
        })
        .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            c.read(&mut buf).unwrap(),
            0,
            "the server closed the connection"
        );
    }
}

#[test]
fn net_43_a_client_leaving_an_open_server_does_not_release_wait_closed() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
    let addr = s.local_addrs()[0].as_inet().unwrap();
    let c = TcpStream::connect(addr).unwrap();
    let lp2 = lp.clone();
    let s2 = s.clone();
    let waits = run(&lp, 10, async move {
        while s2.client_count() == 0 {
            loop_core::yield_now().await;
        }
        let waits: Vec<_> = (0..2)
            .map(|_| {
                let s = s2.clone();
                lp2.create_task(async move { s.wait_closed().await })
            })
            .collect::<Result<_, _>>()?;
        Ok::<_, Error>(waits)
    })
    .unwrap();
    // The client leaves while the server is still open.
    drop(c);
    let s2 = s.clone();
    let waits = run(&lp, 10, async move {
        while s2.client_count() > 0 {
            loop_core::yield_now().await;
        }
        for _ in 0..5 {
            loop_core::yield_now().await;
        }
        waits
    });
    assert!(s.is_serving());
    assert!(
        waits.iter().all(|t| !t.done()),
        "no client left, but the server is open: still waiting"
    );
    // Then close: both waiters are released together.
    s.close();
    run(&lp, 10, async move {
        for w in waits {
            w.await??;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Byte `i` of the stream a server writes in the NET-44 test.
fn nth_byte(i: usize) -> u8 {
    (i * 31 % 251) as u8
}

#[test]
fn net_44_close_clients_flushes_buffered_data_and_abort_clients_discards_it() {
    let _s = serial();
    for abort in [false, true] {
        let lp = EventLoop::new().unwrap();
        let transports: Rc<std::cell::RefCell<Vec<Transport>>> = Rc::default();
        let t2 = transports.clone();
        let s = run(
            &lp,
            10,
            lp.create_server(
                move || Keep(t2.clone()),
                "127.0.0.1",
                0,
                ServerOptions::new(),
            ),
        )
        .unwrap();
        let addr = s.local_addrs()[0].as_inet().unwrap();
        let c = TcpStream::connect(addr).unwrap();
        // The peer does not read yet: the server's writes pile up in its transport.
        let s2 = s.clone();
        let tr = transports.clone();
        let (written, discarded) = run(&lp, 30, async move {
            while tr.borrow().is_empty() {
                loop_core::yield_now().await;
            }
            let t = tr.borrow()[0].clone();
            let mut written = 0;
            while t.get_write_buffer_size() < 256 * 1024 {
                let chunk: Vec<u8> = (written..written + 64 * 1024).map(nth_byte).collect();
                t.write(&chunk).unwrap();
                written += chunk.len();
            }
            let buffered = t.get_write_buffer_size();
            s2.close();
            if abort {
                s2.abort_clients();
            } else {
                s2.close_clients();
            }
            (written, buffered)
        });
        // Now the peer reads everything, up to EOF, while the loop runs.
        let reader = std::thread::spawn(move || {
            let mut c = c;
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            got
        });
        let s2 = s.clone();
        run(&lp, 30, async move { s2.wait_closed().await }).unwrap();
        let got = reader.join().unwrap();
        let expect = if abort { written - discarded } else { written };
        assert_eq!(
            got.len(),
            expect,
            "abort={abort}: {written} written, {discarded} buffered in the transport"
        );
        assert!(
            got.iter().enumerate().all(|(i, &b)| b == nth_byte(i)),
            "the bytes arrive in order"
        );
        assert_eq!(s.client_count(), 0);
    }
}

#[test]
fn net_45_get_loop_and_start_after_close() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
    assert!(s.get_loop().unwrap().ptr_eq(&lp));
    s.close();
    let s2 = s.clone();
    let err = run(&lp, 10, async move { s2.start_serving().await }).unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
}

/// NET-42: the errors of `serve_forever` name the server by its sockets, as its `Debug` does.
#[test]
fn net_42_serve_forever_errors_name_the_server_by_its_sockets() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let s = server(&lp, "127.0.0.1", 0, ServerOptions::new());
    let fd = s.sockets()[0].fileno().unwrap();
    let port = port_of(&s);
    let described = format!("<Server sockets=[fd={fd} 127.0.0.1:{port}]>");
    assert_eq!(format!("{s:?}"), described);
    let s2 = s.clone();
    let lp2 = lp.clone();
    let second = run(&lp, 10, async move {
        let a = s2.clone();
        let first = lp2.create_task(async move { a.serve_forever().await })?;
        loop_core::yield_now().await;
        let second = s2.serve_forever().await.unwrap_err();
        first.cancel();
        Ok::<_, Error>(second)
    })
    .unwrap();
    assert_eq!(
        second.to_string(),
        format!("server {described} is already being awaited on serve_forever()")
    );
    s.close();
    assert_eq!(format!("{s:?}"), "<Server sockets=[]>");
}
