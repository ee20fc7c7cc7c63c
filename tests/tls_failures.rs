//! TLS failures on real loopback sockets, after CPython's `test_asyncio/test_ssl.py` and
//! `test_sslproto.py`: an unknown CA, a name mismatch, the handshake and shutdown timeouts
//! (on a virtual clock, so they take no real time), a peer lost mid-handshake, corrupted
//! records, and asyncio's argument errors. Each ends the connection with an error that says
//! what failed, reports nothing to the exception handler and leaves nothing behind.

mod tls_common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    close_server(&lp, server);
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
    close_server(&lp, server);
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
    let o =
        connect_opts(&p.client, Some("localhost")).ssl_handshake_timeout(Duration::from_secs(5));
    let start = lp.time();
    let err = tls_connect(&lp, port, o).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("5.0 seconds"), "{err}");
    assert!(lp.time() - start < 60.0);
    assert_eq!(lp.stats().timers_pending, 0);
    drop(silent);

    // Server side: a client that connects and sends nothing is dropped after the timeout.
    let o = ServerOptions::new()
        .ssl(p.server.clone())
        .ssl_handshake_timeout(Duration::from_secs(2));
    let (rec, sst) = Rec::new(false);
    let server = serve(&lp, rec, o).unwrap();
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
    close_server(&lp, server);
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
    close_server(&lp, server);
    errs.assert_none();
}

/// A TCP relay between a client and a server that flips one bit of the first client-to-server
/// chunk it forwards after `corrupt` is set: a record corrupted in flight after the handshake.
fn corrupting_relay(server_port: u16, corrupt: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (client, _) = l.accept().unwrap();
        let server = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
        let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let upstream = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n @ 1..) = c_in.read(&mut buf) {
                if corrupt.swap(false, Ordering::SeqCst) {
                    buf[n - 1] ^= 0x01;
                }
                if s_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s_out.shutdown(std::net::Shutdown::Write);
        });
        let (mut s_in, mut c_out) = (server, client);
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = s_in.read(&mut buf) {
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(std::net::Shutdown::Write);
        upstream.join().unwrap();
    });
    port
}

/// TLS-10 after the handshake: a record corrupted in flight between two evloop peers fails its
/// authentication on the server, which ends the connection with an error naming the failure;
/// the corrupted bytes never reach the application, the client's connection ends too, and
/// nothing is left behind.
#[test]
fn tls_10_a_record_corrupted_after_the_handshake_ends_the_connection() {
    let _w = exclusive();
    let base = fd_count();
    let p = pki();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (server, sst) = tls_server(&lp, &p.server, true);
    let corrupt = Arc::new(AtomicBool::new(false));
    let relay = corrupting_relay(port_of(&server), corrupt.clone());
    let (t, cst) = tls_connect(&lp, relay, connect_opts(&p.client, Some("localhost"))).unwrap();
    // One clean exchange first: the handshake is done and data flows through the relay.
    t.write(b"clean").unwrap();
    until(&lp, 30, || cst.borrow().data == b"clean");
    corrupt.store(true, Ordering::SeqCst);
    t.write(b"corrupted in flight").unwrap();
    until(&lp, 30, || lost(&sst) && lost(&cst));
    assert_eq!(
        sst.borrow().data,
        b"clean",
        "the corrupted record reached the app"
    );
    let last = events(&sst).last().cloned().unwrap();
    let Ev::Lost {
        err: Some((_, text)),
        ..
    } = last
    else {
        panic!("the server's connection ended without an error: {last:?}")
    };
    assert!(
        text.to_lowercase().contains("decrypt") || text.to_lowercase().contains("mac"),
        "the error names the failed record: {text}"
    );
    assert_eq!(lp.stats().timers_pending, 0);
    drop(t);
    close_server(&lp, server);
    errs.assert_none();
    lp.close().unwrap();
    drop(lp);
    loop_testkit::eventually(|| fd_count() == base);
    assert_eq!(fd_count(), base, "an fd leaked");
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
    let o = ServerOptions::new().ssl(p.server.clone());
    let server = run(
        &lp,
        30,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .unwrap();
    let o = connect_opts(&p.client, Some("localhost")).ssl_shutdown_timeout(Duration::from_secs(3));
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
    close_server(&lp, server);
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
    let o = ConnectOptions::new().ssl(p.client.clone());
    let (rec, _) = Rec::new(false);
    let err = run(&lp, 10, lp.create_connection_sock(move || rec, a, o))
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("You must set server_hostname when using ssl without a host"),
        "{err}"
    );
    let msg = connect(connect_opts(&p.server, None), "127.0.0.1");
    assert!(msg.contains("client-side SslContext"), "{msg}");
    let o = connect_opts(&p.client, None).ssl_handshake_timeout(Duration::ZERO);
    let msg = connect(o, "127.0.0.1");
    assert!(
        msg.contains("ssl_handshake_timeout should be a positive number"),
        "{msg}"
    );
    let o = ServerOptions::new().ssl(p.client.clone());
    let (rec, _) = Rec::new(false);
    let err = serve(&lp, rec, o).map(|_| ()).unwrap_err();
    assert!(
        err.to_string()
            .contains("Server side SSL needs a valid SSLContext"),
        "{err}"
    );
    let o = ServerOptions::new()
        .ssl(p.server.clone())
        .ssl_shutdown_timeout(Duration::ZERO);
    let (rec, _) = Rec::new(false);
    let err = serve(&lp, rec, o).map(|_| ()).unwrap_err();
    assert!(
        err.to_string()
            .contains("ssl_shutdown_timeout should be a positive number"),
        "{err}"
    );
}
