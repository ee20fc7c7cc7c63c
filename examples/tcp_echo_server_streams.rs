//! "TCP echo server using streams" from the asyncio docs: `start_server` runs `handle_echo`
//! as a task for every client.
//!
//! `cargo run --example tcp_echo_server_streams [-- PORT]` listens on 127.0.0.1:PORT
//! (default: `$EVLOOP_PORT`, else 8888; 0 picks a free port) until interrupted.

use evloop::prelude::*;
use evloop::transport::Extra;

/// Reads up to 100 bytes, echoes them, closes.
async fn handle_echo(mut reader: StreamReader, writer: StreamWriter) -> Result<(), Error> {
    let data = reader.read(100).await?;
    let message = String::from_utf8_lossy(&data).into_owned();
    let addr = writer
        .get_extra_info(Extra::Peername)
        .and_then(|v| v.as_addr().map(|a| a.to_string()))
        .unwrap_or_default();
    println!("Received {message:?} from {addr}");
    println!("Send: {message:?}");
    writer.write(&data)?;
    writer.drain().await?;
    println!("Close the connection");
    writer.close();
    writer.wait_closed().await
}

/// The port: the first argument, else `$EVLOOP_PORT`, else 8888.
fn port() -> u16 {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("EVLOOP_PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(8888)
}

/// Runs the example (see the file's top comment).
pub fn main() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let server = lp2
            .start_server(handle_echo, "127.0.0.1", port(), ServerOptions::new())
            .await?;
        let addrs: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
        println!("Serving on {}", addrs.join(", "));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.serve_forever().await
    })?
}
