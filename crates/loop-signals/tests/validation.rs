//! Argument checks, ownership and bookkeeping: SIG-03, SIG-04, SIG-06, SIG-07, SIG-11 (return
//! values), SIG-12, SIG-14. No signal is sent by this binary.

mod common;

use common::serial;
use loop_core::{Error, EventLoop};
use loop_signals::SignalsExt;

fn registered(lp: &EventLoop) -> u64 {
    lp.stats().fds_registered
}

// Linux only: the valid set ends at SIGRTMAX, and 32 and 33 are the C library's (glibc, musl).
#[cfg(target_os = "linux")]
#[test]
fn sig_03_invalid_signal_numbers_are_rejected() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let nsig = libc::SIGRTMAX() + 1;
    // 32 and 33 (34 with musl) are kept by the C library for itself.
    for sig in [0, -1, nsig, nsig + 1, 1000, i32::MIN, i32::MAX, 32, 33] {
        let err = lp.add_signal_handler(sig, |_| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{sig}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!("invalid argument: invalid signal number {sig}")
        );
        let err = lp.remove_signal_handler(sig).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid argument: invalid signal number {sig}")
        );
    }
    assert_eq!(registered(&lp), 0, "a rejected call left a pipe behind");
    lp.close().unwrap();
}

#[test]
fn sig_04_sigkill_and_sigstop_cannot_be_caught() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let err = lp.add_signal_handler(libc::SIGKILL, |_| {}).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert_eq!(err.to_string(), "invalid argument: sig 9 cannot be caught");
    let err = lp.add_signal_handler(libc::SIGSTOP, |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid argument: sig {} cannot be caught", libc::SIGSTOP)
    );
    assert_eq!(registered(&lp), 0);
    lp.close().unwrap();
}

#[test]
fn sig_04_fault_signals_are_refused() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    for sig in [libc::SIGSEGV, libc::SIGILL, libc::SIGFPE] {
        let err = lp.add_signal_handler(sig, |_| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("sig {sig} cannot be caught")),
            "{err}"
        );
    }
    assert_eq!(registered(&lp), 0);
    lp.close().unwrap();
}

// Linux only: real-time signals (SIGRTMIN..=SIGRTMAX) are Linux's.
#[cfg(target_os = "linux")]
#[test]
fn sig_04_real_time_signals_can_be_handled() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let sig = libc::SIGRTMIN() + 2;
    lp.add_signal_handler(sig, |_| {}).unwrap();
    assert!(lp.remove_signal_handler(sig).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_06_closed_loop_is_checked_after_the_signal_number() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let err = lp.add_signal_handler(0, |_| {}).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let err = lp.add_signal_handler(libc::SIGKILL, |_| {}).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let err = lp.add_signal_handler(libc::SIGHUP, |_| {}).unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert_eq!(err.to_string(), "Event loop is closed");
    assert!(!lp.remove_signal_handler(libc::SIGHUP).unwrap());
}

#[test]
fn sig_07_a_signal_is_owned_by_one_loop_at_a_time() {
    let _g = serial();
    let a = EventLoop::new().unwrap();
    a.add_signal_handler(libc::SIGALRM, |_| {}).unwrap();
    // Another loop on the same thread.
    let b = EventLoop::new().unwrap();
    let err = b.add_signal_handler(libc::SIGALRM, |_| {}).unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("event loop {}", a.id())), "{text}");
    assert!(text.contains("SIGALRM"), "{text}");
    let me = std::thread::current();
    let who = match me.name() {
        Some(n) => format!("'{n}'"),
        None => format!("{:?}", me.id()),
    };
    assert!(text.contains(&who), "{text}");
    assert_eq!(registered(&b), 0, "the refused loop kept a pipe");
    // A loop on another thread.
    let a_id = a.id();
    let text = std::thread::Builder::new()
        .name("second-loop".into())
        .spawn(move || {
            let c = EventLoop::new().unwrap();
            let err = c.add_signal_handler(libc::SIGALRM, |_| {}).unwrap_err();
            c.close().unwrap();
            err.to_string()
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(text.contains(&format!("event loop {a_id}")), "{text}");
    // Removing it elsewhere does nothing; once the owner removes it, another loop may take it.
    assert!(!b.remove_signal_handler(libc::SIGALRM).unwrap());
    assert!(a.remove_signal_handler(libc::SIGALRM).unwrap());
    b.add_signal_handler(libc::SIGALRM, |_| {}).unwrap();
    assert!(b.remove_signal_handler(libc::SIGALRM).unwrap());
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn sig_11_remove_returns_true_once_then_false() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(libc::SIGPROF, |_| {}).unwrap();
    assert!(lp.remove_signal_handler(libc::SIGPROF).unwrap());
    assert!(!lp.remove_signal_handler(libc::SIGPROF).unwrap());
    assert!(!lp.remove_signal_handler(libc::SIGKILL).unwrap());
    assert!(!lp.remove_signal_handler(libc::SIGXCPU).unwrap());
    lp.close().unwrap();
}

#[test]
fn sig_12_last_removal_releases_the_self_pipe() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let base = registered(&lp);
    lp.add_signal_handler(libc::SIGHUP, |_| {}).unwrap();
    assert_eq!(registered(&lp), base + 1);
    lp.add_signal_handler(libc::SIGVTALRM, |_| {}).unwrap();
    assert_eq!(registered(&lp), base + 1, "one self-pipe per loop");
    assert!(lp.remove_signal_handler(libc::SIGHUP).unwrap());
    assert_eq!(
        registered(&lp),
        base + 1,
        "removing one of two keeps the pipe"
    );
    assert!(lp.remove_signal_handler(libc::SIGVTALRM).unwrap());
    assert_eq!(
        registered(&lp),
        base,
        "removing the last one releases the pipe"
    );
    lp.close().unwrap();
}

#[test]
fn sig_14_close_removes_every_handler() {
    let _g = serial();
    let a = EventLoop::new().unwrap();
    a.add_signal_handler(libc::SIGHUP, |_| {}).unwrap();
    a.add_signal_handler(libc::SIGALRM, |_| {}).unwrap();
    a.close().unwrap();
    // Both signals are free again: another loop can take them.
    let b = EventLoop::new().unwrap();
    b.add_signal_handler(libc::SIGHUP, |_| {}).unwrap();
    b.add_signal_handler(libc::SIGALRM, |_| {}).unwrap();
    // Dropping an unclosed loop releases its signals too.
    drop(b);
    let c = EventLoop::new().unwrap();
    c.add_signal_handler(libc::SIGHUP, |_| {}).unwrap();
    c.add_signal_handler(libc::SIGALRM, |_| {}).unwrap();
    c.close().unwrap();
}

/// SIG-03: the valid set ends at `SIGRTMAX` inclusive: the last real-time signal can be
/// handled, the number after it cannot.
// Linux only: real-time signals (SIGRTMIN..=SIGRTMAX) are Linux's.
#[cfg(target_os = "linux")]
#[test]
fn sig_03_the_last_real_time_signal_is_valid_and_the_next_number_is_not() {
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let last = libc::SIGRTMAX();
    lp.add_signal_handler(last, |_| {}).unwrap();
    assert!(lp.remove_signal_handler(last).unwrap());
    let err = lp.add_signal_handler(last + 1, |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid argument: invalid signal number {}", last + 1)
    );
    assert_eq!(registered(&lp), 0);
    lp.close().unwrap();
}
