//! TLS on real loopback sockets, after CPython's `test_asyncio/test_ssl.py` and
//! `test_sslproto.py`: `ssl=` on create_connection / create_server and their Unix and streams
//! variants, start_tls on both sides, close_notify and plain EOF, abort, flow control, ALPN,
//! SNI and the extra info, closing the loop. The failures are in `tls_failures.rs`.
//! Certificates are made at test time.

mod tls_common;

use std::net::TcpStream;

use evloop::prelude::*;
use evloop::tls::{tls_info, SslContext, TlsOptions, TlsStreamExt, TlsVersion};
use evloop::transport::{Extra, Transport};
use loop_testkit::{exclusive, fd_count, record_exceptions, run, watchdog};
use tls_common::*;

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
    close_server(&lp, server);
    assert_eq!(fd_count(), baseline, "every socket closed");
    errs.assert_none();
}

#[test]
fn tls_01_open_connection_and_start_server_move_a_mebibyte_each_way() {
    let _w = watchdog();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let o = ServerOptions::new().ssl(p.server.clone());
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
        let o = ConnectOptions::new()
            .ssl(client)
            .server_hostname("localhost");
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
    close_server(&lp, server);
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
    close_server(&lp, server);
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
    close_server(&lp, server);
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
    let o = ServerOptions::new().ssl(p.server.clone());
    let server = serve(&lp, rec, o).unwrap();
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
    close_server(&lp, server);
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
            ServerOptions::new(),
        ),
    )
    .unwrap();
    let port = port_of(&server);
    let lp2 = lp.clone();
    let client = p.client.clone();
    let reply = run(&lp, 30, async move {
        let (mut r, mut w) = lp2
            .open_connection("127.0.0.1", port, ConnectOptions::new())
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
    close_server(&lp, server);
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
    let o = ServerOptions::new().ssl(p.server.clone());
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
            &path,
            o,
        ),
    )
    .unwrap();
    let lp2 = lp.clone();
    let client = p.client.clone();
    let path2 = path.clone();
    let reply = run(&lp, 30, async move {
        let o = ConnectOptions::new().ssl(client.clone());
        let err = lp2
            .open_unix_connection(&path2, o)
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("you have to pass server_hostname when using ssl"),
            "{err}"
        );
        let o = ConnectOptions::new()
            .ssl(client)
            .server_hostname("localhost");
        let (mut r, w) = lp2.open_unix_connection(&path2, o).await?;
        let info = tls_info(w.transport()).unwrap();
        assert_eq!(info.version, Some(TlsVersion::Tls13));
        w.write(b"over a unix socket\n")?;
        let reply = r.read_all().await?;
        w.close();
        Ok::<_, evloop::Error>(reply)
    })
    .unwrap();
    assert_eq!(reply, b"OVER A UNIX SOCKET\n");
    close_server(&lp, server);
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
    close_server(&lp, server);
    errs.assert_none();
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
    close_server(&lp, server);
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
    let o = ServerOptions::new().ssl(p.server.clone());
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
    close_server(&lp, server);
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
