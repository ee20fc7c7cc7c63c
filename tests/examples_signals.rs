//! Builds and runs the `signals` example as a child process: once it says it runs, SIGTERM
//! (then, in a second run, SIGINT) makes it print `got signal SIGxxx: exit` and exit with 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "signals timers";

/// Generous bound for a loaded machine.
const LONG: Duration = Duration::from_secs(60);

/// Runs the example, sends `sig` once it printed its pid, and returns (exit code, stdout).
fn run_and_signal(sig: Signal) -> (Option<i32>, Vec<String>) {
    let exe = loop_testkit::build_example("signals", EXAMPLE_FEATURES);
    let mut child = Command::new(&exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + LONG;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let ready = line.starts_with("pid ");
                lines.push(line);
                if ready {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the example did not start ({e:?}): {lines:?}");
            }
        }
    }
    // The handlers are installed before the pid line is printed.
    kill_process(Pid::from_child(&child), sig).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LONG {
            let _ = child.kill();
            let s = child.wait().unwrap();
            panic!("the example survived the signal ({s:?}): {lines:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert!(err.is_empty(), "stderr: {err}");
    (status.code(), lines)
}

#[test]
fn signals_example_exits_cleanly_on_sigterm() {
    let _w = loop_testkit::watchdog();
    let (code, lines) = run_and_signal(Signal::TERM);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        "Event loop running for 1 hour, press Ctrl+C to interrupt."
    );
    assert!(lines[1].starts_with("pid "), "{lines:?}");
    assert!(
        lines[1].ends_with(": send SIGINT or SIGTERM to exit."),
        "{lines:?}"
    );
    assert_eq!(lines[2], "got signal SIGTERM: exit");
}

#[test]
fn signals_example_exits_cleanly_on_sigint() {
    let _w = loop_testkit::watchdog();
    let (code, lines) = run_and_signal(Signal::INT);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("got signal SIGINT: exit")
    );
}
