//! The operating system under the reactor: two backends behind one small interface, chosen at
//! compile time (no trait object, no dynamic dispatch on the hot path).
//!
//! - `epoll` (Linux and Android, by default): epoll through rustix, one `epoll_wait` per
//!   poll; the loop is woken through an eventfd registered in the epoll set.
//! - `polling` (every other Unix, and Linux with the `reactor-polling` feature): the
//!   `polling` crate — kqueue on macOS and the BSDs, one `kevent` per poll; the loop is woken
//!   by `Poller::notify`. It reports only what every platform reports (readable, writable):
//!   no hang-up and no error bit, so transports learn of EOF and errors by reading and
//!   writing, as asyncio does on macOS.
//!
//! Both offer the same items: `Poller` (`new` / `add` / `modify` / `delete` / `wait` /
//! `close`), `Events` (the buffer `wait` fills, read by index as (key, [`Readiness`]) pairs) and
//! `Waker` (the [`WakeFd`](crate::wake::WakeFd) of the cross-thread wake protocol, with
//! `close`), plus `HANGUP_REPORTED` and `LOOP_FDS`.
//!
//! [`Readiness`]: crate::readiness::Readiness
#![allow(unsafe_code)]

mod shared;
pub(crate) use shared::{Interest, WAKE_KEY};

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
mod epoll;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "reactor-polling")
))]
pub(crate) use epoll::{Events, Poller, Waker, HANGUP_REPORTED, LOOP_FDS};

#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "reactor-polling"
))]
mod polling;
#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "reactor-polling"
))]
pub(crate) use self::polling::{Events, Poller, Waker, HANGUP_REPORTED, LOOP_FDS};

/// The monotonic clock in nanoseconds: one `clock_gettime(CLOCK_MONOTONIC)` (the clock Linux's
/// `Instant` reads, so these durations and `Instant`'s agree) without `Instant`'s arithmetic,
/// for the loop's timing of its own polls ([`Stats::poll_time`](crate::Stats::poll_time)).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable `timespec`; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail (and `t` stays zero if it somehow did).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// The monotonic clock in nanoseconds (`Instant`'s, counted from the first reading).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    std::time::Instant::now()
        .saturating_duration_since(base)
        .as_nanos() as u64
}
