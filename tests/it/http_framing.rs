//! `sockit http` against small in-test servers that write exact bytes: every
//! framing rule, truncation, limits, timeouts, keep-alive, and the request bytes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// What the server does with each connection, in order of accept.
#[derive(Clone)]
enum Reply {
    /// Read one request, write these bytes, close.
    Close(Vec<u8>),
    /// Read one request, write these bytes, keep the connection open until the client closes.
    Hold(Vec<u8>),
    /// Read one request, write the bytes one at a time, close.
    Dribble(Vec<u8>),
    /// Read requests and answer each with the next of these; close after the last.
    KeepAlive(Vec<Vec<u8>>),
    /// Read the request and never answer (until the client closes).
    Silent,
}

/// A server for a scripted list of connections; the requests it read come back
/// through `requests`.
struct Server {
    addr: String,
    requests: mpsc::Receiver<Vec<u8>>,
    conns: mpsc::Receiver<()>,
}

impl Server {
    fn start(script: Vec<Reply>) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, requests) = mpsc::channel();
        let (ctx, conns) = mpsc::channel();
        thread::spawn(move || {
            for reply in script {
                let Ok((mut s, _)) = l.accept() else { return };
                let _ = ctx.send(());
                s.set_read_timeout(Some(WAIT)).unwrap();
                s.set_nodelay(true).unwrap();
                let tx = tx.clone();
                thread::spawn(move || serve(&mut s, reply, &tx));
            }
        });
        Server {
            addr,
            requests,
            conns,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn request(&self) -> Vec<u8> {
        self.requests.recv_timeout(WAIT).expect("a request")
    }

    fn connections(&self) -> usize {
        self.conns.try_iter().count()
    }
}

/// Reads one request (head and Content-Length body); None at EOF.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => req.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&req).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    req.extend_from_slice(&body);
    Some(req)
}

fn serve(s: &mut TcpStream, reply: Reply, tx: &mpsc::Sender<Vec<u8>>) {
    let wait_close = |s: &mut TcpStream| {
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    };
    match reply {
        Reply::KeepAlive(replies) => {
            for r in replies {
                let Some(req) = read_request(s) else { return };
                let _ = tx.send(req);
                let _ = s.write_all(&r);
            }
        }
        other => {
            let Some(req) = read_request(s) else { return };
            let _ = tx.send(req);
            match other {
                Reply::Close(bytes) => {
                    let _ = s.write_all(&bytes);
                }
                Reply::Hold(bytes) => {
                    let _ = s.write_all(&bytes);
                    wait_close(s);
                }
                Reply::Dribble(bytes) => {
                    for b in bytes {
                        if s.write_all(&[b]).is_err() {
                            return;
                        }
                        thread::sleep(Duration::from_micros(300));
                    }
                }
                Reply::Silent => wait_close(s),
                Reply::KeepAlive(_) => unreachable!(),
            }
        }
    }
}

fn http(args: &[&str]) -> (i32, Vec<u8>, String) {
    let mut all = vec!["http"];
    all.extend_from_slice(args);
    let out = run(&all, b"");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One response from a fresh server; returns exit code, stdout, stderr.
fn fetch(reply: Reply, extra: &[&str]) -> (i32, Vec<u8>, String) {
    let srv = Server::start(vec![reply]);
    let url = srv.url("/");
    let mut args: Vec<&str> = extra.to_vec();
    args.push(&url);
    http(&args)
}

fn close(bytes: &[u8]) -> Reply {
    Reply::Close(bytes.to_vec())
}

#[test]
fn content_length_exact_and_truncated() {
    let (code, out, _) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        &[],
    );
    assert_eq!((code, out.as_slice()), (0, &b"hello"[..]));
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
        &[],
    );
    assert_eq!(code, 18, "{err}");
    assert_eq!(out, b"hello");
    assert!(
        err.starts_with("sockit: error: incomplete response from 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("after 5 of 10 body bytes"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn conflicting_and_bad_content_length() {
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        &[],
    );
    assert_eq!(code, 8, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("conflicting Content-Length values 5 and 6 at byte 36"),
        "{err}"
    );
    let (code, _, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        &[],
    );
    assert_eq!(code, 8, "{err}");
    let (code, _, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"),
        &[],
    );
    assert_eq!(code, 8, "{err}");
    // Identical repeats are fine.
    let (code, out, _) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello"),
        &[],
    );
    assert_eq!((code, out.as_slice()), (0, &b"hello"[..]));
}

#[test]
fn chunked_wins_over_content_length() {
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n6;x=y\r\nhello \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"),
        &["-v"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"hello world");
    assert!(
        err.contains("< X-Trailer: t"),
        "trailers shown with -v: {err}"
    );
}

#[test]
fn chunk_size_overflow_and_missing_last_chunk() {
    let (code, _, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx"),
        &[],
    );
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("chunk size overflows"), "{err}");
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        &[],
    );
    assert_eq!(code, 18, "{err}");
    assert_eq!(out, b"hello");
    assert!(err.contains("before the last chunk"), "{err}");
}

#[test]
fn interim_responses_before_the_final_one() {
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        &["-v", "-w", "%{http_code}"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"ok200");
    assert!(err.contains("< HTTP/1.1 100 Continue"), "{err}");
    assert!(err.contains("< Link: </s.css>"), "{err}");
}

#[test]
fn bodiless_statuses_ignore_stray_lengths() {
    for status in ["204 No Content", "304 Not Modified"] {
        // The server keeps the connection open: the client must not wait for a body.
        let reply = Reply::Hold(
            format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nhello").into_bytes(),
        );
        let start = Instant::now();
        let (code, out, err) = fetch(reply, &["-w", "%{http_code} %{size_download}"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(String::from_utf8_lossy(&out), format!("{} 0", &status[..3]));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    // HEAD: Content-Length describes the GET body, which is not sent.
    let reply = Reply::Hold(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec());
    let (code, out, err) = fetch(reply, &["-I"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
}

#[test]
fn close_delimited_body_reads_to_eof() {
    let body = random_bytes(300_000, 7);
    let mut resp = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    resp.extend_from_slice(&body);
    let (code, out, err) = fetch(Reply::Close(resp), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out == body, "body differs ({} bytes)", out.len());
}

#[test]
fn header_block_over_the_limit() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(2000)
    );
    let (code, _, err) = fetch(
        Reply::Hold(big.clone().into_bytes()),
        &["--max-header-bytes", "1024"],
    );
    assert_eq!(code, 100, "{err}");
    assert!(err.contains("larger than 1024 bytes"), "{err}");
    let (code, _, err) = fetch(Reply::Close(big.into_bytes()), &[]);
    assert_eq!(code, 0, "{err}");
    let many: String = (0..20).map(|i| format!("X-{i}: v\r\n")).collect();
    let resp = format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 0\r\n\r\n");
    let (code, _, err) = fetch(Reply::Close(resp.into_bytes()), &["--max-headers", "10"]);
    assert_eq!(code, 100, "{err}");
    // A head that never ends is cut off at the limit, not buffered forever.
    let endless = format!("HTTP/1.1 200 OK\r\n{}", "X: y\r\n".repeat(50_000));
    let (code, _, err) = fetch(Reply::Hold(endless.into_bytes()), &[]);
    assert_eq!(code, 100, "{err}");
}

#[test]
fn server_that_never_answers_times_out() {
    let start = Instant::now();
    let (code, _, err) = fetch(Reply::Silent, &["-m", "1"]);
    assert_eq!(code, 28, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn response_one_byte_at_a_time() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n".to_vec();
    let (code, out, err) = fetch(Reply::Dribble(resp), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"abcdefg");
    let resp = b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello".to_vec();
    let (code, out, err) = fetch(Reply::Dribble(resp), &["-i"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello");
}

#[test]
fn empty_reply_and_malformed_status() {
    let (code, _, err) = fetch(close(b""), &[]);
    assert_eq!(code, 52, "{err}");
    let (code, _, err) = fetch(close(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), &[]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("at byte 0"), "{err}");
    let (code, _, err) = fetch(close(b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"), &[]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("invalid character in a header name at byte 20"),
        "{err}"
    );
}

#[test]
fn lenient_forms_are_accepted() {
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 200\nX-Fold: a\n b\nContent-Length: 2\n\nok"),
        &["-v"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"ok");
}

#[test]
fn request_bytes_on_the_wire() {
    let srv = Server::start(vec![close(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
    let url = srv.url("/p?q=1#frag");
    let (code, _, err) = http(&[
        "-d",
        "a=1",
        "-d",
        "b=2",
        "-H",
        "X-Test: yes",
        "-H",
        "Accept:",
        "-u",
        "user:pass",
        "-A",
        "probe/1",
        &url,
    ]);
    assert_eq!(code, 0, "{err}");
    let req = String::from_utf8(srv.request()).unwrap();
    assert_eq!(
        req,
        format!(
            "POST /p?q=1 HTTP/1.1\r\nHost: {}\r\nUser-Agent: probe/1\r\n\
             Authorization: Basic dXNlcjpwYXNz\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\
             X-Test: yes\r\n\r\na=1&b=2",
            srv.addr
        )
    );
    let srv = Server::start(vec![close(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
    let (code, _, err) = http(&["-X", "PUT", "--json", "{\"k\":1}", &srv.url("/j")]);
    assert_eq!(code, 0, "{err}");
    let req = String::from_utf8(srv.request()).unwrap();
    assert!(req.starts_with("PUT /j HTTP/1.1\r\n"), "{req}");
    assert!(
        req.contains("\r\nContent-Type: application/json\r\n"),
        "{req}"
    );
    assert!(req.contains("\r\nAccept: application/json\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\n{\"k\":1}"), "{req}");
}

#[test]
fn data_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("body.txt");
    std::fs::write(&f, b"line1\r\nline2\n").unwrap();
    let at = format!("@{}", f.display());
    let srv = Server::start(vec![
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(http(&["-d", &at, &srv.url("/")]).0, 0);
    assert!(srv.request().ends_with(b"\r\n\r\nline1line2"));
    assert_eq!(http(&["--data-binary", &at, &srv.url("/")]).0, 0);
    assert!(srv.request().ends_with(b"\r\n\r\nline1\r\nline2\n"));
    let (code, _, err) = http(&["-d", "@/nonexistent/file", &srv.url("/")]);
    assert_eq!(code, 26, "{err}");
}

#[test]
fn keep_alive_reuses_one_connection() {
    let ok = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let srv = Server::start(vec![Reply::KeepAlive(vec![ok("a"), ok("b"), ok("c")])]);
    let (code, out, err) = http(&[&srv.url("/1"), &srv.url("/2"), &srv.url("/3")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"abc");
    assert_eq!(srv.connections(), 1);
    for path in ["/1", "/2", "/3"] {
        let req = String::from_utf8(srv.request()).unwrap();
        assert!(
            req.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
            "{req}"
        );
    }
}

#[test]
fn connection_close_and_http10_are_honoured() {
    let srv = Server::start(vec![
        Reply::Hold(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na".to_vec()),
        Reply::Hold(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb".to_vec()),
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"),
    ]);
    let (code, out, err) = http(&[&srv.url("/1"), &srv.url("/2"), &srv.url("/3")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"abc");
    assert_eq!(srv.connections(), 3);
}

#[test]
fn stale_keep_alive_connection_is_retried() {
    // The first connection answers once and then closes (as an idle timeout would).
    let srv = Server::start(vec![
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
        close(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
    ]);
    let (code, out, err) = http(&[&srv.url("/1"), &srv.url("/2")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"ab");
}

#[test]
fn fail_flag_and_write_out() {
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"),
        &["-f"],
    );
    assert_eq!(code, 22, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("returned HTTP 404"), "{err}");
    let (code, out, _) = fetch(
        close(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"),
        &[],
    );
    assert_eq!((code, out.as_slice()), (0, &b"nope"[..]));
    let (code, out, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody"),
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{content_type} %{num_redirects}\\n",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"200 4 text/plain 0\n");
}

#[test]
fn redirects_follow_rules() {
    let srv = Server::start(vec![Reply::KeepAlive(vec![
        b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 3\r\n\r\nxyz".to_vec(),
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: final\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone".to_vec(),
    ])]);
    let (code, out, err) = http(&[
        "-L",
        "-d",
        "x=1",
        "-w",
        " %{num_redirects} %{url_effective}",
        &srv.url("/start"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        format!("done 2 {}", srv.url("/final"))
    );
    let r1 = String::from_utf8(srv.request()).unwrap();
    let r2 = String::from_utf8(srv.request()).unwrap();
    let r3 = String::from_utf8(srv.request()).unwrap();
    assert!(r1.starts_with("POST /start "), "{r1}");
    // 302 turns POST into GET without a body; 307 keeps GET.
    assert!(
        r2.starts_with("GET /next ") && !r2.contains("Content-Length"),
        "{r2}"
    );
    assert!(r3.starts_with("GET /final "), "{r3}");
    assert_eq!(srv.connections(), 1);

    // A loop stops at --max-redirs with exit 47.
    let looped: Vec<Vec<u8>> = (0..4)
        .map(|_| b"HTTP/1.1 301 Moved\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n".to_vec())
        .collect();
    let srv = Server::start(vec![Reply::KeepAlive(looped)]);
    let (code, _, err) = http(&["-L", "--max-redirs", "3", &srv.url("/again")]);
    assert_eq!(code, 47, "{err}");
    assert!(err.contains("maximum of 3"), "{err}");
}

#[test]
fn credentials_dropped_on_cross_origin_redirect() {
    let other = Server::start(vec![close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )]);
    let loc = format!(
        "HTTP/1.1 308 Permanent Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
        other.url("/there")
    );
    let first = Server::start(vec![close(loc.as_bytes())]);
    let (code, out, err) = http(&[
        "-L",
        "-u",
        "a:b",
        "-H",
        "Cookie: c=1",
        "-H",
        "X-Keep: 1",
        &first.url("/"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"ok");
    assert!(String::from_utf8(first.request())
        .unwrap()
        .contains("Authorization: Basic"));
    let req = String::from_utf8(other.request()).unwrap();
    assert!(
        !req.contains("Authorization") && !req.contains("Cookie"),
        "{req}"
    );
    assert!(req.contains("X-Keep: 1"), "{req}");
}

#[test]
fn output_files_and_remote_name() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(vec![Reply::KeepAlive(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo".to_vec(),
    ])]);
    let mut cmd = sockit();
    cmd.current_dir(dir.path());
    let a = dir.path().join("a.out");
    cmd.args([
        "http",
        "-o",
        a.to_str().unwrap(),
        &srv.url("/x"),
        &srv.url("/dir/file.bin"),
    ]);
    cmd.arg("-O");
    let p = Proc::spawn(cmd);
    let (st, out, err) = p.wait_exit();
    assert!(st.success(), "{err}");
    assert!(out.is_empty());
    assert!(
        err.is_empty(),
        "no progress bar when stderr is not a terminal: {err}"
    );
    assert_eq!(std::fs::read(a).unwrap(), b"one");
    assert_eq!(std::fs::read(dir.path().join("file.bin")).unwrap(), b"two");
}

#[test]
fn connect_errors_have_their_codes() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, _, err) = http(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.starts_with("sockit: error: cannot connect to 127.0.0.1:"),
        "{err}"
    );
    let (code, _, err) = http(&["-m", "10", "http://nonexistent.invalid/"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("cannot resolve nonexistent.invalid"), "{err}");
    // -4/-6 filter literal addresses too.
    let (code, _, err) = http(&["-6", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("no IPv6 address"), "{err}");
    assert_eq!(http(&["ftp://127.0.0.1/"]).0, 1);
    assert_eq!(http(&["http://[::1/"]).0, 3);
    assert_eq!(http(&["-X", "BAD METHOD", "http://127.0.0.1/"]).0, 2);
}

#[test]
fn resolve_and_ipv6_literal() {
    let srv = Server::start(vec![close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )]);
    let port = srv.addr.rsplit(':').next().unwrap();
    let (code, out, err) = http(&[
        "--resolve",
        &format!("test.invalid:{port}:127.0.0.1"),
        &format!("http://test.invalid:{port}/"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"ok");
    assert!(String::from_utf8(srv.request())
        .unwrap()
        .contains(&format!("Host: test.invalid:{port}\r\n")));
    if let Ok(l) = TcpListener::bind("[::1]:0") {
        let addr = l.local_addr().unwrap();
        let t = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let req = read_request(&mut s).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")
                .unwrap();
            req
        });
        let (code, out, err) = http(&[&format!("http://[::1]:{}/", addr.port())]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, b"v6");
        let req = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(
            req.contains(&format!("Host: [::1]:{}\r\n", addr.port())),
            "{req}"
        );
    }
}

#[test]
fn unix_socket() {
    let (_dir, path) = sock_path("http.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let t = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
            req.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix")
            .unwrap();
        req
    });
    let (code, out, err) = http(&["--unix-socket", &path, "http://localhost/version"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"unix");
    let req = String::from_utf8(t.join().unwrap()).unwrap();
    assert!(
        req.starts_with("GET /version HTTP/1.1\r\nHost: localhost\r\n"),
        "{req}"
    );
}

/// A TLS server (rustls, blocking) that sends a close-delimited body, with or
/// without close_notify.
fn tls_close_delimited(close_notify: bool) -> (i32, Vec<u8>, String) {
    let config = self_signed_server_config();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut s);
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") && tls.read(&mut b).unwrap_or(0) == 1 {
            req.push(b[0]);
        }
        tls.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsecret body")
            .unwrap();
        tls.flush().unwrap();
        if close_notify {
            conn.send_close_notify();
            conn.complete_io(&mut s).unwrap();
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    http(&["-k", &format!("https://localhost:{port}/")])
}

#[test]
fn tls_close_delimited_body_needs_close_notify() {
    let (code, out, err) = tls_close_delimited(true);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"secret body");
    let (code, out, err) = tls_close_delimited(false);
    assert_eq!(code, 18, "{err}");
    assert_eq!(out, b"secret body");
    assert!(err.contains("close_notify"), "{err}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn chunked(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn content_and_transfer_codings() {
    let text = b"compressible text, compressible text, compressible text\n".repeat(100);
    let gz = gzip(&text);
    // Content-Encoding is decoded with --compressed only.
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    resp.extend_from_slice(&gz);
    let (code, out, err) = fetch(Reply::Close(resp.clone()), &["--compressed"]);
    assert_eq!(code, 0, "{err}");
    assert!(out == text);
    let (code, out, _) = fetch(Reply::Close(resp), &[]);
    assert_eq!(code, 0);
    assert!(out == gz);
    // A transfer coding is always removed.
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
    resp.extend_from_slice(&chunked(&gz, 100));
    let (code, out, err) = fetch(Reply::Close(resp), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out == text);
    // Corrupt or cut-short gzip, unknown codings: exit 61.
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len() - 10
    )
    .into_bytes();
    resp.extend_from_slice(&gz[..gz.len() - 10]);
    let (code, _, err) = fetch(Reply::Close(resp), &["--compressed"]);
    assert_eq!(code, 61, "{err}");
    let resp =
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!".to_vec();
    let (code, _, err) = fetch(Reply::Close(resp), &["--compressed"]);
    assert_eq!(code, 61, "{err}");
    // brotli (`brotli -q 11` of "sockit speaks brotli. " 50 times).
    let br: &[u8] = &[
        0xb1, 0x58, 0x22, 0xc0, 0x2f, 0x6e, 0x63, 0xeb, 0x3a, 0x56, 0x77, 0xd4, 0x92, 0x02, 0x21,
        0xad, 0x59, 0x0a, 0xac, 0x12, 0x74, 0xd1, 0x9a, 0x65, 0xf0, 0x03, 0xdf, 0xe8, 0x57, 0x8e,
        0x05,
    ];
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: {}\r\n\r\n",
        br.len()
    )
    .into_bytes();
    resp.extend_from_slice(br);
    let (code, out, err) = fetch(Reply::Close(resp), &["--compressed"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"sockit speaks brotli. ".repeat(50));
    let srv = Server::start(vec![close(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
    assert_eq!(http(&["--compressed", &srv.url("/")]).0, 0);
    let req = String::from_utf8(srv.request()).unwrap();
    assert!(
        req.contains("\r\nAccept-Encoding: gzip, deflate, br\r\n"),
        "{req}"
    );
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: zstd, chunked\r\n\r\n0\r\n\r\n".to_vec();
    let (code, _, err) = fetch(Reply::Close(resp), &[]);
    assert_eq!(code, 61, "{err}");
    assert!(err.contains("unsupported coding 'zstd'"), "{err}");
}

/// Runs `sockit http ARGS` with a pseudo-terminal as stdin/stdout/stderr (via
/// util-linux `script`); returns what the terminal showed.
fn on_a_terminal(args: &[&str]) -> String {
    let mut cmd = String::from(env!("CARGO_BIN_EXE_sockit"));
    cmd.push_str(" http");
    for a in args {
        cmd.push_str(&format!(" '{a}'"));
    }
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("RUST_LOG")
        .output()
        .expect("script (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_bar_only_on_a_terminal_and_not_with_silent() {
    require("script");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    let body = random_bytes(100_000, 3);
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    resp.extend_from_slice(&body);
    let srv = Server::start(vec![Reply::Close(resp.clone()), Reply::Close(resp)]);
    let shown = on_a_terminal(&["-o", file.to_str().unwrap(), &srv.url("/")]);
    assert!(shown.contains("97.66 KiB/97.66 KiB"), "{shown:?}");
    assert!(std::fs::read(&file).unwrap() == body);
    let shown = on_a_terminal(&["-s", "-o", file.to_str().unwrap(), &srv.url("/")]);
    assert_eq!(shown, "");
}

#[test]
fn verbose_shows_both_heads() {
    let (code, _, err) = fetch(
        close("HTTP/1.1 200 OK\r\nX-Evil: a\u{202e}b\r\nContent-Length: 0\r\n\r\n".as_bytes()),
        &["-v", "-H", "X-Mine: 1"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("* Connected to 127.0.0.1"), "{err}");
    assert!(err.contains("> GET / HTTP/1.1\n"), "{err}");
    assert!(err.contains("> X-Mine: 1\n"), "{err}");
    assert!(err.contains("< HTTP/1.1 200 OK\n"), "{err}");
    // Bidi overrides from the server are shown, not applied; raw escape
    // sequences do not even parse.
    assert!(err.contains("< X-Evil: a<U+202E>b\n"), "{err}");
    assert!(!err.contains('\u{202e}'), "{err}");
    let (code, _, err) = fetch(
        close(b"HTTP/1.1 200 OK\r\nX-Evil: \x1b[2J\r\nContent-Length: 0\r\n\r\n"),
        &["-v"],
    );
    assert_eq!(code, 8, "{err}");
    assert!(!err.contains('\x1b'), "{err}");
}
