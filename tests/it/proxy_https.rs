//! `-x https://` (TLS to the proxy, then CONNECT or absolute-form requests
//! inside it) through a real HTTPS proxy, `ncat -l --proxy-type http --ssl`,
//! to a private nginx on plain HTTP and on HTTPS (TLS inside the proxy's
//! TLS), for `http` (compared with `curl -x`), `connect` and `chat join`;
//! `--proxy-cacert`, `--proxy-insecure`, and a proxy certificate that does
//! not verify.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when `bin` is installed; otherwise the test is skipped (a failure under CI).
fn peer(test: &str, bin: &str) -> bool {
    if have(bin) || Path::new(&format!("/usr/sbin/{bin}")).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {bin} is missing (see .ci/run peers)"
    );
    skipped(test, &format!("{bin} is not installed"));
    false
}

/// A self-signed certificate for 127.0.0.1 and localhost (`openssl req -x509`,
/// CA flag set, used as the leaf, as people make them) and its key.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A child killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts on `port`, or `child` exits (then false).
fn listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTPS proxy: ncat's HTTP proxy (CONNECT, GET) with TLS, on a free port.
fn ncat_https_proxy(cert: &Path, key: &Path) -> (Guard, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new("ncat")
            .args(["-l", "--proxy-type", "http", "--ssl", "--ssl-cert"])
            .arg(cert)
            .arg("--ssl-key")
            .arg(key)
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ncat");
        if listening(&mut child, port) {
            return (Guard(child), port);
        }
    }
    panic!("ncat did not start after 5 attempts");
}

/// nginx on free ports: plain HTTP and HTTPS (with `cert`), `/hello.txt`.
struct Nginx {
    _nginx: NginxProc,
    _dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
}

fn nginx(cert: &Path, key: &Path) -> Nginx {
    let dir = nginx_dir();
    let p = dir.path();
    std::fs::write(p.join("www/hello.txt"), "hello from nginx\n").unwrap();
    let config = |ports: &[u16], root: bool| {
        let (port, tls_port) = (ports[0], ports[1]);
        let user = if root { "user root;" } else { "" };
        let d = p.display();
        format!(
            r#"{user}
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {d}/www;
    }}
}}
"#,
            cert = cert.display(),
            key = key.display(),
        )
    };
    let (nginx, ports) = start_nginx(p, 2, config);
    Nginx {
        _nginx: nginx,
        _dir: dir,
        port: ports[0],
        tls_port: ports[1],
    }
}

fn run_out(prog: &str, args: &[&str]) -> Output {
    let mut cmd = if prog == "sockit" {
        sockit()
    } else {
        Command::new(prog)
    };
    cmd.args(args).stdin(Stdio::null());
    output_within(cmd)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the tests share: the certificates, the proxy, nginx.
struct Setup {
    dir: tempfile::TempDir,
    proxy_cert: PathBuf,
    site_cert: PathBuf,
    proxy: String,
    ng: Nginx,
    _ncat: Guard,
}

fn setup(test: &str) -> Option<Setup> {
    for bin in ["ncat", "openssl", "nginx", "curl"] {
        if !peer(test, bin) {
            return None;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (proxy_cert, proxy_key) = self_signed(dir.path(), "proxy");
    let (site_cert, site_key) = self_signed(dir.path(), "site");
    let (ncat, port) = ncat_https_proxy(&proxy_cert, &proxy_key);
    let ng = nginx(&site_cert, &site_key);
    Some(Setup {
        dir,
        proxy_cert,
        site_cert,
        proxy: format!("https://127.0.0.1:{port}"),
        ng,
        _ncat: ncat,
    })
}

#[test]
fn http_and_https_urls_through_an_https_proxy_like_curl() {
    let Some(s) = setup("http_and_https_urls_through_an_https_proxy_like_curl") else {
        return;
    };
    let pca = s.proxy_cert.to_str().unwrap();
    let sca = s.site_cert.to_str().unwrap();
    let plain = format!("http://127.0.0.1:{}/hello.txt", s.ng.port);
    let tls = format!("https://localhost:{}/hello.txt", s.ng.tls_port);
    let cases: [&[&str]; 3] = [
        // Absolute-form GET inside the TLS session with the proxy.
        &["-x", &s.proxy, "--proxy-cacert", pca, &plain],
        // CONNECT inside that session, then TLS with nginx inside the tunnel.
        &["-x", &s.proxy, "--proxy-cacert", pca, "--cacert", sca, &tls],
        &["-x", &s.proxy, "--proxy-insecure", "--cacert", sca, &tls],
    ];
    for args in cases {
        let ours = run_out("sockit", &[&["http", "-sS"][..], args].concat());
        assert!(ours.status.success(), "{args:?}: {}", text(&ours.stderr));
        assert_eq!(text(&ours.stdout), "hello from nginx\n", "{args:?}");
        let theirs = run_out("curl", &[&["-sS"][..], args].concat());
        assert_eq!(theirs.stdout, ours.stdout, "curl {args:?}");
    }
    // -v says the tunnel went through the https:// proxy.
    let out = run_out(
        "sockit",
        &[
            "http",
            "-v",
            "-o",
            "/dev/null",
            "-x",
            &s.proxy,
            "--proxy-cacert",
            pca,
            "--cacert",
            sca,
            &tls,
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("through {}", s.proxy)), "{err}");
}

#[test]
fn proxy_credentials_go_inside_the_proxys_tls() {
    let test = "proxy_credentials_go_inside_the_proxys_tls";
    let Some(s) = setup(test) else {
        return;
    };
    // A second ncat that wants Basic credentials.
    let (key, cert) = (s.dir.path().join("proxy.key"), s.proxy_cert.clone());
    let mut started = None;
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new("ncat")
            .args(["-l", "--proxy-type", "http", "--proxy-auth", "me:secret"])
            .args(["--ssl", "--ssl-cert"])
            .arg(&cert)
            .arg("--ssl-key")
            .arg(&key)
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ncat");
        if listening(&mut child, port) {
            started = Some((Guard(child), port));
            break;
        }
    }
    let (_ncat, port) = started.expect("ncat did not start");
    let pca = s.proxy_cert.to_str().unwrap();
    let sca = s.site_cert.to_str().unwrap();
    let tls = format!("https://localhost:{}/hello.txt", s.ng.tls_port);
    let with_url = format!("https://me:secret@127.0.0.1:{port}");
    let bare = format!("https://127.0.0.1:{port}");
    let pass: [&[&str]; 2] = [
        &[
            "-x",
            &with_url,
            "--proxy-cacert",
            pca,
            "--cacert",
            sca,
            &tls,
        ],
        &[
            "-x",
            &bare,
            "-U",
            "me:secret",
            "--proxy-cacert",
            pca,
            "--cacert",
            sca,
            &tls,
        ],
    ];
    for args in pass {
        let out = run_out("sockit", &[&["http", "-sS"][..], args].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hello from nginx\n");
    }
    // Without them: the proxy's 407, exit 56 as curl, never the password.
    let args = [
        "-sS",
        "-x",
        &bare,
        "--proxy-cacert",
        pca,
        "--cacert",
        sca,
        &tls,
    ];
    let ours = run_out("sockit", &[&["http"][..], &args[..]].concat());
    let err = text(&ours.stderr);
    assert_eq!(ours.status.code(), Some(56), "{err}");
    assert!(err.contains("--proxy-user"), "{err}");
    assert_eq!(run_out("curl", &args).status.code(), Some(56), "curl");
    let args = [
        "-sS",
        "-x",
        &with_url,
        "-U",
        "me:wrong",
        "--proxy-cacert",
        pca,
        &tls,
    ];
    let err = text(&run_out("sockit", &[&["http"][..], &args[..]].concat()).stderr);
    assert!(!err.contains("wrong") && !err.contains("secret"), "{err}");
}

#[test]
fn a_proxy_certificate_that_does_not_verify() {
    let Some(s) = setup("a_proxy_certificate_that_does_not_verify") else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/hello.txt", s.ng.port);
    let (other, _) = self_signed(s.dir.path(), "other");
    let other = other.to_str().unwrap();
    let want = format!(
        "sockit: error: TLS handshake with proxy {} failed (",
        s.proxy
    );
    for extra in [&[][..], &["--proxy-cacert", other][..]] {
        let args = [&["-sS", "-x", &s.proxy][..], extra, &[&url]].concat();
        let ours = run_out("sockit", &[&["http"][..], &args].concat());
        let err = text(&ours.stderr);
        // curl's class for a certificate that does not verify: 60.
        assert_eq!(ours.status.code(), Some(60), "{extra:?}: {err}");
        assert!(err.starts_with(&want), "{err}");
        assert!(err.contains("--proxy-insecure"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(ours.stdout.is_empty());
        let theirs = run_out("curl", &args);
        assert_eq!(theirs.status.code(), Some(60), "curl {extra:?}");
    }
    // connect and chat join: the TLS class (exit 8), the same line.
    for cmd in [&["connect"][..], &["chat", "join"][..]] {
        let target = format!("127.0.0.1:{}", s.ng.port);
        let out = run_out("sockit", &[cmd, &["-x", &s.proxy, &target]].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{cmd:?}: {err}");
        assert!(err.starts_with(&want), "{cmd:?}: {err}");
    }
}

#[test]
fn connect_and_chat_join_through_an_https_proxy() {
    let Some(s) = setup("connect_and_chat_join_through_an_https_proxy") else {
        return;
    };
    let pca = s.proxy_cert.to_str().unwrap();
    let sca = s.site_cert.to_str().unwrap();
    // ncat ends the tunnel when the client's side ends: stdin stays open
    // until the answer is in.
    let get = b"GET /hello.txt HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let cases = [
        vec![format!("127.0.0.1:{}", s.ng.port)],
        vec![
            "--tls".into(),
            "--cacert".into(),
            sca.into(),
            format!("localhost:{}", s.ng.tls_port),
        ],
    ];
    for target in cases {
        let mut cmd = sockit();
        cmd.args(["connect", "-x", &s.proxy, "--proxy-cacert", pca])
            .args(&target);
        let mut p = Proc::spawn(cmd);
        p.write(get);
        p.wait_stdout(b"hello from nginx\n");
        p.close_stdin();
        let (_, out, err) = p.wait_exit();
        assert!(
            text(&out).starts_with("HTTP/1.1 200 OK\r\n"),
            "{target:?}: {err}"
        );
    }

    let (chat, addr) = chat_serve(&[]);
    let mut other = ChatClient::named(&addr, "ann");
    let mut join = sockit();
    join.args(["chat", "join", "-x", &s.proxy, "--proxy-cacert", pca, &addr]);
    let mut join = Proc::spawn(join);
    join.wait_stdout(b"welcome");
    join.write(b"hello through tls\n");
    other.expect("hello through tls");
    join.write(b"/quit\n");
    let (st, _, err) = join.wait_exit();
    assert!(st.success(), "{err}");
    drop(chat);
}
