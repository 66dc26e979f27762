//! The curl habits of `sockit http` (-sS, --fail-with-body, -D, cookies, -F, -G,
//! -T, -r, -C, -e, -J, --output-dir, --retry, --limit-rate, -#, -u prompts,
//! --netrc, -w), each through the real binary against a private nginx, or a
//! small server in the test where nginx cannot produce the case, and where it
//! can be, compared with curl on the same case.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// A private nginx on a free loopback port, its files in a temporary directory.
struct Nginx {
    _nginx: NginxProc,
    dir: tempfile::TempDir,
    port: u16,
}

const BIG: usize = 3 << 20;

impl Nginx {
    fn start() -> Nginx {
        let dir = nginx_dir();
        let p = dir.path();
        std::fs::write(p.join("www/hello.txt"), "hello from nginx\n").unwrap();
        std::fs::write(p.join("www/big.bin"), random_bytes(BIG, 7)).unwrap();
        let (nginx, ports) = start_nginx(p, 1, |ports, root| config(p, ports[0], root));
        Nginx {
            _nginx: nginx,
            dir,
            port: ports[0],
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn config(p: &Path, port: u16, root: bool) -> String {
    let d = p.display();
    format!(
        r#"{user}
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location = /setcookie {{
            add_header Set-Cookie "a=1; Path=/";
            add_header Set-Cookie "p=2; Path=/only; HttpOnly";
            add_header Set-Cookie "gone=3; Max-Age=0";
            add_header Set-Cookie "ex=4; Expires=Wed, 21 Oct 2037 07:28:00 GMT";
            add_header Set-Cookie "dom=5; Domain=example.test; Path=/";
            add_header Set-Cookie "foreign=6; Domain=other.test";
            add_header Set-Cookie "sec=7; Secure";
            return 302 /showcookie;
        }}
        location = /showcookie {{ return 200 "cookie=[$http_cookie]\n"; }}
        location = /only/showcookie {{ return 200 "cookie=[$http_cookie]\n"; }}
        location = /showhdr {{ return 200 "referer=[$http_referer] range=[$http_range]\n"; }}
        location = /toshow {{ return 302 /showhdr; }}
        location = /away {{ return 302 http://a.example.test:$server_port/showcookie; }}
        location = /redirect {{ return 301 /hello.txt; }}
        location = /dl {{
            add_header Content-Disposition 'attachment; filename="../x/../report.txt"';
            try_files /hello.txt =404;
        }}
        location = /dldots {{
            add_header Content-Disposition 'attachment; filename=".."';
            try_files /hello.txt =404;
        }}
        location = /missing {{ return 404 "not here\n"; }}
        location /put/ {{ dav_methods PUT; create_full_put_path on; }}
    }}
}}
"#,
        user = if root { "user root;" } else { "" },
    )
}

/// Runs a program to completion (bounded) in `cwd` with `stdin`: exit code,
/// stdout, stderr.
fn run_in(prog: &str, args: &[&str], cwd: Option<&Path>, stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut cmd = if prog == "sockit" {
        let mut c = sockit();
        c.arg("http");
        c
    } else {
        require(prog);
        Command::new(prog)
    };
    cmd.args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut p = Proc::spawn(cmd);
    p.write(stdin);
    p.close_stdin();
    let (st, out, err) = p.wait_exit();
    (st.code().unwrap_or(-1), out, err)
}

fn sk(args: &[&str]) -> (i32, Vec<u8>, String) {
    run_in("sockit", args, None, b"")
}

fn curl(args: &[&str]) -> (i32, Vec<u8>, String) {
    run_in("curl", args, None, b"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads one request (head and Content-Length body) from `r`; None at EOF.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let l = text(&line).to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        raw.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    raw.extend_from_slice(&body);
    Some(raw)
}

/// A server that answers every request with `reply(n, request)` (n counts from
/// 0 over all connections) and keeps what it received.
struct Scripted {
    addr: String,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

type Reply = dyn Fn(usize, &[u8]) -> Option<Vec<u8>> + Send + Sync;

impl Scripted {
    fn start(reply: impl Fn(usize, &[u8]) -> Option<Vec<u8>> + Send + Sync + 'static) -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let reply: Arc<Reply> = Arc::new(reply);
        let s = seen.clone();
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let (s, reply) = (s.clone(), reply.clone());
                thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    while let Some(req) = read_request(&mut r) {
                        let n = {
                            let mut s = s.lock().unwrap();
                            s.push(req.clone());
                            s.len() - 1
                        };
                        match reply(n, &req) {
                            Some(resp) => {
                                if w.write_all(&resp).is_err() {
                                    return;
                                }
                            }
                            // Say nothing: the client times out.
                            None => thread::sleep(Duration::from_secs(30)),
                        }
                    }
                });
            }
        });
        Scripted { addr, seen }
    }

    /// Echoes each request back as the body.
    fn echo() -> Scripted {
        Scripted::start(|_, req| Some(ok(req)))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn status(code: u16, extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} Oops\r\n{extra}Content-Length: 5\r\n\r\noops\n").into_bytes()
}

/// A request's head line and one header's value.
fn header(req: &str, name: &str) -> Option<String> {
    req.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[test]
fn silent_show_error_and_fail_with_body() {
    let ng = Nginx::start();
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    // -s: no error line, only the exit status; -sS: the line too. As curl.
    let (code, _, err) = sk(&["-s", &closed]);
    assert_eq!((code, err.as_str()), (7, ""));
    let (code, _, err) = sk(&["-sS", &closed]);
    assert_eq!(code, 7);
    assert!(
        err.starts_with("sockit: error: ") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(curl(&["-s", &closed]).0, 7);
    assert_eq!(curl(&["-sS", &closed]).0, 7);
    // --fail-with-body writes the body and exits 22; -f writes nothing.
    let url = ng.url("/missing");
    let (code, out, err) = sk(&["--fail-with-body", &url]);
    assert_eq!((code, text(&out).as_str()), (22, "not here\n"), "{err}");
    let (ccode, cout, _) = curl(&["-s", "--fail-with-body", &url]);
    assert_eq!((ccode, cout), (code, out));
    assert_eq!(sk(&["-sf", &url]).1, b"");
    assert_eq!(sk(&["-sS", "--fail-with-body", &ng.url("/hello.txt")]).0, 0);
}

#[test]
fn dump_header_to_a_file_and_to_stdout() {
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    let theirs = dir.path().join("theirs");
    let url = ng.url("/redirect");
    let (code, out, err) = sk(&["-L", "-D", mine.to_str().unwrap(), &url]);
    assert_eq!(
        (code, out.as_slice()),
        (0, &b"hello from nginx\n"[..]),
        "{err}"
    );
    assert_eq!(curl(&["-sL", "-D", theirs.to_str().unwrap(), &url]).0, 0);
    let status_lines = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("HTTP/") || l.starts_with("Location") || l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let got = status_lines(&mine);
    assert_eq!(got, status_lines(&theirs));
    assert_eq!(got[0], "HTTP/1.1 301 Moved Permanently");
    assert!(std::fs::read_to_string(&mine)
        .unwrap()
        .ends_with("\r\n\r\n"));
    // '-': heads on stdout, before the body.
    let (code, out, _) = sk(&["-D", "-", &ng.url("/hello.txt")]);
    assert_eq!(code, 0);
    let out = text(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello from nginx\n"), "{out}");
}

/// The cookie jar lines (comments dropped), sorted.
fn jar_lines(t: &str) -> Vec<String> {
    let mut v: Vec<String> = t
        .lines()
        .filter(|l| !l.is_empty() && (!l.starts_with('#') || l.starts_with("#HttpOnly_")))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn cookies_across_redirects_into_a_jar_like_curls() {
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine.txt");
    let theirs = dir.path().join("theirs.txt");
    // A name, so Domain= cookies apply: --resolve points it at nginx.
    let host = format!("www.example.test:{}", ng.port);
    let resolve = format!("www.example.test:{}:127.0.0.1", ng.port);
    let url = format!("http://{host}/setcookie");
    let (code, out, err) = sk(&[
        "-L",
        "--resolve",
        &resolve,
        "-c",
        mine.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, 0, "{err}");
    let (ccode, cout, _) = curl(&[
        "-sL",
        "--resolve",
        &resolve,
        "-c",
        theirs.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(ccode, 0);
    // The redirected request carried the cookies set by the 302, in curl's order;
    // not the expired one, not the one for /only, not another site's.
    // curl's order: longer domains, then longer names first.
    assert_eq!(text(&out), "cookie=[ex=4; a=1; dom=5]\n");
    assert_eq!(text(&out), text(&cout));
    let jar = std::fs::read_to_string(&mine).unwrap();
    assert!(jar.starts_with("# Netscape HTTP Cookie File\n"), "{jar}");
    assert_eq!(
        jar_lines(&jar),
        jar_lines(&std::fs::read_to_string(&theirs).unwrap())
    );
    assert!(
        jar.contains("#HttpOnly_www.example.test\tFALSE\t/only\tFALSE\t0\tp\t2\n"),
        "{jar}"
    );
    assert!(
        jar.contains(".example.test\tTRUE\t/\tFALSE\t0\tdom\t5\n"),
        "{jar}"
    );
    // Not kept: another site's, an expired one, a Secure one set over http.
    for name in ["\tforeign\t", "\tgone\t", "\tsec\t"] {
        assert!(!jar.contains(name), "{name} in {jar}");
    }
    // -b FILE sends what matches: the path cookie under /only, the domain
    // cookie to another host of the domain, nothing to an unrelated host.
    let only = format!("http://{host}/only/showcookie");
    let (_, out, _) = sk(&["--resolve", &resolve, "-b", mine.to_str().unwrap(), &only]);
    let (_, cout, _) = curl(&[
        "-s",
        "--resolve",
        &resolve,
        "-b",
        mine.to_str().unwrap(),
        &only,
    ]);
    assert_eq!(text(&out), "cookie=[p=2; ex=4; a=1; dom=5]\n");
    assert_eq!(out, cout);
    let other = format!("a.example.test:{}:127.0.0.1", ng.port);
    let (_, out, _) = sk(&[
        "--resolve",
        &other,
        "-b",
        mine.to_str().unwrap(),
        &format!("http://a.example.test:{}/showcookie", ng.port),
    ]);
    assert_eq!(text(&out), "cookie=[dom=5]\n");
    let (_, out, _) = sk(&["-b", mine.to_str().unwrap(), &ng.url("/showcookie")]);
    assert_eq!(text(&out), "cookie=[]\n");
    // -b 'a=b; c=d': sent as given.
    let (_, out, _) = sk(&["-b", "x=1; y=2", &ng.url("/showcookie")]);
    assert_eq!(text(&out), "cookie=[x=1; y=2]\n");
    // Across origins: the -b string stays behind, the jar's domain cookie goes on.
    let (code, out, err) = sk(&[
        "-L",
        "--resolve",
        &resolve,
        "--resolve",
        &other,
        "-b",
        "x=1",
        "-b",
        mine.to_str().unwrap(),
        &format!("http://{host}/away"),
    ]);
    assert_eq!(
        (code, text(&out).as_str()),
        (0, "cookie=[dom=5]\n"),
        "{err}"
    );
    // -c -: the jar on stdout after the body.
    let (_, out, _) = sk(&["-c", "-", &ng.url("/setcookie")]);
    assert!(text(&out).contains("127.0.0.1\tFALSE\t/\tFALSE\t0\ta\t1\n"));
}

/// The request's body with its multipart boundary replaced by `B`.
fn unbound(req: &[u8]) -> (String, String) {
    let req = text(req);
    let ct = header(&req, "content-type").unwrap();
    let b = ct.split("boundary=").nth(1).unwrap().to_string();
    let body = req.split_once("\r\n\r\n").unwrap().1.replace(&b, "B");
    (ct.replace(&b, "B"), body)
}

#[test]
fn multipart_form_like_curl() {
    let echo = Scripted::echo();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "line one\nline two\n").unwrap();
    std::fs::write(dir.path().join("blob.bin"), [0u8, 1, 2, 255]).unwrap();
    let args = [
        "-F",
        "name=value with spaces",
        "-F",
        "text=<notes.txt",
        "-F",
        "doc=@notes.txt",
        "-F",
        "raw=@blob.bin;type=image/png;filename=pic.png",
    ];
    let mut a: Vec<&str> = args.to_vec();
    let url = echo.url("/form");
    a.push(&url);
    let (code, _, err) = run_in("sockit", &a, Some(dir.path()), b"");
    assert_eq!(code, 0, "{err}");
    a.insert(0, "-s");
    assert_eq!(run_in("curl", &a, Some(dir.path()), b"").0, 0);
    let seen = echo.seen();
    assert_eq!(seen.len(), 2);
    assert!(text(&seen[0]).starts_with("POST /form HTTP/1.1\r\n"));
    let (mine, theirs) = (unbound(&seen[0]), unbound(&seen[1]));
    assert_eq!(mine.0, "multipart/form-data; boundary=B");
    assert_eq!(mine, theirs);
    assert!(mine
        .1
        .contains("name=\"raw\"; filename=\"pic.png\"\r\nContent-Type: image/png\r\n\r\n"));
}

#[test]
fn get_with_data_urlencode_and_upload_like_curl() {
    let echo = Scripted::echo();
    let url = echo.url("/q?x=1");
    let args = [
        "-G",
        "-d",
        "plain=a+b",
        "--data-urlencode",
        "q=hello world&more",
        "--data-urlencode",
        "=just/this",
        "--data-urlencode",
        "bare é",
        &url,
    ];
    assert_eq!(sk(&args).0, 0);
    let mut c = vec!["-s"];
    c.extend_from_slice(&args);
    assert_eq!(curl(&c).0, 0);
    let seen = echo.seen();
    let line = |r: &[u8]| text(r).lines().next().unwrap().to_string();
    // curl 7.88 writes a space as '+' and lower-case hex in the query; the
    // same characters either way.
    let norm = |s: String| {
        let mut out = String::new();
        let mut it = s
            .replace('+', "%20")
            .chars()
            .collect::<Vec<_>>()
            .into_iter();
        while let Some(c) = it.next() {
            out.push(c);
            if c == '%' {
                out.extend(it.by_ref().take(2).map(|h| h.to_ascii_uppercase()));
            }
        }
        out
    };
    assert_eq!(
        line(&seen[0]),
        "GET /q?x=1&plain=a+b&q=hello%20world%26more&just%2Fthis&bare%20%C3%A9 HTTP/1.1"
    );
    assert_eq!(norm(line(&seen[0])), norm(line(&seen[1])));
    // --data-urlencode name@file, without -G: a POST body.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("v.txt");
    std::fs::write(&f, "a b\n").unwrap();
    let spec = format!("v@{}", f.display());
    assert_eq!(sk(&["--data-urlencode", &spec, &url]).0, 0);
    assert_eq!(curl(&["-s", "--data-urlencode", &spec, &url]).0, 0);
    let seen = echo.seen();
    let body = |r: &[u8]| text(r).split_once("\r\n\r\n").unwrap().1.to_string();
    assert_eq!(body(&seen[2]), "v=a%20b%0A");
    assert_eq!(norm(body(&seen[2])), norm(body(&seen[3])));
    // -d and --data-urlencode mixed: joined in command-line order, as curl.
    let args = [
        "--data-urlencode",
        "b=x y",
        "-d",
        "a=1",
        "--data-urlencode",
        "c",
        &url,
    ];
    assert_eq!(sk(&args).0, 0);
    let mut c = vec!["-s"];
    c.extend_from_slice(&args);
    assert_eq!(curl(&c).0, 0);
    let seen = echo.seen();
    assert_eq!(body(&seen[4]), "b=x%20y&a=1&c");
    assert_eq!(norm(body(&seen[4])), norm(body(&seen[5])));
}

#[test]
fn upload_range_and_resume_against_nginx() {
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("up.bin");
    let data = random_bytes(200_000, 3);
    std::fs::write(&src, &data).unwrap();
    // -T FILE to a URL ending in '/': PUT under the file's name.
    let (code, _, err) = sk(&["-fsS", "-T", src.to_str().unwrap(), &ng.url("/put/")]);
    assert_eq!(code, 0, "{err}");
    assert_same(
        "PUT -T",
        &std::fs::read(ng.path("www/put/up.bin")).unwrap(),
        &data,
    );
    // -T -: from stdin.
    let (code, _, err) = run_in(
        "sockit",
        &["-fsS", "-T", "-", &ng.url("/put/in.txt")],
        None,
        b"from stdin\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(ng.path("www/put/in.txt")).unwrap(),
        b"from stdin\n"
    );
    // -r: the bytes asked for, as curl.
    for r in ["0-4", "6-", "-6"] {
        let (code, out, _) = sk(&["-r", r, &ng.url("/hello.txt")]);
        assert_eq!(
            (code, out.clone()),
            (0, curl(&["-s", "-r", r, &ng.url("/hello.txt")]).1),
            "-r {r}"
        );
    }
    assert_eq!(sk(&["-r", "0-4", &ng.url("/hello.txt")]).1, b"hello");
    // -C -: resume a partial file; a complete one is left as it is (exit 0, as curl).
    let big = std::fs::read(ng.path("www/big.bin")).unwrap();
    let part = dir.path().join("big.part");
    std::fs::write(&part, &big[..123_457]).unwrap();
    let (code, _, err) = sk(&["-C", "-", "-o", part.to_str().unwrap(), &ng.url("/big.bin")]);
    assert_eq!(code, 0, "{err}");
    assert_same("-C - resume", &std::fs::read(&part).unwrap(), &big);
    let (code, _, err) = sk(&["-C", "-", "-o", part.to_str().unwrap(), &ng.url("/big.bin")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        curl(&[
            "-s",
            "-C",
            "-",
            "-o",
            part.to_str().unwrap(),
            &ng.url("/big.bin")
        ])
        .0,
        0
    );
    assert_same("-C - complete", &std::fs::read(&part).unwrap(), &big);
    // -C OFFSET appends from that offset of the resource.
    let tail = dir.path().join("tail");
    std::fs::write(&tail, b"HELLO").unwrap();
    assert_eq!(
        sk(&[
            "-C",
            "5",
            "-o",
            tail.to_str().unwrap(),
            &ng.url("/hello.txt")
        ])
        .0,
        0
    );
    assert_eq!(std::fs::read(&tail).unwrap(), b"HELLO from nginx\n");
    // A server that ignores the range: exit 33, as curl.
    let whole = Scripted::start(|_, _| Some(ok(b"all of it")));
    let (code, _, err) = sk(&["-C", "3", &whole.url("/")]);
    assert_eq!(code, 33, "{err}");
    assert_eq!(curl(&["-s", "-C", "3", &whole.url("/")]).0, 33);
}

#[test]
fn referer_and_auto_referer_like_curl() {
    let ng = Nginx::start();
    for args in [
        vec!["-e", "http://from.test/page", "-L"],
        vec!["-e", "http://from.test/page;auto", "-L"],
        vec!["-e", ";auto", "-L"],
        vec!["-e", ";auto"],
    ] {
        let mut a = args.clone();
        let url = ng.url("/toshow");
        a.push(&url);
        let (code, out, err) = sk(&a);
        assert_eq!(code, 0, "{err}");
        a.insert(0, "-s");
        assert_eq!(text(&out), text(&curl(&a).1), "{args:?}");
    }
    let (_, out, _) = sk(&["-e", ";auto", "-L", &ng.url("/toshow")]);
    assert_eq!(
        text(&out),
        format!("referer=[{}] range=[]\n", ng.url("/toshow"))
    );
}

#[test]
fn remote_header_name_output_dir_and_create_dirs() {
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    // -J: the server's name, its directories stripped: never outside the directory.
    let (code, _, err) = run_in(
        "sockit",
        &["-sS", "-O", "-J", &ng.url("/dl")],
        Some(here),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(here.join("report.txt")).unwrap(),
        b"hello from nginx\n"
    );
    // An existing file is not overwritten (23, as curl), nor is '..' used.
    std::fs::write(here.join("report.txt"), b"mine").unwrap();
    let (code, _, err) = run_in("sockit", &["-sS", "-OJ", &ng.url("/dl")], Some(here), b"");
    assert_eq!(code, 23, "{err}");
    assert_eq!(
        run_in("curl", &["-s", "-OJ", &ng.url("/dl")], Some(here), b"").0,
        23
    );
    assert_eq!(std::fs::read(here.join("report.txt")).unwrap(), b"mine");
    let (code, _, err) = run_in(
        "sockit",
        &["-sS", "-OJ", &ng.url("/dldots")],
        Some(here),
        b"",
    );
    assert_eq!(code, 23, "{err}");
    assert!(err.contains("refusing the file name '..'"), "{err}");
    assert_eq!(
        run_in("curl", &["-s", "-OJ", &ng.url("/dldots")], Some(here), b"").0,
        23
    );
    // --output-dir with --create-dirs for -O and -o; without --create-dirs a
    // missing directory is exit 23.
    let (code, _, err) = run_in(
        "sockit",
        &[
            "--output-dir",
            "a/b",
            "--create-dirs",
            "-O",
            &ng.url("/hello.txt"),
            "-o",
            "c/d.txt",
            &ng.url("/hello.txt"),
        ],
        Some(here),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(here.join("a/b/hello.txt").is_file());
    assert!(here.join("a/b/c/d.txt").is_file());
    let (code, _, _) = run_in(
        "sockit",
        &["--output-dir", "nope", "-O", &ng.url("/hello.txt")],
        Some(here),
        b"",
    );
    assert_eq!(code, 23);
    assert_eq!(
        run_in(
            "curl",
            &["-s", "--output-dir", "nope", "-O", &ng.url("/hello.txt")],
            Some(here),
            b""
        )
        .0,
        23
    );
    let (code, _, err) = run_in(
        "sockit",
        &["--output-dir", "j", "--create-dirs", "-OJ", &ng.url("/dl")],
        Some(here),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(here.join("j/report.txt").is_file());
}

#[test]
fn retry_on_transient_statuses_with_retry_after() {
    // 503, 429 (Retry-After: 1), then 200.
    let srv = Scripted::start(|n, _| {
        Some(match n {
            0 => status(503, ""),
            1 => status(429, "Retry-After: 1\r\n"),
            _ => ok(b"finally\n"),
        })
    });
    let t = Instant::now();
    let (code, out, err) = sk(&["--retry", "3", "--retry-delay", "0", &srv.url("/")]);
    assert_eq!((code, text(&out).as_str()), (0, "finally\n"), "{err}");
    assert_eq!(srv.seen().len(), 3);
    assert_eq!(count(&err, "retrying in"), 2, "{err}");
    let fast = t.elapsed();
    // Without --retry-delay, Retry-After: 1 is waited (and 1 s before it).
    let srv = Scripted::start(|n, _| {
        Some(match n {
            0 => status(429, "Retry-After: 1\r\n"),
            _ => ok(b"finally\n"),
        })
    });
    let t = Instant::now();
    let (code, out, _) = sk(&["-s", "--retry", "1", &srv.url("/")]);
    assert_eq!((code, out.as_slice()), (0, &b"finally\n"[..]));
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert!(fast < WAIT);
    // Out of retries: the last answer stands (its body written; -f: 22), as
    // curl in a file. (On stdout curl also writes the bodies it retried; they
    // are skipped here.)
    let always = Scripted::start(|_, _| Some(status(502, "")));
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("o");
    let o = o.to_str().unwrap();
    let (code, out, _) = sk(&["-s", "--retry", "1", "--retry-delay", "0", &always.url("/")]);
    assert_eq!((code, out.as_slice()), (0, &b"oops\n"[..]));
    let args = [
        "-s",
        "--retry",
        "1",
        "--retry-delay",
        "0",
        "-o",
        o,
        &always.url("/"),
    ];
    assert_eq!(sk(&args).0, 0);
    assert_eq!(std::fs::read(o).unwrap(), b"oops\n");
    std::fs::remove_file(o).unwrap();
    assert_eq!(curl(&args).0, 0);
    assert_eq!(std::fs::read(o).unwrap(), b"oops\n");
    assert_eq!(always.seen().len(), 6);
    assert_eq!(
        sk(&[
            "-sf",
            "--retry",
            "1",
            "--retry-delay",
            "0",
            &always.url("/")
        ])
        .0,
        22
    );
    // 404 is not transient: one request.
    let nf = Scripted::start(|_, _| Some(status(404, "")));
    assert_eq!(sk(&["-s", "--retry", "3", &nf.url("/")]).0, 0);
    assert_eq!(nf.seen().len(), 1);
    // --retry-max-time: no retry would start after it.
    let t = Instant::now();
    let (code, _, _) = sk(&[
        "-s",
        "--retry",
        "5",
        "--retry-delay",
        "3",
        "--retry-max-time",
        "1",
        &always.url("/"),
    ]);
    assert_eq!(code, 0);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn retry_after_a_timeout_and_a_refused_connection() {
    // The first request gets no answer: -m 1 expires, the retry succeeds.
    let srv = Scripted::start(|n, _| (n > 0).then(|| ok(b"second\n")));
    let (code, out, err) = sk(&[
        "-m",
        "1",
        "--retry",
        "1",
        "--retry-delay",
        "0",
        &srv.url("/"),
    ]);
    assert_eq!((code, text(&out).as_str()), (0, "second\n"), "{err}");
    // Refused: retried only with --retry-connrefused; the exit is still 7.
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    let (code, _, err) = sk(&["--retry", "2", "--retry-delay", "0", &closed]);
    assert_eq!((code, count(&err, "retrying")), (7, 0), "{err}");
    let (code, _, err) = sk(&[
        "--retry",
        "2",
        "--retry-delay",
        "0",
        "--retry-connrefused",
        &closed,
    ]);
    assert_eq!((code, count(&err, "retrying")), (7, 2), "{err}");
    // -m 0 is no limit, as curl.
    let ng = Nginx::start();
    assert_eq!(
        sk(&["-m", "0", &ng.url("/hello.txt")]).1,
        b"hello from nginx\n"
    );
}

#[test]
fn limit_rate_is_not_exceeded() {
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big");
    // 3 MiB at 1.5M/s: 2 s. A loaded machine makes it slower, never faster;
    // allow 15% for the first read and the socket buffers.
    let t = Instant::now();
    let (code, _, err) = sk(&[
        "--limit-rate",
        "1.5M",
        "-o",
        out.to_str().unwrap(),
        &ng.url("/big.bin"),
    ]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), BIG as u64);
    assert!(
        took >= Duration::from_millis(1700),
        "3 MiB at 1.5M/s took {took:?}"
    );
    assert_eq!(sk(&["--limit-rate", "fast", &ng.url("/")]).0, 2);
}

/// A tmux server of our own, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn start(&self, width: u16, cmd: &str) {
        let w = width.to_string();
        let out = self.cmd(&["new-session", "-d", "-s", "t", "-x", &w, "-y", "10", cmd]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = text(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout);
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{s}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn progress_bars_fit_in_40_columns() {
    require("tmux");
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    for (flag, mark) in [("-#", "#"), ("", "=")] {
        let tmux = Tmux {
            socket: abstract_name("tmux"),
        };
        let out = dir.path().join("o");
        let cmd = format!(
            "{} http {flag} --limit-rate 2M -o {} {}; echo exit=$?; sleep 60",
            env!("CARGO_BIN_EXE_sockit"),
            out.display(),
            ng.url("/big.bin")
        );
        tmux.start(40, &cmd);
        let s = tmux.wait("the exit", |s| s.contains("exit="));
        assert!(s.contains("exit=0"), "{s}");
        for l in s.lines() {
            assert!(
                l.trim_end().chars().count() < 40,
                "line over 39 columns: {l:?}\n{s}"
            );
        }
        let first = s.lines().next().unwrap();
        assert!(first.contains(mark), "no bar drawn with '{flag}':\n{s}");
    }
}

#[test]
fn user_without_password_prompts_without_echo() {
    require("tmux");
    let echo = Scripted::echo();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("req");
    let tmux = Tmux {
        socket: abstract_name("tmux"),
    };
    let cmd = format!(
        "{} http -u alice -o {} {}; echo exit=$?; sleep 60",
        env!("CARGO_BIN_EXE_sockit"),
        out.display(),
        echo.url("/")
    );
    tmux.start(80, &cmd);
    tmux.wait("the prompt", |s| {
        s.contains("Enter host password for user 'alice':")
    });
    let k = tmux.cmd(&["send-keys", "-t", "t", "-l", "s3cret"]);
    assert!(k.status.success());
    assert!(tmux
        .cmd(&["send-keys", "-t", "t", "Enter"])
        .status
        .success());
    let s = tmux.wait("the exit", |s| s.contains("exit="));
    assert!(s.contains("exit=0"), "{s}");
    assert!(!s.contains("s3cret"), "the password was echoed:\n{s}");
    let req = std::fs::read_to_string(&out).unwrap();
    // base64("alice:s3cret")
    assert_eq!(
        header(&req, "authorization").as_deref(),
        Some("Basic YWxpY2U6czNjcmV0")
    );
}

#[test]
fn netrc_credentials_like_curl() {
    let echo = Scripted::echo();
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("netrc");
    std::fs::write(
        &rc,
        "machine other.test login x password y\n\
         machine 127.0.0.1\n  login bob\n  password hunter2\n",
    )
    .unwrap();
    let url = echo.url("/");
    let auth = |out: &[u8]| header(&text(out), "authorization");
    let (code, out, err) = sk(&["--netrc-file", rc.to_str().unwrap(), &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(auth(&out).as_deref(), Some("Basic Ym9iOmh1bnRlcjI="));
    assert_eq!(
        auth(&out),
        auth(&curl(&["-s", "--netrc-file", rc.to_str().unwrap(), &url]).1)
    );
    // -u wins over .netrc.
    let (_, out, _) = sk(&["--netrc-file", rc.to_str().unwrap(), "-u", "me:pw", &url]);
    assert_eq!(auth(&out).as_deref(), Some("Basic bWU6cHc="));
    // --netrc reads ~/.netrc; missing, it gives nothing and is no error (as curl).
    std::fs::copy(&rc, dir.path().join(".netrc")).unwrap();
    let mut c = sockit();
    c.env("HOME", dir.path()).args(["http", "--netrc", &url]);
    let o = c.output().unwrap();
    assert_eq!(auth(&o.stdout).as_deref(), Some("Basic Ym9iOmh1bnRlcjI="));
    let mut c = sockit();
    c.env("HOME", "/nonexistent")
        .args(["http", "--netrc-optional", &url]);
    let o = c.output().unwrap();
    assert!(o.status.success());
    assert_eq!(auth(&o.stdout), None);
}

#[test]
fn write_out_variables_like_curl() {
    let ng = Nginx::start();
    let fmt = "%{remote_ip} %{remote_port} %{http_version} %{redirect_url} %{time_appconnect} %{http_code}\\n";
    let url = ng.url("/redirect");
    let (code, out, err) = sk(&["-o", "/dev/null", "-w", fmt, &url]);
    assert_eq!(code, 0, "{err}");
    let want = format!(
        "127.0.0.1 {} 1.1 {} 0.000000 301\n",
        ng.port,
        ng.url("/hello.txt")
    );
    assert_eq!(text(&out), want);
    assert_eq!(
        text(&curl(&["-s", "-o", "/dev/null", "-w", fmt, &url]).1),
        want
    );
    // -L: the redirect is followed, nothing left to point at.
    let (_, out, _) = sk(&[
        "-L",
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}|%{http_code}",
        &url,
    ]);
    assert_eq!(text(&out), "|200");
    let (_, out, _) = sk(&["-o", "/dev/null", "-w", "%{json}", &url]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["http_code"], 301);
    assert_eq!(v["remote_port"], ng.port);
    assert_eq!(v["http_version"], "1.1");
    assert_eq!(v["url_effective"], url.as_str());
    assert_eq!(v["time_appconnect"], 0.0);
}

/// VmHWM (peak resident set) of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_large_upload_is_streamed_not_loaded() {
    const SIZE: usize = 96 << 20;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("large.bin");
    let data = random_bytes(SIZE, 11);
    std::fs::write(&src, &data).unwrap();
    let pid: Arc<Mutex<Option<u32>>> = Arc::default();
    let peak: Arc<Mutex<Option<u64>>> = Arc::default();
    let (p, k) = (pid.clone(), peak.clone());
    // The reply waits until the whole body is in: the client's peak is read then.
    let srv = Scripted::start(move |_, req| {
        let body = req.len() - (req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
        if let Some(pid) = *p.lock().unwrap() {
            *k.lock().unwrap() = Some(vm_hwm_kib(pid));
        }
        Some(ok(format!("{body}\n").as_bytes()))
    });
    let mut cmd = sockit();
    cmd.args(["http", "-sS", "-T", src.to_str().unwrap(), &srv.url("/up")]);
    let proc = Proc::spawn(cmd);
    *pid.lock().unwrap() = Some(proc.child.id());
    let (st, out, err) = proc.wait_exit();
    assert!(st.success(), "{err}");
    assert_eq!(text(&out), format!("{SIZE}\n"));
    let req = text(&srv.seen()[0][..200]);
    assert!(req.starts_with("PUT /up HTTP/1.1\r\n"), "{req}");
    assert_eq!(header(&req, "content-length"), Some(SIZE.to_string()));
    let peak = peak.lock().unwrap().expect("the peak was read");
    // A 96 MiB file loaded first would put the peak above 96 MiB.
    assert!(
        peak < 48 * 1024,
        "peak RSS {peak} KiB while uploading 96 MiB"
    );
}

#[test]
fn an_answer_before_the_upload_ends_is_shown_like_curl() {
    // The server answers 413 after the head and closes without reading the
    // body: the write fails, but the answer is there to read.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/up", l.local_addr().unwrap());
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = c.write_all(
                b"HTTP/1.1 413 Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig\n",
            );
            // Closing with unread bytes sends a reset.
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("large.bin");
    std::fs::write(&src, random_bytes(16 << 20, 5)).unwrap();
    let src = src.to_str().unwrap();
    for (args, want) in [
        (vec!["-sS", "-T", src, &url], (0, "big\n")),
        (vec!["-sS", "-f", "-T", src, &url], (22, "")),
    ] {
        let (code, out, err) = sk(&args);
        assert_eq!((code, text(&out).as_str()), want, "{args:?}: {err}");
        let (ccode, cout, _) = curl(&args);
        assert_eq!((ccode, text(&cout).as_str()), want, "curl {args:?}");
    }
}
