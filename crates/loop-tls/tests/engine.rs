//! The state machine, two engines pumping bytes to each other in memory: data both ways,
//! write-buffer flow control, the closing handshake, end of file, failures and timeouts.

mod common;

use std::time::Duration;

use common::*;
use loop_tls::{Eof, TlsEngine, TlsError, TlsState, TlsVersion};

fn pair() -> (Peer, Peer) {
    let ca = Ca::new("engine test CA");
    let leaf = ca.issue(&["localhost"]);
    let client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    handshaken(client, server)
}

#[test]
fn tls_handshake_completes_once_and_data_flows_both_ways() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    assert_eq!(c.engine.state(), TlsState::Wrapped);
    assert_eq!(s.engine.state(), TlsState::Wrapped);
    c.write(b"ping");
    pump(&mut c, &mut s);
    assert_eq!(s.received, b"ping");
    s.write(b"pong");
    pump(&mut c, &mut s);
    assert_eq!(c.received, b"pong");
    assert!(c.eof.is_none() && s.eof.is_none());
    assert_eq!(c.engine.buffer_size(), 0);
}

#[test]
fn tls_writes_during_the_handshake_are_sent_after_it() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("early write CA");
    let leaf = ca.issue(&["localhost"]);
    let client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    let server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let (mut c, mut s) = connect(client, server);
    c.write(b"early ");
    c.write(b"bird");
    assert_eq!(c.engine.buffer_size(), 10);
    pump(&mut c, &mut s);
    assert!(c.handshake_complete && s.handshake_complete);
    assert_eq!(s.received, b"early bird");
    assert_eq!(c.engine.buffer_size(), 0);
}

/// Writes `total` bytes through `from` the way a protocol honouring pause_writing would (no
/// write while the buffer is above the high-water mark), moving at most one take_ciphertext per
/// turn each way, and checks that the write buffer fills past rustls's 64 KiB and drains to 0.
fn stream(total: usize) {
    const HIGH: usize = 512 * 1024;
    let (mut c, mut s) = pair();
    let c_data = pattern(total, 1);
    let s_data = pattern(total, 2);
    let (mut c_sent, mut s_sent) = (0, 0);
    let mut turns = 0;
    while c.received.len() < total || s.received.len() < total {
        turns += 1;
        assert!(turns < 1_000_000, "no progress");
        for (p, data, sent) in [
            (&mut c, &c_data, &mut c_sent),
            (&mut s, &s_data, &mut s_sent),
        ] {
            while *sent < total && p.engine.buffer_size() < HIGH {
                let n = (total - *sent).min(256 * 1024);
                p.write(&data[*sent..*sent + n]);
                *sent += n;
            }
        }
        step(&mut c, &mut s);
        step(&mut s, &mut c);
        assert!(c.error.is_none() && s.error.is_none());
    }
    assert!(
        c.received == s_data,
        "client received other bytes than the server sent"
    );
    assert!(
        s.received == c_data,
        "server received other bytes than the client sent"
    );
    assert!(
        c.max_buffer > 64 * 1024,
        "client buffer peaked at {}",
        c.max_buffer
    );
    assert!(
        s.max_buffer > 64 * 1024,
        "server buffer peaked at {}",
        s.max_buffer
    );
    pump(&mut c, &mut s);
    assert_eq!(c.engine.buffer_size(), 0);
    assert_eq!(s.engine.buffer_size(), 0);
    assert!(!c.engine.has_ciphertext() && !s.engine.has_ciphertext());
}

#[test]
fn tls_16_mib_each_way_fills_and_drains_the_write_buffer() {
    let _w = loop_testkit::watchdog();
    stream(16 * 1024 * 1024);
}

#[test]
fn tls_one_big_write_waits_in_the_write_buffer_beyond_64_kib() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    let data = pattern(4 * 1024 * 1024, 3);
    c.write(&data);
    // rustls took at most its 64 KiB limit; the rest waits in the engine.
    assert_eq!(c.engine.buffer_size(), data.len());
    let first = c.engine.take_ciphertext();
    assert!(
        first.len() < 80 * 1024,
        "one take gave {} bytes",
        first.len()
    );
    assert!(c.engine.buffer_size() < data.len());
    let r = s.engine.feed_ciphertext(&first);
    s.apply(r);
    pump(&mut c, &mut s);
    assert!(s.received == data);
    assert_eq!(c.engine.buffer_size(), 0);
}

#[test]
fn tls_client_close_sends_close_notify_and_both_sides_close() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    c.write(b"last words");
    let r = c.engine.begin_shutdown();
    c.apply(r);
    assert!(c.shutdown_started && !c.close);
    assert_eq!(c.engine.state(), TlsState::Shutdown);
    assert!(matches!(
        c.engine.write_plaintext(b"late"),
        Err(TlsError::WriteAfterClose)
    ));
    pump(&mut c, &mut s);
    // The server read the data, then the client's close_notify, answered with its own.
    assert_eq!(s.received, b"last words");
    assert_eq!(s.eof, Some(Eof::CloseNotify));
    assert!(s.shutdown_started && s.close);
    // The client's shutdown completes on the server's close_notify.
    assert_eq!(c.eof, Some(Eof::CloseNotify));
    assert!(c.close);
    assert_eq!((c.eof_count, s.eof_count), (1, 1));
    assert_eq!(c.engine.state(), TlsState::Unwrapped);
    assert_eq!(s.engine.state(), TlsState::Unwrapped);
    assert!(matches!(
        s.engine.write_plaintext(b"x"),
        Err(TlsError::WriteAfterClose)
    ));
    // Nothing left to say, and late bytes are ignored.
    assert!(!c.engine.has_ciphertext() && !s.engine.has_ciphertext());
    assert!(c.engine.feed_ciphertext(b"junk").unwrap().is_empty());
}

#[test]
fn tls_server_close_is_seen_by_the_client_as_close_notify() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    s.write(b"bye");
    let r = s.engine.begin_shutdown();
    s.apply(r);
    pump(&mut c, &mut s);
    assert_eq!(c.received, b"bye");
    assert_eq!(c.eof, Some(Eof::CloseNotify));
    assert!(c.close && s.close);
    assert_eq!(s.eof, Some(Eof::CloseNotify));
}

#[test]
fn tls_close_flushes_the_whole_write_buffer_before_close_notify() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    let data = pattern(3 * 1024 * 1024 + 7, 4);
    c.write(&data);
    let r = c.engine.begin_shutdown();
    c.apply(r);
    pump(&mut c, &mut s);
    assert!(
        s.received == data,
        "got {} of {} bytes",
        s.received.len(),
        data.len()
    );
    assert_eq!(s.eof, Some(Eof::CloseNotify));
    assert!(c.close && s.close);
}

#[test]
fn tls_transport_eof_without_close_notify_is_a_plain_eof() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    c.write(b"truncated?");
    step(&mut c, &mut s);
    assert_eq!(s.received, b"truncated?");
    // The client's socket closes without close_notify.
    let r = s.engine.on_transport_eof();
    s.apply(r);
    assert_eq!(s.eof, Some(Eof::TransportEof));
    assert!(s.close);
    assert!(s.error.is_none());
    // asyncio does not answer an EOF with close_notify.
    assert!(!s.engine.has_ciphertext());
    assert_eq!(s.engine.state(), TlsState::Unwrapped);
}

#[test]
fn tls_transport_eof_delivers_data_still_buffered() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    c.write(b"still in flight");
    let ct = c.engine.take_ciphertext();
    s.engine.pause_reading();
    let r = s.engine.feed_ciphertext(&ct);
    s.apply(r);
    assert!(s.received.is_empty());
    assert_eq!(s.engine.read_buffer_size(), ct.len());
    // EOF while paused: nothing yet (asyncio keeps the transport open)...
    let r = s.engine.on_transport_eof();
    s.apply(r);
    assert!(s.eof.is_none() && !s.close);
    assert_eq!(s.engine.state(), TlsState::Flushing);
    // ...and on resume the data, then the EOF.
    let r = s.engine.resume_reading();
    s.apply(r);
    assert_eq!(s.received, b"still in flight");
    assert_eq!(s.eof, Some(Eof::TransportEof));
    assert!(s.close);
}

#[test]
fn tls_pause_reading_holds_plaintext_until_resumed() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    s.engine.pause_reading();
    assert!(!s.engine.is_reading());
    c.write(&pattern(100_000, 5));
    pump(&mut c, &mut s);
    assert!(s.received.is_empty());
    assert!(s.engine.read_buffer_size() > 90_000);
    let r = s.engine.resume_reading();
    s.apply(r);
    assert!(s.received == pattern(100_000, 5));
    assert_eq!(s.engine.read_buffer_size(), 0);
}

#[test]
fn tls_data_arriving_after_our_close_notify_is_discarded() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    let r = c.engine.begin_shutdown();
    c.apply(r);
    s.write(b"too late for the client");
    // The server's data crosses the client's close_notify.
    step(&mut s, &mut c);
    assert!(
        c.received.is_empty(),
        "data after close() reached the application"
    );
    pump(&mut c, &mut s);
    assert!(c.close);
}

#[test]
fn tls_bad_record_after_our_close_notify_is_an_error_not_a_panic() {
    let _w = loop_testkit::watchdog();
    for corrupt in [true, false] {
        let (mut c, mut s) = pair();
        let r = c.engine.begin_shutdown();
        c.apply(r);
        assert!(c.engine.has_ciphertext()); // close_notify, not yet taken
        s.write(b"crossing the close");
        let mut flight = s.engine.take_ciphertext();
        if corrupt {
            let last = flight.len() - 1;
            flight[last] ^= 0x80; // breaks the record's authentication tag
        } else {
            flight = b"\x17\x03\x03\xff\xffnot a record".to_vec(); // oversized record
        }
        let err = c.engine.feed_ciphertext(&flight).unwrap_err();
        assert!(matches!(err, TlsError::CorruptedRecord(_)), "{err:?}");
        assert_eq!(c.engine.state(), TlsState::Unwrapped);
        assert!(c.engine.feed_ciphertext(b"more").unwrap().is_empty());
    }
}

#[test]
fn tls_close_during_the_handshake_aborts() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("abort CA");
    let client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    let mut c = Peer::new(client);
    let r = c.engine.start_handshake();
    c.apply(r);
    let r = c.engine.begin_shutdown();
    c.apply(r);
    assert!(c.abort && !c.close);
    assert_eq!(c.engine.state(), TlsState::Unwrapped);
}

#[test]
fn tls_transport_eof_during_the_handshake_is_connection_reset() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("eof CA");
    let mut client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    let _ = client.start_handshake().unwrap();
    let err = client.on_transport_eof().unwrap_err();
    assert!(matches!(err, TlsError::HandshakeEof));
    assert_eq!(err.handshake_failure_message(), "SSL handshake failed");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
}

#[test]
fn tls_handshake_timeout_fires_only_while_handshaking() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("timeout CA");
    let leaf = ca.issue(&["localhost"]);
    let mut client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    client
        .set_timeouts(Some(Duration::from_millis(1500)), None)
        .unwrap();
    let _ = client.start_handshake().unwrap();
    let err = client.on_handshake_timeout().expect("still handshaking");
    assert_eq!(
        err.to_string(),
        "SSL handshake is taking longer than 1.5 seconds: aborting the connection"
    );
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::ConnectionAborted
    );
    assert_eq!(client.state(), TlsState::Unwrapped);

    let (mut c, _s) = pair();
    assert!(c.engine.on_handshake_timeout().is_none());
    let _ = leaf;
}

#[test]
fn tls_shutdown_timeout_fires_while_waiting_for_the_peer() {
    let _w = loop_testkit::watchdog();
    let (mut c, _s) = pair();
    assert!(c.engine.on_shutdown_timeout().is_none());
    let r = c.engine.begin_shutdown();
    c.apply(r);
    // The server never answers.
    let err = c.engine.on_shutdown_timeout().expect("closing");
    assert_eq!(err.to_string(), "SSL shutdown timed out");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::TimedOut
    );
    assert_eq!(c.engine.state(), TlsState::Unwrapped);
}

#[test]
fn tls_corrupted_record_is_an_error() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = pair();
    c.write(b"integrity matters");
    let mut ct = c.engine.take_ciphertext();
    let last = ct.len() - 1;
    ct[last] ^= 0x01; // inside the AEAD tag
    let err = s.engine.feed_ciphertext(&ct).unwrap_err();
    assert!(matches!(err, TlsError::CorruptedRecord(_)), "{err:?}");
    assert!(err.to_string().starts_with("corrupted TLS record"));
    assert!(!err.is_certificate_error());
    assert_eq!(s.engine.state(), TlsState::Unwrapped);
    // The server tells the client why (bad_record_mac).
    let alert = s.engine.take_ciphertext();
    assert!(!alert.is_empty());
    let err = c.engine.feed_ciphertext(&alert).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::PeerAlert(rustls::AlertDescription::BadRecordMac)
        ),
        "{err:?}"
    );
}

#[test]
fn tls_garbage_instead_of_a_handshake_is_a_corrupted_record() {
    let _w = loop_testkit::watchdog();
    let ca = Ca::new("garbage CA");
    let leaf = ca.issue(&["localhost"]);
    let mut server = TlsEngine::server(&server_ctx(&leaf)).unwrap();
    let _ = server.start_handshake().unwrap();
    let err = server
        .feed_ciphertext(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap_err();
    assert!(matches!(err, TlsError::CorruptedRecord(_)), "{err:?}");
}

#[test]
fn tls_start_handshake_twice_is_refused() {
    let _w = loop_testkit::watchdog();
    let (mut c, _s) = pair();
    assert!(matches!(
        c.engine.start_handshake(),
        Err(TlsError::InvalidState(_))
    ));
}

fn version_pair(max: TlsVersion) -> (Peer, Peer) {
    let ca = Ca::new("version CA");
    let leaf = ca.issue(&["localhost"]);
    let client = TlsEngine::client(&client_ctx(&ca), "localhost").unwrap();
    let server = TlsEngine::server(&server_ctx_versions(&leaf, max, &[])).unwrap();
    handshaken(client, server)
}

#[test]
fn tls12_handshake_data_and_close() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = version_pair(TlsVersion::Tls12);
    assert_eq!(c.engine.protocol_version(), Some(TlsVersion::Tls12));
    assert_eq!(s.engine.protocol_version(), Some(TlsVersion::Tls12));
    let suite = c.engine.cipher_suite().unwrap();
    assert!(suite.starts_with("TLS_ECDHE_"), "{suite}");
    c.write(&pattern(200_000, 6));
    let r = c.engine.begin_shutdown();
    c.apply(r);
    pump(&mut c, &mut s);
    assert!(s.received == pattern(200_000, 6));
    assert!(c.close && s.close);
    assert_eq!(s.eof, Some(Eof::CloseNotify));
}

#[test]
fn tls13_handshake_data_and_close() {
    let _w = loop_testkit::watchdog();
    let (mut c, mut s) = version_pair(TlsVersion::Tls13);
    assert_eq!(c.engine.protocol_version(), Some(TlsVersion::Tls13));
    assert_eq!(s.engine.protocol_version(), Some(TlsVersion::Tls13));
    let suite = s.engine.cipher_suite().unwrap();
    assert!(suite.starts_with("TLS13_"), "{suite}");
    assert_eq!(c.engine.peer_certificates().map(|c| c.len()), Some(1));
    s.write(&pattern(200_000, 7));
    let r = s.engine.begin_shutdown();
    s.apply(r);
    pump(&mut c, &mut s);
    assert!(c.received == pattern(200_000, 7));
    assert!(c.close && s.close);
}
