//! The timer clock: deadlines as signed nanoseconds from a process-wide epoch.
//!
//! Every deadline is stored as an `i64` count of nanoseconds since [`epoch`], the first instant
//! this crate looked at the clock in the process. That keeps heap entries small and compares
//! them with one integer comparison, lets deadlines lie before the epoch (negative delays, an
//! `Instant` from the past), and gives `time()` and `TimerHandle::when_secs()` one time base.
//! Delays are clamped to ±[`MAX_DELAY`]; a timer a hundred years out never fires either way.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use loop_core::{Error, Result};

/// The longest delay a timer can have; longer ones (and instants further away than this) are
/// clamped to it. About a hundred years: such a timer never fires in practice.
///
/// ```
/// assert_eq!(loop_timers::MAX_DELAY.as_secs(), 100 * 365 * 86_400);
/// ```
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// [`MAX_DELAY`] in nanoseconds.
pub(crate) const MAX_DELAY_NS: i64 = 100 * 365 * 86_400 * 1_000_000_000;

/// Bound of a key given as an instant (±146 years): key + delay never overflows an `i64`.
const KEY_LIMIT: i64 = i64::MAX / 2;

/// The process-wide origin of `time()` and of every deadline key.
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `CLOCK_MONOTONIC` in nanoseconds, read directly (the vDSO, no system call): the clock that
/// `Instant` reads on Linux, without `Instant`'s conversions.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn monotonic_ns() -> i64 {
    loop_core::internal::monotonic_ns() as i64
}

/// The `(tv_sec, tv_nsec)` an `Instant` holds, from its `Debug` form
/// (`Instant { tv_sec: .., tv_nsec: .. }` on Linux), in nanoseconds; `None` if it reads
/// otherwise.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn instant_ns(t: Instant) -> Option<i64> {
    let s = format!("{t:?}");
    let field = |name: &str| -> Option<i64> {
        let rest = &s[s.find(name)? + name.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    let (sec, nsec) = (field("tv_sec: ")?, field("tv_nsec: ")?);
    sec.checked_mul(1_000_000_000)?.checked_add(nsec)
}

/// [`epoch`] as a [`monotonic_ns`] reading, if the two clocks are known to be one: then a
/// deadline key is `monotonic_ns() - epoch_ns`, exactly what [`key_of`] gives for
/// `Instant::now()` at the same moment, at a fraction of its cost.
///
/// `Instant` does not give its raw value, so it is taken from its `Debug` form and checked: an
/// `Instant` read between two direct readings must fall between them, and the difference of
/// two instants must be the difference of their raw values. If anything does not hold (another
/// platform, another `Debug` form), `None`: the queue then reads the clock through `Instant`.
pub(crate) fn epoch_ns() -> Option<i64> {
    static RAW: OnceLock<Option<i64>> = OnceLock::new();
    *RAW.get_or_init(|| {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let e = epoch();
            let e_ns = instant_ns(e)?;
            let before = monotonic_ns();
            let t = Instant::now();
            let after = monotonic_ns();
            let t_ns = instant_ns(t)?;
            let since = i64::try_from(t.checked_duration_since(e)?.as_nanos()).ok()?;
            (before <= t_ns && t_ns <= after && t_ns - e_ns == since).then_some(e_ns)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        None
    })
}

/// The key of the current time on a loop whose clock is the real one: from a direct clock
/// reading if [`epoch_ns`] is known (`epoch_ns` passed in, to keep the hot path off the
/// `OnceLock`), else through `Instant`.
#[inline]
pub(crate) fn now_key(epoch_ns: Option<i64>, epoch: Instant) -> i64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(e) = epoch_ns {
        return monotonic_ns().wrapping_sub(e);
    }
    let _ = epoch_ns;
    key_of(Instant::now(), epoch)
}

/// The resolution of the monotonic clock as the OS reports it (`clock_getres`), at least 1 ns.
pub(crate) fn os_clock_resolution() -> Duration {
    static RES: OnceLock<Duration> = OnceLock::new();
    *RES.get_or_init(|| {
        let ts = rustix::time::clock_getres(rustix::time::ClockId::Monotonic);
        let ns = (ts.tv_sec.max(0) as u128) * 1_000_000_000 + ts.tv_nsec.max(0) as u128;
        Duration::from_nanos(ns.clamp(1, MAX_DELAY_NS as u128) as u64)
    })
}

/// Nanoseconds (rounded down) in `d`, clamped to [`MAX_DELAY_NS`].
#[inline]
pub(crate) fn duration_ns(d: Duration) -> i64 {
    d.as_nanos().min(MAX_DELAY_NS as u128) as i64
}

/// The key of an instant: signed nanoseconds since `epoch`.
#[inline]
pub(crate) fn key_of(t: Instant, epoch: Instant) -> i64 {
    match t.checked_duration_since(epoch) {
        Some(d) => d.as_nanos().min(KEY_LIMIT as u128) as i64,
        None => -(epoch.duration_since(t).as_nanos().min(KEY_LIMIT as u128) as i64),
    }
}

/// The instant of a key (the inverse of [`key_of`]).
pub(crate) fn instant_of(key: i64, epoch: Instant) -> Instant {
    let d = Duration::from_nanos(key.unsigned_abs());
    let t = if key >= 0 {
        epoch.checked_add(d)
    } else {
        epoch.checked_sub(d)
    };
    // Only a key beyond what the platform's `Instant` can hold gets here: saturate towards it.
    t.or_else(|| {
        if key >= 0 {
            epoch.checked_add(MAX_DELAY)
        } else {
            epoch.checked_sub(Duration::from_secs(1))
        }
    })
    .unwrap_or(epoch)
}

/// Seconds of a key, in the `time()` base.
#[inline]
pub(crate) fn secs_of(key: i64) -> f64 {
    key as f64 / 1e9
}

/// Converts float seconds (a delay, or a time in the `time()` base) to nanoseconds, clamped to
/// ±[`MAX_DELAY`]; `what` names the argument in the error.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for NaN or an infinity.
pub(crate) fn secs_to_ns(secs: f64, what: &str) -> Result<i64> {
    if !secs.is_finite() {
        return Err(Error::invalid_argument(format!(
            "{what} must be a finite number of seconds, got {secs}"
        )));
    }
    let ns = (secs * 1e9).round();
    let lim = MAX_DELAY_NS as f64;
    Ok(ns.clamp(-lim, lim) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_on_both_sides_of_the_epoch() {
        let e = epoch();
        for ns in [0i64, 1, 999, 1_500_000_000, -1, -2_000_000_001] {
            let t = instant_of(ns, e);
            assert_eq!(key_of(t, e), ns);
        }
    }

    #[test]
    fn float_seconds_are_checked_and_clamped() {
        assert_eq!(secs_to_ns(1.5, "delay").unwrap(), 1_500_000_000);
        assert_eq!(secs_to_ns(-2.0, "delay").unwrap(), -2_000_000_000);
        assert_eq!(secs_to_ns(1e300, "delay").unwrap(), MAX_DELAY_NS);
        assert_eq!(secs_to_ns(-1e300, "delay").unwrap(), -MAX_DELAY_NS);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = secs_to_ns(bad, "delay").unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            assert!(e.to_string().contains("delay must be a finite"), "{e}");
        }
    }

    #[test]
    fn direct_readings_agree_with_instant() {
        let e = epoch();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert!(epoch_ns().is_some(), "{e:?} not read");
        for _ in 0..100 {
            let a = key_of(Instant::now(), e);
            let k = now_key(epoch_ns(), e);
            let b = key_of(Instant::now(), e);
            assert!(a <= k && k <= b, "{a} {k} {b}");
        }
    }

    #[test]
    fn durations_are_clamped() {
        assert_eq!(duration_ns(Duration::from_millis(3)), 3_000_000);
        assert_eq!(duration_ns(Duration::MAX), MAX_DELAY_NS);
        assert_eq!(MAX_DELAY.as_nanos(), MAX_DELAY_NS as u128);
    }

    #[test]
    fn os_resolution_is_positive_and_fine() {
        let r = os_clock_resolution();
        assert!(
            r > Duration::ZERO && r <= Duration::from_millis(20),
            "{r:?}"
        );
    }
}
