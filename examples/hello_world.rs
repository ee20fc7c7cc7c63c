//! "Hello World with call_soon()" from the asyncio docs: schedule a callback that prints
//! "Hello World" and stops the loop.
//!
//! `cargo run --example hello_world`

use evloop::prelude::*;

/// The callback: prints, then stops the loop.
fn hello_world(lp: &EventLoop) {
    println!("Hello World");
    lp.stop();
}

/// Runs the example (see the file's top comment).
pub fn main() -> Result<(), Error> {
    let lp = EventLoop::new()?;
    // Schedule a call to hello_world().
    lp.call_soon(hello_world)?;
    // Blocking call interrupted by lp.stop().
    let run = lp.run_forever();
    lp.close()?;
    run
}
