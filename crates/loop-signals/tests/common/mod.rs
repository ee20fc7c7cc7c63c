//! Helpers shared by the signal tests.

#![allow(dead_code)]

use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loop_core::{EventLoop, Remote};

/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const LONG: Duration = Duration::from_secs(30);

/// Signal handlers are process-wide: the tests of one binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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
    lp.stop();
    lp.run_forever().unwrap();
}

/// Runs loop iterations until `cond` holds (at most `LONG`).
pub fn spin_until(lp: &EventLoop, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < LONG {
        one_iteration(lp);
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Waits (at most `LONG`) until `cond` holds, without running a loop.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < LONG {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Stops the loop if the test hangs; dropping it ends its thread at once.
pub struct Watchdog {
    tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<bool>>,
}

impl Watchdog {
    pub fn new(lp: &EventLoop) -> Watchdog {
        let remote: Remote = lp.remote();
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || match rx.recv_timeout(LONG) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = remote.stop();
                true
            }
            _ => false,
        });
        Watchdog {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Ends the watchdog; true if it had to stop the loop.
    pub fn fired(mut self) -> bool {
        self.finish()
    }

    fn finish(&mut self) -> bool {
        drop(self.tx.take());
        self.handle
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or(false)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}
