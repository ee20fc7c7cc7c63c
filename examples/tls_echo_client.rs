//! A TLS echo client: `open_connection` with `ssl=` and `server_hostname`, one line out, its
//! echo back, then `close_notify`.
//!
//! `cargo run --features tls --example tls_echo_client [-- PORT]` connects to
//! 127.0.0.1:PORT (default: `$EVLOOP_PORT`, else 8443) and trusts the CA certificate in
//! `$EVLOOP_TLS_CA` (default `<temp dir>/evloop-tls-example-ca.pem`, where
//! `tls_echo_server` writes its own), checking the server's certificate for `localhost`.

use evloop::prelude::*;
use evloop::tls::tls_info;

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
    let ca = std::env::var("EVLOOP_TLS_CA").unwrap_or_else(|_| {
        let p = std::env::temp_dir().join("evloop-tls-example-ca.pem");
        p.to_string_lossy().into_owned()
    });
    let ctx = SslContext::client()
        .root_certificates_pem_file(&ca)?
        .build()?;
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let options = ConnectOptions::new().ssl(ctx).server_hostname("localhost");
        let (mut reader, writer) = lp2.open_connection("127.0.0.1", port(), options).await?;
        let info = tls_info(writer.transport()).expect("a TLS connection");
        println!(
            "Connected with {:?}, certificate verified for {}",
            info.version.expect("negotiated"),
            info.server_hostname.as_deref().unwrap_or("?")
        );
        let message = "Hello over TLS!";
        println!("Send: {message:?}");
        writer.write(format!("{message}\n").as_bytes())?;
        let echo = reader.readline().await?;
        println!("Received: {:?}", String::from_utf8_lossy(&echo).trim_end());
        writer.close();
        writer.wait_closed().await
    })??;
    Ok(())
}
