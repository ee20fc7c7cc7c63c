//! SIG-11 and SIG-14 in child processes: after `remove_signal_handler` (or `close()`, or
//! dropping the loop) SIGTERM kills the process again, by SIGTERM. The child is this test
//! binary run again with `EVLOOP_SIGNALS_CHILD=<mode>`, selecting one test; only children
//! install SIGTERM handlers.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let exe = std::env::current_exe().unwrap();
    let mut c: Child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
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
                if line.contains(READY) {
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
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LONG {
            let _ = c.kill();
            let s = c.wait().unwrap();
            panic!("the child survived SIGTERM ({s:?}); output: {text}");
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
