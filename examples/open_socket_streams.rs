//! "Register an open socket to wait for data using streams" from the asyncio docs: one end of
//! a socket pair becomes a reader/writer with `open_connection(sock=...)`; a callback sends
//! "abc" through the other end; the reader prints it.
//!
//! `cargo run --example open_socket_streams`

use std::io::Write;
use std::os::unix::net::UnixStream;

use evloop::prelude::*;

/// Runs the example (see the file's top comment).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = EventLoop::new()?;
    let (rsock, wsock) = UnixStream::pair()?;
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        // Register the open socket to wait for data.
        let (mut reader, writer) = lp2
            .open_connection_sock(rsock, ConnectOptions::new())
            .await?;
        // Simulate the reception of data from the network.
        lp2.call_soon(move |_| {
            let _ = (&wsock).write_all(b"abc");
        })?;
        // Wait for data.
        let data = reader.read(100).await?;
        // Got data, we are done: close the socket.
        println!("Received: {}", String::from_utf8_lossy(&data));
        writer.close();
        writer.wait_closed().await
    })??;
    Ok(())
}
