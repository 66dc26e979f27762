//! `sockit ping`: ICMP echo on a raw socket (or the unprivileged ICMP datagram
//! socket), printed the way iputils `ping` prints it.
//!
//! This file owns the flags and what goes to stdout; the send/receive loop
//! (`icmp::pinger`), packets, bookkeeping and wording live in `icmp`.

use crate::shutdown::Shutdown;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::parse_secs;
use crate::endpoint::{self, Family, Host};
use crate::error::{Error, Result};
use crate::icmp::packet::Version;
use crate::icmp::pinger::{End, PingOptions, Pinger, Reporter};
use crate::icmp::report::{self, ErrorReport, Reply};

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
  sockit ping -D -O 10.0.0.1                 timestamped lines, and say when a reply is missing
  sockit ping -f -c 1000 127.0.0.1           flood: a dot per request, a backspace per reply (root)
  sockit ping -I lo -p ff00 -M do 127.0.0.1  through lo, pad bytes ff 00, don't fragment
  sockit ping -n -a localhost                addresses only (no reverse lookup), bell on each reply

Sockets: a raw socket (SOCK_RAW) for root or CAP_NET_RAW, else the unprivileged
ICMP datagram socket (allowed by net.ipv4.ping_group_range); -v says which.

Exit status (iputils' numbering, not the other subcommands'):
  0  a reply arrived
  1  no reply arrived
  2  error: bad flag, no address, or no ICMP socket allowed";

/// `sockit ping`'s exit status, numbered as iputils' ping does (not by the
/// crate's error classes): the `--help` table is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PingExit {
    /// At least one reply arrived (or stdout closed early).
    Replied = 0,
    /// Requests went out, no reply came back.
    NoReply = 1,
    /// Any error: bad flags, no address, no ICMP socket allowed.
    Failed = 2,
}

impl PingExit {
    /// Every status, in order.
    pub const ALL: [PingExit; 3] = [PingExit::Replied, PingExit::NoReply, PingExit::Failed];

    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The words in the `--help` table.
    pub fn describe(self) -> &'static str {
        match self {
            PingExit::Replied => "a reply arrived",
            PingExit::NoReply => "no reply arrived",
            PingExit::Failed => "error: bad flag, no address, or no ICMP socket allowed",
        }
    }
}

/// The exit status for an error from `sockit ping`: always
/// [`PingExit::Failed`], whatever its class.
pub fn exit_code(_: &Error) -> u8 {
    PingExit::Failed.code()
}

/// The shortest interval for users other than root, as in iputils.
const MIN_USER_INTERVAL: Duration = Duration::from_millis(200);
/// The shortest interval for anyone but a flood (`-f`, which may use 0).
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The shortest reply timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Flags for `sockit ping`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Host to ping: a name, an IPv4 address or an IPv6 address.
    pub host: String,
    /// Use IPv4 (ICMP).
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 (ICMPv6).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Stop after sending COUNT requests (with -w: after COUNT replies).
    #[arg(short = 'c', long = "count", value_name = "COUNT",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Seconds between requests (default 1; 0 with -f); below 0.2 only for root, as in iputils.
    #[arg(short = 'i', long = "interval", value_name = "SECS", value_parser = parse_secs)]
    pub interval: Option<Duration>,
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
    /// Set the don't-fragment bit (IPv4; the same as -M do).
    #[arg(long)]
    pub df: bool,
    /// Numeric output: show addresses, never look up their names.
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Put the time (seconds since the epoch, to the microsecond) before each line.
    #[arg(short = 'D', long = "timestamps")]
    pub timestamps: bool,
    /// Say "no answer yet" when a request is unanswered as the next one leaves.
    #[arg(short = 'O', long = "report-outstanding")]
    pub outstanding: bool,
    /// Flood: the next request leaves when the last is answered (or after 10 ms);
    /// prints a dot per request, a backspace per reply. Root only, as in iputils.
    #[arg(short = 'f', long = "flood")]
    pub flood: bool,
    /// Send from this interface (SO_BINDTODEVICE) or source address.
    #[arg(short = 'I', long = "interface", value_name = "IFACE|ADDR")]
    pub interface: Option<String>,
    /// Ring the terminal bell on each reply.
    #[arg(short = 'a', long = "audible")]
    pub audible: bool,
    /// Fill the pad bytes with this pattern of up to 16 bytes in hex (-p ff00).
    #[arg(short = 'p', long = "pattern", value_name = "HEX", value_parser = parse_pattern)]
    pub pattern: Option<Pattern>,
    /// Path MTU discovery: do (set DF, never fragment), dont, want (fragment if needed).
    #[arg(short = 'M', value_name = "do|dont|want", value_parser = parse_pmtudisc)]
    pub pmtudisc: Option<libc::c_int>,
}

/// `-p`'s bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub Vec<u8>);

/// `-p HEX`: iputils' pad pattern, up to 16 bytes.
fn parse_pattern(text: &str) -> std::result::Result<Pattern, String> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "patterns are hex digits, as -p ff00 (not {text:?})"
        ));
    }
    if digits.len() > 32 {
        return Err("a pattern holds at most 16 bytes (32 hex digits)".into());
    }
    // An odd count: the last digit is a byte of its own, as iputils reads it.
    let bytes = digits.as_bytes();
    Ok(Pattern(
        bytes
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0))
            .collect(),
    ))
}

/// `-M do|dont|want`: an `IP_PMTUDISC_*` value (IPv6 uses the same numbers).
fn parse_pmtudisc(text: &str) -> std::result::Result<libc::c_int, String> {
    match text {
        "do" => Ok(libc::IP_PMTUDISC_DO),
        "dont" => Ok(libc::IP_PMTUDISC_DONT),
        "want" => Ok(libc::IP_PMTUDISC_WANT),
        _ => Err(format!("-M takes do, dont or want (not {text:?})")),
    }
}

/// How long between requests: `-i`, else 1 s, or 0 with `-f`.
fn interval(args: &Args) -> Duration {
    args.interval.unwrap_or(if args.flood {
        Duration::ZERO
    } else {
        Duration::from_secs(1)
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no memory effects.
    unsafe { libc::geteuid() == 0 }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn check_timing(args: &Args) -> Result<()> {
    let interval = interval(args);
    if args.flood && interval < MIN_USER_INTERVAL && !is_root() {
        return Err(Error::Usage(format!(
            "cannot flood (the shortest interval for users other than root is {} s, as in \
             iputils; use -i {} or more)",
            secs(MIN_USER_INTERVAL),
            secs(MIN_USER_INTERVAL)
        )));
    }
    if interval < MIN_INTERVAL && !args.flood {
        return Err(Error::Usage(format!(
            "interval -i {} is too short (the minimum is {} s; -f floods)",
            secs(interval),
            secs(MIN_INTERVAL)
        )));
    }
    if interval < MIN_USER_INTERVAL && !is_root() {
        return Err(Error::Usage(format!(
            "interval -i {} is too short (below {} s needs root, as in iputils)",
            secs(interval),
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

/// Lines to stdout, flushed one by one; a closed stdout is reported, not fatal.
struct Printer {
    json: bool,
    quiet: bool,
    closed: bool,
    /// `-D`.
    timestamps: bool,
    /// `-a`.
    audible: bool,
    /// `-f`: dots and backspaces instead of lines.
    flood: bool,
    /// Look up the names of replying addresses (a name was pinged, no `-n`).
    names: bool,
    looked_up: std::collections::HashMap<IpAddr, Option<String>>,
    /// iputils' moving average of the round trip, times 8, in microseconds.
    ewma_8us: u64,
}

/// Wall-clock time since the epoch.
fn now_since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The name of `addr` from the resolver (hosts file, DNS), if it has one.
fn reverse_name(addr: IpAddr) -> Option<String> {
    let sa = socket2::SockAddr::from(std::net::SocketAddr::new(addr, 0));
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a valid sockaddr of `sa.len()` bytes; `host` is a
    // writable buffer of the length passed; no service buffer is asked for.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

impl Printer {
    /// How `addr` is shown in reply and error lines.
    fn shown(&mut self, addr: IpAddr) -> String {
        if !self.names {
            return addr.to_string();
        }
        let name = self
            .looked_up
            .entry(addr)
            .or_insert_with(|| reverse_name(addr));
        report::shown_from(addr, name.as_deref())
    }

    /// A reply, error or `-O` line: JSON gets a `ts`, text the `-D` stamp.
    fn event(&mut self, text: String) -> Result<()> {
        let now = now_since_epoch();
        if self.json {
            return self.line(&report::with_ts(text, now));
        }
        if self.timestamps {
            return self.line(&format!("[{}] {text}", report::epoch_micros(now)));
        }
        self.line(&text)
    }

    /// Flood output: raw bytes, no newline.
    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(bytes)
    }

    fn line(&mut self, text: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.write(&bytes)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Error::io("cannot write to stdout", e)),
        }
    }
}

impl Reporter for Printer {
    fn reply(&mut self, r: &Reply) -> Result<()> {
        if !r.bad_checksum {
            let us = r.rtt.as_micros().min(u128::from(u32::MAX)) as u64;
            self.ewma_8us = match self.ewma_8us {
                0 => us * 8,
                e => (e + us).saturating_sub(e / 8),
            };
        }
        if self.quiet {
            return Ok(());
        }
        if self.json {
            return self.event(report::reply_json(r));
        }
        if self.flood {
            // iputils: a backspace rubs out the request's dot.
            return self.raw(if r.bad_checksum {
                b"\x08C"
            } else {
                b"\x08 \x08"
            });
        }
        let mut text = report::reply_text_from(r, &self.shown(r.from));
        if self.audible {
            text.push('\x07');
        }
        self.event(text)
    }

    fn error(&mut self, e: &ErrorReport) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        if self.json {
            return self.event(report::error_json(e));
        }
        if self.flood {
            return self.raw(b"\x08E");
        }
        let text = report::error_text_from(e, &self.shown(e.from));
        self.event(text)
    }

    fn sent(&mut self, _seq: u16) -> Result<()> {
        if self.flood && !self.quiet && !self.json {
            return self.raw(b".");
        }
        Ok(())
    }

    fn no_answer_yet(&mut self, seq: u16) -> Result<()> {
        if self.quiet || self.flood {
            return Ok(());
        }
        if self.json {
            return self.event(report::no_answer_json(seq));
        }
        self.event(report::no_answer_text(seq))
    }

    fn closed(&self) -> bool {
        self.closed
    }
}

/// The checks that need the address: payload size and IPv4-only flags.
fn check_for(args: &Args, version: Version) -> Result<()> {
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
    if args.df && args.pmtudisc.is_some_and(|m| m != libc::IP_PMTUDISC_DO) {
        return Err(Error::Usage(
            "--df and -M dont/want disagree (--df is -M do)".into(),
        ));
    }
    if version == Version::V6 && args.df {
        return Err(Error::Usage(
            "--df sets the IPv4 don't-fragment bit; IPv6 routers never fragment".into(),
        ));
    }
    Ok(())
}

/// `-I`: an address to send from, or else an interface to bind to. An
/// address of the other family than the target is refused.
fn interface(args: &Args, target: IpAddr) -> Result<(Option<String>, Option<IpAddr>)> {
    let Some(text) = args.interface.as_deref() else {
        return Ok((None, None));
    };
    match text.parse::<IpAddr>() {
        Ok(ip) if Version::of(ip) != Version::of(target) => Err(Error::Usage(format!(
            "-I {ip} is not an address of the same family as {target}"
        ))),
        Ok(ip) => Ok((None, Some(ip))),
        Err(_) if text.is_empty() || text.len() >= libc::IFNAMSIZ || text.contains('/') => {
            Err(Error::Usage(format!(
                "-I {text:?} is neither an address nor an interface name"
            )))
        }
        Err(_) => Ok((Some(text.to_string()), None)),
    }
}

/// Runs `sockit ping`; `Ok` carries the exit status ([`PingExit`]).
pub async fn run(args: Args) -> Result<u8> {
    check_timing(&args)?;
    let dest = resolve(&args.host, Family::from_flags(args.ipv4, args.ipv6)).await?;
    let target = dest.ip();
    check_for(&args, Version::of(target))?;
    let (device, source) = interface(&args, target)?;
    let mut pinger = Pinger::open(&PingOptions {
        dest,
        size: args.size,
        ttl: args.ttl,
        raw_header: args.raw_header,
        df: args.df,
        count: args.count,
        interval: interval(&args),
        timeout: args.timeout,
        deadline: args.deadline,
        mtu_discover: args.pmtudisc,
        device,
        source,
        pattern: args.pattern.as_ref().map(|p| p.0.clone()),
        flood: args.flood,
        outstanding: args.outstanding,
    })?;
    // As iputils: names of replying addresses only when a name was pinged,
    // and never with -n or while flooding.
    let named = args
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_err();
    let mut out = Printer {
        json: args.json,
        quiet: args.quiet,
        closed: false,
        timestamps: args.timestamps,
        audible: args.audible,
        flood: args.flood,
        names: named && !args.numeric && !args.flood,
        looked_up: Default::default(),
        ewma_8us: 0,
    };
    if !args.json {
        if let Some(p) = &args.pattern {
            out.line(&report::pattern_line(&p.0))?;
        }
        out.line(&report::header(&args.host, target, args.size))?;
    }
    let end = pinger.run(&Shutdown::on_signals(), &mut out).await?;
    if end == End::StdoutClosed {
        return Ok(PingExit::Replied.code());
    }
    let summary = pinger.tracker().summary();
    let text = if args.json {
        report::with_ts(
            report::summary_json(&args.host, target, &summary),
            now_since_epoch(),
        )
    } else {
        let mut text = report::summary_text(&args.host, &summary)
            .trim_end_matches('\n')
            .to_string();
        // iputils adds the request gap and the moving average when the
        // interval was 0 or flooding.
        if (args.flood || interval(&args).is_zero())
            && summary.transmitted > 1
            && summary.received > 0
        {
            text.push_str(&report::ipg_ewma(&summary, out.ewma_8us));
        }
        text
    };
    out.line(&text)?;
    Ok(if summary.received > 0 {
        PingExit::Replied
    } else {
        PingExit::NoReply
    }
    .code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_table_is_the_exit_enum() {
        let table = HELP.split_once("Exit status").unwrap().1;
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), PingExit::ALL.len(), "{table}");
        for (row, status) in rows.iter().zip(PingExit::ALL) {
            assert_eq!(*row, format!("  {}  {}", status.code(), status.describe()));
        }
    }
    use std::net::Ipv4Addr;

    fn args(interval: f64) -> Args {
        Args {
            host: "127.0.0.1".into(),
            ipv4: false,
            ipv6: false,
            count: None,
            interval: Some(Duration::from_secs_f64(interval)),
            timeout: Duration::from_secs(10),
            deadline: None,
            size: 56,
            ttl: None,
            quiet: false,
            json: false,
            raw_header: false,
            df: false,
            numeric: false,
            timestamps: false,
            outstanding: false,
            flood: false,
            interface: None,
            audible: false,
            pattern: None,
            pmtudisc: None,
        }
    }

    #[test]
    fn patterns_and_pmtu_modes() {
        assert_eq!(parse_pattern("ff00").unwrap().0, vec![0xff, 0x00]);
        assert_eq!(parse_pattern("abc").unwrap().0, vec![0xab, 0x0c]);
        assert!(parse_pattern("xyz").is_err());
        assert!(parse_pattern("").is_err());
        assert!(parse_pattern(&"f".repeat(33)).is_err());
        assert_eq!(parse_pmtudisc("do"), Ok(libc::IP_PMTUDISC_DO));
        assert_eq!(parse_pmtudisc("want"), Ok(libc::IP_PMTUDISC_WANT));
        assert_eq!(parse_pmtudisc("dont"), Ok(libc::IP_PMTUDISC_DONT));
        assert!(parse_pmtudisc("maybe").is_err());
    }

    #[test]
    fn flood_interval() {
        let mut a = args(1.0);
        a.interval = None;
        assert_eq!(interval(&a), Duration::from_secs(1));
        a.flood = true;
        assert_eq!(interval(&a), Duration::ZERO);
        assert_eq!(check_timing(&a).is_ok(), is_root());
        a.flood = false;
        a.interval = Some(Duration::ZERO);
        assert!(check_timing(&a).is_err(), "0 without -f");
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
