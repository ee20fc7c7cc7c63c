//! "UDP Echo Server" from the asyncio docs: a datagram endpoint on 127.0.0.1 that sends every
//! datagram back to where it came from, printing what it does.
//!
//! `cargo run --example udp_echo_server [PORT]` (or `EVLOOP_UDP_PORT=PORT`; default 9999),
//! then `cargo run --example udp_echo_client [PORT]` in another terminal. Stop it with Ctrl+C.
//!
//! The protocol is a plain struct: the transport owns it and calls its methods on the loop's
//! thread, one at a time, so it needs no locking. It keeps a clone of the transport handle to
//! answer from `datagram_received`.

use std::process::ExitCode;

use evloop::net::{Addr, DatagramOptions, DatagramTransport};
use evloop::prelude::*;

/// Echoes each datagram back to its sender.
struct EchoServerProtocol {
    /// The endpoint, set by `connection_made`.
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for EchoServerProtocol {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: &[u8], addr: &Addr) {
        let message = String::from_utf8_lossy(data);
        println!("Received '{message}' from {addr}");
        println!("Send '{message}' to {addr}");
        if let Some(t) = &self.transport {
            if let Err(e) = t.sendto(data, Some(addr)) {
                eprintln!("udp_echo_server: cannot answer {addr}: {e}");
            }
        }
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
            .map_err(|_| format!("invalid port {p:?}: give a number from 0 to 65535")),
    }
}

async fn serve(lp: EventLoop, port: u16) -> evloop::Result<()> {
    let (transport, _protocol) = lp
        .create_datagram_endpoint(
            || EchoServerProtocol { transport: None },
            DatagramOptions::local(("127.0.0.1", port)),
        )
        .await?;
    // Printed once the socket is bound, so that a client started after this line is heard.
    println!("Starting UDP server");
    // Serve until the process is stopped: a future nobody completes.
    let forever = lp.create_future::<()>();
    let result = forever.await;
    transport.close();
    result
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let port = match port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("udp_echo_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = EventLoop::new().and_then(|lp| lp.run_until_complete(serve(lp.clone(), port))?);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}
