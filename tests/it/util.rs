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
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
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
        self.stdout.wait(WAIT, &format!("stdout {:?}", String::from_utf8_lossy(needle)), |d| {
            contains(d, needle)
        })
    }

    /// Waits until stdout has at least `n` bytes.
    pub fn wait_stdout_len(&self, n: usize) -> Vec<u8> {
        self.stdout.wait(WAIT, &format!("{n} bytes on stdout"), |d| d.len() >= n)
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
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit; stderr: {}",
                self.stderr_now()
            );
            thread::sleep(Duration::from_millis(10));
        };
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
    let p = Proc::spawn(cmd);
    let err = p.wait_stderr("listening on ");
    let line = err
        .lines()
        .find(|l| l.contains("listening on "))
        .unwrap()
        .to_string();
    let addr = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
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
