//! TLS failures on real loopback sockets, after CPython's `test_asyncio/test_ssl.py` and
//! `test_sslproto.py`: an unknown CA, a name mismatch, the handshake and shutdown timeouts
//! (on a virtual clock, so they take no real time), a peer lost mid-handshake, corrupted
//! records, and asyncio's argument errors. Each ends the connection with an error that says
//! what failed, reports nothing to the exception handler and leaves nothing behind.

mod tls_common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use evloop::prelude::*;
use evloop::tls::SslContext;
use loop_testkit::{exclusive, fd_count, record_exceptions, run, watchdog};
use tls_common::*;

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
