//! Where `sockit http` writes: a regular file or `/dev/null` is written straight
//! from the transfer, anything that can block (a FIFO, a pipe) by the output
//! thread, so `-m` still fires; and bytes for one destination stay in order
//! either way.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// A server that answers every request on each connection with `answer`,
/// then (when `hold`) keeps the connection open without sending more.
fn serve(answer: &'static [u8], hold: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (mut s, _) = accept_one(&l);
        loop {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
            }
            if s.write_all(answer).is_err() {
                return;
            }
            if hold {
                // Stay silent until the client goes away (bounded by the read timeout).
                let _ = s.read(&mut byte);
                return;
            }
        }
    });
    addr
}

#[test]
fn max_time_fires_while_a_fifo_output_has_no_reader() {
    // Opening a FIFO for writing blocks until a reader comes: that must happen
    // off the transfer, or -m could not fire.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let addr = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nsome of the body",
        true,
    );
    let start = Instant::now();
    let mut child = sockit()
        .args(["http", "-s", "-m", "1", "-o", fifo.to_str().unwrap()])
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut child, Duration::from_secs(10));
    let took = start.elapsed();
    let status = status.unwrap_or_else(|| panic!("still running after {took:?}: -m did not fire"));
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(status.code(), Some(28), "stderr: {text}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn heads_bodies_and_write_out_keep_their_order_in_a_regular_file() {
    // stdout is a regular file: all of it is written on the transfer's side,
    // -i heads, bodies and -w text in the order of the transfers.
    let addr = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-N: 1\r\n\r\nbody\n",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let file = std::fs::File::create(&path).unwrap();
    let url = format!("http://{addr}/");
    let status = sockit()
        .args(["http", "-s", "-i", "-w", "code=%{http_code}\n", &url, &url])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let one = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-N: 1\r\n\r\nbody\ncode=200\n";
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{one}{one}")
    );
}

#[test]
fn a_body_to_a_file_then_write_out_to_a_pipe() {
    // -o FILE is written on the transfer's side, -w to the stdout pipe by the
    // thread: the file is complete by the time the -w line is read.
    let addr = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfile!\n",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.bin");
    let out = run(
        &[
            "http",
            "-s",
            "-o",
            path.to_str().unwrap(),
            "-w",
            "%{size_download}\n",
            &format!("http://{addr}/"),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"6\n");
    assert_eq!(std::fs::read(&path).unwrap(), b"file!\n");
}
