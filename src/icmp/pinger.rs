//! One ping run: the send/receive loop over an [`IcmpSocket`], matching replies
//! and ICMP errors to our requests, and when to stop (`-c`, `-w`, `-W`, a signal).
//!
//! What is printed is the caller's: replies and errors go to a [`Reporter`] as
//! they come, and [`Pinger::tracker`] holds the numbers for the summary.

use crate::shutdown::Shutdown;
use crate::util::sleep_until;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::SockAddr;

use super::packet::{self, Body, Ipv4Header, Version};
use super::report::{ErrorReport, Reply};
use super::socket::{IcmpSocket, Options, QueuedError, Received, SocketKind};
use super::stats::{ArrivedAt, SentAt, Tracker, Verdict};
use crate::error::{describe_io, Error, Result};

/// Consecutive receive failures after which the socket is given up on.
const MAX_RECV_ERRORS: u32 = 1000;

/// Where replies and errors go as they arrive.
pub trait Reporter {
    /// A reply to one of our requests (duplicates, late and corrupted ones too).
    fn reply(&mut self, r: &Reply) -> Result<()>;
    /// An ICMP error about one of our requests.
    fn error(&mut self, e: &ErrorReport) -> Result<()>;
    /// True once nobody reads the output any more: the run ends.
    fn closed(&self) -> bool;
    /// Request `seq` just went out (flood mode prints a dot for it).
    fn sent(&mut self, _seq: u16) -> Result<()> {
        Ok(())
    }
    /// `-O`: request `seq` had no reply when the next one went out.
    fn no_answer_yet(&mut self, _seq: u16) -> Result<()> {
        Ok(())
    }
}

/// With `-f` and no `-i`: the longest wait for a reply before the next request
/// goes anyway (iputils: as fast as replies come back, or 100 a second).
const FLOOD_WAIT: Duration = Duration::from_millis(10);

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct PingOptions {
    /// The address to ping (port 0).
    pub dest: SocketAddr,
    /// Payload bytes per request.
    pub size: usize,
    /// TTL / hop limit.
    pub ttl: Option<u8>,
    /// Write the IPv4 header (IP_HDRINCL).
    pub raw_header: bool,
    /// Set the don't-fragment bit (IPv4).
    pub df: bool,
    /// `-c`: requests to send (with a deadline: replies to wait for).
    pub count: Option<u64>,
    /// Time between requests.
    pub interval: Duration,
    /// How long each request waits for its reply.
    pub timeout: Duration,
    /// `-w`: the whole run's limit.
    pub deadline: Option<Duration>,
    /// `-M`: an `IP_PMTUDISC_*` value.
    pub mtu_discover: Option<libc::c_int>,
    /// `-I IFACE`.
    pub device: Option<String>,
    /// `-I ADDR`.
    pub source: Option<IpAddr>,
    /// `-p`: bytes repeated through the payload after the nonce.
    pub pattern: Option<Vec<u8>>,
    /// `-f`: with a zero interval, the next request leaves as soon as the
    /// last one is answered (or after 10 ms).
    pub flood: bool,
    /// `-O`: say so when a request is still unanswered as the next one leaves.
    pub outstanding: bool,
}

/// Where the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
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
enum Wake {
    Shutdown,
    Deadline,
    Received(io::Result<Received>),
    SendDue,
    Expired,
}

/// One run: the socket, what to send, and what came back.
pub struct Pinger {
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
    recv_errors: u32,
    flood: bool,
    outstanding: bool,
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

    /// Sends and receives until the count, the deadline or `shutdown`; replies and
    /// errors go to `to` as they come.
    pub async fn run(&mut self, shutdown: &Shutdown, to: &mut dyn Reporter) -> Result<End> {
        self.start = Instant::now();
        let deadline = self
            .deadline
            .map(|d| tokio::time::Instant::from_std(self.start + d));
        let mut next_send = tokio::time::Instant::from_std(self.start);
        // Large enough for any IPv4 datagram or ICMPv6 message.
        let mut buf = vec![0u8; 65536];
        loop {
            if to.closed() {
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
                _ = shutdown.wait() => Wake::Shutdown,
                _ = sleep_until(deadline) => Wake::Deadline,
                r = self.sock.recv(&mut buf) => Wake::Received(r),
                _ = tokio::time::sleep_until(next_send), if sending => Wake::SendDue,
                _ = sleep_until(expiry), if expiry.is_some() => Wake::Expired,
            };
            match event {
                Wake::Shutdown => return Ok(End::Interrupted),
                Wake::Deadline => return Ok(End::Deadline),
                Wake::Received(Ok(r)) => {
                    self.recv_errors = 0;
                    let data = buf.get(..r.len).unwrap_or(&buf);
                    let answered = self.tracker.settled();
                    self.on_datagram(&r, data, to)?;
                    // Flooding: the answer to the request in flight lets the
                    // next one go at once.
                    if self.flood
                        && self.interval.is_zero()
                        && self.tracker.settled() > answered
                        && self.tracker.settled() == self.tracker.transmitted()
                    {
                        next_send = tokio::time::Instant::now();
                    }
                }
                Wake::Received(Err(e)) => self.on_recv_error(e, &mut buf, to)?,
                Wake::SendDue => {
                    self.send_one(to).await?;
                    let now = tokio::time::Instant::now();
                    next_send += if self.flood && self.interval.is_zero() {
                        FLOOD_WAIT
                    } else {
                        self.interval
                    };
                    // Fell behind by more than an interval (a stalled machine):
                    // send the next one now, without a burst to catch up.
                    if next_send < now {
                        next_send = now;
                    }
                }
                Wake::Expired => {}
            }
        }
    }

    async fn send_one(&mut self, to: &mut dyn Reporter) -> Result<()> {
        let seq = self.tracker.next_seq();
        if self.outstanding {
            if let Some(last) = self.tracker.last_seq() {
                if !self.tracker.replied(last) {
                    to.no_answer_yet(last)?;
                }
            }
        }
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
                to.sent(seq)?;
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

    fn on_datagram(&mut self, r: &Received, data: &[u8], to: &mut dyn Reporter) -> Result<()> {
        let (icmp, ttl) = if self.version == Version::V4 && self.sock.kind() == SocketKind::Raw {
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
                to.reply(&reply)
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
                to.error(&e)
            }
            _ => Ok(()),
        }
    }

    /// A failed receive: on datagram sockets, usually an ICMP error the kernel queued
    /// for us (`IP_RECVERR`); read the error queue.
    fn on_recv_error(&mut self, e: io::Error, buf: &mut [u8], to: &mut dyn Reporter) -> Result<()> {
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(());
        }
        let mut drained = false;
        while let Ok(Some(q)) = self.sock.recv_error(buf) {
            drained = true;
            let quoted = buf.get(..q.len).unwrap_or(&[]).to_vec();
            self.on_queued_error(&q, &quoted, to)?;
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

    fn on_queued_error(
        &mut self,
        q: &QueuedError,
        quoted: &[u8],
        to: &mut dyn Reporter,
    ) -> Result<()> {
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
        to.error(&e)
    }
}

impl Pinger {
    /// Opens the socket (raw, else unprivileged datagram) and prepares the requests.
    pub fn open(o: &PingOptions) -> Result<Pinger> {
        let target = o.dest.ip();
        let version = Version::of(target);
        let sock = IcmpSocket::open(&Options {
            version,
            header_included: o.raw_header,
            ttl: o.ttl,
            dont_fragment: o.df,
            mtu_discover: o.mtu_discover,
            device: o.device.as_deref(),
            source: o.source,
        })?;
        // Independent draws: the identifier (raw sockets), the nonce, the IPv4 id.
        let [random, nonce] = [super::random_u64(), super::random_u64()];
        let ident = match sock.kernel_ident() {
            Ok(Some(id)) => id,
            Ok(None) => (random >> 48) as u16,
            Err(e) => return Err(Error::io("cannot read the ICMP socket's identifier", e)),
        };
        log_socket(sock.kind(), version, ident);
        let ip_header = match (o.raw_header, target) {
            (true, IpAddr::V4(dst)) => {
                let src = match o.source {
                    Some(IpAddr::V4(src)) => src,
                    _ => super::socket::source_for(dst).map_err(|e| {
                        Error::io(format!("cannot find a source address for {dst}"), e)
                    })?,
                };
                let mut h = Ipv4Header::icmp(src, dst, 0, o.ttl.unwrap_or(64));
                h.dont_fragment = o.df;
                h.id = random as u16;
                Some(h)
            }
            _ => None,
        };
        Ok(Pinger {
            sock,
            version,
            target,
            dest: SockAddr::from(o.dest),
            ident,
            payload: packet::echo_payload_with(o.size, nonce, o.pattern.as_deref()),
            nonce,
            ip_header,
            tracker: Tracker::new(o.timeout),
            start: Instant::now(),
            count: o.count,
            interval: o.interval,
            deadline: o.deadline,
            recv_errors: 0,
            flood: o.flood,
            outstanding: o.outstanding,
        })
    }

    /// The bookkeeping so far (the summary comes from it).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

fn log_socket(kind: SocketKind, version: Version, ident: u16) {
    let proto = if version == Version::V4 {
        "IPPROTO_ICMP"
    } else {
        "IPPROTO_ICMPV6"
    };
    match kind {
        SocketKind::Raw => tracing::info!("using a raw socket (SOCK_RAW, {proto}), identifier {ident}"),
        SocketKind::Dgram => tracing::info!(
            "using an unprivileged ICMP datagram socket (SOCK_DGRAM, {proto}), identifier {ident} (chosen by the kernel)"
        ),
    }
}
