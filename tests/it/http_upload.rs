//! `sockit http` uploads as curl sends them: `-T -` (stdin) streamed chunked
//! with bounded memory, and `--limit-rate` pacing upload bodies (`-T`, `-d`,
//! `-F`) as it paces downloads; against a private nginx (WebDAV PUT).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// A private nginx on a free loopback port storing PUT bodies under `/put/`.
struct Nginx {
    _nginx: NginxProc,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = nginx_dir();
        let p = dir.path();
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
        self.dir.path().join("www").join(rel)
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
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        client_max_body_size 0;
        location = /framing {{
            return 200 "te=[$http_transfer_encoding] cl=[$http_content_length]\n";
        }}
        location /put/ {{ dav_methods PUT; create_full_put_path on; }}
    }}
}}
"#,
        user = if root { "user root;" } else { "" },
    )
}

/// Runs `prog` (`sockit` means `sockit http`) with `args` and `stdin`: exit
/// code, stdout, stderr, how long it took.
fn run_with(prog: &str, args: &[&str], stdin: &[u8]) -> (i32, String, String, Duration) {
    let mut cmd = if prog == "sockit" {
        let mut c = sockit();
        c.arg("http");
        c
    } else {
        require(prog);
        Command::new(prog)
    };
    cmd.args(args);
    let t = Instant::now();
    let mut p = Proc::spawn(cmd);
    p.write(stdin);
    p.close_stdin();
    let (st, out, err) = p.wait_exit();
    let took = t.elapsed();
    let out = String::from_utf8_lossy(&out).into_owned();
    (st.code().unwrap_or(-1), out, err, took)
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn stdin_upload_is_chunked_like_curl() {
    let ng = Nginx::start();
    let url = ng.url("/framing");
    let want = "te=[chunked] cl=[]\n";
    let (code, out, err, _) = run_with("sockit", &["-sS", "-T", "-", &url], b"from stdin\n");
    assert_eq!((code, out.as_str()), (0, want), "{err}");
    let (code, out, _, _) = run_with("curl", &["-sS", "-T", "-", &url], b"from stdin\n");
    assert_eq!((code, out.as_str()), (0, want), "curl");
    // A regular file keeps its length.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, "12345").unwrap();
    let args = ["-sS", "-T", f.to_str().unwrap(), &url];
    let (code, out, err, _) = run_with("sockit", &args, b"");
    assert_eq!((code, out.as_str()), (0, "te=[] cl=[5]\n"), "{err}");
    // A -H Content-Length is the length sent: stdin goes unchunked (curl sends
    // both headers here, which nginx refuses); a shorter stdin is a send error.
    let args = ["-sS", "-T", "-", "-H", "Content-Length: 6", &url];
    let (code, out, err, _) = run_with("sockit", &args, b"hello\n");
    assert_eq!((code, out.as_str()), (0, "te=[] cl=[6]\n"), "{err}");
    let args = ["-sS", "-T", "-", "-H", "Content-Length: 9", &url];
    let (code, _, err, _) = run_with("sockit", &args, b"hello\n");
    assert_eq!(code, 55, "{err}");
    assert!(
        err.contains("stdin ended 3 bytes short of the 9 announced"),
        "{err}"
    );
    // An empty stdin is an empty chunked body, stored as an empty file.
    let (code, _, err, _) = run_with("sockit", &["-fsS", "-T", "-", &ng.url("/put/e")], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(ng.path("put/e")).unwrap(), b"");
}

#[test]
fn a_large_stdin_upload_is_streamed_not_loaded() {
    const SIZE: usize = 64 << 20;
    let ng = Nginx::start();
    let data = random_bytes(SIZE, 21);
    let mut cmd = sockit();
    cmd.args(["http", "-fsS", "-T", "-", &ng.url("/put/big.bin")]);
    let mut p = Proc::spawn(cmd);
    let pid = p.child.id();
    for piece in data.chunks(1 << 20) {
        p.write(piece);
    }
    // All but what the pipe holds has gone through sockit: its peak now is
    // (nearly) the peak of the whole upload. Loaded first, it would pass 64 MiB.
    let peak = peak_kib(pid);
    p.close_stdin();
    let (st, _, err) = p.wait_exit();
    assert!(st.success(), "{err}");
    assert!(
        peak < 40 * 1024,
        "peak RSS {peak} KiB while uploading 64 MiB from stdin"
    );
    let stored = std::fs::read(ng.path("put/big.bin")).unwrap();
    assert_eq!(stored.len(), SIZE);
    assert!(
        stored == data,
        "the stored body differs from what was piped"
    );
}

#[test]
fn stdin_cannot_be_sent_twice() {
    // Two URLs, one stdin: the second request cannot rewind it (curl 65 says
    // the same); a one-line error, the send class.
    let ng = Nginx::start();
    let (a, b) = (ng.url("/put/a"), ng.url("/put/b"));
    let (code, _, err, _) = run_with("sockit", &["-sS", "-T", "-", &a, &b], b"once\n");
    assert_eq!(code, 55, "{err}");
    assert!(
        err.starts_with("sockit: error: cannot send stdin again ("),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(ng.path("put/a")).unwrap(), b"once\n");
}

#[test]
fn limit_rate_paces_uploads() {
    const SIZE: usize = 2 << 20;
    let ng = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("two.bin");
    let data = random_bytes(SIZE, 3);
    std::fs::write(&src, &data).unwrap();
    let s = src.to_str().unwrap();
    let (at_d, at_f) = (format!("@{s}"), format!("f=@{s}"));
    let cases: Vec<(&str, Vec<&str>, &[u8])> = vec![
        ("-T FILE", vec!["-T", s], b""),
        ("-T -", vec!["-T", "-"], &data),
        (
            "--data-binary",
            vec!["-X", "PUT", "--data-binary", &at_d],
            b"",
        ),
        ("-F", vec!["-X", "PUT", "-F", &at_f], b""),
    ];
    // The cases run side by side: each is paced on its own.
    let runs: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, args, stdin))| {
            let url = ng.url(&format!("/put/{i}"));
            let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            args.extend(["-fsS", "--limit-rate", "1M", &url].map(String::from));
            let (name, stdin) = (name.to_string(), stdin.to_vec());
            thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (name, run_with("sockit", &args, &stdin))
            })
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        let (name, (code, _, err, took)) = r.join().unwrap();
        assert_eq!(code, 0, "{name}: {err}");
        // 2 MiB at 1 MiB/s: the last piece leaves after 1.75 s; a loaded
        // machine makes it slower, never faster.
        assert!(
            took >= Duration::from_millis(1500),
            "{name}: 2 MiB at 1M/s took {took:?}"
        );
        assert!(took < WAIT, "{name}: took {took:?}");
        let stored = std::fs::read(ng.path(&format!("put/{i}"))).unwrap();
        assert!(
            stored.len() >= SIZE,
            "{name}: {} bytes stored",
            stored.len()
        );
    }
    // Without the limit, the same upload is quick.
    let url = ng.url("/put/free");
    let (code, _, err, took) = run_with("sockit", &["-fsS", "-T", s, &url], b"");
    assert_eq!(code, 0, "{err}");
    assert!(
        took < Duration::from_millis(1500),
        "unlimited took {took:?}"
    );
    assert_eq!(std::fs::read(ng.path("put/free")).unwrap(), data);
}
