//! `RemoteExt::spawn`: asyncio's `run_coroutine_threadsafe` for a future that is `Send` already.
//!
//! The cross-thread machinery (the result slot, the blocking wait, the timeout that cancels the
//! task inside the loop, cross-thread cancellation, the `Closed` outcome of a closed loop) is
//! the kernel's: [`Remote::run_coroutine_threadsafe`] and [`ConcurrentFuture`]. That call takes
//! a closure which makes the future on the loop's thread, so the future may use the loop's
//! objects. Most work submitted from another thread is a plain `Send` future, though, and for
//! it the closure is noise: [`RemoteExt::spawn`] takes the future itself and returns the same
//! [`ConcurrentFuture`].

use std::future::Future;

use loop_core::{ConcurrentFuture, Remote, Result};

mod sealed {
    /// Only `Remote` implements [`RemoteExt`](super::RemoteExt).
    pub trait Sealed {}
    impl Sealed for loop_core::Remote {}
}

/// Submitting a `Send` future to a loop from any thread, as a method of [`Remote`].
///
/// ```
/// use loop_core::EventLoop;
/// use loop_executor::RemoteExt;
///
/// let lp = EventLoop::new()?;
/// let remote = lp.remote();
/// let worker = std::thread::spawn(move || {
///     let v = remote.spawn(async { 6 * 7 })?.wait_timeout(std::time::Duration::from_secs(30));
///     remote.stop()?;
///     v
/// });
/// lp.run_forever()?;
/// assert_eq!(worker.join().unwrap()?, 42);
/// # Ok::<(), loop_core::Error>(())
/// ```
pub trait RemoteExt: sealed::Sealed {
    /// Runs `fut` as a task of the loop and returns a [`ConcurrentFuture`] of its output
    /// (asyncio's `run_coroutine_threadsafe`, EXEC-10). Callable from any thread, including
    /// the loop's own.
    ///
    /// The same as [`Remote::run_coroutine_threadsafe`] with a closure that returns `fut`, and
    /// with the same outcomes: the task is created on the loop's thread through the loop's
    /// task factory (a refusal is set on the returned future and reported once to the
    /// exception handler, CORE-51); a panic in the task comes back as
    /// [`Error::Exception`](loop_core::Error::Exception), a cancellation inside the loop as
    /// [`Error::Cancelled`](loop_core::Error::Cancelled); a
    /// [`wait_timeout`](ConcurrentFuture::wait_timeout) that runs out cancels the task inside
    /// the loop; a loop closed before the task finishes gives
    /// [`Error::Closed`](loop_core::Error::Closed).
    ///
    /// `fut` must be `Send` to travel to the loop. A future that uses loop objects (which are
    /// not `Send`) is made on the loop's thread instead, with
    /// [`Remote::run_coroutine_threadsafe`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](loop_core::Error::Closed) if the loop is closed already.
    ///
    /// ```
    /// use loop_executor::RemoteExt;
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let fut = lp.remote().spawn(async { "hi" }).unwrap();
    /// lp.run_until_complete(async { loop_core::yield_now().await }).unwrap();
    /// assert_eq!(fut.wait().unwrap(), "hi");
    /// ```
    fn spawn<F>(&self, fut: F) -> Result<ConcurrentFuture<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

impl RemoteExt for Remote {
    #[track_caller]
    fn spawn<F>(&self, fut: F) -> Result<ConcurrentFuture<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.run_coroutine_threadsafe(move |_| fut)
    }
}
