//! `-x/--proxy` through real proxies from Debian, started here on free
//! loopback ports with configs in a tempdir: dante (`danted`, SOCKS4/5, with
//! and without user name authentication) and tinyproxy (HTTP CONNECT and
//! absolute-form requests). `connect`, `chat join` and `http` each go through
//! them, and `http` is compared with `curl -x` on the same proxy.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::*;

/// The system user dante checks `socksmethod: username` against (dante's
/// `username` method reads the passwd/shadow databases; there is no file of
/// its own). Created here when missing, which needs root.
const SOCKS_USER: &str = "sockitproxy";
const SOCKS_PASS: &str = "Pr0xy-pass";

/// True when `bin` is installed; otherwise says why the test is skipped
/// (a failure under CI, where .ci/run installs it).
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

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A proxy daemon in its own process group, killed (with its children) on drop.
struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    log: &'static str,
}

impl Daemon {
    fn start(mut cmd: Command, port: u16, dir: tempfile::TempDir, log: &'static str) -> Daemon {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start the proxy");
        wait_tcp_listening(port);
        Daemon {
            child,
            port,
            dir,
            log,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The daemon's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }

    /// Waits until the log has `needle` (daemons write it after the fact).
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pg = self.child.id() as i32;
        // SAFETY: signals the process group this guard started.
        unsafe { libc::kill(-pg, libc::SIGTERM) };
        if exit_within(&mut self.child, Duration::from_secs(5)).is_none() {
            unsafe { libc::kill(-pg, libc::SIGKILL) };
        }
    }
}

/// `danted` on a free port: SOCKS4 and SOCKS5, `socksmethod` none or username.
fn dante(username: bool) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let method = if username { "username" } else { "none" };
    let conf = format!(
        "logoutput: {log}\n\
         debug: 1\n\
         internal: 127.0.0.1 port = {port}\n\
         external: 127.0.0.1\n\
         socksmethod: {method}\n\
         clientmethod: none\n\
         user.privileged: root\n\
         user.unprivileged: nobody\n\
         client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
         socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }}\n",
        log = dir.path().join("danted.log").display(),
    );
    let path = dir.path().join("danted.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("danted");
    cmd.arg("-f")
        .arg(&path)
        .arg("-p")
        .arg(dir.path().join("danted.pid"));
    Daemon::start(cmd, port, dir, "danted.log")
}

/// Makes sure dante's user exists with the test password.
fn socks_user() {
    let exists = Command::new("id")
        .arg(SOCKS_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(SOCKS_USER)
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {SOCKS_USER}");
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .expect("chpasswd");
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{SOCKS_USER}:{SOCKS_PASS}\n").as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success(), "chpasswd");
}

/// `tinyproxy` on a free port; with `auth`, Basic credentials `me:s3cret`.
fn tinyproxy(auth: bool) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 20\n\
         Allow 127.0.0.1\nLogFile \"{}\"\n",
        dir.path().join("tinyproxy.log").display()
    );
    if is_root() {
        conf.push_str("User nobody\nGroup nogroup\n");
        // The log is written after dropping privileges.
        let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
    }
    if auth {
        conf.push_str("BasicAuth me s3cret\n");
    }
    let path = dir.path().join("tinyproxy.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d").arg("-c").arg(&path);
    Daemon::start(cmd, port, dir, "tinyproxy.log")
}

/// A target that writes `banner` to each client and closes.
fn banner_server(banner: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(banner.as_bytes());
        }
    });
    addr
}

/// A tiny HTTP server: answers every request with `body`, recording each
/// request head.
fn http_server(body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    (addr, heads)
}

/// `sockit ARGS` with stdin closed, within a bounded time.
fn sockit_out(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = sockit();
    cmd.args(args).stdin(Stdio::null());
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    output_within(cmd)
}

/// `curl ARGS` the same way.
fn curl_out(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(args).stdin(Stdio::null());
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    output_within(cmd)
}

const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The same fetch by sockit and curl: same exit code, same body.
fn same_as_curl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let ours = sockit_out(&[&["http", "-s"][..], args].concat(), env);
    let theirs = curl_out(&[&["-s"][..], args].concat(), env);
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "exit codes differ for {args:?}: sockit {}, curl {}",
        text(&ours.stderr),
        text(&theirs.stderr)
    );
    assert_same(&format!("body of {args:?}"), &ours.stdout, &theirs.stdout);
    ours
}

#[test]
fn socks_proxy_for_connect_chat_join_and_http() {
    let test = "socks_proxy_for_connect_chat_join_and_http";
    if !peer(test, "danted") || !peer(test, "curl") {
        return;
    }
    if !is_root() {
        skipped(test, "danted needs root here (user.privileged: root)");
        return;
    }
    let d = dante(false);
    let target = banner_server("hello from the target\n");
    for scheme in ["socks5", "socks5h", "socks4"] {
        let proxy = format!("{scheme}://{}", d.addr());
        let port = target.rsplit_once(':').unwrap().1;
        let out = sockit_out(
            &[
                "connect",
                "--recv-only",
                "-x",
                &proxy,
                &format!("localhost:{port}"),
            ],
            &[],
        );
        assert!(out.status.success(), "{scheme}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hello from the target\n", "{scheme}");
    }

    let (chat, addr) = chat_serve(&[]);
    let mut join = sockit();
    join.args([
        "chat",
        "join",
        "-x",
        &format!("socks5h://{}", d.addr()),
        &addr,
    ]);
    let mut join = Proc::spawn(join);
    join.wait_stdout(b"welcome");
    join.write(b"/quit\n");
    let (st, _, _) = join.wait_exit();
    assert!(st.success());
    drop(chat);

    let (web, heads) = http_server("through socks\n");
    let url = format!("http://{web}/socks");
    for scheme in ["socks5", "socks5h", "socks4"] {
        let proxy = format!("{scheme}://{}", d.addr());
        let out = same_as_curl(&["-x", &proxy, &url], &[]);
        assert_eq!(text(&out.stdout), "through socks\n");
    }
    assert!(heads.lock().unwrap()[0].starts_with("GET /socks HTTP/1.1\r\n"));
}

#[test]
fn socks5h_sends_the_name_and_socks5_the_address() {
    let test = "socks5h_sends_the_name_and_socks5_the_address";
    if !peer(test, "danted") {
        return;
    }
    if !is_root() {
        skipped(test, "danted needs root here");
        return;
    }
    let d = dante(false);
    let target = banner_server("x\n");
    let port = target.rsplit_once(':').unwrap().1;
    let name = format!("localhost:{port}");
    let out = sockit_out(
        &[
            "connect",
            "--recv-only",
            "-x",
            &format!("socks5h://{}", d.addr()),
            &name,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // dante says what the client asked for: the name, resolved by dante.
    d.wait_log(&format!("-> localhost.{port}, clientauth"));
    let out = sockit_out(
        &[
            "connect",
            "--recv-only",
            "-x",
            &format!("socks5://{}", d.addr()),
            &name,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.wait_log(&format!("-> 127.0.0.1.{port}, clientauth"));
    // A name only this side knows (--resolve) works with socks5, not socks5h.
    let (web, _) = http_server("ok\n");
    let wport = web.rsplit_once(':').unwrap().1;
    let resolve = format!("only-here.invalid:{wport}:127.0.0.1");
    let url = format!("http://only-here.invalid:{wport}/");
    let ok = sockit_out(
        &[
            "http",
            "-s",
            "--resolve",
            &resolve,
            "-x",
            &format!("socks5://{}", d.addr()),
            &url,
        ],
        &[],
    );
    assert_eq!(text(&ok.stdout), "ok\n", "{}", text(&ok.stderr));
    let no = sockit_out(
        &[
            "http",
            "-s",
            "--resolve",
            &resolve,
            "-x",
            &format!("socks5h://{}", d.addr()),
            &url,
        ],
        &[],
    );
    assert_eq!(no.status.code(), Some(97), "{}", text(&no.stderr));
}

#[test]
fn socks5_username_authentication() {
    let test = "socks5_username_authentication";
    if !peer(test, "danted") || !peer(test, "curl") {
        return;
    }
    if !is_root() {
        skipped(test, "creating dante's system user needs root");
        return;
    }
    socks_user();
    let d = dante(true);
    let target = banner_server("authenticated\n");
    let good = format!("socks5://{SOCKS_USER}:{SOCKS_PASS}@{}", d.addr());
    let out = sockit_out(&["connect", "--recv-only", "-x", &good, &target], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "authenticated\n");
    // --proxy-user instead of the URL's user info.
    let bare = format!("socks5h://{}", d.addr());
    let user = format!("{SOCKS_USER}:{SOCKS_PASS}");
    let out = sockit_out(
        &[
            "connect",
            "--recv-only",
            "-x",
            &bare,
            "--proxy-user",
            &user,
            &target,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let wrong = format!("socks5://{SOCKS_USER}:wrong@{}", d.addr());
    let out = sockit_out(&["connect", "-x", &wrong, &target], &[]);
    let line = error_line(&out, 10);
    assert!(
        line.contains(&format!("through socks5://{}", d.addr()))
            && line.contains("user name or password refused")
            && !line.contains("wrong"),
        "{line}"
    );
    let out = sockit_out(&["chat", "join", "-x", &bare, &target], &[]);
    let line = error_line(&out, 10);
    assert!(line.contains("credentials needed"), "{line}");

    let (web, _) = http_server("secret page\n");
    let url = format!("http://{web}/");
    let out = same_as_curl(&["-x", &good, &url], &[]);
    assert_eq!(text(&out.stdout), "secret page\n");
    let out = same_as_curl(&["-x", &wrong, &url], &[]);
    assert_eq!(out.status.code(), Some(97));
    same_as_curl(&["-x", &bare, &url], &[]);
}

#[test]
fn socks_target_unreachable_and_proxy_unreachable() {
    let test = "socks_target_unreachable_and_proxy_unreachable";
    if !peer(test, "danted") || !peer(test, "curl") {
        return;
    }
    if !is_root() {
        skipped(test, "danted needs root here");
        return;
    }
    let d = dante(false);
    let closed = format!("127.0.0.1:{}", closed_port());
    let proxy = format!("socks5://{}", d.addr());
    let out = sockit_out(&["connect", "-x", &proxy, &closed], &[]);
    let line = error_line(&out, 10);
    assert!(
        line.contains(&format!("cannot connect to {closed} through {proxy}"))
            && line.contains("connection refused"),
        "{line}"
    );
    let out = same_as_curl(&["-x", &proxy, &format!("http://{closed}/")], &[]);
    assert_eq!(out.status.code(), Some(97));

    // No proxy at all on that port: curl's 7, sockit's class 4.
    let dead = format!("socks5://127.0.0.1:{}", closed_port());
    let out = sockit_out(&["connect", "-x", &dead, &d.addr()], &[]);
    let line = error_line(&out, 4);
    assert!(
        line.contains("cannot connect to proxy socks5://127.0.0.1:"),
        "{line}"
    );
    let out = same_as_curl(&["-x", &dead, &format!("http://{}/", d.addr())], &[]);
    assert_eq!(out.status.code(), Some(7));
    // A proxy name that does not resolve: curl's 5 ("couldn't resolve proxy";
    // curl 7.88 says 6 for a SOCKS proxy's name, 5 for an HTTP proxy's).
    let nowhere = "socks5://no-such-proxy.invalid:1080";
    let out = same_as_curl(
        &[
            "-x",
            "http://no-such-proxy.invalid:1080",
            &format!("http://{}/", d.addr()),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(5));
    let out = sockit_out(
        &["http", "-x", nowhere, &format!("http://{}/", d.addr())],
        &[],
    );
    assert_eq!(out.status.code(), Some(5));
    let out = sockit_out(&["connect", "-x", nowhere, &d.addr()], &[]);
    let line = error_line(&out, 3);
    assert!(
        line.contains("cannot resolve proxy host no-such-proxy.invalid"),
        "{line}"
    );
}

#[test]
fn http_proxy_connect_and_absolute_form() {
    let test = "http_proxy_connect_and_absolute_form";
    if !peer(test, "tinyproxy") || !peer(test, "curl") {
        return;
    }
    let t = tinyproxy(true);
    let proxy = format!("http://me:s3cret@{}", t.addr());

    // CONNECT for connect, and TLS inside the tunnel.
    let target = banner_server("via connect\n");
    let out = sockit_out(&["connect", "--recv-only", "-x", &proxy, &target], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "via connect\n");
    t.wait_log(&format!("CONNECT {target} HTTP/1.1"));

    let (mut server, tls_addr) = listen(&["--tls-self-signed", "127.0.0.1:0"]);
    server.write(b"over tls\n");
    server.close_stdin();
    let out = sockit_out(
        &[
            "connect",
            "--recv-only",
            "--tls",
            "-k",
            "-x",
            &proxy,
            &tls_addr,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "over tls\n");

    // https:// through CONNECT, next to curl, against openssl s_server.
    if peer(test, "openssl") {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let port = closed_port();
        let mut s = Command::new("openssl");
        s.args(["s_server", "-www", "-accept", &port.to_string()])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut s = s.spawn().unwrap();
        wait_tcp_listening(port);
        let url = format!("https://localhost:{port}/");
        let ca = cert.to_str().unwrap();
        let ours = sockit_out(&["http", "-s", "--cacert", ca, "-x", &proxy, &url], &[]);
        let theirs = curl_out(&["-s", "--cacert", ca, "-x", &proxy, &url], &[]);
        let _ = s.kill();
        let _ = s.wait();
        assert_eq!(ours.status.code(), Some(0), "{}", text(&ours.stderr));
        assert_eq!(theirs.status.code(), Some(0));
        assert!(
            text(&ours.stdout).contains("<HTML>"),
            "{}",
            text(&ours.stdout)
        );
        t.wait_log(&format!("CONNECT localhost:{port} HTTP/1.1"));
    }

    // chat join through CONNECT.
    let (chat, addr) = chat_serve(&[]);
    let mut join = sockit();
    join.args(["chat", "join", "-x", &proxy, &addr]);
    let mut join = Proc::spawn(join);
    join.wait_stdout(b"welcome");
    join.write(b"/quit\n");
    assert!(join.wait_exit().0.success());
    drop(chat);

    // Plain http:// goes as an absolute-form request, as curl sends it.
    let (web, heads) = http_server("absolute\n");
    let url = format!("http://{web}/abs?q=1");
    let out = same_as_curl(&["-x", &proxy, &url], &[]);
    assert_eq!(text(&out.stdout), "absolute\n");
    t.wait_log(&format!("GET http://{web}/abs?q=1 HTTP/1.1"));
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    for h in &heads {
        assert!(h.starts_with("GET /abs?q=1 HTTP/1.1\r\n"), "{h}");
        assert!(h.to_ascii_lowercase().contains("via: "), "{h}");
        assert!(
            !h.to_ascii_lowercase().contains("proxy-authorization"),
            "{h}"
        );
    }
}

#[test]
fn http_proxy_refusals() {
    let test = "http_proxy_refusals";
    if !peer(test, "tinyproxy") || !peer(test, "curl") {
        return;
    }
    let t = tinyproxy(true);
    let bare = format!("http://{}", t.addr());
    let target = banner_server("never\n");
    let out = sockit_out(&["connect", "-x", &bare, &target], &[]);
    let line = error_line(&out, 10);
    assert!(
        line.contains("the proxy wants credentials (--proxy-user)") && line.contains("407"),
        "{line}"
    );
    let out = sockit_out(
        &["connect", "-x", &bare, "--proxy-user", "me:nope", &target],
        &[],
    );
    let line = error_line(&out, 10);
    assert!(
        line.contains("credentials refused") && !line.contains("nope"),
        "{line}"
    );
    // https:// through CONNECT without credentials: curl's 56, same output.
    same_as_curl(&["-x", &bare, &format!("https://{target}/")], &[]);
    // Plain http:// gets the proxy's 407 page, exit 0, as curl.
    let (web, _) = http_server("hidden\n");
    let out = same_as_curl(&["-x", &bare, &format!("http://{web}/")], &[]);
    assert!(text(&out.stdout).contains("407"));
}

#[test]
fn proxy_environment_and_no_proxy_like_curl() {
    let test = "proxy_environment_and_no_proxy_like_curl";
    if !peer(test, "tinyproxy") || !peer(test, "curl") {
        return;
    }
    let t = tinyproxy(false);
    let (web, heads) = http_server("env\n");
    let url = format!("http://{web}/env");
    let via = |n: usize| {
        heads.lock().unwrap()[n]
            .to_ascii_lowercase()
            .contains("via: ")
    };
    let proxy = format!("http://{}", t.addr());
    let dead = format!("http://127.0.0.1:{}", closed_port());

    same_as_curl(&[&url], &[("http_proxy", &proxy)]);
    same_as_curl(&[&url], &[("http_proxy", &proxy)]);
    assert!(via(0) && via(1), "http_proxy is used");
    // HTTP_PROXY in capitals is not read (CGI's Proxy: header lands there).
    same_as_curl(&[&url], &[("HTTP_PROXY", &dead)]);
    // all_proxy as a fallback, no_proxy and --noproxy to go direct.
    let out = same_as_curl(&[&url], &[("ALL_PROXY", &dead)]);
    assert_eq!(out.status.code(), Some(7));
    for no in ["127.0.0.1", "127.0.0.0/8", "*"] {
        let out = same_as_curl(&[&url], &[("http_proxy", &dead), ("no_proxy", no)]);
        assert_eq!(text(&out.stdout), "env\n", "no_proxy={no}");
        let out = same_as_curl(&["--noproxy", no, &url], &[("http_proxy", &dead)]);
        assert_eq!(text(&out.stdout), "env\n", "--noproxy {no}");
    }
    let out = same_as_curl(&[&url], &[("http_proxy", &dead), ("NO_PROXY", "127.0.0.1")]);
    assert_eq!(out.status.code(), Some(0));
    // -x '' turns the environment's proxy off.
    let out = same_as_curl(&["-x", "", &url], &[("http_proxy", &dead)]);
    assert_eq!(out.status.code(), Some(0));
    // https_proxy is for https:// only.
    same_as_curl(&[&url], &[("https_proxy", &dead)]);
}

#[test]
fn proxy_flag_errors() {
    let out = sockit_out(&["connect", "-x", "-", "127.0.0.1:1"], &[]);
    let line = error_line(&out, 2);
    assert!(line.contains("--hex-dump"), "{line}");
    let out = sockit_out(&["connect", "-x", "ftp://me:pw@h:1", "127.0.0.1:1"], &[]);
    let line = error_line(&out, 2);
    assert!(
        line.contains("unknown scheme ftp://") && !line.contains(":pw"),
        "{line}"
    );
    let out = sockit_out(
        &["connect", "-u", "-x", "socks5://127.0.0.1:1", "127.0.0.1:1"],
        &[],
    );
    let line = error_line(&out, 2);
    assert!(line.contains("TCP connections only"), "{line}");
    let out = sockit_out(
        &["http", "http://127.0.0.1:1/"],
        &[("http_proxy", "bad://x")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
