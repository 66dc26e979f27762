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
    // One TLS record's worth: ncat waits on the socket rather than on
    // OpenSSL's buffer, so a second record read in the same go can sit unread.
    // And ncat is not asked to close: it resets its connections at the end,
    // which would truncate what is still in flight (sockit reports that).
    let payload = random_bytes(4096, 31);
    let mut c = peer("ncat", &["--ssl", host, port]);
    c.write(&payload);
    let got = c.wait_stdout_bytes(payload.len());
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
    // ncat resets its TLS connections when it ends (no close_notify), so
    // the exchange above is the test; how each side then ends is not.
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
