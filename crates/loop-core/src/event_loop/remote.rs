//! The part of the loop other threads reach: [`Remote`], and moving the work they queued into
//! the ready queue.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{EventLoop, RemoteNode, RemoteWork, Shared};
use crate::{Error, Result};

/// A `Send + Sync` handle to a loop, for other threads: `call_soon_threadsafe` and `stop`.
///
/// ```
/// let lp = loop_core::EventLoop::new().unwrap();
/// let remote = lp.remote();
/// std::thread::spawn(move || {
///     remote.call_soon_threadsafe(|lp| lp.stop()).unwrap();
/// });
/// lp.run_forever().unwrap();
/// ```
#[derive(Clone)]
pub struct Remote {
    /// The loop's shared part.
    pub(crate) shared: Arc<Shared>,
}

impl Remote {
    /// Asks the loop to stop (as [`EventLoop::stop`] from its own thread).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop was closed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = lp.remote();
    /// std::thread::spawn(move || r.stop().unwrap());
    /// lp.run_forever().unwrap();
    /// ```
    pub fn stop(&self) -> Result<()> {
        self.shared
            .push(RemoteWork::Stop)
            .map_err(|_| Error::Closed)
    }

    /// True once the loop was closed.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r = lp.remote();
    /// lp.close().unwrap();
    /// assert!(r.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// True if the calling thread is the loop's thread.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// assert!(lp.remote().is_loop_thread());
    /// ```
    pub fn is_loop_thread(&self) -> bool {
        std::thread::current().id() == self.shared.thread
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Remote loop={}>", self.shared.id)
    }
}

impl EventLoop {
    /// The thread-safe handle of this loop.
    ///
    /// ```
    /// let lp = loop_core::EventLoop::new().unwrap();
    /// let r: loop_core::Remote = lp.remote();
    /// # drop(r);
    /// ```
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.shared.clone(),
        }
    }

    /// Moves work queued by other threads into the ready queue.
    pub(super) fn take_remote(&self) {
        let inner = &*self.inner;
        let batch = inner.shared.wake.take_batch();
        // In one go: the batch knows its length, so the ready queue makes room once.
        inner
            .ready
            .borrow_mut()
            .extend(batch.map(RemoteNode::into_work));
    }
}
