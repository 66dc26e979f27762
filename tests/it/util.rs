//! Helpers to drive the real binary: spawned processes that are killed on drop,
//! stderr watched for events, every wait bounded.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for any single wait in the tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// A `Command` for the binary under test.
pub fn sockit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockit"));
    c.env_remove("RUST_LOG");
    // Each run gets its own state directory: `chat serve` keeps history
    // there by default, and servers of parallel tests must not share it.
    c.env("XDG_STATE_HOME", state_dir());
    c
}

#[derive(Default)]
struct Captured {
    data: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl Captured {
    fn spawn_reader(self: &Arc<Self>, mut src: impl Read + Send + 'static) {
        let me = self.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                let n = src.read(&mut buf).unwrap_or(0);
                let mut g = me.data.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    me.changed.notify_all();
                    return;
                }
                g.0.extend_from_slice(&buf[..n]);
                me.changed.notify_all();
            }
        });
    }

    /// Waits until `pred` holds for the captured bytes, or panics after `limit`.
    fn wait(&self, limit: Duration, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        let mut g = self.data.lock().unwrap();
        loop {
            if pred(&g.0) {
                return g.0.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "timed out waiting for {what}; got: {:?}",
                    String::from_utf8_lossy(&g.0)
                );
            }
            if g.1 {
                // The stream ended: nothing more will come.
                panic!(
                    "stream closed while waiting for {what}; got: {:?}",
                    String::from_utf8_lossy(&g.0)
                );
            }
            g = self.changed.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.data.lock().unwrap().0.clone()
    }

    fn wait_closed(&self, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        let mut g = self.data.lock().unwrap();
        while !g.1 {
            let now = Instant::now();
            assert!(now < deadline, "timed out waiting for EOF");
            g = self.changed.wait_timeout(g, deadline - now).unwrap().0;
        }
        g.0.clone()
    }
}

/// A running process with captured stdout and stderr; killed on drop.
pub struct Proc {
    pub child: Child,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
}

impl Proc {
    /// Spawns `cmd` with piped stdin, stdout and stderr.
    pub fn spawn(cmd: Command) -> Proc {
        Proc::spawn_with_stdin(cmd, Stdio::piped())
    }

    /// Writes to the process's stdin.
    pub fn write(&mut self, data: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the process's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.child.stdin.take();
    }

    /// Waits until stdout contains `needle`.
    pub fn wait_stdout(&self, needle: &[u8]) -> Vec<u8> {
        self.stdout.wait(
            WAIT,
            &format!("stdout {:?}", String::from_utf8_lossy(needle)),
            |d| contains(d, needle),
        )
    }

    /// Waits until stdout has at least `n` bytes.
    pub fn wait_stdout_len(&self, n: usize) -> Vec<u8> {
        self.stdout
            .wait(WAIT, &format!("{n} bytes on stdout"), |d| d.len() >= n)
    }

    /// Waits until stderr contains `needle`; returns all of stderr.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let d = self.stderr.wait(WAIT, &format!("stderr {needle:?}"), |d| {
            contains(d, needle.as_bytes())
        });
        String::from_utf8_lossy(&d).into_owned()
    }

    /// Everything on stdout so far.
    pub fn stdout_now(&self) -> Vec<u8> {
        self.stdout.snapshot()
    }

    /// Everything on stderr so far.
    pub fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.snapshot()).into_owned()
    }

    /// Waits for exit (bounded); returns status, stdout, stderr.
    pub fn wait_exit(mut self) -> (ExitStatus, Vec<u8>, String) {
        let status = wait_child(&mut self.child, &self.stderr);
        let out = self.stdout.wait_closed(WAIT);
        let err = String::from_utf8_lossy(&self.stderr.wait_closed(WAIT)).into_owned();
        (status, out, err)
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Starts `sockit listen -v ARGS...` and waits for its "listening on ADDR" line.
/// Returns the process and ADDR (e.g. `127.0.0.1:41234`, `/tmp/x.sock`, `@name`).
pub fn listen(args: &[&str]) -> (Proc, String) {
    let mut cmd = sockit();
    cmd.arg("listen").arg("-v").args(args);
    spawn_until_listening(cmd, "listening on ")
}

/// Spawns `cmd` and waits for `MARKER ADDR ...` on its stderr; returns it and ADDR.
fn spawn_until_listening(cmd: Command, marker: &str) -> (Proc, String) {
    let p = Proc::spawn(cmd);
    let err = p.wait_stderr(marker);
    let addr = err
        .lines()
        .find_map(|l| l.split(marker).nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    (p, addr)
}

/// Runs `sockit ARGS...` to completion with `input` on stdin (bounded by WAIT).
pub fn run(args: &[&str], input: &[u8]) -> Output {
    let mut cmd = sockit();
    cmd.args(args);
    let mut p = Proc::spawn(cmd);
    p.write(input);
    p.close_stdin();
    let (status, stdout, stderr) = p.wait_exit();
    Output {
        status,
        stdout,
        stderr: stderr.into_bytes(),
    }
}

/// A path for a Unix socket in a fresh temporary directory (kept alive by the guard).
pub fn sock_path(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name).to_str().unwrap().to_string();
    (dir, p)
}

/// A unique abstract socket name for this test process.
pub fn abstract_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "sockit-test-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// True when `prog` is on PATH (peers like nc.openbsd are installed by .ci/run).
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Asserts `prog` is installed; in CI a missing peer is a failure, not a skip.
pub fn require(prog: &str) {
    assert!(
        have(prog),
        "{prog} is not installed: run .ci/run (or apt-get install it) first"
    );
}

/// Deterministic pseudo-random bytes (xorshift), for integrity tests.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Connects a TCP client to `addr` with read and write timeouts of [`WAIT`].
pub fn tcp(addr: &str) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Like [`tcp`], from source address `src` (e.g. `127.0.0.2`, any port).
pub fn tcp_from(src: &str, addr: &str) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let src: std::net::SocketAddr = (src.parse::<std::net::IpAddr>().unwrap(), 0).into();
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    s.bind(&src.into()).expect("bind source");
    s.connect_timeout(&addr.into(), WAIT).expect("connect");
    let s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads exactly `n` bytes (each read bounded by the stream's timeout).
pub fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Reads until EOF (each read bounded by the stream's timeout).
pub fn read_all(s: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("reading to EOF: {e} (after {} bytes)", out.len()));
    out
}

/// Number of non-overlapping occurrences of `needle` in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

impl Proc {
    /// Waits at most `limit` for stdout to contain `needle`; false if it did not.
    pub fn stdout_within(&self, needle: &[u8], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut g = self.stdout.data.lock().unwrap();
        loop {
            if contains(&g.0, needle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || g.1 {
                return false;
            }
            g = self
                .stdout
                .changed
                .wait_timeout(g, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until stderr contains `needle` at least `n` times; returns all of stderr.
    pub fn wait_stderr_count(&self, needle: &str, n: usize) -> String {
        let d = self
            .stderr
            .wait(WAIT, &format!("{n} x stderr {needle:?}"), |d| {
                count(&String::from_utf8_lossy(d), needle) >= n
            });
        String::from_utf8_lossy(&d).into_owned()
    }
}

/// Makes sure every client of a `--broker` (or any fan-out) listener has joined:
/// each client's sync byte (`a`, `b`, ...) is resent until every other client has
/// seen it, then each sends one end marker (`A`, `B`, ...) and every client reads
/// through the others' markers, so nothing from this exchange is left unread.
/// Bytes sent before a member joins are not delivered to it, hence the retries.
pub fn hub_sync(clients: &mut [std::net::TcpStream]) {
    let n = clients.len();
    assert!(n <= 26);
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    for x in 0..n {
        let mut seen = vec![false; n];
        seen[x] = true;
        while !seen.iter().all(|s| *s) {
            assert!(
                Instant::now() < deadline,
                "clients did not all join in time"
            );
            clients[x].write_all(&[b'a' + x as u8]).unwrap();
            for y in 0..n {
                if seen[y] {
                    continue;
                }
                clients[y]
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                loop {
                    match clients[y].read(&mut buf) {
                        Ok(0) => panic!("client {y} got EOF while joining"),
                        Ok(k) => {
                            if buf[..k].contains(&(b'a' + x as u8)) {
                                seen[y] = true;
                                break;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            break
                        }
                        Err(e) => panic!("client {y}: {e}"),
                    }
                }
            }
        }
    }
    for (x, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(&[b'A' + x as u8]).unwrap();
    }
    for (y, c) in clients.iter_mut().enumerate() {
        let mut need: Vec<u8> = (0..n).filter(|x| *x != y).map(|x| b'A' + x as u8).collect();
        while !need.is_empty() {
            let k = c.read(&mut buf).expect("reading end markers");
            assert!(k > 0, "client {y} got EOF while joining");
            for b in &buf[..k] {
                assert!(
                    b.is_ascii_alphabetic(),
                    "client {y} got unexpected byte {b:#x} while joining"
                );
                need.retain(|m| m != b);
            }
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on: bound by the kernel's choice,
/// read, and released.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits (bounded) until a TCP socket listens on `port` (state 0A in /proc/net/tcp{,6}).
pub fn wait_tcp_listening(port: u16) {
    let deadline = Instant::now() + WAIT;
    let want = format!(":{port:04X}");
    loop {
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            let listening = text.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
            });
            if listening {
                return;
            }
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Accepts one connection within [`WAIT`]; the stream gets read and write timeouts of [`WAIT`].
pub fn accept_one(l: &std::net::TcpListener) -> (std::net::TcpStream, std::net::SocketAddr) {
    l.set_nonblocking(true).unwrap();
    let (s, peer) = accept_within(|| l.accept());
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    (s, peer)
}

/// Polls a non-blocking `accept` until it yields, for at most [`WAIT`].
fn accept_within<T>(mut accept: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match accept() {
            Ok(v) => return v,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                assert!(Instant::now() < deadline, "no connection arrived");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Checks the shape of a failed run: exit `code`, nothing on stdout, and stderr exactly
/// one `sockit: error: ...` line with no panic or backtrace text. Returns that line.
pub fn error_line(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "exit status; stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic on stderr: {err}"
    );
    assert_eq!(err.lines().count(), 1, "stderr is not one line: {err:?}");
    assert!(err.ends_with('\n'), "stderr line not terminated: {err:?}");
    assert!(err.starts_with("sockit: error: "), "stderr: {err:?}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    err.trim_end().to_string()
}

impl Proc {
    /// Spawns `cmd` with the given stdin (a file, `Stdio::null()`) and captured output.
    pub fn spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = Arc::new(Captured::default());
        let stderr = Arc::new(Captured::default());
        stdout.spawn_reader(child.stdout.take().unwrap());
        stderr.spawn_reader(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }
}

/// A process whose stdout is a pipe the test reads a little of and then closes
/// (like `| head -c N`); stderr is captured; killed on drop.
pub struct PipedStdout {
    child: Child,
    stdout: Option<std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    reader: Option<std::process::ChildStdout>,
    stderr: Arc<Captured>,
}

impl PipedStdout {
    /// Spawns `cmd` with stdin from /dev/null.
    pub fn spawn(mut cmd: Command) -> PipedStdout {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = Arc::new(Captured::default());
        stderr.spawn_reader(child.stderr.take().unwrap());
        let reader = child.stdout.take();
        PipedStdout {
            child,
            stdout: None,
            reader,
            stderr,
        }
    }

    /// Waits until stderr contains `needle`; returns all of stderr.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let d = self.stderr.wait(WAIT, &format!("stderr {needle:?}"), |d| {
            contains(d, needle.as_bytes())
        });
        String::from_utf8_lossy(&d).into_owned()
    }

    /// Reads exactly `n` bytes of stdout (bounded), then closes the read end.
    pub fn read_then_close(&mut self, n: usize) -> Vec<u8> {
        let mut out = self.reader.take().expect("stdout already closed");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; n];
            let r = out.read_exact(&mut buf).map(|_| buf);
            // `out` is dropped here: the pipe's only read end closes.
            let _ = tx.send(r);
        });
        self.stdout = Some(rx);
        match self.stdout.as_ref().unwrap().recv_timeout(WAIT) {
            Ok(Ok(buf)) => buf,
            Ok(Err(e)) => panic!("reading stdout: {e}"),
            Err(_) => panic!("timed out reading {n} bytes of stdout"),
        }
    }

    /// Waits for exit (bounded); returns status and stderr.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let status = wait_child(&mut self.child, &self.stderr);
        let err = String::from_utf8_lossy(&self.stderr.wait_closed(WAIT)).into_owned();
        (status, err)
    }
}

impl Drop for PipedStdout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Waits until stdout has at least `n` bytes; on timeout reports only the count
    /// (for large binary payloads).
    pub fn wait_stdout_bytes(&self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        let mut g = self.stdout.data.lock().unwrap();
        loop {
            if g.0.len() >= n {
                return g.0.clone();
            }
            let now = Instant::now();
            let (have, closed) = (g.0.len(), g.1);
            if now >= deadline || closed {
                drop(g);
                panic!(
                    "waiting for {n} bytes on stdout: got {have} (stream closed: {closed}); stderr: {}",
                    self.stderr_now()
                );
            }
            g = self
                .stdout
                .changed
                .wait_timeout(g, deadline - now)
                .unwrap()
                .0;
        }
    }
}

/// Retries `f` while it fails with EINTR: a signal handler installed elsewhere in
/// the test process interrupts blocking socket calls that have a timeout.
pub fn no_eintr<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Accepts one Unix stream connection within [`WAIT`]; the stream gets read and
/// write timeouts of [`WAIT`].
pub fn accept_unix(l: &std::os::unix::net::UnixListener) -> std::os::unix::net::UnixStream {
    l.set_nonblocking(true).unwrap();
    let (s, _) = accept_within(|| l.accept());
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Starts `sockit chat serve -v ARGS...` (on 127.0.0.1:0 unless ARGS name an
/// endpoint) and waits for its "chat listening on ADDR" line; returns it and ADDR.
pub fn chat_serve(args: &[&str]) -> (Proc, String) {
    let mut cmd = sockit();
    cmd.args(["chat", "serve", "-v"]).args(args);
    if !args.iter().any(|a| a.contains(':')) {
        cmd.arg("127.0.0.1:0");
    }
    spawn_until_listening(cmd, "chat listening on ")
}

/// `sockit connect ARGS...` with piped stdin.
pub fn spawn_connect(args: &[&str]) -> Proc {
    let mut cmd = sockit();
    cmd.arg("connect").args(args);
    Proc::spawn(cmd)
}

/// Asserts two byte strings are equal without printing megabytes on failure.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Skips counted so far in this test process (see [`skipped`]).
static SKIPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Says on stderr (seen with `--nocapture`) that a test, or part of it, is
/// skipped and why, and counts it, so a skip is never silent.
pub fn skipped(test: &str, why: &str) {
    let n = SKIPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    eprintln!("skipped: {test}: {why} (skip #{n} in this run)");
}

/// A chat line client over TCP or a Unix socket, every read bounded by
/// [`WAIT`]: the one the chat suites share.
pub struct ChatClient {
    stream: ChatStream,
    reader: std::io::BufReader<Box<dyn Read + Send>>,
    /// The nick the server gave it (or it took).
    pub nick: String,
}

enum ChatStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl ChatClient {
    /// Connects over TCP and reads the welcome.
    pub fn connect(addr: &str) -> ChatClient {
        let s = std::net::TcpStream::connect(addr).unwrap();
        let r: Box<dyn Read + Send> = Box::new(s.try_clone().unwrap());
        ChatClient::welcomed(ChatStream::Tcp(s), r)
    }

    /// Connects over a Unix stream socket and reads the welcome.
    pub fn unix(path: &str) -> ChatClient {
        let s = std::os::unix::net::UnixStream::connect(path).unwrap();
        let r: Box<dyn Read + Send> = Box::new(s.try_clone().unwrap());
        ChatClient::welcomed(ChatStream::Unix(s), r)
    }

    /// Connects over TCP and takes `nick`.
    pub fn named(addr: &str, nick: &str) -> ChatClient {
        let mut c = ChatClient::connect(addr);
        c.send(&format!("/nick {nick}\n"));
        c.expect(&format!("is now {nick}"));
        c.nick = nick.to_string();
        c
    }

    fn welcomed(stream: ChatStream, r: Box<dyn Read + Send>) -> ChatClient {
        let mut c = ChatClient {
            stream,
            reader: std::io::BufReader::new(r),
            nick: String::new(),
        };
        c.set_read_timeout(WAIT);
        match &c.stream {
            ChatStream::Tcp(s) => s.set_write_timeout(Some(WAIT)).unwrap(),
            ChatStream::Unix(s) => s.set_write_timeout(Some(WAIT)).unwrap(),
        }
        let welcome = c.line();
        let rest = welcome
            .strip_prefix("* welcome, you are ")
            .unwrap_or_else(|| panic!("{welcome}"));
        c.nick = rest.split(',').next().unwrap().to_string();
        c
    }

    fn set_read_timeout(&self, d: Duration) {
        match &self.stream {
            ChatStream::Tcp(s) => s.set_read_timeout(Some(d)).unwrap(),
            ChatStream::Unix(s) => s.set_read_timeout(Some(d)).unwrap(),
        }
    }

    /// Sends `text` as is (include the newline).
    pub fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, data: &[u8]) {
        self.try_send_bytes(data).unwrap();
    }

    /// Sends raw bytes; the error, if the server closed the connection.
    pub fn try_send_bytes(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            ChatStream::Tcp(s) => s.write_all(data),
            ChatStream::Unix(s) => s.write_all(data),
        }
    }

    /// Shuts down one or both directions; errors are ignored.
    pub fn shutdown(&self, how: std::net::Shutdown) {
        let _ = match &self.stream {
            ChatStream::Tcp(s) => s.shutdown(how),
            ChatStream::Unix(s) => s.shutdown(how),
        };
    }

    /// The next line, without its newline; panics on timeout or EOF.
    pub fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut buf = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut buf)
            .expect("line before timeout");
        assert!(n > 0, "connection closed");
        assert_eq!(
            buf.pop(),
            Some(b'\n'),
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
        String::from_utf8(buf).expect("server sends UTF-8")
    }

    /// Reads lines until one contains `needle`; returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no line with {needle:?}");
            let l = self.line();
            if l.contains(needle) {
                return l;
            }
        }
    }

    /// Asserts nothing arrives for `d`.
    pub fn quiet(&mut self, d: Duration) {
        use std::io::BufRead;
        self.set_read_timeout(d);
        let mut buf = Vec::new();
        let r = self.reader.read_until(b'\n', &mut buf);
        self.set_read_timeout(WAIT);
        match r {
            Ok(0) => panic!("connection closed"),
            Ok(_) => panic!("unexpected line {:?}", String::from_utf8_lossy(&buf)),
            Err(_) => assert!(buf.is_empty()),
        }
    }

    /// Reads until EOF (bounded); returns everything.
    pub fn until_eof(&mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }

    /// The reading half, for tests that read bytes rather than lines.
    pub fn reader(&mut self) -> &mut std::io::BufReader<Box<dyn Read + Send>> {
        &mut self.reader
    }
}

/// Waits (bounded by [`WAIT`]) for `child` to exit; on timeout, fails with
/// its stderr so far.
fn wait_child(child: &mut Child, stderr: &Captured) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit; stderr: {}",
            String::from_utf8_lossy(&stderr.snapshot())
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A rustls server config with a fresh self-signed certificate for
/// `localhost`, for test servers that speak TLS themselves.
pub fn self_signed_server_config() -> std::sync::Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    Arc::new(config)
}

/// Waits for `child` to exit within `limit`; kills and reaps it and returns
/// `None` if it is still running then.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh directory under target/tmp for one command's state (history).
pub fn state_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("it-state");
        let _ = std::fs::remove_dir_all(&root);
        root
    });
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = root.join(n.to_string());
    std::fs::create_dir_all(&dir).expect("state dir");
    dir
}

impl ChatClient {
    /// The next line if one arrives within `d` (None on timeout; panics on EOF).
    pub fn line_within(&mut self, d: Duration) -> Option<String> {
        use std::io::BufRead;
        if d.is_zero() {
            return None;
        }
        self.set_read_timeout(d);
        let mut buf = Vec::new();
        let r = self.reader.read_until(b'\n', &mut buf);
        self.set_read_timeout(WAIT);
        match r {
            Ok(0) => panic!("connection closed"),
            Ok(_) if buf.ends_with(b"\n") => {
                buf.pop();
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
            // A partial line stays unread no more: keep it simple, tests
            // send whole lines.
            _ => None,
        }
    }
}

/// Runs `cmd` with piped stdout and stderr and waits (bounded by [`WAIT`])
/// for it to exit; both streams are read on threads so neither can fill up.
pub fn output_within(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = exit_within(&mut child, WAIT).expect("command did not finish");
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// A private nginx's directory: `www/`, `logs/` and `tmp/` made.
pub fn nginx_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["www", "logs", "tmp"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    dir
}

/// A running private nginx: stopped (SIGTERM, then SIGKILL) when dropped.
pub struct NginxProc(Child);

impl Drop for NginxProc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts nginx in `dir` (see [`nginx_dir`]) on `n` free loopback ports,
/// with the `nginx.conf` that `config(ports, running as root)` gives, and
/// waits until every port accepts. A port taken meanwhile is tried again
/// with others (5 times); any other failure panics with nginx's words.
pub fn start_nginx(
    dir: &std::path::Path,
    n: usize,
    config: impl Fn(&[u16], bool) -> String,
) -> (NginxProc, Vec<u16>) {
    let bin = if have("nginx") {
        "nginx"
    } else {
        "/usr/sbin/nginx"
    };
    require(bin);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for _attempt in 0..5 {
        let ports: Vec<u16> = (0..n)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != n {
            // The kernel may hand out the same free port twice in a row.
            continue;
        }
        std::fs::write(dir.join("nginx.conf"), config(&ports, root)).unwrap();
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let deadline = Instant::now() + WAIT;
        loop {
            let up = ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return (NginxProc(child), ports);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            thread::sleep(Duration::from_millis(20));
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
        if !(err.contains("Address already in use") || log.contains("Address already in use")) {
            panic!("nginx failed to start: {err}{log}");
        }
    }
    panic!("nginx: no free port after 5 attempts");
}
