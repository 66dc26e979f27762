//! sockit against real peers: OpenBSD netcat (Debian's `nc.openbsd`) as client and
//! as server, over TCP and Unix sockets, both directions and binary data; and the
//! tutorial's own Python client and server.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const NC: &str = "nc.openbsd";

fn nc(args: &[&str]) -> Proc {
    require(NC);
    let mut cmd = Command::new(NC);
    cmd.args(args);
    Proc::spawn(cmd)
}

/// Every byte value, then `n` pseudo-random bytes.
fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend(random_bytes(n, seed));
    v
}

/// Waits (bounded) until a Unix stream socket listens on `path` (/proc/net/unix).
fn wait_unix_listening(path: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
        // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = listening.
        let listening = text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8 && f[7] == path && f[3] == "00010000"
        });
        if listening {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on {path}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Data both ways between `sockit listen` (one client) and a client; `client`
/// must half-close at its stdin EOF. Each side's stdout is exactly what the
/// other side sent.
fn with_sockit_listener(listen_ep: &str, client: impl Fn(&str) -> Proc, down: &[u8], up: &[u8]) {
    let (mut l, addr) = listen(&[listen_ep]);
    let mut c = client(&addr);
    l.wait_stderr("connection from ");
    l.write(down);
    c.wait_stdout_bytes(down.len());
    c.write(up);
    c.close_stdin();
    l.wait_stdout_bytes(up.len());
    l.close_stdin();
    let (st, out, err) = l.wait_exit();
    assert!(st.success(), "sockit listen: {err}");
    assert_same("client to sockit listen", &out, up);
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "client: {err}");
    assert_same("sockit listen to client", &out, down);
}

/// Data both ways between a server and `sockit connect`; the server half-closes
/// at its stdin EOF.
fn with_sockit_client(server: &mut Proc, connect_ep: &str, down: &[u8], up: &[u8]) {
    let mut c = spawn_connect(&[connect_ep]);
    server.write(down);
    c.wait_stdout_bytes(down.len());
    c.write(up);
    c.close_stdin();
    server.wait_stdout_bytes(up.len());
    server.close_stdin();
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "sockit connect: {err}");
    assert_same("server to sockit connect", &out, down);
    assert_eq!(err, "");
}

#[test]
fn nc_client_to_sockit_listen() {
    with_sockit_listener(
        "127.0.0.1:0",
        |addr| {
            let (host, port) = addr.rsplit_once(':').unwrap();
            nc(&["-N", host, port])
        },
        b"hello from sockit\n",
        b"hello from nc\n",
    );
}

#[test]
fn nc_client_to_sockit_listen_binary() {
    with_sockit_listener(
        "127.0.0.1:0",
        |addr| {
            let (host, port) = addr.rsplit_once(':').unwrap();
            nc(&["-N", host, port])
        },
        &payload(2 << 20, 11),
        &payload(2 << 20, 12),
    );
}

#[test]
fn nc_unix_client_to_sockit_listen() {
    let (_dir, path) = sock_path("nc.sock");
    with_sockit_listener(
        &format!("unix:{path}"),
        |addr| nc(&["-N", "-U", addr]),
        &payload(1 << 20, 13),
        &payload(1 << 20, 14),
    );
}

#[test]
fn sockit_connect_to_nc_server() {
    let port = closed_port();
    let port_s = port.to_string();
    let mut server = nc(&["-N", "-l", "127.0.0.1", &port_s]);
    wait_tcp_listening(port);
    with_sockit_client(
        &mut server,
        &format!("127.0.0.1:{port}"),
        b"hello from nc\n",
        b"hello from sockit\n",
    );
    let (st, out, err) = server.wait_exit();
    assert!(st.success(), "nc: {err}");
    assert_eq!(String::from_utf8_lossy(&out), "hello from sockit\n");
}

#[test]
fn sockit_connect_to_nc_server_binary() {
    let down = payload(2 << 20, 21);
    let up = payload(2 << 20, 22);
    let port = closed_port();
    let port_s = port.to_string();
    let mut server = nc(&["-N", "-l", "127.0.0.1", &port_s]);
    wait_tcp_listening(port);
    with_sockit_client(&mut server, &format!("127.0.0.1:{port}"), &down, &up);
    let (st, out, err) = server.wait_exit();
    assert!(st.success(), "nc: {err}");
    assert_same("sockit connect to nc", &out, &up);
}

#[test]
fn sockit_connect_to_nc_unix_server() {
    let (_dir, path) = sock_path("ncl.sock");
    let mut server = nc(&["-N", "-lU", &path]);
    wait_unix_listening(&path);
    let down = payload(1 << 20, 31);
    let up = payload(1 << 20, 32);
    with_sockit_client(&mut server, &format!("unix:{path}"), &down, &up);
    let (st, out, err) = server.wait_exit();
    assert!(st.success(), "nc: {err}");
    assert_same("sockit connect to nc -U", &out, &up);
}

/// `nc -u` sends a datagram to `sockit listen --echo -u` and prints the echo.
#[test]
fn nc_udp_client_to_sockit_echo() {
    let (_l, addr) = listen(&["--echo", "-u", "127.0.0.1:0"]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut c = nc(&["-u", host, port]);
    c.write(b"datagram one\n");
    c.wait_stdout(b"datagram one\n");
    c.write(b"datagram two\n");
    c.wait_stdout(b"datagram one\ndatagram two\n");
    assert_eq!(c.stdout_now(), b"datagram one\ndatagram two\n");
}

/// The tutorial's greeting client, verbatim but for the port.
const TUTORIAL_CLIENT: &str = "\
import socket
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.connect(('127.0.0.1', PORT))
client.send('baihuixin'.encode('utf8'))
data = client.recv(1024)
print(data.decode('utf8'))
client.close()
";

/// The tutorial's server; it binds port 0 and prints the port it got first.
const TUTORIAL_SERVER: &str = "\
import socket
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(('127.0.0.1', 0))
print(server.getsockname()[1], flush=True)
server.listen(1)
sock, addr = server.accept()
data = sock.recv(1024)
print(data.decode('utf8'))
sock.send(\"hello {}\".format(data.decode('utf8')).encode('utf8'))
sock.close()
server.close()
";

fn python(script: &str) -> Proc {
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    Proc::spawn(cmd)
}

#[test]
fn tutorial_client_against_sockit_greet() {
    let (_l, addr) = listen(&["--greet", "127.0.0.1:0"]);
    let port = addr.rsplit_once(':').unwrap().1;
    let mut client = python(&TUTORIAL_CLIENT.replace("PORT", port));
    client.close_stdin();
    let (st, out, err) = client.wait_exit();
    assert!(st.success(), "python: {err}");
    assert_eq!(String::from_utf8_lossy(&out), "hello baihuixin\n");
}

#[test]
fn sockit_connect_against_tutorial_server() {
    let mut server = python(TUTORIAL_SERVER);
    server.close_stdin();
    let first = server.wait_stdout(b"\n");
    let port = String::from_utf8_lossy(&first).trim().to_string();
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("port line {port:?}"));
    // printf baihuixin | sockit connect 127.0.0.1:PORT
    let out = run(&["connect", &format!("127.0.0.1:{port}")], b"baihuixin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello baihuixin");
    let (st, out, err) = server.wait_exit();
    assert!(st.success(), "python: {err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        format!("{port}\nbaihuixin\n")
    );
}
