//! `spawn_loops` / `LoopGroup`: one loop per thread, started together, stopped and joined
//! together.

// Every test here runs an event loop, which miri cannot: its epoll emulation accepts only
// edge-triggered registrations, and the reactor is level-triggered.
#![cfg(not(miri))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use loop_core::internal::LoopInternals;
use loop_core::{spawn_loops, Error};

/// The number of this process's threads named `evloop-*` (the group's loop threads).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("evloop-"))
        .count()
}

#[test]
fn group_each_loop_runs_on_its_own_named_thread_and_join_stops_all() {
    let _w = loop_testkit::exclusive();
    let before = threads();
    let group = spawn_loops(4, |_lp, i| {
        assert_eq!(
            std::thread::current().name(),
            Some(format!("evloop-{i}").as_str())
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(group.len(), 4);
    assert_eq!(threads(), before + 4, "one thread per loop");
    // Work scheduled on each loop runs on that loop's thread.
    let (tx, rx) = mpsc::channel();
    for i in 0..4 {
        let tx = tx.clone();
        group
            .remote(i)
            .unwrap()
            .call_soon_threadsafe(move |_| {
                tx.send((i, std::thread::current().name().unwrap().to_owned()))
                    .unwrap()
            })
            .unwrap();
    }
    let mut seen: Vec<_> = (0..4).map(|_| rx.recv().unwrap()).collect();
    seen.sort();
    for (i, (j, name)) in seen.iter().enumerate() {
        assert_eq!((i, name.as_str()), (*j, format!("evloop-{i}").as_str()));
    }
    assert!(group.remote(4).is_none());
    group.join().unwrap();
    assert!(threads() <= before, "every loop thread joined");
}

#[test]
fn group_setup_error_stops_the_loops_already_started_and_is_returned() {
    let _w = loop_testkit::exclusive();
    let before = threads();
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    let err = spawn_loops(3, move |lp, i| {
        let c = c.clone();
        lp.on_close(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        if i == 2 {
            return Err(Error::invalid_argument("loop 2 cannot bind"));
        }
        Ok(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("loop 2 cannot bind"), "{err}");
    assert_eq!(closed.load(Ordering::SeqCst), 3, "every loop was closed");
    assert!(threads() <= before, "no thread left behind");
}

#[test]
fn group_setup_panic_becomes_an_error() {
    let _w = loop_testkit::watchdog();
    let err = spawn_loops(2, |_, i| {
        if i == 1 {
            panic!("setup exploded");
        }
        Ok(())
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::Exception(e) if e.is_panic() && e.to_string().contains("setup exploded")),
        "{err:?}"
    );
}

#[test]
fn group_zero_loops_is_a_clear_error() {
    let _w = loop_testkit::watchdog();
    let err = spawn_loops(0, |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert!(err.to_string().contains("at least one loop"), "{err}");
}

#[test]
fn group_dropped_stops_and_joins() {
    let _w = loop_testkit::exclusive();
    let before = threads();
    let group = spawn_loops(2, |_, _| Ok(())).unwrap();
    drop(group);
    assert!(threads() <= before, "drop joined every thread");
}

#[test]
fn group_a_loop_stopped_by_its_own_callback_is_still_joined() {
    let _w = loop_testkit::watchdog();
    let group = spawn_loops(2, |lp, i| {
        if i == 0 {
            lp.call_soon(|lp| lp.stop())?;
        }
        Ok(())
    })
    .unwrap();
    group.join().unwrap();
}
