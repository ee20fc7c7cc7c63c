//! "Set signal handlers for SIGINT and SIGTERM" from the asyncio docs: the loop runs for an
//! hour; SIGINT (Ctrl+C) or SIGTERM makes it print `got signal SIGxxx: exit` and stop.
//!
//! `cargo run --example signals`, then press Ctrl+C or `kill -TERM <pid>`.
//!
//! The handlers run as ordinary loop callbacks, not inside the signal handler, so they may do
//! anything a callback may do (here: print and stop the loop).

use std::process::ExitCode;
use std::time::Duration;

use evloop::prelude::*;
use evloop::signals::consts::{SIGINT, SIGTERM};

/// What the handler of `signame` does: report and stop the loop.
fn ask_exit(signame: &str, lp: &EventLoop) {
    println!("got signal {signame}: exit");
    lp.stop();
}

fn run() -> evloop::Result<()> {
    let lp = EventLoop::new()?;
    for (sig, signame) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
        lp.add_signal_handler(sig, move |lp| ask_exit(signame, lp))?;
    }
    // An hour, like the docs' `await asyncio.sleep(3600)`.
    lp.call_later(Duration::from_secs(3600), |lp| lp.stop())?;
    println!("Event loop running for 1 hour, press Ctrl+C to interrupt.");
    println!(
        "pid {}: send SIGINT or SIGTERM to exit.",
        std::process::id()
    );
    lp.run_forever()?;
    // close() removes the handlers again: SIGINT and SIGTERM get their default behaviour back.
    lp.close()
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signals: {e}");
            ExitCode::FAILURE
        }
    }
}
