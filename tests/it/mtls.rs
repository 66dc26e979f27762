//! Client certificates (`--cert`/`--key` on the clients, `--tls-client-ca`
//! on the servers) against `openssl s_client`/`s_server` and curl, with a CA
//! and certificates made here; and `--cacert` naming a plain self-signed
//! certificate made by `openssl req -x509` (CA flag set) that the server uses
//! as its own leaf.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::util::*;

/// A CA, a server certificate for localhost and 127.0.0.1, a client
/// certificate for alice signed by the CA, and one for mallory signed by
/// another CA, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            (p.self_signed(&key).unwrap(), key)
        };
        let (ca_cert, ca_key) = ca("sockit test CA");
        let (other_cert, other_key) = ca("another CA");
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());

        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        write("server.pem", cert.pem());
        write("server.key", key.serialize_pem());

        for (who, by, by_key) in [
            ("alice", &ca_cert, &ca_key),
            ("mallory", &other_cert, &other_key),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, who);
            p.distinguished_name
                .push(DnType::OrganizationName, "Example");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.signed_by(&key, by, by_key).unwrap();
            write(&format!("{who}.pem"), cert.pem());
            write(&format!("{who}.key"), key.serialize_pem());
            write(
                &format!("{who}-both.pem"),
                format!("{}{}", cert.pem(), key.serialize_pem()),
            );
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// The server flags of `listen` and `chat serve`, requiring client certificates.
    fn server_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server.key"),
            "--tls-client-ca".into(),
            self.path("ca.pem"),
        ]
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd` with stdin closed and waits (bounded) for its output.
fn output_of(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    output_within(cmd)
}

fn sockit_out(args: &[&str]) -> Output {
    let mut cmd = sockit();
    cmd.args(args);
    output_of(cmd)
}

fn peer(test: &str, bin: &str) -> bool {
    if have(bin) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {bin} is missing (see .ci/run peers)"
    );
    skipped(test, &format!("{bin} is not installed"));
    false
}

/// A peer server killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -www` on a free port with `cert`/`key`; with `client_ca`,
/// a client certificate is required.
fn s_server(cert: &str, key: &str, client_ca: Option<&str>) -> (Guard, u16) {
    let port = closed_port();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_server",
        "-www",
        "-accept",
        &port.to_string(),
        "-cert",
        cert,
        "-key",
        key,
    ]);
    if let Some(ca) = client_ca {
        cmd.args(["-CAfile", ca, "-Verify", "1"]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp_listening(port);
    (Guard(child), port)
}

#[test]
fn listen_requires_and_reports_client_certificates() {
    let test = "listen_requires_and_reports_client_certificates";
    let pki = Pki::new();
    let mut args: Vec<String> = vec!["-k".into()];
    args.extend(pki.server_flags());
    args.extend(["-c".into(), "printf '%s\\n' \"$SOCKIT_PEER_CERT\"".into()]);
    args.push("127.0.0.1:0".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, addr) = listen(&args);
    let (ca, alice, alice_key) = (
        pki.path("ca.pem"),
        pki.path("alice.pem"),
        pki.path("alice.key"),
    );

    let out = sockit_out(&[
        "connect", "--tls", "--cacert", &ca, "--cert", &alice, "--key", &alice_key, &addr,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "CN=alice, O=Example\n");
    server.wait_stderr("client certificate CN=alice, O=Example");
    // The key inside the certificate file.
    let out = sockit_out(&[
        "connect",
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &pki.path("alice-both.pem"),
        &addr,
    ]);
    assert_eq!(
        text(&out.stdout),
        "CN=alice, O=Example\n",
        "{}",
        text(&out.stderr)
    );
    // A certificate file without the key, and no --key.
    let out = sockit_out(&["connect", "--tls", "--cacert", &ca, "--cert", &alice, &addr]);
    let line = error_line(&out, 8);
    assert!(line.contains("give it with --key"), "{line}");

    // No certificate: refused on both sides, with words for it.
    let out = sockit_out(&["connect", "--tls", "--cacert", &ca, &addr]);
    let line = error_line(&out, 8);
    assert!(
        line.contains("the server requires a client certificate: give one with --cert"),
        "{line}"
    );
    server.wait_stderr("peer sent no certificates");
    // One from another CA.
    let out = sockit_out(&[
        "connect",
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &pki.path("mallory-both.pem"),
        &addr,
    ]);
    let line = error_line(&out, 8);
    assert!(
        line.contains("the server refused the client certificate"),
        "{line}"
    );
    server.wait_stderr("UnknownIssuer");

    if peer(test, "openssl") {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client", "-quiet", "-ign_eof", "-connect", &addr, "-CAfile", &ca,
        ]);
        cmd.args(["-cert", &alice, "-key", &alice_key]);
        let out = output_of(cmd);
        assert!(
            text(&out.stdout).contains("CN=alice, O=Example"),
            "{}",
            text(&out.stderr)
        );
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client", "-quiet", "-ign_eof", "-connect", &addr, "-CAfile", &ca,
        ]);
        let out = output_of(cmd);
        assert!(!text(&out.stdout).contains("CN="), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("certificate required"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn chat_serve_requires_client_certificates() {
    let pki = Pki::new();
    let flags = pki.server_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (server, addr) = chat_serve(&flags);
    let ca = pki.path("ca.pem");
    let mut join = sockit();
    join.args([
        "chat",
        "join",
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &pki.path("alice-both.pem"),
        &addr,
    ]);
    let mut join = Proc::spawn(join);
    join.wait_stdout(b"welcome");
    server.wait_stderr("client certificate CN=alice, O=Example");
    join.write(b"/quit\n");
    assert!(join.wait_exit().0.success());
    let out = sockit_out(&["chat", "join", "--tls", "--cacert", &ca, &addr]);
    let line = error_line(&out, 8);
    assert!(line.contains("requires a client certificate"), "{line}");
    // --tls-client-ca without a TLS server is a usage error.
    let out = sockit_out(&["chat", "serve", "--tls-client-ca", &ca, "127.0.0.1:0"]);
    let line = error_line(&out, 2);
    assert!(
        line.contains("--tls-client-ca needs a TLS server"),
        "{line}"
    );
}

#[test]
fn client_certificate_to_openssl_s_server_like_curl() {
    let test = "client_certificate_to_openssl_s_server_like_curl";
    if !peer(test, "openssl") || !peer(test, "curl") {
        return;
    }
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let (_s, port) = s_server(&pki.path("server.pem"), &pki.path("server.key"), Some(&ca));
    let url = format!("https://localhost:{port}/");
    let cert_args = [
        "--cacert",
        &ca,
        "--cert",
        &pki.path("alice.pem"),
        "--key",
        &pki.path("alice.key"),
    ];
    let ours = sockit_out(&[&["http", "-s"][..], &cert_args, &[&url]].concat());
    let mut curl = Command::new("curl");
    curl.arg("-s").args(cert_args).arg(&url);
    let theirs = output_of(curl);
    assert_eq!(ours.status.code(), Some(0), "{}", text(&ours.stderr));
    assert_eq!(theirs.status.code(), Some(0));
    // s_server's page shows the client certificate it verified.
    for out in [&ours, &theirs] {
        assert!(text(&out.stdout).contains("Subject: CN=alice, O=Example"));
    }
    // Without one: the server's alert, curl's 56 for both.
    let ours = sockit_out(&["http", "-sS", "--cacert", &ca, &url]);
    let mut curl = Command::new("curl");
    curl.args(["-s", "--cacert", &ca, &url]);
    let theirs = output_of(curl);
    assert_eq!(ours.status.code(), theirs.status.code());
    assert!(
        text(&ours.stderr).contains("CertificateRequired"),
        "{}",
        text(&ours.stderr)
    );

    // connect presents it too.
    let mut cmd = sockit();
    cmd.args([
        "connect",
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &pki.path("alice-both.pem"),
    ])
    .arg(format!("localhost:{port}"));
    let mut p = Proc::spawn(cmd);
    p.write(b"GET / HTTP/1.0\r\n\r\n");
    p.wait_stdout(b"Subject: CN=alice, O=Example");
    drop(p);
}

/// `openssl req -x509` as people run it: a self-signed certificate, which
/// OpenSSL marks CA:TRUE, for `cn` and these subject alternative names.
fn openssl_self_signed(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName={san}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("CA:TRUE"), "not CA-flagged");
    (cert, key)
}

#[test]
fn cacert_accepts_the_servers_own_self_signed_certificate() {
    let test = "cacert_accepts_the_servers_own_self_signed_certificate";
    if !peer(test, "openssl") || !peer(test, "curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_self_signed(
        dir.path(),
        "leaf",
        "localhost",
        "DNS:localhost,IP:127.0.0.1",
    );
    let (other, _) = openssl_self_signed(dir.path(), "other", "localhost", "DNS:localhost");
    let (cert, key, other) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        other.to_str().unwrap(),
    );
    let (_s, port) = s_server(cert, key, None);
    let same = |args: &[&str]| {
        let ours = sockit_out(&[&["http", "-s", "-o", "/dev/null"][..], args].concat());
        let mut curl = Command::new("curl");
        curl.args(["-s", "-o", "/dev/null"]).args(args);
        let theirs = output_of(curl);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{args:?}: {}",
            text(&ours.stderr)
        );
        ours.status.code().unwrap()
    };
    let url = format!("https://localhost:{port}/");
    assert_eq!(same(&["--cacert", cert, &url]), 0);
    assert_eq!(
        same(&["--cacert", cert, &format!("https://127.0.0.1:{port}/")]),
        0
    );
    // Still checked: the name, and that it is this certificate.
    let wrong = format!("wrong.test:{port}:127.0.0.1");
    let wrong_url = format!("https://wrong.test:{port}/");
    assert_eq!(
        same(&["--resolve", &wrong, "--cacert", cert, &wrong_url]),
        60
    );
    assert_eq!(same(&["--cacert", other, &url]), 60);

    // connect and listen with the same pair.
    let (mut server, addr) = listen(&["--tls-cert", cert, "--tls-key", key, "127.0.0.1:0"]);
    server.write(b"trusted\n");
    server.close_stdin();
    let out = sockit_out(&["connect", "--recv-only", "--tls", "--cacert", cert, &addr]);
    assert_eq!(text(&out.stdout), "trusted\n", "{}", text(&out.stderr));
}

/// Item by item, the flags that mean the same thing have the same names.
#[test]
fn flag_names_agree_across_subcommands() {
    let help = |cmd: &[&str]| {
        let out = sockit_out(&[cmd, &["--help"][..]].concat());
        assert!(out.status.success());
        text(&out.stdout)
    };
    for cmd in [&["connect"][..], &["chat", "join"], &["http"]] {
        let h = help(cmd);
        assert!(h.contains("-k, --insecure"), "{cmd:?}");
        assert!(h.contains("-x, --proxy <URL>"), "{cmd:?}");
        assert!(
            h.contains("--cert <PEM>") && h.contains("--key <PEM>"),
            "{cmd:?}"
        );
    }
    let relay = help(&["relay"]);
    assert!(relay.contains("-k, --keep-open") && relay.contains("    --insecure"));
    for cmd in [
        &["connect"][..],
        &["listen"],
        &["relay"],
        &["http"],
        &["ping"],
        &["chat", "serve"],
        &["chat", "join"],
    ] {
        let h = help(cmd);
        assert!(
            h.contains("-4, --ipv4") && h.contains("-6, --ipv6"),
            "{cmd:?}"
        );
        let v = sockit_out(&[cmd, &["--version"][..]].concat());
        assert_eq!(
            text(&v.stdout),
            format!("sockit {}\n", env!("CARGO_PKG_VERSION")),
            "{cmd:?}"
        );
    }
    for cmd in [&["listen"][..], &["chat", "serve"], &["relay"]] {
        assert!(help(cmd).contains("--tls-client-ca <PEM>"), "{cmd:?}");
    }
    assert!(!help(&["chat", "serve"]).contains("--udp"));
    assert!(help(&["listen"]).contains("-x, --hex-dump <FILE>"));
    assert!(help(&["connect"]).contains("    --hex-dump <FILE>"));
}
