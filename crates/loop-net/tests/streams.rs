//! `open_connection` / `start_server` and their Unix variants over real sockets
//! (STREAM-01..STREAM-03).

mod common;

use common::{capture_exceptions, run, serial};
use loop_core::{Error, EventLoop};
use loop_net::{ConnectOptions, NetExt, ServerOptions};
use loop_transport::{StreamReader, StreamWriter};

async fn echo_line(mut r: StreamReader, w: StreamWriter) -> loop_core::Result<()> {
    let line = r.readline().await?;
    w.write(&line)?;
    w.drain().await?;
    w.close();
    Ok(())
}

#[test]
fn stream_01_02_open_connection_and_start_server() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    let got = run(&lp, 30, async move {
        let server = lp2
            .start_server(echo_line, "127.0.0.1", 0, ServerOptions::new())
            .await?;
        let port = server.local_addrs()[0].as_inet().unwrap().port();
        let mut out = Vec::new();
        for msg in [&b"first\n"[..], b"second\n"] {
            let (mut r, w) = lp2
                .open_connection("127.0.0.1", port, ConnectOptions::new())
                .await?;
            w.write(msg)?;
            out.push(r.readline().await?);
            // The server closed after one line: EOF.
            assert!(r.read(10).await?.is_empty());
            w.close();
            w.wait_closed().await?;
        }
        server.close();
        server.wait_closed().await?;
        Ok::<_, Error>(out)
    })
    .unwrap();
    assert_eq!(got, [b"first\n".to_vec(), b"second\n".to_vec()]);
}

#[test]
fn stream_01_02_unix_variants() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let path = loop_testkit::temp_path("stream.sock");
    let lp2 = lp.clone();
    let p2 = path.clone();
    let got = run(&lp, 30, async move {
        let server = lp2
            .start_unix_server(echo_line, &p2, ServerOptions::new())
            .await?;
        let (mut r, w) = lp2.open_unix_connection(&p2, ConnectOptions::new()).await?;
        w.write(b"over unix\n")?;
        let line = r.readline().await?;
        w.close();
        server.close();
        server.wait_closed().await?;
        Ok::<_, Error>(line)
    })
    .unwrap();
    assert_eq!(got, b"over unix\n");
    assert!(!path.exists(), "the socket file was cleaned up");
}

/// STREAM-01 / STREAM-02, the `sock=` forms: a server on a bound TCP listener
/// (`start_server_sock`) and on a bound Unix listener (`start_unix_server_sock`), reached by
/// adopting already connected sockets (`open_connection_sock`, `open_unix_connection_sock`).
#[test]
fn stream_01_02_sock_variants() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let before = common::fd_count();
    let path = loop_testkit::temp_path("stream-sock.sock");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_at = tcp.local_addr().unwrap();
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let lp2 = lp.clone();
    let p2 = path.clone();
    let got = run(&lp, 30, async move {
        let tcp_server = lp2
            .start_server_sock(echo_line, tcp, ServerOptions::new())
            .await?;
        let unix_server = lp2
            .start_unix_server_sock(echo_line, unix, ServerOptions::new())
            .await?;
        assert_eq!(tcp_server.local_addrs()[0].as_inet(), Some(tcp_at));
        let conn = std::net::TcpStream::connect(tcp_at).unwrap();
        let (mut r, w) = lp2
            .open_connection_sock(conn, ConnectOptions::new())
            .await?;
        w.write(b"over tcp\n")?;
        let tcp_line = r.readline().await?;
        w.close();
        w.wait_closed().await?;
        let conn = std::os::unix::net::UnixStream::connect(&p2).unwrap();
        let (mut r, w) = lp2
            .open_unix_connection_sock(conn, ConnectOptions::new())
            .await?;
        w.write(b"over unix\n")?;
        let unix_line = r.readline().await?;
        w.close();
        w.wait_closed().await?;
        for s in [tcp_server, unix_server] {
            s.close();
            s.wait_closed().await?;
        }
        Ok::<_, Error>((tcp_line, unix_line))
    })
    .unwrap();
    assert_eq!(got, (b"over tcp\n".to_vec(), b"over unix\n".to_vec()));
    assert!(!path.exists(), "cleanup_socket applies to a given socket");
    assert_eq!(common::fd_count(), before, "a socket was left open");
}

#[test]
fn stream_03_failing_client_callback_is_reported_and_closed() {
    let _s = serial();
    let lp = EventLoop::new().unwrap();
    let seen = capture_exceptions(&lp);
    let lp2 = lp.clone();
    let eofs = run(&lp, 30, async move {
        let mut eofs = Vec::new();
        for mode in ["error", "panic", "cancel"] {
            let server = lp2
                .start_server(
                    move |_r: StreamReader, _w: StreamWriter| async move {
                        match mode {
                            "error" => Err(Error::invalid_argument("the client callback failed")),
                            "panic" => panic!("client callback panicked"),
                            _ => {
                                let me = loop_core::current_task()?.unwrap();
                                me.cancel();
                                loop_core::yield_now().await;
                                Ok(())
                            }
                        }
                    },
                    "127.0.0.1",
                    0,
                    ServerOptions::new(),
                )
                .await?;
            let port = server.local_addrs()[0].as_inet().unwrap().port();
            let (mut r, w) = lp2
                .open_connection("127.0.0.1", port, ConnectOptions::new())
                .await?;
            // The server side closes the connection: the client sees EOF.
            eofs.push(r.read_all().await?.is_empty());
            w.close();
            server.close();
            server.wait_closed().await?;
        }
        Ok::<_, Error>(eofs)
    })
    .unwrap();
    assert_eq!(eofs, [true, true, true]);
    let seen = seen.borrow();
    let msgs: Vec<&str> = seen.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "Unhandled exception in client_connected_cb",
            "Unhandled exception in client_connected_cb"
        ],
        "a cancelled callback is not reported"
    );
    assert!(seen[0]
        .exception
        .as_ref()
        .unwrap()
        .to_string()
        .contains("the client callback failed"));
    assert!(seen[1]
        .exception
        .as_ref()
        .unwrap()
        .to_string()
        .contains("client callback panicked"));
    assert!(seen
        .iter()
        .all(|c| c.extra.iter().any(|(k, _)| *k == "transport")));
}
