//! `sockit ping`: ICMP echo on a raw socket (or the unprivileged ICMP datagram
//! socket), printed the way iputils `ping` prints it.
//!
//! This file owns the flags and the send/receive loop; packets, bookkeeping and
//! wording live in [`crate::icmp`].

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use socket2::SockAddr;

use crate::cli::parse_secs;
use crate::endpoint::{self, Family, Host};
use crate::error::{describe_io, Error, Result};
use crate::icmp::packet::{self, Body, Ipv4Header, Version};
use crate::icmp::report::{self, ErrorReport, Reply};
use crate::icmp::socket::{IcmpSocket, Kind, Options, QueuedError, Received};
use crate::icmp::stats::{ArrivedAt, SentAt, Tracker, Verdict};

/// Examples shown under `sockit ping --help`.
pub const HELP: &str = "\
Examples:
  sockit ping 127.0.0.1                      one request a second until Ctrl-C
  sockit ping -c 3 ::1                       three ICMPv6 echoes, then the statistics
  sockit ping -c 100 -i 0.01 -q 127.0.0.1    100 quick requests, statistics only (root)
  sockit ping -w 5 localhost                 stop after 5 seconds, whatever happened
  sockit ping -c 2 -W 0.5 127.0.0.1          give each reply half a second
  sockit ping --json -c 2 127.0.0.1          one JSON object per reply, then the summary
  sockit ping -v --raw-header -t 5 --df 127.0.0.1
                                             write the IPv4 header by hand (IP_HDRINCL), show it

Sockets: a raw socket (SOCK_RAW) for root or CAP_NET_RAW, else the unprivileged
ICMP datagram socket (allowed by net.ipv4.ping_group_range); -v says which.

Exit status: 0 if any reply arrived, 1 if none did, 2 on errors (bad flags, no
address, no ICMP socket allowed).";

/// The shortest interval for users other than root, as in iputils.
const MIN_USER_INTERVAL: Duration = Duration::from_millis(200);
/// The shortest interval for anyone: sockit has no flood mode.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The shortest reply timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Consecutive receive failures after which the socket is given up on.
const MAX_RECV_ERRORS: u32 = 1000;

/// Flags for `sockit ping`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Host to ping: a name, an IPv4 address or an IPv6 address.
    pub host: String,
    /// Use IPv4 (ICMP).
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 (ICMPv6).
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Stop after sending COUNT requests (with -w: after COUNT replies).
    #[arg(short = 'c', long = "count", value_name = "COUNT",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Seconds between requests; below 0.2 only for root, as in iputils.
    #[arg(short = 'i', long = "interval", value_name = "SECS", default_value = "1",
          value_parser = parse_secs)]
    pub interval: Duration,
    /// Seconds to wait for each reply; after the last request, ping exits once every
    /// request is answered or has waited this long.
    #[arg(short = 'W', long = "timeout", value_name = "SECS", default_value = "10",
          value_parser = parse_secs)]
    pub timeout: Duration,
    /// Exit after SECS in all, however many requests were sent or answered.
    #[arg(short = 'w', long = "deadline", value_name = "SECS", value_parser = parse_secs)]
    pub deadline: Option<Duration>,
    /// Payload bytes per request (56 makes 64-byte ICMP messages).
    #[arg(short = 's', long = "size", value_name = "BYTES", default_value_t = 56)]
    pub size: usize,
    /// TTL of the requests (IPv6: hop limit).
    #[arg(short = 't', long = "ttl", value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: Option<u8>,
    /// Print only the header line and the statistics.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print one JSON object per reply (and ICMP error), then one for the summary.
    #[arg(long)]
    pub json: bool,
    /// Write the IPv4 header yourself (IP_HDRINCL on a raw socket); -v prints it.
    #[arg(long)]
    pub raw_header: bool,
    /// Set the don't-fragment bit (IPv4).
    #[arg(long)]
    pub df: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no memory effects.
    unsafe { libc::geteuid() == 0 }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn check_timing(args: &Args) -> Result<()> {
    if args.interval < MIN_INTERVAL {
        return Err(Error::Usage(format!(
            "interval -i {} is too short (the minimum is {} s; sockit has no flood mode)",
            secs(args.interval),
            secs(MIN_INTERVAL)
        )));
    }
    if args.interval < MIN_USER_INTERVAL && !is_root() {
        return Err(Error::Usage(format!(
            "interval -i {} is too short (below {} s needs root, as in iputils)",
            secs(args.interval),
            secs(MIN_USER_INTERVAL)
        )));
    }
    if args.timeout < MIN_TIMEOUT {
        return Err(Error::Usage(format!(
            "timeout -W {} is too short (the minimum is {} s)",
            secs(args.timeout),
            secs(MIN_TIMEOUT)
        )));
    }
    if args.deadline == Some(Duration::ZERO) {
        return Err(Error::Usage("deadline -w must be more than 0".into()));
    }
    Ok(())
}

/// The address to ping (port 0; an IPv6 scope from the resolver is kept).
async fn resolve(text: &str, family: Family) -> Result<SocketAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if bare.is_empty() {
        return Err(Error::Usage("ping needs a host".into()));
    }
    let host = match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(bare.to_string()),
    };
    let addrs = endpoint::resolve(&host, 0, family).await?;
    let addr = addrs
        .first()
        .ok_or_else(|| Error::Usage(format!("no address for {text}")))?;
    Ok(match (addr.ip().to_canonical(), addr) {
        (IpAddr::V4(v4), _) => SocketAddr::new(v4.into(), 0),
        (_, SocketAddr::V6(a)) => SocketAddrV6::new(*a.ip(), 0, 0, a.scope_id()).into(),
        (ip, _) => SocketAddr::new(ip, 0),
    })
}

/// Where the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Count reached, or every request answered or timed out.
    Done,
    /// `-w` expired.
    Deadline,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Nobody reads stdout any more.
    StdoutClosed,
}

/// What woke the loop.
enum Event {
    Shutdown,
    Deadline,
    Received(io::Result<Received>),
    SendDue,
    Expired,
}

/// Lines to stdout, flushed one by one; a closed stdout is reported, not fatal.
struct Output {
    json: bool,
    quiet: bool,
    closed: bool,
}

impl Output {
    fn line(&mut self, text: &str) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Error::io("cannot write to stdout", e)),
        }
    }
}

/// One run: the socket, what to send, and what came back.
struct Pinger {
    sock: IcmpSocket,
    version: Version,
    target: IpAddr,
    dest: SockAddr,
    /// Identifier in our requests (raw), or the one the kernel writes (datagram).
    ident: u16,
    /// Payload of every request (nonce first when it fits).
    payload: Vec<u8>,
    nonce: u64,
    /// With `--raw-header`: the IPv4 header to put in front of each request.
    ip_header: Option<Ipv4Header>,
    tracker: Tracker,
    start: Instant,
    count: Option<u64>,
    interval: Duration,
    deadline: Option<Duration>,
    out: Output,
    recv_errors: u32,
}

impl Pinger {
    fn since_start(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    /// Whether another request is due at all (iputils' rules: with -w, -c counts
    /// replies; without, it counts requests).
    fn more_to_send(&self) -> bool {
        match (self.count, self.deadline) {
            (None, _) => true,
            (Some(c), Some(_)) => self.tracker.received() < c,
            (Some(c), None) => self.tracker.transmitted() < c,
        }
    }

    /// Each request counts once, however many replies or errors name it.
    fn count_reached(&self) -> bool {
        self.count.is_some_and(|c| self.tracker.settled() >= c)
    }

    async fn run(&mut self) -> Result<End> {
        let shutdown = crate::cmd::shutdown_signal();
        tokio::pin!(shutdown);
        let deadline = self
            .deadline
            .map(|d| tokio::time::Instant::from_std(self.start + d));
        let mut next_send = tokio::time::Instant::from_std(self.start);
        // Large enough for any IPv4 datagram or ICMPv6 message.
        let mut buf = vec![0u8; 65536];
        loop {
            if self.out.closed {
                return Ok(End::StdoutClosed);
            }
            if self.count_reached() {
                return Ok(End::Done);
            }
            let sending = self.more_to_send();
            let expiry = if sending {
                None
            } else {
                let now = self.since_start(Instant::now());
                match self.tracker.next_expiry(now) {
                    None => return Ok(End::Done),
                    Some(t) => Some(tokio::time::Instant::from_std(self.start + t)),
                }
            };
            let event = tokio::select! {
                biased;
                _ = &mut shutdown => Event::Shutdown,
                _ = sleep_until(deadline) => Event::Deadline,
                r = self.sock.recv(&mut buf) => Event::Received(r),
                _ = tokio::time::sleep_until(next_send), if sending => Event::SendDue,
                _ = sleep_until(expiry), if expiry.is_some() => Event::Expired,
            };
            match event {
                Event::Shutdown => return Ok(End::Interrupted),
                Event::Deadline => return Ok(End::Deadline),
                Event::Received(Ok(r)) => {
                    self.recv_errors = 0;
                    let data = buf.get(..r.len).unwrap_or(&buf);
                    self.on_datagram(&r, data)?;
                }
                Event::Received(Err(e)) => self.on_recv_error(e, &mut buf)?,
                Event::SendDue => {
                    self.send_one().await?;
                    let now = tokio::time::Instant::now();
                    next_send += self.interval;
                    // Fell behind by more than an interval (a stalled machine):
                    // send the next one now, without a burst to catch up.
                    if next_send < now {
                        next_send = now;
                    }
                }
                Event::Expired => {}
            }
        }
    }

    async fn send_one(&mut self) -> Result<()> {
        let seq = self.tracker.next_seq();
        let icmp = packet::echo_request(self.version, self.ident, seq, &self.payload);
        let bytes = match &mut self.ip_header {
            Some(h) => {
                h.id = h.id.wrapping_add(1);
                tracing::info!("IPv4 header sent: {}", h.finished(icmp.len()));
                h.to_bytes(&icmp)
            }
            None => icmp,
        };
        match self.sock.send_to(&bytes, &self.dest).await {
            Ok(stamp) => {
                self.tracker.on_send(SentAt {
                    mono: self.since_start(stamp.mono),
                    wall: stamp.wall,
                });
            }
            Err(e) => {
                // As iputils: the request counts as transmitted, the run goes on.
                let seq = self.tracker.on_send(SentAt {
                    mono: self.since_start(Instant::now()),
                    wall: None,
                });
                self.tracker.on_send_failed(seq);
                tracing::warn!("cannot send icmp_seq={seq} ({})", describe_io(&e));
            }
        }
        Ok(())
    }

    fn nonce_ok(&self, payload: &[u8]) -> bool {
        self.payload.len() < packet::NONCE_LEN || packet::payload_nonce(payload) == Some(self.nonce)
    }

    fn on_datagram(&mut self, r: &Received, data: &[u8]) -> Result<()> {
        let (icmp, ttl) = if self.version == Version::V4 && self.sock.kind() == Kind::Raw {
            match Ipv4Header::parse(data) {
                Ok((h, rest)) => (rest, Some(h.ttl)),
                Err(_) => return Ok(()),
            }
        } else {
            (data, r.ttl)
        };
        let Ok(msg) = packet::parse_icmp(self.version, icmp) else {
            return Ok(());
        };
        let from = r.from.unwrap_or(self.target);
        match msg.body {
            Body::EchoReply {
                ident,
                seq,
                payload,
            } if ident == self.ident && self.nonce_ok(payload) => {
                let at = ArrivedAt {
                    mono: self.since_start(r.at),
                    kernel: r.kernel_time,
                };
                let verdict = self.tracker.on_reply(seq, at, msg.checksum_ok);
                let (rtt, dup, late, bad_checksum) = match verdict {
                    Verdict::Fresh { rtt, late } => (rtt, false, late, false),
                    Verdict::Duplicate { rtt } => (rtt, true, false, false),
                    Verdict::Corrupted { rtt } => (rtt, false, false, true),
                    Verdict::Unknown => return Ok(()),
                };
                let reply = Reply {
                    bytes: msg.len,
                    from,
                    seq,
                    ttl,
                    rtt,
                    dup,
                    late,
                    bad_checksum,
                    different_address: from != self.target,
                    truncated: payload.len() < self.payload.len(),
                    wrong_data: self
                        .payload
                        .iter()
                        .zip(payload)
                        .enumerate()
                        .find(|(_, (a, b))| a != b)
                        .map(|(i, (a, b))| (i, *a, *b)),
                };
                self.print_reply(&reply)
            }
            Body::Error {
                info,
                quoted: Some(q),
            } if q.ident == self.ident
                && (q.payload.len() < packet::NONCE_LEN || self.nonce_ok(q.payload)) =>
            {
                if !self.tracker.on_error(q.seq) {
                    return Ok(());
                }
                let e = ErrorReport {
                    from,
                    seq: q.seq,
                    icmp_type: msg.icmp_type,
                    code: msg.code,
                    message: packet::describe_error(self.version, msg.icmp_type, msg.code, info),
                };
                self.print_error(&e)
            }
            _ => Ok(()),
        }
    }

    /// A failed receive: on datagram sockets, usually an ICMP error the kernel queued
    /// for us (`IP_RECVERR`); read the error queue.
    fn on_recv_error(&mut self, e: io::Error, buf: &mut [u8]) -> Result<()> {
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(());
        }
        let mut drained = false;
        while let Ok(Some(q)) = self.sock.recv_error(buf) {
            drained = true;
            let quoted = buf.get(..q.len).unwrap_or(&[]).to_vec();
            self.on_queued_error(&q, &quoted)?;
        }
        if !drained {
            tracing::debug!("receive failed ({})", describe_io(&e));
            self.recv_errors += 1;
            if self.recv_errors >= MAX_RECV_ERRORS {
                return Err(Error::io("cannot receive ICMP replies", e));
            }
        }
        Ok(())
    }

    fn on_queued_error(&mut self, q: &QueuedError, quoted: &[u8]) -> Result<()> {
        let Some(req) = packet::parse_echo_request(self.version, quoted) else {
            return Ok(());
        };
        if req.ident != self.ident || !self.tracker.on_error(req.seq) {
            return Ok(());
        }
        let err = &q.err;
        let message = if err.is_icmp() {
            packet::describe_error(self.version, err.icmp_type, err.code, err.info)
        } else {
            let errno = i32::try_from(err.errno).unwrap_or(0);
            format!(
                "local error: {}",
                describe_io(&io::Error::from_raw_os_error(errno))
            )
        };
        let e = ErrorReport {
            from: err.offender.unwrap_or(self.target),
            seq: req.seq,
            icmp_type: err.icmp_type,
            code: err.code,
            message,
        };
        self.print_error(&e)
    }

    fn print_reply(&mut self, r: &Reply) -> Result<()> {
        if self.out.quiet {
            return Ok(());
        }
        let text = if self.out.json {
            report::reply_json(r)
        } else {
            report::reply_text(r)
        };
        self.out.line(&text)
    }

    fn print_error(&mut self, e: &ErrorReport) -> Result<()> {
        if self.out.quiet {
            return Ok(());
        }
        let text = if self.out.json {
            report::error_json(e)
        } else {
            report::error_text(e)
        };
        self.out.line(&text)
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Runs `sockit ping`; `Ok` carries the exit status: 0 if any reply arrived, else 1.
pub async fn run(args: Args) -> Result<u8> {
    check_timing(&args)?;
    let dest = resolve(&args.host, Family::from_flags(args.ipv4, args.ipv6)).await?;
    let target = dest.ip();
    let version = Version::of(target);
    if args.size > version.max_payload() {
        return Err(Error::Usage(format!(
            "size -s {} is too large (at most {} bytes over {})",
            args.size,
            version.max_payload(),
            if version == Version::V4 {
                "IPv4"
            } else {
                "IPv6"
            }
        )));
    }
    if version == Version::V6 && args.raw_header {
        return Err(Error::Usage(
            "--raw-header writes an IPv4 header (IP_HDRINCL); it does not apply to IPv6".into(),
        ));
    }
    if version == Version::V6 && args.df {
        return Err(Error::Usage(
            "--df sets the IPv4 don't-fragment bit; IPv6 routers never fragment".into(),
        ));
    }

    let sock = IcmpSocket::open(&Options {
        version,
        header_included: args.raw_header,
        ttl: args.ttl,
        dont_fragment: args.df,
    })?;
    // Independent draws: the identifier (raw sockets), the nonce, the IPv4 id.
    let [random, nonce] = [crate::icmp::random_u64(), crate::icmp::random_u64()];
    let ident = match sock.kernel_ident() {
        Ok(Some(id)) => id,
        Ok(None) => (random >> 48) as u16,
        Err(e) => return Err(Error::io("cannot read the ICMP socket's identifier", e)),
    };
    match sock.kind() {
        Kind::Raw => tracing::info!(
            "using a raw socket (SOCK_RAW, {}), identifier {ident}",
            if version == Version::V4 {
                "IPPROTO_ICMP"
            } else {
                "IPPROTO_ICMPV6"
            }
        ),
        Kind::Dgram => tracing::info!(
            "using an unprivileged ICMP datagram socket (SOCK_DGRAM, {}), identifier {ident} (chosen by the kernel)",
            if version == Version::V4 {
                "IPPROTO_ICMP"
            } else {
                "IPPROTO_ICMPV6"
            }
        ),
    }
    let ip_header = match (args.raw_header, target) {
        (true, IpAddr::V4(dst)) => {
            let src = crate::icmp::socket::source_for(dst)
                .map_err(|e| Error::io(format!("cannot find a source address for {dst}"), e))?;
            let mut h = Ipv4Header::icmp(src, dst, 0, args.ttl.unwrap_or(64));
            h.dont_fragment = args.df;
            h.id = random as u16;
            Some(h)
        }
        _ => None,
    };
    let mut pinger = Pinger {
        sock,
        version,
        target,
        dest: SockAddr::from(dest),
        ident,
        payload: packet::echo_payload(args.size, nonce),
        nonce,
        ip_header,
        tracker: Tracker::new(args.timeout),
        start: Instant::now(),
        count: args.count,
        interval: args.interval,
        deadline: args.deadline,
        out: Output {
            json: args.json,
            quiet: args.quiet,
            closed: false,
        },
        recv_errors: 0,
    };
    if !args.json {
        pinger
            .out
            .line(&report::header(&args.host, target, args.size))?;
    }
    pinger.start = Instant::now();
    let end = pinger.run().await?;
    if end == End::StdoutClosed {
        return Ok(0);
    }
    let summary = pinger.tracker.summary();
    let text = if args.json {
        report::summary_json(&args.host, target, &summary)
    } else {
        report::summary_text(&args.host, &summary)
            .trim_end_matches('\n')
            .to_string()
    };
    pinger.out.line(&text)?;
    Ok(if summary.received > 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn args(interval: f64) -> Args {
        Args {
            host: "127.0.0.1".into(),
            ipv4: false,
            ipv6: false,
            count: None,
            interval: Duration::from_secs_f64(interval),
            timeout: Duration::from_secs(10),
            deadline: None,
            size: 56,
            ttl: None,
            quiet: false,
            json: false,
            raw_header: false,
            df: false,
        }
    }

    #[test]
    fn interval_floor() {
        assert!(check_timing(&args(0.0)).is_err());
        assert!(check_timing(&args(0.2)).is_ok());
        assert_eq!(check_timing(&args(0.01)).is_ok(), is_root());
        let mut a = args(1.0);
        a.timeout = Duration::ZERO;
        assert!(check_timing(&a).is_err());
        a.timeout = Duration::from_secs(1);
        a.deadline = Some(Duration::ZERO);
        assert!(check_timing(&a).is_err());
    }

    async fn ip(text: &str, family: Family) -> Result<IpAddr> {
        resolve(text, family).await.map(|a| a.ip())
    }

    #[tokio::test]
    async fn host_forms() {
        let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
        assert_eq!(ip("127.0.0.1", Family::Any).await.unwrap(), v4);
        assert_eq!(
            ip("[::1]", Family::Any).await.unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(ip("::ffff:127.0.0.1", Family::Any).await.unwrap(), v4);
        assert!(ip("::1", Family::V4).await.is_err());
        assert!(ip("", Family::Any).await.is_err());
    }
}
