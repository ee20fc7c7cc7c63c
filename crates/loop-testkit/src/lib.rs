//! What evloop's integration tests share.
//!
//! Every crate's `tests/` and the facade's `tests/` need the same few tools: a watchdog so that
//! a loop that never returns fails its test instead of hanging `cargo test`, a lock so that a
//! test counting the process's fds, threads or children does not see another test's, capture
//! of the exception handler's reports and of log lines, and small probes (drop flags, event
//! logs, fd and child counts). They live here once, as a dev-dependency of every crate, rather
//! than as a copy in each crate's `tests/common/`.
//!
//! # The rules every test follows
//!
//! * **Every test takes a guard first**: `let _w = loop_testkit::watchdog();` — or
//!   [`exclusive()`] if it counts process-wide things, or a helper that takes one ([`run`],
//!   [`watchdog_for`]). The guard bounds the test (45 s unless told otherwise, see
//!   [`Watchdog`]) and takes the shared side of the process's test lock. A test that runs no
//!   loop and blocks on nothing may instead carry the comment `// testkit: no watchdog` with a
//!   reason; `tests/every_test_has_a_watchdog.rs` in this crate checks every `#[test]` of the
//!   workspace for one or the other.
//! * **Counting tests run alone**: a test that compares `/proc/self/fd`, `/proc/self/task` or
//!   child counts before and after takes [`exclusive()`], which waits until no other test of
//!   the binary holds a guard and keeps them out until it is dropped. No other test needs to
//!   know which tests count.
//! * **Examples are built with [`build_example`]**, which runs cargo with the watchdog
//!   [`paused`]: a cold build may take minutes, the example's run is what the limit bounds.
//! * **Nothing is asserted inside a loop callback** without a check outside: the loop catches a
//!   callback's panic and hands it to the exception handler, so the assertion would prove
//!   nothing. Record into a [`Log`] or flag and assert after the run, or take
//!   [`record_exceptions`] and call [`Exceptions::assert_none`] at the end. A callback that
//!   must not run at all is [`never`](fn@never), which fails the test from inside the loop.
//!
//! # Why a dev-dependency cycle is fine here
//!
//! This crate depends on `loop-core`, and `loop-core`'s integration tests depend on this crate.
//! Cargo allows that cycle for dev-dependencies: an integration test links the ordinary
//! `loop-core` library, the same one this crate was built against, so the types agree. Unit
//! tests inside `loop-core/src` are different: they are built into a second copy of
//! `loop-core`, whose `EventLoop` is not this crate's `EventLoop`, so they must not use it.
//!
//! ```
//! use loop_core::EventLoop;
//!
//! let _w = loop_testkit::watchdog();
//! let lp = EventLoop::new().unwrap();
//! let errs = loop_testkit::record_exceptions(&lp);
//! let seen = loop_testkit::log::<&str>();
//! let s = seen.clone();
//! lp.call_soon(move |_| s.borrow_mut().push("ran")).unwrap();
//! loop_testkit::run_once(&lp);
//! assert_eq!(loop_testkit::entries(&seen), ["ran"]);
//! errs.assert_none();
//! ```

#![warn(missing_docs)]

mod child;
mod counts;
mod examples;
mod exceptions;
mod logs;
mod probes;
mod spin;
mod watchdog;

pub use child::{python3, temp_path, Peer, TempDir, TempPath};
pub use counts::{
    children, fd_count, fd_count_of, is_reaped, thread_count, threads_named, wait_exited_nowait,
};
pub use examples::build_example;
pub use exceptions::{record_exceptions, Exceptions};
pub use logs::{capture_logs, log_capture, panic_on_next_log_write, LogCapture};
pub use probes::{drop_flag, entries, log, never, DropFlag, DropProbe, DropProbeParts, Log};
pub use spin::{eventually, run_once, spin, spin_until, LONG};
pub use watchdog::{
    exclusive, paused, run, time_scale, watchdog, watchdog_for, Watchdog, DEFAULT_LIMIT, GRACE,
};
