//! Building contexts from files and bytes, and the errors that say what failed; asyncio's
//! argument rules.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use loop_tls::args;
use loop_tls::{ContextError, SslContext, TlsEngine};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("loop-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tls_context_loads_chain_and_key_from_files() {
    let _w = loop_testkit::watchdog();
    let dir = TempDir::new("files");
    let ca = Ca::new("file CA");
    let leaf = ca.issue(&["localhost"]);
    let cert = dir.write("cert.pem", &leaf.chain_pem);
    let key = dir.write("key.pem", &leaf.key_pem);
    let ca_file = dir.write("ca.pem", &ca.pem());
    let server = SslContext::server()
        .load_cert_chain(&cert, &key)
        .unwrap()
        .build()
        .unwrap();
    assert!(server.is_server());
    // Chain and key in one file, as load_cert_chain(certfile) alone allows.
    let both = dir.write("both.pem", &format!("{}{}", leaf.key_pem, leaf.chain_pem));
    SslContext::server()
        .load_cert_chain(&both, &both)
        .unwrap()
        .build()
        .unwrap();
    let client = SslContext::client()
        .root_certificates_pem_file(&ca_file)
        .unwrap()
        .build()
        .unwrap();
    handshaken(
        TlsEngine::client(&client, "localhost").unwrap(),
        TlsEngine::server(&server).unwrap(),
    );
}

#[test]
fn tls_context_errors_name_the_file_and_the_problem() {
    let _w = loop_testkit::watchdog();
    let dir = TempDir::new("errors");
    let ca = Ca::new("error CA");
    let leaf = ca.issue(&["localhost"]);

    let missing = dir.0.join("missing.pem");
    let err = SslContext::server()
        .cert_chain_pem_file(&missing)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("certificate chain") && text.contains("missing.pem"),
        "{text}"
    );

    // A certificate block with its end line cut off.
    let cut = leaf.chain_pem.replace("-----END CERTIFICATE-----", "");
    let bad = dir.write("cut.pem", &cut);
    let err = SslContext::server().cert_chain_pem_file(&bad).unwrap_err();
    assert!(matches!(err, ContextError::Pem { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("bad PEM in the certificate chain from "),
        "{text}"
    );
    assert!(text.contains("cut.pem"), "{text}");

    // The key file holds only a certificate.
    let no_key = dir.write("nokey.pem", &leaf.chain_pem);
    let err = SslContext::server()
        .private_key_pem_file(&no_key)
        .unwrap_err();
    assert!(matches!(err, ContextError::NoPrivateKey { .. }), "{err:?}");
    assert!(err.to_string().contains("nokey.pem"));

    // The chain file holds only a key.
    let only_key = dir.write("onlykey.pem", &leaf.key_pem);
    let err = SslContext::server()
        .cert_chain_pem_file(&only_key)
        .unwrap_err();
    assert!(
        matches!(err, ContextError::NoCertificates { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("onlykey.pem"));
}

#[test]
fn tls_context_refuses_a_key_that_is_not_the_certificates() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("mismatch CA");
    let a = ca.issue(&["a.localhost"]);
    let b = ca.issue(&["b.localhost"]);
    let err = SslContext::server()
        .cert_chain_pem(a.chain_pem.as_bytes())
        .unwrap()
        .private_key_pem(b.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(matches!(err, ContextError::KeyMismatch), "{err:?}");
    assert!(err.to_string().contains("does not match the certificate"));
}

#[test]
fn tls_context_needs_a_chain_and_a_key() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("credentials CA");
    let leaf = ca.issue(&["localhost"]);
    let err = SslContext::server()
        .private_key_pem(leaf.key_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        ContextError::MissingCredentials("certificate chain")
    ));
    let err = SslContext::server()
        .cert_chain_pem(leaf.chain_pem.as_bytes())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        ContextError::MissingCredentials("private key")
    ));
}

#[test]
fn tls_context_side_must_match_the_engine() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("side CA");
    let leaf = ca.issue(&["localhost"]);
    let server = server_ctx(&leaf);
    let client = client_ctx(&ca);
    let err = TlsEngine::server(&client).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("Server side SSL needs a valid SSLContext"));
    assert!(matches!(
        TlsEngine::client(&server, "localhost"),
        Err(ContextError::WrongSide { needed: "client" })
    ));
    assert!(matches!(
        TlsEngine::client(&client, "not a host name!"),
        Err(ContextError::InvalidServerHostname(_))
    ));
}

#[test]
fn tls_default_client_context_uses_the_os_trust_store() {
    let _w = loop_testkit::watchdog();
    let ctx = SslContext::default_client("example.com").unwrap();
    assert!(ctx.check_hostname());
    let roots = &ctx.client_config().unwrap();
    assert!(roots.enable_sni);
    assert!(!SslContext::default_client("").unwrap().check_hostname());
}

#[test]
fn tls_argument_checks_use_asyncios_messages() {
    let _w = loop_testkit::watchdog();
    let s = Duration::from_secs(1);
    let msg = |r: Result<_, loop_tls::ArgumentError>| r.map(|_: ()| ()).unwrap_err().to_string();
    assert_eq!(
        msg(args::check_ssl_only(false, Some(s), None)),
        "ssl_handshake_timeout is only meaningful with ssl"
    );
    assert_eq!(
        msg(args::check_ssl_only(false, None, Some(s))),
        "ssl_shutdown_timeout is only meaningful with ssl"
    );
    assert_eq!(
        args::resolve_server_hostname(false, Some("h"), Some("h"))
            .unwrap_err()
            .to_string(),
        "server_hostname is only meaningful with ssl"
    );
    assert_eq!(
        args::resolve_server_hostname(true, None, Some(""))
            .unwrap_err()
            .to_string(),
        "You must set server_hostname when using ssl without a host"
    );
    assert_eq!(
        args::handshake_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .to_string(),
        "ssl_handshake_timeout should be a positive number, got 0.0"
    );
    assert_eq!(
        args::shutdown_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .to_string(),
        "ssl_shutdown_timeout should be a positive number, got 0.0"
    );
    assert_eq!(
        args::handshake_timeout(None).unwrap(),
        Duration::from_secs(60)
    );
    assert_eq!(
        args::shutdown_timeout(None).unwrap(),
        Duration::from_secs(30)
    );
    // create_connection's order: the server_hostname rule comes first.
    let err = args::check_client_args(false, None, Some("h"), Some(s), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server_hostname is only meaningful with ssl"
    );
    let err =
        args::check_client_args(true, Some("h"), None, Some(Duration::ZERO), None).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("ssl_handshake_timeout should be a positive number"));
    let tls = args::check_client_args(true, Some("10.0.0.1"), None, None, None)
        .unwrap()
        .unwrap();
    assert_eq!(tls.server_hostname, "10.0.0.1");
    let mut engine = TlsEngine::client(&SslContext::default_client("h").unwrap(), "h").unwrap();
    assert!(engine.set_timeouts(None, Some(Duration::ZERO)).is_err());
    assert_eq!(engine.shutdown_timeout(), Duration::from_secs(30));
}
