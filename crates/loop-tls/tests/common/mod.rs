//! Certificates made at test time, contexts over them, and a pump that moves ciphertext
//! between two engines in memory the way two transports would.
#![allow(dead_code)]

use loop_tls::{Eof, Events, SslContext, TlsEngine, TlsError, TlsVersion};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate authority that issues server certificates.
pub struct Ca {
    pub cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server's chain and key, as PEM.
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "evloop test server");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub fn server_ctx(leaf: &Leaf) -> SslContext {
    SslContext::server()
        .cert_chain_pem(leaf.chain_pem.as_bytes())
        .unwrap()
        .private_key_pem(leaf.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

pub fn server_ctx_versions(leaf: &Leaf, max: TlsVersion, alpn: &[&str]) -> SslContext {
    SslContext::server()
        .cert_chain_pem(leaf.chain_pem.as_bytes())
        .unwrap()
        .private_key_pem(leaf.key_pem.as_bytes())
        .unwrap()
        .maximum_version(max)
        .alpn_protocols(alpn)
        .build()
        .unwrap()
}

pub fn client_ctx(ca: &Ca) -> SslContext {
    SslContext::client()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

/// One side of a connection with what its application protocol has seen so far.
pub struct Peer {
    pub engine: TlsEngine,
    pub received: Vec<u8>,
    pub handshake_complete: bool,
    pub eof: Option<Eof>,
    pub eof_count: usize,
    pub shutdown_started: bool,
    pub close: bool,
    pub abort: bool,
    pub error: Option<TlsError>,
    /// Largest `buffer_size` seen.
    pub max_buffer: usize,
}

impl Peer {
    pub fn new(engine: TlsEngine) -> Peer {
        Peer {
            engine,
            received: Vec::new(),
            handshake_complete: false,
            eof: None,
            eof_count: 0,
            shutdown_started: false,
            close: false,
            abort: false,
            error: None,
            max_buffer: 0,
        }
    }

    /// Records what a call reported.
    pub fn apply(&mut self, r: Result<Events, TlsError>) {
        match r {
            Ok(ev) => {
                if ev.handshake_complete {
                    assert!(
                        !self.handshake_complete,
                        "handshake_complete reported twice"
                    );
                    self.handshake_complete = true;
                }
                self.received.extend_from_slice(&ev.plaintext);
                if let Some(e) = ev.eof {
                    self.eof = Some(e);
                    self.eof_count += 1;
                }
                self.shutdown_started |= ev.shutdown_started;
                self.close |= ev.close;
                self.abort |= ev.abort;
            }
            Err(e) => {
                assert!(
                    self.error.is_none(),
                    "a second error after {:?}: {e}",
                    self.error
                );
                self.error = Some(e);
            }
        }
        self.note_buffer();
    }

    pub fn note_buffer(&mut self) {
        self.max_buffer = self.max_buffer.max(self.engine.buffer_size());
    }

    pub fn write(&mut self, data: &[u8]) {
        self.engine.write_plaintext(data).unwrap();
        self.note_buffer();
    }
}

/// Starts both handshakes.
pub fn connect(client: TlsEngine, server: TlsEngine) -> (Peer, Peer) {
    let mut c = Peer::new(client);
    let mut s = Peer::new(server);
    let r = c.engine.start_handshake();
    c.apply(r);
    let r = s.engine.start_handshake();
    s.apply(r);
    (c, s)
}

/// Moves one `take_ciphertext` worth from `from` to `to`; true if anything moved.
pub fn step(from: &mut Peer, to: &mut Peer) -> bool {
    let data = from.engine.take_ciphertext();
    from.note_buffer();
    if data.is_empty() {
        return false;
    }
    let r = to.engine.feed_ciphertext(&data);
    to.apply(r);
    true
}

/// Moves ciphertext both ways until neither side has anything more to send.
pub fn pump(a: &mut Peer, b: &mut Peer) {
    for _ in 0..1_000_000 {
        let x = step(a, b);
        let y = step(b, a);
        if !x && !y {
            return;
        }
    }
    panic!("the engines never went quiet");
}

/// A client and a server that completed the handshake.
pub fn handshaken(client: TlsEngine, server: TlsEngine) -> (Peer, Peer) {
    let (mut c, mut s) = connect(client, server);
    pump(&mut c, &mut s);
    assert!(c.error.is_none(), "client failed: {:?}", c.error);
    assert!(s.error.is_none(), "server failed: {:?}", s.error);
    assert!(c.handshake_complete && s.handshake_complete);
    (c, s)
}

/// A deterministic byte pattern of `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(7) as u8 ^ seed)
        .collect()
}
