//! Driving a loop step by step, and waiting for conditions, with bounds against hangs.

use std::time::{Duration, Instant};

use loop_core::EventLoop;

/// The bound of [`spin_until`] and [`eventually`]: generous for anything that should happen
/// "soon" on a loaded machine, and well inside the watchdog's limit. Never a timing assertion.
///
/// ```
/// assert!(loop_testkit::LONG < loop_testkit::DEFAULT_LIMIT);
/// ```
pub const LONG: Duration = Duration::from_secs(30);

/// Runs exactly one loop iteration (a pre-stopped `run_forever`: ready callbacks, one poll
/// without blocking).
///
/// # Panics
///
/// If `run_forever` fails (the loop is closed or already running).
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let ran = std::rc::Rc::new(std::cell::Cell::new(false));
/// let r = ran.clone();
/// lp.call_soon(move |_| r.set(true)).unwrap();
/// loop_testkit::run_once(&lp);
/// assert!(ran.get());
/// ```
pub fn run_once(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().expect("one loop iteration");
}

/// Runs `n` loop iterations.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// loop_testkit::spin(&lp, 3);
/// assert_eq!(lp.stats().iterations, 3);
/// ```
pub fn spin(lp: &EventLoop, n: usize) {
    for _ in 0..n {
        run_once(lp);
    }
}

/// Runs one loop iteration, then more, with short sleeps in between, until `cond` holds; false
/// if it still does not after [`LONG`]. `spin_until(&lp, || true)` runs exactly one iteration.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let ran = std::rc::Rc::new(std::cell::Cell::new(false));
/// let r = ran.clone();
/// lp.call_soon(move |_| r.set(true)).unwrap();
/// assert!(loop_testkit::spin_until(&lp, || ran.get()));
/// assert!(loop_testkit::spin_until(&lp, || true));
/// assert_eq!(lp.stats().iterations, 2);
/// ```
pub fn spin_until(lp: &EventLoop, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        run_once(lp);
        if cond() {
            return true;
        }
        if start.elapsed() >= LONG {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits, without running a loop, until `cond` holds; false if it still does not after
/// [`LONG`].
///
/// ```
/// let t = std::thread::spawn(|| 7);
/// assert!(loop_testkit::eventually(|| t.is_finished()));
/// ```
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
