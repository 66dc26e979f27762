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
/// The shortest interval for anyone: sockit has no flood mode.
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

/// Lines to stdout, flushed one by one; a closed stdout is reported, not fatal.
struct Printer {
    json: bool,
    quiet: bool,
    closed: bool,
}

impl Printer {
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

impl Reporter for Printer {
    fn reply(&mut self, r: &Reply) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        let text = if self.json {
            report::reply_json(r)
        } else {
            report::reply_text(r)
        };
        self.line(&text)
    }

    fn error(&mut self, e: &ErrorReport) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        let text = if self.json {
            report::error_json(e)
        } else {
            report::error_text(e)
        };
        self.line(&text)
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
    if version == Version::V6 && args.df {
        return Err(Error::Usage(
            "--df sets the IPv4 don't-fragment bit; IPv6 routers never fragment".into(),
        ));
    }
    Ok(())
}

/// Runs `sockit ping`; `Ok` carries the exit status ([`PingExit`]).
pub async fn run(args: Args) -> Result<u8> {
    check_timing(&args)?;
    let dest = resolve(&args.host, Family::from_flags(args.ipv4, args.ipv6)).await?;
    let target = dest.ip();
    check_for(&args, Version::of(target))?;
    let mut pinger = Pinger::open(&PingOptions {
        dest,
        size: args.size,
        ttl: args.ttl,
        raw_header: args.raw_header,
        df: args.df,
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
        deadline: args.deadline,
    })?;
    let mut out = Printer {
        json: args.json,
        quiet: args.quiet,
        closed: false,
    };
    if !args.json {
        out.line(&report::header(&args.host, target, args.size))?;
    }
    let end = pinger.run(&Shutdown::on_signals(), &mut out).await?;
    if end == End::StdoutClosed {
        return Ok(PingExit::Replied.code());
    }
    let summary = pinger.tracker().summary();
    let text = if args.json {
        report::summary_json(&args.host, target, &summary)
    } else {
        report::summary_text(&args.host, &summary)
            .trim_end_matches('\n')
            .to_string()
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
