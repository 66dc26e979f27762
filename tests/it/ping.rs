//! `sockit ping` against the loopback interface only (127.0.0.1 and ::1): output
//! shape and arithmetic, JSON, deadline and timeout, signals, the unprivileged
//! fallback, the error when no ICMP socket is allowed, concurrent runs, and
//! duplicates, late and corrupted replies forged on a raw socket.
//!
//! These tests run as root. Several change sysctls (`net.ipv4.ping_group_range`,
//! `icmp_echo_ignore_all`), which affect every ping on the machine, so every test
//! here holds one lock (in-process mutex + a file lock for other test processes)
//! and each sysctl is restored on drop. When /proc/sys is read-only the tests that
//! need a sysctl say so on stderr and check what they still can.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::util::*;

// ---------------------------------------------------------------------------
// Serialisation and sysctls

static SERIAL: Mutex<()> = Mutex::new(());
const LOCK_FILE: &str = "/tmp/sockit-ping-tests.lock";

/// Held for the whole of each test. Field order: the file lock goes first.
pub(crate) struct Serial {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

pub(crate) fn serial() -> Serial {
    let deadline = Instant::now() + Duration::from_secs(600);
    let guard = loop {
        match SERIAL.try_lock() {
            Ok(g) => break g,
            Err(TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                assert!(Instant::now() < deadline, "ping test lock held too long");
                thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .expect("open lock file");
    loop {
        // SAFETY: flock(2) on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{LOCK_FILE} held by another process too long"
        );
        thread::sleep(Duration::from_millis(20));
    }
    Serial {
        _file: file,
        _guard: guard,
    }
}

/// A sysctl set for the duration of a test, restored on drop (panics included).
pub(crate) struct Sysctl {
    path: String,
    old: String,
}

impl Sysctl {
    /// Sets `name` (dotted) to `value`; `None` (after saying so) if /proc/sys cannot
    /// be written here.
    pub(crate) fn set(name: &str, value: &str) -> Option<Sysctl> {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let old = match std::fs::read_to_string(&path) {
            Ok(old) => old,
            Err(e) => {
                skipped(&current_test(), &format!("cannot read {name} ({e})"));
                return None;
            }
        };
        if let Err(e) = std::fs::write(&path, value) {
            skipped(
                &current_test(),
                &format!("cannot set {name} ({e}); /proc/sys is read-only here"),
            );
            return None;
        }
        Some(Sysctl { path, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, self.old.trim());
    }
}

// ---------------------------------------------------------------------------
// Running the binary

pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

pub(crate) fn finish(cmd: Command) -> Ran {
    let t0 = Instant::now();
    let p = Proc::spawn(cmd);
    let (status, out, stderr) = p.wait_exit();
    Ran {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr,
        elapsed: t0.elapsed(),
    }
}

pub(crate) fn ping(args: &[&str]) -> Ran {
    let mut c = sockit();
    c.arg("ping").args(args);
    finish(c)
}

/// `sockit ARGS` as uid/gid 65534 with no supplementary groups and no capabilities;
/// `None` (after saying why) if that cannot be done here.
/// The running test's name, for skip lines (the test harness names its threads so).
pub(crate) fn current_test() -> String {
    thread::current().name().unwrap_or("ping test").to_string()
}

pub(crate) fn nobody(args: &[&str]) -> Option<Command> {
    let bin = env!("CARGO_BIN_EXE_sockit");
    let mut c = if have("setpriv") {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else if have("runuser") {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", bin]);
        c
    } else {
        skipped(
            &current_test(),
            "neither setpriv nor runuser is installed: no unprivileged run",
        );
        return None;
    };
    c.env_remove("RUST_LOG").args(args);
    Some(c)
}

pub(crate) fn nobody_can_run_the_binary() -> bool {
    let Some(c) = nobody(&["--version"]) else {
        return false;
    };
    let r = finish(c);
    if !r.status.success() {
        skipped(
            &current_test(),
            &format!("uid 65534 cannot run the binary ({})", r.stderr.trim()),
        );
    }
    r.status.success()
}

// ---------------------------------------------------------------------------
// Reading the output

#[derive(Debug)]
pub(crate) struct ReplyLine {
    bytes: usize,
    pub(crate) from: String,
    pub(crate) seq: u16,
    ttl: Option<u8>,
    time_ms: f64,
    dup: bool,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    line[start..].split([' ', ',']).next()
}

pub(crate) fn replies(stdout: &str) -> Vec<ReplyLine> {
    stdout
        .lines()
        .filter(|l| l.contains(" bytes from "))
        .map(|l| {
            let (bytes, rest) = l.split_once(" bytes from ").unwrap();
            let (from, _) = rest.split_once(": ").unwrap();
            ReplyLine {
                bytes: bytes.parse().unwrap(),
                from: from.to_string(),
                seq: field(l, "icmp_seq=").unwrap().parse().unwrap(),
                ttl: field(l, "ttl=").map(|t| t.parse().unwrap()),
                time_ms: field(l, "time=").unwrap().parse().unwrap(),
                dup: l.ends_with("(DUP!)"),
            }
        })
        .collect()
}

#[derive(Debug, PartialEq)]
pub(crate) struct Totals {
    pub(crate) transmitted: u64,
    pub(crate) received: u64,
    loss: String,
    time_ms: u64,
}

pub(crate) fn totals(stdout: &str) -> Totals {
    let line = stdout
        .lines()
        .find(|l| l.contains(" packets transmitted, "))
        .unwrap_or_else(|| panic!("no statistics in {stdout:?}"));
    let num = |s: &str| s.trim().split(' ').next().unwrap().parse::<u64>().unwrap();
    let parts: Vec<&str> = line.split(", ").collect();
    let loss = parts
        .iter()
        .find(|p| p.ends_with("% packet loss"))
        .unwrap()
        .trim_end_matches("% packet loss")
        .to_string();
    let time = parts
        .iter()
        .find(|p| p.starts_with("time "))
        .unwrap()
        .trim_start_matches("time ")
        .trim_end_matches("ms");
    Totals {
        transmitted: num(parts[0]),
        received: num(parts[1]),
        loss,
        time_ms: time.parse().unwrap(),
    }
}

/// min, avg, max, mdev from the `rtt min/avg/max/mdev = ...` line.
fn rtt_line(stdout: &str) -> Option<[f64; 4]> {
    let line = stdout.lines().find(|l| l.starts_with("rtt "))?;
    let nums = line.split(" = ").nth(1)?.trim_end_matches(" ms");
    let v: Vec<f64> = nums.split('/').map(|n| n.parse().unwrap()).collect();
    Some([v[0], v[1], v[2], v[3]])
}

/// Checks every line is one JSON object (with python3's parser) and returns them.
pub(crate) fn json_lines(stdout: &str) -> Vec<String> {
    require("python3");
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import json,sys\nfor l in sys.stdin: json.loads(l)\nprint('ok')",
    ]);
    let mut p = Proc::spawn(c);
    p.write(stdout.as_bytes());
    p.close_stdin();
    let (st, out, err) = p.wait_exit();
    assert!(
        st.success() && out == b"ok\n",
        "invalid JSON: {err}\n{stdout}"
    );
    stdout.lines().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// A raw socket in the test process, to watch and forge ICMP on loopback

pub(crate) struct Raw(pub(crate) Socket);

impl Raw {
    pub(crate) fn open() -> Raw {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
            .expect("raw socket (tests run as root)");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Raw(s)
    }

    /// Next echo request to 127.0.0.1 whose payload is `size` bytes: (IP header,
    /// ICMP message). Bounded by `limit`.
    pub(crate) fn next_request(
        &mut self,
        size: usize,
        limit: Duration,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            let n = match self.0.read(&mut buf) {
                Ok(n) => n,
                Err(_) => continue,
            };
            let p = &buf[..n];
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if n < ihl + 8 || p[ihl] != 8 || n - ihl - 8 != size || p[16..20] != [127, 0, 0, 1] {
                continue;
            }
            return Some((p[..ihl].to_vec(), p[ihl..].to_vec()));
        }
        None
    }

    /// Sends an ICMP message to 127.0.0.1.
    fn send(&self, icmp: &[u8]) {
        let to = SockAddr::from(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0));
        self.0.send_to(icmp, &to).expect("send forged ICMP");
    }
}

/// The same for ICMPv6 on ::1 (no IP header on reads; the kernel does checksums).
struct Raw6(Socket);

impl Raw6 {
    fn open() -> Raw6 {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .expect("raw ICMPv6 socket (tests run as root)");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Raw6(s)
    }

    /// Next ICMPv6 echo request with a `size`-byte payload, bounded by `limit`.
    fn next_request(&mut self, size: usize, limit: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match self.0.read(&mut buf) {
                Ok(n) if n == 8 + size && buf[0] == 128 => return Some(buf[..n].to_vec()),
                _ => continue,
            }
        }
        None
    }

    fn send(&self, icmp: &[u8]) {
        let to = SockAddr::from(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0));
        self.0.send_to(icmp, &to).expect("send forged ICMPv6");
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The reply a host would send to `request`: type 0, checksum redone.
fn reply_to(request: &[u8]) -> Vec<u8> {
    let mut r = request.to_vec();
    r[0] = 0;
    r[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(&r);
    r[2..4].copy_from_slice(&c.to_be_bytes());
    r
}

fn seq_of(icmp: &[u8]) -> u16 {
    u16::from_be_bytes([icmp[6], icmp[7]])
}

/// Polls `done` every 10 ms until it holds; panics after `limit`.
fn poll_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn ipv4_replies_sequence_numbers_and_statistics() {
    let _s = serial();
    let r = ping(&["-c", "3", "-i", "0.2", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.")
    );
    let reps = replies(&r.stdout);
    assert_eq!(
        reps.iter().map(|x| x.seq).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{}",
        r.stdout
    );
    for x in &reps {
        assert_eq!(
            (x.bytes, x.from.as_str(), x.ttl),
            (64, "127.0.0.1", Some(64))
        );
        assert!(!x.dup);
        assert!(x.time_ms > 0.0 && x.time_ms < 1000.0, "{x:?}");
    }
    assert!(r.stdout.contains("\n\n--- 127.0.0.1 ping statistics ---\n"));
    let t = totals(&r.stdout);
    assert_eq!((t.transmitted, t.received, t.loss.as_str()), (3, 3, "0"));
    // Two intervals between the first and the last request.
    assert!((350..3000).contains(&t.time_ms), "{t:?}");
    // min/avg/max agree with the reply lines (printed to the microsecond).
    let [min, avg, max, mdev] = rtt_line(&r.stdout).expect("rtt line");
    let times: Vec<f64> = reps.iter().map(|x| x.time_ms).collect();
    let close = |a: f64, b: f64| (a - b).abs() <= 0.0011;
    assert!(close(min, times.iter().cloned().fold(f64::MAX, f64::min)));
    assert!(close(max, times.iter().cloned().fold(0.0, f64::max)));
    assert!(
        close(avg, times.iter().sum::<f64>() / 3.0),
        "{avg} {times:?}"
    );
    assert!(mdev >= 0.0 && mdev <= max - min + 0.0011);
    assert!(r.stdout.ends_with(" ms\n"));
}

#[test]
fn ipv6_replies() {
    let _s = serial();
    let r = ping(&["-c", "2", "-i", "0.2", "::1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with("PING ::1(::1) 56 data bytes\n"));
    let reps = replies(&r.stdout);
    assert_eq!(reps.len(), 2, "{}", r.stdout);
    for (i, x) in reps.iter().enumerate() {
        assert_eq!(x.seq as usize, i + 1);
        assert_eq!((x.bytes, x.from.as_str()), (64, "::1"));
        assert!(x.ttl.is_some(), "hop limit from IPV6_HOPLIMIT");
    }
    let t = totals(&r.stdout);
    assert_eq!((t.transmitted, t.received), (2, 2));
    // By the address family, or by flag.
    let r = ping(&["-6", "-c", "1", "[::1]"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let r = ping(&["-4", "-c", "1", "localhost"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r
        .stdout
        .starts_with("PING localhost (127.0.0.1) 56(84) bytes of data.\n"));
    let r = ping(&["-6", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("no IPv6 address"), "{}", r.stderr);
}

#[test]
fn json_objects_per_reply_and_summary() {
    let _s = serial();
    let r = ping(&["--json", "-c", "3", "-i", "0.2", "-s", "100", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    for (i, l) in lines[..3].iter().enumerate() {
        assert!(l.starts_with("{\"type\":\"reply\",\"from\":\"127.0.0.1\",\"bytes\":108,"));
        assert!(
            l.contains(&format!("\"icmp_seq\":{},\"ttl\":64,", i + 1)),
            "{l}"
        );
        assert!(l.contains("\"dup\":false,\"late\":false,\"bad_checksum\":false"));
    }
    let s = &lines[3];
    assert!(
        s.starts_with("{\"type\":\"summary\",\"host\":\"127.0.0.1\",\"address\":\"127.0.0.1\",")
    );
    assert!(
        s.contains("\"transmitted\":3,\"received\":3,\"duplicates\":0,\"corrupted\":0,\"errors\":0,\"late\":0,\"loss_percent\":0,"),
        "{s}"
    );
    assert!(!s.contains("\"rtt_avg_ms\":null"));

    // -q keeps only the summary object.
    let r = ping(&["--json", "-q", "-c", "2", "-i", "0.2", "::1"]);
    let lines = json_lines(&r.stdout);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("\"address\":\"::1\",\"transmitted\":2,\"received\":2,"));
}

#[test]
fn quiet_prints_header_and_statistics_only() {
    let _s = serial();
    let r = ping(&["-q", "-c", "2", "-i", "0.2", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("bytes from"), "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    assert!(lines[0].starts_with("PING 127.0.0.1 "));
    assert_eq!(lines[1], "");
    assert!(lines[4].starts_with("rtt min/avg/max/mdev = "));
}

#[test]
fn ttl_df_and_size_reach_the_wire() {
    let _s = serial();
    let mut raw = Raw::open();

    // Socket options: IP_TTL and IP_MTU_DISCOVER.
    let p = Proc::spawn({
        let mut c = sockit();
        c.args([
            "ping",
            "-c",
            "1",
            "-t",
            "7",
            "--df",
            "-s",
            "77",
            "127.0.0.1",
        ]);
        c
    });
    let (ip, icmp) = raw.next_request(77, WAIT).expect("saw the request");
    let (st, out, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out).contains("85 bytes from 127.0.0.1"));
    assert_eq!(ip[8], 7, "TTL on the wire");
    assert_ne!(ip[6] & 0x40, 0, "DF on the wire");
    assert_eq!(checksum(&icmp), 0, "ICMP checksum as sent");

    // A header written by hand (IP_HDRINCL): what -v prints is what was sent.
    let p = Proc::spawn({
        let mut c = sockit();
        c.args([
            "-v",
            "ping",
            "-c",
            "1",
            "--raw-header",
            "-t",
            "9",
            "-s",
            "78",
            "127.0.0.1",
        ]);
        c
    });
    let (ip, icmp) = raw.next_request(78, WAIT).expect("saw the request");
    let (st, out, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out).contains("86 bytes from 127.0.0.1: icmp_seq=1 ttl=64"));
    assert_eq!((ip[8], ip[6] & 0x40), (9, 0), "TTL 9, no DF");
    assert_eq!(checksum(&ip), 0, "IPv4 header checksum");
    assert_eq!(checksum(&icmp), 0);
    let id = u16::from_be_bytes([ip[4], ip[5]]);
    let expect = format!(
        "IPv4 header sent: version 4, ihl 5 (20 bytes), tos 0x00, total length 106, id 0x{id:04x}, \
         flags none, fragment offset 0, ttl 9, protocol 1 (ICMP), checksum 0x{:04x}, 127.0.0.1 -> 127.0.0.1",
        u16::from_be_bytes([ip[10], ip[11]])
    );
    assert!(err.contains(&expect), "{err}\nexpected: {expect}");
    assert!(err.contains("using a raw socket (SOCK_RAW, IPPROTO_ICMP)"));

    let r = ping(&["-v", "--raw-header", "--df", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("flags DF, fragment offset 0, ttl 64,"),
        "{}",
        r.stderr
    );
}

#[test]
fn deadline_ends_the_run() {
    let _s = serial();
    let r = ping(&["-w", "1", "-i", "0.2", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.elapsed >= Duration::from_millis(950), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    let t = totals(&r.stdout);
    assert!((3..=6).contains(&t.transmitted), "{t:?}");
    // With -w, -c counts replies: done as soon as three have arrived.
    let r = ping(&["-w", "10", "-c", "3", "-i", "0.2", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    assert_eq!(totals(&r.stdout).received, 3);
}

#[test]
fn timeout_and_deadline_without_replies() {
    let _s = serial();
    let Some(_v4) = Sysctl::set("net.ipv4.icmp_echo_ignore_all", "1") else {
        return;
    };
    // Each request waits -W 0.5 s: the run ends 0.5 s after the last one.
    let r = ping(&["-c", "2", "-i", "0.2", "-W", "0.5", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(1), "no reply: exit 1; {}", r.stderr);
    let t = totals(&r.stdout);
    assert_eq!((t.transmitted, t.received, t.loss.as_str()), (2, 0, "100"));
    assert!(rtt_line(&r.stdout).is_none());
    assert!(r.elapsed >= Duration::from_millis(650), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);

    // The deadline wins over a longer timeout.
    let r = ping(&["--json", "-w", "1", "-W", "5", "-i", "0.3", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(r.elapsed < Duration::from_secs(4), "{:?}", r.elapsed);
    let lines = json_lines(&r.stdout);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("\"received\":0,"));
    assert!(lines[0].contains("\"loss_percent\":100,"));
    assert!(lines[0].contains(
        "\"rtt_min_ms\":null,\"rtt_avg_ms\":null,\"rtt_max_ms\":null,\"rtt_mdev_ms\":null,\"ts\":"
    ));

    if let Some(_v6) = Sysctl::set("net.ipv6.icmp.echo_ignore_all", "1") {
        let r = ping(&["-c", "1", "-W", "0.3", "::1"]);
        assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
        assert_eq!(totals(&r.stdout).received, 0);
    }
}

#[test]
fn signals_print_the_statistics() {
    let _s = serial();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let p = Proc::spawn({
            let mut c = sockit();
            c.args(["ping", "-i", "0.2", "127.0.0.1"]);
            c
        });
        p.wait_stdout(b"icmp_seq=2 ");
        p.signal(sig);
        let (st, out, _) = p.wait_exit();
        let out = String::from_utf8_lossy(&out);
        assert_eq!(st.code(), Some(0), "replies arrived: exit 0");
        let t = totals(&out);
        assert!(t.received >= 2 && t.transmitted >= t.received, "{t:?}");
        assert!(rtt_line(&out).is_some());
    }
}

#[test]
fn unprivileged_datagram_socket_fallback() {
    let _s = serial();
    if !nobody_can_run_the_binary() {
        return;
    }
    // Checks that need no sysctl: the interval floor and --raw-header.
    let r = finish(nobody(&["ping", "-c", "1", "-i", "0.1", "127.0.0.1"]).unwrap());
    assert_eq!(r.status.code(), Some(2));
    assert!(
        r.stderr
            .contains("interval -i 0.1 is too short (below 0.2 s needs root"),
        "{}",
        r.stderr
    );
    let r = finish(nobody(&["ping", "-c", "1", "--raw-header", "127.0.0.1"]).unwrap());
    assert_eq!(r.status.code(), Some(2));
    assert!(
        r.stderr.contains("IP_HDRINCL needs a raw socket"),
        "{}",
        r.stderr
    );

    let Some(_range) = Sysctl::set("net.ipv4.ping_group_range", "0 2147483647") else {
        return;
    };
    for (host, kind) in [("127.0.0.1", "IPPROTO_ICMP)"), ("::1", "IPPROTO_ICMPV6)")] {
        let r = finish(nobody(&["-v", "ping", "-c", "2", "-i", "0.2", host]).unwrap());
        assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "unprivileged ICMP datagram socket (SOCK_DGRAM, {kind}"
            )),
            "{}",
            r.stderr
        );
        let reps = replies(&r.stdout);
        assert_eq!(reps.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(
            reps.iter().all(|x| x.ttl.is_some()),
            "TTL from control messages"
        );
        assert_eq!(totals(&r.stdout).received, 2);
    }
}

#[test]
fn neither_socket_kind_allowed() {
    let _s = serial();
    if !nobody_can_run_the_binary() {
        return;
    }
    let Some(_range) = Sysctl::set("net.ipv4.ping_group_range", "1 0") else {
        return;
    };
    let r = finish(nobody(&["ping", "-c", "1", "127.0.0.1"]).unwrap());
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "sockit: error: cannot open an ICMP socket (raw sockets need root or CAP_NET_RAW; \
         unprivileged ICMP needs your group (gid 65534) in net.ipv4.ping_group_range (now \"1 0\"), \
         e.g. sysctl -w net.ipv4.ping_group_range=\"0 2147483647\")\n"
    );
    let r = finish(nobody(&["ping", "-c", "1", "::1"]).unwrap());
    assert_eq!(r.status.code(), Some(2));
    assert!(r
        .stderr
        .starts_with("sockit: error: cannot open an ICMPv6 socket (raw sockets need root"));
}

#[test]
fn concurrent_pings_keep_their_own_replies() {
    let _s = serial();
    require("ping");
    let spawn = |host: &str| {
        let mut c = sockit();
        c.args(["ping", "-c", "20", "-i", "0.05", host]);
        Proc::spawn(c)
    };
    // Two sockit runs on raw sockets (each sees every ICMP message on the host),
    // with iputils pinging the same address at the same time.
    let a = spawn("127.0.0.1");
    let b = spawn("127.0.0.1");
    let c6 = spawn("::1");
    let iputils = Proc::spawn({
        let mut c = Command::new("ping");
        c.args(["-c", "20", "-i", "0.05", "127.0.0.1"]);
        c
    });
    for p in [a, b, c6] {
        let (st, out, err) = p.wait_exit();
        let out = String::from_utf8_lossy(&out);
        assert_eq!(st.code(), Some(0), "{err}");
        let seqs: Vec<u16> = replies(&out).iter().map(|x| x.seq).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "{out}");
        assert!(!out.contains("DUP!"), "{out}");
        let t = totals(&out);
        assert_eq!((t.transmitted, t.received, t.loss.as_str()), (20, 20, "0"));
    }
    let (st, out, _) = iputils.wait_exit();
    assert!(st.success());
    assert!(String::from_utf8_lossy(&out).contains("20 packets transmitted, 20 received"));
}

#[test]
fn duplicate_late_and_corrupted_replies() {
    let _s = serial();
    // The kernel stays silent; the test answers with forged replies instead.
    let Some(_ignore) = Sysctl::set("net.ipv4.icmp_echo_ignore_all", "1") else {
        return;
    };
    let mut raw = Raw::open();
    let p = Proc::spawn({
        let mut c = sockit();
        c.args([
            "ping",
            "--json",
            "-c",
            "3",
            "-i",
            "1.5",
            "-W",
            "0.4",
            "-s",
            "61",
            "127.0.0.1",
        ]);
        c
    });
    // Request 1: answered twice (a duplicate) plus once with a bad checksum.
    let (_, req1) = raw.next_request(61, WAIT).expect("request 1");
    assert_eq!(seq_of(&req1), 1);
    let good = reply_to(&req1);
    let mut bad = good.clone();
    bad[8 + 20] ^= 0xff; // a payload byte after the nonce
    raw.send(&good);
    p.wait_stdout(b"\"icmp_seq\":1,");
    raw.send(&good);
    p.wait_stdout(b"\"dup\":true");
    raw.send(&bad);
    // Request 2: answered after its 0.4 s timeout, before request 3 leaves.
    let (_, req2) = raw.next_request(61, WAIT).expect("request 2");
    let seen = Instant::now();
    assert_eq!(seq_of(&req2), 2);
    // Lateness is the point: the reply must leave after the 0.4 s timeout (seen
    // here once the request was captured) and before request 3 at 3 s. No event
    // marks the expiry, so poll the clock up to 0.6 s after the request.
    poll_until(Duration::from_secs(2), "0.6 s after request 2", || {
        seen.elapsed() >= Duration::from_millis(600)
    });
    raw.send(&reply_to(&req2));
    // Request 3: never answered.
    let (st, out, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    let out = String::from_utf8_lossy(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].contains("\"icmp_seq\":1,") && lines[0].contains("\"dup\":false"));
    assert!(lines[1].contains("\"icmp_seq\":1,") && lines[1].contains("\"dup\":true"));
    assert!(lines[2].contains("\"icmp_seq\":1,") && lines[2].contains("\"bad_checksum\":true"));
    assert!(lines[3].contains("\"icmp_seq\":2,") && lines[3].contains("\"late\":true"));
    assert!(
        lines[4].contains(
            "\"transmitted\":3,\"received\":2,\"duplicates\":1,\"corrupted\":1,\"errors\":0,\
             \"late\":1,\"loss_percent\":33.3333,"
        ),
        "{}",
        lines[4]
    );
}

#[test]
fn text_markers_for_duplicates_and_bad_checksums() {
    let _s = serial();
    let Some(_ignore) = Sysctl::set("net.ipv4.icmp_echo_ignore_all", "1") else {
        return;
    };
    let mut raw = Raw::open();
    let p = Proc::spawn({
        let mut c = sockit();
        c.args([
            "ping",
            "-c",
            "2",
            "-i",
            "1.5",
            "-W",
            "0.5",
            "-s",
            "62",
            "127.0.0.1",
        ]);
        c
    });
    let (_, req) = raw.next_request(62, WAIT).expect("request");
    let good = reply_to(&req);
    let mut bad = good.clone();
    bad[40] ^= 1;
    raw.send(&bad);
    p.wait_stdout(b"(BAD CHECKSUM!)");
    raw.send(&good);
    p.wait_stdout(b"time=");
    raw.send(&good);
    p.wait_stdout(b"(DUP!)");
    // Request 2 goes unanswered.
    let (st, out, _) = p.wait_exit();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(st.code(), Some(0));
    let reps = replies(&out);
    assert_eq!(reps.len(), 3, "{out}");
    assert!(reps.iter().all(|x| x.seq == 1));
    assert!(reps[2].dup && !reps[1].dup);
    assert!(
        out.contains(" (BAD CHECKSUM!)\nwrong data byte #32 should be 0x20 but was 0x21\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "2 packets transmitted, 1 received, +1 duplicates, +1 corrupted, 50% packet loss"
        ),
        "{out}"
    );
}

/// An ICMP "host unreachable" from 127.0.0.1 quoting `ip` + `icmp` (a request).
fn unreachable_for(ip: &[u8], icmp: &[u8]) -> Vec<u8> {
    let mut e = vec![3, 1, 0, 0, 0, 0, 0, 0];
    e.extend_from_slice(ip);
    e.extend_from_slice(icmp);
    let c = checksum(&e);
    e[2..4].copy_from_slice(&c.to_be_bytes());
    e
}

#[test]
fn icmp_errors_about_our_requests_are_reported() {
    let _s = serial();
    // The kernel stays silent; the test answers each request with an error.
    let Some(_ignore) = Sysctl::set("net.ipv4.icmp_echo_ignore_all", "1") else {
        return;
    };
    let mut runs = vec![("raw", sockit())];
    // The datagram socket learns of errors through its error queue (IP_RECVERR).
    let _range = Sysctl::set("net.ipv4.ping_group_range", "0 2147483647");
    if _range.is_some() && nobody_can_run_the_binary() {
        runs.push(("dgram", nobody(&[]).unwrap()));
    }
    let mut raw = Raw::open();
    for (kind, mut cmd) in runs {
        cmd.args(["ping", "-c", "1", "-W", "5", "-s", "63", "127.0.0.1"]);
        let p = Proc::spawn(cmd);
        let (ip, req) = raw.next_request(63, WAIT).expect("request");
        raw.send(&unreachable_for(&ip, &req));
        let (st, out, err) = p.wait_exit();
        let out = String::from_utf8_lossy(&out);
        assert_eq!(st.code(), Some(1), "{kind}: no reply: exit 1; {err}");
        assert!(
            out.contains("\nFrom 127.0.0.1 icmp_seq=1 Destination Host Unreachable\n"),
            "{kind}: {out}"
        );
        assert!(
            out.contains("1 packets transmitted, 0 received, +1 errors, 100% packet loss"),
            "{kind}: {out}"
        );
    }

    // ICMPv6: "address unreachable" quoting the request behind an IPv6 header.
    let Some(_ignore6) = Sysctl::set("net.ipv6.icmp.echo_ignore_all", "1") else {
        return;
    };
    let mut runs = vec![("raw", sockit())];
    if _range.is_some() && nobody_can_run_the_binary() {
        runs.push(("dgram", nobody(&[]).unwrap()));
    }
    let mut raw6 = Raw6::open();
    for (kind, mut cmd) in runs {
        cmd.args(["ping", "-c", "1", "-W", "5", "-s", "64", "::1"]);
        let p = Proc::spawn(cmd);
        let req = raw6.next_request(64, WAIT).expect("ICMPv6 request");
        let mut err = vec![1, 3, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0];
        err.extend_from_slice(&(req.len() as u16).to_be_bytes());
        err.extend_from_slice(&[58, 64]);
        err.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        err.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        err.extend_from_slice(&req);
        raw6.send(&err);
        let (st, out, err) = p.wait_exit();
        let out = String::from_utf8_lossy(&out);
        assert_eq!(st.code(), Some(1), "{kind}: {err}");
        assert!(
            out.contains("\nFrom ::1 icmp_seq=1 Destination unreachable: Address unreachable\n"),
            "{kind}: {out}"
        );
        assert!(
            out.contains(", +1 errors, 100% packet loss"),
            "{kind}: {out}"
        );
    }
}

#[test]
fn repeated_errors_about_an_answered_request_do_not_end_the_count() {
    let _s = serial();
    let Some(_ignore) = Sysctl::set("net.ipv4.icmp_echo_ignore_all", "1") else {
        return;
    };
    let mut raw = Raw::open();
    let p = Proc::spawn({
        let mut c = sockit();
        c.args([
            "ping",
            "-c",
            "3",
            "-i",
            "0.5",
            "-W",
            "5",
            "-s",
            "65",
            "127.0.0.1",
        ]);
        c
    });
    // Request 1 is answered, then named by three ICMP errors; before the next
    // request leaves, those must not have used up -c 3.
    let (ip, req1) = raw.next_request(65, WAIT).expect("request 1");
    raw.send(&reply_to(&req1));
    p.wait_stdout(b"icmp_seq=1 ");
    for _ in 0..3 {
        raw.send(&unreachable_for(&ip, &req1));
    }
    let unreachable = "From 127.0.0.1 icmp_seq=1 Destination Host Unreachable";
    poll_until(WAIT, "three error lines", || {
        count(&String::from_utf8_lossy(&p.stdout_now()), unreachable) >= 3
    });
    for n in 2..=3u16 {
        let (_, req) = raw
            .next_request(65, Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "request {n} was never sent: {}",
                    String::from_utf8_lossy(&p.stdout_now())
                )
            });
        assert_eq!(seq_of(&req), n);
        raw.send(&reply_to(&req));
    }
    let (st, out, err) = p.wait_exit();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(
        out.contains("3 packets transmitted, 3 received, +3 errors, 0% packet loss"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let _s = serial();
    for (args, needle) in [
        (&["-i", "0", "127.0.0.1"][..], "interval -i 0 is too short"),
        (
            &["-s", "65508", "127.0.0.1"][..],
            "at most 65507 bytes over IPv4",
        ),
        (&["--raw-header", "::1"][..], "does not apply to IPv6"),
        (&["--df", "::1"][..], "IPv6 routers never fragment"),
        (&["-W", "0", "127.0.0.1"][..], "timeout -W 0 is too short"),
        (&["-c", "0", "127.0.0.1"][..], "-c"),
        (&["-t", "0", "127.0.0.1"][..], "-t"),
        (&["-4", "::1"][..], "no IPv4 address"),
    ] {
        let r = ping(args);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
    }
}
