//! "Display the current date with call_later()" from the asyncio docs: a callback that prints
//! the current date and time (UTC) every second, rescheduling itself with `call_later`, and
//! stops the loop after five seconds.
//!
//! `cargo run --example display_date [-- TICKS]` prints TICKS lines (default 5), one a second.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evloop::prelude::*;

/// Prints the date, then reschedules itself for a second later, until `end_time` (in the
/// loop's `time()` base) is less than a second away.
fn display_date(end_time: f64, lp: &EventLoop) {
    println!("{}", format_utc(SystemTime::now()));
    if lp.time() + 1.0 < end_time {
        let next = lp.call_later(Duration::from_secs(1), move |lp| display_date(end_time, lp));
        if let Err(e) = next {
            eprintln!("display_date: {e}");
            lp.stop();
        }
    } else {
        lp.stop();
    }
}

/// `t` as `YYYY-MM-DD HH:MM:SS.ffffff UTC` (times before 1970 print as the epoch).
fn format_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_micros()
    )
}

/// The Gregorian (year, month, day) of the day `days` after 1970-01-01.
fn civil_date(mut days: u64) -> (u64, u64, u64) {
    let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if leap(year) { 29 } else { 28 };
    let months = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 1;
    for len in months {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    (year, month, days + 1)
}

/// Runs the example (see the file's top comment).
pub fn main() -> ExitCode {
    let ticks = match std::env::args().nth(1) {
        None => 5,
        Some(arg) => match arg.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: display_date [TICKS]  (TICKS: a positive number of lines, default 5; got {arg:?})");
                return ExitCode::from(2);
            }
        },
    };
    match run(ticks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("display_date: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(ticks: u32) -> Result<(), Error> {
    let lp = EventLoop::new()?;
    // Schedule the first call to display_date().
    let end_time = lp.time() + f64::from(ticks);
    lp.call_soon(move |lp| display_date(end_time, lp))?;
    // Blocking call interrupted by lp.stop().
    let run = lp.run_forever();
    lp.close()?;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> String {
        format_utc(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros.into()))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(at(951_782_400, 7), "2000-02-29 00:00:00.000007 UTC");
        assert_eq!(at(1_700_000_000, 123_456), "2023-11-14 22:13:20.123456 UTC");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28 23:59:59.999999 UTC");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01 00:00:00.000000 UTC");
    }
}
