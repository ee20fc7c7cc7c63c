//! Builds and runs the `subprocess_protocol` and `subprocess_streams` examples as child
//! processes and checks what they print.

use std::process::{Command, Output};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "subprocess";

fn run(name: &str, args: &[&str]) -> Output {
    let exe = loop_testkit::build_example(name, EXAMPLE_FEATURES);
    Command::new(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()))
}

fn lines_of(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Checks a `Current date: YYYY-MM-DD HH:MM:SS` line.
fn check_date_line(line: &str) {
    let date = line
        .strip_prefix("Current date: ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let b = date.as_bytes();
    assert_eq!(b.len(), 19, "{line:?}");
    for (i, c) in b.iter().enumerate() {
        let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16);
        assert_eq!(c.is_ascii_digit(), want_digit, "{line:?} at {i}");
    }
    assert_eq!(&date[4..5], "-");
    assert_eq!(&date[10..11], " ");
    assert_eq!(&date[13..14], ":");
    let year: u32 = date[..4].parse().unwrap();
    assert!(year >= 2024, "{line:?}");
}

#[test]
fn subprocess_protocol_prints_the_childs_date() {
    let _w = loop_testkit::watchdog();
    let out = run("subprocess_protocol", &[]);
    assert!(out.status.success(), "{out:?}");
    let lines = lines_of(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    check_date_line(&lines[0]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn subprocess_streams_reads_a_line_and_reports_a_failing_command() {
    let _w = loop_testkit::watchdog();
    let out = run("subprocess_streams", &[]);
    assert!(out.status.success(), "{out:?}");
    let lines = lines_of(&out.stdout);
    check_date_line(&lines[0]);
    // `ls /zzz` fails: a non-zero code, nothing on stdout, a message on stderr.
    let code: i32 = lines[1]
        .strip_prefix("[\"ls /zzz\" exited with ")
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    assert_ne!(code, 0);
    assert!(!lines.iter().any(|l| l == "[stdout]"), "{lines:?}");
    assert_eq!(lines[2], "[stderr]", "{lines:?}");
    assert!(lines[3].contains("/zzz"), "{lines:?}");

    // A command with output on both streams.
    let out = run("subprocess_streams", &["echo out; echo err >&2; exit 4"]);
    assert!(out.status.success(), "{out:?}");
    let lines = lines_of(&out.stdout);
    check_date_line(&lines[0]);
    assert_eq!(
        &lines[1..],
        [
            "[\"echo out; echo err >&2; exit 4\" exited with 4]",
            "[stdout]",
            "out",
            "",
            "[stderr]",
            "err",
            ""
        ]
    );
}
