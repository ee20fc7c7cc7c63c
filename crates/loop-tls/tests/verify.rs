//! Certificate verification, names and negotiation: unknown CA, name mismatch, hostname
//! checking off (chain still checked), IP SANs, SNI, ALPN.

mod common;

use common::*;
use loop_tls::{ContextError, SslContext, TlsEngine, TlsError, TlsVersion};
use rustls::AlertDescription;

/// Runs a handshake to its end; returns both peers.
fn attempt(client: TlsEngine, server: TlsEngine) -> (Peer, Peer) {
    let (mut c, mut s) = connect(client, server);
    pump(&mut c, &mut s);
    (c, s)
}

fn unchecked_client(ca: &Ca) -> SslContext {
    SslContext::client()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .check_hostname(false)
        .build()
        .unwrap()
}

#[test]
fn tls_handshake_fails_on_unknown_ca() {
    let _w = loop_testkit::watchdog();
    let trusted = Ca::new("the CA the client trusts");
    let other = Ca::new("some other CA");
    let leaf = other.issue(&["localhost"]);
    let client = TlsEngine::client(&client_ctx(&trusted), "localhost").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (c, s) = attempt(client, server);
    let err = c.error.expect("the client must refuse the certificate");
    assert!(matches!(err, TlsError::UnknownIssuer), "{err:?}");
    assert!(err.to_string().contains("unknown CA"), "{err}");
    assert!(err.is_certificate_error());
    assert_eq!(
        err.handshake_failure_message(),
        "SSL handshake failed on verifying the certificate"
    );
    assert!(!c.handshake_complete);
    // The client's alert tells the server which failure it was.
    let server_err = s.error.expect("the server must see the alert");
    assert!(
        matches!(server_err, TlsError::PeerAlert(AlertDescription::UnknownCA)),
        "{server_err:?}"
    );
    assert!(server_err.to_string().contains("UnknownCA"));
}

#[test]
fn tls_handshake_fails_on_name_mismatch_naming_the_expected_name() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("mismatch CA");
    let leaf = ca.issue(&["localhost", "alt.localhost"]);
    let client = TlsEngine::client(&client_ctx(&ca), "db.example.org").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (c, _s) = attempt(client, server);
    match c.error.expect("the name must not match") {
        TlsError::NameMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected, "db.example.org");
            assert!(
                presented.iter().any(|p| p.contains("localhost")),
                "{presented:?}"
            );
        }
        e => panic!("expected a name mismatch, got {e:?}"),
    }
}

#[test]
fn tls_empty_server_hostname_skips_the_name_check_and_sends_no_sni() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("no-name CA");
    let leaf = ca.issue(&["some.other.name"]);
    let client = TlsEngine::client(&unchecked_client(&ca), "").unwrap();
    assert_eq!(client.server_hostname(), None);
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (mut c, mut s) = handshaken(client, server);
    assert_eq!(s.engine.sni_name(), None);
    c.write(b"hi");
    pump(&mut c, &mut s);
    assert_eq!(s.received, b"hi");
}

#[test]
fn tls_empty_server_hostname_still_checks_the_chain() {
    let _w = loop_testkit::watchdog();
    let trusted = Ca::new("trusted CA");
    let other = Ca::new("untrusted CA");
    let leaf = other.issue(&["localhost"]);
    let client = TlsEngine::client(&unchecked_client(&trusted), "").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (c, _s) = attempt(client, server);
    assert!(
        matches!(c.error, Some(TlsError::UnknownIssuer)),
        "{:?}",
        c.error
    );
}

#[test]
fn tls_empty_server_hostname_still_checks_the_chain_self_signed() {
    let _w = loop_testkit::watchdog();
    // A self-signed server certificate is its own issuer, and not a trusted one.
    let trusted = Ca::new("trusted CA");
    let self_signed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ctx = SslContext::server()
        .cert_chain_pem(self_signed.cert.pem().as_bytes())
        .unwrap()
        .private_key_pem(self_signed.key_pair.serialize_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let client = TlsEngine::client(&unchecked_client(&trusted), "").unwrap();
    let (c, _s) = attempt(client, TlsEngine::server(&ctx).unwrap());
    assert!(
        matches!(c.error, Some(TlsError::UnknownIssuer)),
        "{:?}",
        c.error
    );
}

#[test]
fn tls_empty_server_hostname_needs_hostname_checking_off() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("strict CA");
    let err = TlsEngine::client(&client_ctx(&ca), "").unwrap_err();
    assert!(matches!(
        err,
        ContextError::CheckHostnameRequiresServerHostname
    ));
    assert!(err
        .to_string()
        .starts_with("check_hostname requires server_hostname"));
    // asyncio's ssl=True with server_hostname='': the default context turns checking off.
    let ctx = SslContext::default_client("").unwrap();
    assert!(TlsEngine::client(&ctx, "").is_ok());
}

#[test]
fn tls_hostname_checking_off_sends_sni_without_checking_it() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("sni CA");
    let leaf = ca.issue(&["localhost"]);
    let client = TlsEngine::client(&unchecked_client(&ca), "elsewhere.example").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (_c, s) = handshaken(client, server);
    assert_eq!(s.engine.sni_name(), Some("elsewhere.example"));
}

#[test]
fn tls_sni_is_seen_by_the_server() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("sni CA");
    let leaf = ca.issue(&["api.localhost"]);
    let client = TlsEngine::client(&client_ctx(&ca), "api.localhost").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (c, s) = handshaken(client, server);
    assert_eq!(s.engine.sni_name(), Some("api.localhost"));
    assert_eq!(c.engine.server_hostname(), Some("api.localhost"));
    assert!(s.engine.is_server_side() && !c.engine.is_server_side());
}

#[test]
fn tls_ip_address_is_verified_as_an_ip_san() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("ip CA");
    let by_ip = ca.issue(&["127.0.0.1", "::1"]);
    for addr in ["127.0.0.1", "::1"] {
        let client = TlsEngine::client(&client_ctx(&ca), addr).unwrap();
        let server = TlsEngine::server(&server_ctx(&by_ip)).unwrap();
        let (_c, s) = handshaken(client, server);
        // An IP address is never sent as SNI.
        assert_eq!(s.engine.sni_name(), None);
    }
    // A certificate naming only a DNS name does not cover the address.
    let by_name = ca.issue(&["localhost"]);
    let client = TlsEngine::client(&client_ctx(&ca), "127.0.0.1").unwrap();
    let (c, _s) = attempt(client, TlsEngine::server(&server_ctx(&by_name)).unwrap());
    match c.error {
        Some(TlsError::NameMismatch { expected, .. }) => assert_eq!(expected, "127.0.0.1"),
        e => panic!("expected a name mismatch, got {e:?}"),
    }
    // Nor does an IP SAN cover another address.
    let client = TlsEngine::client(&client_ctx(&ca), "127.0.0.2").unwrap();
    let (c, _s) = attempt(client, TlsEngine::server(&server_ctx(&by_ip)).unwrap());
    assert!(
        matches!(c.error, Some(TlsError::NameMismatch { .. })),
        "{:?}",
        c.error
    );
}

#[test]
fn tls_alpn_is_negotiated() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("alpn CA");
    let leaf = ca.issue(&["localhost"]);
    let client_ctx = SslContext::client()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .alpn_protocols(["h2", "http/1.1"])
        .build()
        .unwrap();
    for max in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let server = server_ctx_versions(&leaf, max, &["http/1.1"]);
        let (c, s) = handshaken(
            TlsEngine::client(&client_ctx, "localhost").unwrap(),
            TlsEngine::server(&server).unwrap(),
        );
        assert_eq!(c.engine.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(s.engine.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
    // No protocol in common: the server refuses.
    let server = server_ctx_versions(&leaf, TlsVersion::Tls13, &["smtp"]);
    let (c, s) = attempt(
        TlsEngine::client(&client_ctx, "localhost").unwrap(),
        TlsEngine::server(&server).unwrap(),
    );
    assert!(
        matches!(s.error, Some(TlsError::Protocol(_))),
        "{:?}",
        s.error
    );
    assert!(
        matches!(
            c.error,
            Some(TlsError::PeerAlert(AlertDescription::NoApplicationProtocol))
        ),
        "{:?}",
        c.error
    );
}

#[test]
fn tls_version_limits_are_honoured() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("versions CA");
    let leaf = ca.issue(&["localhost"]);
    let client = SslContext::client()
        .root_certificates_pem(ca.pem().as_bytes())
        .unwrap()
        .minimum_version(TlsVersion::Tls13)
        .build()
        .unwrap();
    let server = server_ctx_versions(&leaf, TlsVersion::Tls12, &[]);
    let (c, s) = attempt(
        TlsEngine::client(&client, "localhost").unwrap(),
        TlsEngine::server(&server).unwrap(),
    );
    assert!(c.error.is_some() && s.error.is_some());
    let err = SslContext::client()
        .minimum_version(TlsVersion::Tls13)
        .maximum_version(TlsVersion::Tls12)
        .build()
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("minimum_version TLSv1.3 is above maximum_version TLSv1.2"));
}

#[test]
fn tls_ready_rustls_configs_are_used_as_given() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("ready CA");
    let leaf = ca.issue(&["localhost"]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(loop_tls::default_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"x-ready".to_vec()];
    let client_ctx = SslContext::from_client_config(std::sync::Arc::new(config));
    assert!(client_ctx.check_hostname());
    let server = server_ctx(&leaf);
    let server_ctx = SslContext::from_server_config(server.server_config().unwrap().clone());
    let (c, _s) = handshaken(
        TlsEngine::client(&client_ctx, "localhost").unwrap(),
        TlsEngine::server(&server_ctx).unwrap(),
    );
    assert_eq!(c.engine.alpn_protocol(), None); // the server offers none
    assert!(matches!(
        TlsEngine::client(&client_ctx, ""),
        Err(ContextError::CheckHostnameRequiresServerHostname)
    ));
}
