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
#[cfg(feature = "tls")]
#[path = "https_request.rs"]
mod https_request;
#[path = "open_socket_protocol.rs"]
mod open_socket_protocol;
#[path = "open_socket_streams.rs"]
mod open_socket_streams;
#[path = "pipes.rs"]
mod pipes;
#[path = "signals.rs"]
mod signals;
#[path = "subprocess_protocol.rs"]
mod subprocess_protocol;
#[path = "subprocess_streams.rs"]
mod subprocess_streams;
#[path = "tcp_echo_client_protocol.rs"]
mod tcp_echo_client_protocol;
#[path = "tcp_echo_client_streams.rs"]
mod tcp_echo_client_streams;
#[path = "tcp_echo_server_protocol.rs"]
mod tcp_echo_server_protocol;
#[path = "tcp_echo_server_streams.rs"]
mod tcp_echo_server_streams;
#[cfg(feature = "tls")]
#[path = "tls_echo_client.rs"]
mod tls_echo_client;
#[cfg(feature = "tls")]
#[path = "tls_echo_server.rs"]
mod tls_echo_server;
#[path = "udp_echo_client.rs"]
mod udp_echo_client;
#[path = "udp_echo_server.rs"]
mod udp_echo_server;
#[path = "watch_fd.rs"]
mod watch_fd;

/// The environment variable that makes this binary run one example instead of the tour.
const SECTION_VAR: &str = "EVLOOP_TOUR_SECTION";

/// How long any one example process may take before the tour gives up on it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the example named `name` in this process (child mode).
fn run_example(name: &str) -> ExitCode {
    match name {
        "display_date" => display_date::main().report(),
        "hello_world" => hello_world::main().report(),
        "open_socket_protocol" => open_socket_protocol::main().report(),
        "open_socket_streams" => open_socket_streams::main().report(),
        "pipes" => pipes::main().report(),
        "signals" => signals::main().report(),
        "subprocess_protocol" => subprocess_protocol::main().report(),
        "subprocess_streams" => subprocess_streams::main().report(),
        "tcp_echo_client_protocol" => tcp_echo_client_protocol::main().report(),
        "tcp_echo_client_streams" => tcp_echo_client_streams::main().report(),
        "tcp_echo_server_protocol" => tcp_echo_server_protocol::main().report(),
        "tcp_echo_server_streams" => tcp_echo_server_streams::main().report(),
        #[cfg(feature = "tls")]
        "https_request" => https_request::main().report(),
        #[cfg(feature = "tls")]
        "tls_echo_client" => tls_echo_client::main().report(),
        #[cfg(feature = "tls")]
        "tls_echo_server" => tls_echo_server::main().report(),
        "udp_echo_client" => udp_echo_client::main().report(),
        "udp_echo_server" => udp_echo_server::main().report(),
        "watch_fd" => watch_fd::main().report(),
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
            title: "TCP echo client and server using protocols",
            run: tour_tcp_echo_protocol,
        },
        Section {
            title: "TCP echo client and server using streams",
            run: tour_tcp_echo_streams,
        },
        #[cfg(feature = "tls")]
        Section {
            title: "TLS echo client and server using streams (ssl=, server_hostname=)",
            run: tour_tls_echo,
        },
        #[cfg(feature = "tls")]
        Section {
            title: "An HTTPS-style request against a local TLS server (ssl=, server_hostname=)",
            run: tour_https_request,
        },
        Section {
            title: "UDP echo client and server using protocols",
            run: tour_udp_echo,
        },
        Section {
            title: "Register an open socket to wait for data using a protocol",
            run: tour_open_socket_protocol,
        },
        Section {
            title: "Register an open socket to wait for data using streams",
            run: tour_open_socket_streams,
        },
        Section {
            title: "Read and write a pipe (connect_read_pipe / connect_write_pipe)",
            run: tour_pipes,
        },
        Section {
            title: "Set signal handlers for SIGINT and SIGTERM",
            run: tour_signals,
        },
        Section {
            title: "Subprocess: get the output of a command with a protocol",
            run: tour_subprocess_protocol,
        },
        Section {
            title: "Subprocess: create_subprocess_exec with streams",
            run: tour_subprocess_streams,
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

    /// Kills the child (a server that runs forever) and returns every stdout line.
    fn kill(self) -> Result<Vec<String>, String> {
        let Running {
            name,
            mut child,
            lines,
            mut seen,
        } = self;
        child
            .kill()
            .map_err(|e| format!("cannot stop {name}: {e}"))?;
        child
            .wait()
            .map_err(|e| format!("waiting for {name}: {e}"))?;
        seen.extend(lines.iter());
        Ok(seen)
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

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port(udp: bool) -> Result<u16, String> {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    port.map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Waits until some socket listens on TCP `port`, reading `/proc/net/tcp{,6}` so that no probe
/// connection shows up in the server's output.
fn wait_listening(port: u16) -> Result<(), String> {
    let needle = format!(":{port:04X} ");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while Instant::now() < deadline {
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            // Columns: sl local_address rem_address st ...; state 0A is LISTEN.
            let listening = text.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && format!("{} ", cols[1]).ends_with(&needle) && cols[3] == "0A"
            });
            if listening {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "nothing listened on port {port} within {CHILD_TIMEOUT:?}"
    ))
}

/// Runs a TCP server example and its client against it; returns (server, client) lines.
fn tcp_pair(server: &'static str, client: &'static str) -> Result<Vec<String>, String> {
    let port = free_port(false)?.to_string();
    let srv = Running::start(server, &[&port])?;
    wait_listening(port.parse().unwrap_or(0))?;
    let client_lines = run_to_end(client, &[&port]);
    let server_lines = srv.kill()?;
    let client_lines = client_lines?;
    let mut out: Vec<String> = server_lines
        .iter()
        .map(|l| format!("server: {l}"))
        .collect();
    out.extend(client_lines.iter().map(|l| format!("client: {l}")));
    expect(
        client_lines.iter().any(|l| l.contains("Hello World!"))
            && client_lines
                .iter()
                .filter(|l| l.contains("Hello World!"))
                .count()
                >= 2,
        || format!("the client did not get its echo: {client_lines:?}"),
    )?;
    expect(
        server_lines.iter().any(|l| l.contains("Hello World!")),
        || format!("the server did not see the message: {server_lines:?}"),
    )?;
    Ok(out)
}

fn tour_tcp_echo_protocol() -> Result<Vec<String>, String> {
    let out = tcp_pair("tcp_echo_server_protocol", "tcp_echo_client_protocol")?;
    for want in [
        "server: Data received: \"Hello World!\"",
        "server: Close the client socket",
        "client: Data sent: \"Hello World!\"",
        "client: Data received: \"Hello World!\"",
        "client: The server closed the connection",
    ] {
        expect(out.iter().any(|l| l == want), || {
            format!("missing {want:?} in {out:?}")
        })?;
    }
    Ok(out)
}

fn tour_tcp_echo_streams() -> Result<Vec<String>, String> {
    let out = tcp_pair("tcp_echo_server_streams", "tcp_echo_client_streams")?;
    for want in [
        "server: Send: \"Hello World!\"",
        "server: Close the connection",
        "client: Send: \"Hello World!\"",
        "client: Received: \"Hello World!\"",
        "client: Close the connection",
    ] {
        expect(out.iter().any(|l| l == want), || {
            format!("missing {want:?} in {out:?}")
        })?;
    }
    Ok(out)
}

/// One HTTPS-style request: `GET /` over TLS to a server in the same process, certificate
/// verified for `localhost`, the response read to the server's close_notify.
#[cfg(feature = "tls")]
fn tour_https_request() -> Result<Vec<String>, String> {
    let lines = run_to_end("https_request", &[])?;
    expect(lines.iter().any(|l| l == "server: GET / HTTP/1.1"), || {
        format!("the server did not see the request: {lines:?}")
    })?;
    expect(lines.iter().any(|l| l == "client: HTTP/1.1 200 OK"), || {
        format!("the client did not get the status line: {lines:?}")
    })?;
    expect(
        lines
            .iter()
            .any(|l| l == "client: body \"Hello from evloop over TLS\\n\""),
        || format!("the client did not get the body: {lines:?}"),
    )?;
    Ok(lines)
}

/// The TLS echo pair: the server makes a throwaway CA (written where the client looks for
/// it), the client verifies the server's certificate for `localhost` against it.
#[cfg(feature = "tls")]
fn tour_tls_echo() -> Result<Vec<String>, String> {
    let port = free_port(false)?.to_string();
    let mut srv = Running::start("tls_echo_server", &[&port])?;
    srv.wait_for(|l| l.starts_with("Serving TLS on"))?;
    let client_lines = run_to_end("tls_echo_client", &[&port]);
    let server_lines = srv.kill()?;
    let client_lines = client_lines?;
    expect(
        client_lines
            .iter()
            .any(|l| l == "Received: \"Hello over TLS!\""),
        || format!("the client did not get its echo: {client_lines:?}"),
    )?;
    expect(
        server_lines
            .iter()
            .any(|l| l.starts_with("Received \"Hello over TLS!\" over Tls13")),
        || format!("the server did not see the message: {server_lines:?}"),
    )?;
    let mut out: Vec<String> = server_lines
        .iter()
        .map(|l| format!("server: {l}"))
        .collect();
    out.extend(client_lines.iter().map(|l| format!("client: {l}")));
    Ok(out)
}

fn tour_udp_echo() -> Result<Vec<String>, String> {
    let port = free_port(true)?.to_string();
    let mut srv = Running::start("udp_echo_server", &[&port])?;
    srv.wait_for(|l| l.starts_with("Starting UDP server"))?;
    let client_lines = run_to_end("udp_echo_client", &[&port]);
    let server_lines = srv.kill()?;
    let client_lines = client_lines?;
    let mut out: Vec<String> = server_lines
        .iter()
        .map(|l| format!("server: {l}"))
        .collect();
    out.extend(client_lines.iter().map(|l| format!("client: {l}")));
    for want in [
        "client: Send: Hello World!",
        "client: Received: Hello World!",
        "client: Close the socket",
    ] {
        expect(out.iter().any(|l| l == want), || {
            format!("missing {want:?} in {out:?}")
        })?;
    }
    expect(
        server_lines
            .iter()
            .any(|l| l.starts_with("Send 'Hello World!' to ")),
        || format!("the server did not echo: {server_lines:?}"),
    )?;
    Ok(out)
}

fn tour_open_socket_protocol() -> Result<Vec<String>, String> {
    let lines = run_to_end("open_socket_protocol", &[])?;
    expect(lines == ["Received: abc"], || {
        format!("expected \"Received: abc\", got {lines:?}")
    })?;
    Ok(lines)
}

fn tour_open_socket_streams() -> Result<Vec<String>, String> {
    let lines = run_to_end("open_socket_streams", &[])?;
    expect(lines == ["Received: abc"], || {
        format!("expected \"Received: abc\", got {lines:?}")
    })?;
    Ok(lines)
}

fn tour_pipes() -> Result<Vec<String>, String> {
    let lines = run_to_end("pipes", &[])?;
    for want in [
        "reader: received \"hello\"",
        "reader: received \"of the pipe\"",
        "reader: end of file",
        "reader: pipe closed",
    ] {
        expect(lines.iter().any(|l| l == want), || {
            format!("missing {want:?} in {lines:?}")
        })?;
    }
    Ok(lines)
}

/// True if `l` is `Current date: YYYY-MM-DD HH:MM:SS`.
fn is_date_line(l: &str) -> bool {
    let Some(date) = l.strip_prefix("Current date: ") else {
        return false;
    };
    let b = date.as_bytes();
    date.len() == "2026-11-25 12:00:00".len() && b[4] == b'-' && b[10] == b' ' && b[13] == b':'
}

fn tour_subprocess_protocol() -> Result<Vec<String>, String> {
    let lines = run_to_end("subprocess_protocol", &[])?;
    expect(lines.len() == 1 && is_date_line(&lines[0]), || {
        format!("expected one \"Current date: ...\" line, got {lines:?}")
    })?;
    Ok(lines)
}

fn tour_subprocess_streams() -> Result<Vec<String>, String> {
    let lines = run_to_end("subprocess_streams", &[])?;
    expect(lines.first().is_some_and(|l| is_date_line(l)), || {
        format!("expected \"Current date: ...\" first, got {lines:?}")
    })?;
    expect(lines.iter().any(|l| l.contains("exited with 2")), || {
        format!("expected the failing command's exit code 2, got {lines:?}")
    })?;
    Ok(lines)
}

/// Runs the example (see the file's top comment).
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
