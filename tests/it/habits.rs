//! Habits users bring from nc, ncat and socat, and the first run: one-line
//! usage errors with a hint, `connect HOST PORT`, `listen PORT`, `-l -p`,
//! `-z` port ranges, `listen -6` as IPv6 only, `connect -e`, and the
//! `relay A B` port forward.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

use crate::util::*;

/// Spawns `sockit ARGS...` and waits for its `listening on ADDR` line (printed
/// without -v when the port is 0); returns it and ADDR.
fn until_listening(args: &[&str]) -> (Proc, String) {
    let mut cmd = sockit();
    cmd.args(args);
    let p = Proc::spawn(cmd);
    p.wait_stderr("listening on ");
    // The whole line (bounded).
    let deadline = std::time::Instant::now() + WAIT;
    let err = loop {
        let err = p.stderr_now();
        if err
            .split("listening on ")
            .nth(1)
            .is_some_and(|r| r.contains('\n'))
        {
            break err;
        }
        assert!(std::time::Instant::now() < deadline, "no full line: {err}");
        thread::sleep(std::time::Duration::from_millis(5));
    };
    let addr = err
        .lines()
        .find_map(|l| l.split("listening on ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    (p, addr)
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap().to_string()
}

/// Sends `data` then half-closes, reading everything back on another thread.
fn round_trip<S: Read + Write + Send + Sync>(s: S, data: Vec<u8>, close: impl FnOnce(&S)) -> Vec<u8>
where
    for<'a> &'a S: Read + Write,
{
    thread::scope(|sc| {
        let reader = sc.spawn(|| {
            let mut got = Vec::new();
            (&s).read_to_end(&mut got).unwrap();
            got
        });
        (&s).write_all(&data).unwrap();
        close(&s);
        reader.join().unwrap()
    })
}

fn tcp_round_trip(addr: &str, data: Vec<u8>) -> Vec<u8> {
    let s = tcp(addr);
    s.set_read_timeout(Some(WAIT)).unwrap();
    round_trip(s, data, |s| s.shutdown(Shutdown::Write).unwrap())
}

#[test]
fn listen_on_port_zero_says_where_without_v() {
    let (mut l, addr) = until_listening(&["listen", "127.0.0.1:0"]);
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    let mut s = tcp(&addr);
    s.write_all(b"hi\n").unwrap();
    l.wait_stdout(b"hi\n");
    drop(s);
    l.close_stdin();
    let (_, _, err) = l.wait_exit();
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn usage_errors_are_one_line_with_a_pointer_to_help() {
    let cases: [(&[&str], &str); 5] = [
        (&["connect"], "(see sockit connect --help)"),
        (&["listen", "--bogus", ":1"], "unexpected argument '--bogus' found (see sockit listen --help)"),
        (
            &["connect", "-w", "x", "h:1"],
            "invalid value 'x' for '--wait <SECS>' ('x' is not a number of seconds; see sockit connect --help)",
        ),
        (&["conect", "h:1"], "did you mean 'connect'?"),
        (&["relay", ":1"], "(see sockit relay --help)"),
    ];
    for (args, want) in cases {
        let line = error_line(&run(args, b""), 2);
        assert!(line.contains(want), "{args:?}: {line}");
    }
    // Help and version are not errors.
    let out = run(&["connect", "--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
    let out = run(&["--version"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"sockit 0.1.0\n");
}

#[test]
fn endpoint_mistakes_get_a_did_you_mean() {
    let line = error_line(&run(&["connect", "127.0.0.1 80"], b""), 2);
    assert!(line.contains("did you mean 127.0.0.1:80?"), "{line}");
    let line = error_line(&run(&["connect", "80"], b""), 2);
    assert!(line.contains("did you mean 127.0.0.1:80"), "{line}");
    let line = error_line(&run(&["connect", "127.0.0.1:20-25"], b""), 2);
    assert!(line.contains("needs -z"), "{line}");
}

#[test]
fn connect_takes_host_and_port_apart() {
    let (mut l, addr) = listen(&["127.0.0.1:0"]);
    l.close_stdin();
    let out = run(&["connect", "127.0.0.1", &port_of(&addr)], b"apart\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    l.wait_stdout(b"apart\n");
}

#[test]
fn listen_takes_a_bare_port_and_nc_l_p() {
    for form in [
        &["PORT"][..],
        &["-l", "-p", "PORT"],
        &["-lp", "PORT"],
        &["127.0.0.1", "PORT"],
    ] {
        let port = closed_port().to_string();
        let args: Vec<&str> = form
            .iter()
            .map(|a| if *a == "PORT" { port.as_str() } else { a })
            .collect();
        let mut cmd = sockit();
        cmd.arg("listen").arg("-v").args(&args);
        let l = Proc::spawn(cmd);
        l.wait_stderr("listening on ");
        let mut s = tcp(&format!("127.0.0.1:{port}"));
        s.write_all(b"nc habit\n").unwrap();
        l.wait_stdout(b"nc habit\n");
    }
}

#[test]
fn zero_scan_of_a_range_reports_open_ports() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = open.local_addr().unwrap().port();
    let (lo, hi) = (p.saturating_sub(3).max(1), p.saturating_add(3));
    let range = format!("{lo}-{hi}");
    let joined = format!("127.0.0.1:{range}");
    for args in [
        vec!["connect", "-z", "-v", "-w", "2", joined.as_str()],
        vec![
            "connect",
            "-zv",
            "--scan-concurrency",
            "2",
            "127.0.0.1",
            range.as_str(),
        ],
    ] {
        let out = run(&args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            err.contains(&format!("sockit: 127.0.0.1 {p} (tcp) open\n")),
            "{err}"
        );
        for line in err.lines() {
            assert!(line.ends_with("(tcp) open"), "{line}");
        }
    }
    let line = error_line(&run(&["connect", "-zu", "127.0.0.1", &range], b""), 2);
    assert!(line.contains("TCP ports only"), "{line}");
    // Nothing open: exit 1, and nothing said without -v.
    let closed = closed_port();
    let out = run(
        &["connect", "-z", "127.0.0.1", &format!("{closed}-{closed}")],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn listen_6_is_ipv6_only_and_the_default_dual_stack() {
    if !have_ipv6() {
        eprintln!("skipped: no IPv6 on this machine");
        return;
    }
    let (l, addr) = until_listening(&["listen", "-6", ":0"]);
    let port = port_of(&addr);
    assert!(
        TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "IPv4 client got in"
    );
    let mut s = tcp(&format!("[::1]:{port}"));
    s.write_all(b"six\n").unwrap();
    l.wait_stdout(b"six\n");
    drop((s, l));

    let (l, addr) = until_listening(&["listen", ":0"]);
    let mut s = tcp(&format!("127.0.0.1:{}", port_of(&addr)));
    s.write_all(b"four\n").unwrap();
    l.wait_stdout(b"four\n");

    let (l, addr) = until_listening(&["listen", "--ipv4", ":0"]);
    assert!(TcpStream::connect(format!("[::1]:{}", port_of(&addr))).is_err());
    drop(l);
}

#[test]
fn connect_runs_a_program_on_the_connection() {
    let (mut l, addr) = listen(&["127.0.0.1:0"]);
    let c = spawn_connect(&["-e", "tr a-z A-Z", &addr]);
    l.write(b"shout\n");
    l.close_stdin();
    l.wait_stdout(b"SHOUT\n");
    let (st, _, err) = c.wait_exit();
    assert!(st.success(), "{err}");

    let (l, addr) = listen(&["127.0.0.1:0"]);
    let c = spawn_connect(&["--sh-exec", "echo from the shell", &addr]);
    l.wait_stdout(b"from the shell\n");
    let (st, _, err) = c.wait_exit();
    assert!(st.success(), "{err}");

    let line = error_line(&run(&["connect", "-e", "no-such-program-x", &addr], b""), 2);
    assert!(line.contains("no-such-program-x"), "{line}");
}

/// `listen --echo` on TCP, and `relay` in front of it.
fn echo_behind_relay(relay_args: &[&str]) -> (Proc, Proc, String) {
    let (echo, echo_addr) = listen(&["--echo", "127.0.0.1:0"]);
    let mut args = vec!["relay"];
    args.extend_from_slice(relay_args);
    args.push(&echo_addr);
    let (relay, addr) = until_listening(&args);
    (echo, relay, addr)
}

#[test]
fn relay_forwards_8_mib_exactly() {
    let (_echo, relay, addr) = echo_behind_relay(&["127.0.0.1:0"]);
    let data = random_bytes(8 << 20, 11);
    let got = tcp_round_trip(&addr, data.clone());
    assert_same("echoed through the relay", &got, &data);
    // Without -k: one client, then the relay exits 0.
    let (st, _, err) = relay.wait_exit();
    assert!(st.success(), "{err}");
}

#[test]
fn relay_from_unix_to_tcp() {
    let (_dir, path) = sock_path("fwd.sock");
    let (_echo, echo_addr) = listen(&["--echo", "127.0.0.1:0"]);
    let mut cmd = sockit();
    cmd.args(["relay", "-v", &format!("unix:{path}"), &echo_addr]);
    let relay = Proc::spawn(cmd);
    relay.wait_stderr("listening on ");
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let data = random_bytes(1 << 20, 12);
    let got = round_trip(s, data.clone(), |s| s.shutdown(Shutdown::Write).unwrap());
    assert_same("unix -> tcp echo", &got, &data);
}

#[test]
fn relay_k_serves_many_clients_at_once() {
    let (_echo, _relay, addr) = echo_behind_relay(&["-k", "127.0.0.1:0"]);
    thread::scope(|sc| {
        let clients: Vec<_> = (0..24u64)
            .map(|i| {
                let addr = addr.clone();
                sc.spawn(move || {
                    let data = random_bytes(64 * 1024 + i as usize, 100 + i);
                    let got = tcp_round_trip(&addr, data.clone());
                    assert_same(&format!("client {i}"), &got, &data);
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    });
}

#[test]
fn relay_passes_half_close_both_ways() {
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let b_addr = b.local_addr().unwrap().to_string();
    let (_relay, addr) = until_listening(&["relay", "127.0.0.1:0", &b_addr]);
    let server = thread::spawn(move || {
        let (mut s, _) = accept_one(&b);
        s.set_read_timeout(Some(WAIT)).unwrap();
        // read_to_end returns only once the client's half-close came through.
        let got = read_all(&mut s);
        s.write_all(b"after your EOF").unwrap();
        got
    });
    let got = tcp_round_trip(&addr, b"question".to_vec());
    assert_eq!(server.join().unwrap(), b"question");
    assert_eq!(got, b"after your EOF");
}

#[test]
fn relay_closes_the_client_when_b_is_unreachable() {
    let closed = format!("127.0.0.1:{}", closed_port());
    let (relay, addr) = until_listening(&["relay", "-k", "127.0.0.1:0", &closed]);
    let mut s = tcp(&addr);
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the client is closed");
    let err = relay.wait_stderr("cannot connect to");
    assert!(
        err.contains(&format!("cannot connect to {closed} (connection refused")),
        "{err}"
    );

    // Without -k the one client's failure is the command's: exit 4.
    let (relay, addr) = until_listening(&["relay", "127.0.0.1:0", &closed]);
    let s = tcp(&addr);
    let (st, _, err) = relay.wait_exit();
    drop(s);
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(
        err.ends_with(&format!(
            "sockit: error: cannot connect to {closed} (connection refused, ECONNREFUSED)\n"
        )),
        "{err}"
    );
}

#[test]
fn quick_start_commands_are_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for cmd in [
        "cargo run --release -- chat serve",
        ".ci/run",
        "cargo install --path .",
    ] {
        assert!(readme.contains(cmd), "README lacks `{cmd}`");
    }
}

/// `connect unix-seqpacket:` from a file into `listen unix-seqpacket: >
/// out` (the threaded message path): every byte, in order, both with
/// lines and with --datagram-size.
#[test]
fn seqpacket_file_transfer_is_exact() {
    let data = random_bytes(4 << 20, 21);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    for extra in [&[][..], &["--datagram-size", "65507"][..]] {
        let (_d, path) = sock_path("bulk.sock");
        let ep = format!("unix-seqpacket:{path}");
        let (mut l, _) = listen(&[&ep]);
        l.close_stdin();
        let mut cmd = sockit();
        cmd.arg("connect").args(extra).arg(&ep);
        let c = Proc::spawn_with_stdin(cmd, std::fs::File::open(&input).unwrap().into());
        let (st, _, err) = c.wait_exit();
        assert!(st.success(), "{err}");
        let (st, out, err) = l.wait_exit();
        assert!(st.success(), "{err}");
        assert_same(&format!("seqpacket {extra:?}"), &out, &data);
    }
}

#[test]
fn chat_serve_says_where_and_how_to_join_without_v() {
    let mut cmd = sockit();
    cmd.args(["chat", "serve", "127.0.0.1:0"]);
    let p = Proc::spawn(cmd);
    let err = p.wait_stderr("/help for commands\n");
    let addr = err
        .split("chat listening on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();
    let (host, port) = addr.rsplit_once(':').unwrap();
    assert!(
        err.contains(&format!(
            "sockit: join with: nc {host} {port} or sockit chat join {addr}\n"
        )),
        "{err}"
    );
    assert!(
        err.contains("this terminal is the operator, server"),
        "{err}"
    );
    // The instructions work: an nc-style client is welcomed.
    let mut s = tcp(&addr);
    s.write_all(b"/nick newcomer\n").unwrap();
    p.wait_stdout(b"newcomer");
}
