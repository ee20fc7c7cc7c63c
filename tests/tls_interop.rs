//! evloop's TLS connections against CPython's `ssl` module (OpenSSL) on loopback, both ways:
//! an evloop client (`create_connection(ssl=...)`) against a CPython asyncio TLS echo server,
//! and a CPython `ssl` client against an evloop TLS server (`create_server(ssl=...)`). 16 MiB
//! go each way with `pause_writing` / `resume_writing` firing, the bytes are compared, and
//! each connection ends with `close_notify` both ways. Skipped, with a message, only when
//! `python3` is not installed. Over Unix sockets, `create_unix_connection` and
//! `create_unix_server` meet asyncio's `start_unix_server` and `open_unix_connection`.

mod tls_common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use evloop::prelude::*;
use evloop::tls::{tls_info, TlsVersion};
use loop_testkit::{record_exceptions, run, run_once, watchdog, Peer, TempDir};
use tls_common::*;

const TOTAL: usize = 16 * 1024 * 1024;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn count(st: &State, ev: &Ev) -> usize {
    st.borrow().log.iter().filter(|e| *e == ev).count()
}

const ASYNCIO_ECHO_SERVER: &str =
    include_str!("../crates/loop-tls/tests/python/asyncio_echo_server.py");

#[test]
fn tls_17_12_04_evloop_client_against_a_cpython_asyncio_server() {
    let _w = watchdog().limit(180);
    let Some(py) = loop_testkit::python3() else {
        return;
    };
    let p = pki();
    let dir = TempDir::new("tls-interop-client");
    let cert = dir.write("cert.pem", &p.leaf.chain_pem);
    let key = dir.write("key.pem", &p.leaf.key_pem);
    let script = dir.write("server.py", ASYNCIO_ECHO_SERVER);
    let (child, mut out) = Peer::spawn(py, &[&script, &cert, &key]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from python: {line:?}"));

    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (rec, st) = Rec::new(false);
    let o = ConnectOptions::new()
        .ssl(p.client.clone())
        .server_hostname("localhost");
    let (t, _) = run(
        &lp,
        30,
        lp.create_connection(move || rec, "127.0.0.1", port, o),
    )
    .unwrap();
    assert_eq!(tls_info(&t).unwrap().version, Some(TlsVersion::Tls13));
    let data = pattern(TOTAL, 9);
    let mut sent = 0;
    let start = Instant::now();
    // Written without running the loop while the protocol is not paused: nothing reads the
    // echo meanwhile, so the peer (which awaits `drain()`) stops reading and the transport's
    // buffer must pass its high-water mark. Running the loop between writes let a fast peer
    // keep up with every chunk, and `pause_writing` then fired on some runs only.
    while sent < TOTAL {
        assert!(start.elapsed() < Duration::from_secs(120), "stuck writing");
        if count(&st, &Ev::Pause) == count(&st, &Ev::Resume) {
            let n = (TOTAL - sent).min(256 * 1024);
            t.write(&data[sent..sent + n]).unwrap();
            sent += n;
        } else {
            run_once(&lp);
        }
    }
    until(&lp, 120, || st.borrow().data.len() >= TOTAL);
    assert!(
        st.borrow().data == data,
        "the echo differs from what was sent"
    );
    assert!(count(&st, &Ev::Pause) > 0, "pause_writing fired");
    assert_eq!(count(&st, &Ev::Pause), count(&st, &Ev::Resume));
    t.close();
    until(&lp, 60, || lost(&st));
    assert_eq!(
        events(&st),
        [
            Ev::Made,
            Ev::Eof { close_notify: true },
            Ev::Lost {
                err: None,
                close_notify: true
            }
        ],
        "asyncio answered our close_notify with its own"
    );
    let (text, err) = child.finish(&mut out, || {
        run_once(&lp);
        std::thread::sleep(Duration::from_millis(1));
    });
    // asyncio read everything up to our close_notify, and saw the SNI name.
    assert_eq!(
        text.trim(),
        format!("OK {TOTAL} TLSv1.3 localhost"),
        "{err}"
    );
    errs.assert_none();
}

const SSL_CLIENT: &str = r#"
import socket, ssl, sys, hashlib

port, cafile, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port), timeout=60)
# A bare TCP EOF instead of close_notify would raise here instead of reading as EOF.
tls = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
# All of it before reading any echo: the server's echo piles up and it must pause writing.
chunk = bytes((i * 7) % 251 for i in range(65536)) * (total // 65536)
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
version = tls.version()
# Sends close_notify and waits for the server's: fails if the server just closes.
raw = tls.unwrap()
raw.close()
print(f"OK {received} {version}", flush=True)
"#;

#[test]
fn tls_17_12_04_cpython_ssl_client_against_an_evloop_server() {
    let _w = watchdog().limit(180);
    let Some(py) = loop_testkit::python3() else {
        return;
    };
    let p = pki();
    let dir = TempDir::new("tls-interop-server");
    let ca_file = dir.write("ca.pem", &p.ca.pem());
    let script = dir.write("client.py", SSL_CLIENT);
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let (rec, st) = Rec::new(true);
    let mut rec = Some(rec);
    let o = ServerOptions::new().ssl(p.server.clone());
    let server = run(
        &lp,
        30,
        lp.create_server(move || rec.take().unwrap(), "127.0.0.1", 0, o),
    )
    .unwrap();
    let port = port_of(&server).to_string();
    let (child, mut out) = Peer::spawn(py, &[&script, &port, &ca_file, &TOTAL.to_string()]);
    let (text, err) = child.finish(&mut out, || {
        run_once(&lp);
        std::thread::sleep(Duration::from_millis(1));
    });
    assert_eq!(text.trim(), format!("OK {TOTAL} TLSv1.3"), "{err}");
    until(&lp, 30, || lost(&st));
    let chunk: Vec<u8> = (0..65536).map(|i| ((i * 7) % 251) as u8).collect();
    let sent: Vec<u8> = chunk.repeat(64 * 4);
    assert!(st.borrow().data == sent, "received what python sent");
    assert!(count(&st, &Ev::Pause) > 0, "pause_writing fired");
    assert_eq!(count(&st, &Ev::Pause), count(&st, &Ev::Resume));
    assert_eq!(
        events(&st),
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

const UNIX_PEER: &str = r#"
import asyncio, ssl, sys

async def server(path, cert, key):
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        total = 0
        while data := await reader.read(65536):  # until the client's close_notify
            total += len(data)
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set_result(total)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = await asyncio.start_unix_server(handle, path, ssl=ctx)
    print("READY", flush=True)
    print(f"OK {await asyncio.wait_for(done, 60)}", flush=True)
    srv.close()
    await srv.wait_closed()

async def client(path, cafile, total):
    ctx = ssl.create_default_context(cafile=cafile)
    reader, writer = await asyncio.open_unix_connection(path, ssl=ctx, server_hostname="localhost")
    writer.write(b"u" * total)
    await writer.drain()
    echo = await reader.readexactly(total)
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    await writer.wait_closed()
    print(f"OK {len(echo)} {version}", flush=True)

if sys.argv[1] == "server":
    asyncio.run(server(*sys.argv[2:5]))
else:
    asyncio.run(client(sys.argv[2], sys.argv[3], int(sys.argv[4])))
"#;

#[test]
fn tls_17_14_unix_sockets_against_cpython_both_ways() {
    let _w = watchdog().limit(120);
    let Some(py) = loop_testkit::python3() else {
        return;
    };
    let p = pki();
    let dir = TempDir::new("tls-interop-unix");
    let cert = dir.write("cert.pem", &p.leaf.chain_pem);
    let key = dir.write("key.pem", &p.leaf.key_pem);
    let ca = dir.write("ca.pem", &p.ca.pem());
    let script = dir.write("peer.py", UNIX_PEER);
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    const N: usize = 1024 * 1024;

    // evloop's create_unix_connection against asyncio's start_unix_server.
    let path = dir.join("py.sock");
    let path_s = path.to_str().unwrap().to_owned();
    let (child, mut out) = Peer::spawn(py, &[&script, "server", &path_s, &cert, &key]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let (rec, st) = Rec::new(false);
    let o = ConnectOptions::new()
        .ssl(p.client.clone())
        .server_hostname("localhost");
    let (t, _) = run(&lp, 30, lp.create_unix_connection(move || rec, &path, o)).unwrap();
    t.write(&vec![b'e'; N]).unwrap();
    until(&lp, 60, || st.borrow().data.len() == N);
    t.close(); // our close_notify ends asyncio's read loop; its own comes back
    until(&lp, 60, || lost(&st));
    assert_eq!(
        events(&st).last(),
        Some(&Ev::Lost {
            err: None,
            close_notify: true
        })
    );
    let (text, err) = child.finish(&mut out, || {
        run_once(&lp);
        std::thread::sleep(Duration::from_millis(1));
    });
    assert_eq!(text.trim(), format!("OK {N}"), "{err}");

    // asyncio's open_unix_connection against evloop's create_unix_server.
    let path = dir.join("ev.sock");
    let (rec, sst) = Rec::new(true);
    let mut rec = Some(rec);
    let o = ServerOptions::new().ssl(p.server.clone());
    let server = run(
        &lp,
        30,
        lp.create_unix_server(move || rec.take().unwrap(), &path, o),
    )
    .unwrap();
    let path_s = path.to_str().unwrap().to_owned();
    let (child, mut out) = Peer::spawn(py, &[&script, "client", &path_s, &ca, &N.to_string()]);
    let (text, err) = child.finish(&mut out, || {
        run_once(&lp);
        std::thread::sleep(Duration::from_millis(1));
    });
    assert_eq!(text.trim(), format!("OK {N} TLSv1.3"), "{err}");
    until(&lp, 30, || lost(&sst));
    assert_eq!(sst.borrow().data.len(), N);
    close_server(&lp, server);
    errs.assert_none();
}
