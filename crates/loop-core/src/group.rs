//! One loop per core: [`spawn_loops`] starts `n` loops on `n` threads and [`LoopGroup`] stops
//! and joins them.
//!
//! A loop is one thread by contract (`EventLoop` is `!Send`), so the way to use more cores is
//! more loops, each owning its own sockets — for a server, one listener per loop on the same
//! port with `SO_REUSEPORT`, the kernel spreading connections across them. What every such
//! program needs around that is small but easy to get wrong: build each loop on its thread, run
//! a setup on it, report a setup failure to the caller instead of leaving a half-started group,
//! and on shutdown ask every loop to stop and join every thread. That is this module.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::{Error, EventLoop, Exception, Remote, Result};

/// A group of loops, each running `run_forever` on its own thread; see [`spawn_loops`].
///
/// Dropping the group stops every loop and joins its thread (errors are dropped then; call
/// [`join`](LoopGroup::join) to see them).
///
/// ```
/// let group = loop_core::spawn_loops(2, |_lp, _i| Ok(()))?;
/// assert_eq!(group.len(), 2);
/// drop(group); // stops both loops and joins their threads
/// # Ok::<(), loop_core::Error>(())
/// ```
#[derive(Debug)]
pub struct LoopGroup {
    /// Each loop's remote and its thread, in index order.
    loops: Vec<(Remote, Option<JoinHandle<Result<()>>>)>,
}

/// Starts `n` event loops on `n` new threads (named `evloop-0`, `evloop-1`, …). On each thread
/// a fresh [`EventLoop`] is created, `setup(&lp, index)` runs on it, and then the loop runs
/// until it is stopped ([`LoopGroup::stop`], [`LoopGroup::join`], [`Remote::stop`] or a
/// callback calling `stop`). After `run_forever` returns, the thread closes its loop.
///
/// `spawn_loops` returns once every setup has finished, so whatever the setups do (bind a
/// listener, say) is done when it returns.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `n` is 0. If a setup returns an error or panics, every loop
/// already started is stopped and joined and the first error is returned (a panic as an
/// [`Error::Exception`]); a thread that cannot be spawned gives [`Error::Io`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let ran = Arc::new(AtomicUsize::new(0));
/// let r = ran.clone();
/// let group = loop_core::spawn_loops(2, move |lp, i| {
///     let r = r.clone();
///     lp.call_soon(move |_| { r.fetch_add(i + 1, Ordering::SeqCst); })?;
///     Ok(())
/// })?;
/// assert_eq!(group.len(), 2);
/// group.join()?; // stops both loops, joins both threads
/// assert_eq!(ran.load(Ordering::SeqCst), 1 + 2);
/// # Ok::<(), loop_core::Error>(())
/// ```
pub fn spawn_loops<F>(n: usize, setup: F) -> Result<LoopGroup>
where
    F: Fn(&EventLoop, usize) -> Result<()> + Send + Sync + 'static,
{
    if n == 0 {
        return Err(Error::invalid_argument(
            "spawn_loops needs at least one loop (n was 0)",
        ));
    }
    let setup = Arc::new(setup);
    let mut group = LoopGroup { loops: Vec::new() };
    let mut first_error = None;
    for index in 0..n {
        let (tx, rx) = mpsc::channel::<Result<Remote>>();
        let setup = setup.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("evloop-{index}"))
            .spawn(move || loop_thread(index, &*setup, tx));
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                first_error = Some(Error::from(e));
                break;
            }
        };
        match rx.recv() {
            Ok(Ok(remote)) => group.loops.push((remote, Some(handle))),
            Ok(Err(e)) => {
                let _ = handle.join();
                first_error = Some(e);
                break;
            }
            Err(_) => {
                // The thread ended without reporting: it panicked outside the setup.
                first_error = Some(match handle.join() {
                    Err(payload) => Error::Exception(Exception::from_panic(&*payload)),
                    Ok(r) => r.err().unwrap_or(Error::Closed),
                });
                break;
            }
        }
    }
    match first_error {
        None => Ok(group),
        Some(e) => {
            // Dropping the group stops and joins the loops that did start.
            drop(group);
            Err(e)
        }
    }
}

/// The body of one loop thread.
fn loop_thread<F>(index: usize, setup: &F, report: mpsc::Sender<Result<Remote>>) -> Result<()>
where
    F: Fn(&EventLoop, usize) -> Result<()>,
{
    let lp = match EventLoop::new() {
        Ok(lp) => lp,
        Err(e) => {
            let _ = report.send(Err(e));
            return Ok(());
        }
    };
    let set_up = catch_unwind(AssertUnwindSafe(|| setup(&lp, index)))
        .unwrap_or_else(|payload| Err(Error::Exception(Exception::from_panic(&*payload))));
    if let Err(e) = set_up {
        let _ = lp.close();
        let _ = report.send(Err(e));
        return Ok(());
    }
    if report.send(Ok(lp.remote())).is_err() {
        let _ = lp.close();
        return Ok(());
    }
    let run = lp.run_forever();
    let close = lp.close();
    run.and(close)
}

impl LoopGroup {
    /// The number of loops.
    ///
    /// ```
    /// let group = loop_core::spawn_loops(3, |_, _| Ok(()))?;
    /// assert_eq!(group.len(), 3);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    /// Always false: a group has at least one loop.
    ///
    /// ```
    /// let group = loop_core::spawn_loops(1, |_, _| Ok(()))?;
    /// assert!(!group.is_empty());
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }

    /// The remote of loop `index` (to schedule work on it from any thread), or `None` if
    /// `index` is out of range.
    ///
    /// ```
    /// let group = loop_core::spawn_loops(2, |_, _| Ok(()))?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// group.remote(1).unwrap().call_soon_threadsafe(move |_| tx.send(7).unwrap())?;
    /// assert_eq!(rx.recv().unwrap(), 7);
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn remote(&self, index: usize) -> Option<&Remote> {
        self.loops.get(index).map(|(r, _)| r)
    }

    /// Asks every loop to stop, without waiting. Loops that already stopped are skipped.
    ///
    /// ```
    /// let group = loop_core::spawn_loops(2, |_, _| Ok(()))?;
    /// group.stop();
    /// group.join()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn stop(&self) {
        for (remote, _) in &self.loops {
            // A loop that is closed already has nothing to stop.
            let _ = remote.stop();
        }
    }

    /// Stops every loop and joins every thread.
    ///
    /// # Errors
    ///
    /// The first error any loop's `run_forever` or `close` returned, in index order; a thread
    /// that panicked gives [`Error::Exception`]. Every thread is joined either way.
    ///
    /// ```
    /// let group = loop_core::spawn_loops(2, |_, _| Ok(()))?;
    /// group.join()?;
    /// # Ok::<(), loop_core::Error>(())
    /// ```
    pub fn join(mut self) -> Result<()> {
        self.join_all()
    }

    /// Stops and joins every loop that is not joined yet; the first error wins.
    fn join_all(&mut self) -> Result<()> {
        self.stop();
        let mut result = Ok(());
        for (_, handle) in &mut self.loops {
            let Some(handle) = handle.take() else {
                continue;
            };
            let r = match handle.join() {
                Ok(r) => r,
                Err(payload) => Err(Error::Exception(Exception::from_panic(&*payload))),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for LoopGroup {
    fn drop(&mut self) {
        let _ = self.join_all();
    }
}
