//! What `-v` and the chat say when a TLS peer hangs up without ending TLS:
//! what happened, in words, never a link to a library's API docs (rustls's
//! message carries a docs.rs URL).

use std::process::Command;

use crate::util::*;

/// A TLS client (python3's ssl) that changes its nick, then closes the TCP
/// connection without sending close_notify.
const HANG_UP: &str = r#"
import socket, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE
s = c.wrap_socket(socket.create_connection((host, int(port)), timeout=20))
s.sendall(b"/nick tlsgone\n")
buf = b""
while b"is now tlsgone" not in buf:
    d = s.recv(4096)
    if not d:
        sys.exit("closed before the nick change")
    buf += d
raw = socket.socket(fileno=s.detach())  # the TCP socket, TLS left unfinished
raw.shutdown(socket.SHUT_WR)
try:
    while raw.recv(4096):
        pass
except OSError:
    pass
raw.close()
"#;

#[test]
fn a_tls_hang_up_is_said_in_words_not_a_docs_link() {
    require("python3");
    let (srv, addr) = chat_serve(&["--no-console", "--tls-self-signed"]);
    let out = Command::new("python3")
        .args(["-c", HANG_UP, &addr])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = srv.wait_stderr("tlsgone left (");
    let line = said
        .lines()
        .find(|l| l.contains("tlsgone left ("))
        .unwrap()
        .to_string();
    assert!(!line.contains("docs.rs"), "{line}");
    assert!(
        line.contains("without ending TLS (no close_notify"),
        "{line}"
    );
}

#[test]
fn a_count_of_one_takes_the_singular() {
    use std::io::{Read, Write};
    // listen's refusal log.
    let (l, addr) = listen(&["-k", "-m", "1", "127.0.0.1:0"]);
    let mut a = tcp(&addr);
    a.write_all(b"a\n").unwrap();
    l.wait_stdout(b"a\n");
    let mut b = tcp(&addr);
    assert_eq!(read_all(&mut b), b"");
    l.wait_stderr("1 connection already (-m/--max-conns)");
    assert!(!l.stderr_now().contains("1 connections"));

    // chat's refusal line.
    let (_srv, addr) = chat_serve(&["--no-console", "--max-clients", "1"]);
    let _first = ChatClient::connect(&addr);
    let mut c = tcp(&addr);
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert_eq!(s, "! server full (1 client), try again later\n");

    // http's usage error.
    let out = run(&["http", "-o", "a", "-o", "b", "http://127.0.0.1:9/"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, "sockit: error: 2 -o files for 1 URL\n");
}
