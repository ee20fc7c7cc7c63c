//! The life of a transport as one state: a phase that only moves forward, and whether
//! `connection_made` was delivered.
//!
//! ```text
//! Pending -start-> Open -close-> Closing -schedule_lost-> LostScheduled -begin_lost-> Lost
//!    |                                 (from any earlier phase)          -tear_down-> TornDown
//!    +-close-> Closing (connection_made is still delivered, then connection_lost)
//! ```
//!
//! `made` is kept beside the phase rather than in it because `close()` may come before
//! `connection_made` ran (asyncio then delivers both, in that order); `connection_lost` is
//! delivered only to a protocol that got `connection_made`.

/// How far a transport is in its life. Phases only move forward.
///
/// ```
/// use loop_transport::engine::Phase;
/// assert!(Phase::Pending < Phase::Open && Phase::Lost < Phase::TornDown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Made; `connection_made` is scheduled, not yet delivered.
    Pending,
    /// `connection_made` was delivered: reading and writing go on.
    Open,
    /// `close()`, `abort()` or a fatal error: no more reading; buffered data is still sent.
    Closing,
    /// `connection_lost` is in the ready queue.
    LostScheduled,
    /// `connection_lost` is being (or was) delivered.
    Lost,
    /// The resources are released: fd closed, protocol let go, loop reference dropped.
    TornDown,
}

/// The lifecycle state of a transport (a `Copy` value: transports keep it in a `Cell`).
///
/// ```
/// use loop_transport::engine::{Lifecycle, Phase};
/// let mut l = Lifecycle::new();
/// assert!(l.start());
/// assert!(l.close() && !l.close());
/// assert!(l.schedule_lost() && !l.schedule_lost());
/// assert_eq!(l.begin_lost(), Some(true));
/// assert_eq!(l.begin_lost(), None); // exactly once
/// assert!(l.tear_down() && !l.tear_down());
/// assert_eq!(l.phase(), Phase::TornDown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// The phase.
    phase: Phase,
    /// `connection_made` was delivered (or deliberately skipped).
    made: bool,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A new transport: [`Phase::Pending`].
    ///
    /// ```
    /// assert_eq!(loop_transport::engine::Lifecycle::new().phase(), loop_transport::engine::Phase::Pending);
    /// ```
    pub const fn new() -> Lifecycle {
        Lifecycle {
            phase: Phase::Pending,
            made: false,
        }
    }

    /// The phase.
    ///
    /// ```
    /// assert_eq!(loop_transport::engine::Lifecycle::new().phase(), loop_transport::engine::Phase::Pending);
    /// ```
    pub fn phase(self) -> Phase {
        self.phase
    }

    /// `connection_made` was delivered.
    ///
    /// ```
    /// assert!(!loop_transport::engine::Lifecycle::new().made());
    /// ```
    pub fn made(self) -> bool {
        self.made
    }

    /// Open for reading: `connection_made` was delivered and nothing closed the transport.
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// assert!(!l.is_open());
    /// l.start();
    /// assert!(l.is_open());
    /// ```
    pub fn is_open(self) -> bool {
        self.made && self.phase == Phase::Open
    }

    /// Closing or closed (asyncio's `is_closing()`).
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// l.close();
    /// assert!(l.is_closing());
    /// ```
    pub fn is_closing(self) -> bool {
        self.phase >= Phase::Closing
    }

    /// `connection_lost` is scheduled, running, or done.
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// l.schedule_lost();
    /// assert!(l.lost_scheduled());
    /// ```
    pub fn lost_scheduled(self) -> bool {
        self.phase >= Phase::LostScheduled
    }

    /// `connection_lost` is running or done (or the transport was torn down without it).
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// l.tear_down();
    /// assert!(l.is_lost());
    /// ```
    pub fn is_lost(self) -> bool {
        self.phase >= Phase::Lost
    }

    /// The state as a transport's `Debug` shows it: `open`, `closing` or `closed`.
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// assert_eq!(l.label(), "open");
    /// l.close();
    /// assert_eq!(l.label(), "closing");
    /// ```
    pub fn label(self) -> &'static str {
        if self.is_lost() {
            "closed"
        } else if self.is_closing() {
            "closing"
        } else {
            "open"
        }
    }

    /// Torn down.
    ///
    /// ```
    /// assert!(!loop_transport::engine::Lifecycle::new().is_torn_down());
    /// ```
    pub fn is_torn_down(self) -> bool {
        self.phase == Phase::TornDown
    }

    /// `connection_made` is due: true (and `made` is set) unless it was delivered already or
    /// `connection_lost` ran; a pending transport becomes [`Phase::Open`].
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// l.close(); // close() before connection_made: it is still delivered
    /// assert!(l.start());
    /// assert!(!l.start());
    /// assert!(l.is_closing());
    /// ```
    pub fn start(&mut self) -> bool {
        if self.made || self.phase >= Phase::Lost {
            return false;
        }
        self.made = true;
        if self.phase == Phase::Pending {
            self.phase = Phase::Open;
        }
        true
    }

    /// Starts closing: true for the call that did.
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// assert!(l.close());
    /// assert!(!l.close());
    /// ```
    pub fn close(&mut self) -> bool {
        if self.phase >= Phase::Closing {
            return false;
        }
        self.phase = Phase::Closing;
        true
    }

    /// `connection_lost` gets scheduled: true for the one call that must schedule it.
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// assert!(l.schedule_lost());
    /// assert!(!l.schedule_lost());
    /// ```
    pub fn schedule_lost(&mut self) -> bool {
        if self.phase >= Phase::LostScheduled {
            return false;
        }
        self.phase = Phase::LostScheduled;
        true
    }

    /// `connection_lost` runs now: `Some(made)` the first time (deliver it if `made`), `None`
    /// after (it ran, or the transport was torn down).
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// assert_eq!(l.begin_lost(), Some(false)); // never made: nothing to deliver
    /// assert_eq!(l.begin_lost(), None);
    /// ```
    pub fn begin_lost(&mut self) -> Option<bool> {
        if self.phase >= Phase::Lost {
            return None;
        }
        self.phase = Phase::Lost;
        Some(self.made)
    }

    /// The transport releases its resources: true the first time.
    ///
    /// ```
    /// let mut l = loop_transport::engine::Lifecycle::new();
    /// assert!(l.tear_down());
    /// assert!(!l.tear_down());
    /// ```
    pub fn tear_down(&mut self) -> bool {
        if self.phase == Phase::TornDown {
            return false;
        }
        self.phase = Phase::TornDown;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let mut l = Lifecycle::new();
        l.schedule_lost();
        assert!(!l.close(), "no way back from LostScheduled to Closing");
        assert_eq!(l.phase(), Phase::LostScheduled);
        assert!(
            l.start(),
            "connection_made is still due before connection_lost ran"
        );
        assert_eq!(l.phase(), Phase::LostScheduled);
        assert_eq!(l.begin_lost(), Some(true));
        assert!(!l.start(), "no connection_made after connection_lost");
        assert!(!l.schedule_lost());
    }

    #[test]
    fn teardown_before_lost_means_no_connection_lost() {
        let mut l = Lifecycle::new();
        l.start();
        assert!(l.tear_down());
        assert_eq!(l.begin_lost(), None);
        assert!(l.is_lost() && l.is_closing() && !l.is_open());
    }

    #[test]
    fn open_means_made_and_not_closing() {
        let mut l = Lifecycle::new();
        assert!(!l.is_open());
        l.start();
        assert!(l.is_open());
        l.close();
        assert!(!l.is_open() && l.made());
    }
}
