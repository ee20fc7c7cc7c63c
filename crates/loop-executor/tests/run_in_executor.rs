//! EXEC-01 .. EXEC-09: run_in_executor, the default executor and its shutdown.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use common::{eventually, one_iteration, DropProbe, Gate, OneThread, Watchdog};
use loop_core::{Error, EventLoop, Result};
use loop_executor::{BlockingExecutor, Executor, ExecutorExt, Job};

#[test]
fn exec_01_result_comes_back_from_a_worker_thread() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let fut = lp
        .run_in_executor(None, move || {
            let here = std::thread::current().id();
            (here != loop_thread, 40 + 2)
        })
        .unwrap();
    let dog = Watchdog::new(&lp);
    let (off_loop, v) = lp.run_until_complete(fut).unwrap().unwrap();
    assert!(!dog.fired());
    assert!(off_loop, "the job ran on the loop's thread");
    assert_eq!(v, 42);
    lp.close().unwrap();
}

#[test]
fn exec_01_explicit_executor_runs_the_job_there() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let pool = OneThread::new();
    let fut = lp
        .run_in_executor(Some(&*pool), || {
            std::thread::current().name().map(str::to_string)
        })
        .unwrap();
    let dog = Watchdog::new(&lp);
    let name = lp.run_until_complete(fut).unwrap().unwrap();
    drop(dog);
    assert_eq!(name.as_deref(), Some("one-thread"));
    assert_eq!(pool.submitted.load(Ordering::SeqCst), 1);
    lp.close().unwrap();
}

#[test]
fn exec_01_panic_in_job_becomes_the_future_error() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let fut = lp
        .run_in_executor(None, || -> u32 { panic!("job exploded") })
        .unwrap();
    let dog = Watchdog::new(&lp);
    let err = lp.run_until_complete(fut).unwrap().unwrap_err();
    drop(dog);
    match &err {
        Error::Exception(e) => assert!(e.is_panic()),
        other => panic!("expected an exception, got {other:?}"),
    }
    assert!(err.to_string().contains("job exploded"), "{err}");
    // The loop keeps working after the panic came back.
    let fut = lp.run_in_executor(None, || 1).unwrap();
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 1);
    lp.close().unwrap();
}

/// evloop's documented deviation from EXEC-02: the default executor is the `blocking` crate's
/// pool (threads `blocking-N`), not asyncio's `asyncio_N` threads; jobs run off the loop's
/// thread (EXEC-01).
#[test]
fn exec_02_deviation_default_executor_is_a_blocking_pool_off_the_loop_thread() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let fut = lp
        .run_in_executor(None, move || {
            let t = std::thread::current();
            (t.id(), t.name().map(str::to_string))
        })
        .unwrap();
    let dog = Watchdog::new(&lp);
    let (id, name) = lp.run_until_complete(fut).unwrap().unwrap();
    drop(dog);
    assert_ne!(id, loop_thread);
    let name = name.unwrap_or_default();
    assert!(name.starts_with("blocking-"), "thread name {name:?}");
    lp.close().unwrap();
}

#[test]
fn exec_02_default_executor_is_created_lazily() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    // Never used: shutting it down has nothing to wait for.
    let f = lp.shutdown_default_executor(Some(Duration::from_secs(60)));
    assert!(f.done());
    assert!(f.result().is_ok());
    lp.close().unwrap();
}

/// asyncio's default pool size: min(32, CPUs + 4).
fn asyncio_pool_size() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

#[test]
fn exec_02_default_pool_runs_as_many_jobs_at_once_as_asyncios_pool() {
    jobs_run_at_once(asyncio_pool_size());
}

/// evloop's documented deviation from EXEC-02: the default pool is not capped at asyncio's
/// min(32, CPUs + 4) threads (blocking's grows to 500), so 33 jobs run at once on any machine.
#[test]
fn exec_02_deviation_default_pool_grows_past_asyncios_cap_of_32() {
    jobs_run_at_once(33);
}

/// `n` jobs on the default executor that wait for each other: they can only finish if they
/// all run at the same time.
fn jobs_run_at_once(n: usize) {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let barrier = Arc::new(Barrier::new(n));
    let mut futs = Vec::new();
    for i in 0..n {
        let b = barrier.clone();
        futs.push(
            lp.run_in_executor(None, move || {
                b.wait();
                i
            })
            .unwrap(),
        );
    }
    let dog = Watchdog::new(&lp);
    let sum = lp
        .run_until_complete(async move {
            let mut s = 0;
            for f in futs {
                s += f.await.unwrap();
            }
            s
        })
        .unwrap();
    assert!(!dog.fired());
    assert_eq!(sum, (0..n).sum::<usize>());
    lp.close().unwrap();
}

#[test]
fn exec_03_closed_loop_rejects_run_in_executor() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let err = lp
        .run_in_executor(None, move || r.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(matches!(err, Error::Closed));
    assert_eq!(err.to_string(), "Event loop is closed");
    let pool = OneThread::new();
    let r = ran.clone();
    let err = lp
        .run_in_executor(Some(&*pool), move || r.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(matches!(err, Error::Closed));
    assert_eq!(pool.submitted.load(Ordering::SeqCst), 0);
    pool.join();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn exec_04_after_shutdown_none_fails_explicit_still_works() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let f = lp.run_in_executor(None, || 1).unwrap();
    let dog = Watchdog::new(&lp);
    assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), 1);
    lp.run_until_complete(lp.shutdown_default_executor(None))
        .unwrap()
        .unwrap();
    let err = lp.run_in_executor(None, || 2).unwrap_err();
    assert!(matches!(err, Error::ExecutorShutdown));
    assert_eq!(err.to_string(), "Executor shutdown has been called");
    // An explicit executor is still accepted, the blocking pool included.
    let f = lp.run_in_executor(Some(&BlockingExecutor), || 3).unwrap();
    assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), 3);
    let pool = OneThread::new();
    let f = lp.run_in_executor(Some(&*pool), || 4).unwrap();
    assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), 4);
    drop(dog);
    lp.close().unwrap();
}

#[test]
fn exec_05_cancel_before_start_skips_job() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let pool = OneThread::new();
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    // The single worker is busy with this job until the gate opens...
    let g = gate.clone();
    let blocker = lp
        .run_in_executor(Some(&*pool), move || {
            started_tx.send(()).unwrap();
            g.wait()
        })
        .unwrap();
    started_rx.recv_timeout(common::LONG).unwrap();
    // ... so this one is queued, not started.
    let ran = Arc::new(AtomicBool::new(false));
    let (probe, drops, _) = DropProbe::new();
    let r = ran.clone();
    let queued = lp
        .run_in_executor(Some(&*pool), move || {
            let _keep = &probe;
            r.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert!(queued.cancel());
    // The cancellation reaches the job's state through a done-callback: one iteration.
    one_iteration(&lp);
    gate.open();
    let dog = Watchdog::new(&lp);
    assert!(lp.run_until_complete(blocker).unwrap().unwrap());
    drop(dog);
    pool.join();
    assert!(
        !ran.load(Ordering::SeqCst),
        "a job cancelled before it started ran"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the unrun closure was not dropped"
    );
    assert!(queued.cancelled());
    lp.close().unwrap();
}

#[test]
fn exec_05_cancel_after_start_drops_result() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let (probe, drops, drop_thread) = DropProbe::new();
    let g = gate.clone();
    let fin = finished.clone();
    let fut = lp
        .run_in_executor(None, move || {
            started_tx.send(()).unwrap();
            assert!(g.wait());
            fin.store(true, Ordering::SeqCst);
            probe
        })
        .unwrap();
    started_rx.recv_timeout(common::LONG).unwrap();
    assert!(fut.cancel_with("too late"));
    gate.open();
    // The shutdown waits until this loop's default-executor job has reported back.
    let dog = Watchdog::new(&lp);
    lp.run_until_complete(lp.shutdown_default_executor(None))
        .unwrap()
        .unwrap();
    assert!(!dog.fired());
    assert!(
        finished.load(Ordering::SeqCst),
        "a started job must run to its end"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the result was not dropped"
    );
    assert_eq!(
        *drop_thread.lock().unwrap(),
        Some(std::thread::current().id()),
        "the result travels to the loop and is dropped there"
    );
    assert!(fut.cancelled());
    let err = fut.exception().unwrap_err();
    assert_eq!(err.as_cancelled().unwrap().message(), Some("too late"));
    lp.close().unwrap();
}

#[test]
fn exec_05_job_finished_before_cancel_keeps_its_result() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let fut = lp.run_in_executor(None, || 8).unwrap();
    let dog = Watchdog::new(&lp);
    lp.run_until_complete(lp.shutdown_default_executor(None))
        .unwrap()
        .unwrap();
    drop(dog);
    assert!(!fut.cancel());
    assert_eq!(fut.result().unwrap(), 8);
    lp.close().unwrap();
}

#[test]
fn exec_05_nothing_is_posted_to_a_loop_closed_meanwhile() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (probe, drops, drop_thread) = DropProbe::new();
    let g = gate.clone();
    let fut = lp
        .run_in_executor(None, move || {
            started_tx.send(()).unwrap();
            g.wait();
            probe
        })
        .unwrap();
    started_rx.recv_timeout(common::LONG).unwrap();
    lp.close().unwrap();
    assert!(!fut.done());
    gate.open();
    assert!(eventually(|| drops.load(Ordering::SeqCst) == 1));
    let t = drop_thread.lock().unwrap().unwrap();
    assert_ne!(
        t,
        std::thread::current().id(),
        "the result must be dropped on the worker, not posted to the closed loop"
    );
    assert!(!fut.done());
}

#[test]
fn exec_06_completion_wakes_a_loop_blocked_in_poll() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let fut = lp
        .run_in_executor(None, || {
            std::thread::sleep(Duration::from_millis(50));
            "slept"
        })
        .unwrap();
    let seen_on = Arc::new(Mutex::new(None));
    let s = seen_on.clone();
    fut.add_done_callback(move |_| *s.lock().unwrap() = Some(std::thread::current().id()));
    // Nothing else is scheduled: the loop blocks in epoll until the worker's message wakes it.
    let dog = Watchdog::new(&lp);
    let f2 = fut.clone();
    let v = lp.run_until_complete(f2).unwrap().unwrap();
    one_iteration(&lp);
    assert!(!dog.fired(), "the completion did not wake the loop");
    assert_eq!(v, "slept");
    assert_eq!(*seen_on.lock().unwrap(), Some(loop_thread));
    lp.close().unwrap();
}

/// Runs each job at once, on the calling thread.
struct Inline;
impl Executor for Inline {
    fn submit(&self, job: Job) -> Result<()> {
        job.run();
        Ok(())
    }
}

#[test]
fn exec_06_completion_goes_through_the_threadsafe_queue() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let fut = lp.run_in_executor(Some(&Inline), || 5).unwrap();
    // The job already ran, but its outcome is a call_soon_threadsafe message: not applied yet.
    assert!(!fut.done());
    one_iteration(&lp);
    assert_eq!(fut.result().unwrap(), 5);
    lp.close().unwrap();
}

#[test]
fn exec_07_set_default_executor_accepts_any_executor() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let pool = OneThread::new();
    lp.set_default_executor(pool.clone());
    let f = lp
        .run_in_executor(None, || std::thread::current().name().map(String::from))
        .unwrap();
    let dog = Watchdog::new(&lp);
    assert_eq!(
        lp.run_until_complete(f).unwrap().unwrap().as_deref(),
        Some("one-thread")
    );
    assert_eq!(pool.submitted.load(Ordering::SeqCst), 1);
    // The shutdown reaches the custom executor once, and waits for its jobs.
    let (started_tx, started_rx) = mpsc::channel();
    let gate = Gate::new();
    let g = gate.clone();
    let job = lp
        .run_in_executor(None, move || {
            started_tx.send(()).unwrap();
            g.wait()
        })
        .unwrap();
    started_rx.recv_timeout(common::LONG).unwrap();
    let shut = lp.shutdown_default_executor(None);
    assert_eq!(pool.shutdowns.load(Ordering::SeqCst), 1);
    one_iteration(&lp);
    assert!(!shut.done());
    gate.open();
    lp.run_until_complete(shut).unwrap().unwrap();
    assert!(job.done());
    // A new default executor after the shutdown is used again.
    let pool2 = OneThread::new();
    lp.set_default_executor(pool2.clone());
    let f = lp.run_in_executor(None, || 9).unwrap();
    assert_eq!(lp.run_until_complete(f).unwrap().unwrap(), 9);
    assert_eq!(pool2.submitted.load(Ordering::SeqCst), 1);
    drop(dog);
    lp.close().unwrap();
    // close() shut the second one down too.
    assert_eq!(pool2.shutdowns.load(Ordering::SeqCst), 1);
    assert_eq!(pool.shutdowns.load(Ordering::SeqCst), 1);
}

/// Refuses every job.
struct Refuses;
impl Executor for Refuses {
    fn submit(&self, _job: Job) -> Result<()> {
        Err(Error::invalid_argument("pool is full"))
    }
}

/// Accepts jobs and drops them unrun.
struct Drops;
impl Executor for Drops {
    fn submit(&self, job: Job) -> Result<()> {
        drop(job);
        Ok(())
    }
}

#[test]
fn exec_07_executor_refusal_and_dropped_jobs() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let err = lp.run_in_executor(Some(&Refuses), || 1).unwrap_err();
    assert_eq!(err.to_string(), "invalid argument: pool is full");
    // A refused default job is not waited for at shutdown.
    lp.set_default_executor(Refuses);
    assert!(lp.run_in_executor(None, || 1).is_err());
    let dog = Watchdog::new(&lp);
    lp.run_until_complete(lp.shutdown_default_executor(None))
        .unwrap()
        .unwrap();
    // A job the executor drops unrun cancels its future.
    let f = lp.run_in_executor(Some(&Drops), || 1).unwrap();
    // Awaiting the cancelled future cancels the wrapping task.
    let err = lp.run_until_complete(f).unwrap_err();
    drop(dog);
    assert!(err.is_cancelled(), "{err:?}");
    lp.close().unwrap();
}

#[test]
fn exec_08_shutdown_waits_for_in_flight_jobs_without_blocking_the_loop() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let gate = Gate::new();
    let finished = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let fin = finished.clone();
    let job = lp
        .run_in_executor(None, move || {
            g.wait();
            fin.store(true, Ordering::SeqCst);
        })
        .unwrap();
    let shut = lp.shutdown_default_executor(None);
    assert!(!shut.done());
    // The loop keeps running callbacks while the shutdown waits; one of them opens the gate.
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let g = gate.clone();
    lp.call_soon(move |_| {
        t.fetch_add(1, Ordering::SeqCst);
        g.open();
    })
    .unwrap();
    let dog = Watchdog::new(&lp);
    lp.run_until_complete(shut).unwrap().unwrap();
    assert!(!dog.fired());
    assert_eq!(ticks.load(Ordering::SeqCst), 1);
    assert!(finished.load(Ordering::SeqCst));
    assert!(job.done());
    lp.close().unwrap();
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn exec_08_shutdown_timeout_warns_and_stops_waiting() {
    let _w = loop_testkit::watchdog();
    let capture = Capture::default();
    let c = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || c.clone())
        .with_ansi(false)
        .finish();
    let gate = Gate::new();
    tracing::subscriber::with_default(subscriber, || {
        let lp = EventLoop::new().unwrap();
        let g = gate.clone();
        let job = lp.run_in_executor(None, move || g.wait()).unwrap();
        let dog = Watchdog::new(&lp);
        lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_millis(100))))
            .unwrap()
            .unwrap();
        assert!(!dog.fired());
        // The job is still blocked on the gate: the shutdown gave up waiting.
        assert!(!job.done());
        assert!(matches!(
            lp.run_in_executor(None, || ()),
            Err(Error::ExecutorShutdown)
        ));
        lp.close().unwrap();
    });
    gate.open();
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("The executor did not finish joining its threads within 0.1 seconds."),
        "{text}"
    );
}

#[test]
fn exec_09_close_shuts_default_executor_down_without_waiting() {
    let _w = loop_testkit::watchdog();
    let lp = EventLoop::new().unwrap();
    let pool = OneThread::new();
    lp.set_default_executor(pool.clone());
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let g = gate.clone();
    let finished = Arc::new(AtomicBool::new(false));
    let fin = finished.clone();
    let job = lp
        .run_in_executor(None, move || {
            started_tx.send(()).unwrap();
            g.wait();
            fin.store(true, Ordering::SeqCst);
        })
        .unwrap();
    started_rx.recv_timeout(common::LONG).unwrap();
    // close() returns while the job is still blocked: it does not wait.
    lp.close().unwrap();
    assert!(!finished.load(Ordering::SeqCst));
    assert_eq!(pool.shutdowns.load(Ordering::SeqCst), 1);
    assert!(!job.done());
    assert!(matches!(
        lp.run_in_executor(None, || ()),
        Err(Error::Closed)
    ));
    gate.open();
    pool.join();
    assert!(finished.load(Ordering::SeqCst));
    assert!(!job.done());
}
