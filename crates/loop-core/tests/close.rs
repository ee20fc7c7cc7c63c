//! Closing: CORE-13 .. CORE-17. Every test here holds `serial()`: they count fds.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

mod common;

use std::cell::Cell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Instant;

use common::*;
use loop_core::internal::LoopInternals;
use loop_core::internal::{IoHandler, Source, LOOP_FDS};
use loop_core::{Error, EventLoop, Mode, Readiness};

#[test]
fn core_13_close_on_a_running_loop_fails() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let errs = record_exceptions(&lp);
    let seen = log();
    let s = seen.clone();
    lp.call_soon(move |lp| {
        let e = lp.close().unwrap_err();
        assert!(matches!(e, Error::CloseRunning));
        push(&s, e.to_string());
        assert!(!lp.is_closed());
        lp.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    errs.assert_none();
    assert_eq!(entries(&seen), ["Cannot close a running event loop"]);
    assert!(!lp.is_closed());
    // Still fully usable.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
    lp.close().unwrap();
}

#[test]
fn core_14_close_is_idempotent() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let hooks = Rc::new(Cell::new(0));
    let h = hooks.clone();
    lp.on_close(move |_| h.set(h.get() + 1));
    assert!(!lp.is_closed());
    lp.close().unwrap();
    assert!(lp.is_closed());
    lp.close().unwrap();
    assert!(lp.is_closed());
    assert_eq!(hooks.get(), 1, "close hooks run once");
}

#[test]
fn core_14_dropping_an_unclosed_loop_closes_it() {
    let _s = serial();
    let base = fd_count();
    let lp = EventLoop::new().unwrap();
    assert_eq!(fd_count(), base + LOOP_FDS);
    let seen = record_exceptions(&lp);
    let hook = Rc::new(Cell::new(false));
    let h = hook.clone();
    lp.on_close(move |lp| {
        assert!(lp.is_closed());
        h.set(true)
    });
    // A pending task, reported through the custom handler as the loop is closed by Drop.
    let t = lp.create_task(std::future::pending::<()>()).unwrap();
    run_once(&lp);
    let clone = lp.clone();
    drop(lp);
    assert!(!hook.get(), "a clone is still alive");
    let ((), logs) = capture_logs(|| drop(clone));
    assert!(hook.get(), "the close hooks ran");
    assert!(
        logs.contains("event loop dropped without close()"),
        "{logs}"
    );
    assert_eq!(fd_count(), base, "the poller's fds are closed");
    assert_eq!(messages(&seen), ["Task was destroyed but it is pending!"]);
    assert!(t.done() && t.cancelled());
}

struct CountingSource {
    closed: Cell<u32>,
}

impl Source for CountingSource {
    fn next_deadline(&self, _lp: &EventLoop) -> Option<Instant> {
        None
    }
    fn dispatch(&self, _lp: &EventLoop, _now: Instant) {}
    fn close(&self, _lp: &EventLoop) {
        self.closed.set(self.closed.get() + 1);
    }
}

struct NoopIo;
impl IoHandler for NoopIo {
    fn ready(&self, _lp: &EventLoop, _r: Readiness) {}
}

#[test]
fn core_15_close_drops_pending_work_and_closes_the_loop_fds() {
    let _s = serial();
    let base = fd_count();
    let (epolls, eventfds) = (fd_count_of("eventpoll"), fd_count_of("eventfd"));
    let lp = EventLoop::new().unwrap();
    assert_eq!(fd_count(), base + LOOP_FDS, "the poller's fds");
    // One epoll fd and one eventfd per loop, on either backend on Linux (`polling` adds a
    // timerfd).
    assert_eq!(fd_count_of("eventpoll"), epolls + 1);
    assert_eq!(fd_count_of("eventfd"), eventfds + 1);
    let seen = record_exceptions(&lp);
    // A pending task that started, and (below) one that never started.
    let started = lp.create_task(std::future::pending::<()>()).unwrap();
    run_once(&lp);

    // Pending ready callbacks: never run, but released.
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let (cb_dropped, flag) = drop_flag();
    lp.call_soon(move |_| {
        let _f = &flag;
        r.set(true)
    })
    .unwrap();
    // A thread-safe callback queued from another thread: dropped too.
    let remote = lp.remote();
    let h = std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(|_| panic!("must not run"))
            .unwrap()
    })
    .join()
    .unwrap();
    // Sources (timers) are told to drop their entries.
    let source = Rc::new(CountingSource {
        closed: Cell::new(0),
    });
    lp.add_source(source.clone());
    // Watchers and I/O registrations are dropped.
    let (a, b) = UnixStream::pair().unwrap();
    let (w_dropped, wflag) = drop_flag();
    lp.add_reader(&a, move |_| {
        let _f = &wflag;
    })
    .unwrap();
    let reg = loop_core::internal::Registered::new(
        &lp,
        &b,
        Mode::Level,
        true,
        false,
        "t",
        Rc::new(NoopIo),
    )
    .unwrap();
    let unstarted = lp.create_task(async { unreachable!() }).unwrap();
    // Extension state is dropped.
    let ext = lp.extension(|_| Cell::new(1u8));
    let weak_ext = Rc::downgrade(&ext);
    drop(ext);
    assert_eq!(lp.stats().fds_registered, 2);

    lp.close().unwrap();
    assert!(!ran.get());
    assert!(cb_dropped.get());
    assert!(w_dropped.get());
    assert!(!h.started());
    assert_eq!(source.closed.get(), 1);
    assert!(weak_ext.upgrade().is_none());
    assert_eq!(lp.stats().fds_registered, 0);
    assert!(started.done() && unstarted.done());
    assert_eq!(
        messages(&seen),
        [
            "Task was destroyed but it is pending!",
            "Task was destroyed but it is pending!"
        ]
    );
    drop(reg);
    drop((a, b));
    assert_eq!(fd_count(), base, "the poller's fds are closed");
    assert_eq!(fd_count_of("eventpoll"), epolls);
    assert_eq!(fd_count_of("eventfd"), eventfds);
}

#[test]
fn core_16_scheduling_after_close_fails() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let remote = lp.remote();
    assert!(
        !remote.is_closed(),
        "the remote of an open loop says closed"
    );
    lp.close().unwrap();
    fn closed<T>(r: loop_core::Result<T>) -> bool {
        matches!(r, Err(Error::Closed))
    }
    let (dropped, flag) = drop_flag();
    assert!(closed(lp.call_soon(move |_| {
        let _f = &flag;
    })));
    assert!(dropped.get(), "the rejected callback is released");
    assert!(closed(lp.call_soon_threadsafe(|_| {})));
    assert!(closed(remote.call_soon_threadsafe(|_| {})));
    assert!(closed(remote.stop()));
    assert!(remote.is_closed());
    assert!(closed(lp.create_task(async {})));
    assert!(closed(lp.create_named_task("n", async {})));
    assert!(closed(lp.schedule(&loop_core::Handle::new(|_| {}))));
    assert!(closed(lp.schedule_io(Rc::new(NoopIo), Readiness::READABLE)));
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(closed(lp.add_reader(&a, |_| {})));
    assert!(closed(lp.add_writer(&a, |_| {})));
    assert!(closed(loop_core::internal::Registered::new(
        &lp,
        &a,
        Mode::Edge,
        true,
        false,
        "t",
        Rc::new(NoopIo)
    )));
    assert!(closed(remote.run_coroutine_threadsafe(|_| async {})));
    // From another thread as well.
    let r = remote.clone();
    assert!(
        std::thread::spawn(move || closed(r.call_soon_threadsafe(|_| {})))
            .join()
            .unwrap()
    );
}

#[test]
fn core_17_after_close_removal_time_and_futures_still_work() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    lp.add_reader(&a, |_| {}).unwrap();
    lp.add_writer(&a, |_| {}).unwrap();
    lp.close().unwrap();
    assert!(!lp.remove_reader(&a).unwrap());
    assert!(!lp.remove_writer(&a).unwrap());
    assert!(!lp.remove_reader(12345).unwrap());
    let t0 = lp.now();
    assert!(lp.now() >= t0);
    let f = lp.create_future::<i32>();
    assert!(!f.done());
    assert!(f.get_loop().unwrap().ptr_eq(&lp));
    assert!(f.get_loop().unwrap().is_closed());
    f.set_result(3).unwrap();
    assert_eq!(f.result().unwrap(), 3);
}

/// The `flags:` field of `/proc/self/fdinfo/<fd>` (octal open flags).
fn open_flags(fd: &str) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let line = info.lines().find(|l| l.starts_with("flags:")).unwrap();
    u32::from_str_radix(line["flags:".len()..].trim(), 8).unwrap()
}

/// The process's open fds, each with what it points at (the listing's own directory fd
/// included).
fn open_fds() -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let target = std::fs::read_link(format!("/proc/self/fd/{name}")).ok()?;
            Some((name, target.to_string_lossy().into_owned()))
        })
        .collect()
}

/// CORE-15 (the loop's own fds, which `close()` closes): the epoll fd and the wake-up eventfd
/// a new loop opens are close-on-exec, so a child started with `exec` does not inherit them,
/// and the eventfd is non-blocking, so draining it never blocks the loop.
#[test]
fn core_15_the_loops_own_fds_are_close_on_exec_and_the_wakeup_fd_non_blocking() {
    let _s = serial();
    let before = open_fds();
    let lp = EventLoop::new().unwrap();
    let new: Vec<(String, String)> = open_fds()
        .into_iter()
        .filter(|(fd, t)| before.get(fd) != Some(t) && !t.starts_with("/proc/"))
        .collect();
    let mut kinds: Vec<&str> = new.iter().map(|(_, t)| t.as_str()).collect();
    kinds.sort_unstable();
    // The `polling` backend on Linux also keeps a timerfd for sub-millisecond timeouts.
    let expected: &[&str] = if cfg!(feature = "reactor-polling") {
        &[
            "anon_inode:[eventfd]",
            "anon_inode:[eventpoll]",
            "anon_inode:[timerfd]",
        ]
    } else {
        &["anon_inode:[eventfd]", "anon_inode:[eventpoll]"]
    };
    assert_eq!(kinds, expected);
    for (fd, target) in &new {
        let flags = open_flags(fd);
        assert_ne!(
            flags & rustix::fs::OFlags::CLOEXEC.bits(),
            0,
            "{target} (fd {fd}) is inherited across exec: flags {flags:o}"
        );
        if target == "anon_inode:[eventfd]" {
            assert_ne!(
                flags & rustix::fs::OFlags::NONBLOCK.bits(),
                0,
                "the wake-up eventfd (fd {fd}) blocks: flags {flags:o}"
            );
        }
    }
    lp.close().unwrap();
    drop(lp);
    let after = open_fds();
    assert!(new.iter().all(|(fd, t)| after.get(fd) != Some(t)));
}
