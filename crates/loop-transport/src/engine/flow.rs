//! Write flow control over a buffer size (asyncio's rules, NET-64, NET-65): pause when the
//! size goes strictly above the high-water mark, resume when it drains to the low-water mark
//! or below.

use loop_core::{Error, Result};

/// Default high-water mark of a write buffer (NET-65): 64 KiB.
///
/// ```
/// assert_eq!(loop_transport::DEFAULT_HIGH_WATER, 65536);
/// ```
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// The water marks and whether the protocol is paused.
///
/// ```
/// use loop_transport::engine::Flow;
/// let mut f = Flow::with_limits(Some(100), None).unwrap();
/// assert_eq!(f.limits(), (25, 100));
/// assert!(!f.pause(100)); // not above high
/// assert!(f.pause(101));
/// assert!(!f.pause(500)); // already paused
/// assert!(!f.resume(26));
/// assert!(f.resume(25));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// High-water mark.
    high: usize,
    /// Low-water mark.
    low: usize,
    /// `pause_writing()` was delivered (or queued) without its `resume_writing()`.
    paused: bool,
}

impl Default for Flow {
    fn default() -> Flow {
        Flow {
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_HIGH_WATER / 4,
            paused: false,
        }
    }
}

impl Flow {
    /// Limits resolved by [`resolve_limits`]'s rules.
    ///
    /// # Errors
    ///
    /// As [`resolve_limits`].
    ///
    /// ```
    /// assert!(loop_transport::engine::Flow::with_limits(Some(1), Some(2)).is_err());
    /// ```
    pub fn with_limits(high: Option<usize>, low: Option<usize>) -> Result<Flow> {
        let (high, low) = resolve_limits(high, low)?;
        Ok(Flow {
            high,
            low,
            paused: false,
        })
    }

    /// Sets the limits (the caller then checks [`pause`](Flow::pause): lowering them may
    /// pause at once).
    ///
    /// # Errors
    ///
    /// As [`resolve_limits`]; the limits are unchanged then.
    ///
    /// ```
    /// let mut f = loop_transport::engine::Flow::default();
    /// f.set_limits(None, Some(10)).unwrap();
    /// assert_eq!(f.limits(), (10, 40));
    /// ```
    pub fn set_limits(&mut self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        let (high, low) = resolve_limits(high, low)?;
        self.high = high;
        self.low = low;
        Ok(())
    }

    /// `(low, high)`, asyncio's order.
    ///
    /// ```
    /// assert_eq!(loop_transport::engine::Flow::default().limits(), (16384, 65536));
    /// ```
    pub fn limits(self) -> (usize, usize) {
        (self.low, self.high)
    }

    /// True while paused.
    ///
    /// ```
    /// assert!(!loop_transport::engine::Flow::default().is_paused());
    /// ```
    pub fn is_paused(self) -> bool {
        self.paused
    }

    /// With `size` bytes buffered: true if `pause_writing()` is due now (then paused).
    ///
    /// ```
    /// let mut f = loop_transport::engine::Flow::with_limits(Some(0), None).unwrap();
    /// assert!(f.pause(1)); // high = 0 pauses on any buffered byte
    /// ```
    pub fn pause(&mut self, size: usize) -> bool {
        if size > self.high && !self.paused {
            self.paused = true;
            return true;
        }
        false
    }

    /// With `size` bytes buffered: true if `resume_writing()` is due now (then not paused).
    ///
    /// ```
    /// let mut f = loop_transport::engine::Flow::default();
    /// assert!(!f.resume(0)); // not paused
    /// ```
    pub fn resume(&mut self, size: usize) -> bool {
        if self.paused && size <= self.low {
            self.paused = false;
            return true;
        }
        false
    }
}

/// NET-65's rules: both `None` → 64 KiB / 16 KiB; only `high` → low is `high / 4`; only `low`
/// → high is `4 × low`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `high < low`: "high (…) must be >= low (…) must be >= 0".
///
/// ```
/// use loop_transport::engine::resolve_limits;
/// assert_eq!(resolve_limits(None, None).unwrap(), (65536, 16384));
/// assert_eq!(resolve_limits(Some(400), None).unwrap(), (400, 100));
/// assert_eq!(resolve_limits(None, Some(usize::MAX)).unwrap(), (usize::MAX, usize::MAX));
/// assert!(resolve_limits(Some(1), Some(2)).is_err());
/// ```
pub fn resolve_limits(high: Option<usize>, low: Option<usize>) -> Result<(usize, usize)> {
    let (high, low) = match (high, low) {
        (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_HIGH_WATER / 4),
        (Some(h), None) => (h, h / 4),
        (None, Some(l)) => (l.saturating_mul(4), l),
        (Some(h), Some(l)) => (h, l),
    };
    if high < low {
        return Err(Error::invalid_argument(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high, low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_limits_leave_the_old_ones() {
        let mut f = Flow::with_limits(Some(8), Some(2)).unwrap();
        assert!(f.set_limits(Some(1), Some(2)).is_err());
        assert_eq!(f.limits(), (2, 8));
    }

    #[test]
    fn pause_and_resume_alternate() {
        let mut f = Flow::with_limits(Some(10), Some(5)).unwrap();
        let mut events = Vec::new();
        for size in [0, 11, 20, 6, 5, 4, 11, 0] {
            if f.pause(size) {
                events.push("pause");
            }
            if f.resume(size) {
                events.push("resume");
            }
        }
        assert_eq!(events, ["pause", "resume", "pause", "resume"]);
    }
}
