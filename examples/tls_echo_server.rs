//! A TLS echo server: `start_server` with `ssl=`. Each client's line comes back, then the
//! connection closes with `close_notify`.
//!
//! `cargo run --features tls --example tls_echo_server [-- PORT]` listens on 127.0.0.1:PORT
//! (default: `$EVLOOP_PORT`, else 8443; 0 picks a free port) until interrupted.
//!
//! The certificate: `$EVLOOP_TLS_CERT` and `$EVLOOP_TLS_KEY` name a PEM chain and key to serve.
//! Without them the server makes a throwaway CA and a certificate for `localhost` signed by
//! it, and writes the CA certificate to `$EVLOOP_TLS_CA` (default
//! `<temp dir>/evloop-tls-example-ca.pem`) for the client to trust.

use evloop::prelude::*;
use evloop::tls::tls_info;

/// Echoes one line back over TLS.
async fn handle_echo(mut reader: StreamReader, writer: StreamWriter) -> Result<(), Error> {
    let line = reader.readline().await?;
    let info = tls_info(writer.transport()).expect("a TLS connection");
    println!(
        "Received {:?} over {:?} ({})",
        String::from_utf8_lossy(&line).trim_end(),
        info.version.expect("negotiated"),
        info.cipher.unwrap_or("?"),
    );
    writer.write(&line)?;
    writer.drain().await?;
    writer.close();
    writer.wait_closed().await
}

/// The server context: from `$EVLOOP_TLS_CERT` / `$EVLOOP_TLS_KEY`, or a fresh certificate
/// for `localhost` whose CA goes to `$EVLOOP_TLS_CA`.
fn server_context() -> Result<SslContext, Box<dyn std::error::Error>> {
    if let (Ok(cert), Ok(key)) = (
        std::env::var("EVLOOP_TLS_CERT"),
        std::env::var("EVLOOP_TLS_KEY"),
    ) {
        return Ok(SslContext::server()
            .cert_chain_pem_file(cert)?
            .private_key_pem_file(key)?
            .build()?);
    }
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &ca, &ca_key)?;
    let ca_path = std::env::var("EVLOOP_TLS_CA").unwrap_or_else(|_| {
        let p = std::env::temp_dir().join("evloop-tls-example-ca.pem");
        p.to_string_lossy().into_owned()
    });
    std::fs::write(&ca_path, ca.pem())?;
    println!("CA certificate written to {ca_path}");
    Ok(SslContext::server()
        .cert_chain_pem(leaf.pem().as_bytes())?
        .private_key_pem(key.serialize_pem().as_bytes())?
        .build()?)
}

/// The port: the first argument, else `$EVLOOP_PORT`, else 8443.
fn port() -> u16 {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("EVLOOP_PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(8443)
}

/// Runs the example (see the file's top comment).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = server_context()?;
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let options = ServerOptions::new().ssl(ctx);
        let server = lp2
            .start_server(handle_echo, "127.0.0.1", port(), options)
            .await?;
        let addrs: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
        println!("Serving TLS on {}", addrs.join(", "));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.serve_forever().await
    })??;
    Ok(())
}
