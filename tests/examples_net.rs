//! Builds and runs the TCP and open-socket examples as child processes: each server with a
//! client against it on a free port, and checks what they print.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "net";

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Reads what a server child (ours) prints until the line `last` (its watchdog bounds the
/// wait: the server prints it after the client may already have exited), then kills it and
/// returns every line it printed.
fn stop(
    mut server: Child,
    mut out: BufReader<ChildStdout>,
    mut lines: Vec<String>,
    last: &str,
) -> Vec<String> {
    while !lines.iter().any(|l| l == last) {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    server.kill().expect("kill the server example");
    server.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    lines.extend(rest.lines().map(str::to_string));
    lines
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_echo_protocol_server_and_client() {
    let _w = loop_testkit::watchdog();
    let server_exe = loop_testkit::build_example("tcp_echo_server_protocol", EXAMPLE_FEATURES);
    let client_exe = loop_testkit::build_example("tcp_echo_client_protocol", EXAMPLE_FEATURES);
    let port = free_port();
    let mut server = Command::new(server_exe)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(server.stdout.take().unwrap());
    // Wait until it listens.
    let mut tries = 0;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tries += 1;
        assert!(tries < 3000, "the server example never listened");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let client = Command::new(client_exe)
        .env("EVLOOP_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(client.status.success(), "{client:?}");
    assert_eq!(
        lines(&client),
        [
            "Data sent: \"Hello World!\"",
            "Data received: \"Hello World!\"",
            "The server closed the connection"
        ]
    );
    let server_lines = stop(server, out, Vec::new(), "Close the client socket");
    // The probe connection above shows up first; the client's is the one that sent data.
    let data_at = server_lines
        .iter()
        .position(|l| l == "Data received: \"Hello World!\"")
        .unwrap_or_else(|| panic!("{server_lines:?}"));
    assert!(
        server_lines[data_at - 1].starts_with("Connection from 127.0.0.1:"),
        "{server_lines:?}"
    );
    assert_eq!(
        server_lines[data_at + 1..data_at + 3],
        ["Send: \"Hello World!\"", "Close the client socket"]
    );
}

#[test]
fn tcp_echo_streams_server_and_client() {
    let _w = loop_testkit::watchdog();
    let server_exe = loop_testkit::build_example("tcp_echo_server_streams", EXAMPLE_FEATURES);
    let client_exe = loop_testkit::build_example("tcp_echo_client_streams", EXAMPLE_FEATURES);
    let mut server = Command::new(server_exe)
        .arg("0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let first = first.trim().to_string();
    let port: u16 = first
        .strip_prefix("Serving on 127.0.0.1:")
        .unwrap_or_else(|| panic!("{first:?}"))
        .parse()
        .unwrap();
    let client = Command::new(client_exe)
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(client.status.success(), "{client:?}");
    assert_eq!(
        lines(&client),
        [
            "Send: \"Hello World!\"",
            "Received: \"Hello World!\"",
            "Close the connection"
        ]
    );
    let server_lines = stop(server, out, vec![first], "Close the connection");
    assert_eq!(server_lines.len(), 4, "{server_lines:?}");
    assert!(
        server_lines[1].starts_with("Received \"Hello World!\" from 127.0.0.1:"),
        "{server_lines:?}"
    );
    assert_eq!(
        server_lines[2..],
        ["Send: \"Hello World!\"", "Close the connection"]
    );
}

#[test]
fn open_socket_examples_print_received_abc() {
    let _w = loop_testkit::watchdog();
    for name in ["open_socket_protocol", "open_socket_streams"] {
        let out = Command::new(loop_testkit::build_example(name, EXAMPLE_FEATURES))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        assert_eq!(lines(&out), ["Received: abc"], "{name}");
        assert!(
            out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
