//! TLS echo: the servers (evloop with `ssl=`, tokio + tokio-rustls, on the same rustls server
//! config) and the load generator's TLS side (one sans-I/O `TlsEngine` per connection; the
//! handshakes happen before the measured phase).
//!
//! A server makes a self-signed certificate for `localhost` when it starts and writes it to
//! [`cert_path`] of its port, where the client reads it.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use evloop::tls::{SslContext, TlsEngine};
use rustix::event::epoll;

use crate::echo_client::Stop;

/// Where the server of `port` leaves its certificate.
pub fn cert_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("evloop-bench-tls-{port}.pem"))
}

/// The certificate the server of `port` left, read once and removed.
fn server_cert(port: u16) -> Vec<u8> {
    let path = cert_path(port);
    let pem = std::fs::read(&path).expect("the server's certificate");
    let _ = std::fs::remove_file(&path);
    pem
}

/// A self-signed server context for `localhost`; the certificate goes to [`cert_path`].
fn server_ctx(listener: &TcpListener) -> SslContext {
    let port = listener.local_addr().expect("addr").port();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(cert_path(port), cert.cert.pem()).expect("write the certificate");
    SslContext::server()
        .cert_chain_pem(cert.cert.pem().as_bytes())
        .expect("chain")
        .private_key_pem(cert.key_pair.serialize_pem().as_bytes())
        .expect("key")
        .build()
        .expect("server context")
}

/// evloop: `create_server(ssl=...)` with an echoing `Protocol`.
pub fn evloop_tls(listener: TcpListener) {
    use evloop::prelude::*;

    struct Echo(Option<Transport>);

    impl Protocol for Echo {
        fn connection_made(&mut self, t: &Transport) {
            self.0 = Some(t.clone());
        }

        fn data_received(&mut self, data: &[u8]) {
            if let Some(t) = &self.0 {
                let _ = t.write(data);
            }
        }
    }

    let ctx = server_ctx(&listener);
    listener.set_nonblocking(true).expect("nonblocking");
    let lp = EventLoop::new().expect("loop");
    let opts = ServerOptions::new().ssl(ctx);
    let server = lp
        .run_until_complete(lp.create_server_sock(|| Echo(None), listener, opts))
        .expect("run")
        .expect("server");
    lp.run_forever().expect("serve");
    drop(server);
}

/// tokio (current-thread) + tokio-rustls, a task per connection, on the same rustls config.
pub fn tokio_rustls(listener: TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctx = server_ctx(&listener);
    let acceptor = tokio_rustls::TlsAcceptor::from(ctx.server_config().expect("server").clone());
    listener.set_nonblocking(true).expect("nonblocking");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let (s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// One TLS client connection.
struct Conn {
    s: TcpStream,
    tls: TlsEngine,
    /// Ciphertext not yet sent.
    out: Vec<u8>,
    /// Plaintext bytes of the current echo still to receive.
    to_recv: usize,
    /// The current message was handed to the engine.
    sent: bool,
    left: Option<u64>,
}

impl Conn {
    /// Sends what the engine has; false if the socket would block with some left.
    fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            self.tls.take_ciphertext_into(&mut self.out);
        }
        while !self.out.is_empty() {
            match self.s.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                    if self.out.is_empty() {
                        self.tls.take_ciphertext_into(&mut self.out);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) => panic!("TLS echo client write: {e}"),
            }
        }
        true
    }

    /// Reads what there is; returns the plaintext byte count, or `None` on `WouldBlock`.
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        match self.s.read(buf) {
            Ok(0) => panic!("the TLS echo server closed a connection"),
            Ok(n) => {
                let ev = self.tls.feed_ciphertext(&buf[..n]).expect("TLS");
                Some(ev.plaintext.len())
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) => panic!("TLS echo client read: {e}"),
        }
    }
}

/// The TLS load: like the plain echo client, each connection waits for its echo before
/// sending again; the handshakes are done before the clock starts.
pub fn run_client(addr: SocketAddr, conns: usize, size: usize, stop: Stop) -> u64 {
    let left = match stop {
        Stop::RoundTrips(0) => return 0,
        Stop::RoundTrips(r) => Some(r),
        Stop::Secs(_) => None,
    };
    let pem = server_cert(addr.port());
    let ctx = SslContext::client()
        .root_certificates_pem(&pem)
        .expect("roots")
        .build()
        .expect("client context");
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    let msg = vec![0x5a_u8; size];
    let mut buf = vec![0u8; 256 * 1024];
    let mut map: HashMap<u64, Conn> = HashMap::new();
    for i in 0..conns {
        let s = TcpStream::connect(addr).expect("connect to the TLS echo server");
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(true).expect("nonblocking");
        epoll::add(
            &ep,
            s.as_fd(),
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET,
        )
        .expect("epoll add");
        let mut tls = TlsEngine::client(&ctx, "localhost").expect("engine");
        let _ = tls.start_handshake().expect("handshake");
        map.insert(
            i as u64,
            Conn {
                s,
                tls,
                out: Vec::new(),
                to_recv: size,
                sent: false,
                left,
            },
        );
    }
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    let ts = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    // Handshakes, not measured.
    let start = Instant::now();
    for c in map.values_mut() {
        c.flush();
    }
    while !map.values().all(|c| c.tls.handshake_completed()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "handshakes stuck"
        );
        events.clear();
        let _ = epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&ts));
        for ev in events.iter() {
            if let Some(c) = map.get_mut(&ev.data.u64()) {
                while c.read(&mut buf).is_some() {}
                c.flush();
            }
        }
    }
    let deadline = match stop {
        Stop::Secs(secs) => Some(Instant::now() + Duration::from_secs_f64(secs)),
        Stop::RoundTrips(_) => None,
    };
    let finished = |map: &HashMap<u64, Conn>| match deadline {
        Some(d) => Instant::now() >= d,
        None => map.values().all(|c| c.left == Some(0)),
    };
    let mut done = 0u64;
    for c in map.values_mut() {
        pump(c, &msg, &mut buf, &mut done);
    }
    while !finished(&map) {
        events.clear();
        match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("epoll_wait: {e}"),
        }
        for ev in events.iter() {
            if let Some(c) = map.get_mut(&ev.data.u64()) {
                pump(c, &msg, &mut buf, &mut done);
            }
        }
    }
    done
}

/// Moves one connection as far as it goes without blocking.
fn pump(c: &mut Conn, msg: &[u8], buf: &mut [u8], done: &mut u64) {
    loop {
        if c.left == Some(0) {
            return;
        }
        if !c.sent {
            c.tls.write_plaintext(msg).expect("TLS write");
            c.sent = true;
        }
        if !c.flush() {
            return;
        }
        match c.read(buf) {
            None => return,
            Some(n) => {
                c.to_recv = c.to_recv.saturating_sub(n);
                if c.to_recv == 0 {
                    *done += 1;
                    if let Some(l) = &mut c.left {
                        *l -= 1;
                    }
                    c.to_recv = msg.len();
                    c.sent = false;
                }
            }
        }
    }
}

/// Full handshakes, one after the other on fresh connections, for `secs` seconds: connect,
/// handshake, `close_notify`, close. Returns how many completed.
pub fn run_handshakes(addr: SocketAddr, secs: f64) -> u64 {
    let pem = server_cert(addr.port());
    let ctx = SslContext::client()
        .root_certificates_pem(&pem)
        .expect("roots")
        .build()
        .expect("client context");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    let mut done = 0;
    while Instant::now() < deadline {
        let mut s = TcpStream::connect(addr).expect("connect to the TLS echo server");
        s.set_nodelay(true).expect("nodelay");
        let mut tls = TlsEngine::client(&ctx, "localhost").expect("engine");
        let _ = tls.start_handshake().expect("handshake");
        loop {
            out.clear();
            tls.take_ciphertext_into(&mut out);
            s.write_all(&out).expect("write");
            if tls.handshake_completed() {
                break;
            }
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "the server closed during the handshake");
            let _ = tls.feed_ciphertext(&buf[..n]).expect("TLS");
        }
        let _ = tls.begin_shutdown().expect("close_notify");
        out.clear();
        tls.take_ciphertext_into(&mut out);
        s.write_all(&out).expect("write");
        done += 1;
    }
    done
}
