//! Listener limits through the real binary: `--max-conns`, access lists (flags and
//! files), `--max-queue` for slow fan-out members, `--backlog`, bad CIDRs.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// Reads what a refused client gets: EOF, or a reset if it had sent something
/// the listener never read. Returns the bytes seen before that (must be none).
fn refused_read(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("refused client: {e}"),
        }
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn max_conns_closes_extra_clients_until_one_leaves() {
    let (mut l, addr) = listen(&["-k", "-m", "2", "127.0.0.1:0"]);
    let mut a = tcp(&addr);
    a.write_all(b"a\n").unwrap();
    l.wait_stdout(b"a\n");
    let mut b = tcp(&addr);
    b.write_all(b"b\n").unwrap();
    l.wait_stdout(b"b\n");

    // The third is accepted and closed at once, unread.
    let mut c = tcp(&addr);
    let t0 = Instant::now();
    assert_eq!(read_all(&mut c), b"");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "EOF took {:?}",
        t0.elapsed()
    );
    let refusal = format!(
        "refused {}: 2 connections already (-m/--max-conns)",
        c.local_addr().unwrap()
    );
    l.wait_stderr(&refusal);

    l.write(b"x\n");
    assert_eq!(read_n(&mut a, 2), b"x\n");
    assert_eq!(read_n(&mut b, 2), b"x\n");

    // One leaves; a newcomer is served. The slot frees when the departed
    // client's task ends, just after it is logged: a newcomer that still
    // finds it taken is refused (and logged), so try again then.
    let gone = format!("{} disconnected", a.local_addr().unwrap());
    drop(a);
    l.wait_stderr(&gone);
    let deadline = Instant::now() + WAIT;
    let mut attempt = 0;
    let mut d = loop {
        assert!(
            Instant::now() < deadline,
            "no newcomer served: {}",
            l.stderr_now()
        );
        let refused_before = count(&l.stderr_now(), "connections already");
        let mut d = tcp(&addr);
        let line = format!("d{attempt}\n");
        let _ = d.write_all(line.as_bytes());
        let served = loop {
            if l.stdout_within(line.as_bytes(), Duration::from_millis(50)) {
                break true;
            }
            assert!(Instant::now() < deadline, "stderr: {}", l.stderr_now());
            if count(&l.stderr_now(), "connections already") > refused_before {
                break false;
            }
        };
        if served {
            break d;
        }
        attempt += 1;
    };
    l.write(b"y\n");
    assert_eq!(read_n(&mut b, 2), b"y\n");
    assert_eq!(read_n(&mut d, 2), b"y\n");
    assert_eq!(read_all(&mut c), b"");
}

#[test]
fn allow_serves_only_the_listed_host() {
    let (mut l, addr) = listen(&["-k", "--allow", "127.0.0.2 ", "127.0.0.1:0"]);
    // A silent client from 127.0.0.1: closed, clean EOF.
    let mut quiet = tcp(&addr);
    l.wait_stderr(&format!(
        "refused {} (access list)",
        quiet.local_addr().unwrap()
    ));
    assert_eq!(read_all(&mut quiet), b"");
    // One that talks: its bytes are never read.
    let mut talker = tcp(&addr);
    let _ = talker.write_all(b"secret\n");
    l.wait_stderr(&format!(
        "refused {} (access list)",
        talker.local_addr().unwrap()
    ));
    assert_eq!(refused_read(&mut talker), b"");

    let mut good = tcp_from("127.0.0.2", &addr);
    good.write_all(b"allowed\n").unwrap();
    l.wait_stdout(b"allowed\n");
    l.write(b"welcome\n");
    assert_eq!(read_n(&mut good, 8), b"welcome\n");
    let err = l.wait_stderr(&format!("connection from {}", good.local_addr().unwrap()));
    assert_eq!(count(&err, "(access list)"), 2, "stderr: {err}");
    assert_eq!(l.stdout_now(), b"allowed\n");
}

#[test]
fn deny_refuses_the_listed_host_even_for_a_single_client_listener() {
    // Without -k: a refused peer does not use up the one connection.
    let (mut l, addr) = listen(&["--deny", "127.0.0.1", "127.0.0.1:0"]);
    // Nothing to send: the listener ends with its client.
    l.close_stdin();
    let mut bad = tcp(&addr);
    let _ = bad.write_all(b"secret\n");
    l.wait_stderr(&format!(
        "refused {} (access list)",
        bad.local_addr().unwrap()
    ));
    assert_eq!(refused_read(&mut bad), b"");

    let mut good = tcp_from("127.0.0.2", &addr);
    good.write_all(b"served\n").unwrap();
    good.shutdown(Shutdown::Write).unwrap();
    l.wait_stdout(b"served\n");
    assert_eq!(read_all(&mut good), b"");
    let (status, out, err) = l.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_eq!(out, b"served\n");
}

#[test]
fn access_list_files_with_comments() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow");
    let deny = dir.path().join("deny");
    std::fs::write(
        &allow,
        "# loopback only\n\n  127.0.0.0/8   # the whole block\n",
    )
    .unwrap();
    std::fs::write(&deny, "# except this one\n127.0.0.1\n# 127.0.0.2\n").unwrap();
    let (l, addr) = listen(&[
        "--echo",
        "--allow-file",
        allow.to_str().unwrap(),
        "--deny-file",
        deny.to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let mut bad = tcp(&addr);
    l.wait_stderr(&format!(
        "refused {} (access list)",
        bad.local_addr().unwrap()
    ));
    assert_eq!(read_all(&mut bad), b"");

    let mut good = tcp_from("127.0.0.2", &addr);
    good.write_all(b"echo me").unwrap();
    good.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut good), b"echo me");
}

#[test]
fn a_bad_entry_in_an_access_list_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow");
    std::fs::write(&allow, "127.0.0.1 # fine\n10.0.0.300\n").unwrap();
    let out = run(
        &[
            "listen",
            "--allow-file",
            allow.to_str().unwrap(),
            "127.0.0.1:0",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("invalid address or CIDR '10.0.0.300'"),
        "stderr: {}",
        stderr_of(&out)
    );
}

#[test]
fn bad_cidr_is_a_usage_error() {
    for (flag, value) in [
        ("--allow", "10.0.0.0/33"),
        ("--deny", "nope"),
        ("--allow", "::1/129"),
    ] {
        let out = run(&["listen", flag, value, "127.0.0.1:0"], b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr_of(&out)
        );
        assert!(
            stderr_of(&out).contains(&format!("invalid address or CIDR '{value}'")),
            "stderr: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn access_lists_do_not_apply_to_unix_sockets() {
    let (_d, path) = sock_path("acl.sock");
    let out = run(
        &["listen", "--allow", "127.0.0.1", &format!("unix:{path}")],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(&out));
    assert!(stderr_of(&out).contains("do not apply to Unix sockets"));
}

#[test]
fn max_queue_drops_a_client_that_never_reads() {
    let (l, addr) = listen(&["--broker", "--max-queue", "262144", "127.0.0.1:0"]);
    let mut c: Vec<TcpStream> = (0..3).map(|_| tcp(&addr)).collect();
    l.wait_stderr_count("connection from", 3);
    hub_sync(&mut c);
    let mut lazy = c.pop().unwrap();
    let mut reader = c.pop().unwrap();
    let mut sender = c.pop().unwrap();
    let lazy_addr = lazy.local_addr().unwrap().to_string();

    // The sender floods in 64 KiB rounds, each read in full by the reader before
    // the next, so only the lazy client falls behind.
    const CHUNK: usize = 64 * 1024;
    const MAX_ROUNDS: usize = 1024; // 64 MiB: far more than kernel buffers hold
    let mut sent = Vec::new();
    let mut extra_rounds = None;
    for round in 0.. {
        assert!(
            round < MAX_ROUNDS,
            "the lazy client was never dropped: {}",
            l.stderr_now()
        );
        let chunk = random_bytes(CHUNK, round as u64 + 1);
        sender.write_all(&chunk).unwrap();
        let got = read_n(&mut reader, CHUNK);
        assert!(got == chunk, "round {round}: reader got different bytes");
        sent.extend_from_slice(&chunk);
        match extra_rounds {
            // Keep going a while after the drop: the others are unaffected.
            Some(0) => break,
            Some(ref mut n) => *n -= 1,
            None if l.stderr_now().contains("too slow") => extra_rounds = Some(16),
            None => {}
        }
    }
    let err = l.stderr_now();
    assert!(
        err.contains(&format!(
            "dropping {lazy_addr}: more than 262144 bytes waiting (too slow)"
        )),
        "stderr: {err}"
    );

    // The lazy client is disconnected without having to read first; what it
    // finally reads is a prefix of the stream, then EOF.
    l.wait_stderr(&format!("{lazy_addr} disconnected: too slow"));
    let got = read_all(&mut lazy);
    assert!(got.len() < sent.len(), "lazy client got everything");
    assert!(got == sent[..got.len()], "lazy client got different bytes");
}

#[test]
fn backlog_is_passed_to_listen() {
    require("ss");
    let (_l, addr) = listen(&["--backlog", "7", "--echo", "127.0.0.1:0"]);
    let port = addr.rsplit(':').next().unwrap();
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&addr))
        .unwrap_or_else(|| panic!("{addr} not in ss output {text:?}"));
    // LISTEN  Recv-Q  Send-Q(=backlog)  Local  Peer
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[2], "7", "ss line: {line}");

    let mut c = tcp(&addr);
    c.write_all(b"still works").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"still works");
}
