//! `chat serve --web`: web members (WebSocket, JSON) and line members in one
//! hub, through the real binary. The WebSocket client is `tungstenite` over a
//! std `TcpStream`; frames the library would refuse to send (invalid UTF-8,
//! a 10 MiB frame, fragments around a ping) are written raw, masked by hand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use crate::util::*;

/// A chat server with a web listener: the process, the line address, the web address.
fn web_serve(extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["--web", "127.0.0.1:0", "127.0.0.1:0"];
    if !extra.contains(&"--console") {
        args.push("--no-console");
    }
    args.extend(extra.iter().filter(|a| **a != "--console"));
    let (srv, line) = chat_serve(&args);
    let deadline = Instant::now() + WAIT;
    let web = loop {
        // The whole line, not just its start.
        let err = srv.wait_stderr("chat web page on http");
        let rest = err.split("chat web page on http").nth(1).unwrap_or("");
        let rest = rest.strip_prefix('s').unwrap_or(rest);
        let rest = rest.strip_prefix("://").unwrap_or("");
        if let Some((addr, _)) = rest.split_once("/\n") {
            break addr.to_string();
        }
        assert!(Instant::now() < deadline, "no web address in {err}");
        std::thread::sleep(Duration::from_millis(10));
    };
    (srv, line, web)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// A web member (also used by the history tests).
pub(crate) struct Web {
    ws: WebSocket<TcpStream>,
}

impl Web {
    /// Connects with `Origin: http://ADDR` (the page's own origin).
    pub(crate) fn connect(addr: &str) -> Web {
        Web::connect_origin(addr, Some(&format!("http://{addr}")))
    }

    fn connect_origin(addr: &str, origin: Option<&str>) -> Web {
        let stream = tcp(addr);
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        let (ws, resp) = tungstenite::client::client(req, stream).expect("handshake");
        assert_eq!(resp.status(), 101);
        Web { ws }
    }

    /// The next event (a text frame's JSON object).
    pub(crate) fn event(&mut self) -> Value {
        loop {
            match self.ws.read().expect("an event") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads events until one satisfies `pred`; returns it.
    pub(crate) fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no event: {what}");
            let ev = self.event();
            if pred(&ev) {
                return ev;
            }
        }
    }

    pub(crate) fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    /// Reads until the server's close frame; returns its code.
    fn close_code(&mut self) -> u16 {
        loop {
            match self.ws.read() {
                Ok(Message::Close(Some(f))) => return u16::from(f.code),
                Ok(Message::Close(None)) => return 1005,
                Ok(_) => continue,
                Err(e) => panic!("no close frame: {e}"),
            }
        }
    }

    /// Writes one raw client frame (masked).
    fn raw(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let f = client_frame(fin, opcode, payload);
        let s = self.ws.get_mut();
        s.write_all(&f).unwrap();
    }

    /// The welcome, then the nick `nick`; returns once the server confirmed it.
    fn nick(&mut self, nick: &str) {
        self.until("welcome", |e| e["type"] == "welcome");
        self.send(serde_json::json!({"type":"nick","nick":nick}));
        self.until("own nick change", |e| {
            e["type"] == "nick" && e["new"] == nick
        });
    }
}

fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A line member (as `nc` would be).
struct Line {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Line {
    fn connect(addr: &str) -> Line {
        let s = tcp(addr);
        s.set_read_timeout(Some(WAIT)).unwrap();
        let w = s.try_clone().unwrap();
        let mut l = Line {
            r: BufReader::new(s),
            w,
        };
        l.expect("* welcome");
        l
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        let n = self.r.read_line(&mut s).expect("a line");
        assert!(n > 0, "the server closed the line member");
        s.trim_end_matches('\n').to_string()
    }

    /// Reads lines until one contains `part`; returns it.
    fn expect(&mut self, part: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no line with {part:?}");
            let l = self.line();
            if l.contains(part) {
                return l;
            }
        }
    }

    fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
    }
}

/// One HTTP request on a fresh connection; the whole response (the server closes).
fn http(addr: &str, request: &str) -> String {
    let mut s = tcp(addr);
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        // Enough for a refused handshake (no body) or a short page.
        if text.contains("\r\n\r\n") && !text.starts_with("HTTP/1.1 200") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn is_rfc3339_ms(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

#[test]
fn a_web_member_and_a_line_member_chat_both_ways() {
    let (_srv, line_addr, web_addr) = web_serve(&["--rate", "0"]);
    let mut web = Web::connect(&web_addr);
    web.nick("webby");
    let mut line = Line::connect(&line_addr);
    line.send("/nick liner");
    line.expect("is now liner");
    web.until("liner's nick", |e| {
        e["type"] == "nick" && e["new"] == "liner"
    });

    line.send("hello web <b>\x1b[31m");
    let ev = web.until("liner's message", |e| e["type"] == "message");
    let obj = ev.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["nick", "room", "seq", "text", "ts", "type"], "{ev}");
    assert_eq!(ev["nick"], "liner");
    assert_eq!(ev["text"], "hello web <b>^[[31m");
    assert_eq!(ev["room"], "lobby");
    assert!(is_rfc3339_ms(&ev["ts"]), "{ev}");
    let first = ev["seq"].as_u64().unwrap();

    web.send(serde_json::json!({"type":"say","text":"hi line \u{202e}x"}));
    assert_eq!(line.expect("<webby>"), "<webby> hi line <U+202E>x");
    // The sender gets its own message back from the room, numbered.
    let own = web.until("own message", |e| e["type"] == "message");
    assert_eq!(own["nick"], "webby");
    assert_eq!(own["text"], "hi line <U+202E>x");
    assert!(own["seq"].as_u64().unwrap() > first, "{own} after {first}");

    line.send("/me waves");
    let act = web.until("action", |e| e["type"] == "action");
    assert_eq!(
        (&act["nick"], &act["text"]),
        (&"liner".into(), &"waves".into())
    );
    assert!(act["seq"].as_u64().unwrap() > own["seq"].as_u64().unwrap());

    web.send(serde_json::json!({"type":"msg","to":"liner","text":"psst"}));
    assert_eq!(line.expect("*webby*"), "*webby* psst");
    let sent = web.until("private echo", |e| e["type"] == "private_sent");
    assert_eq!(
        (&sent["to"], &sent["text"]),
        (&"liner".into(), &"psst".into())
    );
    line.send("/msg webby back");
    let p = web.until("private", |e| e["type"] == "private");
    assert_eq!((&p["from"], &p["text"]), (&"liner".into(), &"back".into()));

    web.send(serde_json::json!({"type":"who"}));
    let who = web.until("members", |e| e["type"] == "members");
    assert_eq!(who["nicks"], serde_json::json!(["liner", "webby"]));
    web.send(serde_json::json!({"type":"rooms"}));
    let rooms = web.until("rooms", |e| e["type"] == "rooms");
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([{"name":"lobby","members":2}])
    );
    web.send(serde_json::json!({"type":"dance"}));
    let err = web.until("error", |e| e["type"] == "error");
    assert_eq!(err["text"], "unknown command type \"dance\"");

    web.send(serde_json::json!({"type":"join","room":"games"}));
    let moved = web.until("moved", |e| e["type"] == "join");
    assert_eq!(
        (&moved["nick"], &moved["room"]),
        (&"webby".into(), &"games".into())
    );
    assert_eq!(line.expect("* webby left"), "* webby left (moved to games)");

    web.send(serde_json::json!({"type":"quit","reason":"bye now"}));
    assert_eq!(web.close_code(), 1000);
}

#[test]
fn fragments_and_a_ping_between_them() {
    let (_srv, line_addr, web_addr) = web_serve(&["--rate", "0"]);
    let mut line = Line::connect(&line_addr);
    let mut web = Web::connect(&web_addr);
    web.nick("frag");
    line.expect("is now frag");

    web.raw(false, 0x1, br#"{"type":"say","#);
    web.raw(false, 0x0, br#""text":"in "#);
    web.raw(true, 0x9, b"mid");
    web.raw(true, 0x0, br#"three parts"}"#);
    // The pong comes back before the message's own copy.
    let pong = loop {
        match web.ws.read().unwrap() {
            Message::Pong(p) => break p,
            Message::Text(t) => panic!("text before the pong: {t}"),
            _ => continue,
        }
    };
    assert_eq!(&pong[..], b"mid");
    assert_eq!(line.expect("<frag>"), "<frag> in three parts");
    let own = web.until("own message", |e| e["type"] == "message");
    assert_eq!(own["text"], "in three parts");
}

#[test]
fn bad_frames_close_with_the_right_status() {
    let (srv, line_addr, web_addr) = web_serve(&["--max-line", "1024"]);
    let mut line = Line::connect(&line_addr);

    // Invalid UTF-8 (split across fragments too): 1007.
    let mut web = Web::connect(&web_addr);
    web.raw(true, 0x1, &[b'{', 0xff, 0xfe, b'}']);
    assert_eq!(web.close_code(), 1007);
    let mut web = Web::connect(&web_addr);
    web.raw(false, 0x1, &[b'a', 0xe2, 0x82]);
    web.raw(true, 0x0, &[0x28]);
    assert_eq!(web.close_code(), 1007);

    // Binary: 1003.
    let mut web = Web::connect(&web_addr);
    web.raw(true, 0x2, b"\x00\x01");
    assert_eq!(web.close_code(), 1003);

    // A message over --max-line, in fragments: 1009.
    let mut web = Web::connect(&web_addr);
    web.raw(false, 0x1, &[b'x'; 800]);
    web.raw(true, 0x0, &[b'x'; 800]);
    assert_eq!(web.close_code(), 1009);

    // A 10 MiB frame: 1009 from its header, and nothing like 10 MiB is held.
    let pid = srv.child.id();
    let base = status_kib(pid, "VmRSS:");
    let mut web = Web::connect(&web_addr);
    let big = client_frame(true, 0x1, &vec![b'x'; 10 << 20]);
    let mut s = web.ws.get_mut().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // The server closes early: the rest of the write may fail.
        let _ = s.write_all(&big);
    });
    assert_eq!(web.close_code(), 1009);
    drop(web);
    writer.join().unwrap();
    let peak = status_kib(pid, "VmHWM:");
    eprintln!("10 MiB frame: RSS {base} KiB before, peak {peak} KiB");
    assert!(
        peak < base + 4 * 1024,
        "peak RSS {peak} KiB, {base} KiB before"
    );

    // Each one left the chat with its reason; the line member saw them go.
    for why in [
        "sent invalid UTF-8",
        "sent invalid UTF-8",
        "sent binary data",
        "sent a message over --max-line",
        "sent a message over --max-line",
    ] {
        let l = line.expect("* guest");
        if l.contains(" joined ") {
            let l = line.expect(" left (");
            assert!(l.ends_with(&format!("left ({why})")), "{l}");
        } else {
            assert!(l.ends_with(&format!("left ({why})")), "{l}");
        }
    }
}

#[test]
fn the_handshake_needs_the_pages_own_origin() {
    let (_srv, _line, web_addr) = web_serve(&[]);
    let req = |origin: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: {web_addr}\r\n{origin}Upgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    let none = http(&web_addr, &req(""));
    assert!(none.starts_with("HTTP/1.1 403"), "{none}");
    let foreign = http(&web_addr, &req("Origin: http://evil.example\r\n"));
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    let own = http(&web_addr, &req(&format!("Origin: http://{web_addr}\r\n")));
    assert!(own.starts_with("HTTP/1.1 101"), "{own}");

    // --web-origin names the allowed origins instead.
    let (_srv, _line, web_addr) = web_serve(&["--web-origin", "https://chat.example"]);
    let allowed = format!(
        "GET /ws HTTP/1.1\r\nHost: {web_addr}\r\nOrigin: https://chat.example\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    assert!(http(&web_addr, &allowed).starts_with("HTTP/1.1 101"));
    let same_host = http(&web_addr, &req(&format!("Origin: http://{web_addr}\r\n")));
    assert!(same_host.starts_with("HTTP/1.1 403"), "{same_host}");
}

#[test]
fn the_page_is_served_with_a_strict_csp() {
    let (_srv, _line, web_addr) = web_serve(&[]);
    let page = http(
        &web_addr,
        &format!("GET / HTTP/1.1\r\nHost: {web_addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page:.200}");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP header");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.contains("<script src=\"chat.js\""), "{page:.2000}");
}

#[test]
fn a_web_member_that_never_reads_is_dropped_with_memory_bounded() {
    const MAX_QUEUE: u64 = 256 * 1024;
    let (srv, line_addr, web_addr) =
        web_serve(&["--rate", "0", "--max-queue", &MAX_QUEUE.to_string()]);
    let pid = srv.child.id();
    let mut talker = Line::connect(&line_addr);
    let mut slow = Web::connect(&web_addr);
    slow.nick("sleepy");
    talker.expect("is now sleepy");
    // From here on the web member reads nothing; its receive buffer is small.
    let _ = socket2::SockRef::from(slow.ws.get_ref()).set_recv_buffer_size(4096);
    let base = status_kib(pid, "VmRSS:");
    let text = "t".repeat(3000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    loop {
        assert!(Instant::now() < deadline, "not dropped after {sent} lines");
        for _ in 0..20 {
            talker.send(&text);
        }
        sent += 20;
        // Other members' lines are not echoed to the talker, only events.
        talker.send("/who");
        let l = talker.expect("* ");
        if l == "* sleepy left (too slow)" {
            break;
        }
    }
    let peak = status_kib(pid, "VmHWM:");
    eprintln!("slow web member dropped after {sent} lines; RSS {base} KiB, peak {peak} KiB");
    assert!(
        peak <= base + 2 * MAX_QUEUE / 1024 + 8 * 1024,
        "peak {peak} KiB from {base} KiB"
    );
}

#[test]
fn the_operator_kicks_a_web_member() {
    let (mut srv, _line, web_addr) = web_serve(&["--console"]);
    let mut web = Web::connect(&web_addr);
    web.nick("pest");
    srv.write(b"/kick pest spam\n");
    let err = web.until("kick notice", |e| e["type"] == "error");
    assert_eq!(err["text"], "you were kicked by server: spam");
    let mut close = None;
    while close.is_none() {
        match web.ws.read() {
            Ok(Message::Close(Some(f))) => close = Some((f.code, f.reason.to_string())),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
    let (code, reason) = close.unwrap();
    assert_eq!(code, CloseCode::Policy);
    assert_eq!(reason, "you were kicked by server: spam");
    srv.wait_stdout(b"* pest left (kicked by server: spam)");
}

#[test]
fn max_clients_counts_web_members() {
    let (_srv, line_addr, web_addr) = web_serve(&["--max-clients", "2"]);
    let _line = Line::connect(&line_addr);
    let mut web = Web::connect(&web_addr);
    web.until("welcome", |e| e["type"] == "welcome");
    // The third, on either listener, is turned away at once.
    let mut s = tcp(&web_addr);
    s.set_read_timeout(Some(WAIT)).unwrap();
    let got = read_all(&mut s);
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{got}"
    );
    assert!(
        got.ends_with("server full (2 clients), try again later\n"),
        "{got}"
    );
    let mut s = tcp(&line_addr);
    s.set_read_timeout(Some(WAIT)).unwrap();
    let got = String::from_utf8_lossy(&read_all(&mut s)).into_owned();
    assert_eq!(got, "! server full (2 clients), try again later\n");
    // A place freed by a web member is taken again.
    web.send(serde_json::json!({"type":"quit"}));
    assert_eq!(web.close_code(), 1000);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = tcp(&web_addr);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            // Nothing at once: the server is waiting for a request.
            Err(_) => break,
            Ok(n) => assert!(
                Instant::now() < deadline,
                "the place was not freed ({n} bytes: server full)"
            ),
        }
    }
}

#[test]
fn a_mixed_room_encodes_each_batch_once_per_protocol_and_shutdown_says_1001() {
    let (srv, line_addr, web_addr) = web_serve(&["-vv", "--rate", "0"]);
    let mut web = Web::connect(&web_addr);
    web.nick("w");
    // The web member's batches so far had no line member to encode for.
    let mut line = Line::connect(&line_addr);
    web.until("line member's join", |e| e["type"] == "join");
    for i in 0..5 {
        line.send(&format!("line {i}"));
        web.send(serde_json::json!({"type":"say","text":format!("web {i}")}));
        web.until("line's message", |e| e["text"] == format!("line {i}"));
        line.expect(&format!("<w> web {i}"));
    }
    srv.signal(libc::SIGTERM);
    let bye = web.until("shutdown notice", |e| e["type"] == "system");
    assert_eq!(bye["text"], "server shutting down");
    assert_eq!(web.close_code(), 1001);
    let (_, _, err) = srv.wait_exit();
    let stats = err
        .lines()
        .find_map(|l| l.split("fan-out: ").nth(1))
        .unwrap_or_else(|| panic!("no fan-out line in {err}"));
    let n: Vec<u64> = stats
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (batches, encodings) = (n[0], n[2]);
    eprintln!("fan-out: {stats}");
    // Before the line member came, each batch had the web encoding only
    // (the web member's welcome batch, its nick change); after, two each.
    let early = 2 * batches - encodings;
    assert!(batches >= 6 && (1..=2).contains(&early), "{stats}");
}

#[test]
fn flood_control_applies_to_web_members() {
    let (_srv, line_addr, web_addr) = web_serve(&["--rate", "0.01", "--burst", "3"]);
    let mut line = Line::connect(&line_addr);
    let mut web = Web::connect(&web_addr);
    web.nick("noisy");
    line.expect("is now noisy");
    for i in 0..6 {
        web.send(serde_json::json!({"type":"say","text":format!("n{i}")}));
    }
    let err = web.until("slow down", |e| e["type"] == "error");
    assert!(
        err["text"].as_str().unwrap().starts_with("slow down"),
        "{err}"
    );
    line.expect("<noisy> n0");
    line.expect("<noisy> n1");
    line.send("/who");
    // The nick change took one token of the burst: nothing past n1 got
    // through before the listing.
    let l = line.line();
    assert!(l.starts_with("* lobby (2)"), "{l}");
}

/// Whether the browser harness can run here: Debian's chromium and
/// chromedriver, and selenium for python3.
fn browser_missing() -> Option<String> {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !std::path::Path::new(bin).exists() {
            return Some(format!(
                "{bin} is missing (apt-get install chromium chromium-driver)"
            ));
        }
    }
    let selenium = std::process::Command::new("python3")
        .args(["-c", "import selenium"])
        .output();
    match selenium {
        Ok(o) if o.status.success() => None,
        _ => Some("python3 cannot import selenium (pip install selenium)".into()),
    }
}

#[test]
fn the_page_in_a_real_browser() {
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if let Some(why) = browser_missing() {
        assert!(!in_ci, "CI is set, so the browser test must run: {why}");
        skipped("chat_web::the_page_in_a_real_browser", &why);
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = format!("{root}/target/browser");
    std::fs::create_dir_all(&out).unwrap();
    // The console is the operator: the script asks for a kick on its stdout.
    let (mut srv, line_addr, web_addr) = web_serve(&["--rate", "0", "--console"]);
    // The restart: stop this server (SIGTERM: the page is told 1001) and,
    // after a pause long enough for the page to show it is disconnected,
    // start another on the same ports; its pid is kept to stop it after.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let restart = format!(
        "kill -TERM {pid}; sleep 1.5; {bin} chat serve --no-history --no-console --web {web_addr} {line_addr} \
         </dev/null >/dev/null 2>&1 & echo $! > {pid_file}",
        pid = srv.child.id(),
        bin = env!("CARGO_BIN_EXE_sockit"),
        pid_file = pid_file.display(),
    );
    let mut script = std::process::Command::new("python3")
        .arg(format!("{root}/tests/browser/chat_browser.py"))
        .args(["--url", &format!("http://{web_addr}/")])
        .args(["--tcp", &line_addr])
        .args(["--out", &out])
        .arg("--kick")
        .args(["--restart-cmd", &restart])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    let (tx, rx) = std::sync::mpsc::channel();
    let script_out = script.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(script_out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut stderr_pipe = script.stderr.take().unwrap();
    let script_err = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = stderr_pipe.read_to_string(&mut e);
        e
    });
    // Every wait in the script is bounded; this bounds the whole of it.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut stdout = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some(nick) = l.strip_prefix("kick: ") {
                    srv.write(format!("/kick {nick} kick test\n").as_bytes());
                }
                stdout.push_str(&l);
                stdout.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = script.kill();
                panic!("the browser script ran over its time:\n{stdout}");
            }
        }
    }
    let status = script.wait().expect("wait for python3");
    let stderr = script_err.join().unwrap_or_default();
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) on the server the restart command started.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    drop(srv);
    eprintln!("{stdout}");
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("browser: "))
        .unwrap_or_else(|| panic!("no summary from the browser script:\n{stdout}\n{stderr}"));
    assert!(
        status.success() && summary.ends_with(" 0 failed"),
        "{summary}\n{stdout}\n{stderr}"
    );
    assert!(std::path::Path::new(&format!("{out}/chat-desktop.png")).exists());
}

#[test]
fn the_web_listener_speaks_wss_with_the_tls_flags() {
    let (srv, line_addr, web_addr) = web_serve(&["--tls-self-signed"]);
    assert!(srv
        .stderr_now()
        .contains(&format!("chat web page on https://{web_addr}/")));
    // sockit connect --tls is the TLS client; the upgrade and one masked
    // frame are written through it.
    let mut c = spawn_connect(&["--tls", "--insecure", &web_addr]);
    let mut req = format!(
        "GET /ws HTTP/1.1\r\nHost: {web_addr}\r\nOrigin: https://{web_addr}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    req.extend(client_frame(
        true,
        0x1,
        br#"{"type":"say","text":"over wss"}"#,
    ));
    // The line listener is TLS too.
    let l = spawn_connect(&["--tls", "--insecure", &line_addr]);
    l.wait_stdout(b"* welcome");
    c.write(&req);
    c.wait_stdout(b"HTTP/1.1 101 Switching Protocols");
    c.wait_stdout(br#""type":"welcome""#);
    l.wait_stdout(b"> over wss\n");
}
