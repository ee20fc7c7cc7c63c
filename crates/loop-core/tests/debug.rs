//! Debug mode: CORE-56 .. CORE-58.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use loop_core::internal::IoHandler;
use loop_core::internal::LoopInternals;
use loop_core::{yield_now, EventLoop, Exception, Handle, Readiness};

/// Runs in a child process (see core_56): asserts the debug default matches CORE56_EXPECT.
#[test]
#[ignore = "run by core_56_debug_default_comes_from_evloop_debug in a child process"]
fn core_56_child_debug_default_from_env() {
    let _w = loop_testkit::watchdog();
    let expect = std::env::var("CORE56_EXPECT").expect("run by the parent test");
    let lp = EventLoop::new().unwrap();
    assert_eq!(lp.get_debug().to_string(), expect);
}

#[test]
fn core_56_debug_default_comes_from_evloop_debug() {
    let _w = loop_testkit::watchdog();
    let exe = std::env::current_exe().unwrap();
    for (value, expect) in [
        (None, false),
        (Some("1"), true),
        (Some("yes"), true),
        (Some(""), false),
        (Some("0"), false),
    ] {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--exact",
            "core_56_child_debug_default_from_env",
            "--ignored",
            "--test-threads=1",
        ])
        .env("CORE56_EXPECT", expect.to_string());
        match value {
            Some(v) => cmd.env("EVLOOP_DEBUG", v),
            None => cmd.env_remove("EVLOOP_DEBUG"),
        };
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "EVLOOP_DEBUG={value:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn core_56_set_debug_round_trips_and_takes_effect_at_once() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(false);
    assert!(!lp.get_debug());
    lp.set_debug(true);
    assert!(lp.get_debug());
    lp.set_debug(false);
    // Switched on by a callback: the very next callback of the same iteration is timed.
    lp.set_slow_callback_duration(Duration::from_millis(10));
    lp.call_soon(|lp| lp.set_debug(true)).unwrap();
    lp.call_soon(|_| std::thread::sleep(Duration::from_millis(30)))
        .unwrap();
    let ((), logs) = capture_logs(|| run_once(&lp));
    assert_eq!(lp.stats().slow_callbacks, 1, "{logs}");
}

/// Extracts N.NNN from "took N.NNN seconds".
fn took(line: &str) -> f64 {
    let rest = &line[line.find("took ").unwrap() + 5..];
    let num = &rest[..rest.find(" seconds").unwrap()];
    assert_eq!(
        num.split('.').nth(1).unwrap().len(),
        3,
        "three decimals: {line}"
    );
    num.parse().unwrap()
}

struct SlowIo;
impl IoHandler for SlowIo {
    fn ready(&self, _lp: &EventLoop, _r: Readiness) {
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn core_57_slow_callbacks_are_logged_in_debug_mode() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    assert_eq!(
        lp.slow_callback_duration(),
        Duration::from_millis(100),
        "default 0.1 s"
    );
    lp.set_slow_callback_duration(Duration::from_millis(20));
    let (line, logs) = capture_logs(|| {
        let line = line!() + 1;
        lp.call_soon(|_| std::thread::sleep(Duration::from_millis(40)))
            .unwrap();
        lp.call_soon(|_| {}).unwrap(); // fast: not logged
        let t = lp
            .create_named_task("slow-step", async {
                std::thread::sleep(Duration::from_millis(40));
                yield_now().await; // the second step is fast
            })
            .unwrap();
        lp.run_until_complete(t).unwrap().unwrap();
        lp.schedule_io(Rc::new(SlowIo), Readiness::READABLE)
            .unwrap();
        run_once(&lp);
        line
    });
    let warns: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 3, "{logs}");
    assert!(
        warns[0].contains(&format!(
            "Executing <Handle scheduled at {}:{line}",
            file!()
        )),
        "{logs}"
    );
    assert!(
        warns[1].contains("Executing <Task pending name='slow-step'"),
        "{logs}"
    );
    assert!(warns[2].contains("Executing <I/O handler"), "{logs}");
    for w in &warns {
        let secs = took(w);
        assert!((0.02..30.0).contains(&secs), "{w}");
    }
    assert_eq!(lp.stats().slow_callbacks, 3);

    // Debug off: nothing is timed.
    lp.set_debug(false);
    let ((), logs) = capture_logs(|| {
        lp.call_soon(|_| std::thread::sleep(Duration::from_millis(40)))
            .unwrap();
        run_once(&lp);
    });
    assert!(!logs.contains("Executing"), "{logs}");
    assert_eq!(lp.stats().slow_callbacks, 3);
}

#[test]
fn core_58_what_debug_mode_changes() {
    let _w = loop_testkit::watchdog();
    // Run the same scenario with debug off and on; only the documented differences show.
    fn scenario(debug: bool) -> (Vec<bool>, String, u64) {
        let lp = EventLoop::new().unwrap();
        lp.set_debug(debug);
        lp.set_slow_callback_duration(Duration::from_millis(10));
        let seen = record_exceptions(&lp);
        let ((), logs) = capture_logs(|| {
            // A callback that panics (source_traceback), a future nobody read (source_traceback),
            // a pending task destroyed by close (source_traceback), a slow callback (log).
            lp.call_soon(|_| panic!("p")).unwrap();
            let f = lp.create_future::<()>();
            f.set_exception(Exception::new("e")).unwrap();
            drop(f);
            lp.call_soon(|_| std::thread::sleep(Duration::from_millis(20)))
                .unwrap();
            let _t = lp.create_task(std::future::pending::<()>()).unwrap();
            run_once(&lp);
            lp.close().unwrap();
        });
        let with_source = seen
            .borrow()
            .iter()
            .map(|c| c.source_location.is_some())
            .collect();
        (with_source, logs, lp.stats().slow_callbacks)
    }
    let (off_src, off_logs, off_slow) = scenario(false);
    let (on_src, on_logs, on_slow) = scenario(true);
    assert_eq!(off_src, [false, false, false]);
    assert_eq!(on_src, [true, true, true]);
    // Off: nothing is timed. On: at least the sleeping callback (on a loaded machine the
    // panicking one may also take longer than 10 ms).
    assert_eq!(off_slow, 0);
    assert!(on_slow >= 1, "{on_slow}");
    assert!(!off_logs.contains("Executing"));
    assert!(on_logs.contains("Executing <Handle"));

    // Cancelled handles keep their repr (where they were scheduled) either way.
    let lp = EventLoop::new().unwrap();
    let h: Handle = lp.call_soon(|_| {}).unwrap();
    h.cancel();
    let repr = format!("{h:?}");
    assert!(
        repr.contains("cancelled") && repr.contains(file!()),
        "{repr}"
    );
}
