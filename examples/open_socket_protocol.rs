//! "Register an open socket to wait for data using a protocol" from the asyncio docs: one end
//! of a socket pair is wrapped with `create_connection_sock` (asyncio's
//! `create_connection(..., sock=rsock)`); a callback sends "abc" through
//! the other end; the protocol prints it and closes.
//!
//! `cargo run --example open_socket_protocol`

use std::io::Write;
use std::os::unix::net::UnixStream;

use evloop::prelude::*;

/// Prints the data, closes the transport, and completes `wait_for` when the connection ends.
struct MyProtocol {
    /// Set in `connection_made`.
    transport: Option<Transport>,
    /// Completed by `connection_lost`.
    on_con_lost: LoopFuture<()>,
}

impl Protocol for MyProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        println!("Received: {}", String::from_utf8_lossy(data));
        // We are done: close the transport; connection_lost() will be called automatically.
        if let Some(t) = &self.transport {
            t.close();
        }
    }

    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        let _ = self.on_con_lost.set_result(());
    }
}

/// Runs the example (see the file's top comment).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = EventLoop::new()?;
    let (rsock, wsock) = UnixStream::pair()?;
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let on_con_lost = lp2.create_future::<()>();
        let lost = on_con_lost.clone();
        // Register the socket to wait for data.
        let (transport, _protocol) = lp2
            .create_connection_sock(
                move || MyProtocol {
                    transport: None,
                    on_con_lost: lost,
                },
                rsock,
                ConnectOptions::new(),
            )
            .await?;
        // Simulate the reception of data from the network.
        lp2.call_soon(move |_| {
            let _ = (&wsock).write_all(b"abc");
        })?;
        let r = on_con_lost.await;
        transport.close();
        r
    })??;
    Ok(())
}
