//! `listen` services through the real binary: greet, echo, broker, stdio with
//! `-k`, exec; shutdown on signals; Unix socket files.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::util::*;

fn seqpacket(path: &str) -> Socket {
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    s.connect(&SockAddr::unix(path).unwrap()).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Sends `data` (then half-closes) on a second handle while reading everything back.
fn round_trip(mut c: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_all(&mut c);
    writer.join().unwrap();
    got
}

// ---- greet ----

#[test]
fn greet_answers_an_unterminated_message_after_a_pause() {
    let (_l, addr) = listen(&["--greet", "127.0.0.1:0"]);
    let mut c = tcp(&addr);
    c.write_all(b"baihuixin").unwrap();
    // The tutorial's client: one read, no newline ever sent.
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello baihuixin");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"", "nothing after the one reply");
}

#[test]
fn greet_answers_each_line_keeping_its_terminator() {
    let (_l, addr) = listen(&["--greet", "127.0.0.1:0"]);
    let mut c = tcp(&addr);
    c.write_all(b"a\n").unwrap();
    assert_eq!(read_n(&mut c, 8), b"hello a\n");
    c.write_all(b"b\r\n").unwrap();
    assert_eq!(read_n(&mut c, 9), b"hello b\r\n");
    // Two lines in one write: two replies.
    c.write_all(b"x\ny\r\n").unwrap();
    assert_eq!(read_n(&mut c, 17), b"hello x\nhello y\r\n");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"");
}

#[test]
fn greet_joins_a_line_split_by_a_short_pause() {
    let (_l, addr) = listen(&["--greet", "--flush-partial", "2000", "127.0.0.1:0"]);
    let mut c = tcp(&addr);
    c.write_all(b"bai").unwrap();
    // Well under --flush-partial: still one message.
    thread::sleep(Duration::from_millis(200));
    c.write_all(b"huixin\n").unwrap();
    assert_eq!(read_n(&mut c, 16), b"hello baihuixin\n");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"");
}

#[test]
fn greet_flushes_a_partial_line_after_flush_partial() {
    let (_l, addr) = listen(&["--greet", "--flush-partial", "100", "127.0.0.1:0"]);
    let mut c = tcp(&addr);
    c.write_all(b"bai").unwrap();
    assert_eq!(read_n(&mut c, 9), b"hello bai");
    c.write_all(b"xin\n").unwrap();
    assert_eq!(read_n(&mut c, 10), b"hello xin\n");
    // A partial line pending at EOF is answered too.
    c.write_all(b"tail").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"hello tail");
}

#[test]
fn greet_serves_a_hundred_clients_at_once() {
    let (l, addr) = listen(&["--greet", "127.0.0.1:0"]);
    const N: usize = 100;
    // All connected before any sends.
    let clients: Vec<TcpStream> = (0..N).map(|_| tcp(&addr)).collect();
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let msg = format!("client-{i}\n");
                c.write_all(msg.as_bytes()).unwrap();
                let want = format!("hello {msg}");
                let got = read_n(&mut c, want.len());
                assert_eq!(String::from_utf8_lossy(&got), want);
                c.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_all(&mut c), b"");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    l.wait_stderr_count(" disconnected", N);
}

#[test]
fn greet_passes_binary_bytes_unchanged() {
    let (_l, addr) = listen(&["--greet", "127.0.0.1:0"]);
    let mut msg: Vec<u8> = (0..=255u8).filter(|b| *b != b'\n').collect();
    msg.push(b'\n');
    let got = round_trip(tcp(&addr), msg.clone());
    let mut want = b"hello ".to_vec();
    want.extend_from_slice(&msg);
    assert_eq!(got, want);
}

#[test]
fn greet_answers_long_lines_in_pieces_losing_nothing() {
    let (_l, addr) = listen(&[
        "--greet",
        "--max-line",
        "8",
        "--flush-partial",
        "5000",
        "127.0.0.1:0",
    ]);
    let line = b"abcdefghijklmnopqrs\n";
    assert_eq!(line.len(), 20);
    let got = round_trip(tcp(&addr), line.to_vec());
    assert_eq!(
        String::from_utf8_lossy(&got),
        "hello abcdefghhello ijklmnophello qrs\n"
    );
    let text = String::from_utf8(got).unwrap();
    assert_eq!(text.replace("hello ", "").as_bytes(), line);
}

#[test]
fn greet_over_seqpacket_answers_each_message() {
    let (_d, path) = sock_path("greet.sock");
    let (_l, addr) = listen(&["--greet", &format!("unix-seqpacket:{path}")]);
    assert_eq!(addr, path);
    let mut s = seqpacket(&path);
    s.write_all(b"one").unwrap();
    s.write_all(b"two\nthree").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello one");
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello two\nthree");
}

#[test]
fn greet_over_udp_answers_each_sender() {
    let (_l, addr) = listen(&["-u", "--greet", "127.0.0.1:0"]);
    let clients: Vec<UdpSocket> = (0..5).map(|_| udp_client()).collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(format!("peer {i}").as_bytes(), &addr).unwrap();
    }
    for (i, c) in clients.iter().enumerate() {
        let mut buf = [0u8; 256];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from.to_string(), addr);
        assert_eq!(
            String::from_utf8_lossy(&buf[..n]),
            format!("hello peer {i}")
        );
    }
}

// ---- echo ----

#[test]
fn echo_over_tcp_returns_megabytes_exactly() {
    let (_l, addr) = listen(&["--echo", "127.0.0.1:0"]);
    let data = random_bytes(6 << 20, 0x5eed);
    let got = round_trip(tcp(&addr), data.clone());
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
}

#[test]
fn echo_over_udp_answers_each_sender_with_its_datagram() {
    let (l, addr) = listen(&["-u", "--echo", "127.0.0.1:0"]);
    assert!(l.stderr_now().contains("(datagrams)"));
    let clients: Vec<UdpSocket> = (0..5).map(|_| udp_client()).collect();
    let msgs: Vec<Vec<u8>> = (0..5)
        .map(|i| random_bytes(100 + i * 300, i as u64))
        .collect();
    for (c, m) in clients.iter().zip(&msgs) {
        c.send_to(m, &addr).unwrap();
    }
    for (c, m) in clients.iter().zip(&msgs) {
        let mut buf = [0u8; 4096];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from.to_string(), addr);
        assert_eq!(&buf[..n], &m[..]);
    }
}

#[test]
fn echo_over_seqpacket_keeps_message_boundaries() {
    let (_d, path) = sock_path("echo.sock");
    let (_l, _) = listen(&["--echo", &format!("unix-seqpacket:{path}")]);
    let mut s = seqpacket(&path);
    let msgs: [&[u8]; 3] = [b"one", b"two\n", b"\x00three\xff"];
    for m in msgs {
        s.write_all(m).unwrap();
    }
    let mut buf = [0u8; 256];
    for m in msgs {
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], m);
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(s.read(&mut buf).unwrap(), 0, "EOF after the half-close");
}

// ---- broker ----

#[test]
fn broker_relays_to_every_other_client() {
    let (l, addr) = listen(&["--broker", "127.0.0.1:0"]);
    let mut c: Vec<TcpStream> = (0..3).map(|_| tcp(&addr)).collect();
    l.wait_stderr_count("connection from", 3);
    hub_sync(&mut c);

    let from0 = random_bytes(100_000, 1);
    c[0].write_all(&from0).unwrap();
    assert!(read_n(&mut c[1], from0.len()) == from0);
    assert!(read_n(&mut c[2], from0.len()) == from0);

    c[2].write_all(b"from two\n").unwrap();
    assert_eq!(read_n(&mut c[0], 9), b"from two\n");
    assert_eq!(read_n(&mut c[1], 9), b"from two\n");

    // Nothing came back to a sender: after everyone leaves, no byte is left over.
    for s in &c {
        s.shutdown(Shutdown::Write).unwrap();
    }
    l.wait_stderr_count(" disconnected", 3);
    for (i, s) in c.iter_mut().enumerate() {
        assert_eq!(read_all(s), b"", "client {i} got extra bytes");
    }
}

// ---- stdio with -k ----

#[test]
fn keep_open_stdin_reaches_every_client_and_clients_reach_stdout() {
    let (mut l, addr) = listen(&["-k", "127.0.0.1:0"]);
    let mut c: Vec<TcpStream> = (0..3).map(|_| tcp(&addr)).collect();
    for (i, s) in c.iter_mut().enumerate() {
        let line = format!("from client {i}\n");
        s.write_all(line.as_bytes()).unwrap();
        // Once its bytes reach stdout, the client is in the fan-out too.
        l.wait_stdout(line.as_bytes());
    }
    l.write(b"to everyone\n");
    for s in &mut c {
        assert_eq!(read_n(s, 12), b"to everyone\n");
    }
    // One leaves; the others still get stdin.
    c.remove(0).shutdown(Shutdown::Both).unwrap();
    l.wait_stderr(" disconnected");
    l.write(b"still here\n");
    for s in &mut c {
        assert_eq!(read_n(s, 11), b"still here\n");
    }
    let out = String::from_utf8(l.stdout_now()).unwrap();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["from client 0", "from client 1", "from client 2"]);
}

// ---- exec ----

#[test]
fn exec_cat_echoes() {
    let (_l, addr) = listen(&["-e", "cat", "127.0.0.1:0"]);
    let data = random_bytes(1 << 20, 3);
    let got = round_trip(tcp(&addr), data.clone());
    assert!(
        got == data,
        "cat returned {} bytes, not the same",
        got.len()
    );
}

#[test]
fn exec_sees_peer_local_and_proto_in_its_environment() {
    let (_l, addr) = listen(&[
        "--sh-exec",
        r#"printf "%s|%s|%s" "$SOCKIT_PROTO" "$SOCKIT_PEER_ADDR" "$SOCKIT_LOCAL_ADDR""#,
        "127.0.0.1:0",
    ]);
    let mut c = tcp(&addr);
    let want = format!("tcp|{}|{}", c.local_addr().unwrap(), c.peer_addr().unwrap());
    assert_eq!(String::from_utf8(read_all(&mut c)).unwrap(), want);
}

#[test]
fn exec_over_unix_reports_unix_proto() {
    let (_d, path) = sock_path("exec.sock");
    let (_l, _) = listen(&[
        "--sh-exec",
        r#"printf "%s|%s" "$SOCKIT_PROTO" "$SOCKIT_LOCAL_ADDR""#,
        &format!("unix:{path}"),
    ]);
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(
        String::from_utf8(read_all(&mut c)).unwrap(),
        format!("unix|{path}")
    );
}

#[test]
fn exec_direct_splits_arguments_without_a_shell() {
    let (_l, addr) = listen(&["-e", "printf '%s-%s' 'a b' $HOME", "127.0.0.1:0"]);
    let mut c = tcp(&addr);
    // No shell: $HOME stays literal, the quoted argument stays one.
    assert_eq!(read_all(&mut c), b"a b-$HOME");
}

// ---- shutdown and socket files ----

#[test]
fn sigterm_exits_zero_removes_the_socket_file_and_closes_clients() {
    let (_d, path) = sock_path("term.sock");
    let (l, addr) = listen(&["--echo", &format!("unix:{path}")]);
    assert_eq!(addr, path);
    assert!(Path::new(&path).exists());
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut c, 4), b"ping");
    l.signal(libc::SIGTERM);
    let (status, _, err) = l.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.contains("shutting down"), "stderr: {err}");
    assert!(!Path::new(&path).exists(), "socket file left behind");
    assert_eq!(read_all(&mut c), b"", "client sees EOF");
}

#[test]
fn ctrl_c_exits_zero_and_closes_clients() {
    let (mut l, addr) = listen(&["-k", "127.0.0.1:0"]);
    let mut c = tcp(&addr);
    c.write_all(b"hi\n").unwrap();
    l.wait_stdout(b"hi\n");
    l.write(b"yo\n");
    assert_eq!(read_n(&mut c, 3), b"yo\n");
    l.signal(libc::SIGINT);
    let (status, out, err) = l.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_eq!(out, b"hi\n");
    assert_eq!(read_all(&mut c), b"", "client sees EOF");
}

#[test]
fn sigterm_while_waiting_for_the_single_client_exits_zero() {
    let (l, _addr) = listen(&["127.0.0.1:0"]);
    l.signal(libc::SIGTERM);
    let (status, out, err) = l.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_eq!(out, b"");
}

#[test]
fn stale_unix_socket_file_is_replaced() {
    let (_d, path) = sock_path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(
        Path::new(&path).exists(),
        "the dropped listener leaves its file"
    );
    let (l, addr) = listen(&["--echo", &format!("unix:{path}")]);
    assert_eq!(addr, path);
    assert!(
        l.stderr_now()
            .contains(&format!("removing stale socket {path}")),
        "stderr: {}",
        l.stderr_now()
    );
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"fresh").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"fresh");
}

#[test]
fn a_live_unix_socket_is_not_replaced() {
    let (_d, path) = sock_path("live.sock");
    let (_first, _) = listen(&["--echo", &format!("unix:{path}")]);
    let out = run(&["listen", &format!("unix:{path}")], b"");
    assert_eq!(out.status.code(), Some(6), "{:?}", out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot bind {path}")),
        "stderr: {err}"
    );
    // The first listener still works.
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"ok").unwrap();
    assert_eq!(read_n(&mut c, 2), b"ok");
}
