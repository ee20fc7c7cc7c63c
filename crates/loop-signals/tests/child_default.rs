//! SIG-11 and SIG-14 in child processes: after `remove_signal_handler` (or `close()`, or
//! dropping the loop) SIGTERM kills the process again, by SIGTERM. The child is this test
//! binary run again with `EVLOOP_SIGNALS_CHILD=<mode>`, selecting one test; only children
//! install SIGTERM handlers.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use common::LONG;
use loop_core::EventLoop;
use loop_signals::SignalsExt;

const MODE: &str = "EVLOOP_SIGNALS_CHILD";
const READY: &str = "EVLOOP-CHILD-READY";

/// What a child does, by mode; then it prints READY and waits to be signalled.
fn child(mode: &str) {
    let lp = EventLoop::new().unwrap();
    match mode {
        "installed" => {
            lp.add_signal_handler(libc::SIGTERM, |lp| {
                println!("got SIGTERM: exit");
                lp.stop();
            })
            .unwrap();
            println!("{READY}");
            lp.run_forever().unwrap();
            lp.close().unwrap();
            return; // exit status 0
        }
        "remove" => {
            lp.add_signal_handler(libc::SIGTERM, |_| println!("handler ran"))
                .unwrap();
            assert!(lp.remove_signal_handler(libc::SIGTERM).unwrap());
        }
        "close" => {
            lp.add_signal_handler(libc::SIGTERM, |_| println!("handler ran"))
                .unwrap();
            lp.close().unwrap();
        }
        "drop" => {
            lp.add_signal_handler(libc::SIGTERM, |_| println!("handler ran"))
                .unwrap();
            drop(lp);
        }
        other => panic!("unknown child mode {other}"),
    }
    println!("{READY}");
    std::thread::sleep(LONG);
    // Still alive: SIGTERM was ignored. The parent sees exit code 3.
    std::process::exit(3);
}

/// Runs `test` of this binary as a child in `mode`, sends it SIGTERM once it is ready, and
/// returns its exit status and output.
fn run_child(test: &str, mode: &str) -> (ExitStatus, String) {
    common::run_child(test, MODE, mode, READY, libc::SIGTERM)
}

#[test]
fn sig_11_remove_restores_default_disposition() {
    let _w = loop_testkit::watchdog();
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode);
    }
    let (status, out) = run_child("sig_11_remove_restores_default_disposition", "remove");
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status:?}; output: {out}"
    );
    assert!(!out.contains("handler ran"), "{out}");
}

#[test]
fn sig_11_control_installed_handler_keeps_the_process_alive() {
    let _w = loop_testkit::watchdog();
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode);
    }
    // Without the removal the handler catches SIGTERM: this is what the other tests tell apart.
    let (status, out) = run_child(
        "sig_11_control_installed_handler_keeps_the_process_alive",
        "installed",
    );
    assert!(status.success(), "{status:?}; output: {out}");
    assert!(out.contains("got SIGTERM: exit"), "{out}");
}

#[test]
fn sig_14_close_restores_default_disposition() {
    let _w = loop_testkit::watchdog();
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode);
    }
    let (status, out) = run_child("sig_14_close_restores_default_disposition", "close");
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status:?}; output: {out}"
    );
    assert!(!out.contains("handler ran"), "{out}");
}

#[test]
fn sig_14_dropping_an_unclosed_loop_restores_default_disposition() {
    let _w = loop_testkit::watchdog();
    if let Ok(mode) = std::env::var(MODE) {
        return child(&mode);
    }
    let (status, out) = run_child(
        "sig_14_dropping_an_unclosed_loop_restores_default_disposition",
        "drop",
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status:?}; output: {out}"
    );
}
