//! `sockit connect`: the tutorial's client, and `nc HOST PORT` done right.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::{parse_secs, NetArgs, RelayArgs, SockArgs, TlsClientArgs};
use crate::dial::{dial, DialOpts};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::relay;
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
  sockit connect --tls --pin-sha256 AB:CD:.. localhost:8443
  sockit connect -x - example.com:80            hex dump both directions to stderr
  sockit connect -s 127.0.0.2:0 127.0.0.1:80    bind a source address first

-w bounds the whole connect: name resolution, every address tried and the TLS
handshake. Ctrl-C or SIGTERM ends it at any stage, with the shell's status for
the signal (130, 143).

Exit status: see 'sockit --help'.";

/// Flags for `sockit connect`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to connect: HOST:PORT, udp://HOST:PORT, unix:/PATH, unix-dgram:/PATH,
    /// unix-seqpacket:/PATH, unix:@ABSTRACT.
    pub endpoint: String,
    #[command(flatten)]
    net: NetArgs,
    /// Time limit for the whole connect, in seconds: resolve, every address, TLS
    /// handshake (datagram sockets: also how long to wait for replies after stdin ends).
    #[arg(short = 'w', long = "wait", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    wait: Duration,
    /// Connect, then close without sending: exit status says whether the port is open.
    #[arg(short = 'z', long = "zero-io")]
    zero: bool,
    /// Bind this local address before connecting (port 0 = any).
    #[arg(short = 's', long = "source", value_name = "ADDR")]
    source: Option<String>,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    sock: SockArgs,
    #[command(flatten)]
    tls: TlsClientArgs,
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

/// Runs `sockit connect`; `Ok` carries the exit status (128 + the signal's
/// number when Ctrl-C or SIGTERM ended it).
pub async fn run(args: Args) -> Result<u8> {
    let shutdown = Shutdown::on_signals();
    let ep = Endpoint::parse(&args.endpoint, args.net.udp)?;
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
    // Like nc: a server's half-close does not truncate what we send.
    let wait_for_stdin = !crate::relay::splice::stdin_is_terminal();
    let ropts = args.relay.options(args.wait, wait_for_stdin)?;
    let stats = match shutdown.race(relay::run(conn, &ropts)).await {
        Ok(stats) => stats?,
        Err(stop) => return Ok(interrupted(stop)),
    };
    tracing::info!(
        "closed: {} bytes sent, {} bytes received",
        stats.sent,
        stats.received
    );
    Ok(0)
}

fn interrupted(stop: Interrupted) -> u8 {
    tracing::info!("interrupted");
    stop.exit_code()
}
