//! One loop per core: a TCP echo server on `N` event loops, each on its own thread with its
//! own listening socket on the same port (`SO_REUSEPORT`), the kernel spreading incoming
//! connections across them.
//!
//! An `EventLoop` belongs to one thread, so using more cores means running more loops, each
//! owning its sockets. With `reuse_port` every loop binds its own listener to the same port
//! and the kernel picks a listener per connection (by a hash of the addresses), so there is no
//! shared accept queue and no lock between the loops.
//!
//! `cargo run --example echo_multicore -- [--loops N] [--port P] [--secs S]`
//!
//! * `--loops N`: number of loops (default: the available parallelism);
//! * `--port P`: port on 127.0.0.1 (default: `$EVLOOP_PORT`, else 8888; 0 picks a free one);
//! * `--secs S`: stop after S seconds (default: run until SIGINT or SIGTERM).
//!
//! It prints `Serving on 127.0.0.1:PORT with N loops`, and at shutdown (all loops stopped and
//! their threads joined) the connections each loop accepted: `loop 0: 12 connections`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evloop::prelude::*;
use evloop::signals::consts::{SIGINT, SIGTERM};

/// Writes every chunk back as it arrives.
struct Echo {
    /// Set in `connection_made`.
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            // A failed write closes the connection; nothing else to do here.
            let _ = t.write(data);
        }
    }
}

/// The command line.
struct Args {
    /// Number of loops.
    loops: usize,
    /// Port to listen on (0: any free port).
    port: u16,
    /// Stop after this long, if given.
    secs: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        loops: std::thread::available_parallelism().map_or(1, |n| n.get()),
        port: std::env::var("EVLOOP_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8888),
        secs: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad value {value:?} for {flag}: {e}");
        match flag.as_str() {
            "--loops" => args.loops = value.parse().map_err(|e| bad(&e))?,
            "--port" => args.port = value.parse().map_err(|e| bad(&e))?,
            "--secs" => args.secs = Some(value.parse().map_err(|e| bad(&e))?),
            _ => {
                return Err(format!(
                    "unknown argument {flag:?} (expected --loops N, --port P, --secs S)"
                ))
            }
        }
    }
    Ok(args)
}

fn run(args: Args) -> evloop::Result<()> {
    let n = args.loops;
    // Connections accepted by each loop.
    let accepted: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    // The port: loop 0 binds the requested one (maybe 0, "any"), the others the one it got.
    // `spawn_loops` runs the setups one after the other, so loop 0 has stored it before
    // loop 1 reads it.
    let port = Arc::new(AtomicU16::new(args.port));
    let counts = accepted.clone();
    let shared_port = port.clone();
    let group = evloop::spawn_loops(n, move |lp, i| {
        let counts = counts.clone();
        let options = ServerOptions::new().reuse_port(true);
        let factory = move || {
            counts[i].fetch_add(1, Ordering::Relaxed);
            Echo { transport: None }
        };
        let server = lp.run_until_complete(lp.create_server(
            factory,
            "127.0.0.1",
            shared_port.load(Ordering::SeqCst),
            options,
        ))??;
        if i == 0 {
            let bound = server
                .local_addrs()
                .first()
                .and_then(|a| a.as_inet())
                .map_or(0, |a| a.port());
            shared_port.store(bound, Ordering::SeqCst);
        }
        // The loop keeps a serving server alive; it closes with the loop.
        Ok(())
    })?;
    println!(
        "Serving on 127.0.0.1:{} with {n} loops",
        port.load(Ordering::SeqCst)
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    // The main thread waits on a loop of its own for SIGINT, SIGTERM or the time limit.
    let main = EventLoop::new()?;
    for sig in [SIGINT, SIGTERM] {
        main.add_signal_handler(sig, |lp| lp.stop())?;
    }
    if let Some(secs) = args.secs {
        main.call_later(Duration::from_secs_f64(secs), |lp| lp.stop())?;
    }
    main.run_forever()?;
    main.close()?;

    // Stop every loop and join its thread; each loop closes its server and connections.
    let joined = group.join();
    for (i, c) in accepted.iter().enumerate() {
        println!("loop {i}: {} connections", c.load(Ordering::Relaxed));
    }
    joined?;
    println!("Stopped {n} loops");
    Ok(())
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_multicore: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_multicore: {e}");
            ExitCode::FAILURE
        }
    }
}
