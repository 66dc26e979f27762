//! `sockit http` connects through the one connector (`dial`): `--connect-timeout`
//! covers the TLS handshake, `--resolve` and `--unix-socket` still steer it, and
//! the exit codes stay curl's.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// A TCP listener that accepts connections and never sends a byte; each
/// accepted socket is held open until the listener's owner drops `stop`.
struct Mute {
    addr: String,
    accepted: mpsc::Receiver<()>,
    _stop: mpsc::Sender<()>,
}

impl Mute {
    fn start() -> Mute {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, accepted) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        thread::spawn(move || {
            let (s, _) = accept_one(&l);
            let _ = tx.send(());
            // Hold the connection, silent, until the test ends.
            let _ = stopped.recv_timeout(Duration::from_secs(30));
            drop(s);
        });
        Mute {
            addr,
            accepted,
            _stop: stop,
        }
    }
}

#[test]
fn connect_timeout_bounds_a_stalled_tls_handshake() {
    let mute = Mute::start();
    let start = Instant::now();
    // No -m: only --connect-timeout can end this.
    let out = run(
        &[
            "http",
            "--connect-timeout",
            "1",
            &format!("https://{}/", mute.addr),
        ],
        b"",
    );
    let took = start.elapsed();
    mute.accepted
        .recv_timeout(Duration::from_secs(5))
        .expect("the TCP connect reached the listener");
    let err = error_line(&out, 28);
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    assert!(
        err.contains(&format!("TLS handshake with {}", mute.addr)) && err.contains("1s"),
        "{err}"
    );
}

#[test]
fn connect_timeout_bounds_tls_over_a_resolve_override() {
    // The name is resolved through --resolve to the mute listener; the
    // deadline still covers the handshake that follows.
    let mute = Mute::start();
    let port = mute.addr.rsplit(':').next().unwrap();
    let start = Instant::now();
    let out = run(
        &[
            "http",
            "--connect-timeout",
            "1",
            "--resolve",
            &format!("stalled.example:{port}:127.0.0.1"),
            &format!("https://stalled.example:{port}/"),
        ],
        b"",
    );
    let took = start.elapsed();
    let err = error_line(&out, 28);
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    mute.accepted
        .recv_timeout(Duration::from_secs(5))
        .expect("--resolve sent the connection to the listener");
}

#[test]
fn resolve_override_tries_each_address_in_order() {
    // The server listens on 127.0.0.1 only: the first --resolve address
    // (127.0.0.2, same port) refuses, the second answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut s, _) = accept_one(&l);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    });
    let out = run(
        &[
            "http",
            "-v",
            "--connect-timeout",
            "5",
            "--resolve",
            &format!("two.example:{port}:127.0.0.2,127.0.0.1"),
            &format!("http://two.example:{port}/"),
        ],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(out.stdout, b"ok");
    assert!(
        text.contains(&format!("Trying 127.0.0.2:{port}...")),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains(&format!("Connected to two.example (127.0.0.1) port {port}")),
        "{text}"
    );
}
