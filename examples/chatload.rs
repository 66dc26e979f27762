//! Load generator for chat servers: `sockit chat serve` (line, `--web` and
//! `--irc` members) and `ncat --chat`.
//!
//! Connects N clients (plus K "stalled" ones that stop reading after their
//! greeting), waits until the join announcements have died down, then has S of
//! the clients send M lines each. Every line carries the sender, a sequence
//! number and a send timestamp (nanoseconds since a process-wide `Instant`), so
//! every receiver can time it and spot gaps and duplicates whatever prefix the
//! server puts in front (`<guestN> ` for sockit, `<userN> ` for ncat,
//! `:cN!cN@sockit PRIVMSG #lobby :` for IRC).
//!
//! Without `--rate` the senders are closed-loop: no receiver may fall more than
//! `--lag-bytes` behind them, so the run measures the delivery rate the server
//! sustains without any client tripping its slow-client cutoff. With `--rate`
//! they send at that fixed total rate (open loop), for latency.
//!
//! Every wait is bounded. The last line of output is a JSON summary; exit status
//! 0 means everything was delivered, 3 that the run finished with lost lines or a
//! timed-out phase, 2 that it could not run (connect failures, bad arguments).
//!
//! ```text
//! cargo run --release --example chatload -- 127.0.0.1:8000 --clients 100 --senders 10
//! ```

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Starts the payload of every benchmark line: `CHATLOAD SSSSSSSS QQQQQQQQ
/// TTTTTTTTTTTTTTTT xxx...`, sender, sequence number and send time (ns) in
/// fixed-width lower-case hex, so receivers parse them eight bytes at a time.
const MARKER: &[u8] = b"CHATLOAD ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `sockit chat serve`: greets with `* welcome, you are guestN ...`.
    Sockit,
    /// `ncat --chat`: greets with `<announce> ... is connected as <userN>.`.
    Ncat,
    /// `sockit chat serve --web`: the address is the web listener's; each
    /// client upgrades `/ws` to WebSocket, sends `say` commands in masked
    /// text frames and reads one JSON event per frame.
    Web,
    /// `sockit chat serve --irc`: the address is the IRC listener's; each
    /// client registers (`CAP LS 302`, `NICK`, `USER`, `CAP END`; greeted
    /// once `001` arrives), joins `--irc-join`, sends `PRIVMSG` to it.
    Irc,
}

/// Chat server load generator (see the file's doc comment).
#[derive(Debug, Parser)]
#[command(args_override_self = true)]
struct Args {
    /// Server address, e.g. 127.0.0.1:8000.
    addr: SocketAddr,
    /// Clients that connect and read.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of the clients send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Lines per sender.
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Bytes per line, newline included (padded; never shorter than the header).
    #[arg(long, default_value_t = 64)]
    bytes: usize,
    /// Fixed total send rate in lines/s across all senders (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Closed loop: most bytes of benchmark lines any receiver may be behind
    /// (default: a quarter of sockit's default per-client queue cap).
    #[arg(long, default_value_t = 256 * 1024)]
    lag_bytes: u64,
    /// Closed loop: most lines a sender puts in one write.
    #[arg(long, default_value_t = 32)]
    batch: u64,
    /// Extra clients that read their greeting and then never read again.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Server flavour (greeting and framing).
    #[arg(long, value_enum, default_value = "sockit")]
    format: Format,
    /// Time limit for one client to connect and be greeted, in seconds.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Connections in progress at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// After connecting, wait until no line arrived for this long (ms).
    #[arg(long, default_value_t = 300)]
    quiet_ms: u64,
    /// Longest wait for the join announcements to die down, in seconds.
    #[arg(long, default_value_t = 60.0)]
    settle_timeout: f64,
    /// Longest the send phase may take, in seconds.
    #[arg(long, default_value_t = 120.0)]
    send_timeout: f64,
    /// After the last send, longest wait for outstanding deliveries, in seconds.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout: f64,
    /// Sample this process's VmRSS (the server) from /proc/PID/status.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Keep every client connected this long after the run (seconds), e.g. to
    /// inspect the server from outside.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Label copied into the JSON summary.
    #[arg(long, default_value = "")]
    label: String,
    /// IRC: the channel every client joins after `001` and senders talk to
    /// ("" joins none: registration alone).
    #[arg(long, default_value = "#lobby")]
    irc_join: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// More server addresses (cluster nodes); client i connects to address
    /// i mod N of ADDR and these, so the clients spread over the nodes.
    #[arg(long = "also")]
    also: Vec<SocketAddr>,
    /// Senders connect to the address this many places after their own
    /// (1: no sender shares a node with the readers of its room).
    #[arg(long, default_value_t = 0)]
    sender_offset: usize,
    /// Clients spread over this many rooms (`/join loadR`, R = i mod ROOMS)
    /// instead of all staying in the lobby; needs --rate.
    #[arg(long, default_value_t = 0)]
    rooms: usize,
    /// After the greeting each client takes the nick PREFIXi with /nick and
    /// waits for it (part of the connect time; sockit format only).
    #[arg(long)]
    nick_prefix: Option<String>,
}

impl Args {
    /// How many server addresses there are.
    fn nodes(&self) -> usize {
        1 + self.also.len()
    }

    /// The address (its index) client `i` connects to.
    fn node_of(&self, i: usize) -> usize {
        let shift = if i < self.senders {
            self.sender_offset
        } else {
            0
        };
        (i + shift) % self.nodes()
    }

    /// The room client `i` sits in (0 when all stay in the lobby).
    fn room_of(&self, i: usize) -> usize {
        if self.rooms == 0 {
            0
        } else {
            i % self.rooms
        }
    }

    /// Deliveries each line of sender `s` should make: the other members of its room.
    fn audience(&self, s: usize) -> u64 {
        let room = self.room_of(s);
        (0..self.clients)
            .filter(|&c| self.room_of(c) == room)
            .count() as u64
            - 1
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = check(&args) {
        eprintln!("chatload: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatload: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(run(&args));
    // Clients are closed with RST (linger 0) when the runtime drops them.
    drop(rt);
    // A closed stdout (`| head -1`) is not an error of the run.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", report.human(&args));
    let _ = writeln!(out, "{}", report.json(&args));
    drop(out);
    match (&report.error, report.complete) {
        (Some(e), _) if report.fatal => {
            eprintln!("chatload: {e}");
            ExitCode::from(2)
        }
        (Some(e), _) => {
            eprintln!("chatload: incomplete: {e}");
            ExitCode::from(3)
        }
        (None, false) => ExitCode::from(3),
        (None, true) => ExitCode::SUCCESS,
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.senders > args.clients {
        return Err(format!(
            "--senders {} > --clients {}",
            args.senders, args.clients
        ));
    }
    if args.senders > 0 && args.clients < 2 {
        return Err("senders need at least one other client to deliver to".into());
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(format!("invalid --rate {}", args.rate));
    }
    if args.senders > u32::MAX as usize || args.messages > u32::MAX as u64 {
        return Err("--senders and --messages must each fit in 32 bits".into());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if args.rooms > 0 && args.format != Format::Sockit {
        return Err("--rooms works with --format sockit only".into());
    }
    if args.rooms > 0 && args.rate <= 0.0 {
        return Err("--rooms needs --rate (the closed loop assumes one room)".into());
    }
    if args.nick_prefix.is_some() && args.format != Format::Sockit {
        return Err("--nick-prefix works with --format sockit only".into());
    }
    if args.lag_bytes < args.bytes as u64 {
        return Err("--lag-bytes must be at least one line (--bytes)".into());
    }
    let need = (args.clients + args.stalled + 32) as u64;
    let have = sockit::raise_nofile_limit(need);
    if have < need {
        return Err(format!(
            "open-file limit is {have}, {need} needed; raise the hard limit (ulimit -Hn)"
        ));
    }
    Ok(())
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of process `pid` (`self` for this one) from
/// /proc/PID/stat, in seconds.
fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime and stime the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace().skip(11);
    let (u, s): (u64, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((u + s) as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// CPU seconds of the server (if known) and of this process, now.
fn cpu_now(server: Option<u32>) -> (Option<f64>, Option<f64>) {
    (server.and_then(|p| cpu_s(&p.to_string())), cpu_s("self"))
}

/// Samples a process's RSS every 20 ms on a plain thread, keeping the peak.
struct RssSampler {
    pid: u32,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            pid,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn now(&self) -> Option<u64> {
        let kib = rss_kib(self.pid)?;
        self.peak.fetch_max(kib, Ordering::Relaxed);
        Some(kib)
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Log-linear latency histogram: 32 sub-buckets per power of two (<= 3% error).
struct Hist {
    counts: Vec<u32>,
    max: u64,
    n: u64,
}

const SUB: u32 = 5;
const HALF: u64 = 1 << SUB;

impl Hist {
    fn new() -> Self {
        Hist {
            counts: vec![0; bucket(u64::MAX) + 1],
            max: 0,
            n: 0,
        }
    }

    fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.max = self.max.max(v);
        self.n += 1;
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
        self.n += other.n;
    }

    /// The value at quantile `q` (bucket midpoint, capped at the exact max).
    fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                let (lo, hi) = bucket_range(i);
                return Some((lo + (hi - lo) / 2).min(self.max));
            }
        }
        Some(self.max)
    }
}

fn bucket(v: u64) -> usize {
    if v < 2 * HALF {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - SUB;
    (shift as u64 * HALF + (v >> shift)) as usize
}

fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * HALF {
        return (i, i);
    }
    let shift = i / HALF - 1;
    let lo = (i - shift * HALF) << shift;
    (lo, lo + (1 << shift) - 1)
}

fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

fn find_marker(line: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        // The marker follows a short prefix: a plain loop beats a vector
        // search on the first bytes.
        let head = &line[from..line.len().min(from + 32)];
        let p = match head.iter().position(|&b| b == MARKER[0]) {
            Some(p) => p,
            None => head.len() + memchr::memchr(MARKER[0], &line[from + head.len()..])?,
        };
        let at = from + p;
        if line[at..].starts_with(MARKER) {
            return Some(at);
        }
        from = at + 1;
    }
}

/// `sender seq ts` after the marker; the rest must be padding.
fn parse_payload(p: &[u8]) -> Option<(u64, u64, u64)> {
    if p.len() < 35 || p[8] != b' ' || p[17] != b' ' {
        return None;
    }
    let s = hex8(&p[0..8])?;
    let q = hex8(&p[9..17])?;
    let ts = (hex8(&p[18..26])? << 32) | hex8(&p[26..34])?;
    match &p[34..] {
        [] => Some((s, q, ts)),
        // Without an early exit, so the check compiles to vector code.
        [b' ', pad @ ..] if pad.iter().fold(0, |acc, &b| acc | (b ^ b'x')) == 0 => Some((s, q, ts)),
        _ => None,
    }
}

/// Eight lower-case hex digits, most significant first, all at once.
#[inline(always)]
fn hex8(d: &[u8]) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let v = u64::from_le_bytes(d.try_into().ok()?);
    // Nibble values: the low four bits, plus 9 for letters (bit 6 set).
    let nib = (v & (ONES * 0x0F)) + ((v >> 6) & ONES) * 9;
    // Valid only if every nibble is < 16 and spells back to the same digit
    // ('0' + n below ten, 'a' + n - 10 from ten): no per-byte branches.
    let ten_up = ((nib + ONES * 0x76) >> 7) & ONES;
    let back = nib + ONES * 0x30 + ten_up * 0x27;
    if (nib + ONES * 0x70) & (ONES * 0x80) != 0 || back != v {
        return None;
    }
    // The first digit is the lowest byte: reverse, then pack pairs of nibbles.
    let x = nib.swap_bytes();
    let x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    let x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    Some((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF)
}

/// One benchmark line of exactly `bytes` bytes where the header allows.
fn compose(out: &mut Vec<u8>, sender: u64, seq: u64, ts: u64, bytes: usize) {
    let start = out.len();
    out.extend_from_slice(MARKER);
    let mut head = String::with_capacity(48);
    let _ = write!(head, "{sender:08x} {seq:08x} {ts:016x}");
    out.extend_from_slice(head.as_bytes());
    let len = out.len() - start;
    if len + 2 < bytes {
        out.push(b' ');
        out.resize(start + bytes - 1, b'x');
    }
    out.push(b'\n');
}

/// A counter on its own cache line (receivers on different threads bump them).
#[derive(Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

/// Marks a receiver that left: it no longer holds the senders back.
const GONE: u64 = u64::MAX;

/// Closed-loop pacing: lines may be sent only while every receiver is at most
/// `limit` lines behind. A ticker recomputes the allowance every millisecond
/// (a scan over all receivers), so receivers only bump their own counter.
struct Pacer {
    limit: u64,
    /// Lines written by each sender (a sender does not receive its own).
    sent_by: Vec<AtomicU64>,
    /// Lines written by all senders.
    sent: AtomicU64,
    /// Lines reserved by senders, written or about to be.
    claimed: AtomicU64,
    /// Reservations up to this total keep every receiver within the limit.
    allowed: AtomicU64,
    /// Benchmark lines each normal client has received, or `GONE`.
    received: Vec<Padded>,
    notify: Notify,
}

impl Pacer {
    fn new(limit: u64, senders: usize, clients: usize) -> Self {
        Pacer {
            limit,
            sent_by: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            allowed: AtomicU64::new(limit),
            received: (0..clients).map(|_| Padded::default()).collect(),
            notify: Notify::new(),
        }
    }

    fn max_lag(&self, sent: u64) -> u64 {
        let mut lag = 0;
        for (r, got) in self.received.iter().enumerate() {
            let got = got.0.load(Ordering::SeqCst);
            if got == GONE {
                continue;
            }
            let own = self.sent_by.get(r).map_or(0, |s| s.load(Ordering::SeqCst));
            lag = lag.max(sent.saturating_sub(own).saturating_sub(got));
        }
        lag
    }

    fn refresh(&self) {
        let sent = self.sent.load(Ordering::SeqCst);
        let allowed = sent + self.limit.saturating_sub(self.max_lag(sent));
        if allowed > self.allowed.fetch_max(allowed, Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }

    fn wrote(&self, sender: usize, n: u64) {
        self.sent_by[sender].fetch_add(n, Ordering::SeqCst);
        self.sent.fetch_add(n, Ordering::SeqCst);
    }

    fn got(&self, receiver: usize, n: u64) {
        self.received[receiver].0.fetch_add(n, Ordering::SeqCst);
    }

    fn gone(&self, receiver: usize) {
        self.received[receiver].0.store(GONE, Ordering::SeqCst);
    }

    /// Waits until `n` more lines keep every receiver within the limit.
    async fn claim(&self, n: u64) {
        loop {
            let woken = self.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let before = self.claimed.fetch_add(n, Ordering::SeqCst);
            if before + n <= self.allowed.load(Ordering::SeqCst) {
                return;
            }
            self.claimed.fetch_sub(n, Ordering::SeqCst);
            let _ = tokio::time::timeout(Duration::from_millis(10), woken).await;
        }
    }
}

/// What all tasks share.
struct Shared {
    base: Instant,
    senders: usize,
    messages: u64,
    pacer: Pacer,
    /// Every line received by any normal client (announcements included).
    lines: AtomicU64,
    /// First-time deliveries of benchmark lines.
    unique: AtomicU64,
    /// Latest delivery, ns since `base`.
    last_delivery: AtomicU64,
    /// Normal clients whose connection ended before the run did.
    closed: AtomicU64,
    /// WebSocket framing (`--format web`).
    web: bool,
    /// Each client's address index (senders first), to tell cross-node
    /// deliveries apart.
    node_of: Vec<usize>,
    /// IRC: senders write `PRIVMSG <channel> :` before each line.
    irc: Option<String>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// One client's receiving side: framing, parsing, bookkeeping.
struct Receiver {
    partial: Vec<u8>,
    hist: Option<Box<Hist>>,
    /// Latencies of lines from senders on another address (node).
    cross: Option<Box<Hist>>,
    /// Per sender, the sequence number expected next. Servers keep each
    /// sender's lines in order, so anything below it is a duplicate (or out
    /// of order, which a chat must not do either).
    next: Vec<u64>,
    lines: u64,
    dups: u64,
    malformed: u64,
    kick_notices: u64,
    new_unique: u64,
    /// Benchmark lines (well-formed or not) not yet reported to the pacer.
    progress: u64,
    /// This client's number (senders are 0..S).
    index: usize,
}

impl Receiver {
    fn new(index: usize) -> Self {
        Receiver {
            partial: Vec::new(),
            hist: None,
            cross: None,
            next: Vec::new(),
            lines: 0,
            dups: 0,
            malformed: 0,
            kick_notices: 0,
            new_unique: 0,
            progress: 0,
            index,
        }
    }

    fn feed(&mut self, data: &[u8], sh: &Shared) {
        if sh.web {
            return self.feed_frames(data, sh);
        }
        let now = sh.now_ns();
        let mut rest = data;
        if !self.partial.is_empty() {
            match find_byte(b'\n', rest) {
                Some(i) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&rest[..i]);
                    self.line(&line, now, sh);
                    line.clear();
                    if line.capacity() <= 4096 {
                        self.partial = line;
                    }
                    rest = &rest[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    return;
                }
            }
        }
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', rest) {
            self.line(&rest[start..i], now, sh);
            start = i + 1;
        }
        let rest = &rest[start..];
        self.partial.extend_from_slice(rest);
        self.flush(now, sh);
    }

    /// WebSocket: each server frame's payload (one JSON event) is a line.
    /// Frames are decoded where they lie in `data`; only a frame cut by the
    /// end of a read is copied (into `partial`), and completed from the next.
    fn feed_frames(&mut self, data: &[u8], sh: &Shared) {
        let now = sh.now_ns();
        let mut rest = data;
        if !self.partial.is_empty() {
            // The header first (at most 10 bytes), then exactly the frame's rest.
            while frame_len(&self.partial).is_none() && !rest.is_empty() {
                self.partial.push(rest[0]);
                rest = &rest[1..];
            }
            let Some((head, len)) = frame_len(&self.partial) else {
                return;
            };
            let take = (head + len)
                .saturating_sub(self.partial.len())
                .min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() < head + len {
                return;
            }
            let mut frame = std::mem::take(&mut self.partial);
            self.frame(&frame[head..head + len], now, sh);
            frame.clear();
            if frame.capacity() <= 4096 {
                self.partial = frame;
            }
        }
        let mut at = 0;
        while let Some((head, len)) = frame_len(&rest[at..]) {
            if rest.len() - at < head + len {
                break;
            }
            self.frame(&rest[at + head..at + head + len], now, sh);
            at += head + len;
        }
        self.partial.extend_from_slice(&rest[at..]);
        self.flush(now, sh);
    }

    /// One JSON event: the benchmark line is its "text", up to the closing quote.
    fn frame(&mut self, payload: &[u8], now: u64, sh: &Shared) {
        let Some(m) = find_marker(payload) else {
            return self.line(payload, now, sh);
        };
        let end = memchr::memchr(b'"', &payload[m..]).map_or(payload.len(), |e| m + e);
        let parsed = parse_payload(&payload[m + MARKER.len()..end]);
        self.lines += 1;
        // A web member gets its own lines back: not a delivery.
        if parsed.is_some_and(|(sender, _, _)| sender == self.index as u64) {
            return;
        }
        self.progress += 1;
        self.count(parsed, now, sh);
    }

    fn line(&mut self, line: &[u8], now: u64, sh: &Shared) {
        self.lines += 1;
        // IRC lines end with CR LF.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(at) = find_marker(line) else {
            if line.starts_with(b"* ") && line.ends_with(b"(too slow)") {
                self.kick_notices += 1;
            }
            return;
        };
        self.progress += 1;
        self.count(parse_payload(&line[at + MARKER.len()..]), now, sh);
    }

    /// A benchmark line's fields (`sender seq ts`), if well-formed.
    fn count(&mut self, parsed: Option<(u64, u64, u64)>, now: u64, sh: &Shared) {
        let Some((sender, seq, ts)) = parsed else {
            self.malformed += 1;
            return;
        };
        if sender as usize >= sh.senders || seq >= sh.messages {
            self.malformed += 1;
            return;
        }
        if self.next.is_empty() {
            self.next = vec![0; sh.senders];
        }
        let next = &mut self.next[sender as usize];
        if seq < *next {
            self.dups += 1;
            return;
        }
        *next = seq + 1;
        self.new_unique += 1;
        let took = now.saturating_sub(ts);
        self.hist
            .get_or_insert_with(|| Box::new(Hist::new()))
            .record(took);
        if sh.node_of.get(sender as usize) != sh.node_of.get(self.index) {
            self.cross
                .get_or_insert_with(|| Box::new(Hist::new()))
                .record(took);
        }
    }

    /// Publishes this read's counts (once per read, not per line).
    fn flush(&mut self, now: u64, sh: &Shared) {
        sh.lines
            .fetch_add(std::mem::take(&mut self.lines), Ordering::Relaxed);
        // A mangled line still counts as progress, or it would stall the senders.
        let progress = std::mem::take(&mut self.progress);
        if progress > 0 {
            sh.pacer.got(self.index, progress);
        }
        if self.new_unique == 0 {
            return;
        }
        sh.unique
            .fetch_add(std::mem::take(&mut self.new_unique), Ordering::Relaxed);
        sh.last_delivery.fetch_max(now, Ordering::Relaxed);
    }
}

/// An unmasked server frame's header length and payload length, once the
/// header is complete.
fn frame_len(b: &[u8]) -> Option<(usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    match b[1] & 0x7f {
        126 if b.len() >= 4 => Some((4, u16::from_be_bytes([b[2], b[3]]) as usize)),
        127 if b.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[2..10]);
            Some((10, u64::from_be_bytes(n) as usize))
        }
        126 | 127 => None,
        n => Some((2, n as usize)),
    }
}

/// Appends `line` (without its newline) as the text of a `say` command in
/// one masked client text frame (the mask key is zero: a valid mask that
/// leaves the bytes as they are).
fn web_say(out: &mut Vec<u8>, line: &[u8]) {
    let mut json = Vec::with_capacity(line.len() + 24);
    json.extend_from_slice(br#"{"type":"say","text":""#);
    json.extend_from_slice(line);
    json.extend_from_slice(br#""}"#);
    out.push(0x81);
    match json.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&json);
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 128 * 1024]);
}

/// What a client task hands back at the end.
struct ClientEnd {
    hist: Option<Box<Hist>>,
    cross: Option<Box<Hist>>,
    dups: u64,
    malformed: u64,
    kick_notices: u64,
}

/// Connected and greeted: the time it took, what followed the greeting, the socket.
struct Greeted {
    took: Duration,
    stream: TcpStream,
    leftover: Vec<u8>,
}

async fn connect_and_greet(
    addr: SocketAddr,
    format: Format,
    index: usize,
    irc_join: &str,
) -> Result<Greeted, String> {
    let t0 = Instant::now();
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    // Close with RST so thousands of clients leave no TIME_WAIT behind.
    let _ = stream.set_zero_linger();
    if format == Format::Web {
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut s = stream;
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        return web_greeting(s, t0).await;
    }
    if format == Format::Irc {
        return irc_register(stream, t0, index, irc_join).await;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream.readable().await.map_err(|e| format!("read: {e}"))?;
        match stream.try_read(&mut buf) {
            Ok(0) => {
                let said = String::from_utf8_lossy(&got).trim().to_string();
                return Err(format!("closed before the greeting (said: {said:?})"));
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
        if let Some(i) = find_byte(b'\n', &got) {
            let first = &got[..i];
            let ok = match format {
                Format::Sockit => first.starts_with(b"* welcome, you are "),
                Format::Ncat => first.starts_with(b"<announce> ") && find_marker(first).is_none(),
                Format::Web | Format::Irc => false,
            };
            if !ok {
                return Err(format!(
                    "unexpected greeting {:?}",
                    String::from_utf8_lossy(first)
                ));
            }
            let leftover = got[i + 1..].to_vec();
            return Ok(Greeted {
                took: t0.elapsed(),
                stream,
                leftover,
            });
        }
        if got.len() > 64 * 1024 {
            return Err("no greeting line in the first 64 KiB".into());
        }
    }
}

/// Takes a nick (waiting for the server's `* OLD is now NICK`) and sends
/// `say` (room joins, not waited for: the settle phase lets them pass).
async fn after_greeting(
    mut g: Greeted,
    nick: Option<String>,
    say: String,
) -> Result<Greeted, String> {
    let mut out = String::new();
    if let Some(n) = &nick {
        let _ = writeln!(out, "/nick {n}");
    }
    out.push_str(&say);
    if out.is_empty() {
        return Ok(g);
    }
    let t0 = Instant::now();
    g.stream
        .write_all(out.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let Some(n) = nick else {
        return Ok(g);
    };
    let done = format!(" is now {n}");
    let refused = format!("! the nick {n} ");
    let mut got = std::mem::take(&mut g.leftover);
    let mut buf = [0u8; 4096];
    let mut from = 0;
    loop {
        while let Some(i) = find_byte(b'\n', &got[from..]) {
            let line = &got[from..from + i];
            from += i + 1;
            if line.ends_with(done.as_bytes()) {
                g.leftover = got[from..].to_vec();
                g.took += t0.elapsed();
                return Ok(g);
            }
            if line.starts_with(refused.as_bytes()) {
                return Err(format!("nick refused: {}", String::from_utf8_lossy(line)));
            }
        }
        g.stream
            .readable()
            .await
            .map_err(|e| format!("read: {e}"))?;
        match g.stream.try_read(&mut buf) {
            Ok(0) => return Err(format!("closed before /nick {n} was answered")),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Registers as `cINDEX` (CAP LS 302, NICK, USER, CAP END) and reads up to
/// the `001` line (the greeting: the time taken is registration); then joins
/// `join`, whose replies come with the rest.
async fn irc_register(
    mut stream: TcpStream,
    t0: Instant,
    index: usize,
    join: &str,
) -> Result<Greeted, String> {
    let hello =
        format!("CAP LS 302\r\nNICK c{index}\r\nUSER c{index} 0 * :c{index}\r\nCAP END\r\n");
    stream
        .write_all(hello.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut from = 0;
    loop {
        stream.readable().await.map_err(|e| format!("read: {e}"))?;
        match stream.try_read(&mut buf) {
            Ok(0) => {
                let said = String::from_utf8_lossy(&got).trim().to_string();
                return Err(format!("closed before 001 (said: {said:?})"));
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
        while let Some(i) = find_byte(b'\n', &got[from..]) {
            let l = &got[from..from + i];
            from += i + 1;
            let mut words = l.split(|&b| b == b' ');
            let _source = words.next();
            match words.next() {
                Some(b"001") => {
                    let took = t0.elapsed();
                    if !join.is_empty() {
                        stream
                            .write_all(format!("JOIN {join}\r\n").as_bytes())
                            .await
                            .map_err(|e| format!("write: {e}"))?;
                    }
                    return Ok(Greeted {
                        took,
                        stream,
                        leftover: got[from..].to_vec(),
                    });
                }
                Some(code) if code.len() == 3 && code[0] >= b'4' && code[0] <= b'5' => {
                    let l = String::from_utf8_lossy(l).trim().to_string();
                    return Err(format!("registration refused: {l:?}"));
                }
                _ => {}
            }
        }
        if got.len() > 64 * 1024 {
            return Err("no 001 in the first 64 KiB".into());
        }
    }
}

/// Reads the `101 Switching Protocols` head; what follows is WebSocket.
async fn web_greeting(stream: TcpStream, t0: Instant) -> Result<Greeted, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream.readable().await.map_err(|e| format!("read: {e}"))?;
        match stream.try_read(&mut buf) {
            Ok(0) => return Err("closed during the WebSocket handshake".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if !got.starts_with(b"HTTP/1.1 101 ") {
                let head = String::from_utf8_lossy(&got[..i]).into_owned();
                return Err(format!("handshake refused: {head:?}"));
            }
            return Ok(Greeted {
                took: t0.elapsed(),
                stream,
                leftover: got[i + 4..].to_vec(),
            });
        }
        if got.len() > 64 * 1024 {
            return Err("no handshake response in the first 64 KiB".into());
        }
    }
}

/// Reads until cancelled or the server closes; returns the bookkeeping.
async fn read_client(
    index: usize,
    stream: tokio::net::tcp::OwnedReadHalf,
    leftover: Vec<u8>,
    sh: Arc<Shared>,
    stop: CancellationToken,
) -> ClientEnd {
    let mut rx = Receiver::new(index);
    if !leftover.is_empty() {
        rx.feed(&leftover, &sh);
    }
    let mut closed_early = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = stream.readable() => {
                if r.is_err() {
                    closed_early = true;
                    break;
                }
            }
        }
        let res = READ_BUF.with_borrow_mut(|buf| match stream.try_read(buf) {
            Ok(0) => Err(true),
            Ok(n) => {
                rx.feed(&buf[..n], &sh);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(_) => Err(true),
        });
        if res.is_err() {
            closed_early = !stop.is_cancelled();
            break;
        }
    }
    rx.flush(sh.now_ns(), &sh);
    if closed_early {
        sh.closed.fetch_add(1, Ordering::SeqCst);
        sh.pacer.gone(index);
    }
    ClientEnd {
        hist: rx.hist,
        cross: rx.cross,
        dups: rx.dups,
        malformed: rx.malformed,
        kick_notices: rx.kick_notices,
    }
}

/// One sender's loop; returns its socket (dropping it would half-close the
/// client, and the server would take that as leaving).
async fn send_lines(
    id: usize,
    mut w: OwnedWriteHalf,
    plan: Arc<SendPlan>,
    sh: Arc<Shared>,
) -> Result<OwnedWriteHalf, String> {
    let mut buf = Vec::with_capacity(plan.bytes * plan.batch as usize);
    let mut seq = 0u64;
    let mut ticker = if plan.rate > 0.0 {
        let period = Duration::from_secs_f64(plan.senders as f64 / plan.rate);
        // Spread the senders over one period so they do not fire together.
        let offset = period.mul_f64(id as f64 / plan.senders as f64);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        Some(t)
    } else {
        None
    };
    // A batch of at most a quarter of the allowed lag keeps several writes in flight.
    let most = plan.batch.min((sh.pacer.limit / 4).max(1));
    while seq < plan.messages {
        let batch = match &mut ticker {
            Some(t) => {
                t.tick().await;
                1
            }
            None => {
                let n = most.min(plan.messages - seq);
                sh.pacer.claim(n).await;
                n
            }
        };
        let upto = seq + batch;
        buf.clear();
        let ts = sh.now_ns();
        for q in seq..upto {
            if sh.web {
                let mut line = Vec::with_capacity(plan.bytes);
                compose(&mut line, id as u64, q, ts, plan.bytes);
                line.pop();
                web_say(&mut buf, &line);
            } else if let Some(chan) = &sh.irc {
                buf.extend_from_slice(b"PRIVMSG ");
                buf.extend_from_slice(chan.as_bytes());
                buf.extend_from_slice(b" :");
                compose(&mut buf, id as u64, q, ts, plan.bytes);
                buf.pop();
                buf.extend_from_slice(b"\r\n");
            } else {
                compose(&mut buf, id as u64, q, ts, plan.bytes);
            }
        }
        w.write_all(&buf)
            .await
            .map_err(|e| format!("sender {id}: write after {seq} lines: {e}"))?;
        sh.pacer.wrote(id, batch);
        seq = upto;
    }
    Ok(w)
}

/// The parts of `Args` senders need.
struct SendPlan {
    senders: usize,
    messages: u64,
    bytes: usize,
    rate: f64,
    batch: u64,
}

#[derive(Default)]
struct Report {
    error: Option<String>,
    fatal: bool,
    complete: bool,
    connect_s: f64,
    /// Server CPU seconds while clients connected and were greeted.
    cpu_connect_s: Option<f64>,
    greet_p50_ms: Option<f64>,
    greet_max_ms: Option<f64>,
    settle_s: f64,
    settled: bool,
    sent: u64,
    expected: u64,
    received: u64,
    unique: u64,
    duplicates: u64,
    malformed: u64,
    lost: u64,
    elapsed_s: f64,
    deliveries_per_s: f64,
    lat_p50_us: Option<f64>,
    lat_p99_us: Option<f64>,
    lat_max_us: Option<f64>,
    lat_cross_p99_us: Option<f64>,
    disconnected: u64,
    kicked_seen: u64,
    rss_base_kib: Option<u64>,
    rss_idle_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
    rss_end_kib: Option<u64>,
    /// Server CPU seconds (utime+stime) from the first send to the last delivery.
    server_cpu_s: Option<f64>,
    /// This process's CPU seconds over the same window.
    load_cpu_s: Option<f64>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

impl Report {
    fn json(&self, a: &Args) -> String {
        let err = match &self.error {
            Some(e) => format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "\\\"")),
            None => "null".into(),
        };
        format!(
            concat!(
                "{{\"label\":\"{}\",\"format\":\"{:?}\",\"clients\":{},\"senders\":{},\"messages\":{},",
                "\"bytes\":{},\"rate\":{},\"lag_bytes\":{},\"batch\":{},\"stalled\":{},\"ok\":{},\"complete\":{},\"error\":{},",
                "\"connect_s\":{:.6},\"cpu_connect_s\":{},\"greet_p50_ms\":{},\"greet_max_ms\":{},\"settle_s\":{:.3},\"settled\":{},",
                "\"sent\":{},\"expected\":{},\"received\":{},\"unique\":{},\"duplicates\":{},\"malformed\":{},",
                "\"lost\":{},\"elapsed_s\":{:.6},\"deliveries_per_s\":{:.1},\"lat_p50_us\":{},\"lat_p99_us\":{},",
                "\"lat_max_us\":{},\"disconnected\":{},\"kicked_seen\":{},\"rss_base_kib\":{},\"rss_idle_kib\":{},",
                "\"rss_peak_kib\":{},\"rss_end_kib\":{},\"server_cpu_s\":{},\"load_cpu_s\":{},",
                "\"server_ns_per_delivery\":{},\"load_ns_per_delivery\":{},",
                "\"nodes\":{},\"rooms\":{},\"lat_cross_p99_us\":{}}}"
            ),
            a.label.replace('"', ""),
            a.format,
            a.clients,
            a.senders,
            a.messages,
            a.bytes,
            a.rate,
            a.lag_bytes,
            a.batch,
            a.stalled,
            !self.fatal,
            self.complete,
            err,
            self.connect_s,
            opt(self.cpu_connect_s.map(|c| format!("{c:.3}"))),
            opt(self.greet_p50_ms),
            opt(self.greet_max_ms),
            self.settle_s,
            self.settled,
            self.sent,
            self.expected,
            self.received,
            self.unique,
            self.duplicates,
            self.malformed,
            self.lost,
            self.elapsed_s,
            self.deliveries_per_s,
            opt(self.lat_p50_us),
            opt(self.lat_p99_us),
            opt(self.lat_max_us),
            self.disconnected,
            self.kicked_seen,
            opt(self.rss_base_kib),
            opt(self.rss_idle_kib),
            opt(self.rss_peak_kib),
            opt(self.rss_end_kib),
            opt(self.server_cpu_s.map(|c| format!("{c:.3}"))),
            opt(self.load_cpu_s.map(|c| format!("{c:.3}"))),
            opt(self.per_delivery_ns(self.server_cpu_s)),
            opt(self.per_delivery_ns(self.load_cpu_s)),
            a.nodes(),
            a.rooms,
            opt(self.lat_cross_p99_us),
        )
    }

    /// CPU nanoseconds per delivery, over the measured window.
    fn per_delivery_ns(&self, cpu_s: Option<f64>) -> Option<String> {
        let cpu = cpu_s?;
        (self.received > 0).then(|| format!("{:.1}", cpu * 1e9 / self.received as f64))
    }

    fn human(&self, a: &Args) -> String {
        let mut s = format!(
            "{:?} {}c/{}s/{}m x{}B{}{}: connect+greet {:.3}s (max {} ms), settle {:.2}s{}",
            a.format,
            a.clients,
            a.senders,
            a.messages,
            a.bytes,
            if a.rate > 0.0 {
                format!(" @{}/s", a.rate)
            } else {
                String::new()
            },
            if a.stalled > 0 {
                format!(" +{} stalled", a.stalled)
            } else {
                String::new()
            },
            self.connect_s,
            ms(self.greet_max_ms),
            self.settle_s,
            if self.settled { "" } else { " (not quiet)" },
        );
        if self.expected > 0 {
            let _ = write!(
                s,
                "; {:.0} deliveries/s over {:.3}s, latency p50 {} p99 {} max {} ms, lost {} dup {} malformed {} disconnected {} kicked {}",
                self.deliveries_per_s,
                self.elapsed_s,
                ms(self.lat_p50_us.map(|u| u / 1000.0)),
                ms(self.lat_p99_us.map(|u| u / 1000.0)),
                ms(self.lat_max_us.map(|u| u / 1000.0)),
                self.lost,
                self.duplicates,
                self.malformed,
                self.disconnected,
                self.kicked_seen,
            );
            if let Some(ns) = self.per_delivery_ns(self.server_cpu_s) {
                let _ = write!(s, ", server CPU {ns} ns/delivery");
            }
            if let Some(ns) = self.per_delivery_ns(self.load_cpu_s) {
                let _ = write!(s, ", load CPU {ns} ns/delivery");
            }
        }
        if let Some(peak) = self.rss_peak_kib {
            let _ = write!(
                s,
                "; server RSS base {} idle {} peak {} end {} KiB",
                opt(self.rss_base_kib),
                opt(self.rss_idle_kib),
                peak,
                opt(self.rss_end_kib)
            );
        }
        s
    }
}

/// What the connect phase leaves: one reader task per normal client, their
/// write halves (by client number), and the stalled clients' sockets.
struct Clients {
    readers: JoinSet<ClientEnd>,
    writers: Arc<Mutex<Vec<(usize, OwnedWriteHalf)>>>,
    stalled: Arc<Mutex<Vec<TcpStream>>>,
}

/// Connects every client (normal ones first, then the stalled ones), each
/// bounded by --connect-timeout; records connect and greeting times in `rep`,
/// and marks it fatal if any client failed.
async fn connect_all(
    a: &Args,
    sh: &Arc<Shared>,
    stop: &CancellationToken,
    rep: &mut Report,
) -> Clients {
    let mut readers: JoinSet<ClientEnd> = JoinSet::new();
    let writers: Arc<Mutex<Vec<(usize, OwnedWriteHalf)>>> = Arc::default();
    let stalled: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let total = a.clients + a.stalled;
    let limit = Duration::from_secs_f64(a.connect_timeout);
    let permits = Arc::new(Semaphore::new(a.connect_concurrency.max(1)));
    let mut connecting: JoinSet<Result<Duration, String>> = JoinSet::new();
    let t0 = Instant::now();
    for i in 0..total {
        let permit = permits.clone().acquire_owned();
        let (sh, stop, writers, stalled) =
            (sh.clone(), stop.clone(), writers.clone(), stalled.clone());
        let addr = match a.node_of(i) {
            0 => a.addr,
            n => a.also[n - 1],
        };
        let (format, clients) = (a.format, a.clients);
        let irc_join = a.irc_join.clone();
        let mut say = String::new();
        if i < clients && a.rooms > 0 {
            let _ = writeln!(say, "/join load{}", a.room_of(i));
        }
        let nick = a.nick_prefix.as_ref().map(|p| format!("{p}{i}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        connecting.spawn(async move {
            let _permit = permit.await.map_err(|e| e.to_string())?;
            let g = tokio::time::timeout(limit, async {
                let g = connect_and_greet(addr, format, i, &irc_join).await?;
                after_greeting(g, nick, say).await
            })
            .await
            .map_err(|_| format!("no connection and greeting within {limit:?}"))??;
            if i >= clients {
                stalled.lock().expect("lock").push(g.stream);
            } else {
                let (r, w) = g.stream.into_split();
                writers.lock().expect("lock").push((i, w));
                let _ = tx.send((r, g.leftover, sh, stop));
            }
            Ok(g.took)
        });
        if i < a.clients {
            readers.spawn(async move {
                match rx.await {
                    Ok((r, leftover, sh, stop)) => read_client(i, r, leftover, sh, stop).await,
                    Err(_) => ClientEnd {
                        hist: None,
                        cross: None,
                        dups: 0,
                        malformed: 0,
                        kick_notices: 0,
                    },
                }
            });
        }
    }
    let mut greets = Vec::with_capacity(total);
    let mut failures = 0usize;
    let mut first_failure = None;
    while let Some(r) = connecting.join_next().await {
        match r {
            Ok(Ok(took)) => greets.push(took),
            Ok(Err(e)) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(e.to_string());
            }
        }
    }
    rep.connect_s = t0.elapsed().as_secs_f64();
    greets.sort_unstable();
    rep.greet_p50_ms = greets.get(greets.len() / 2).map(|d| d.as_secs_f64() * 1e3);
    rep.greet_max_ms = greets.last().map(|d| d.as_secs_f64() * 1e3);
    if failures > 0 {
        rep.error = Some(format!(
            "{failures} of {total} clients failed to connect and be greeted; first: {}",
            first_failure.unwrap_or_default()
        ));
        rep.fatal = true;
    }
    Clients {
        readers,
        writers,
        stalled,
    }
}

/// Waits (bounded by --settle-timeout) for the join announcements to stop
/// arriving: --quiet-ms without a new line.
async fn settle(a: &Args, sh: &Shared, rep: &mut Report) {
    let t1 = Instant::now();
    let quiet = Duration::from_millis(a.quiet_ms);
    let settle_limit = Duration::from_secs_f64(a.settle_timeout);
    let mut last = sh.lines.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = sh.lines.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            rep.settled = true;
            break;
        }
        if t1.elapsed() >= settle_limit {
            break;
        }
    }
    rep.settle_s = last_change.saturating_duration_since(t1).as_secs_f64();
}

/// What the send phase leaves.
struct Sent {
    /// Every client's write half, kept open until the end.
    keep: Vec<OwnedWriteHalf>,
    /// The first failure, if any.
    error: Option<String>,
    /// When the first line could leave (ns since `Shared::base`).
    first_send: u64,
    /// CPU seconds (server, this process) when the first line could leave.
    cpu_start: (Option<f64>, Option<f64>),
}

/// Sends --messages lines from each of the first --senders clients, paced,
/// bounded by --send-timeout; records the lines sent and expected in `rep`.
async fn send_all(a: &Args, sh: &Arc<Shared>, clients: &Clients, rep: &mut Report) -> Sent {
    let plan = Arc::new(SendPlan {
        senders: a.senders,
        messages: a.messages,
        bytes: a.bytes,
        rate: a.rate,
        batch: a.batch,
    });
    let pacing = CancellationToken::new();
    if a.rate <= 0.0 {
        let (sh, pacing) = (sh.clone(), pacing.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !pacing.is_cancelled() {
                tick.tick().await;
                sh.pacer.refresh();
            }
        });
    }
    let mut sending: JoinSet<Result<OwnedWriteHalf, String>> = JoinSet::new();
    let cpu_start = cpu_now(a.server_pid);
    let first_send = sh.now_ns();
    // Write halves of the clients that only read stay here until the end.
    let mut keep = Vec::new();
    for (id, w) in std::mem::take(&mut *clients.writers.lock().expect("lock")) {
        if id < a.senders {
            sending.spawn(send_lines(id, w, plan.clone(), sh.clone()));
        } else {
            keep.push(w);
        }
    }
    let mut send_error = None;
    let send_phase = async {
        while let Some(r) = sending.join_next().await {
            match r {
                Ok(Ok(w)) => keep.push(w),
                Ok(Err(e)) => {
                    send_error.get_or_insert(e);
                }
                Err(e) => {
                    send_error.get_or_insert(e.to_string());
                }
            }
        }
    };
    let send_limit = Duration::from_secs_f64(a.send_timeout);
    if tokio::time::timeout(send_limit, send_phase).await.is_err() {
        sending.abort_all();
        send_error.get_or_insert(format!(
            "send phase passed {send_limit:?} ({} of {} lines sent)",
            sh.pacer.sent.load(Ordering::Relaxed),
            a.senders as u64 * a.messages
        ));
    }
    pacing.cancel();
    rep.sent = sh.pacer.sent.load(Ordering::Relaxed);
    rep.expected = (0..a.senders)
        .map(|s| sh.pacer.sent_by[s].load(Ordering::Relaxed) * a.audience(s))
        .sum();
    Sent {
        keep,
        error: send_error,
        first_send,
        cpu_start,
    }
}

async fn run(a: &Args) -> Report {
    let mut rep = Report::default();
    let sampler = a.server_pid.map(RssSampler::start);
    if let Some(s) = &sampler {
        rep.rss_base_kib = s.now();
        if rep.rss_base_kib.is_none() {
            rep.error = Some(format!("cannot read /proc/{}/status", s.pid));
            rep.fatal = true;
            return rep;
        }
    }
    let sh = Arc::new(Shared {
        base: Instant::now(),
        senders: a.senders,
        messages: a.messages,
        pacer: Pacer::new((a.lag_bytes / a.bytes as u64).max(1), a.senders, a.clients),
        lines: AtomicU64::new(0),
        unique: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        web: a.format == Format::Web,
        node_of: (0..a.clients).map(|i| a.node_of(i)).collect(),
        irc: (a.format == Format::Irc).then(|| a.irc_join.clone()),
    });
    let stop = CancellationToken::new();
    let cpu0 = cpu_now(a.server_pid).0;
    let mut clients = connect_all(a, &sh, &stop, &mut rep).await;
    if let (Some(c0), Some(c1)) = (cpu0, cpu_now(a.server_pid).0) {
        rep.cpu_connect_s = Some(c1 - c0);
    }
    if rep.fatal {
        stop.cancel();
        while clients.readers.join_next().await.is_some() {}
        if let Some(s) = sampler {
            rep.rss_peak_kib = Some(s.finish());
        }
        return rep;
    }
    settle(a, &sh, &mut rep).await;
    if let Some(s) = &sampler {
        rep.rss_idle_kib = s.now();
    }
    let sent = send_all(a, &sh, &clients, &mut rep).await;
    drain_and_collect(a, &sh, stop, clients, sent, sampler, rep).await
}

/// Waits (bounded by --drain-timeout) for the outstanding deliveries, holds
/// for --hold, stops the readers and fills in the rest of the report.
async fn drain_and_collect(
    a: &Args,
    sh: &Shared,
    stop: CancellationToken,
    mut clients: Clients,
    mut sent: Sent,
    sampler: Option<RssSampler>,
    mut rep: Report,
) -> Report {
    let drain_limit = Duration::from_secs_f64(a.drain_timeout);
    let t2 = Instant::now();
    while sh.unique.load(Ordering::Relaxed) < rep.expected && t2.elapsed() < drain_limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = sh.unique.load(Ordering::Relaxed) >= rep.expected;
    let cpu_end = cpu_now(a.server_pid);
    let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    rep.server_cpu_s = used(sent.cpu_start.0, cpu_end.0);
    rep.load_cpu_s = used(sent.cpu_start.1, cpu_end.1);
    if let Some(s) = &sampler {
        rep.rss_end_kib = s.now();
    }
    // Clients the server dropped during the run (not while holding).
    let closed_in_run = sh.closed.load(Ordering::SeqCst);
    if a.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    }
    stop.cancel();
    let mut hist = Hist::new();
    let mut cross = Hist::new();
    while let Some(r) = clients.readers.join_next().await {
        let Ok(end) = r else { continue };
        if let Some(h) = &end.hist {
            hist.merge(h);
        }
        if let Some(h) = &end.cross {
            cross.merge(h);
        }
        rep.duplicates += end.dups;
        rep.malformed += end.malformed;
        rep.kicked_seen = rep.kicked_seen.max(end.kick_notices);
    }
    rep.disconnected = closed_in_run;
    drop((clients.stalled, sent.keep));
    if let Some(s) = sampler {
        rep.rss_peak_kib = Some(s.finish());
    }
    rep.unique = sh.unique.load(Ordering::Relaxed);
    rep.received = rep.unique + rep.duplicates;
    rep.lost = rep.expected.saturating_sub(rep.unique);
    let last = sh.last_delivery.load(Ordering::Relaxed);
    rep.elapsed_s = last.saturating_sub(sent.first_send) as f64 / 1e9;
    if rep.elapsed_s > 0.0 {
        rep.deliveries_per_s = rep.received as f64 / rep.elapsed_s;
    }
    rep.lat_p50_us = hist.quantile(0.50).map(|v| v as f64 / 1e3);
    rep.lat_p99_us = hist.quantile(0.99).map(|v| v as f64 / 1e3);
    rep.lat_max_us = (hist.n > 0).then(|| hist.max as f64 / 1e3);
    rep.lat_cross_p99_us = cross.quantile(0.99).map(|v| v as f64 / 1e3);
    if !drained && sent.error.is_none() {
        sent.error = Some(format!(
            "{} of {} deliveries missing after the {drain_limit:?} drain",
            rep.lost, rep.expected
        ));
    }
    rep.error = sent.error;
    rep.complete = rep.error.is_none() && rep.lost == 0 && rep.settled;
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev_hi = None;
        for i in 0..bucket(1 << 40) {
            let (lo, hi) = bucket_range(i);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {i}");
            }
            assert_eq!(bucket(lo), i);
            assert_eq!(bucket(hi), i);
            assert!((hi - lo) as f64 <= lo as f64 / 31.0 + 1.0);
            prev_hi = Some(hi);
        }
    }

    #[test]
    fn lines_round_trip_through_a_prefix() {
        let mut buf = b"<guest7> ".to_vec();
        compose(&mut buf, 3, 42, 123_456_789, 64);
        assert_eq!(buf.len(), 9 + 64);
        let line = &buf[..buf.len() - 1];
        let at = find_marker(line).unwrap();
        assert_eq!(
            parse_payload(&line[at + MARKER.len()..]),
            Some((3, 42, 123_456_789))
        );
        assert_eq!(hex8(b"00000000"), Some(0));
        assert_eq!(hex8(b"deadbeef"), Some(0xdead_beef));
        assert_eq!(hex8(b"0123abcf"), Some(0x0123_abcf));
        assert_eq!(hex8(b"0123abcg"), None);
        assert_eq!(hex8(b"0123ABCF"), None);
        let mut buf = Vec::new();
        compose(&mut buf, 7, u32::MAX as u64, u64::MAX - 1, 80);
        let at = find_marker(&buf).unwrap();
        assert_eq!(
            parse_payload(&buf[at + MARKER.len()..buf.len() - 1]),
            Some((7, u32::MAX as u64, u64::MAX - 1))
        );
        // A line spliced by a prefix in the middle is not taken for a delivery.
        let spliced = b"<user5> CHATLOAD 3 4<user5> 2 99 xxx";
        let at = find_marker(spliced).unwrap();
        assert_eq!(parse_payload(&spliced[at + MARKER.len()..]), None);
    }
}
