//! The tour: every asyncio documentation example that evloop reproduces, run one after the
//! other, each headed, timed and checked against what the asyncio docs say it does.
//!
//! `cargo run --release --example tour` exits with status 0 only if every section did what
//! its documentation says.
//!
//! Each section runs the example's own `main` in a child process (this same binary, started
//! again with `EVLOOP_TOUR_SECTION` naming the example), so an example gets a fresh process
//! with its own loop, signal dispositions and stdout, exactly as when it runs alone, and the
//! tour can read its output, send it signals and start server and client side by side.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Output, Stdio, Termination};
use std::time::{Duration, Instant};

#[path = "display_date.rs"]
mod display_date;
#[path = "hello_world.rs"]
mod hello_world;
#[path = "signals.rs"]
mod signals;
#[path = "watch_fd.rs"]
mod watch_fd;

/// The environment variable that makes this binary run one example instead of the tour.
const SECTION_VAR: &str = "EVLOOP_TOUR_SECTION";

/// How long any one example process may take before the tour gives up on it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the example named `name` in this process (child mode).
fn run_example(name: &str) -> ExitCode {
    match name {
        "hello_world" => hello_world::main().report(),
        "display_date" => display_date::main(),
        "watch_fd" => watch_fd::main(),
        "signals" => signals::main(),
        _ => {
            eprintln!("tour: no example named {name:?}");
            ExitCode::from(2)
        }
    }
}

/// One section of the tour.
struct Section {
    /// The heading: what the asyncio docs call the example.
    title: &'static str,
    /// Runs the example(s) and checks the result; returns the output lines worth showing.
    run: fn() -> Result<Vec<String>, String>,
}

/// The sections, in the order of the asyncio docs.
fn sections() -> Vec<Section> {
    vec![
        Section {
            title: "Hello World with call_soon()",
            run: tour_hello_world,
        },
        Section {
            title: "Display the current date with call_later() (3 ticks)",
            run: tour_display_date,
        },
        Section {
            title: "Watch a file descriptor for read events (add_reader)",
            run: tour_watch_fd,
        },
        Section {
            title: "Set signal handlers for SIGINT and SIGTERM",
            run: tour_signals,
        },
    ]
}

/// Starts this binary as the example `name` with `args`, stdout and stderr piped.
fn spawn(name: &str, args: &[&str]) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the tour binary: {e}"))?;
    Command::new(exe)
        .args(args)
        .env(SECTION_VAR, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start example {name}: {e}"))
}

/// Waits for `child` to exit (killing it after [`CHILD_TIMEOUT`]) and collects its output.
fn finish(mut child: Child, name: &str) -> Result<Output, String> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > CHILD_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} did not exit within {CHILD_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    }
    child
        .wait_with_output()
        .map_err(|e| format!("collecting the output of {name}: {e}"))
}

/// Runs the example `name` to completion and checks that it exited successfully.
fn run_to_end(name: &str, args: &[&str]) -> Result<Vec<String>, String> {
    let out = finish(spawn(name, args)?, name)?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !out.status.success() {
        return Err(format!(
            "{name} exited with {}; stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(lines)
}

/// A running example whose stdout is read line by line on a helper thread, so a silent
/// child cannot hang the tour.
struct Running {
    /// The example's name, for messages.
    name: &'static str,
    /// The child process.
    child: Child,
    /// Its stdout lines, as they arrive.
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line received so far.
    seen: Vec<String>,
}

impl Running {
    /// Starts the example `name` with `args`.
    fn start(name: &'static str, args: &[&str]) -> Result<Running, String> {
        let mut child = spawn(name, args)?;
        let stdout = child.stdout.take().ok_or("stdout not piped")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running {
            name,
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// Waits for a line that satisfies `pred` and returns it.
    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "{} never printed the expected line; it printed {:?}",
                        self.name, self.seen
                    ))
                }
            }
        }
    }

    /// The child's pid.
    fn pid(&self) -> Result<rustix::process::Pid, String> {
        rustix::process::Pid::from_raw(self.child.id() as i32).ok_or_else(|| "no pid".into())
    }

    /// Waits for the exit, requires success, and returns every stdout line.
    fn finish(self) -> Result<Vec<String>, String> {
        let Running {
            name,
            child,
            lines,
            mut seen,
        } = self;
        let out = finish(child, name)?;
        seen.extend(lines.iter());
        if !out.status.success() {
            return Err(format!(
                "{name} exited with {}; stderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(seen)
    }
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn tour_hello_world() -> Result<Vec<String>, String> {
    let lines = run_to_end("hello_world", &[])?;
    expect(lines == ["Hello World"], || {
        format!("expected one line \"Hello World\", got {lines:?}")
    })?;
    Ok(lines)
}

fn tour_display_date() -> Result<Vec<String>, String> {
    let lines = run_to_end("display_date", &["3"])?;
    expect(lines.len() == 3, || {
        format!("expected 3 dates, got {lines:?}")
    })?;
    for l in &lines {
        let ok = l.len() == "2026-11-25 12:00:00.000000 UTC".len()
            && l.ends_with(" UTC")
            && l.as_bytes()[4] == b'-'
            && l.as_bytes()[10] == b' ';
        expect(ok, || format!("not a date: {l:?}"))?;
    }
    Ok(lines)
}

fn tour_watch_fd() -> Result<Vec<String>, String> {
    let lines = run_to_end("watch_fd", &[])?;
    expect(lines == ["Received: abc"], || {
        format!("expected \"Received: abc\", got {lines:?}")
    })?;
    Ok(lines)
}

fn tour_signals() -> Result<Vec<String>, String> {
    let mut child = Running::start("signals", &[])?;
    child.wait_for(|l| l.starts_with("pid "))?;
    rustix::process::kill_process(child.pid()?, rustix::process::Signal::TERM)
        .map_err(|e| format!("cannot send SIGTERM: {e}"))?;
    let lines = child.finish()?;
    expect(
        lines.last().map(String::as_str) == Some("got signal SIGTERM: exit"),
        || format!("expected \"got signal SIGTERM: exit\" last, got {lines:?}"),
    )?;
    Ok(lines)
}

fn main() -> ExitCode {
    if let Ok(name) = std::env::var(SECTION_VAR) {
        return run_example(&name);
    }
    let start = Instant::now();
    let sections = sections();
    let mut failed = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        println!("== {}. {}", i + 1, s.title);
        let t = Instant::now();
        let result = (s.run)();
        let took = t.elapsed().as_secs_f64();
        match result {
            Ok(lines) => {
                for l in lines {
                    println!("   | {l}");
                }
                println!("   ok ({took:.2} s)\n");
            }
            Err(e) => {
                for l in e.lines() {
                    println!("   ! {l}");
                }
                println!("   FAILED ({took:.2} s)\n");
                failed.push(s.title);
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!("tour: all {} sections ok in {total:.1} s", sections.len());
        ExitCode::SUCCESS
    } else {
        println!(
            "tour: {} of {} sections failed in {total:.1} s: {}",
            failed.len(),
            sections.len(),
            failed.join("; ")
        );
        ExitCode::FAILURE
    }
}
