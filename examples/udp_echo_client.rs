//! "UDP Echo Client" from the asyncio docs: sends "Hello World!" to the echo server on
//! 127.0.0.1, prints the answer and closes.
//!
//! Start `cargo run --example udp_echo_server [PORT]` first, then
//! `cargo run --example udp_echo_client [PORT]` (or `EVLOOP_UDP_PORT=PORT`; default 9999).
//!
//! The endpoint is connected to the server (`remote_addr`), so `sendto` needs no address, and
//! an ICMP "port unreachable" (no server listening) comes back as `error_received`.

use std::process::ExitCode;

use evloop::net::{Addr, DatagramOptions, DatagramTransport};
use evloop::prelude::*;

/// Sends one message, prints the reply, closes.
struct EchoClientProtocol {
    /// What to send.
    message: String,
    /// Completed by `connection_lost`.
    on_con_lost: LoopFuture<bool>,
    /// The endpoint, set by `connection_made`.
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
        println!("Send: {}", self.message);
        if let Err(e) = transport.sendto(self.message.as_bytes(), None) {
            eprintln!("udp_echo_client: cannot send: {e}");
            transport.close();
        }
    }

    fn datagram_received(&mut self, data: &[u8], _addr: &Addr) {
        println!("Received: {}", String::from_utf8_lossy(data));
        println!("Close the socket");
        if let Some(t) = &self.transport {
            t.close();
        }
    }

    fn error_received(&mut self, exc: std::io::Error) {
        println!("Error received: {exc}");
    }

    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        println!("Connection closed");
        self.transport = None;
        let _ = self.on_con_lost.set_result(true);
    }
}

/// The port: first argument, else `EVLOOP_UDP_PORT`, else 9999.
fn port() -> Result<u16, String> {
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("EVLOOP_UDP_PORT").ok());
    match given {
        None => Ok(9999),
        Some(p) => p
            .parse()
            .map_err(|_| format!("invalid port {p:?}: give a number from 1 to 65535")),
    }
}

async fn talk(lp: EventLoop, port: u16) -> evloop::Result<()> {
    let on_con_lost = lp.create_future::<bool>();
    let message = "Hello World!".to_string();
    let lost = on_con_lost.clone();
    let (transport, _protocol) = lp
        .create_datagram_endpoint(
            move || EchoClientProtocol {
                message,
                on_con_lost: lost,
                transport: None,
            },
            DatagramOptions::remote(("127.0.0.1", port)),
        )
        .await?;
    let result = on_con_lost.await;
    transport.close();
    result.map(|_| ())
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let port = match port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("udp_echo_client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = EventLoop::new().and_then(|lp| lp.run_until_complete(talk(lp.clone(), port))?);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}
