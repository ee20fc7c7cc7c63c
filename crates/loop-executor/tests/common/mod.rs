//! Helpers shared by the executor tests: loop-testkit's, under the names these tests use, a
//! gate and a one-thread executor.

#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use loop_core::{Error, EventLoop, Result};
use loop_executor::{Executor, Job};

pub use loop_testkit::{eventually, exclusive, watchdog, watchdog_for, DropProbe};

/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const LONG: Duration = loop_testkit::LONG;

/// A watchdog with the loop registered ([`loop_testkit::watchdog_for`]), under the name these
/// tests use: if the test hangs, the loop unwinds with a fatal error and the test fails.
pub struct Watchdog(loop_testkit::Watchdog);

impl Watchdog {
    pub fn new(lp: &EventLoop) -> Watchdog {
        Watchdog(loop_testkit::watchdog_for(lp))
    }

    /// Ends the watchdog; true if its limit passed.
    pub fn fired(self) -> bool {
        self.0.fired()
    }
}

/// A one-shot gate: workers wait on it until the test opens it.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Waits until open (at most `LONG`); true if it was opened.
    pub fn wait(&self) -> bool {
        let g = self.0 .0.lock().unwrap();
        let (g, _) = self
            .0
             .1
            .wait_timeout_while(g, LONG, |open| !*open)
            .unwrap();
        *g
    }
}

/// An executor with exactly one worker thread, running jobs in order; joined on drop.
pub struct OneThread {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    handle: Mutex<Option<JoinHandle<()>>>,
    pub submitted: AtomicUsize,
    pub shutdowns: AtomicUsize,
}

impl OneThread {
    pub fn new() -> Arc<OneThread> {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("one-thread".into())
            .spawn(move || {
                for job in rx {
                    job.run();
                }
            })
            .unwrap();
        Arc::new(OneThread {
            tx: Mutex::new(Some(tx)),
            handle: Mutex::new(Some(handle)),
            submitted: AtomicUsize::new(0),
            shutdowns: AtomicUsize::new(0),
        })
    }

    /// Stops accepting jobs, runs what is queued, and joins the thread.
    pub fn join(&self) {
        drop(self.tx.lock().unwrap().take());
        if let Some(h) = self.handle.lock().unwrap().take() {
            h.join().unwrap();
        }
    }
}

impl Executor for OneThread {
    fn submit(&self, job: Job) -> Result<()> {
        self.submitted.fetch_add(1, Ordering::SeqCst);
        match &*self.tx.lock().unwrap() {
            Some(tx) => tx.send(job).map_err(|_| Error::ExecutorShutdown),
            None => Err(Error::ExecutorShutdown),
        }
    }

    fn shutdown(&self) {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for OneThread {
    fn drop(&mut self) {
        self.join();
    }
}

/// Runs the loop for one iteration that does nothing but what is ready.
pub fn one_iteration(lp: &EventLoop) {
    loop_testkit::run_once(lp);
}
