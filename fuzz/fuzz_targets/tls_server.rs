//! The TLS server engine fed arbitrary bytes. Two modes, picked by the first byte:
//!
//! * raw: the input, cut into fuzzer-sized pieces, is the ciphertext a client sent, mixed with
//!   transport end of file, application writes, `begin_shutdown`, pause/resume of reading and
//!   ciphertext takes;
//! * man in the middle: a real client engine talks to the server, and the input says where to
//!   flip, cut or insert bytes in what the client sends, so the fuzzer reaches the states after
//!   the handshake.
//!
//! Checked: no panic; `handshake_complete` and `eof` at most once each; after an error or
//! `close` the engine is `Unwrapped`; the plaintext the server delivers is always a prefix of
//! what the client wrote (a tampered record is an error, never data); unmodified traffic
//! completes the handshake and delivers everything.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loop_tls::{Events, SslContext, TlsEngine, TlsError, TlsState};

struct Contexts {
    server: SslContext,
    client: SslContext,
}

/// rustls's debug assertion that no fatal alert follows `close_notify` fires when a peer sends a
/// bad record after the engine's `close_notify`; the engine contains that panic and reports a
/// corrupted record. libFuzzer's panic hook would abort on it before the engine can, so this
/// hook lets exactly that one through and hands every other panic to libFuzzer's.
fn tolerate_contained_rustls_assertion() {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        let in_rustls = info
            .location()
            .is_some_and(|l| l.file().contains("rustls") && l.file().ends_with("common_state.rs"));
        if in_rustls && message == "assertion failed: !self.sent_fatal_alert" {
            return;
        }
        fuzzer_hook(info);
    }));
}

fn contexts() -> &'static Contexts {
    static CTX: OnceLock<Contexts> = OnceLock::new();
    CTX.get_or_init(|| {
        tolerate_contained_rustls_assertion();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let server = SslContext::server()
            .cert_chain_pem(cert.cert.pem().as_bytes())
            .unwrap()
            .private_key_pem(cert.key_pair.serialize_pem().as_bytes())
            .unwrap()
            .alpn_protocols(["h2", "http/1.1"])
            .build()
            .unwrap();
        let client = SslContext::client()
            .root_certificates_pem(cert.cert.pem().as_bytes())
            .unwrap()
            .alpn_protocols(["http/1.1"])
            .build()
            .unwrap();
        Contexts { server, client }
    })
}

/// What the server's application has seen.
#[derive(Default)]
struct Seen {
    handshakes: usize,
    eofs: usize,
    closed: bool,
    failed: bool,
    plaintext: Vec<u8>,
}

impl Seen {
    fn apply(&mut self, engine: &TlsEngine, r: Result<Events, TlsError>) {
        match r {
            Ok(ev) => {
                self.handshakes += usize::from(ev.handshake_complete);
                self.eofs += usize::from(ev.eof.is_some());
                self.plaintext.extend_from_slice(&ev.plaintext);
                if ev.close || ev.abort {
                    self.closed = true;
                    assert_eq!(engine.state(), TlsState::Unwrapped);
                }
            }
            Err(e) => {
                let _ = e.to_string();
                let _ = std::io::Error::from(e);
                self.failed = true;
                assert_eq!(engine.state(), TlsState::Unwrapped);
            }
        }
        assert!(self.handshakes <= 1, "handshake_complete reported twice");
        assert!(self.eofs <= 1, "eof reported twice");
    }
}

fn raw(input: &[u8]) {
    let mut server = TlsEngine::server(&contexts().server).unwrap();
    let mut seen = Seen::default();
    let r = server.start_handshake();
    seen.apply(&server, r);
    let mut rest = input;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 8 {
            0 => {
                let r = server.on_transport_eof();
                seen.apply(&server, r);
            }
            1 => {
                let r = server.begin_shutdown();
                seen.apply(&server, r);
            }
            2 => {
                let _ = server.write_plaintext(&[op; 100]);
            }
            3 => server.pause_reading(),
            4 => {
                let r = server.resume_reading();
                seen.apply(&server, r);
            }
            5 => {
                let _ = server.take_ciphertext();
            }
            _ => {
                let n = usize::from(op >> 3).min(rest.len()).max(1).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                let r = server.feed_ciphertext(chunk);
                seen.apply(&server, r);
            }
        }
        let _ = server.buffer_size();
        let _ = (server.cipher_suite(), server.protocol_version(), server.alpn_protocol());
        let _ = server.sni_name();
    }
}

fn mitm(input: &[u8]) {
    let ctx = contexts();
    let mut client = TlsEngine::client(&ctx.client, "localhost").unwrap();
    let mut server = TlsEngine::server(&ctx.server).unwrap();
    let mut seen = Seen::default();
    let _ = client.start_handshake().unwrap();
    let r = server.start_handshake();
    seen.apply(&server, r);
    let sent: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    client.write_plaintext(&sent).unwrap();
    let mut edits = input.chunks_exact(3);
    let mut tampered = false;
    for round in 0..64 {
        let mut flight = client.take_ciphertext();
        if let Some(e) = edits.next() {
            if !flight.is_empty() {
                let at = (usize::from(e[1]) << 8 | usize::from(e[2])) % flight.len();
                match e[0] % 4 {
                    0 => flight[at] ^= 1 << (e[2] % 8),
                    1 => flight.truncate(at),
                    2 => flight.insert(at, e[2]),
                    _ => {} // this flight passes untouched
                }
                tampered |= e[0] % 4 != 3;
            }
        }
        if !flight.is_empty() {
            let r = server.feed_ciphertext(&flight);
            seen.apply(&server, r);
        }
        let back = server.take_ciphertext();
        if !back.is_empty() && client.feed_ciphertext(&back).is_err() {
            break;
        }
        if round == 32 {
            let r = server.begin_shutdown();
            seen.apply(&server, r);
        }
        if seen.failed || seen.closed {
            break;
        }
    }
    assert!(
        sent.starts_with(&seen.plaintext),
        "the server delivered bytes the client never wrote"
    );
    if !tampered {
        assert_eq!(seen.handshakes, 1, "untouched traffic must complete the handshake");
        assert!(!seen.failed);
        assert_eq!(seen.plaintext.len(), sent.len());
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&m, rest)) if m & 1 == 1 => mitm(rest),
        Some((_, rest)) => raw(rest),
        None => {}
    }
});
