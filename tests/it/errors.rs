//! Failures through the real binary: each error class has its exit status and one
//! `sockit: error: ...` line on stderr, never a panic or a backtrace.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::util::*;

const FORMS: &str = "accepted forms: HOST:PORT, :PORT, [IPV6]:PORT, tcp://HOST:PORT, \
udp://HOST:PORT, unix:/PATH, unix-dgram:/PATH, unix-seqpacket:/PATH, unix:@ABSTRACT";

fn fails(args: &[&str], code: i32) -> String {
    let out = run(args, b"");
    error_line(&out, code)
}

#[test]
fn refused_exits_4() {
    let addr = format!("127.0.0.1:{}", closed_port());
    assert_eq!(
        fails(&["connect", &addr], 4),
        format!("sockit: error: cannot connect to {addr} (connection refused, ECONNREFUSED)")
    );
    assert_eq!(
        fails(&["connect", "-w", "1", &format!("tcp://{addr}")], 4),
        format!("sockit: error: cannot connect to {addr} (connection refused, ECONNREFUSED)")
    );
}

/// A connected UDP socket learns of a closed port from the ICMP error; the
/// client reports it instead of waiting out -w and exiting 0.
#[test]
fn udp_to_a_closed_port_exits_4() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    drop(sock);
    let out = run(&["connect", "-u", "-w", "5", &addr], b"anyone there?\n");
    assert_eq!(
        error_line(&out, 4),
        "sockit: error: connection failed (connection refused, ECONNREFUSED)"
    );
}

/// A listener with backlog 0 that never accepts, its queue filled by connections
/// from the test: further SYNs are dropped, so a connect can only time out.
fn full_listener() -> (Socket, Vec<TcpStream>, SocketAddr) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => held.push(s),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                assert!(!held.is_empty(), "the first connection must be queued");
                return (l, held, addr);
            }
        }
    }
    panic!("the kernel kept queueing connections on a backlog-0 listener");
}

#[test]
fn connect_timeout_exits_5() {
    let (_l, _held, addr) = full_listener();
    assert_eq!(
        fails(&["connect", "-w", "1", &addr.to_string()], 5),
        format!("sockit: error: cannot connect to {addr} (timed out after 1s)")
    );
    assert_eq!(
        fails(&["connect", "-z", "-w", "0.5", &addr.to_string()], 5),
        format!("sockit: error: cannot connect to {addr} (timed out after 500ms)")
    );
}

#[test]
fn address_in_use_exits_6() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    assert_eq!(
        fails(&["listen", &addr], 6),
        format!("sockit: error: cannot bind {addr} (address already in use, EADDRINUSE)")
    );

    let held_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = held_udp.local_addr().unwrap().to_string();
    assert_eq!(
        fails(&["listen", "-u", &addr], 6),
        format!("sockit: error: cannot bind {addr} (address already in use, EADDRINUSE)")
    );
    assert_eq!(
        fails(&["listen", "--echo", &format!("udp://{addr}")], 6),
        format!("sockit: error: cannot bind {addr} (address already in use, EADDRINUSE)")
    );
}

#[test]
fn source_address_in_use_exits_6() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let src = held.local_addr().unwrap().to_string();
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = target.local_addr().unwrap().to_string();
    assert_eq!(
        fails(&["connect", "-s", &src, &addr], 6),
        format!(
            "sockit: error: cannot bind source address {src} (address already in use, EADDRINUSE)"
        )
    );
}

#[test]
fn malformed_endpoints_exit_2_and_show_the_forms() {
    let cases = [
        ("localhost", "missing :PORT"),
        ("127.0.0.1:", "port must be a number from 0 to 65535"),
        ("127.0.0.1:65536", "port must be a number from 0 to 65535"),
        ("::1:80", "IPv6 addresses need brackets, e.g. [::1]:8000"),
        ("[::1]80", "missing :PORT"),
        ("[nope]:1", "bad IPv6 address"),
        ("ftp://host:21", "unknown scheme"),
        ("unix:", "empty path"),
        ("unix:@", "empty abstract name"),
        ("unix-seqpacket:", "empty path"),
        ("bad host:1", "bad host name"),
    ];
    for (ep, why) in cases {
        for cmd in ["connect", "listen"] {
            assert_eq!(
                fails(&[cmd, ep], 2),
                format!("sockit: error: invalid endpoint '{ep}': {why}; {FORMS}"),
                "{cmd} {ep}"
            );
        }
    }
    assert_eq!(
        fails(&["connect", "-u", "tcp://127.0.0.1:1"], 2),
        format!(
            "sockit: error: invalid endpoint 'tcp://127.0.0.1:1': -u contradicts tcp://; {FORMS}"
        )
    );
}

#[test]
fn other_usage_errors_exit_2() {
    assert_eq!(
        fails(&["connect", "-s", "nonsense", "127.0.0.1:1"], 2),
        "sockit: error: invalid --source 'nonsense': expected IP or IP:PORT, e.g. 127.0.0.2 or [::1]:5000"
    );
    assert_eq!(
        fails(&["connect", "--tls", "-u", "127.0.0.1:1"], 2),
        "sockit: error: --tls needs a stream endpoint (TCP or unix:), not udp"
    );
    assert_eq!(
        fails(&["listen", "-e", "cat", "-u", "127.0.0.1:0"], 2),
        "sockit: error: --exec needs a connection-oriented endpoint, not udp"
    );
    let (_dir, path) = sock_path("acl.sock");
    assert_eq!(
        fails(
            &["listen", "--allow", "10.0.0.0/8", &format!("unix:{path}")],
            2
        ),
        "sockit: error: --allow/--deny filter IP addresses; they do not apply to Unix sockets"
    );
    assert!(
        !Path::new(&path).exists(),
        "nothing is bound on a usage error"
    );
    // Flags the parser rejects: status 2 as well, and no panic.
    for args in [
        &["connect", "--no-such-flag", "127.0.0.1:1"][..],
        &["connect", "-w", "soon", "127.0.0.1:1"][..],
        &["connect"][..],
        &["listen", "-k", "-m", "0", "127.0.0.1:0"][..],
    ] {
        let out = run(args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("sockit: error: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn unknown_host_exits_3() {
    // The .invalid top-level domain never resolves (RFC 6761).
    for args in [
        &["connect", "nonexistent.invalid:80"][..],
        &["connect", "-u", "-w", "1", "nonexistent.invalid:53"][..],
        &["listen", "nonexistent.invalid:0"][..],
    ] {
        let line = fails(args, 3);
        assert!(
            line.starts_with("sockit: error: cannot resolve nonexistent.invalid (")
                && line.ends_with(')'),
            "{args:?}: {line}"
        );
    }
    // A literal of the wrong family for -4 / -6 does not "resolve" either.
    assert_eq!(
        fails(&["connect", "-4", "[::1]:80"], 3),
        "sockit: error: cannot resolve [::1] (no IPv4 address)"
    );
    assert_eq!(
        fails(&["connect", "-6", "127.0.0.1:80"], 3),
        "sockit: error: cannot resolve 127.0.0.1 (no IPv6 address)"
    );
}

/// `sockit connect EP` sends `data` to the one-client listener `l` and half-closes;
/// once `l` has printed it, `l`'s stdin ends too, so both can finish.
fn send_to_listener(l: &mut Proc, ep: &str, data: &[u8]) -> Proc {
    let mut cmd = sockit();
    cmd.args(["connect", ep]);
    let mut c = Proc::spawn(cmd);
    c.write(data);
    c.close_stdin();
    l.wait_stdout(data);
    l.close_stdin();
    c
}

const KINDS: [&str; 3] = ["unix", "unix-dgram", "unix-seqpacket"];

/// A second `listen` on a live socket's path fails with "in use" (whatever the
/// socket types) and leaves the first listener undisturbed: its probe is not a
/// client the first listener sees.
#[test]
fn live_unix_socket_path_is_in_use_and_left_alone() {
    for first_kind in KINDS {
        let (_dir, path) = sock_path("live.sock");
        let (mut first, addr) = listen(&[&format!("{first_kind}:{path}")]);
        assert_eq!(addr, path);
        for kind in KINDS {
            assert_eq!(
                fails(&["listen", &format!("{kind}:{path}")], 6),
                format!("sockit: error: cannot bind {path} (address already in use, EADDRINUSE)"),
                "{kind} over a live {first_kind}"
            );
        }
        assert!(Path::new(&path).exists(), "{first_kind}");
        if first_kind == "unix-dgram" {
            continue;
        }
        // The first listener still owns its path, and its one client is ours.
        let c = send_to_listener(&mut first, &format!("{first_kind}:{path}"), b"still here\n");
        assert!(c.wait_exit().0.success(), "{first_kind}");
        let (st, out, err) = first.wait_exit();
        assert!(st.success(), "{first_kind}: {err}");
        assert_eq!(out, b"still here\n");
        assert_eq!(
            count(&err, "connection from"),
            1,
            "{first_kind}: the probes reached the listener:\n{err}"
        );
        assert!(
            !Path::new(&path).exists(),
            "the listener removes its socket file"
        );
    }

    // A socket held by another program is in use too.
    let (_dir, path) = sock_path("held.sock");
    let held = UnixListener::bind(&path).unwrap();
    held.set_nonblocking(true).unwrap();
    for kind in KINDS {
        assert_eq!(
            fails(&["listen", &format!("{kind}:{path}")], 6),
            format!("sockit: error: cannot bind {path} (address already in use, EADDRINUSE)")
        );
    }
    assert!(Path::new(&path).exists());
    let probed = held.accept();
    assert!(probed.is_err(), "a probe connected to the holder");
}

#[test]
fn regular_file_at_the_path_is_never_deleted() {
    let (_dir, path) = sock_path("precious.txt");
    std::fs::write(&path, b"do not delete").unwrap();
    for kind in KINDS {
        assert_eq!(
            fails(&["listen", &format!("{kind}:{path}")], 1),
            format!("sockit: error: cannot bind {path} (file exists, EEXIST)"),
            "{kind}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"do not delete");
    }
}

#[test]
fn stale_unix_socket_is_replaced() {
    let (_dir, path) = sock_path("stale.sock");
    // std leaves the file behind when the listener is dropped.
    drop(UnixListener::bind(&path).unwrap());
    assert!(Path::new(&path).exists());
    let out = run(&["connect", &format!("unix:{path}")], b"");
    assert_eq!(
        error_line(&out, 4),
        format!("sockit: error: cannot connect to {path} (connection refused, ECONNREFUSED)")
    );
    let (mut l, addr) = listen(&[&format!("unix:{path}")]);
    assert_eq!(addr, path);
    assert!(
        l.stderr_now()
            .contains(&format!("sockit: removing stale socket {path}\n")),
        "{}",
        l.stderr_now()
    );
    let c = send_to_listener(&mut l, &format!("unix:{path}"), b"fresh\n");
    assert!(c.wait_exit().0.success());
    let (st, out, _) = l.wait_exit();
    assert!(st.success());
    assert_eq!(out, b"fresh\n");
}

#[test]
fn unix_paths_that_cannot_work() {
    let (dir, path) = sock_path("x.sock");
    let missing_dir = dir.path().join("no/such/dir/x.sock");
    let missing_dir = missing_dir.to_str().unwrap();
    assert_eq!(
        fails(&["listen", &format!("unix:{missing_dir}")], 1),
        format!("sockit: error: cannot bind {missing_dir} (no such file or directory, ENOENT)")
    );
    assert_eq!(
        fails(&["connect", &format!("unix:{path}")], 1),
        format!("sockit: error: cannot connect to {path} (no such file or directory, ENOENT)")
    );
    let long = format!("unix:/{}", "x".repeat(200));
    let line = fails(&["connect", &long], 2);
    assert!(
        line.starts_with("sockit: error: invalid unix address /xxx"),
        "{line}"
    );
}

#[test]
fn idle_timeout_is_a_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut cmd = sockit();
    cmd.args(["connect", "-i", "0.3", &addr]);
    let p = Proc::spawn(cmd);
    let _conn = accept_one(&l);
    let (st, out, err) = p.wait_exit();
    let out = std::process::Output {
        status: st,
        stdout: out,
        stderr: err.into_bytes(),
    };
    assert_eq!(
        error_line(&out, 5),
        "sockit: error: idle timeout: no traffic (timed out after 300ms)"
    );
}

#[test]
fn help_has_the_exit_status_table() {
    let out = run(&["--help"], b"");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let table = help
        .split_once("Exit status:\n")
        .unwrap_or_else(|| panic!("no exit status table in:\n{help}"))
        .1;
    let lines: Vec<&str> = table.lines().take(10).collect();
    let want = [
        "  0  success",
        "  1  I/O error",
        "  2  usage error",
        "  3  host name could not be resolved",
        "  4  connection refused",
        "  5  timed out",
        "  6  address already in use",
        "  7  permission denied",
        "  8  TLS",
        "  9  TLS peer closed without close_notify",
    ];
    for (line, want) in lines.iter().zip(want) {
        assert!(
            line.starts_with(want),
            "{line:?} should start with {want:?}"
        );
    }
    assert_eq!(lines.len(), want.len());
    // Every error class, with its code and words, is in the table.
    for class in sockit::error::Class::ALL {
        let row = format!("  {}  {}", class.exit_code(), class.describe());
        assert!(help.contains(&row), "missing {row:?} in:\n{help}");
    }
    for sub in ["connect", "listen"] {
        let out = run(&[sub, "--help"], b"");
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Exit status"), "{sub} --help: {help}");
    }
}

/// No error path prints a panic message or asks for a backtrace, even with
/// RUST_BACKTRACE set in the environment.
#[test]
fn errors_never_panic() {
    let closed = format!("127.0.0.1:{}", closed_port());
    for (args, code) in [
        (&["connect", &closed][..], 4),
        (&["connect", "nonexistent.invalid:1"][..], 3),
        (&["listen", "bad"][..], 2),
        (
            &["listen", "-x", "/nonexistent/dir/dump", "127.0.0.1:0"][..],
            1,
        ),
    ] {
        let mut cmd = sockit();
        cmd.args(args).env("RUST_BACKTRACE", "1");
        let mut p = Proc::spawn(cmd);
        p.close_stdin();
        let (status, stdout, stderr) = p.wait_exit();
        let out = std::process::Output {
            status,
            stdout,
            stderr: stderr.into_bytes(),
        };
        error_line(&out, code);
    }
}
