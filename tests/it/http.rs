//! `sockit http` against a real nginx, started per test with its own prefix,
//! config, logs and ephemeral ports in a temporary directory, killed on drop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::*;

/// A private nginx instance: HTTP on `port`, HTTPS on `tls_port` with a leaf
/// certificate for localhost/127.0.0.1 signed by a test CA (`ca.pem`).
struct Nginx {
    _nginx: NginxProc,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
}

/// Test CA and a leaf certificate signed by it: (ca.pem, cert.pem, key.pem) contents.
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sockit test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

impl Nginx {
    fn start() -> Nginx {
        let dir = nginx_dir();
        let p = dir.path();
        let (ca, cert, key) = test_pki();
        std::fs::write(p.join("ca.pem"), ca).unwrap();
        std::fs::write(p.join("cert.pem"), cert).unwrap();
        std::fs::write(p.join("key.pem"), key).unwrap();
        std::fs::write(p.join("www/hello.txt"), "hello from nginx\n").unwrap();
        let text: String = (0..2000)
            .map(|i| format!("line {i} of some compressible text\n"))
            .collect();
        std::fs::write(p.join("www/text.txt"), text).unwrap();
        std::fs::write(p.join("www/big.bin"), random_bytes(24 << 20, 99)).unwrap();
        let (nginx, ports) = start_nginx(p, 2, |ports, root| config(p, ports[0], ports[1], root));
        Nginx {
            _nginx: nginx,
            dir,
            port: ports[0],
            tls_port: ports[1],
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn tls_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls_port)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    /// Access log lines: "connection requests method uri status". nginx writes a
    /// line after its response went out, so this polls until there are at least
    /// `lines` of them (bounded by `WAIT`; the caller's asserts then say what is
    /// missing).
    fn access_log(&self, lines: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let log: Vec<String> = std::fs::read_to_string(self.path("logs/access.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            if log.len() >= lines || Instant::now() >= deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn config(p: &Path, port: u16, tls_port: u16, root: bool) -> String {
    let d = p.display();
    format!(
        r#"{user}
# One process, no workers: killing it leaves nothing behind.
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 128; }}
http {{
    log_format conn '$connection $connection_requests $request_method $uri $status';
    access_log {d}/logs/access.log conn;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {d}/www;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 1;
        location = /redirect {{ return 301 /hello.txt; }}
        location = /redirect-post {{ return 302 /echo-method; }}
        location = /redirect-307 {{ return 307 /post; }}
        location = /loop {{ return 302 /loop; }}
        location = /echo-method {{ return 200 "$request_method\n"; }}
        location = /post {{
            proxy_set_header X-Body $request_body;
            proxy_set_header X-Method $request_method;
            proxy_pass http://127.0.0.1:{port}/echo;
        }}
        location = /echo {{ return 200 "$http_x_method $http_content_type [$http_x_body]\n"; }}
        location /chunked/ {{
            alias {d}/www/;
            sub_filter_once off;
            sub_filter 'hello' 'HELLO';
            sub_filter_types *;
        }}
    }}
}}
"#,
        user = if root { "user root;" } else { "" },
    )
}

fn http(args: &[&str]) -> (i32, Vec<u8>, String) {
    let mut all = vec!["http"];
    all.extend_from_slice(args);
    let out = run(&all, b"");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn get_head_and_include() {
    let ng = Nginx::start();
    let (code, out, err) = http(&[&ng.url("/hello.txt")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"hello from nginx\n");
    let (code, out, err) = http(&["-I", &ng.url("/hello.txt")]);
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 17\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "HEAD has no body: {text}");
    let (code, out, _) = http(&["-i", &ng.url("/nope")]);
    assert_eq!(code, 0);
    assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    assert_eq!(http(&["-f", &ng.url("/nope")]).0, 22);
    let log = ng.access_log(4);
    assert!(
        log.iter().any(|l| l.ends_with("HEAD /hello.txt 200")),
        "{log:?}"
    );
}

#[test]
fn post_with_a_body() {
    let ng = Nginx::start();
    let (code, out, err) = http(&["-d", "a=1&b=two", &ng.url("/post")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "POST application/x-www-form-urlencoded [a=1&b=two]\n"
    );
    let (code, out, err) = http(&["-X", "PUT", "--json", "{\"k\":1}", &ng.url("/post")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "PUT application/json [{\"k\":1}]\n"
    );
}

#[test]
fn chunked_and_gzip() {
    let ng = Nginx::start();
    let expected = std::fs::read(ng.path("www/text.txt")).unwrap();
    // sub_filter makes the length unknown: nginx answers chunked.
    let (code, out, err) = http(&["-v", &ng.url("/chunked/hello.txt")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"HELLO from nginx\n");
    assert!(err.contains("< Transfer-Encoding: chunked"), "{err}");
    // gzip on the fly is chunked too; --compressed decodes it.
    let (code, out, err) = http(&["-v", "--compressed", &ng.url("/text.txt")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("< Content-Encoding: gzip"), "{err}");
    assert!(err.contains("< Transfer-Encoding: chunked"), "{err}");
    assert!(
        out == expected,
        "decoded body differs ({} bytes)",
        out.len()
    );
    // -w counts bytes on the wire, not decoded ones.
    let (_, out, _) = http(&[
        "-s",
        "-o",
        "/dev/null",
        "--compressed",
        "-w",
        "%{size_download}",
        &ng.url("/text.txt"),
    ]);
    let wire: usize = String::from_utf8_lossy(&out).parse().unwrap();
    assert!(wire > 0 && wire < expected.len() / 4, "{wire}");
    // Without --compressed nothing is asked for and nothing decoded.
    let (_, out, _) = http(&[&ng.url("/text.txt")]);
    assert!(out == expected);
}

#[test]
fn redirects() {
    let ng = Nginx::start();
    let (code, out, err) = http(&["-w", "%{http_code}", &ng.url("/redirect")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(b"301"));
    let (code, out, err) = http(&[
        "-L",
        "-w",
        " %{num_redirects} %{url_effective}",
        &ng.url("/redirect"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        format!("hello from nginx\n 1 {}", ng.url("/hello.txt"))
    );
    // 302 after POST: GET without the body. 307: POST again, with the body.
    let (_, out, _) = http(&["-L", "-d", "x=1", &ng.url("/redirect-post")]);
    assert_eq!(out, b"GET\n");
    let (_, out, _) = http(&["-L", "-d", "x=1", &ng.url("/redirect-307")]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "POST application/x-www-form-urlencoded [x=1]\n"
    );
    let (code, _, err) = http(&["-L", "--max-redirs", "5", &ng.url("/loop")]);
    assert_eq!(code, 47, "{err}");
}

#[test]
fn keep_alive_across_urls() {
    let ng = Nginx::start();
    let urls: Vec<String> = [
        "/hello.txt",
        "/nope",
        "/text.txt",
        "/redirect",
        "/hello.txt",
    ]
    .iter()
    .map(|p| ng.url(p))
    .collect();
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let (code, _, err) = http(&args);
    assert_eq!(code, 0, "{err}");
    let log = ng.access_log(5);
    assert_eq!(log.len(), 5, "{log:?}");
    let conn = log[0].split(' ').next().unwrap().to_string();
    for (i, line) in log.iter().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[0], conn, "one connection for all: {log:?}");
        assert_eq!(f[1], (i + 1).to_string(), "{log:?}");
    }
}

#[test]
fn https_with_a_test_ca() {
    let ng = Nginx::start();
    let ca = ng.ca();
    let (code, out, err) = http(&[
        "-v",
        "--cacert",
        &ca,
        &ng.tls_url("localhost", "/hello.txt"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"hello from nginx\n");
    assert!(err.contains("ALPN: http/1.1"), "{err}");
    let (code, out, err) = http(&["--cacert", &ca, &ng.tls_url("127.0.0.1", "/hello.txt")]);
    assert_eq!(
        (code, out.as_slice()),
        (0, &b"hello from nginx\n"[..]),
        "{err}"
    );
    // Not signed by a system root: verification fails (60); -k skips it.
    let (code, _, err) = http(&[&ng.tls_url("localhost", "/hello.txt")]);
    assert_eq!(code, 60, "{err}");
    assert!(err.contains("certificate"), "{err}");
    let (code, out, _) = http(&["-k", &ng.tls_url("localhost", "/hello.txt")]);
    assert_eq!((code, out.as_slice()), (0, &b"hello from nginx\n"[..]));
    // The name must match: --resolve another name to the same server.
    let resolve = format!("wrong.test:{}:127.0.0.1", ng.tls_port);
    let (code, _, err) = http(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        &ng.tls_url("wrong.test", "/"),
    ]);
    assert_eq!(code, 60, "{err}");
    assert!(err.contains("wrong.test"), "{err}");
    // Keep-alive over TLS as well.
    let u = ng.tls_url("localhost", "/hello.txt");
    let (code, out, err) = http(&["--cacert", &ca, &u, &u, &u]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 3 * 17);
    // Three earlier successful requests, then these three.
    let log = ng.access_log(6);
    let last3: Vec<&str> = log[log.len() - 3..]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert!(last3.iter().all(|c| *c == last3[0]), "{log:?}");
    let (code, _, err) = http(&["--cacert", "/nonexistent/ca.pem", &u]);
    assert_eq!(code, 26, "{err}");
}

#[test]
fn large_binary_download_is_intact() {
    let ng = Nginx::start();
    let want = Sha256::digest(std::fs::read(ng.path("www/big.bin")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    for (i, url) in [ng.url("/big.bin"), ng.tls_url("localhost", "/big.bin")]
        .iter()
        .enumerate()
    {
        let file = dir.path().join(format!("out{i}.bin"));
        let (code, out, err) = http(&[
            "--cacert",
            &ng.ca(),
            "-o",
            file.to_str().unwrap(),
            "-w",
            "%{size_download}",
            url,
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(String::from_utf8_lossy(&out), (24u64 << 20).to_string());
        let got = Sha256::digest(std::fs::read(&file).unwrap());
        assert_eq!(got, want, "{url}");
    }
    // To stdout as well.
    let mut cmd = sockit();
    cmd.args(["http", "-s", &ng.url("/big.bin")]);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    assert_eq!(Sha256::digest(&out.stdout), want);
    let _ = std::io::stderr().flush();
}

/// curl, run the same way as `sockit http`: exit code, stdout, stderr.
fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    require("curl");
    let out = std::process::Command::new("curl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run curl");
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[test]
fn same_bytes_and_exit_code_as_curl() {
    let ng = Nginx::start();
    let cases: Vec<Vec<String>> = vec![
        vec![ng.url("/hello.txt")],
        vec!["-s".into(), "-L".into(), ng.url("/redirect")],
        vec!["-s".into(), "-f".into(), ng.url("/missing")],
        vec!["-s".into(), ng.url("/missing")],
        vec!["-s".into(), "--compressed".into(), ng.url("/text.txt")],
        vec!["-s".into(), ng.url("/chunked/hello.txt")],
        vec![
            "-s".into(),
            "-d".into(),
            "a=1&b=two".into(),
            ng.url("/post"),
        ],
        vec![
            "-s".into(),
            "-X".into(),
            "DELETE".into(),
            ng.url("/echo-method"),
        ],
        vec![
            "-s".into(),
            "--cacert".into(),
            ng.ca(),
            ng.tls_url("localhost", "/hello.txt"),
        ],
        vec![
            "-s".into(),
            "--max-redirs".into(),
            "3".into(),
            "-L".into(),
            ng.url("/loop"),
        ],
    ];
    for case in &cases {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        let (code, out, err) = http(&args);
        let (curl_code, curl_out) = curl(&args);
        assert_eq!(
            code, curl_code,
            "exit code for {args:?} (sockit stderr: {err})"
        );
        assert!(out == curl_out, "stdout differs from curl's for {args:?}");
    }
}
