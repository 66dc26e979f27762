//! `sockit chat serve` under attack: memory and client caps that hold, text
//! that cannot hide, nicks that cannot be taken.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Pairs of members, each pair alone in its room. The first of a pair has a
/// full socket and never reads, and keeps sending big lines; its partner
/// sends a short line each round and reads. Each short line reaches the slow
/// member as a piece of a room batch that also holds the slow member's own
/// big lines: queued as a slice, it kept the whole batch alive while counting
/// only its own length. The server must stay within clients x --max-queue
/// plus a fixed overhead, and drop the slow members as too slow.
#[test]
fn a_slow_member_cannot_pin_room_batches_past_its_queue_cap() {
    const PAIRS: usize = 8;
    const MAX_QUEUE: u64 = 512 * 1024;
    let (_dir, path) = sock_path("chat.sock");
    let (srv, _) = chat_serve(&[
        &format!("unix:{path}"),
        "--no-console",
        "--rate",
        "0",
        "--max-line",
        "4096",
        "--max-queue",
        &MAX_QUEUE.to_string(),
    ]);
    let pid = srv.child.id();
    let mut pairs: Vec<(ChatClient, ChatClient)> = (0..PAIRS)
        .map(|i| {
            let mut slow = ChatClient::unix(&path);
            slow.send_bytes(format!("/join room{i}\n").as_bytes());
            slow.expect(&format!("you are now in room{i}"));
            let mut fast = ChatClient::unix(&path);
            fast.send_bytes(format!("/join room{i}\n").as_bytes());
            fast.expect(&format!("you are now in room{i}"));
            (slow, fast)
        })
        .collect();
    let base = status_kib(pid, "VmRSS:");

    // Fill each slow member's socket once: a Unix stream holds at most the
    // server's send buffer (wmem_default, of which one more write may take
    // half again), so this much is certain to leave the socket full and the
    // rest (well under the cap) queued.
    let wmem: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992);
    let big = format!("{}\n", "f".repeat(3999));
    for (_, fast) in pairs.iter_mut() {
        for _ in 0..(wmem * 3 / 2 + 32 * 1024) / big.len() {
            fast.send_bytes(big.as_bytes());
        }
    }

    let slow_lines = format!("{}\n", "s".repeat(3999)).repeat(4);
    let short = format!("{}\n", "p".repeat(1000));
    let mut dropped = vec![false; PAIRS];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    while !dropped.iter().all(|d| *d) {
        assert!(
            Instant::now() < deadline,
            "slow members not dropped after {rounds} rounds: {dropped:?}"
        );
        rounds += 1;
        for (i, (slow, fast)) in pairs.iter_mut().enumerate() {
            if !dropped[i] {
                // The server may have closed it already.
                let _ = slow.try_send_bytes(slow_lines.as_bytes());
                fast.send_bytes(short.as_bytes());
            }
        }
        for (i, (slow, fast)) in pairs.iter_mut().enumerate() {
            if dropped[i] {
                continue;
            }
            let mut got = 0;
            while got < 4 {
                let l = fast.line();
                if l == format!("* {} left (too slow)", slow.nick) {
                    dropped[i] = true;
                    break;
                }
                assert!(l.starts_with(&format!("<{}> ", slow.nick)), "{l:.80}");
                got += 1;
            }
        }
    }
    let peak = status_kib(pid, "VmHWM:");
    let bound = base + 2 * PAIRS as u64 * MAX_QUEUE / 1024 + 12 * 1024;
    eprintln!("{rounds} rounds; RSS {base} KiB before, peak {peak} KiB, bound {bound} KiB");
    assert!(
        peak <= bound,
        "peak RSS {peak} KiB over {bound} KiB ({rounds} rounds)"
    );
}

/// The first bytes of a TLS ClientHello, and then nothing.
const HELLO_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];

#[test]
fn stalled_tls_handshakes_count_against_max_clients() {
    const MAX: usize = 4;
    const STALLED: usize = 60;
    let (srv, addr) = chat_serve(&[
        "--no-console",
        "--tls-self-signed",
        "--max-clients",
        &MAX.to_string(),
        "--handshake-timeout",
        "60",
    ]);
    let pid = srv.child.id();
    let fds_before = open_fds(pid);
    let mut stalled: Vec<TcpStream> = (0..MAX + STALLED)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(HELLO_START).unwrap();
            s
        })
        .collect();
    // Those over the cap are refused at once, not after their handshake.
    srv.wait_stderr_count("clients already (--max-clients)", STALLED);
    for s in &mut stalled[MAX..] {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("over-cap connection not closed: {other:?}"),
        }
    }
    let fds = open_fds(pid);
    assert!(
        fds <= fds_before + MAX + 2,
        "{fds} fds open, {fds_before} before {} connections",
        MAX + STALLED
    );

    // A real client while the cap is taken: turned away quickly.
    let started = Instant::now();
    let out = run(
        &["chat", "join", "--tls", "--insecure", "-w", "5", &addr],
        b"",
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{out:?}");

    // Once the stalled ones go, the permits come back.
    drop(stalled);
    let deadline = Instant::now() + WAIT;
    loop {
        let out = run(
            &["chat", "join", "--tls", "--insecure", "-w", "5", &addr],
            b"/quit\n",
        );
        if String::from_utf8_lossy(&out.stdout).contains("welcome, you are guest") {
            break;
        }
        assert!(Instant::now() < deadline, "never served: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn who_lists_at_most_200_sorted_without_case() {
    let (_srv, addr) = chat_serve(&["--no-console", "--rate", "0"]);
    let mut first = ChatClient::connect(&addr);
    let mut others: Vec<ChatClient> = (0..200).map(|_| ChatClient::connect(&addr)).collect();
    let last = others.last().unwrap().nick.clone();
    first.expect(&format!("{last} joined"));
    // Renamed members are listed under their new nick, sorted without case.
    first.send_bytes(b"/nick bcd\n");
    first.expect("is now bcd");
    others[10].send_bytes(b"/nick Abc\n");
    first.expect("is now Abc");

    let mut all: Vec<String> = others.iter().map(|p| p.nick.clone()).collect();
    all[10] = "Abc".into();
    all.push("bcd".into());
    all.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(&all[..2], ["Abc", "bcd"]);

    first.send_bytes(b"/who\n");
    let l = first.expect("* lobby (");
    let listed = l
        .strip_prefix("* lobby (201): ")
        .unwrap_or_else(|| panic!("{l:.80}"));
    let listed = listed
        .strip_suffix(", ... and 1 more")
        .unwrap_or_else(|| panic!("{l:.80}"));
    let names: Vec<&str> = listed.split(", ").collect();
    assert_eq!(names, all[..200]);

    // At exactly 200, everyone is listed and nothing is cut.
    let gone = others.pop().unwrap();
    drop(gone);
    first.expect(&format!("* {last} left"));
    first.send_bytes(b"/who\n");
    let l = first.expect("* lobby (");
    let listed = l
        .strip_prefix("* lobby (200): ")
        .unwrap_or_else(|| panic!("{l:.80}"));
    all.retain(|n| *n != last);
    assert_eq!(listed.split(", ").collect::<Vec<_>>(), all);
}

#[test]
fn invisible_characters_reach_peers_visible() {
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let mut a = ChatClient::connect(&addr);
    let mut b = ChatClient::connect(&addr);
    a.expect("joined lobby");
    a.send_bytes(
        "soft\u{ad}hyphen \u{3164} \u{115f}\u{1160}\u{ffa0} mvs\u{180e} tag\u{e0041}\u{e007f}\n"
            .as_bytes(),
    );
    assert_eq!(
        b.line(),
        format!(
            "<{}> soft<U+00AD>hyphen <U+3164> <U+115F><U+1160><U+FFA0> mvs<U+180E> tag<U+E0041><U+E007F>",
            a.nick
        )
    );
}

#[test]
fn a_partial_line_flush_never_splits_a_character() {
    let (_srv, addr) = chat_serve(&["--no-console", "--flush-partial", "100"]);
    let mut a = ChatClient::connect(&addr);
    let mut b = ChatClient::connect(&addr);
    a.expect("joined lobby");
    let zhong = "中".as_bytes();
    // Text and the first two bytes of a character, then a pause past the flush.
    let mut data = b"x".to_vec();
    data.extend_from_slice(&zhong[..2]);
    a.send_bytes(&data);
    assert_eq!(b.line(), format!("<{}> x", a.nick));
    // Only the unfinished character is left: it waits however long it takes.
    std::thread::sleep(Duration::from_millis(400));
    a.send_bytes(&[zhong[2]]);
    a.send_bytes("文\n".as_bytes());
    assert_eq!(b.line(), format!("<{}> 中文", a.nick));
}

#[test]
fn the_operator_nick_is_reserved_without_a_console() {
    let (_srv, addr) = chat_serve(&["--no-console"]);
    let mut a = ChatClient::connect(&addr);
    for nick in ["server", "SERVER"] {
        a.send_bytes(format!("/nick {nick}\n").as_bytes());
        assert_eq!(a.line(), format!("! the nick {nick} is taken"));
    }
    let (_srv, addr) = chat_serve(&["--no-console", "--operator-nick", "admin"]);
    let mut a = ChatClient::connect(&addr);
    a.send_bytes(b"/nick Admin\n");
    assert_eq!(a.line(), "! the nick Admin is taken");
    a.send_bytes(b"/nick server\n");
    assert_eq!(a.line(), format!("* {} is now server", a.nick));
}
