//! SIG-01, SIG-10 and SIG-11 at the level of the kernel's disposition, read back with
//! `sigaction(sig, NULL, &old)`: while a loop handles a signal, evloop's handler (with
//! `SA_RESTART`) *replaces* whatever was installed before — a handler of the program's own, or
//! `SIG_IGN` — which does not run; after removal the disposition is `SIG_DFL` (for `SIGPIPE`,
//! `SIG_IGN`, the Rust runtime's default), not the earlier one. The tests that install an earlier
//! SIGTERM disposition run in a child process (this binary again, with
//! `EVLOOP_DISPOSITION_CHILD=<mode>`), which the parent finally kills with SIGTERM.
// These tests drive the OS directly (fork, sigaction, raw fds, rlimits) to set up the
// situations they check: the unsafe blocks below are that, each with its SAFETY note.
#![allow(unsafe_code)]

mod common;

use std::cell::Cell;
use std::os::raw::c_int;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{send, send_to_process, serial, spin_until, LONG};
use loop_core::EventLoop;
use loop_signals::SignalsExt;

const MODE: &str = "EVLOOP_DISPOSITION_CHILD";
const READY: &str = "EVLOOP-DISPOSITION-READY";

/// Runs of [`earlier_handler`] in this process.
static EARLIER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A handler the program installed before evloop's.
extern "C" fn earlier_handler(_sig: c_int) {
    EARLIER_RUNS.fetch_add(1, Ordering::SeqCst);
    let msg = b"EARLIER HANDLER RAN\n";
    // SAFETY: write(2) is async-signal-safe; the buffer is valid for its length.
    unsafe {
        libc::write(1, msg.as_ptr().cast(), msg.len());
    }
}

/// The kernel's disposition of `sig` now: the handler (or `SIG_DFL` / `SIG_IGN`) and the flags.
fn disposition(sig: i32) -> (libc::sighandler_t, c_int) {
    // SAFETY: with a null new action `sigaction` only writes the current one into `old`, a plain
    // C struct for which all-zero is a valid value; both pointers are valid for the call.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        (old.sa_sigaction, old.sa_flags)
    }
}

/// Installs `handler` (a function, `SIG_DFL` or `SIG_IGN`) for `sig` with `sigaction`.
fn install(sig: i32, handler: libc::sighandler_t) {
    // SAFETY: `act` is a fully initialised C struct (zeroed, then an empty mask and the
    // handler); `handler` is `SIG_DFL`, `SIG_IGN` or an `extern "C" fn(c_int)`.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(sig, &act, std::ptr::null_mut()), 0);
    }
}

fn name(h: libc::sighandler_t) -> String {
    if h == libc::SIG_DFL {
        "SIG_DFL".into()
    } else if h == libc::SIG_IGN {
        "SIG_IGN".into()
    } else if h == earlier_handler as extern "C" fn(c_int) as libc::sighandler_t {
        "the earlier handler".into()
    } else {
        "another handler".into()
    }
}

/// The child: installs the earlier SIGTERM disposition, has a loop handle SIGTERM (three
/// deliveries), removes it, prints what it saw, then waits for the parent's SIGTERM.
fn child(mode: &str) {
    let sig = libc::SIGTERM;
    let earlier = match mode {
        "handler" => earlier_handler as extern "C" fn(c_int) as libc::sighandler_t,
        "ignored" => libc::SIG_IGN,
        other => panic!("unknown child mode {other}"),
    };
    install(sig, earlier);
    assert_eq!(disposition(sig).0, earlier);
    let lp = EventLoop::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    lp.add_signal_handler(sig, move |_| r.set(r.get() + 1))
        .unwrap();
    let (installed, flags) = disposition(sig);
    println!("INSTALLED {}", name(installed));
    println!("SA_RESTART {}", flags & libc::SA_RESTART != 0);
    for i in 1..=3 {
        send(sig); // handled before `raise` returns
        assert!(spin_until(&lp, || runs.get() == i), "delivery {i} lost");
    }
    println!(
        "EARLIER RUNS WHILE INSTALLED {}",
        EARLIER_RUNS.load(Ordering::SeqCst)
    );
    assert!(lp.remove_signal_handler(sig).unwrap());
    println!("AFTER REMOVAL {}", name(disposition(sig).0));
    lp.close().unwrap();
    println!("LOOP RUNS {}", runs.get());
    println!("{READY}");
    std::thread::sleep(LONG);
    std::process::exit(3); // still alive: SIGTERM did not kill it
}

/// Runs the child in `mode`, kills it with SIGTERM once ready, and checks what it printed.
fn check_child(test: &str, mode: &str) {
    let (status, out) = common::run_child(test, MODE, mode, READY, libc::SIGTERM);
    assert!(out.contains("INSTALLED another handler\n"), "{out}");
    assert!(out.contains("SA_RESTART true\n"), "{out}");
    assert!(
        out.contains("LOOP RUNS 3\n"),
        "every delivery ran the loop's callback: {out}"
    );
    assert!(
        out.contains("EARLIER RUNS WHILE INSTALLED 0\n"),
        "evloop's handler replaces the earlier disposition, it does not chain to it: {out}"
    );
    assert!(
        out.contains("AFTER REMOVAL SIG_DFL\n"),
        "removal leaves SIG_DFL, not the earlier disposition: {out}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status:?}; output: {out}"
    );
    assert!(
        !out.contains("EARLIER HANDLER RAN"),
        "the earlier handler ran (before the default action): {out}"
    );
}

#[test]
fn sig_11_a_handler_installed_before_does_not_run_and_is_not_restored() {
    let _w = common::serial();
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode);
    }
    check_child(
        "sig_11_a_handler_installed_before_does_not_run_and_is_not_restored",
        "handler",
    );
}

#[test]
fn sig_11_sig_ign_installed_before_is_replaced_and_not_restored() {
    let _w = common::serial();
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode);
    }
    check_child(
        "sig_11_sig_ign_installed_before_is_replaced_and_not_restored",
        "ignored",
    );
}

#[test]
fn sig_10_evloop_installs_its_handler_with_sa_restart() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    // A real-time signal too where there are some (Linux).
    #[cfg(target_os = "linux")]
    let sigs = [libc::SIGHUP, libc::SIGUSR1, libc::SIGRTMIN() + 3];
    #[cfg(not(target_os = "linux"))]
    let sigs = [libc::SIGHUP, libc::SIGUSR1];
    for sig in sigs {
        lp.add_signal_handler(sig, |_| {}).unwrap();
        let (h, flags) = disposition(sig);
        assert!(
            h != libc::SIG_DFL && h != libc::SIG_IGN,
            "signal {sig}: {}",
            name(h)
        );
        assert_ne!(
            flags & libc::SA_RESTART,
            0,
            "signal {sig}: flags {flags:#x}"
        );
    }
    for sig in sigs {
        assert!(lp.remove_signal_handler(sig).unwrap());
        assert_eq!(disposition(sig).0, libc::SIG_DFL, "signal {sig}");
    }
    lp.close().unwrap();
}

#[test]
fn sig_11_removing_sigpipe_leaves_it_ignored_as_rust_programs_start() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let _g = serial();
    assert_eq!(disposition(libc::SIGPIPE).0, libc::SIG_IGN);
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(libc::SIGPIPE, |_| {}).unwrap();
    assert_ne!(disposition(libc::SIGPIPE).0, libc::SIG_IGN);
    assert!(lp.remove_signal_handler(libc::SIGPIPE).unwrap());
    assert_eq!(disposition(libc::SIGPIPE).0, libc::SIG_IGN);
    lp.close().unwrap();
}

#[test]
fn sig_01_loops_on_two_threads_each_run_their_own_signal() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let _g = serial();
    // The main thread's loop handles SIGUSR1; a loop on another thread handles SIGUSR2. Each
    // signal, sent to the whole process (any thread may take it), runs the callback of the
    // loop that handles it, on that loop's thread.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let lp = EventLoop::new().unwrap();
        let me = std::thread::current().id();
        let ran_on = Rc::new(Cell::new(None));
        let r = ran_on.clone();
        lp.add_signal_handler(libc::SIGUSR2, move |_| {
            r.set(Some(std::thread::current().id()))
        })
        .unwrap();
        ready_tx.send(()).unwrap();
        let ok = spin_until(&lp, || ran_on.get().is_some());
        // Stay installed until the main thread's signal was handled too.
        done_rx.recv().unwrap();
        assert!(lp.remove_signal_handler(libc::SIGUSR2).unwrap());
        lp.close().unwrap();
        ok && ran_on.get() == Some(me)
    });
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    lp.add_signal_handler(libc::SIGUSR1, move |_| r.set(r.get() + 1))
        .unwrap();
    ready_rx.recv().unwrap();
    send_to_process(libc::SIGUSR2);
    send_to_process(libc::SIGUSR1);
    assert!(spin_until(&lp, || ran.get() == 1));
    done_tx.send(()).unwrap();
    assert!(
        other.join().unwrap(),
        "SIGUSR2 ran on the other thread's loop"
    );
    assert_eq!(ran.get(), 1, "SIGUSR2 did not run the main loop's callback");
    assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn sig_10_the_handler_leaves_errno_as_it_found_it() {
    if std::env::var_os(MODE).is_some() {
        return;
    }
    let _g = serial();
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    lp.add_signal_handler(libc::SIGUSR1, move |_| r.set(r.get() + 1))
        .unwrap();
    // Nobody drains the self-pipe meanwhile: it fills up, and the handler's write fails with
    // EAGAIN (the wake-up already in the pipe stands for the signal).
    for _ in 0..5000 {
        send(libc::SIGUSR1);
    }
    const SENTINEL: c_int = 12345;
    // SAFETY: the calling thread's errno location is valid to write and read.
    let after = unsafe {
        *libc::__errno_location() = SENTINEL;
        libc::raise(libc::SIGUSR1);
        *libc::__errno_location()
    };
    assert_eq!(after, SENTINEL, "the signal handler changed errno");
    assert!(spin_until(&lp, || ran.get() >= 1));
    assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}
