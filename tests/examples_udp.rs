//! Builds and runs the `udp_echo_server` / `udp_echo_client` examples as child processes on a
//! free port and checks the lines the asyncio docs show.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The facade features the examples of this file need.
const EXAMPLE_FEATURES: &str = "net";

/// Generous bound for a loaded machine.
const LONG: Duration = Duration::from_secs(60);

/// Streams the child's stdout lines into a channel.
fn lines_of(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, reader)
}

/// Kills the server however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn udp_echo_client_and_server_print_the_docs_lines() {
    let _w = loop_testkit::watchdog();
    let server_exe = loop_testkit::build_example("udp_echo_server", EXAMPLE_FEATURES);
    let client_exe = loop_testkit::build_example("udp_echo_client", EXAMPLE_FEATURES);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = KillOnDrop(
        Command::new(&server_exe)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", server_exe.display())),
    );
    let (server_lines, server_reader) = lines_of(&mut server.0);
    let first = server_lines
        .recv_timeout(LONG)
        .expect("the server did not start");
    assert_eq!(first, "Starting UDP server");

    let mut client = Command::new(&client_exe)
        .env("EVLOOP_UDP_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", client_exe.display()));
    let (client_lines, client_reader) = lines_of(&mut client);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = client.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LONG {
            let _ = client.kill();
            let _ = client.wait();
            panic!(
                "the client did not finish: {:?}",
                client_lines.try_iter().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    client_reader.join().unwrap();
    let client_out: Vec<String> = client_lines.try_iter().collect();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut client.stderr.take().unwrap(), &mut err);
    assert!(status.success(), "client failed: {err}\n{client_out:?}");
    assert!(err.is_empty(), "client stderr: {err}");
    assert_eq!(
        client_out,
        [
            "Send: Hello World!",
            "Received: Hello World!",
            "Close the socket",
            "Connection closed"
        ]
    );

    // The server printed its two lines before answering.
    let mut server_out = Vec::new();
    for _ in 0..2 {
        server_out.push(server_lines.recv_timeout(LONG).expect("server lines"));
    }
    assert!(
        server_out[0].starts_with("Received 'Hello World!' from 127.0.0.1:"),
        "{server_out:?}"
    );
    assert!(
        server_out[1].starts_with("Send 'Hello World!' to 127.0.0.1:"),
        "{server_out:?}"
    );
    // Both name the client's address, with its port.
    let from = server_out[0].rsplit(' ').next().unwrap().to_string();
    assert!(server_out[1].ends_with(&from), "{server_out:?}");
    assert!(from.rsplit(':').next().unwrap().parse::<u16>().is_ok());
    // Still serving; stopped by the test.
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server exited early"
    );
    drop(server);
    server_reader.join().unwrap();
}
