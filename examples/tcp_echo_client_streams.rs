//! "TCP echo client using streams" from the asyncio docs: `open_connection`, write a message,
//! read the echo.
//!
//! `cargo run --example tcp_echo_client_streams [-- PORT]` connects to 127.0.0.1:PORT
//! (default: `$EVLOOP_PORT`, else 8888).

use evloop::prelude::*;

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
        let message = "Hello World!";
        let (mut reader, writer) = lp2
            .open_connection("127.0.0.1", port(), ConnectOptions::new())
            .await?;
        println!("Send: {message:?}");
        writer.write(message.as_bytes())?;
        writer.drain().await?;
        let data = reader.read(100).await?;
        println!("Received: {:?}", String::from_utf8_lossy(&data));
        println!("Close the connection");
        writer.close();
        writer.wait_closed().await
    })?
}
