//! The watchdog and the test lock, tried for real: a blocked loop is unwound with the
//! watchdog's message, a thread blocked outside any loop ends the process, an exclusive guard
//! keeps shared ones out and waits for them, and guards nest on one thread.

use std::future::pending;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use loop_core::{EventLoop, Fatal};
use loop_testkit::{exclusive, run, watchdog, watchdog_for};

/// Set in the re-executed test binary that must be ended by the watchdog.
const BLOCKED_CHILD: &str = "LOOP_TESTKIT_BLOCKED_CHILD";

/// The text of a panic payload.
fn text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| p.downcast_ref::<Fatal>().map(|f| f.0.clone()))
        .unwrap_or_default()
}

#[test]
fn a_blocked_loop_is_unwound_with_a_message_naming_the_test() {
    let w = watchdog().limit(1).hint("nothing will ever stop this loop");
    let lp = EventLoop::new().unwrap();
    w.watch(&lp);
    // Nothing is scheduled: without the watchdog this blocks forever.
    let p = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
    let msg = text(&*p);
    assert!(p.is::<Fatal>(), "{msg}");
    assert_eq!(
        msg,
        format!(
            "test a_blocked_loop_is_unwound_with_a_message_naming_the_test blocked for {} s: \
             nothing will ever stop this loop",
            loop_testkit::time_scale()
        )
    );
    assert!(w.fired());
    assert!(!lp.is_running(), "the loop is stopped, and usable");
    // The test went on after its deadline: dropping the guard fails it, with the message.
    let p = catch_unwind(AssertUnwindSafe(|| drop(w))).unwrap_err();
    assert_eq!(text(&*p), msg);
    lp.close().unwrap();
}

#[test]
fn run_fails_with_the_watchdog_message_when_the_future_never_completes() {
    let _w = watchdog();
    let lp = EventLoop::new().unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| run(&lp, 1, pending::<()>()))).unwrap_err();
    let msg = text(&*p);
    let expected = format!(
        "test run_fails_with_the_watchdog_message_when_the_future_never_completes blocked for \
         {} s: the future given to loop_testkit::run was not done",
        loop_testkit::time_scale()
    );
    assert_eq!(msg, expected);
    // A plain failure of the future is the future's.
    let lp2 = lp.clone();
    let p = catch_unwind(AssertUnwindSafe(|| {
        run(&lp, 30, async move {
            lp2.create_task(async { panic!("task failure") })
                .unwrap()
                .await
                .unwrap()
        })
    }))
    .unwrap_err();
    assert!(text(&*p).contains("task failure"), "{}", text(&*p));
    lp.close().unwrap();
}

#[test]
fn a_guard_dropped_in_time_never_fires() {
    let _outer = watchdog();
    let lp = EventLoop::new().unwrap();
    let w = watchdog_for(&lp);
    lp.call_soon(|lp| lp.stop()).unwrap();
    lp.run_forever().unwrap();
    assert!(!w.fired());
    drop(w);
    assert_eq!(run(&lp, 30, async { 6 * 7 }), 42);
}

/// Run in a child process by the test below: blocks its thread outside any loop.
#[test]
fn blocked_outside_any_loop() {
    let _w = watchdog().limit(1).hint("sleeping forever on purpose");
    if std::env::var_os(BLOCKED_CHILD).is_none() {
        return;
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn a_thread_blocked_outside_any_loop_ends_the_process_after_the_grace_period() {
    let _w = watchdog();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "blocked_outside_any_loop", "--test-threads=1"])
        .env(BLOCKED_CHILD, "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{out:?}");
    let scale = loop_testkit::time_scale();
    let blocked = format!(
        "loop-testkit watchdog: test blocked_outside_any_loop blocked for {scale} s: sleeping \
         forever on purpose"
    );
    assert!(err.contains(&blocked), "{err}");
    assert!(err.contains("no open loop is registered"), "{err}");
    let exiting = format!(
        "test blocked_outside_any_loop is still blocked {} s after its watchdog fired: exiting \
         the test process",
        (loop_testkit::GRACE * scale).as_secs()
    );
    assert!(err.contains(&exiting), "{err}");
}

/// Takes a guard on a new thread and says when it has it; it keeps it until `release` says.
fn holder(
    exclusive: bool,
) -> (
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (got_tx, got_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _g = if exclusive {
            loop_testkit::exclusive()
        } else {
            loop_testkit::watchdog()
        };
        got_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    (got_rx, release_tx, t)
}

#[test]
fn an_exclusive_guard_waits_for_shared_ones_and_keeps_new_ones_out() {
    // testkit: no watchdog — it drives the test lock from threads of its own, and this thread
    // must hold nothing; each wait below is bounded.
    let bound = Duration::from_secs(30);
    let (shared_got, shared_release, s) = holder(false);
    shared_got.recv_timeout(bound).unwrap();
    let (excl_got, excl_release, x) = holder(true);
    // While the shared guard is held, the exclusive one waits.
    assert!(
        excl_got.recv_timeout(Duration::from_millis(200)).is_err(),
        "the exclusive guard did not wait for the shared one"
    );
    shared_release.send(()).unwrap();
    s.join().unwrap();
    excl_got.recv_timeout(bound).unwrap();
    // While it is held, a new shared guard waits.
    let (late_got, late_release, l) = holder(false);
    assert!(
        late_got.recv_timeout(Duration::from_millis(200)).is_err(),
        "a shared guard got in while the exclusive one was held"
    );
    excl_release.send(()).unwrap();
    x.join().unwrap();
    late_got.recv_timeout(bound).unwrap();
    late_release.send(()).unwrap();
    l.join().unwrap();
}

#[test]
fn guards_nest_on_one_thread_and_an_inner_exclusive_one_upgrades_for_its_lifetime() {
    let outer = watchdog();
    {
        // Nested shared guards (helpers such as `run` take them) cost nothing.
        let _inner = watchdog();
        let lp = EventLoop::new().unwrap();
        assert_eq!(run(&lp, 30, async { 1 }), 1);
    }
    let entered = Arc::new(AtomicBool::new(false));
    let (t, other_got) = {
        let _x = exclusive();
        // Nested inside the exclusive one, still exclusive.
        let _again = watchdog();
        let _and_again = exclusive();
        // Another thread's shared guard waits meanwhile.
        let (got_rx, release_tx, t) = holder(false);
        assert!(got_rx.recv_timeout(Duration::from_millis(200)).is_err());
        entered.store(true, Ordering::SeqCst);
        drop(release_tx);
        (t, got_rx)
    };
    // The exclusive guards are gone, the outer shared one is back: the other thread gets in.
    other_got.recv_timeout(Duration::from_secs(30)).unwrap();
    t.join().unwrap();
    assert!(entered.load(Ordering::SeqCst));
    drop(outer);
}

#[test]
fn guards_taken_and_dropped_on_many_threads_never_hang_the_watchdog_thread() {
    // testkit: no watchdog — this thread must hold no guard, so that the watchdog thread is
    // started and ended again and again; the wait below is bounded. (A smoke test: a lost
    // wake-up between the last guard's drop and the thread's wait needs an unlucky schedule
    // to show.)
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..THREADS {
        let done = done_tx.clone();
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                drop(watchdog());
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..THREADS {
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a thread hung taking or dropping a guard");
    }
}

#[test]
fn a_paused_guard_does_not_fire_and_keeps_the_time_it_had_left() {
    let w = watchdog().limit(1);
    // Twice the limit inside the pause: the guard must not fire.
    loop_testkit::paused(|| std::thread::sleep(Duration::from_millis(2000)));
    assert!(!w.fired(), "a paused guard fired");
    // Its second comes back after the pause: a blocked loop is unwound by it.
    let lp = EventLoop::new().unwrap();
    w.watch(&lp);
    let p = catch_unwind(AssertUnwindSafe(|| lp.run_forever())).unwrap_err();
    assert!(p.is::<Fatal>(), "{}", text(&*p));
    assert!(w.fired());
    // It fired: dropping the guard fails the test, which is the point here.
    assert!(catch_unwind(AssertUnwindSafe(|| drop(w))).is_err());
    lp.close().unwrap();
}
