//! `sockit connect`: the tutorial's client, and `nc HOST PORT` done right.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::{parse_secs, NetArgs, ProxyArgs, RelayArgs, SockArgs, TlsClientArgs};
use crate::dial::{dial, DialOpts};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::relay;
use crate::serve::exec::{self, ExecSpec};
use crate::shutdown::{Interrupted, Shutdown};

/// Examples shown under `sockit connect --help`.
pub const HELP: &str = "\
Examples:
  sockit connect 127.0.0.1:8000                 stdin to the server, its reply to stdout
  printf baihuixin | sockit connect :8000       the tutorial's greeting client
  sockit connect -z -w 2 db.local:5432          is the port open? (exit status only)
  sockit connect -v [::1]:22                    show local/peer address and byte counts
  sockit connect -u 127.0.0.1:53                UDP: one datagram per stdin line
  sockit connect unix-seqpacket:/run/app.sock   Unix seqpacket, message boundaries kept
  sockit connect 127.0.0.1 8000                 HOST PORT apart, as nc takes them
  sockit connect -zv 127.0.0.1 20-25            which ports of a range are open
  sockit connect -e 'cat -n' 127.0.0.1:9000     the connection is the program's stdin/stdout
  sockit connect --tls --pin-sha256 AB:CD:.. localhost:8443
                                                TLS, trusting exactly that certificate
  sockit connect --hex-dump - example.com:80    hex dump both directions to stderr
  sockit connect -x socks5h://127.0.0.1:1080 example.com:80
                                                through a SOCKS5 proxy (it resolves the name)
  sockit connect -x http://proxy:3128 --tls example.com:443
                                                TLS through an HTTP proxy's CONNECT
  sockit connect -x https://proxy:8443 --proxy-cacert ca.pem --tls example.com:443
                                                TLS inside TLS to an HTTPS proxy
  sockit connect --tls --cert me.pem --key me.key mtls.example:443
                                                present a client certificate
  sockit connect -s 127.0.0.2:0 127.0.0.1:80    bind a source address first

-w bounds the whole connect: name resolution, every address tried and the TLS
handshake. Ctrl-C or SIGTERM ends it at any stage, with the shell's status for
the signal (130, 143).

Exit status: see 'sockit --help'.";

/// Flags for `sockit connect`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to connect: HOST:PORT, udp://HOST:PORT, unix:/PATH, unix-dgram:/PATH,
    /// unix-seqpacket:/PATH, unix:@ABSTRACT. With -z, HOST:LOW-HIGH scans a range.
    pub endpoint: String,
    /// The port, given apart as nc takes it (HOST PORT); with -z also LOW-HIGH.
    pub port: Option<String>,
    #[command(flatten)]
    net: NetArgs,
    /// Time limit for the whole connect, in seconds: resolve, every address, TLS
    /// handshake (datagram sockets: also how long to wait for replies after stdin ends).
    #[arg(short = 'w', long = "wait", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    wait: Duration,
    /// Connect, then close without sending: exit status says whether the port is open.
    #[arg(short = 'z', long = "zero-io")]
    zero: bool,
    /// -z with a port range: most ports probed at once.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    scan_concurrency: u32,
    /// Bind this local address before connecting (port 0 = any).
    #[arg(short = 's', long = "source", value_name = "ADDR")]
    source: Option<String>,
    /// Once connected, run this program with the connection as its stdin and
    /// stdout (split like a shell, run without one).
    #[arg(short = 'e', long, value_name = "CMD", conflicts_with_all = ["sh_exec", "zero"])]
    exec: Option<String>,
    /// Like -e, through /bin/sh -c CMD.
    #[arg(short = 'c', long, value_name = "CMD", conflicts_with = "zero")]
    sh_exec: Option<String>,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    sock: SockArgs,
    #[command(flatten)]
    tls: TlsClientArgs,
    #[command(flatten)]
    proxy: ProxyArgs,
}

fn parse_source(text: &str) -> Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    Err(Error::Usage(format!(
        "invalid --source '{text}': expected IP or IP:PORT, e.g. 127.0.0.2 or [::1]:5000"
    )))
}

/// `HOST` and `PORT` given apart (nc's form) as one endpoint: `HOST:PORT`,
/// with brackets around an IPv6 address.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') && !host.starts_with('[') && !host.contains("://") {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A hint for an endpoint that is only a port (`connect 80`), or a host and
/// port in one quoted argument (`connect '127.0.0.1 80'`).
fn endpoint_hint(text: &str) -> Option<String> {
    if let Some((host, port)) = text.trim().split_once(char::is_whitespace) {
        let port = port.trim();
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!(
                "host and port in one argument: did you mean {}?",
                join_host_port(host, port)
            ));
        }
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "missing host: did you mean 127.0.0.1:{text} (or HOST {text})?"
        ));
    }
    None
}

/// `LOW-HIGH` as a port range.
fn port_range(text: &str) -> Option<Result<(u16, u16)>> {
    let (lo, hi) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || !digits(hi) {
        return None;
    }
    let bad = || {
        Error::Usage(format!(
            "invalid port range '{text}' (expected LOW-HIGH, each from 1 to 65535, LOW <= HIGH)"
        ))
    };
    let parse = |s: &str| s.parse::<u16>().ok().filter(|&p| p > 0);
    Some(match (parse(lo), parse(hi)) {
        (Some(lo), Some(hi)) if lo <= hi => Ok((lo, hi)),
        _ => Err(bad()),
    })
}

/// Splits `HOST:LOW-HIGH` (or `HOST` + `LOW-HIGH`) into the host part and the range.
fn scan_target(args: &Args) -> Option<Result<(String, (u16, u16))>> {
    match &args.port {
        Some(port) => port_range(port).map(|r| r.map(|r| (args.endpoint.clone(), r))),
        None if args.endpoint.starts_with("unix") => None,
        None => {
            let (host, range) = args.endpoint.rsplit_once(':')?;
            port_range(range).map(|r| r.map(|r| (host.to_string(), r)))
        }
    }
}

/// Runs `sockit connect`; `Ok` carries the exit status (128 + the signal's
/// number when Ctrl-C or SIGTERM ended it).
pub async fn run(args: Args) -> Result<u8> {
    let shutdown = Shutdown::on_signals();
    if let Some(target) = scan_target(&args) {
        let (host, range) = target?;
        if !args.zero {
            return Err(Error::Usage(format!(
                "a port range needs -z (did you mean sockit connect -z {} {}-{}?)",
                host, range.0, range.1
            )));
        }
        if args.net.udp || host.starts_with("udp://") {
            return Err(Error::Usage(
                "-z scans TCP ports only (a UDP port gives no answer to a connect)".into(),
            ));
        }
        return scan(&args, &host, range, &shutdown).await;
    }
    let text = match &args.port {
        Some(port) => join_host_port(&args.endpoint, port),
        None => args.endpoint.clone(),
    };
    let ep = Endpoint::parse(&text, args.net.udp).map_err(|e| match endpoint_hint(&text) {
        Some(hint) => Error::Usage(format!("invalid endpoint '{text}' ({hint})")),
        None => e,
    })?;
    let exec = match (&args.exec, &args.sh_exec) {
        (Some(cmd), _) => Some(ExecSpec::direct(cmd)?),
        (None, Some(cmd)) => Some(ExecSpec::shell(cmd)),
        (None, None) => None,
    };
    if let Some(spec) = &exec {
        spec.check()?;
    }
    if args.tls.tls && !ep.is_stream() {
        return Err(Error::Usage(format!(
            "--tls needs a stream endpoint (TCP or unix:), not {}",
            ep.proto()
        )));
    }
    let mut sock = args.sock.opts();
    sock.source = args.source.as_deref().map(parse_source).transpose()?;
    let opts = DialOpts {
        family: args.net.family(),
        wait: args.wait,
        sock,
        tls: args.tls.options(),
        proxy: args.proxy.proxy()?,
    };
    let conn = match shutdown.race(dial(&ep, &opts)).await {
        Ok(conn) => conn?,
        Err(stop) => return Ok(interrupted(stop)),
    };
    tracing::info!(
        "connected to {} from {} ({})",
        conn.peer,
        conn.local,
        conn.proto
    );
    if args.zero {
        return Ok(0);
    }
    if let Some(spec) = exec {
        let activity = relay::Activity::new();
        let served = exec::serve(conn, &spec, &activity);
        return match shutdown.race(served).await {
            Ok(r) => r
                .map(|()| 0)
                .map_err(|e| Error::io(format!("cannot run {}", spec.argv[0]), e)),
            Err(stop) => Ok(interrupted(stop)),
        };
    }
    // Like nc: a server's half-close does not truncate what we send.
    let wait_for_stdin = !crate::relay::splice::stdin_is_terminal();
    let ropts = args.relay.options(args.wait, wait_for_stdin)?;
    let stats = match shutdown.race(relay::run(conn, &ropts)).await {
        Ok(stats) => stats?,
        Err(stop) => return Ok(interrupted(stop)),
    };
    tracing::info!(
        "closed: {} sent, {} received",
        relay::plural(stats.sent, "byte"),
        relay::plural(stats.received, "byte")
    );
    Ok(0)
}

fn interrupted(stop: Interrupted) -> u8 {
    tracing::info!("interrupted");
    stop.exit_code()
}

/// `-z HOST LOW-HIGH`: probes every port, at most `--scan-concurrency` at
/// once; under -v one line per open port, in port order. Exit 0 when any is
/// open, else 1.
async fn scan(args: &Args, host: &str, (lo, hi): (u16, u16), shutdown: &Shutdown) -> Result<u8> {
    let host_ep =
        |port: u16| Endpoint::parse(&join_host_port(host, &port.to_string()), args.net.udp);
    let proto = host_ep(lo)?.proto();
    let opts = DialOpts {
        family: args.net.family(),
        wait: args.wait,
        sock: args.sock.opts(),
        tls: None,
        proxy: args.proxy.proxy()?,
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(args.scan_concurrency as usize));
    let mut probes = tokio::task::JoinSet::new();
    for port in lo..=hi {
        let ep = host_ep(port)?;
        let (opts, limit) = (opts.clone(), limit.clone());
        probes.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let open = match dial(&ep, &opts).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!("{e}");
                    false
                }
            };
            (port, open)
        });
    }
    let collect = async {
        let mut open = std::collections::BTreeSet::new();
        while let Some(r) = probes.join_next().await {
            if let Ok((port, true)) = r {
                open.insert(port);
            }
        }
        open
    };
    let open = match shutdown.race(collect).await {
        Ok(open) => open,
        Err(stop) => return Ok(interrupted(stop)),
    };
    let shown = host
        .trim_start_matches("tcp://")
        .trim_start_matches("udp://");
    for port in &open {
        tracing::info!("{shown} {port} ({proto}) open");
    }
    Ok(if open.is_empty() { 1 } else { 0 })
}
