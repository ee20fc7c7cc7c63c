//! "TCP Echo Server" (transports and protocols) from the asyncio docs: every connection gets
//! an `EchoServerProtocol` that prints what it received, sends it back and closes.
//!
//! `cargo run --example tcp_echo_server_protocol [-- PORT]` listens on 127.0.0.1:PORT
//! (default: `$EVLOOP_PORT`, else 8888) until interrupted.

use evloop::prelude::*;

/// Echoes the first message back, then closes the connection.
struct EchoServerProtocol {
    /// Set in `connection_made`.
    transport: Option<Transport>,
}

impl Protocol for EchoServerProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        let peer = transport
            .peername()
            .map(|a| a.to_string())
            .unwrap_or_default();
        println!("Connection from {peer}");
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let message = String::from_utf8_lossy(data);
        println!("Data received: {message:?}");
        println!("Send: {message:?}");
        if let Some(t) = &self.transport {
            let _ = t.write(data);
            println!("Close the client socket");
            t.close();
        }
    }
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
            .create_server(
                || EchoServerProtocol { transport: None },
                "127.0.0.1",
                port(),
                ServerOptions::new(),
            )
            .await?;
        server.serve_forever().await
    })?
}
