//! sockit against ncat and socat: TLS both ways with `ncat --ssl`, and socat as a
//! Unix seqpacket peer (client and server), checking the exact bytes each side got.

use std::process::Command;

use crate::util::*;

fn peer(prog: &str, args: &[&str]) -> Proc {
    require(prog);
    let mut cmd = Command::new(prog);
    cmd.args(args);
    Proc::spawn(cmd)
}

#[test]
fn ncat_ssl_client_to_sockit_tls_echo() {
    let (mut l, addr) = listen(&["--tls-self-signed", "--echo", "-k", "127.0.0.1:0"]);
    l.close_stdin();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let payload = random_bytes(256 << 10, 31);
    let mut c = peer("ncat", &["--ssl", host, port]);
    // ncat waits on the socket, not on OpenSSL's buffer, so the last record can
    // sit unread until its stdin ends: end it, then compare everything.
    c.write(&payload);
    c.close_stdin();
    let (st, got, err) = c.wait_exit();
    assert!(st.success(), "ncat: {err}");
    assert_same("echo through ncat --ssl", &got, &payload);
}

#[test]
fn sockit_tls_client_to_ncat_ssl_server() {
    let port = closed_port().to_string();
    let mut server = peer("ncat", &["--ssl", "-l", "127.0.0.1", &port]);
    wait_tcp_listening(port.parse().unwrap());
    let mut c = spawn_connect(&["--tls", "--insecure", &format!("127.0.0.1:{port}")]);
    c.write(b"from sockit\n");
    server.wait_stdout(b"from sockit\n");
    server.write(b"from ncat\n");
    c.wait_stdout(b"from ncat\n");
    c.close_stdin();
    server.close_stdin();
    let (st, out, err) = c.wait_exit();
    assert_eq!(out, b"from ncat\n");
    // ncat ends its TLS sessions without close_notify: sockit may not call that
    // a clean end, but it must say why rather than fail silently.
    assert!(
        st.success() || err.contains("close_notify"),
        "sockit connect --tls: {err}"
    );
}

#[test]
fn socat_seqpacket_client_to_sockit_listen() {
    let (_dir, path) = sock_path("sp.sock");
    let (mut l, _) = listen(&["--echo", "-k", &format!("unix-seqpacket:{path}")]);
    l.close_stdin();
    let mut c = peer("socat", &["-", &format!("UNIX-CONNECT:{path},socktype=5")]);
    c.write(b"one message\n");
    c.wait_stdout(b"one message\n");
    c.close_stdin();
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "socat: {err}");
    assert_eq!(out, b"one message\n");
}

#[test]
fn sockit_seqpacket_client_to_socat_server() {
    let (_dir, path) = sock_path("sp.sock");
    let mut server = peer("socat", &[&format!("UNIX-LISTEN:{path},socktype=5"), "-"]);
    let deadline = std::time::Instant::now() + WAIT;
    while !std::path::Path::new(&path).exists() {
        assert!(std::time::Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut c = spawn_connect(&[&format!("unix-seqpacket:{path}")]);
    // One message per stdin line; socat writes each message it receives.
    c.write(b"first\nsecond\n");
    server.wait_stdout(b"first\nsecond\n");
    server.write(b"reply\n");
    c.wait_stdout(b"reply\n");
    server.close_stdin();
    c.close_stdin();
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "sockit connect: {err}");
    assert_eq!(out, b"reply\n");
}
