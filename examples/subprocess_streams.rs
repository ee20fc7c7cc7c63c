//! The subprocess examples of the asyncio docs that use streams:
//!
//! 1. `create_subprocess_exec` with `stdout=PIPE`: read one line of a child's output, then
//!    wait for it to exit (the docs print the date from a Python one-liner; this runs
//!    `date -u '+%Y-%m-%d %H:%M:%S'`).
//! 2. `create_subprocess_shell` with stdout and stderr piped and `communicate()`: run a shell
//!    command and report its exit code and both outputs (the docs run `ls /zzz`).
//!
//! `cargo run --example subprocess_streams [-- 'SHELL COMMAND']`; the default command is
//! `ls /zzz`.

use std::process::ExitCode;

use evloop::prelude::*;
use evloop::subprocess::{Stdio, SubprocessOptions};

async fn get_date(lp: &EventLoop) -> Result<String, Error> {
    // Create the subprocess; redirect the standard output into a pipe.
    let mut proc = lp
        .create_subprocess_exec(
            "date",
            SubprocessOptions::new()
                .args(["-u", "+%Y-%m-%d %H:%M:%S"])
                .stdout(Stdio::Pipe),
        )
        .await?;

    // Read one line of output.
    let data = proc
        .stdout
        .as_mut()
        .expect("stdout is piped")
        .readline()
        .await?;
    let line = String::from_utf8_lossy(&data).trim_end().to_string();

    // Wait for the subprocess exit.
    proc.wait().await?;
    Ok(line)
}

async fn run(lp: &EventLoop, cmd: &str) -> Result<(), Error> {
    let mut proc = lp
        .create_subprocess_shell(
            cmd,
            SubprocessOptions::new()
                .stdout(Stdio::Pipe)
                .stderr(Stdio::Pipe),
        )
        .await?;

    let (stdout, stderr) = proc.communicate(None).await?;

    println!(
        "[{cmd:?} exited with {}]",
        proc.returncode().expect("communicate() waits for the exit")
    );
    if let Some(out) = stdout.filter(|o| !o.is_empty()) {
        println!("[stdout]\n{}", String::from_utf8_lossy(&out));
    }
    if let Some(err) = stderr.filter(|e| !e.is_empty()) {
        println!("[stderr]\n{}", String::from_utf8_lossy(&err));
    }
    Ok(())
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let cmd = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ls /zzz".to_string());
    let go = || -> Result<(), Error> {
        let lp = EventLoop::new()?;
        let lp2 = lp.clone();
        let r = lp.run_until_complete(async move {
            let date = get_date(&lp2).await?;
            println!("Current date: {date}");
            run(&lp2, &cmd).await
        })?;
        lp.close()?;
        r
    };
    match go() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("subprocess_streams: {e}");
            ExitCode::FAILURE
        }
    }
}
