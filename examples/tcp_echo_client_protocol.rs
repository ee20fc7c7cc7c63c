//! "TCP Echo Client" (transports and protocols) from the asyncio docs: sends a message, prints
//! the echo, and finishes when the server closes the connection.
//!
//! `cargo run --example tcp_echo_client_protocol [-- PORT]` connects to 127.0.0.1:PORT
//! (default: `$EVLOOP_PORT`, else 8888).

use evloop::prelude::*;

/// Sends `message` once connected; completes `on_con_lost` when the connection ends.
struct EchoClientProtocol {
    /// What to send.
    message: String,
    /// Completed by `connection_lost`.
    on_con_lost: LoopFuture<()>,
}

impl Protocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport.write(self.message.as_bytes());
        println!("Data sent: {:?}", self.message);
    }

    fn data_received(&mut self, data: &[u8]) {
        println!("Data received: {:?}", String::from_utf8_lossy(data));
    }

    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        println!("The server closed the connection");
        let _ = self.on_con_lost.set_result(());
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
        let on_con_lost = lp2.create_future::<()>();
        let message = "Hello World!".to_string();
        let lost = on_con_lost.clone();
        let (transport, _protocol) = lp2
            .create_connection(
                move || EchoClientProtocol {
                    message,
                    on_con_lost: lost,
                },
                "127.0.0.1",
                port(),
                ConnectOptions::new(),
            )
            .await?;
        // Wait until the protocol signals that the connection is lost, then close.
        let r = on_con_lost.await;
        transport.close();
        r
    })?
}
