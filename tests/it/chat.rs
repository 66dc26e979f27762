//! `sockit chat serve` through the real binary, with real line clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// alice and bob in the lobby, with alice's view of bob's arrival consumed.
fn pair(addr: &str) -> (ChatClient, ChatClient) {
    let mut a = ChatClient::named(addr, "alice");
    let b = ChatClient::named(addr, "bob");
    a.expect("is now bob");
    (a, b)
}

#[test]
fn messages_reach_others_attributed_and_not_the_sender() {
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let (mut a, mut b) = pair(&addr);
    a.send("hello 你好\n");
    assert_eq!(b.expect("hello"), "<alice> hello 你好");
    b.send("two\nlines\n");
    assert_eq!(a.line(), "<bob> two");
    assert_eq!(a.line(), "<bob> lines");
    b.quiet(Duration::from_millis(300));
}

#[test]
fn split_lines_arrive_whole_and_pauses_flush_partials() {
    let (_srv, addr) = chat_serve(&["--no-console", "--rate", "0", "--flush-partial", "1000"]);
    let (mut a, mut b) = pair(&addr);
    // One byte per write: still one message.
    for byte in b"byte by byte\n" {
        a.send_bytes(&[*byte]);
    }
    assert_eq!(b.expect("<alice>"), "<alice> byte by byte");
    drop(b);
    let (_srv2, addr2) = chat_serve(&["--no-console", "--flush-partial", "100"]);
    let mut c = ChatClient::named(&addr2, "carol");
    // The tutorial's client: text with no newline, then it waits.
    let mut tutorial = TcpStream::connect(&addr2).unwrap();
    tutorial.write_all(b"baihuixin").unwrap();
    let heard = c.expect("baihuixin");
    assert!(
        heard.starts_with("<guest") && heard.ends_with("> baihuixin"),
        "{heard}"
    );
}

#[test]
fn nc_openbsd_is_a_client() {
    require("nc.openbsd");
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let mut a = ChatClient::named(&addr, "alice");
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut nc = Command::new("nc.openbsd");
    nc.args(["-N", host, port]);
    let mut p = Proc::spawn(nc);
    p.wait_stdout(b"* welcome, you are guest");
    p.write(b"/nick netcat\nhi from nc\n");
    assert_eq!(a.expect("from nc"), "<netcat> hi from nc");
    a.send("hi nc\n");
    p.wait_stdout(b"<alice> hi nc\n");
}

#[test]
fn nick_rules_and_commands() {
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let mut a = ChatClient::named(&addr, "alice");
    let mut b = ChatClient::connect(&addr);
    b.send("/nick ALICE\n");
    assert_eq!(b.line(), "! the nick ALICE is taken");
    b.send("/nick <alice>\n");
    assert!(b.line().starts_with("! cannot use that nick"));
    b.send(&format!("/nick {}\n", "x".repeat(33)));
    assert!(b.line().contains("1 to 32"));
    b.send("/nick bob\n");
    assert_eq!(b.line(), format!("* {} is now bob", b.nick));
    assert_eq!(a.expect("is now bob"), format!("* {} is now bob", b.nick));
    b.send("/who\n");
    assert_eq!(b.line(), "* lobby (2): alice, bob");
    b.send("/me waves\n");
    assert_eq!(a.line(), "+ bob waves");
    b.send("/msg alice secret\n");
    assert_eq!(a.line(), "*bob* secret");
    assert_eq!(b.line(), "-> *alice* secret");
    b.send("/msg nobody x\n");
    assert_eq!(b.line(), "! no such nick: nobody");
    b.send("/bogus\n");
    assert_eq!(b.line(), "! unknown command /bogus (try /help)");
    b.send("/help\n");
    assert_eq!(b.line(), "* commands:");
    b.expect("//text");
    b.send("//slash\n");
    assert_eq!(a.expect("slash"), "<bob> /slash");
    b.send("/quit bye now\n");
    assert_eq!(a.expect("left"), "* bob left (quit: bye now)");
    assert_eq!(b.until_eof(), "");
}

#[test]
fn rooms_are_isolated() {
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let (mut a, mut b) = pair(&addr);
    let mut c = ChatClient::named(&addr, "carol");
    a.expect("is now carol");
    b.expect("is now carol");
    c.send("/join games\n");
    assert_eq!(c.line(), "* you are now in games with 0 others");
    a.expect("carol left (moved to games)");
    b.expect("carol left (moved to games)");
    a.send("lobby talk\n");
    assert_eq!(b.line(), "<alice> lobby talk");
    b.send("/join games\n");
    c.expect("* bob joined games");
    c.send("/rooms\n");
    assert_eq!(c.line(), "* rooms (2): games (2), lobby (1)");
    c.send("games talk\n");
    assert_eq!(b.expect("games talk"), "<carol> games talk");
    a.expect("bob left (moved to games)");
    a.quiet(Duration::from_millis(300));
}

#[test]
fn operator_console_talks_sees_and_kicks() {
    let (mut srv, addr) = chat_serve(&["--operator-nick", "op"]);
    let (mut a, mut b) = pair(&addr);
    srv.wait_stdout(b"* guest2 is now bob\n");
    a.send("hello op\n");
    srv.wait_stdout(b"<alice> hello op\n");
    srv.write(b"hello all\n");
    assert_eq!(b.expect("hello all"), "<op> hello all");
    assert_eq!(a.expect("hello all"), "<op> hello all");
    // The operator sees joins and leaves in every room.
    b.send("/join side\n");
    srv.wait_stdout(b"* bob joined side\n");
    srv.write(b"/kick bob spamming\n");
    assert_eq!(b.expect("kicked"), "! you were kicked by op: spamming");
    assert_eq!(b.until_eof(), "");
    srv.wait_stdout(b"* bob left (kicked by op: spamming)\n");
    a.send("/kick op\n");
    assert_eq!(a.expect("/kick"), "! /kick is for the server operator");
}

#[test]
fn hostile_text_is_neutralised() {
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let (mut a, mut b) = pair(&addr);
    b.send_bytes(b"\x1b[2J\x1b]0;owned\x07 nul\0 bad\xff utf8 ok\n");
    assert_eq!(
        a.line(),
        "<bob> ^[[2J^[]0;owned^G nul^@ bad\u{fffd} utf8 ok"
    );
    b.send_bytes(b"innocent\r<alice> I owe bob $100\n");
    assert_eq!(a.line(), "<bob> innocent^M<alice> I owe bob $100");
    b.send("bidi \u{202e}txet\n");
    assert_eq!(a.line(), "<bob> bidi <U+202E>txet");
}

#[test]
fn long_lines_are_dropped_and_the_connection_survives() {
    let (srv, addr) = chat_serve(&["--no-console", "--max-line", "100"]);
    let (mut a, mut b) = pair(&addr);
    b.send(&format!("{}\n", "y".repeat(100)));
    assert_eq!(a.line(), format!("<bob> {}", "y".repeat(100)));
    b.send(&format!("{}\nafter\n", "x".repeat(101)));
    assert_eq!(b.line(), "! line dropped: longer than 100 bytes");
    assert_eq!(a.line(), "<bob> after");
    // 10 MiB with no newline: one error, memory stays bounded, next line read.
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..10 {
        b.send_bytes(&chunk);
    }
    b.send("\nstill here\n");
    assert_eq!(b.line(), "! line dropped: longer than 100 bytes");
    assert_eq!(a.line(), "<bob> still here");
    let rss = rss_kib(srv.child.id());
    assert!(rss < 64 * 1024, "server RSS {rss} KiB");
}

#[test]
fn stalled_readers_are_dropped_and_others_keep_up() {
    let (srv, addr) = chat_serve(&["--no-console", "--rate", "0"]);
    let (mut a, b) = pair(&addr);
    let mut b = b;
    // Clients that never read, with small receive buffers so that the kernel
    // does not absorb megabytes for them before the server's queue cap bites.
    let stalled: Vec<socket2::Socket> = (0..100)
        .map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_recv_buffer_size(4096).unwrap();
            let to: std::net::SocketAddr = addr.parse().unwrap();
            s.connect(&to.into()).unwrap();
            s
        })
        .collect();
    // bob reads on his own thread, as a real client would, while alice floods.
    const N: usize = 8000;
    let reader = std::thread::spawn(move || {
        let (mut got, mut slow) = (0usize, 0usize);
        loop {
            let l = b.line();
            if l == "<alice> done" {
                return (got, slow);
            } else if l.starts_with("<alice>") {
                got += 1;
            } else if l.starts_with("* guest") && l.ends_with(" left (too slow)") {
                slow += 1;
            }
        }
    });
    // 8 MB: more than a stalled client's kernel buffers plus its 1 MiB queue.
    let line = format!("{}\n", "m".repeat(1000));
    for _ in 0..N {
        a.send(&line);
    }
    a.send("done\n");
    let (got, slow) = reader.join().unwrap();
    assert_eq!(
        (got, slow),
        (N, 100),
        "every message reaches bob, every stalled reader is dropped"
    );
    let rss = rss_kib(srv.child.id());
    assert!(
        rss < 64 * 1024,
        "server RSS {rss} KiB with 100 stalled readers"
    );
    drop(stalled);
}

#[test]
fn flood_control_drops_excess_and_tells_the_sender() {
    // Refill is 1 line per 100 s, so the test does not depend on timing.
    let (_srv, addr) = chat_serve(&["--no-console", "--rate", "0.01", "--burst", "5"]);
    let (mut a, mut b) = pair(&addr);
    let burst: String = (0..12).map(|i| format!("msg {i}\n")).collect();
    b.send(&burst);
    assert!(b
        .expect("slow down")
        .starts_with("! slow down: more than 0.01 lines/s"));
    for i in 0..4 {
        // The first few fit the burst (one token went to /nick).
        assert_eq!(a.line(), format!("<bob> msg {i}"));
    }
    a.quiet(Duration::from_millis(300));
    // Sustained abuse ends the connection.
    let more: String = (0..50).map(|i| format!("more {i}\n")).collect();
    b.send(&more);
    assert_eq!(a.expect("left"), "* bob left (flooding)");
}

#[test]
fn connect_flood_and_resets_do_not_hurt_others() {
    let (_srv, addr) = chat_serve(&["--no-console", "--max-clients", "3000"]);
    let (mut a, mut b) = pair(&addr);
    let mut flood = Vec::new();
    for _ in 0..2000 {
        match TcpStream::connect(&addr) {
            Ok(s) => flood.push(s),
            Err(e) => panic!("connect {}: {e}", flood.len()),
        }
    }
    // Abrupt resets mid-line.
    for s in flood.iter_mut().take(500) {
        let _ = s.write_all(b"half a li");
        let sock = socket2::SockRef::from(&*s);
        sock.set_linger(Some(Duration::ZERO)).unwrap();
    }
    flood.truncate(0);
    a.send("still fine\n");
    assert_eq!(b.expect("still fine"), "<alice> still fine");
}

#[test]
fn max_clients_refuses_with_a_line() {
    let (_srv, addr) = chat_serve(&["--no-console", "--max-clients", "2"]);
    let _a = ChatClient::connect(&addr);
    let _b = ChatClient::connect(&addr);
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert_eq!(s, "! server full (2 clients), try again later\n");
}

#[test]
fn shutdown_tells_everyone_and_exits_zero() {
    let (srv, addr) = chat_serve(&["--no-console"]);
    let mut a = ChatClient::connect(&addr);
    let mut b = ChatClient::connect(&addr);
    a.expect("joined lobby");
    srv.signal(libc::SIGTERM);
    assert_eq!(a.until_eof(), "* server shutting down\n");
    assert!(b.until_eof().ends_with("* server shutting down\n"));
    let (st, _, _) = srv.wait_exit();
    assert!(st.success(), "{st:?}");
    a.shutdown(Shutdown::Both);
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn unix_socket_clients_get_every_line_in_order() {
    use std::os::unix::net::UnixStream;
    let (_dir, path) = sock_path("chat.sock");
    let (_srv, _) = chat_serve(&["--no-console", "--rate", "0", &format!("unix:{path}")]);
    let open = || {
        let s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut welcome = String::new();
        r.read_line(&mut welcome).unwrap();
        assert!(welcome.starts_with("* welcome, you are guest"), "{welcome}");
        (s, r)
    };
    let (mut a, mut a_lines) = open();
    let (_b, mut b_lines) = open();
    let mut joined = String::new();
    a_lines.read_line(&mut joined).unwrap();
    assert_eq!(joined, "* guest2 joined lobby\n");
    // About 700 KB for b, sent while b does not read: the first part fills b's
    // socket buffer through direct writes, the rest waits in b's queue (under
    // the 1 MiB cap). All of it arrives, in order, once.
    let lines = 25_000;
    let payload: String = (0..lines).map(|i| format!("line {i:05}\n")).collect();
    a.write_all(payload.as_bytes()).unwrap();
    a.write_all(b"/who\n").unwrap();
    let mut who = String::new();
    a_lines.read_line(&mut who).unwrap();
    assert!(who.starts_with("* lobby (2): "), "{who}");
    for i in 0..lines {
        let mut l = String::new();
        b_lines.read_line(&mut l).unwrap();
        assert_eq!(l, format!("<guest1> line {i:05}\n"));
    }
    // The sender never hears its own lines.
    a_lines
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut extra = String::new();
    assert!(a_lines.read_line(&mut extra).is_err(), "{extra:?}");
}

/// The whole line protocol as an `nc` user sees it, byte for byte: the hub
/// now carries events and the line front-end writes them, and none of these
/// lines may change.
#[test]
fn every_line_form_is_what_nc_users_always_got() {
    let (_srv, addr) = chat_serve(&["--no-console", "--rate", "0"]);
    let mut a = ChatClient::connect(&addr);
    let mut b = ChatClient::connect(&addr);
    let (ga, gb) = (a.nick.clone(), b.nick.clone());
    assert_eq!(a.line(), format!("* {gb} joined lobby"));
    a.send("/nick alice\n");
    assert_eq!(a.line(), format!("* {ga} is now alice"));
    assert_eq!(b.line(), format!("* {ga} is now alice"));
    b.send("/nick [bob]\n");
    assert_eq!(b.line(), format!("* {gb} is now [bob]"));
    assert_eq!(a.line(), format!("* {gb} is now [bob]"));
    a.send("hi all\n/me waves\n//not a command\n");
    assert_eq!(b.line(), "<alice> hi all");
    assert_eq!(b.line(), "+ alice waves");
    assert_eq!(b.line(), "<alice> /not a command");
    a.send("/msg [BOB] psst\n");
    assert_eq!(a.line(), "-> *[bob]* psst");
    assert_eq!(b.line(), "*alice* psst");
    a.send("/who\n");
    assert_eq!(a.line(), "* lobby (2): [bob], alice");
    a.send("/frob\n/msg x\n/nick a.b\n/nick [BOB]\n/msg nobody hi\n/msg alice hi\n");
    assert_eq!(a.line(), "! unknown command /frob (try /help)");
    assert_eq!(a.line(), "! usage: /msg NICK text");
    assert!(a
        .line()
        .starts_with("! cannot use that nick: '.' is not allowed in a nick"));
    assert_eq!(a.line(), "! the nick [BOB] is taken");
    assert_eq!(a.line(), "! no such nick: nobody");
    assert_eq!(a.line(), "! that is you");
    a.send("/kick [bob]\n");
    assert_eq!(a.line(), "! /kick is for the server operator");
    b.send("/join games\n");
    assert_eq!(b.line(), "* you are now in games with 0 others");
    assert_eq!(a.line(), "* [bob] left (moved to games)");
    b.send("/rooms\n");
    assert_eq!(b.line(), "* rooms (2): games (1), lobby (1)");
    b.send("/join games\n");
    assert_eq!(b.line(), "! you are already in games");
    a.send("/join games\n");
    assert_eq!(a.line(), "* you are now in games with 1 other");
    assert_eq!(b.line(), "* alice joined games");
    a.send("/help\n");
    assert_eq!(a.line(), "* commands:");
    let help: Vec<String> = (0..9).map(|_| a.line()).collect();
    assert!(help.iter().all(|l| l.starts_with("*   ")), "{help:?}");
    assert!(help.iter().any(|l| l.contains("[]\\`_^{|}")), "{help:?}");
    b.send("/quit bye now\n");
    assert_eq!(a.line(), "* [bob] left (quit: bye now)");
    assert_eq!(b.until_eof(), "");
}
