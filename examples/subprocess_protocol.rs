//! "Get the output of a subprocess using a subprocess protocol and wait for the subprocess
//! exit" from the asyncio docs (loop.subprocess_exec).
//!
//! The child is `date -u '+%Y-%m-%d %H:%M:%S'` (the asyncio docs run a Python one-liner that
//! prints `datetime.now()`). The protocol collects stdout in `pipe_data_received` and completes
//! a future once `process_exited` *and* `pipe_connection_lost` were both called, since they
//! come in no fixed order. As in asyncio, `subprocess_exec` returns the transport and the
//! protocol (a `ProtocolRef`), and the output is read from the protocol afterwards.
//!
//! `cargo run --example subprocess_protocol` prints `Current date: 2024-05-01 12:34:56`.

use std::io;
use std::process::ExitCode;

use evloop::prelude::*;
use evloop::subprocess::{Stdio, SubprocessOptions};

struct DateProtocol {
    exit_future: LoopFuture<bool>,
    output: Vec<u8>,
    pipe_closed: bool,
    exited: bool,
}

impl SubprocessProtocol for DateProtocol {
    fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
        self.output.extend_from_slice(data);
    }

    fn pipe_connection_lost(&mut self, _fd: i32, _exc: Option<io::Error>) {
        self.pipe_closed = true;
        self.check_for_exit();
    }

    fn process_exited(&mut self) {
        self.exited = true;
        // process_exited() can come before pipe_connection_lost(): wait for both.
        self.check_for_exit();
    }
}

impl DateProtocol {
    fn check_for_exit(&self) {
        if self.pipe_closed && self.exited {
            let _ = self.exit_future.set_result(true);
        }
    }
}

async fn get_date(lp: EventLoop) -> Result<String, Error> {
    let exit_future = lp.create_future::<bool>();

    // Create the subprocess controlled by DateProtocol; stdout goes into a pipe (the default),
    // stdin and stderr are inherited.
    let f = exit_future.clone();
    let (transport, protocol) = lp
        .subprocess_exec(
            move || DateProtocol {
                exit_future: f,
                output: Vec::new(),
                pipe_closed: false,
                exited: false,
            },
            "date",
            SubprocessOptions::new()
                .args(["-u", "+%Y-%m-%d %H:%M:%S"])
                .stdin(Stdio::Inherit)
                .stderr(Stdio::Inherit),
        )
        .await?;

    // Wait for the subprocess exit using the process_exited() method of the protocol.
    exit_future.await?;

    // Close the stdout pipe.
    transport.close();

    // Read the output which was collected by the pipe_data_received() method of the protocol.
    let data = protocol.with(|p| p.output.clone()).unwrap_or_default();
    Ok(String::from_utf8_lossy(&data).trim_end().to_string())
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let run = || -> Result<String, Error> {
        let lp = EventLoop::new()?;
        let date = lp.run_until_complete(get_date(lp.clone()))?;
        lp.close()?;
        date
    };
    match run() {
        Ok(date) => {
            println!("Current date: {date}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("subprocess_protocol: {e}");
            ExitCode::FAILURE
        }
    }
}
