//! "Watch a file descriptor for read events" from the asyncio docs: wait until a socket of a
//! socket pair has data with `add_reader`, print it, stop watching and stop the loop.
//!
//! `cargo run --example watch_fd`

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop::prelude::*;

/// Runs the example; `main` reports its error.
pub fn run() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    // A pair of connected sockets.
    let (rsock, wsock) = UnixStream::pair()?;
    rsock.set_nonblocking(true)?;
    let rsock = Rc::new(rsock);
    let wsock = Rc::new(RefCell::new(wsock));

    // Register the read end for read events.
    let r = rsock.clone();
    lp.add_reader(&*rsock, move |lp| {
        // This callback runs when rsock is readable.
        let mut buf = [0u8; 100];
        match (&*r).read(&mut buf) {
            Ok(n) => println!("Received: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => eprintln!("recv failed: {e}"),
        }
        // We are done: unregister the file descriptor and stop the event loop.
        if let Err(e) = lp.remove_reader(&*r) {
            eprintln!("remove_reader failed: {e}");
        }
        lp.stop();
    })?;

    // Simulate the reception of data from the network.
    lp.call_soon(move |_| {
        if let Err(e) = wsock.borrow_mut().write_all(b"abc") {
            eprintln!("send failed: {e}");
        }
    })?;

    // Run the event loop until it is stopped by the reader.
    let run = lp.run_forever();
    lp.close()?;
    run
}

/// Runs the example (see the file's top comment).
pub fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("watch_fd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
