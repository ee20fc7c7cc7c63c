//! Helpers shared by the signal tests: loop-testkit's, under the names these tests use, and
//! the signal-specific ones.

#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use loop_core::EventLoop;

pub use loop_testkit::{
    eventually, exclusive, record_exceptions, spin_until, watchdog, watchdog_for, Exceptions,
};

/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const LONG: Duration = loop_testkit::LONG;

/// Signal handlers are process-wide: a test that installs one runs alone
/// ([`loop_testkit::exclusive`]), which is also its watchdog.
pub fn serial() -> loop_testkit::Watchdog {
    loop_testkit::exclusive()
}

/// Sends `sig` to the calling thread (`raise`): it is handled before this returns, so a test
/// that removes the handler afterwards cannot be hit by a late delivery.
pub fn send(sig: i32) {
    signal_hook::low_level::raise(sig).unwrap();
}

/// Sends `sig` to the whole process (`kill(getpid(), sig)`): any thread may handle it.
pub fn send_to_process(sig: i32) {
    let s = rustix::process::Signal::from_named_raw(sig).expect("a named signal");
    rustix::process::kill_process(rustix::process::getpid(), s).unwrap();
}

/// True while `sig` is pending for the process as a whole (`ShdPnd` in /proc/self/status).
pub fn pending_for_process(sig: i32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("ShdPnd:"))
        .expect("ShdPnd in /proc/self/status");
    let mask = u64::from_str_radix(line["ShdPnd:".len()..].trim(), 16).unwrap();
    mask & (1u64 << (sig - 1)) != 0
}

/// Runs one loop iteration (zero-timeout poll).
pub fn one_iteration(lp: &EventLoop) {
    loop_testkit::run_once(lp);
}

/// A watchdog with the loop registered ([`loop_testkit::watchdog_for`]), under the name these
/// tests use: if the test hangs, the loop unwinds with a fatal error and the test fails.
pub struct Watchdog(loop_testkit::Watchdog);

impl Watchdog {
    pub fn new(lp: &EventLoop) -> Watchdog {
        Watchdog(loop_testkit::watchdog_for(lp))
    }

    /// Ends the watchdog; true if its limit passed.
    pub fn fired(self) -> bool {
        self.0.fired()
    }
}

/// Runs `test` of this test binary as a child process with `env_key=mode`; once the child
/// printed a line containing `ready`, sends it `sig` and waits (at most `LONG`) for it to
/// exit. Returns its exit status and output.
pub fn run_child(
    test: &str,
    env_key: &str,
    mode: &str,
    ready: &str,
    sig: i32,
) -> (ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let mut c: Child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env_key, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(c.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let deadline = Instant::now() + LONG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
                // libtest prints "test NAME ... " on the same line before the test's output.
                if line.contains(ready) {
                    break;
                }
            }
            Err(e) => {
                let _ = c.kill();
                let _ = c.wait();
                panic!("the child did not get ready ({e:?}); output: {text}");
            }
        }
    }
    let pid = rustix::process::Pid::from_child(&c);
    let s = rustix::process::Signal::from_named_raw(sig).expect("a named signal");
    rustix::process::kill_process(pid, s).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LONG {
            let _ = c.kill();
            let s = c.wait().unwrap();
            panic!("the child survived signal {sig} ({s:?}); output: {text}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    reader.join().unwrap();
    for line in rx.try_iter() {
        text.push_str(&line);
        text.push('\n');
    }
    (status, text)
}
