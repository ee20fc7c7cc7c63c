//! An HTTPS-style request against a local evloop TLS server, in one process: the server is
//! `start_server` with `ssl=` answering every request with a small HTTP/1.1 response; the client
//! is `open_connection` with `ssl=` and `server_hostname=`, verifying the server's certificate
//! against a throwaway CA made at start-up, sending `GET /` and reading the response to the end
//! (the server closes with `close_notify`).
//!
//! `cargo run --features tls --example https_request`

use evloop::prelude::*;
use evloop::tls::tls_info;

/// The body every request gets.
const BODY: &str = "Hello from evloop over TLS\n";

/// Reads the request head (up to the empty line) and answers it.
async fn handle_request(mut reader: StreamReader, writer: StreamWriter) -> Result<(), Error> {
    let request_line = reader.readline().await?;
    loop {
        let header = reader.readline().await?;
        if header == b"\r\n" || header.is_empty() {
            break;
        }
    }
    println!(
        "server: {}",
        String::from_utf8_lossy(&request_line).trim_end()
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    writer.write(response.as_bytes())?;
    writer.drain().await?;
    writer.close();
    writer.wait_closed().await
}

/// A CA and, signed by it, a server context for `localhost`; the client context trusts the CA.
fn contexts() -> Result<(SslContext, SslContext), Box<dyn std::error::Error>> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &ca, &ca_key)?;
    let server = SslContext::server()
        .cert_chain_pem(leaf.pem().as_bytes())?
        .private_key_pem(key.serialize_pem().as_bytes())?
        .build()?;
    let client = SslContext::client()
        .root_certificates_pem(ca.pem().as_bytes())?
        .build()?;
    Ok((server, client))
}

/// Runs the example (see the file's top comment).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (server_ctx, client_ctx) = contexts()?;
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let options = ServerOptions::new().ssl(server_ctx);
        let server = lp2
            .start_server(handle_request, "127.0.0.1", 0, options)
            .await?;
        let port = match server.local_addrs()[0] {
            evloop::transport::Addr::Inet(a) => a.port(),
            ref other => panic!("not an inet address: {other:?}"),
        };
        let options = ConnectOptions::new()
            .ssl(client_ctx)
            .server_hostname("localhost");
        let (mut reader, writer) = lp2.open_connection("127.0.0.1", port, options).await?;
        let info = tls_info(writer.transport()).expect("a TLS connection");
        println!(
            "client: connected with {:?}, certificate verified for localhost",
            info.version.expect("negotiated")
        );
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let response = reader.read_all().await?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        println!("client: {}", head.lines().next().unwrap_or(""));
        println!("client: body {:?}", body);
        writer.close();
        writer.wait_closed().await?;
        server.close();
        server.wait_closed().await
    })??;
    Ok(())
}
