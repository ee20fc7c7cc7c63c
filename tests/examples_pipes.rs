//! Builds and runs the `pipes` example as a child process and checks what it prints.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "pipes";

#[test]
fn pipes_example_prints_every_line_then_eof_then_close() {
    let _w = loop_testkit::watchdog();
    let exe = loop_testkit::build_example("pipes", EXAMPLE_FEATURES);
    let mut child = Command::new(&exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
    // It ends by itself (EOF on the pipe); the deadline only guards against a hang.
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the example did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "reader: connected",
            "writer: sending \"hello\"",
            "writer: sending \"from the other end\"",
            "writer: sending \"of the pipe\"",
            "reader: received \"hello\"",
            "reader: received \"from the other end\"",
            "reader: received \"of the pipe\"",
            "reader: end of file",
            "reader: pipe closed",
        ]
    );
}
