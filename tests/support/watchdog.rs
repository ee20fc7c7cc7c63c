//! A watchdog for tests, shared by the test suites of several crates: each includes this file
//! with `#[path]`, after bringing `EventLoop`, `Fatal` and `fatal` into scope (from loop-core,
//! or from the evloop facade).

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use super::{fatal, EventLoop, Fatal};

/// Runs `fut` to completion on `lp`; a watchdog thread aborts the run (with a [`Fatal`]
/// unwind) if it takes longer than `secs` — a generous bound against hangs, never a timing
/// assertion.
pub fn run<F>(lp: &EventLoop, secs: u64, fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (tx, rx) = mpsc::channel::<()>();
    let remote = lp.remote();
    let dog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            let _ = remote.call_soon_threadsafe(|_| fatal("test watchdog: timed out"));
        }
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run_until_complete(fut)));
    let _ = tx.send(());
    dog.join().unwrap();
    match r {
        Ok(r) => r.expect("run_until_complete failed"),
        Err(p) if p.is::<Fatal>() => panic!("test watchdog: not done within {secs} s"),
        Err(p) => std::panic::resume_unwind(p),
    }
}
