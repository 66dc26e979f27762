//! `sockit http` under hostile responses and awkward requests: the cap on the
//! decoding chain, `-m` while stdout is blocked, a user's `Transfer-Encoding`
//! header, and user input echoed in errors.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::util::*;

/// What a scripted server sends after reading one request.
enum Answer {
    /// These bytes, then close once the client has closed.
    Bytes(Vec<u8>),
    /// This head, then body bytes for ever (until writing fails).
    Endless(Vec<u8>),
}

/// A one-connection server; the request it read (head and body) comes back
/// through `request`.
struct Wire {
    addr: String,
    request: mpsc::Receiver<Vec<u8>>,
}

impl Wire {
    fn start(answer: Answer) -> Wire {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, request) = mpsc::channel();
        thread::spawn(move || {
            let (mut s, _) = accept_one(&l);
            s.set_read_timeout(Some(WAIT)).unwrap();
            let Some(req) = read_request(&mut s) else {
                return;
            };
            let _ = tx.send(req);
            match answer {
                Answer::Bytes(b) => {
                    let _ = s.write_all(&b);
                    let _ = s.shutdown(Shutdown::Write);
                    let mut sink = [0u8; 4096];
                    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                }
                Answer::Endless(head) => {
                    if s.write_all(&head).is_err() {
                        return;
                    }
                    let block = vec![b'x'; 64 * 1024];
                    while s.write_all(&block).is_ok() {}
                }
            }
        });
        Wire { addr, request }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn request(&self) -> Vec<u8> {
        self.request.recv_timeout(WAIT).expect("a request")
    }
}

/// Reads a request head, then its body: `Content-Length` bytes, or chunks up to
/// the last one. None if the client closed first.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    let mut read_byte = |req: &mut Vec<u8>| match s.read(&mut byte) {
        Ok(1) => {
            req.push(byte[0]);
            true
        }
        _ => false,
    };
    while !req.ends_with(b"\r\n\r\n") {
        if !read_byte(&mut req) {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&req).to_ascii_lowercase();
    let head_len = req.len();
    if head.contains("\r\ntransfer-encoding:") {
        // Up to the last chunk and the empty trailer block.
        while !(req.len() >= head_len + 5 && req[head_len..].ends_with(b"0\r\n\r\n")) {
            if !read_byte(&mut req) {
                return None;
            }
        }
    } else if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap())
    {
        while req.len() < head_len + len {
            if !read_byte(&mut req) {
                return None;
            }
        }
    }
    Some(req)
}

/// What a finished run gave.
struct Ran {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
    took: Duration,
}

/// Address space allowed to a run that must stay small. sockit's own reservations
/// (runtime threads, allocator arenas) fit well inside; the ~900 MB that a decoder
/// state per coding used to cost does not, so before the cap such a run died.
/// (An address-space limit rather than `ru_maxrss`: a child's peak RSS includes
/// the forking test process's, which is large while the whole suite runs.)
const SMALL_AS_BYTES: u64 = 768 << 20;

/// Runs `sockit http ARGS` to its end under `SMALL_AS_BYTES` of address space.
fn http_measured(args: &[&str]) -> Ran {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    let mut cmd = sockit();
    cmd.arg("http").args(args).stdin(Stdio::null());
    // SAFETY: only setrlimit(2), async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: SMALL_AS_BYTES as libc::rlim_t,
                rlim_max: SMALL_AS_BYTES as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let p = Proc::spawn(cmd);
    let (status, stdout, stderr) = p.wait_exit();
    Ran {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        took: start.elapsed(),
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `n` gzip tokens as one comma-separated list.
fn gzip_list(n: usize) -> String {
    vec!["gzip"; n].join(",")
}

fn assert_too_many_codings(r: &Ran, count: usize) {
    assert_eq!(r.code, 61, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{count} content and transfer codings, more than 5 (--max-codings)"
        )),
        "stderr: {}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "stderr: {}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
}

#[test]
fn thousands_of_content_codings_are_refused_at_once() {
    let body = gzip(b"hello");
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: {}\r\nContent-Length: {}\r\n\r\n",
        gzip_list(12_000),
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    let w = Wire::start(Answer::Bytes(reply));
    let r = http_measured(&["--compressed", "-sS", &w.url()]);
    assert_too_many_codings(&r, 12_000);
}

#[test]
fn thousands_of_transfer_codings_are_refused_at_once() {
    let body = gzip(b"hello");
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: {},chunked\r\n\r\n{:x}\r\n",
        gzip_list(12_000),
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    reply.extend_from_slice(b"\r\n0\r\n\r\n");
    let w = Wire::start(Answer::Bytes(reply));
    let r = http_measured(&["-sS", &w.url()]);
    assert_too_many_codings(&r, 12_000);
}

#[test]
fn nested_gzip_layers_beyond_the_cap_are_refused() {
    let nest = |layers: usize| {
        let mut body = b"the payload".to_vec();
        for _ in 0..layers {
            body = gzip(&body);
        }
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {}\r\nContent-Length: {}\r\n\r\n",
            gzip_list(layers),
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&body);
        reply
    };
    // Five genuine layers: decoded.
    let w = Wire::start(Answer::Bytes(nest(5)));
    let r = http_measured(&["--compressed", "-sS", &w.url()]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, b"the payload");
    // Six genuine layers: refused (before, any depth was decoded, exit 0).
    let w = Wire::start(Answer::Bytes(nest(6)));
    let r = http_measured(&["--compressed", "-sS", &w.url()]);
    assert_too_many_codings(&r, 6);
    // The cap is a flag.
    let w = Wire::start(Answer::Bytes(nest(6)));
    let r = http_measured(&["--compressed", "-sS", "--max-codings", "6", &w.url()]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, b"the payload");
}

#[test]
fn a_user_transfer_encoding_header_chunks_the_body() {
    let w = Wire::start(Answer::Bytes(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    ));
    let out = run(
        &[
            "http",
            "-sS",
            "-H",
            "Transfer-Encoding: chunked",
            "-d",
            "x",
            &w.url(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"ok");
    let req = String::from_utf8(w.request()).unwrap();
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("content-length"), "{req:?}");
    assert_eq!(count(&lower, "\r\ntransfer-encoding:"), 1, "{req:?}");
    assert!(lower.contains("\r\ntransfer-encoding: chunked"), "{req:?}");
    assert_eq!(body, "1\r\nx\r\n0\r\n\r\n");
}

#[test]
fn ambiguous_request_framing_is_refused() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let out = run(
        &["http", "-H", "Transfer-Encoding: gzip", "-d", "x", &url],
        b"",
    );
    let line = error_line(&out, 2);
    assert!(line.contains("the last coding must be chunked"), "{line}");
    let out = run(
        &[
            "http",
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Length: 1",
            "-d",
            "x",
            &url,
        ],
        b"",
    );
    let line = error_line(&out, 2);
    assert!(line.contains("cannot be sent together"), "{line}");
}

#[test]
fn user_input_in_errors_has_control_bytes_made_visible() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let cases: [(Vec<&str>, i32, &str); 5] = [
        (
            vec!["-X", "GE\x1b[2JT", &url],
            2,
            "invalid method 'GE^[[2JT'",
        ),
        (
            vec!["-H", "X\x1b[2J: v", &url],
            2,
            "invalid header 'X^[[2J: v'",
        ),
        (
            vec!["--resolve", "a\x1b[2J", &url],
            2,
            "invalid --resolve 'a^[[2J'",
        ),
        (
            vec!["http://exa\x1b[2Jmple/"],
            3,
            "invalid URL 'http://exa^[[2Jmple/'",
        ),
        (vec!["ftp://h/a\x07b"], 1, "'ftp://h/a^Gb'"),
    ];
    for (args, code, want) in cases {
        let mut all = vec!["http"];
        all.extend(args);
        let out = run(&all, b"");
        let line = error_line(&out, code);
        assert!(line.contains(want), "{all:?}: {line}");
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "{all:?}: {line:?}"
        );
    }
}

#[test]
fn max_time_fires_while_stdout_is_blocked() {
    // A body without end, and a stdout pipe nobody reads: the first 64 KiB fill
    // the pipe and every later write blocks.
    let w = Wire::start(Answer::Endless(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n".to_vec(),
    ));
    let start = Instant::now();
    let mut child = sockit()
        .args(["http", "-sS", "-m", "1", &w.url()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _unread = child.stdout.take();
    let mut err = child.stderr.take().unwrap();
    let status = exit_within(&mut child, Duration::from_secs(10));
    let took = start.elapsed();
    let status = status.unwrap_or_else(|| panic!("still running after {took:?}: -m did not fire"));
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    assert_eq!(status.code(), Some(28), "stderr: {text}");
    assert!(text.contains("operation timed out (-m 1s)"), "{text}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_gzip_body_cut_short_is_exit_61_naming_the_server() {
    // The decoder finds the stream incomplete only at the end of the body, on the
    // output thread; the error must still name the server and end the run.
    let body = gzip(&random_bytes(100_000, 7));
    let cut = &body[..body.len() - 8];
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        cut.len()
    )
    .into_bytes();
    reply.extend_from_slice(cut);
    let w = Wire::start(Answer::Bytes(reply));
    let out = run(
        &["http", "-sS", "--compressed", "-o", "/dev/null", &w.url()],
        b"",
    );
    let line = error_line(&out, 61);
    assert!(
        line.contains(&format!("cannot decode the response from {}", w.addr)),
        "{line}"
    );
}
