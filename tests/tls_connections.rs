//! TLS on real loopback sockets, after CPython's `test_asyncio/test_ssl.py` and
//! `test_sslproto.py`: `ssl=` on create_connection / create_server and their Unix and streams
//! variants, start_tls on both sides, the failures (unknown CA, name mismatch, handshake and
//! shutdown timeouts, a peer lost mid-handshake, corrupted records), close_notify and plain
//! EOF, flow control, ALPN, SNI and the extra info. Certificates are made at test time.

mod tls_common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use evloop::prelude::*;
use evloop::tls::{tls_info, SslContext, TlsOptions, TlsStreamExt, TlsVersion};
use evloop::transport::{Extra, Transport};
use loop_testkit::{exclusive, fd_count, record_exceptions, run, watchdog};
use tls_common::*;

fn tls_server(lp: &EventLoop, ctx: &SslContext, echo: bool) -> (evloop::net::Server, State) {
    let (_rec, st) = Rec::new(echo);
    let shared = st.clone();
    let o = ServerOptions {
        ssl: Some(ctx.clone()),
        ..Default::default()
    };
    // Every connection records into the same state.
    let factory = move || Rec {
        st: shared.clone(),
        echo,
        paused: false,
    };
    let server = run(lp, 30, lp.create_server(factory, "127.0.0.1", 0, o)).unwrap();
    (server, st)
}

fn connect_opts(ctx: &SslContext, name: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        ssl: Some(ctx.clone()),
        server_hostname: name.map(str::to_owned),
        ..Default::default()
    }
}

fn tls_connect(lp: &EventLoop, port: u16, o: ConnectOptions) -> evloop::Result<(Transport, State)> {
    let (rec, st) = Rec::new(false);
    run(
        lp,
        30,
        lp.create_connection(move || rec, "127.0.0.1", port, o),
    )
    .map(|(t, _p)| (t, st))
}

#[test]
fn tls_01_02_03_04_create_connection_to_create_server_echo_extra_info_and_close_notify() {
    let _x = exclusive();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let baseline = fd_count();
    let (server, sst) = tls_server(&lp, &p.server, true);
    let port = port_of(&server);
    let (t, cst) = tls_connect(&lp, port, connect_opts(&p.client, Some("localhost"))).unwrap();
    assert_eq!(
        events(&cst),
        [Ev::Made],
        "connection_made before the call returns"
    );
    assert!(t.is_layered());
    t.write(b"hello over TLS").unwrap();
    until(&lp, 30, || cst.borrow().data.len() == 14);
    assert_eq!(cst.borrow().data, b"hello over TLS");

    // Extra info on the client: what was negotiated, and the socket's keys passed through.
    let info = tls_info(&t).unwrap();
    assert!(!info.server_side);
    assert_eq!(info.server_hostname.as_deref(), Some("localhost"));
    assert_eq!(info.version, Some(TlsVersion::Tls13));
    assert!(
        info.cipher.unwrap().starts_with("TLS13_"),
        "{:?}",
        info.cipher
    );
    assert_eq!(info.peer_certificates.len(), 1);
    assert!(t.get_extra_info(Extra::Custom("sslcontext")).is_some());
    assert!(t.get_extra_info(Extra::Custom("peercert")).is_some());
    let cipher = t.get_extra_info(Extra::Custom("cipher")).unwrap();
    assert_eq!(cipher.downcast_ref::<&str>(), info.cipher.as_ref());
    assert!(t.get_extra_info(Extra::Custom("compression")).is_none());
    assert_eq!(
        t.peername().unwrap().as_inet().unwrap().port(),
        port,
        "peername is the socket's"
    );
    assert!(t.socket().is_some());
    // The server saw the SNI name; a client without a certificate shows none.
    let sinfo = sst.borrow().info.clone().unwrap();
    assert!(sinfo.server_side);
    assert_eq!(sinfo.sni.as_deref(), Some("localhost"));
    assert!(sinfo.peer_certificates.is_empty());

    // write_eof is refused: TLS has no half-close.
    assert!(!t.can_write_eof());
    let e = t.write_eof().unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");

    // close(): close_notify out, the server's back, then connection_lost(None) on both.
    t.close();
    assert!(t.is_closing());
    until(&lp, 30, || lost(&cst) && lost(&sst));
    assert_eq!(
        events(&sst),
        [
            Ev::Made,
            Ev::Eof { close_notify: true },
            Ev::Lost {
                err: None,
                close_notify: true
            }
        ]
    );
    assert_eq!(
        events(&cst).last(),
        Some(&Ev::Lost {
            err: None,
            close_notify: true
        })
    );
    loop_testkit::spin(&lp, 3);
    assert_eq!(lp.stats().timers_pending, 0, "no timer left behind");
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    assert_eq!(fd_count(), baseline, "every socket closed");
    errs.assert_none();
}

#[test]
fn tls_01_open_connection_and_start_server_move_a_mebibyte_each_way() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ..Default::default()
    };
    let server = run(
        &lp,
        30,
        lp.start_server(
            |mut r: evloop::transport::StreamReader, w: evloop::transport::StreamWriter| async move {
                loop {
                    let chunk = r.read(64 * 1024).await?;
                    if chunk.is_empty() {
                        break;
                    }
                    w.write(&chunk)?;
                    w.drain().await?;
                }
                w.close();
                w.wait_closed().await
            },
            "127.0.0.1",
            0,
            o,
        ),
    )
    .unwrap();
    let port = port_of(&server);
    let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let sent = payload.clone();
    let lp2 = lp.clone();
    let client = p.client.clone();
    let got = run(&lp, 60, async move {
        let o = ConnectOptions {
            ssl: Some(client),
            server_hostname: Some("localhost".into()),
            ..Default::default()
        };
        let (mut r, w) = lp2.open_connection("127.0.0.1", port, o).await?;
        assert!(tls_info(w.transport()).is_some());
        w.write(&sent)?;
        w.drain().await?;
        let got = r.readexactly(sent.len()).await?;
        w.close();
        w.wait_closed().await?;
        Ok::<_, evloop::Error>(got)
    })
    .unwrap();
    assert!(got == payload, "the echo differs");
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_06_handshake_failure_on_an_unknown_ca_leaves_nothing_behind() {
    let _x = exclusive();
    let p = pki();
    let other = Ca::new("some other CA");
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let baseline = fd_count();
    let (server, sst) = tls_server(&lp, &p.server, true);
    let port = port_of(&server);
    let err = tls_connect(
        &lp,
        port,
        connect_opts(&client_ctx(&other), Some("localhost")),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(err.to_string().contains("unknown CA"), "{err}");
    let io = io::Error::from(err);
    assert_eq!(io.kind(), io::ErrorKind::InvalidData);
    // The server's side failed too (the client's alert): its protocol never saw anything.
    until(&lp, 30, || server.client_count() == 0);
    assert!(sst.borrow().log.is_empty(), "{:?}", sst.borrow().log);
    assert_eq!(lp.stats().timers_pending, 0, "no handshake timer left");
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    assert_eq!(fd_count(), baseline);
    // TLS failures are OS-level errors, as in asyncio: not reported to the handler.
    errs.assert_none();
}

#[test]
fn tls_07_handshake_failure_on_a_name_mismatch_names_the_name() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let (server, _sst) = tls_server(&lp, &p.server, true);
    let port = port_of(&server);
    let err = tls_connect(&lp, port, connect_opts(&p.client, Some("wrong.example")))
        .map(|_| ())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("wrong.example"), "{text}");
    assert!(text.contains("localhost"), "the names presented: {text}");
    // An empty name turns hostname checking off, which the context must allow.
    let err = tls_connect(&lp, port, connect_opts(&p.client, Some("")))
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("server_hostname"), "{err}");
    let unchecked = SslContext::client()
        .root_certificates_pem(p.ca.pem().as_bytes())
        .unwrap()
        .check_hostname(false)
        .build()
        .unwrap();
    let (t, _) = tls_connect(&lp, port, connect_opts(&unchecked, Some(""))).unwrap();
    t.abort();
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
}

#[test]
fn tls_08_handshake_timeout_aborts_both_sides_with_asyncios_message() {
    let _x = exclusive();
    let p = pki();
    // Client side: a listener that never answers (the kernel completes the connection).
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let baseline = fd_count();
    let errs = record_exceptions(&lp);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let start = lp.time();
    let err = tls_connect(&lp, port, connect_opts(&p.client, Some("localhost")))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SSL handshake is taking longer than 60.0 seconds: aborting the connection"
    );
    assert_eq!(
        io::Error::from(err).kind(),
        io::ErrorKind::ConnectionAborted
    );
    assert!(lp.time() - start >= 60.0, "the default is 60 s");
    let mut o = connect_opts(&p.client, Some("localhost"));
    o.ssl_handshake_timeout = Some(Duration::from_secs(5));
    let start = lp.time();
    let err = tls_connect(&lp, port, o).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("5.0 seconds"), "{err}");
    assert!(lp.time() - start < 60.0);
    assert_eq!(lp.stats().timers_pending, 0);
    drop(silent);

    // Server side: a client that connects and sends nothing is dropped after the timeout.
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ssl_handshake_timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (rec, sst) = Rec::new(false);
    let mut rec = Some(rec);
    let server = run(
        &lp,
        30,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .unwrap();
    let mut mute = TcpStream::connect(("127.0.0.1", port_of(&server))).unwrap();
    until(&lp, 30, || server.client_count() == 1);
    until_virtual(&lp, || server.client_count() == 0);
    mute.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = mute.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "aborted without a TLS alert");
    assert!(sst.borrow().log.is_empty());
    assert_eq!(lp.stats().timers_pending, 0);
    drop(mute);
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    assert_eq!(fd_count(), baseline);
    errs.assert_none();
}

#[test]
fn tls_09_connection_lost_mid_handshake_fails_the_call() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).unwrap(); // the ClientHello's record header
        assert_eq!(hello[0], 22, "a handshake record");
        let mut rest = vec![0u8; u16::from_be_bytes([hello[3], hello[4]]) as usize];
        s.read_exact(&mut rest).unwrap();
        // Gone, with a FIN, before answering.
    });
    let err = tls_connect(&lp, port, connect_opts(&p.client, Some("localhost")))
        .map(|_| ())
        .unwrap_err();
    peer.join().unwrap();
    assert!(
        err.to_string()
            .contains("closed by the peer during the TLS handshake"),
        "{err}"
    );
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(lp.stats().timers_pending, 0);
    errs.assert_none();
}

#[test]
fn tls_10_corrupted_records_end_the_connection_on_either_side() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    // The client gets plain text instead of a ServerHello.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        let _ = s.read(&mut buf); // until the client closes
    });
    let err = tls_connect(&lp, port, connect_opts(&p.client, Some("localhost")))
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("corrupted TLS record"), "{err}");
    peer.join().unwrap();

    // The server gets garbage: the connection is closed, its protocol never hears of it.
    let (server, sst) = tls_server(&lp, &p.server, true);
    let mut raw = TcpStream::connect(("127.0.0.1", port_of(&server))).unwrap();
    raw.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    until(&lp, 30, || server.client_count() == 1);
    until(&lp, 30, || server.client_count() == 0);
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || rest[0] == 0x15,
        "nothing, or a TLS alert record: {rest:?}"
    );
    assert!(sst.borrow().log.is_empty());
    assert_eq!(lp.stats().timers_pending, 0);
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_11_shutdown_timeout_when_the_peer_never_answers_close_notify() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let errs = record_exceptions(&lp);
    // The server's application pauses reading: the client's close_notify is never read.
    let (mut rec, sst) = Rec::new(false);
    rec.paused = true;
    let mut rec = Some(rec);
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ..Default::default()
    };
    let server = run(
        &lp,
        30,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .unwrap();
    let mut o = connect_opts(&p.client, Some("localhost"));
    o.ssl_shutdown_timeout = Some(Duration::from_secs(3));
    let (t, cst) = tls_connect(&lp, port_of(&server), o).unwrap();
    until(&lp, 30, || sst.borrow().log.contains(&Ev::Made));
    let start = lp.time();
    t.close();
    until_virtual(&lp, || lost(&cst));
    assert!(lp.time() - start >= 3.0);
    let last = events(&cst).last().cloned().unwrap();
    let Ev::Lost {
        err: Some((kind, text)),
        ..
    } = last
    else {
        panic!("{last:?}")
    };
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert_eq!(text, "SSL shutdown timed out");
    assert_eq!(lp.stats().timers_pending, 0);
    // The server side sees the abort as a plain end of file once it reads again.
    sst.borrow().transport.clone().unwrap().resume_reading();
    until(&lp, 30, || lost(&sst));
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_04_data_written_before_close_is_delivered_before_close_notify() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (server, sst) = tls_server(&lp, &p.server, false);
    let (t, cst) = tls_connect(
        &lp,
        port_of(&server),
        connect_opts(&p.client, Some("localhost")),
    )
    .unwrap();
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    t.write(&big).unwrap();
    assert!(
        t.get_write_buffer_size() > 0,
        "buffered in the TLS transport"
    );
    t.close();
    t.write(b"dropped").unwrap(); // after close: dropped, as asyncio does
    until(&lp, 60, || lost(&sst) && lost(&cst));
    assert!(sst.borrow().data == big, "every byte, in order");
    assert_eq!(
        events(&sst),
        [
            Ev::Made,
            Ev::Eof { close_notify: true },
            Ev::Lost {
                err: None,
                close_notify: true
            }
        ]
    );
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_05_eof_without_close_notify_is_a_plain_eof() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (server, sst) = tls_server(&lp, &p.server, false);
    let (t, cst) = tls_connect(
        &lp,
        port_of(&server),
        connect_opts(&p.client, Some("localhost")),
    )
    .unwrap();
    t.write(b"last words").unwrap();
    until(&lp, 30, || sst.borrow().data.len() == 10);
    // A TCP FIN without close_notify (a truncating peer, or one that does not bother).
    rustix::net::shutdown(t.socket().unwrap(), rustix::net::Shutdown::Write).unwrap();
    until(&lp, 30, || lost(&sst) && lost(&cst));
    assert_eq!(
        events(&sst),
        [
            Ev::Made,
            Ev::Eof {
                close_notify: false
            },
            Ev::Lost {
                err: None,
                close_notify: false
            }
        ]
    );
    // The server closed after that end of file, again without close_notify.
    assert_eq!(
        events(&cst),
        [
            Ev::Made,
            Ev::Eof {
                close_notify: false
            },
            Ev::Lost {
                err: None,
                close_notify: false
            }
        ]
    );
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_12_flow_control_pause_and_resume_writing_and_reading() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (mut rec, sst) = Rec::new(false);
    rec.paused = true;
    let mut rec = Some(rec);
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ..Default::default()
    };
    let server = run(
        &lp,
        30,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .unwrap();
    let (t, cst) = tls_connect(
        &lp,
        port_of(&server),
        connect_opts(&p.client, Some("localhost")),
    )
    .unwrap();
    assert_eq!(t.get_write_buffer_limits(), (128 * 1024, 512 * 1024));
    until(&lp, 30, || sst.borrow().transport.is_some());
    let st = sst.borrow().transport.clone().unwrap();
    assert!(!st.is_reading(), "paused in connection_made");
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while !cst.borrow().log.contains(&Ev::Pause) {
        t.write(&chunk).unwrap();
        sent += chunk.len();
        loop_testkit::run_once(&lp);
        assert!(sent < 256 * 1024 * 1024, "pause_writing never came");
    }
    assert!(t.get_write_buffer_size() > 512 * 1024);
    assert!(
        sst.borrow().data.is_empty(),
        "nothing delivered while paused"
    );
    st.resume_reading();
    assert!(st.is_reading());
    until(&lp, 60, || cst.borrow().log.contains(&Ev::Resume));
    until(&lp, 60, || sst.borrow().data.len() == sent);
    t.close();
    until(&lp, 30, || lost(&cst) && lost(&sst));
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_13_start_tls_on_client_and_server_streams() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let server_ctx = p.server.clone();
    let server = run(
        &lp,
        30,
        lp.start_server(
            move |mut r: evloop::transport::StreamReader,
                  mut w: evloop::transport::StreamWriter| {
                let ctx = server_ctx.clone();
                async move {
                    assert_eq!(r.readline().await?, b"STARTTLS\n");
                    w.write(b"GO AHEAD\n")?;
                    w.start_tls(&ctx, TlsOptions::new()).await?;
                    let line = r.readline().await?;
                    let info = tls_info(w.transport()).expect("TLS now");
                    let reply = format!(
                        "secret was {} sni={}\n",
                        String::from_utf8_lossy(&line).trim(),
                        info.sni.unwrap_or_default()
                    );
                    w.write(reply.as_bytes())?;
                    w.drain().await?;
                    w.close();
                    w.wait_closed().await
                }
            },
            "127.0.0.1",
            0,
            ServerOptions::default(),
        ),
    )
    .unwrap();
    let port = port_of(&server);
    let lp2 = lp.clone();
    let client = p.client.clone();
    let reply = run(&lp, 30, async move {
        let (mut r, mut w) = lp2
            .open_connection("127.0.0.1", port, ConnectOptions::default())
            .await?;
        assert!(tls_info(w.transport()).is_none(), "plain at first");
        w.write(b"STARTTLS\n")?;
        assert_eq!(r.readline().await?, b"GO AHEAD\n");
        w.start_tls(&client, TlsOptions::new().server_hostname("localhost"))
            .await?;
        assert!(w.transport().is_layered());
        w.write(b"swordfish\n")?;
        let reply = r.readline().await?;
        let rest = r.read_all().await?;
        assert!(rest.is_empty());
        w.close();
        w.wait_closed().await?;
        Ok::<_, evloop::Error>(reply)
    })
    .unwrap();
    assert_eq!(reply, b"secret was swordfish sni=localhost\n");
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_13_start_tls_with_protocols_and_its_errors() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (ra, _sa) = Rec::new(false);
    let (rb, _sb) = Rec::new(false);
    let ta = Transport::new(&lp, a, ra, evloop::transport::TransportOptions::socket()).unwrap();
    let tb = Transport::new(&lp, b, rb, evloop::transport::TransportOptions::socket()).unwrap();
    loop_testkit::spin(&lp, 2);
    let (app_c, cst) = Rec::new(false);
    let (app_s, sst) = Rec::new(false);
    let client = lp.start_tls(
        &ta,
        app_c,
        &p.client,
        TlsOptions::new().server_hostname("localhost"),
    );
    let server = lp.start_tls(&tb, app_s, &p.server, TlsOptions::new());
    let lp2 = lp.clone();
    let (tc, ts) = run(&lp, 30, async move {
        let s = lp2.create_task(server)?;
        let c = client.await?;
        let s = s.await?;
        Ok::<_, evloop::Error>((c, s))
    })
    .unwrap();
    let (tc, pc) = tc;
    assert!(
        pc.with(|r| r.echo).is_some(),
        "the ProtocolRef reaches the app"
    );
    assert!(
        cst.borrow().log.is_empty() && sst.borrow().log.is_empty(),
        "start_tls does not call connection_made, as in asyncio"
    );
    let (ts, _ps) = ts.unwrap();
    tc.write(b"ping").unwrap();
    until(&lp, 30, || sst.borrow().data == b"ping");
    ts.write(b"pong").unwrap();
    until(&lp, 30, || cst.borrow().data == b"pong");
    assert!(tls_info(&ts).unwrap().server_side);
    // A closing transport cannot be upgraded; a client needs a name unless names go unchecked.
    tc.close();
    until(&lp, 30, || lost(&cst));
    let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
    let (rc, _) = Rec::new(false);
    let tcl = Transport::new(&lp, c, rc, evloop::transport::TransportOptions::socket()).unwrap();
    let (app, _) = Rec::new(false);
    let fut = lp.start_tls(&tcl, app, &p.client, TlsOptions::new());
    let err = run(&lp, 10, fut).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("server_hostname"), "{err}");
    tcl.close();
    let (app, _) = Rec::new(false);
    let fut = lp.start_tls(&tcl, app, &p.client, TlsOptions::new().server_hostname("x"));
    let err = run(&lp, 10, fut).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("closing"), "{err}");
    loop_testkit::spin(&lp, 3);
    errs.assert_none();
}

#[test]
fn tls_14_over_unix_sockets() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let path = std::env::temp_dir().join(format!("evloop-tls-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ..Default::default()
    };
    let server = run(
        &lp,
        30,
        lp.start_unix_server(
            |mut r: evloop::transport::StreamReader, w: evloop::transport::StreamWriter| async move {
                let line = r.readline().await?;
                w.write(&line.to_ascii_uppercase())?;
                w.close();
                w.wait_closed().await
            },
            Some(&path),
            o,
        ),
    )
    .unwrap();
    let lp2 = lp.clone();
    let client = p.client.clone();
    let path2 = path.clone();
    let reply = run(&lp, 30, async move {
        let o = ConnectOptions {
            ssl: Some(client.clone()),
            ..Default::default()
        };
        let err = lp2
            .open_unix_connection(Some(&path2), o)
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("you have to pass server_hostname when using ssl"),
            "{err}"
        );
        let o = ConnectOptions {
            ssl: Some(client),
            server_hostname: Some("localhost".into()),
            ..Default::default()
        };
        let (mut r, w) = lp2.open_unix_connection(Some(&path2), o).await?;
        let info = tls_info(w.transport()).unwrap();
        assert_eq!(info.version, Some(TlsVersion::Tls13));
        w.write(b"over a unix socket\n")?;
        let reply = r.read_all().await?;
        w.close();
        Ok::<_, evloop::Error>(reply)
    })
    .unwrap();
    assert_eq!(reply, b"OVER A UNIX SOCKET\n");
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    assert!(!path.exists());
    errs.assert_none();
}

#[test]
fn tls_15_alpn_sni_and_ip_address_names() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let server_ctx = SslContext::server()
        .cert_chain_pem(p.leaf.chain_pem.as_bytes())
        .unwrap()
        .private_key_pem(p.leaf.key_pem.as_bytes())
        .unwrap()
        .alpn_protocols(["h2", "http/1.1"])
        .build()
        .unwrap();
    let client_ctx = SslContext::client()
        .root_certificates_pem(p.ca.pem().as_bytes())
        .unwrap()
        .alpn_protocols(["http/1.1"])
        .build()
        .unwrap();
    let (server, sst) = tls_server(&lp, &server_ctx, false);
    // No server_hostname: the host, an IP address, is checked against the IP SANs and not
    // sent as SNI.
    let (t, _cst) = tls_connect(&lp, port_of(&server), connect_opts(&client_ctx, None)).unwrap();
    let info = tls_info(&t).unwrap();
    assert_eq!(info.alpn_protocol.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(info.server_hostname.as_deref(), Some("127.0.0.1"));
    until(&lp, 30, || sst.borrow().info.is_some());
    let sinfo = sst.borrow().info.clone().unwrap();
    assert_eq!(sinfo.alpn_protocol.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(sinfo.sni, None, "no SNI for an IP address");
    t.close();
    until(&lp, 30, || lost(&sst));
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_16_argument_errors_in_asyncios_words() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let connect = |o: ConnectOptions, host: &str| {
        let (rec, _) = Rec::new(false);
        run(&lp, 10, lp.create_connection(move || rec, host, 1, o))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // sock= with ssl and no name.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let o = ConnectOptions {
        ssl: Some(p.client.clone()),
        sock: Some(OwnedFd::from(a)),
        ..Default::default()
    };
    let (rec, _) = Rec::new(false);
    let err = run(
        &lp,
        10,
        lp.create_connection(move || rec, "", None::<u16>, o),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("You must set server_hostname when using ssl without a host"),
        "{err}"
    );
    let msg = connect(connect_opts(&p.server, None), "127.0.0.1");
    assert!(msg.contains("client-side SslContext"), "{msg}");
    let mut o = connect_opts(&p.client, None);
    o.ssl_handshake_timeout = Some(Duration::ZERO);
    let msg = connect(o, "127.0.0.1");
    assert!(
        msg.contains("ssl_handshake_timeout should be a positive number"),
        "{msg}"
    );
    let o = ServerOptions {
        ssl: Some(p.client.clone()),
        ..Default::default()
    };
    let (rec, _) = Rec::new(false);
    let mut rec = Some(rec);
    let err = run(
        &lp,
        10,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Server side SSL needs a valid SSLContext"),
        "{err}"
    );
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ssl_shutdown_timeout: Some(Duration::ZERO),
        ..Default::default()
    };
    let (rec, _) = Rec::new(false);
    let mut rec = Some(rec);
    let err = run(
        &lp,
        10,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ssl_shutdown_timeout should be a positive number"),
        "{err}"
    );
}

#[test]
fn tls_04_abort_drops_the_buffer_and_ends_the_connection_at_once() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (server, sst) = tls_server(&lp, &p.server, false);
    let (t, cst) = tls_connect(
        &lp,
        port_of(&server),
        connect_opts(&p.client, Some("localhost")),
    )
    .unwrap();
    t.write(&vec![1u8; 4 * 1024 * 1024]).unwrap();
    t.abort();
    assert!(t.is_closing());
    until(&lp, 30, || lost(&cst) && lost(&sst));
    assert_eq!(
        events(&cst),
        [
            Ev::Made,
            Ev::Lost {
                err: None,
                close_notify: false
            }
        ]
    );
    assert!(
        sst.borrow().data.len() < 4 * 1024 * 1024,
        "the buffer was dropped"
    );
    assert!(
        !sst.borrow().log.iter().any(|e| matches!(
            e,
            Ev::Eof { close_notify: true }
                | Ev::Lost {
                    close_notify: true,
                    ..
                }
        )),
        "no close_notify after abort: {:?}",
        sst.borrow().log
    );
    assert_eq!(lp.stats().timers_pending, 0);
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
    errs.assert_none();
}

#[test]
fn tls_01_a_panic_in_the_application_protocol_is_fatal_and_closes_the_connection() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    struct Boom;
    impl evloop::transport::Protocol for Boom {
        fn data_received(&mut self, _: &[u8]) {
            panic!("boom in data_received");
        }
    }
    let o = ServerOptions {
        ssl: Some(p.server.clone()),
        ..Default::default()
    };
    let server = run(&lp, 30, lp.create_server(|| Boom, "127.0.0.1", 0, o)).unwrap();
    let (t, cst) = tls_connect(
        &lp,
        port_of(&server),
        connect_opts(&p.client, Some("localhost")),
    )
    .unwrap();
    t.write(b"trigger").unwrap();
    until(&lp, 30, || lost(&cst));
    until(&lp, 30, || server.client_count() == 0);
    let reports = errs.take();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        reports[0].message,
        "Fatal error: protocol.data_received() call failed."
    );
    server.close();
    run(&lp, 10, async move { server.wait_closed().await }).unwrap();
}

#[test]
fn tls_01_closing_the_loop_with_tls_connections_open_releases_every_fd() {
    let _x = exclusive();
    let p = pki();
    let baseline = fd_count();
    {
        let lp = EventLoop::new().unwrap();
        let (server, _sst) = tls_server(&lp, &p.server, true);
        let (t, _cst) = tls_connect(
            &lp,
            port_of(&server),
            connect_opts(&p.client, Some("localhost")),
        )
        .unwrap();
        // One more connection still in its handshake.
        let _half = TcpStream::connect(("127.0.0.1", port_of(&server))).unwrap();
        until(&lp, 30, || server.client_count() == 2);
        t.write(b"left in flight").unwrap();
        lp.close().unwrap();
        assert!(t.get_loop().is_none(), "torn down with the loop");
    }
    assert_eq!(fd_count(), baseline);
}
