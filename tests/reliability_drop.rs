//! Dropping a loop without `close()` frees it (CORE-14: `Drop` closes an unclosed loop): the
//! loop's internals hold it weakly, so once the user drops every handle, the loop state is
//! freed and its fds and threads are released.
//!
//! These tests count process-wide fds and threads, so each runs alone
//! (`loop_testkit::exclusive`).

use std::cell::Cell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::core::internal::{LoopInternals, WeakLoop};
use evloop::prelude::*;
use loop_testkit::{fd_count, thread_count, threads_named};

/// Waits (bounded) until `f` holds; threads of a shut-down executor end on their own time.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what}; threads now: {:?}",
            thread_names()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The names of this process' threads.
fn thread_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A loop with a listening server, timers (one fired, one pending), an fd watcher, an executor
/// job (done) and one still running, a signal handler and a pending task, run for a while;
/// returns a weak handle to it and the handles the user holds, which the caller drops.
fn busy_loop() -> (WeakLoop, Vec<Box<dyn std::any::Any>>) {
    struct Nothing;
    impl evloop::transport::Protocol for Nothing {}
    let lp = EventLoop::new().unwrap();
    let weak = lp.downgrade();
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    // Server.
    let server = lp
        .run_until_complete(lp.create_server(
            || Nothing,
            "127.0.0.1",
            0,
            evloop::net::ServerOptions::new(),
        ))
        .unwrap()
        .unwrap();
    assert!(server.is_serving());
    held.push(Box::new(server));
    // Timers.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    held.push(Box::new(
        lp.call_later(Duration::from_millis(1), move |_| f.set(true))
            .unwrap(),
    ));
    held.push(Box::new(
        lp.call_later(Duration::from_secs(3600), |_| {}).unwrap(),
    ));
    // An fd watcher.
    let (a, b) = UnixStream::pair().unwrap();
    (&b).write_all(b"x").unwrap();
    let seen = Rc::new(Cell::new(0u32));
    let s = seen.clone();
    held.push(Box::new(
        lp.add_reader(&a, move |_| s.set(s.get() + 1)).unwrap(),
    ));
    held.push(Box::new((a, b)));
    // Executor jobs: one done, one still running when the loop goes.
    let done = lp.run_in_executor(None, || 6 * 7).unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let running = lp
        .run_in_executor(None, move || {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        })
        .unwrap();
    held.push(Box::new(running));
    held.push(Box::new(release));
    // A signal handler.
    lp.add_signal_handler(evloop::signals::consts::SIGUSR2, |_| {})
        .unwrap();
    // A pending task (a sleep of an hour). It finds its loop when it runs: a future that
    // captured an `EventLoop` clone would keep the loop alive (an `Rc` cycle of the user's).
    let sleeper = lp
        .create_task(evloop::timers::sleep(Duration::from_secs(3600)))
        .unwrap();
    held.push(Box::new(sleeper));
    // Run: the job finishes, the first timer fires, the watcher runs.
    assert_eq!(lp.run_until_complete(done).unwrap().unwrap(), 42);
    lp.run_until_complete(evloop::timers::sleep(Duration::from_millis(20)))
        .unwrap()
        .unwrap();
    assert!(fired.get());
    assert!(seen.get() > 0);
    assert!(weak.upgrade().is_some());
    drop(lp);
    (weak, held)
}

#[test]
fn core_14_drop_without_close_frees_the_loop_its_fds_and_threads() {
    let _w = loop_testkit::exclusive();
    // Warm up process-wide state created once (the signal registry, tracing, the resolver).
    let (weak, held) = busy_loop();
    drop(held);
    drop(weak);
    // The default executor runs jobs on the `blocking` crate's thread pool: process-wide, not
    // the loop's, and kept once grown (its idle threads stay while the pool is under its
    // limit), and how far it grows depends on how the jobs interleave: its threads are not
    // counted.
    let fds = fd_count();
    let own_threads = || thread_count() - threads_named("blocking-");
    let threads = own_threads();

    let (weak, held) = busy_loop();
    // The user's handles are all that is left; dropping them frees the loop.
    drop(held);
    assert!(
        weak.upgrade().is_none(),
        "the loop is still alive after every user handle was dropped"
    );
    assert_eq!(fd_count(), fds, "fds of the dropped loop were not released");
    eventually(
        &format!("the threads of the dropped loop ended (baseline {threads}, not counting the process-wide `blocking` pool)"),
        || own_threads() <= threads,
    );
}

#[test]
fn core_14_dropping_only_the_loop_handle_closes_it_and_user_handles_stay_safe() {
    let _w = loop_testkit::exclusive();
    let (weak, held) = busy_loop();
    // The loop went with its last handle, although the user still holds a server, timer and
    // watcher handles, an executor future and a task: they outlive the loop harmlessly.
    assert!(
        weak.upgrade().is_none(),
        "a user handle keeps the loop alive"
    );
    for h in &held {
        if let Some(s) = h.downcast_ref::<evloop::net::Server>() {
            assert!(!s.is_serving());
            assert!(s.get_loop().is_none());
        }
        if let Some(t) = h.downcast_ref::<evloop::timers::TimerHandle>() {
            t.cancel();
        }
        if let Some(h) = h.downcast_ref::<Handle>() {
            h.cancel();
        }
    }
    drop(held);
}

/// The transports' part: a loop with open connections (accepted and connected stream
/// transports, a datagram endpoint, a read pipe) is freed when the user drops its handle, the
/// server, the transports and their protocol handles without `close()`: transports hold their
/// loop weakly, and the loop's close on drop tears them down and closes their fds.
#[test]
fn core_14_drop_without_close_frees_a_loop_with_open_connections() {
    let _w = loop_testkit::exclusive();
    struct Nothing;
    impl evloop::transport::Protocol for Nothing {}
    impl evloop::transport::DatagramProtocol for Nothing {}
    let fds = fd_count();
    let lp = EventLoop::new().unwrap();
    let weak = lp.downgrade();
    let server = lp
        .run_until_complete(lp.create_server(
            || Nothing,
            "127.0.0.1",
            0,
            evloop::net::ServerOptions::new(),
        ))
        .unwrap()
        .unwrap();
    let port = server.local_addrs()[0].as_inet().unwrap().port();
    let client = lp
        .run_until_complete(lp.create_connection(
            || Nothing,
            "127.0.0.1",
            port,
            evloop::net::ConnectOptions::new(),
        ))
        .unwrap()
        .unwrap();
    let endpoint = lp
        .run_until_complete(lp.create_datagram_endpoint(
            || Nothing,
            evloop::net::DatagramOptions::local(evloop::net::DatagramAddr::host("127.0.0.1", "0")),
        ))
        .unwrap()
        .unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let pipe = lp
        .run_until_complete(lp.connect_read_pipe(|| Nothing, r))
        .unwrap()
        .unwrap();
    lp.run_until_complete(evloop::timers::sleep(Duration::from_millis(20)))
        .unwrap()
        .unwrap();
    drop((lp, server, client, endpoint, pipe));
    assert!(
        weak.upgrade().is_none(),
        "open transports keep the loop alive"
    );
    drop(w);
    assert_eq!(fd_count(), fds);
}
