//! Interoperability with CPython's `ssl` module (OpenSSL) over real loopback TCP: the engine as
//! a client of an asyncio TLS echo server, and as a server for a Python `ssl` client. Each
//! moves 16 MiB each way, compares the bytes and ends with `close_notify` both ways. Skipped,
//! with a message, only when `python3` is not installed.

mod common;

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use loop_testkit::{Peer as PyChild, TempDir};
use loop_tls::{Eof, SslContext, TlsEngine, TlsVersion};

const TOTAL: usize = 16 * 1024 * 1024;
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs the engine over a non-blocking socket until it reports `close` (or fails).
/// `app` plays the application protocol after every turn.
fn drive(sock: &mut TcpStream, peer: &mut Peer, mut app: impl FnMut(&mut Peer)) {
    sock.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut out: Vec<u8> = Vec::new();
    let mut off = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    loop {
        assert!(start.elapsed() < DEADLINE, "no end after {DEADLINE:?}");
        assert!(peer.error.is_none(), "TLS failed: {:?}", peer.error);
        app(peer);
        let mut progress = false;
        if off == out.len() {
            out.clear();
            off = 0;
            if peer.engine.take_ciphertext_into(&mut out) > 0 {
                progress = true;
            }
            peer.note_buffer();
        }
        while off < out.len() {
            match sock.write(&out[off..]) {
                Ok(n) => {
                    off += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        if peer.close && off == out.len() && !peer.engine.has_ciphertext() {
            return;
        }
        if !eof {
            match sock.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    progress = true;
                    let r = peer.engine.on_transport_eof();
                    peer.apply(r);
                }
                Ok(n) => {
                    progress = true;
                    let r = peer.engine.feed_ciphertext(&buf[..n]);
                    peer.apply(r);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

const ASYNCIO_ECHO_SERVER: &str = include_str!("python/asyncio_echo_server.py");

#[test]
fn tls_interop_engine_client_against_cpython_asyncio_server() {
    let _w = loop_testkit::watchdog();
    let Some(py) = loop_testkit::python3() else {
        return;
    };
    let dir = TempDir::new("tls-interop-client");
    let ca = Ca::new("interop CA");
    let leaf = ca.issue(&["localhost"]);
    let cert = dir.write("cert.pem", &leaf.chain_pem);
    let key = dir.write("key.pem", &leaf.key_pem);
    let script = dir.write("server.py", ASYNCIO_ECHO_SERVER);
    let (child, mut stdout) = PyChild::spawn(py, &[&script, &cert, &key]);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from python: {line:?}"));

    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    let mut peer = Peer::new(client);
    let r = peer.engine.start_handshake();
    peer.apply(r);
    let data = pattern(TOTAL, 9);
    let mut sent = 0;
    let mut closing = false;
    drive(&mut sock, &mut peer, |p| {
        // pause_writing at 512 KiB, as the transport's water marks will do.
        while p.handshake_complete && sent < TOTAL && p.engine.buffer_size() < 512 * 1024 {
            let n = (TOTAL - sent).min(128 * 1024);
            p.write(&data[sent..sent + n]);
            sent += n;
        }
        if p.received.len() == TOTAL && !closing {
            closing = true;
            let r = p.engine.begin_shutdown();
            p.apply(r);
        }
    });
    assert!(peer.received == data, "the echo differs from what was sent");
    assert!(peer.max_buffer > 64 * 1024);
    assert_eq!(peer.engine.buffer_size(), 0);
    assert_eq!(
        peer.eof,
        Some(Eof::CloseNotify),
        "asyncio must answer with close_notify"
    );
    drop(sock);
    let (out, err) = child.finish(&mut stdout, || {
        std::thread::sleep(Duration::from_millis(10))
    });
    // The server saw the SNI name the engine sent.
    assert_eq!(out.trim(), format!("OK {TOTAL} TLSv1.3 localhost"), "{err}");
}

const SSL_CLIENT: &str = r#"
import socket, ssl, sys, hashlib

port, cafile, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["x-echo"])
raw = socket.create_connection(("127.0.0.1", port), timeout=60)
tls = ctx.wrap_socket(raw, server_hostname="localhost")
chunk = bytes(range(256)) * 1024  # 256 KiB
sent = hashlib.sha256()
got = hashlib.sha256()
received = 0
while received < total:
    tls.sendall(chunk)
    sent.update(chunk)
    want = received + len(chunk)
    while received < want:
        data = tls.recv(65536)
        if not data:
            raise SystemExit(f"EOF after {received} bytes")
        got.update(data)
        received += len(data)
assert sent.digest() == got.digest(), "echo differs"
info = f"{tls.version()} {tls.selected_alpn_protocol()}"
# Sends close_notify and waits for the server's.
raw = tls.unwrap()
raw.close()
print(f"OK {received} {info}", flush=True)
"#;

#[test]
fn tls_interop_engine_server_against_cpython_ssl_client() {
    let _w = loop_testkit::watchdog();
    engine_server_against_python(TlsVersion::Tls13);
}

#[test]
fn tls12_interop_engine_server_against_cpython_ssl_client() {
    let _w = loop_testkit::watchdog();
    engine_server_against_python(TlsVersion::Tls12);
}

fn engine_server_against_python(max: TlsVersion) {
    let Some(py) = loop_testkit::python3() else {
        return;
    };
    let dir = TempDir::new(&format!("tls-interop-server-{max}"));
    let ca = Ca::new("interop CA");
    let leaf = ca.issue(&["localhost"]);
    let ca_file = dir.write("ca.pem", &ca.pem());
    let script = dir.write("client.py", SSL_CLIENT);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (mut child, mut stdout) =
        PyChild::spawn(py, &[&script, &port, &ca_file, &TOTAL.to_string()]);

    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut sock = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                child.assert_running("connecting");
                assert!(start.elapsed() < DEADLINE, "python never connected");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    let ctx = SslContext::server()
        .cert_chain_pem(leaf.chain_pem.as_bytes())
        .unwrap()
        .private_key_pem(leaf.key_pem.as_bytes())
        .unwrap()
        .alpn_protocols(["x-echo"])
        .maximum_version(max)
        .build()
        .unwrap();
    let mut peer = Peer::new(TlsEngine::server(&ctx).unwrap());
    let r = peer.engine.start_handshake();
    peer.apply(r);
    let mut echoed = 0;
    drive(&mut sock, &mut peer, |p| {
        if p.received.len() > echoed {
            let fresh = p.received[echoed..].to_vec();
            echoed = p.received.len();
            if p.engine.write_plaintext(&fresh).is_ok() {
                p.note_buffer();
            }
        }
    });
    assert_eq!(peer.received.len(), TOTAL);
    assert_eq!(
        peer.eof,
        Some(Eof::CloseNotify),
        "the client's unwrap sends close_notify"
    );
    assert_eq!(peer.engine.sni_name(), Some("localhost"));
    assert_eq!(peer.engine.alpn_protocol(), Some(&b"x-echo"[..]));
    assert_eq!(peer.engine.buffer_size(), 0);
    drop(sock);
    // unwrap() returned only because the engine answered with its own close_notify.
    let (out, err) = child.finish(&mut stdout, || {
        std::thread::sleep(Duration::from_millis(10))
    });
    assert_eq!(out.trim(), format!("OK {TOTAL} {max} x-echo"), "{err}");
}
