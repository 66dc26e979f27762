//! Every endpoint kind through the real binary (TCP v4/v6, UDP, Unix stream,
//! datagram and seqpacket, abstract names), and the flags that shape the data path:
//! half-close, --send-only, --recv-only, --no-shutdown, -i, -z, -v, --crlf, -x, -s,
//! binary integrity and a closed stdout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::util::*;

/// Every byte value four times over, then `n` pseudo-random bytes.
fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut v: Vec<u8> = (0..4).flat_map(|_| 0..=255u8).collect();
    v.extend(random_bytes(n, seed));
    v
}

fn have_ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// `sockit listen EP` (one client, stdio) and `sockit connect` exchange a line each way;
/// both exit 0 once the client's stdin ends, with exactly the other side's bytes on stdout.
fn stdio_round_trip(listen_ep: &str, connect_ep: impl Fn(&str) -> String) {
    let (mut l, addr) = listen(&[listen_ep]);
    let mut c = spawn_connect(&[&connect_ep(&addr)]);
    l.wait_stderr("connection from ");
    l.write(b"from server\n");
    c.wait_stdout(b"from server\n");
    c.write(b"from client\n");
    c.close_stdin();
    l.wait_stdout(b"from client\n");
    l.close_stdin();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "listener failed: {err}");
    assert_eq!(String::from_utf8_lossy(&out), "from client\n");
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "client failed: {err}");
    assert_eq!(String::from_utf8_lossy(&out), "from server\n");
    assert_eq!(err, "", "a quiet client prints nothing on stderr");
}

#[test]
fn tcp_v4_round_trip() {
    stdio_round_trip("127.0.0.1:0", |a| a.to_string());
}

#[test]
fn tcp_scheme_round_trip() {
    stdio_round_trip("tcp://127.0.0.1:0", |a| format!("tcp://{a}"));
}

#[test]
fn tcp_v6_round_trip() {
    if !have_ipv6_loopback() {
        skipped("tcp_v6_round_trip", "no IPv6 loopback on this machine");
        return;
    }
    let (_l, addr) = listen(&["[::1]:0"]);
    assert!(addr.starts_with("[::1]:"), "listener address {addr}");
    drop(_l);
    stdio_round_trip("[::1]:0", |a| a.to_string());
}

#[test]
fn tcp_v6_verbose_shows_bracketed_addresses() {
    if !have_ipv6_loopback() {
        skipped(
            "tcp_v6_verbose_shows_bracketed_addresses",
            "no IPv6 loopback on this machine",
        );
        return;
    }
    let l = TcpListener::bind("[::1]:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, peer) = accept_one(&l);
        assert_eq!(read_all(&mut s), b"six\n");
        s.write_all(b"ok\n").unwrap();
        peer
    });
    let out = run(&["connect", "-v", "-6", &addr.to_string()], b"six\n");
    let peer = server.join().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"ok\n");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "sockit: connected to {addr} from {peer} (tcp)\n\
             sockit: closed: 4 bytes sent, 3 bytes received\n"
        )
    );
    assert!(addr.to_string().starts_with("[::1]:"));
}

#[test]
fn unix_stream_round_trip() {
    let (_dir, path) = sock_path("stream.sock");
    stdio_round_trip(&format!("unix:{path}"), |a| {
        assert_eq!(a, path, "listener reports its path");
        format!("unix:{a}")
    });
}

#[test]
fn unix_abstract_round_trip() {
    let name = abstract_name("stream");
    stdio_round_trip(&format!("unix:@{name}"), |a| {
        assert_eq!(a, format!("@{name}"), "listener reports its abstract name");
        format!("unix:{a}")
    });
}

#[test]
fn unix_seqpacket_round_trip() {
    let (_dir, path) = sock_path("sp.sock");
    stdio_round_trip(&format!("unix-seqpacket:{path}"), |a| {
        format!("unix-seqpacket:{a}")
    });
}

#[test]
fn unix_seqpacket_abstract_round_trip() {
    let name = abstract_name("sp");
    stdio_round_trip(&format!("unix-seqpacket:@{name}"), |a| {
        format!("unix-seqpacket:{a}")
    });
}

/// A seqpacket server in the test: what `connect` sends arrives as one message per
/// stdin line, the last partial line at EOF, then end-of-stream.
#[test]
fn unix_seqpacket_client_sends_one_message_per_line() {
    let (_dir, path) = sock_path("msgs.sock");
    let srv = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    srv.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    srv.listen(1).unwrap();
    // SO_RCVTIMEO bounds accept(2) as well as recv(2).
    srv.set_read_timeout(Some(WAIT)).unwrap();
    let mut c = spawn_connect(&[&format!("unix-seqpacket:{path}")]);
    c.write(b"one\ntwo\nthree");
    c.close_stdin();
    let (conn, _) = no_eintr(|| srv.accept()).expect("client connects");
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 1024];
    let mut msgs = Vec::new();
    loop {
        let n = no_eintr(|| (&conn).read(&mut buf)).expect("recv");
        if n == 0 {
            break;
        }
        msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(msgs, ["one\n", "two\n", "three"]);
    (&conn).write_all(b"A").unwrap();
    (&conn).write_all(b"BB").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "{err}");
    assert_eq!(out, b"ABB");
}

#[test]
fn unix_seqpacket_datagram_size_cuts_messages() {
    let (_dir, path) = sock_path("cut.sock");
    let srv = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    srv.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    srv.listen(1).unwrap();
    srv.set_read_timeout(Some(WAIT)).unwrap();
    let mut c = spawn_connect(&["--datagram-size", "3", &format!("unix-seqpacket:{path}")]);
    c.write(b"abcdefgh");
    c.close_stdin();
    let (conn, _) = no_eintr(|| srv.accept()).expect("client connects");
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 1024];
    let mut msgs = Vec::new();
    loop {
        let n = no_eintr(|| (&conn).read(&mut buf)).expect("recv");
        if n == 0 {
            break;
        }
        msgs.push(buf[..n].to_vec());
    }
    assert_eq!(msgs, [b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]);
    drop(conn);
    let (st, _, err) = c.wait_exit();
    assert!(st.success(), "{err}");
}

/// `listen --echo unix-seqpacket:` answers each message with the same message.
#[test]
fn unix_seqpacket_echo_keeps_message_boundaries() {
    let (_dir, path) = sock_path("echo.sock");
    let (_l, addr) = listen(&["--echo", &format!("unix-seqpacket:{path}")]);
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    s.connect(&SockAddr::unix(&addr).unwrap()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    (&s).write_all(b"abc").unwrap();
    (&s).write_all(b"defg").unwrap();
    (&s).write_all(b"\0\xff").unwrap();
    let mut buf = [0u8; 1024];
    let mut msgs = Vec::new();
    for _ in 0..3 {
        let n = no_eintr(|| (&s).read(&mut buf)).expect("echo reply");
        msgs.push(buf[..n].to_vec());
    }
    assert_eq!(
        msgs,
        [b"abc".to_vec(), b"defg".to_vec(), b"\0\xff".to_vec()]
    );
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        no_eintr(|| (&s).read(&mut buf)).unwrap(),
        0,
        "echo half-closes after the client"
    );
}

#[test]
fn udp_connect_sends_one_datagram_per_line() {
    for form in ["-u", "udp://"] {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        srv.set_read_timeout(Some(WAIT)).unwrap();
        let addr = srv.local_addr().unwrap().to_string();
        let mut args = vec!["-w", "2"];
        let ep = if form == "-u" {
            args.push("-u");
            addr.clone()
        } else {
            format!("udp://{addr}")
        };
        args.push(&ep);
        let mut c = spawn_connect(&args);
        c.write(b"one\ntwo\nthree");
        c.close_stdin();
        let mut buf = [0u8; 2048];
        let mut msgs = Vec::new();
        let mut from = None;
        for _ in 0..3 {
            let (n, a) = no_eintr(|| srv.recv_from(&mut buf)).expect("datagram from sockit");
            msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            from = Some(a);
        }
        assert_eq!(msgs, ["one\n", "two\n", "three"], "{form}");
        let from = from.unwrap();
        srv.send_to(b"reply-1\n", from).unwrap();
        srv.send_to(b"reply-2\n", from).unwrap();
        let (st, out, err) = c.wait_exit();
        assert!(st.success(), "{form}: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "reply-1\nreply-2\n",
            "{form}"
        );
    }
}

#[test]
fn udp_echo_listener_round_trip() {
    let (_l, addr) = listen(&["--echo", "-u", "127.0.0.1:0"]);
    let out = run(&["connect", "-u", "-w", "1", &addr], b"alpha\nbeta\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alpha\nbeta\n");
    let out = run(
        &["connect", "-w", "1", &format!("udp://{addr}")],
        b"gamma\n",
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "gamma\n");
}

/// `listen -u` prints each datagram and sends stdin lines to the last peer.
#[test]
fn udp_listener_stdio() {
    let (mut l, addr) = listen(&["-u", "127.0.0.1:0"]);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.send_to(b"ping\n", &addr).unwrap();
    l.wait_stdout(b"ping\n");
    l.write(b"pong\nsecond\n");
    let mut buf = [0u8; 2048];
    let (n, from) = no_eintr(|| peer.recv_from(&mut buf)).expect("reply");
    assert_eq!(&buf[..n], b"pong\n");
    assert_eq!(from.to_string(), addr);
    let (n, _) = no_eintr(|| peer.recv_from(&mut buf)).expect("second reply");
    assert_eq!(&buf[..n], b"second\n");
    peer.send_to(b"\0bin\xff", &addr).unwrap();
    l.wait_stdout(b"\0bin\xff");
    assert_eq!(l.stdout_now(), b"ping\n\0bin\xff");
}

#[test]
fn unix_dgram_echo_round_trip() {
    let (_dir, path) = sock_path("dg.sock");
    let (_l, addr) = listen(&["--echo", &format!("unix-dgram:{path}")]);
    assert_eq!(addr, path);
    let out = run(
        &["connect", "-w", "1", &format!("unix-dgram:{path}")],
        b"x\ny\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\ny\n");
}

#[test]
fn unix_dgram_abstract_echo_round_trip() {
    let name = abstract_name("dg");
    let (_l, addr) = listen(&["--echo", &format!("unix-dgram:@{name}")]);
    assert_eq!(addr, format!("@{name}"));
    let out = run(
        &["connect", "-w", "1", &format!("unix-dgram:{addr}")],
        b"abs\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "abs\n");
}

/// A datagram server in the test: one datagram per line, and replies reach the
/// client's automatically bound address.
#[test]
fn unix_dgram_client_datagrams_and_replies() {
    let (_dir, path) = sock_path("dgs.sock");
    let srv = UnixDatagram::bind(&path).unwrap();
    srv.set_read_timeout(Some(WAIT)).unwrap();
    let mut c = spawn_connect(&["-w", "2", &format!("unix-dgram:{path}")]);
    c.write(b"m1\nm2\n");
    c.close_stdin();
    let mut buf = [0u8; 2048];
    let (n, _) = no_eintr(|| srv.recv_from(&mut buf)).expect("first datagram");
    assert_eq!(&buf[..n], b"m1\n");
    let (n, from) = no_eintr(|| srv.recv_from(&mut buf)).expect("second datagram");
    assert_eq!(&buf[..n], b"m2\n");
    srv.send_to_addr(b"r1\n", &from)
        .expect("reply to autobound address");
    srv.send_to_addr(b"r2\n", &from).unwrap();
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "r1\nr2\n");
}

#[test]
fn unix_dgram_listener_stdio() {
    let (dir, path) = sock_path("dgl.sock");
    let (mut l, _) = listen(&[&format!("unix-dgram:{path}")]);
    let peer = UnixDatagram::bind(dir.path().join("peer.sock")).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.send_to(b"hello listener\n", &path).unwrap();
    l.wait_stdout(b"hello listener\n");
    l.write(b"hello peer\n");
    let mut buf = [0u8; 2048];
    let n = no_eintr(|| peer.recv(&mut buf)).expect("reply");
    assert_eq!(&buf[..n], b"hello peer\n");
}

/// The client half-closes at stdin EOF: the server sees EOF, and what it sends
/// afterwards still reaches the client's stdout. Over both relay paths
/// (zero-copy, and the async one that `-i` selects) and TCP and Unix.
#[test]
fn half_close_client_still_receives_after_stdin_eof() {
    for extra in [&[][..], &["-i", "60"][..]] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (mut s, _) = accept_one(&l);
            let got = read_all(&mut s);
            s.write_all(b"response after eof\n").unwrap();
            got
        });
        let out = run(&connect_args(extra, &[], &addr), b"request\n");
        assert_eq!(server.join().unwrap(), b"request\n", "{extra:?}");
        assert!(out.status.success(), "{extra:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "response after eof\n",
            "{extra:?}"
        );

        let (_dir, path) = sock_path("hc.sock");
        let ul = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let mut s = accept_unix(&ul);
            let got = read_all(&mut s);
            s.write_all(b"unix response\n").unwrap();
            got
        });
        let ep = format!("unix:{path}");
        let out = run(&connect_args(extra, &[], &ep), b"unix request\n");
        assert_eq!(server.join().unwrap(), b"unix request\n", "{extra:?}");
        assert!(out.status.success(), "{extra:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "unix response\n");
    }
}

/// `sockit connect` half-closes at stdin EOF; `sockit listen` sees the EOF and
/// what it sends afterwards still reaches the client.
#[test]
fn half_close_listener_sends_after_the_clients_eof() {
    for extra in [&[][..], &["-i", "60"][..]] {
        let mut largs = extra.to_vec();
        largs.push("127.0.0.1:0");
        let (mut l, addr) = listen(&largs);
        let mut c = spawn_connect(&connect_args(extra, &[], &addr)[1..]);
        c.write(b"question\n");
        c.close_stdin();
        l.wait_stdout(b"question\n");
        l.write(b"answer after your eof\n");
        l.close_stdin();
        let (st, out, err) = c.wait_exit();
        assert!(st.success(), "{extra:?}: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "answer after your eof\n",
            "{extra:?}"
        );
        let (st, out, err) = l.wait_exit();
        assert!(st.success(), "{extra:?}: {err}");
        assert_eq!(out, b"question\n", "{extra:?}");
        assert!(
            err.contains("disconnected: 22 bytes sent, 9 bytes received"),
            "{extra:?}: {err}"
        );
    }
}

/// `sockit listen` half-closes first; the client's stdin is still delivered in full.
#[test]
fn half_close_client_uploads_after_the_listeners_eof() {
    let data = payload(1 << 20, 0x5eed_0004);
    for extra in [&[][..], &["-i", "60"][..]] {
        let mut largs = extra.to_vec();
        largs.push("127.0.0.1:0");
        let (mut l, addr) = listen(&largs);
        let mut c = spawn_connect(&connect_args(extra, &[], &addr)[1..]);
        l.wait_stderr("connection from ");
        l.write(b"go ahead\n");
        l.close_stdin();
        c.wait_stdout(b"go ahead\n");
        c.write(&data);
        c.close_stdin();
        let (st, out, err) = l.wait_exit();
        assert!(st.success(), "{extra:?}: {err}");
        assert_same("upload after the listener's EOF", &out, &data);
        let (st, out, err) = c.wait_exit();
        assert!(st.success(), "{extra:?}: {err}");
        assert_eq!(out, b"go ahead\n", "{extra:?}");
    }
}

/// The listener half-closes at its stdin EOF and keeps printing what the client sends.
#[test]
fn half_close_listener_still_receives_after_stdin_eof() {
    let (mut l, addr) = listen(&["127.0.0.1:0"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    l.write(b"server data\n");
    l.close_stdin();
    assert_eq!(read_all(&mut s), b"server data\n");
    s.write_all(b"client data after eof\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "client data after eof\n");
    assert!(
        err.contains("disconnected: 12 bytes sent, 22 bytes received"),
        "{err}"
    );
}

fn connect_args<'a>(extra: &[&'a str], flags: &[&'a str], ep: &'a str) -> Vec<&'a str> {
    let mut v = vec!["connect"];
    v.extend(extra);
    v.extend(flags);
    v.push(ep);
    v
}

#[test]
fn send_only_discards_what_the_peer_sends() {
    for extra in [&[][..], &["-i", "60"][..]] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (mut s, _) = accept_one(&l);
            s.write_all(b"must not be printed\n").unwrap();
            read_all(&mut s)
        });
        let out = run(
            &connect_args(extra, &["-v", "--send-only"], &addr),
            b"upload\n",
        );
        assert_eq!(server.join().unwrap(), b"upload\n", "{extra:?}");
        assert!(out.status.success(), "{extra:?}");
        assert_eq!(out.stdout, b"", "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("closed: 7 bytes sent, 20 bytes received"),
            "{extra:?}: {err}"
        );
    }
}

#[test]
fn recv_only_never_reads_stdin() {
    for extra in [&[][..], &["-i", "60"][..]] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (mut s, _) = accept_one(&l);
            s.write_all(b"download\n").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            // Nothing comes back, and no half-close either: the client just
            // closes once it has read our EOF.
            read_all(&mut s)
        });
        let out = run(
            &connect_args(extra, &["--recv-only"], &addr),
            b"stdin must not be sent\n",
        );
        assert_eq!(server.join().unwrap(), b"", "{extra:?}");
        assert!(out.status.success(), "{extra:?}");
        assert_eq!(out.stdout, b"download\n", "{extra:?}");
    }
}

/// With --no-shutdown, stdin EOF does not half-close: the server reads the data
/// and then no EOF until it closes itself.
#[test]
fn no_shutdown_keeps_the_write_side_open() {
    for extra in [&[][..], &["-i", "60"][..]] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mut c = spawn_connect(&connect_args(extra, &["--no-shutdown"], &addr)[1..]);
        let (mut s, _) = accept_one(&l);
        c.write(b"x\n");
        c.close_stdin();
        assert_eq!(read_n(&mut s, 2), b"x\n");
        // Nothing may arrive, EOF included, for a while.
        let quiet_until = Instant::now() + Duration::from_millis(800);
        let mut buf = [0u8; 16];
        while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match s.read(&mut buf) {
                Ok(0) => panic!("{extra:?}: the client half-closed despite --no-shutdown"),
                Ok(n) => panic!("{extra:?}: unexpected bytes {:?}", &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{e}"
                ),
            }
        }
        s.write_all(b"bye\n").unwrap();
        drop(s);
        let (st, out, err) = c.wait_exit();
        assert!(st.success(), "{extra:?}: {err}");
        assert_eq!(out, b"bye\n");
    }
    // Without the flag the same exchange half-closes at once.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut c = spawn_connect(&[&addr]);
    let (mut s, _) = accept_one(&l);
    c.write(b"x\n");
    c.close_stdin();
    assert_eq!(read_all(&mut s), b"x\n");
    drop(s);
    assert!(c.wait_exit().0.success());
}

#[test]
fn idle_timeout_exits_5() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    // stdin stays open and the server never sends: nothing moves.
    let c = spawn_connect(&["-i", "0.5", &addr]);
    let (mut s, _) = accept_one(&l);
    let (st, out, err) = c.wait_exit();
    assert_eq!(st.code(), Some(5), "{err}");
    assert_eq!(out, b"");
    assert_eq!(
        err,
        "sockit: error: idle timeout: no traffic (timed out after 500ms)\n"
    );
    assert_eq!(read_all(&mut s), b"", "the connection is closed on timeout");
}

#[test]
fn idle_timeout_on_the_listener_exits_5() {
    let (l, addr) = listen(&["-i", "0.5", "127.0.0.1:0"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let (st, _, err) = l.wait_exit();
    assert_eq!(st.code(), Some(5), "{err}");
    assert!(
        err.ends_with("sockit: error: idle timeout: no traffic (timed out after 500ms)\n"),
        "{err}"
    );
    assert_eq!(read_all(&mut s), b"");
}

#[test]
fn zero_io_reports_open_and_closed_ports() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut s, _) = accept_one(&l);
        read_all(&mut s)
    });
    let out = run(&["connect", "-z", &addr], b"never sent\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"");
    assert_eq!(out.stderr, b"");
    assert_eq!(
        server.join().unwrap(),
        b"",
        "-z connects and closes without data"
    );

    let closed = format!("127.0.0.1:{}", closed_port());
    let out = run(&["connect", "-z", &closed], b"");
    let line = error_line(&out, 4);
    assert_eq!(
        line,
        format!("sockit: error: cannot connect to {closed} (connection refused, ECONNREFUSED)")
    );
}

/// Both directions with sockit on both ends, stdout compared byte for byte.
fn binary_both_ways(listen_ep: &str, connect_ep: impl Fn(&str) -> String, extra: &[&str]) {
    let down = payload(3 << 20, 0x5eed_0001);
    let up = payload(3 << 20, 0x5eed_0002);
    let mut largs = extra.to_vec();
    largs.push(listen_ep);
    let (mut l, addr) = listen(&largs);
    let cep = connect_ep(&addr);
    let mut cargs = extra.to_vec();
    cargs.push(&cep);
    let mut c = spawn_connect(&cargs);
    l.wait_stderr("connection from ");
    // Listener to client first, then client to listener; stdin EOF on both
    // sides at the end.
    l.write(&down);
    c.wait_stdout_bytes(down.len());
    c.write(&up);
    c.close_stdin();
    l.wait_stdout_bytes(up.len());
    l.close_stdin();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "listener: {err}");
    assert_same("client to listener", &out, &up);
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "client: {err}");
    assert_same("listener to client", &out, &down);
}

#[test]
fn binary_integrity_tcp() {
    binary_both_ways("127.0.0.1:0", |a| a.to_string(), &[]);
}

#[test]
fn binary_integrity_tcp_async_path() {
    binary_both_ways("127.0.0.1:0", |a| a.to_string(), &["-i", "60"]);
}

#[test]
fn binary_integrity_unix() {
    let (_dir, path) = sock_path("bin.sock");
    binary_both_ways(&format!("unix:{path}"), |a| format!("unix:{a}"), &[]);
}

#[test]
fn binary_integrity_unix_async_path() {
    let (_dir, path) = sock_path("bina.sock");
    binary_both_ways(
        &format!("unix:{path}"),
        |a| format!("unix:{a}"),
        &["-i", "60"],
    );
}

/// stdin from a regular file (the sendfile path) on both ends.
#[test]
fn binary_integrity_file_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let data = payload(5 << 20, 0x5eed_0003);
    let file = dir.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();

    // Client reads the file.
    let (mut l, addr) = listen(&["127.0.0.1:0"]);
    let mut cmd = sockit();
    cmd.args(["connect", &addr]);
    let c = Proc::spawn_with_stdin(cmd, std::fs::File::open(&file).unwrap().into());
    l.wait_stdout_bytes(data.len());
    l.close_stdin();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "{err}");
    assert_same("file via connect", &out, &data);
    assert!(c.wait_exit().0.success());

    // Listener reads the file.
    let (_d2, path) = sock_path("file.sock");
    let mut cmd = sockit();
    cmd.args(["listen", "-v", &format!("unix:{path}")]);
    let l = Proc::spawn_with_stdin(cmd, std::fs::File::open(&file).unwrap().into());
    l.wait_stderr("listening on ");
    let mut c = spawn_connect(&[&format!("unix:{path}")]);
    let got = c.wait_stdout_bytes(data.len());
    assert_same("file via listen", &got, &data);
    c.close_stdin();
    let (st, out, _) = c.wait_exit();
    assert!(st.success());
    assert_same("file via listen", &out, &data);
    let (st, _, err) = l.wait_exit();
    assert!(st.success(), "{err}");
}

#[test]
fn verbose_reports_addresses_and_byte_counts() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut s, peer) = accept_one(&l);
        assert_eq!(read_all(&mut s), b"12345");
        s.write_all(b"abc").unwrap();
        peer
    });
    let out = run(&["connect", "-v", &addr], b"12345");
    let peer = server.join().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"abc");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "sockit: connected to {addr} from {peer} (tcp)\n\
             sockit: closed: 5 bytes sent, 3 bytes received\n"
        )
    );
}

#[test]
fn verbose_listener_reports_peer_and_byte_counts() {
    let (mut l, addr) = listen(&["127.0.0.1:0"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let me = s.local_addr().unwrap();
    l.write(b"0123456789");
    l.close_stdin();
    assert_eq!(read_n(&mut s, 10), b"0123456789");
    s.write_all(b"abcd").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "{err}");
    assert_eq!(out, b"abcd");
    assert_eq!(
        err,
        format!(
            "sockit: listening on {addr} (tcp)\n\
             sockit: connection from {me} on {addr}\n\
             sockit: {me} disconnected: 10 bytes sent, 4 bytes received\n"
        )
    );
}

#[test]
fn verbose_unix_client() {
    let (_dir, path) = sock_path("v.sock");
    let ul = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let mut s = accept_unix(&ul);
        read_all(&mut s)
    });
    let out = run(&["connect", "-v", &format!("unix:{path}")], b"hi\n");
    assert_eq!(server.join().unwrap(), b"hi\n");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "sockit: connected to {path} from (unnamed) (unix)\n\
             sockit: closed: 3 bytes sent, 0 bytes received\n"
        )
    );
}

#[test]
fn crlf_sends_lf_as_crlf() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut s, _) = accept_one(&l);
        read_all(&mut s)
    });
    let out = run(
        &["connect", "-C", &addr],
        b"GET / HTTP/1.0\nHost: x\r\n\nend",
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&server.join().unwrap()),
        "GET / HTTP/1.0\r\nHost: x\r\n\r\nend"
    );

    // The listener converts its stdin the same way; what it receives is untouched.
    let (mut l, addr) = listen(&["--crlf", "127.0.0.1:0"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    l.write(b"a\nb\n");
    l.close_stdin();
    assert_eq!(read_n(&mut s, 6), b"a\r\nb\r\n");
    s.write_all(b"raw\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (st, out, _) = l.wait_exit();
    assert!(st.success());
    assert_eq!(out, b"raw\n");
}

#[test]
fn hex_dump_records_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut s, _) = accept_one(&l);
        let got = read_all(&mut s);
        s.write_all(b"world\n").unwrap();
        got
    });
    let out = run(
        &["connect", "--hex-dump", dump.to_str().unwrap(), &addr],
        b"hello\n",
    );
    assert_eq!(server.join().unwrap(), b"hello\n");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"world\n", "the dump does not replace stdout");
    let text = std::fs::read_to_string(&dump).unwrap();
    let pad = " ".repeat(33);
    assert_eq!(
        text,
        format!(
            "> 00000000  68 65 6c 6c 6f 0a{pad}|hello.|\n\
             < 00000000  77 6f 72 6c 64 0a{pad}|world.|\n"
        )
    );
}

#[test]
fn hex_dump_to_stderr_on_the_listener() {
    let (mut l, addr) = listen(&["-x", "-", "127.0.0.1:0"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    l.write(b"\x00\x01");
    l.close_stdin();
    assert_eq!(read_n(&mut s, 2), b"\x00\x01");
    s.write_all(b"0123456789abcdefXYZ").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "{err}");
    assert_eq!(out, b"0123456789abcdefXYZ");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(['<', '>'])).collect();
    assert_eq!(
        lines,
        [
            format!("> 00000000  00 01{}|..|", " ".repeat(45)),
            "< 00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|"
                .to_string(),
            format!("< 00000010  58 59 5a{}|XYZ|", " ".repeat(42)),
        ]
    );
}

#[test]
fn source_address_is_bound() {
    // Another loopback address as the source...
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut s, peer) = accept_one(&l);
        (read_all(&mut s), peer)
    });
    let out = run(&["connect", "-s", "127.0.0.2", &addr], b"src\n");
    let (got, peer) = server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got, b"src\n");
    assert_eq!(peer.ip().to_string(), "127.0.0.2");

    // ...and an exact source address and port.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut s, peer) = accept_one(&l);
        (read_all(&mut s), peer)
    });
    let src = format!("127.0.0.1:{}", closed_port());
    let out = run(&["connect", "-s", &src, &addr], b"");
    let (_, peer) = server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(peer.to_string(), src);
}

/// A reader that goes away (`| head -c 10`) ends sockit quietly with status 0.
#[test]
fn closed_stdout_exits_quietly() {
    for extra in [&[][..], &["-i", "60"][..]] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let chunk = random_bytes(64 * 1024, 7);
        let first = chunk[..10].to_vec();
        let server = thread::spawn(move || {
            let (mut s, _) = accept_one(&l);
            // Until the client is gone.
            while s.write_all(&chunk).is_ok() {}
        });
        let mut cmd = sockit();
        cmd.args(connect_args(extra, &[], &addr));
        let mut p = PipedStdout::spawn(cmd);
        assert_eq!(p.read_then_close(10), first);
        let (st, err) = p.wait_exit();
        assert_eq!(st.code(), Some(0), "{extra:?}: {err}");
        assert_eq!(err, "", "{extra:?}");
        server.join().unwrap();
    }
}

#[test]
fn closed_stdout_on_the_listener_exits_quietly() {
    let (_dir, path) = sock_path("pipe.sock");
    let mut cmd = sockit();
    cmd.args(["listen", "-v", &format!("unix:{path}")]);
    let mut p = PipedStdout::spawn(cmd);
    p.wait_stderr("listening on ");
    let chunk = random_bytes(64 * 1024, 9);
    let first = chunk[..10].to_vec();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    let writer = thread::spawn(move || while s.write_all(&chunk).is_ok() {});
    assert_eq!(p.read_then_close(10), first);
    let (st, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(!err.contains("error") && !err.contains("warning"), "{err}");
    writer.join().unwrap();
}
