//! Helpers shared by the integration tests of loop-core: loop-testkit's, under the names
//! these tests use, and the few that only they need.
#![allow(dead_code, unused_imports)]

pub use loop_testkit::{
    capture_logs, drop_flag, entries, exclusive, fd_count, fd_count_of, log,
    panic_on_next_log_write, record_exceptions, run_once, watchdog, watchdog_for, DropFlag,
    Exceptions, Log, Watchdog,
};

/// The messages of recorded reports.
pub fn messages(seen: &Exceptions) -> Vec<String> {
    seen.messages()
}

/// The guard of a test that counts fds: it runs alone ([`loop_testkit::exclusive`]).
pub fn serial() -> Watchdog {
    loop_testkit::exclusive()
}

/// Appends `s` to `log`.
pub fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}
