//! Builds and runs the `hello_world` and `display_date` examples as child processes and checks
//! what they print and how they exit.

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "timers";

fn run(name: &str, args: &[&str]) -> Output {
    let exe = loop_testkit::build_example(name, EXAMPLE_FEATURES);
    Command::new(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()))
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hello_world_prints_and_exits_cleanly() {
    let _w = loop_testkit::watchdog();
    let out = run("hello_world", &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_lines(&out), ["Hello World"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks a `YYYY-MM-DD HH:MM:SS.ffffff UTC` line; returns its year.
fn parse_date_line(line: &str) -> u64 {
    let b = line.as_bytes();
    assert_eq!(b.len(), 30, "{line:?}");
    for (i, c) in b.iter().enumerate() {
        let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 26..=29);
        assert_eq!(c.is_ascii_digit(), want_digit, "{line:?} at {i}");
    }
    assert_eq!(&line[4..5], "-");
    assert_eq!(&line[7..8], "-");
    assert_eq!(&line[10..11], " ");
    assert_eq!(&line[13..14], ":");
    assert_eq!(&line[16..17], ":");
    assert_eq!(&line[19..20], ".");
    assert_eq!(&line[26..], " UTC");
    let month: u32 = line[5..7].parse().unwrap();
    let day: u32 = line[8..10].parse().unwrap();
    let (h, m, s): (u32, u32, u32) = (
        line[11..13].parse().unwrap(),
        line[14..16].parse().unwrap(),
        line[17..19].parse().unwrap(),
    );
    assert!(
        (1..=12).contains(&month) && (1..=31).contains(&day),
        "{line:?}"
    );
    assert!(h < 24 && m < 60 && s < 60, "{line:?}");
    line[..4].parse().unwrap()
}

#[test]
fn display_date_prints_one_date_a_second_then_stops() {
    let _w = loop_testkit::watchdog();
    let exe = loop_testkit::build_example("display_date", EXAMPLE_FEATURES);
    let start = Instant::now();
    let out = Command::new(&exe)
        .arg("2")
        .output()
        .expect("run display_date");
    let took = start.elapsed();
    assert!(out.status.success(), "{out:?}");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let years: Vec<u64> = lines.iter().map(|l| parse_date_line(l)).collect();
    let now_year = 1970
        + SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952;
    for y in years {
        assert!(
            y + 1 >= now_year && y <= now_year + 1,
            "year {y}, expected about {now_year}"
        );
    }
    assert_ne!(lines[0], lines[1]);
    // Two ticks are one second apart (generous bounds: the machine may be loaded).
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn display_date_rejects_a_bad_tick_count() {
    let _w = loop_testkit::watchdog();
    for bad in ["0", "-3", "many"] {
        let out = run("display_date", &[bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage: display_date"), "{err}");
    }
}
