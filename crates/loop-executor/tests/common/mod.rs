//! Helpers shared by the executor tests: a watchdog, a gate and a one-thread executor.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use loop_core::{Error, EventLoop, Remote, Result};
use loop_executor::{Executor, Job};

/// Generous bound for anything that should happen "soon" on a loaded machine.
pub const LONG: Duration = Duration::from_secs(30);

/// Stops the loop if the test hangs, so that a missing wake-up fails instead of hanging.
/// Dropping it ends its thread at once.
pub struct Watchdog {
    tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<bool>>,
}

impl Watchdog {
    pub fn new(lp: &EventLoop) -> Watchdog {
        Watchdog::with_remote(lp.remote())
    }

    pub fn with_remote(remote: Remote) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || match rx.recv_timeout(LONG) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = remote.stop();
                true
            }
            _ => false,
        });
        Watchdog {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Ends the watchdog; true if it had to stop the loop.
    pub fn fired(mut self) -> bool {
        self.finish()
    }

    fn finish(&mut self) -> bool {
        drop(self.tx.take());
        self.handle
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or(false)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
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

/// Counts drops, and remembers the thread of the last one.
pub struct DropProbe {
    pub drops: Arc<AtomicUsize>,
    pub thread: Arc<Mutex<Option<std::thread::ThreadId>>>,
}

impl DropProbe {
    pub fn new() -> (
        DropProbe,
        Arc<AtomicUsize>,
        Arc<Mutex<Option<std::thread::ThreadId>>>,
    ) {
        let drops = Arc::new(AtomicUsize::new(0));
        let thread = Arc::new(Mutex::new(None));
        (
            DropProbe {
                drops: drops.clone(),
                thread: thread.clone(),
            },
            drops,
            thread,
        )
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.thread.lock().unwrap() = Some(std::thread::current().id());
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (at most `LONG`) until `cond` holds.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < LONG {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Runs the loop for one iteration that does nothing but what is ready.
pub fn one_iteration(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}
