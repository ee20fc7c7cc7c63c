//! Builds and runs the TLS echo examples as child processes: the server on a free port with a
//! throwaway CA, the client trusting that CA, and checks what they print.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "net,tls";

#[test]
fn tls_echo_server_and_client_examples() {
    let _w = loop_testkit::watchdog().limit(300);
    let server_exe = loop_testkit::build_example("tls_echo_server", EXAMPLE_FEATURES);
    let client_exe = loop_testkit::build_example("tls_echo_client", EXAMPLE_FEATURES);
    let ca = loop_testkit::temp_path("ca.pem");
    let mut server = Command::new(server_exe)
        .arg("0")
        .env("EVLOOP_TLS_CA", ca.as_path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut read = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    };
    assert_eq!(
        read(),
        format!("CA certificate written to {}", ca.display())
    );
    let serving = read();
    let port: u16 = serving
        .strip_prefix("Serving TLS on 127.0.0.1:")
        .unwrap_or_else(|| panic!("{serving:?}"))
        .parse()
        .unwrap();
    let client = Command::new(client_exe)
        .arg(port.to_string())
        .env("EVLOOP_TLS_CA", ca.as_path())
        .output()
        .unwrap();
    assert!(client.status.success(), "{client:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&client.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "Connected with Tls13, certificate verified for localhost",
            "Send: \"Hello over TLS!\"",
            "Received: \"Hello over TLS!\"",
        ]
    );
    let received = read();
    assert!(
        received.starts_with("Received \"Hello over TLS!\" over Tls13 (TLS13_"),
        "{received:?}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let _ = std::fs::remove_file(&ca);
}

#[test]
fn https_request_example_gets_the_response_over_a_verified_connection() {
    let _w = loop_testkit::watchdog().limit(120);
    let exe = loop_testkit::build_example("https_request", EXAMPLE_FEATURES);
    let out = Command::new(exe).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "client: connected with Tls13, certificate verified for localhost",
            "server: GET / HTTP/1.1",
            "client: HTTP/1.1 200 OK",
            "client: body \"Hello from evloop over TLS\\n\"",
        ]
    );
}
