//! `listen` under attack, through the real binary: access lists on every kind of
//! listener (UDP datagrams, IPv4-mapped forms), memory per connection bounded
//! whatever the input shape, slow fan-out members, exec children that outlive
//! their client.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use crate::util::*;

fn udp_from(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).expect("datagram within the time limit");
    buf[..n].to_vec()
}

/// Asserts nothing is waiting on `s` (call once the server has provably moved on).
fn nothing_waiting(s: &UdpSocket) {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    match s.recv(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected nothing, got {other:?}"),
    }
    s.set_nonblocking(false).unwrap();
}

// ---- access lists on datagram listeners ----

#[test]
fn udp_echo_drops_datagrams_from_denied_peers() {
    let (l, addr) = listen(&["-u", "--echo", "--deny", "127.0.0.1", "127.0.0.1:0"]);
    let denied = udp_from("127.0.0.1");
    denied.send_to(b"evil", &addr).unwrap();
    l.wait_stderr(&format!(
        "dropped 4 bytes from {} (access list)",
        denied.local_addr().unwrap()
    ));
    let allowed = udp_from("127.0.0.2");
    allowed.send_to(b"good", &addr).unwrap();
    assert_eq!(recv(&allowed), b"good");
    // The denied datagram came first: any reply to it would be here by now.
    nothing_waiting(&denied);
}

#[test]
fn udp_stdio_prints_only_allowed_peers() {
    let (mut l, addr) = listen(&["-u", "--allow", "127.0.0.2", "127.0.0.1:0"]);
    let denied = udp_from("127.0.0.1");
    denied.send_to(b"secret\n", &addr).unwrap();
    l.wait_stderr("(access list)");
    let allowed = udp_from("127.0.0.2");
    allowed.send_to(b"public\n", &addr).unwrap();
    l.wait_stdout(b"public\n");
    // stdin replies go to the last allowed sender, never to the denied one.
    l.write(b"reply\n");
    assert_eq!(recv(&allowed), b"reply\n");
    nothing_waiting(&denied);
    assert_eq!(l.stdout_now(), b"public\n");
}

#[test]
fn udp_broker_obeys_the_access_list_and_caps_its_fan_out() {
    let (l, addr) = listen(&[
        "-u",
        "--broker",
        "--udp-broker-peers",
        "2",
        "--deny",
        "127.0.0.4",
        "127.0.0.1:0",
    ]);
    let a = udp_from("127.0.0.1");
    let b = udp_from("127.0.0.2");
    let c = udp_from("127.0.0.3");
    let denied = udp_from("127.0.0.4");
    // a and b join: a hears b.
    a.send_to(b"a1", &addr).unwrap();
    b.send_to(b"b1", &addr).unwrap();
    assert_eq!(recv(&a), b"b1");
    // The list is full: c's datagram goes nowhere, and c gets nothing.
    c.send_to(b"c1", &addr).unwrap();
    l.wait_stderr("peers already (--udp-broker-peers)");
    denied.send_to(b"d1", &addr).unwrap();
    l.wait_stderr("(access list)");
    a.send_to(b"a2", &addr).unwrap();
    assert_eq!(recv(&b), b"a2");
    b.send_to(b"b2", &addr).unwrap();
    // a's next datagram is b2: neither c1 nor d1 was forwarded.
    assert_eq!(recv(&a), b"b2");
    nothing_waiting(&c);
    nothing_waiting(&denied);
}

// ---- IPv4-mapped rules on a dual-stack listener ----

/// A dual-stack `[::]` listener, or why there is none.
fn dual_stack() -> Result<(), String> {
    let l = TcpListener::bind("[::]:0").map_err(|e| format!("no IPv6: {e}"))?;
    let port = l.local_addr().unwrap().port();
    TcpStream::connect(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| format!("[::] is not dual-stack here: {e}"))
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap().to_string()
}

#[test]
fn mapped_rules_match_ipv4_clients_of_a_dual_stack_listener() {
    if let Err(why) = dual_stack() {
        println!("skipped: {why}");
        return;
    }
    // A mapped deny rule refuses the plain IPv4 client.
    let (l, addr) = listen(&["-k", "--deny", "::ffff:127.0.0.1/128", "[::]:0"]);
    let v4 = format!("127.0.0.1:{}", port_of(&addr));
    let mut bad = tcp(&v4);
    let _ = bad.write_all(b"secret\n");
    l.wait_stderr("(access list)");
    let mut got = Vec::new();
    match bad.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("refused client: {e}"),
    }
    assert_eq!(got, b"");
    assert_eq!(l.stdout_now(), b"");
    drop(l);

    // A mapped allow network lets it in.
    let (l, addr) = listen(&["-k", "--allow", "::ffff:127.0.0.0/104", "[::]:0"]);
    let mut good = tcp(&format!("127.0.0.1:{}", port_of(&addr)));
    good.write_all(b"served\n").unwrap();
    l.wait_stdout(b"served\n");
    assert!(!l.stderr_now().contains("(access list)"));
}

// ---- memory per connection: greet and echo ----

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Waits (bounded) until process `pid` stops using CPU for 300 ms: every
/// client is stalled and the server has done what it will with their bytes.
fn wait_idle(pid: u32) {
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the command name: state is 3rd, utime 14th, stime 15th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let deadline = std::time::Instant::now() + WAIT;
    let (mut last, mut still) = (cpu(), 0);
    while still < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "server never went idle"
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = cpu();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
}

#[derive(Clone, Copy)]
enum Shape {
    /// Nothing but `\n`: the most replies per byte.
    Newlines,
    /// One endless line.
    NoNewline,
    /// `\n` one byte per write.
    OneByte,
}

/// A client that sends `shape` until the server stops taking it (a write
/// blocks for 300 ms) or `cap` bytes went out, and never reads. The socket is
/// returned open, so the server keeps whatever it holds for it.
fn flood(addr: &str, shape: Shape, cap: usize) -> TcpStream {
    let mut s = tcp(addr);
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let chunk = match shape {
        Shape::Newlines => vec![b'\n'; 64 * 1024],
        Shape::NoNewline => vec![b'x'; 64 * 1024],
        Shape::OneByte => vec![b'\n'],
    };
    let mut sent = 0;
    while sent < cap {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("flood: {e}"),
        }
    }
    s
}

/// Floods a `listen ARGS` server with clients of every shape that never read,
/// asserts its peak RSS grew by less than `bound_mib`, then checks a normal
/// client still gets exactly `want` for `send`.
fn flood_then_serve(args: &[&str], bound_mib: u64, send: &[u8], want: &[u8]) {
    let (l, addr) = listen(args);
    let pid = l.child.id();
    let before = status_kib(pid, "VmRSS");
    let shapes = [Shape::Newlines; 24]
        .into_iter()
        .chain([Shape::NoNewline; 4])
        .chain([Shape::OneByte; 4]);
    let floods: Vec<_> = shapes
        .map(|shape| {
            let addr = addr.clone();
            let cap = match shape {
                Shape::OneByte => 20_000,
                _ => 16 << 20,
            };
            std::thread::spawn(move || flood(&addr, shape, cap))
        })
        .collect();
    let clients: Vec<TcpStream> = floods.into_iter().map(|t| t.join().unwrap()).collect();
    wait_idle(pid);
    let peak = status_kib(pid, "VmHWM");
    let grew = peak.saturating_sub(before) / 1024;
    println!(
        "{args:?}: {} stalled clients, RSS {} KiB before, peak {peak} KiB (+{grew} MiB)",
        clients.len(),
        before
    );
    assert!(
        grew < bound_mib,
        "{args:?}: peak RSS grew by {grew} MiB with {} clients that do not read (bound {bound_mib} MiB)",
        clients.len()
    );
    let mut normal = tcp(&addr);
    normal.write_all(send).unwrap();
    normal.shutdown(std::net::Shutdown::Write).unwrap();
    assert_same("reply to a normal client", &read_all(&mut normal), want);
    drop(clients);
}

#[test]
fn greet_memory_is_bounded_for_clients_that_never_read() {
    // 32 clients x (16 KiB read + 16 KiB replies + a 64 KiB line) is ~3 MiB.
    flood_then_serve(
        &["--greet", "127.0.0.1:0"],
        24,
        b"bob\nann\r\nx",
        b"hello bob\nhello ann\r\nhello x",
    );
}

#[test]
fn echo_memory_is_bounded_for_clients_that_never_read() {
    flood_then_serve(&["--echo", "127.0.0.1:0"], 6, b"bob\nann", b"bob\nann");
}

#[test]
fn exec_memory_is_bounded_for_clients_that_never_read() {
    flood_then_serve(&["-e", "cat", "127.0.0.1:0"], 6, b"bob\nann", b"bob\nann");
}

// ---- exec children end with their connection ----

#[test]
fn exec_children_end_with_their_client_and_free_its_slot() {
    // Three clients come and go while their children would sleep for 25 s;
    // with the default grace they are stopped, and the fourth is served.
    let (l, addr) = listen(&[
        "-k",
        "-m",
        "3",
        "--sh-exec",
        "read line; echo \"got $line\"; sleep 25",
        "127.0.0.1:0",
    ]);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        drop(tcp(&addr));
    }
    l.wait_stderr_count("disconnected", 3);
    let mut fourth = tcp(&addr);
    fourth.write_all(b"hi\n").unwrap();
    let mut got = [0u8; 7];
    fourth.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"got hi\n");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "slots freed only after {:?}",
        started.elapsed()
    );
}

/// A process of group `pgid` that is not a zombie, if any.
fn live_member(pgid: i32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // After the command name: state, ppid, pgrp.
        let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        (f[0] != "Z" && f[2].parse::<i32>().ok()? == pgid).then_some(pid)
    })
}

#[test]
fn exec_child_that_ignores_sigterm_is_killed_with_its_group() {
    let (l, addr) = listen(&[
        "-k",
        "-m",
        "1",
        "--exec-grace",
        "0.2",
        "--sh-exec",
        "trap '' TERM; echo $$; sleep 25",
        "127.0.0.1:0",
    ]);
    let mut c = tcp(&addr);
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        c.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    let pgid: i32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    drop(c);
    let err = l.wait_stderr("disconnected");
    assert!(err.contains(": SIGTERM"), "stderr: {err}");
    assert!(err.contains(": SIGKILL"), "stderr: {err}");
    // Nothing of the group runs any more: the shell, and the sleep it started
    // (a zombie waiting for its new parent does not count).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while let Some(pid) = live_member(pgid) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} of group {pgid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The slot is free again.
    let mut next = tcp(&addr);
    let mut b = [0u8; 1];
    next.read_exact(&mut b).unwrap();
    assert!(b[0].is_ascii_digit());
}

#[test]
fn exec_of_a_missing_program_fails_at_start() {
    let out = run(
        &["listen", "-e", "no-such-program-here --flag", "127.0.0.1:0"],
        b"",
    );
    let err = error_line(&out, 2);
    assert_eq!(
        err,
        "sockit: error: cannot run 'no-such-program-here' (no such program on PATH)"
    );
    let out = run(
        &["listen", "-k", "-e", "/nonexistent/prog", "127.0.0.1:0"],
        b"",
    );
    assert_eq!(
        error_line(&out, 2),
        "sockit: error: cannot run '/nonexistent/prog' (no such file)"
    );
}

// ---- broker: small messages are charged for what they cost ----

fn seqpacket(addr: &str) -> socket2::Socket {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    s.connect(&SockAddr::unix(addr).unwrap()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn broker_charges_small_messages_and_drops_slow_members() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    const SLOW: usize = 20;
    const MSGS: usize = 30_000;
    // Seqpacket keeps each 1-byte write one message, so one queue entry each.
    let (_dir, path) = sock_path("broker.sock");
    let (l, addr) = listen(&[
        "--broker",
        "--max-queue",
        "65536",
        &format!("unix-seqpacket:{path}"),
    ]);
    let pid = l.child.id();
    let slow: Vec<_> = (0..SLOW).map(|_| seqpacket(&addr)).collect();
    let normal = seqpacket(&addr);
    let sender = seqpacket(&addr);
    l.wait_stderr_count("connection from", SLOW + 2);
    let before = status_kib(pid, "VmRSS");

    let seen = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (seen, received) = (seen.clone(), received.clone());
        std::thread::spawn(move || {
            let mut data = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = no_eintr(|| (&normal).read(&mut buf)).expect("normal member reads");
                // Sync bytes come first; data is lowercase; `E` ends it.
                let mut msg = &buf[..n];
                if data.is_empty() {
                    let syncs = msg.iter().take_while(|&&b| b == b'S').count();
                    if syncs > 0 {
                        seen.store(true, Ordering::Relaxed);
                    }
                    msg = &msg[syncs..];
                }
                data.extend_from_slice(msg);
                received.fetch_add(msg.len(), Ordering::Relaxed);
                if data.last() == Some(&b'E') {
                    data.pop();
                    return data;
                }
            }
        })
    };
    // Until the normal member has joined, sync messages; then the flood, paced
    // to the normal member (which must never fall behind), never to the slow.
    while !seen.load(Ordering::Relaxed) {
        (&sender).write_all(b"S").unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let want: Vec<u8> = (0..MSGS).map(|i| b'a' + (i % 26) as u8).collect();
    for (i, b) in want.iter().enumerate() {
        if i % 100 == 0 {
            wait_for("normal member to keep up", || {
                received.load(Ordering::Relaxed) + 300 >= i
            });
        }
        (&sender).write_all(&[*b]).unwrap();
    }
    (&sender).write_all(b"E").unwrap();
    let got = reader.join().unwrap();
    assert_same("the normal member's messages", &got, &want);

    wait_idle(pid);
    let peak = status_kib(pid, "VmHWM");
    let grew = peak.saturating_sub(before) / 1024;
    println!(
        "broker, {SLOW} slow members, {MSGS} 1-byte messages: RSS {before} KiB before, peak {peak} KiB (+{grew} MiB)"
    );
    // 20 x 64 KiB of charged queue, plus fixed overhead.
    assert!(grew < 5, "peak RSS grew by {grew} MiB (bound 5 MiB)");
    let err = l.wait_stderr_count("disconnected: too slow", SLOW);
    assert_eq!(count(&err, "(too slow)"), SLOW, "stderr: {err}");
    // Their queues went with them.
    let after = status_kib(pid, "VmRSS");
    println!("RSS once they were dropped: {after} KiB");
    assert!(
        after < before + 2048,
        "RSS {after} KiB after the slow members left, {before} KiB before"
    );
    drop(slow);
}
