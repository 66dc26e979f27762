//! TLS through the real binary: certificate files and self-signed certificates on
//! the listener; CA files, SNI, system roots, `--insecure` and pinning on the
//! client; TLS under the greet, broker and exec services.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::util::*;

/// A certificate for `localhost` and its key, as PEM files in a temporary directory.
struct Cert {
    _dir: tempfile::TempDir,
    cert: String,
    key: String,
    fingerprint: String,
}

fn make_cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let fingerprint = Sha256::digest(ck.cert.der().as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Cert {
        cert: cert.to_str().unwrap().into(),
        key: key.to_str().unwrap().into(),
        fingerprint,
        _dir: dir,
    }
}

/// `sockit listen --tls-cert C --tls-key K ARGS... 127.0.0.1:0`.
fn tls_listen(c: &Cert, args: &[&str]) -> (Proc, String) {
    let mut all = vec!["--tls-cert", &c.cert, "--tls-key", &c.key];
    all.extend_from_slice(args);
    all.push("127.0.0.1:0");
    listen(&all)
}

/// The fingerprint a listener printed on stderr.
fn printed_fingerprint(l: &Proc) -> String {
    let err = l.stderr_now();
    let line = err
        .lines()
        .find(|l| l.starts_with("sockit: TLS certificate SHA-256 "))
        .unwrap_or_else(|| panic!("no fingerprint line in {err:?}"));
    line["sockit: TLS certificate SHA-256 ".len()..].to_string()
}

/// `connect --tls` trusting `c` (its file as the CA, `localhost` as the name) to `addr`.
fn trusted<'a>(c: &'a Cert, addr: &'a str) -> [&'a str; 7] {
    [
        "connect",
        "--tls",
        "--cacert",
        &c.cert,
        "--sni",
        "localhost",
        addr,
    ]
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn round_trip_with_cacert_and_sni() {
    let c = make_cert();
    let (l, addr) = tls_listen(&c, &["--echo"]);
    assert_eq!(printed_fingerprint(&l), c.fingerprint);
    let data = random_bytes(300_000, 11);
    let out = run(&trusted(&c, &addr), &data);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert!(
        out.stdout == data,
        "echoed {} bytes, not the same",
        out.stdout.len()
    );
    let err = l.wait_stderr(" disconnected");
    assert!(err.contains("connection from 127.0.0.1:"), "stderr: {err}");
}

#[test]
fn wrong_sni_fails_with_exit_8_naming_the_name() {
    let c = make_cert();
    let (_l, addr) = tls_listen(&c, &["--echo"]);
    let out = run(
        &[
            "connect",
            "--tls",
            "--cacert",
            &c.cert,
            "--sni",
            "wrong.example",
            &addr,
        ],
        b"never sent\n",
    );
    assert_eq!(out.status.code(), Some(8), "stderr: {}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("TLS handshake with wrong.example failed"),
        "stderr: {err}"
    );
    assert!(err.contains("not valid for name"), "stderr: {err}");
    assert_eq!(out.stdout, b"");
}

#[test]
fn the_endpoint_address_is_verified_without_sni() {
    let c = make_cert();
    let (_l, addr) = tls_listen(&c, &["--echo"]);
    // The certificate names localhost, not 127.0.0.1.
    let out = run(&["connect", "--tls", "--cacert", &c.cert, &addr], b"x");
    assert_eq!(out.status.code(), Some(8), "stderr: {}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("TLS handshake with 127.0.0.1 failed"),
        "stderr: {err}"
    );
}

#[test]
fn system_roots_reject_a_private_certificate() {
    let c = make_cert();
    let (_l, addr) = tls_listen(&c, &["--echo"]);
    let out = run(&["connect", "--tls", "--sni", "localhost", &addr], b"x");
    assert_eq!(out.status.code(), Some(8), "stderr: {}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("TLS handshake with localhost failed") && err.contains("UnknownIssuer"),
        "stderr: {err}"
    );
    assert_eq!(out.stdout, b"");
}

#[test]
fn insecure_skips_verification() {
    let c = make_cert();
    let (_l, addr) = tls_listen(&c, &["--echo"]);
    let out = run(&["connect", "--tls", "--insecure", &addr], b"anyway\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"anyway\n");
}

#[test]
fn self_signed_prints_a_fingerprint_that_pins() {
    let (l, addr) = listen(&["--tls-self-signed", "--echo", "127.0.0.1:0"]);
    let fp = printed_fingerprint(&l);
    assert_eq!(fp.len(), 95, "{fp}");
    assert!(
        fp.split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())),
        "{fp}"
    );

    let out = run(
        &["connect", "--tls", "--pin-sha256", &fp, &addr],
        b"pinned\n",
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"pinned\n");

    // Any case, with or without colons.
    let plain = fp.replace(':', "").to_lowercase();
    let out = run(
        &["connect", "--tls", "--pin-sha256", &plain, &addr],
        b"again\n",
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"again\n");

    // One digit off: refused.
    let mut other = fp.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).unwrap();
    let out = run(&["connect", "--tls", "--pin-sha256", &other, &addr], b"x");
    assert_eq!(out.status.code(), Some(8), "stderr: {}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "certificate fingerprint {fp} does not match the pinned one"
        )),
        "stderr: {err}"
    );
    assert_eq!(out.stdout, b"");
}

#[test]
fn self_signed_is_not_trusted_without_a_pin() {
    let (_l, addr) = listen(&["--tls-self-signed", "--echo", "127.0.0.1:0"]);
    let out = run(&["connect", "--tls", &addr], b"x");
    assert_eq!(out.status.code(), Some(8), "stderr: {}", stderr_of(&out));
}

#[test]
fn greet_over_tls() {
    let c = make_cert();
    let (_l, addr) = tls_listen(&c, &["--greet"]);
    let out = run(&trusted(&c, &addr), b"baihuixin\nsecond\r\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"hello baihuixin\nhello second\r\n");
}

#[test]
fn broker_over_tls() {
    let c = make_cert();
    let (l, addr) = tls_listen(&c, &["--broker"]);
    let client = || {
        let mut cmd = sockit();
        cmd.args(trusted(&c, &addr));
        Proc::spawn(cmd)
    };
    let mut a = client();
    let mut b = client();
    l.wait_stderr_count("connection from", 2);
    // Both have joined once one of b's bytes reaches a (bytes sent before a
    // member joins are not delivered to it, so b repeats itself until then).
    let mut tries = 0;
    loop {
        b.write(b"s");
        if a.stdout_within(b"s", Duration::from_millis(300)) {
            break;
        }
        tries += 1;
        assert!(
            tries < 60,
            "clients did not join; listener: {}",
            l.stderr_now()
        );
    }
    b.write(b"E");
    let before = a.wait_stdout(b"E");
    assert!(
        before.iter().all(|c| *c == b's' || *c == b'E'),
        "{before:?}"
    );

    a.write(b"from a\n");
    b.wait_stdout(b"from a\n");
    b.write(b"from b\n");
    a.wait_stdout(b"Efrom b\n");

    a.close_stdin();
    let (st, out_a, err) = a.wait_exit();
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert!(out_a.ends_with(b"Efrom b\n"), "{out_a:?}");
    b.close_stdin();
    let (st, out_b, err) = b.wait_exit();
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    // Nothing of b's own came back to it.
    assert_eq!(out_b, b"from a\n");
}

#[test]
fn exec_over_tls() {
    let c = make_cert();
    let (_l, addr) = tls_listen(&c, &["--sh-exec", r#"printf "%s:" "$SOCKIT_PROTO"; cat"#]);
    let out = run(&trusted(&c, &addr), b"through the child\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"tcp+tls:through the child\n");
}

#[test]
fn tls_over_a_unix_socket() {
    let c = make_cert();
    let (_d, path) = sock_path("tls.sock");
    let ep = format!("unix:{path}");
    let (_l, _) = listen(&["--tls-cert", &c.cert, "--tls-key", &c.key, "--echo", &ep]);
    // A Unix endpoint verifies the name "localhost".
    let out = run(&["connect", "--tls", "--cacert", &c.cert, &ep], b"local\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"local\n");
}

#[test]
fn a_plain_client_does_not_break_a_tls_listener() {
    let c = make_cert();
    let (l, addr) = tls_listen(&c, &["--echo"]);
    let mut plain = tcp(&addr);
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // The listener answers with at most a TLS alert, then closes.
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        got.is_empty() || got[0] == 0x15,
        "plain client got non-alert bytes {got:?}"
    );
    let err = l.wait_stderr("TLS handshake with client failed");
    assert!(err.contains("127.0.0.1:"), "stderr: {err}");

    let out = run(&trusted(&c, &addr), b"next client\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"next client\n");
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let c = make_cert();
    let (l, addr) = tls_listen(&c, &["--echo", "--handshake-timeout", "0.5"]);
    let mut silent = tcp(&addr);
    // A stalled handshake does not hold up other clients.
    let out = run(&["connect", "--tls", "--insecure", &addr], b"meanwhile\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert_eq!(out.stdout, b"meanwhile\n");
    l.wait_stderr("TLS handshake timed out");
    assert_eq!(read_all(&mut silent), b"");
    silent.shutdown(Shutdown::Both).unwrap();
}
