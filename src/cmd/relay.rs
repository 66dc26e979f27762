//! `sockit relay A B`: a port forward (socat's `A B`): listen on A, and for
//! each client dial B and relay both ways.

use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::{
    announce_listening, parse_secs, AclArgs, NetArgs, SockArgs, TlsClientArgs, TlsServerArgs,
};
use crate::dial::DialOpts;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::forward::Forward;
use crate::serve::{bind, Bound, Gate};
use crate::shutdown::Shutdown;
use crate::sock::SockOpts;

/// Examples shown under `sockit relay --help`.
pub const HELP: &str = "\
Examples:
  sockit relay -k :8080 127.0.0.1:80             forward port 8080 to a local web server
  sockit relay unix:/tmp/a.sock tcp://db:5432    one client of a Unix socket, to TCP
  sockit relay -k --allow 10.0.0.0/8 :2222 host:22
                                                 ssh through this host, for that network only
  sockit relay -k --tls-self-signed :8443 127.0.0.1:8080
                                                 TLS in front of a plain service
  sockit relay -k :8080 --tls example.com:443    plain in, TLS out

A (where clients come) is TCP, unix: or unix-seqpacket:; B (where they go) is
any endpoint connect takes. Between two plain stream sockets (TCP, unix:) the
bytes never enter user space (splice). A side's end of input is passed on as
a half-close. When B cannot be reached the client is closed and the error
logged (without -k it is the command's error).

Exit status: see 'sockit --help'.";

/// Flags for `sockit relay`.
#[derive(Debug, ClapArgs)]
// -k is --keep-open here, as for `listen` (ncat -l -k): the TLS client to B
// takes --insecure without the short form it has on the clients.
#[command(mut_arg("insecure", |a| a.short(None)))]
pub struct Args {
    /// Where to accept clients: :PORT, HOST:PORT, unix:/PATH, unix-seqpacket:/PATH,
    /// unix:@ABSTRACT (a bare PORT means :PORT).
    pub a: String,
    /// Where to take each client: any endpoint `connect` takes.
    pub b: String,
    #[command(flatten)]
    net: NetArgs,
    /// Serve clients concurrently and keep accepting (socat's fork); else one client.
    #[arg(short = 'k', long = "keep-open", visible_alias = "fork")]
    keep_open: bool,
    /// Most clients at once; more are accepted and closed at once.
    #[arg(short = 'm', long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: u32,
    /// Pending-connection queue length (listen backlog).
    #[arg(long, value_name = "N", default_value_t = 128)]
    backlog: u32,
    #[command(flatten)]
    access: AclArgs,
    /// Time limit for reaching B, in seconds: resolve, connect, TLS handshake
    /// (a UDP or unix-dgram B: how long it may still answer after A is done).
    #[arg(short = 'w', long = "wait", value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    wait: Duration,
    /// TLS handshake time limit on the A side.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    handshake_timeout: Duration,
    #[command(flatten)]
    sock: SockArgs,
    /// TLS server on A.
    #[command(flatten)]
    tls_a: TlsServerArgs,
    /// TLS client to B.
    #[command(flatten)]
    tls_b: TlsClientArgs,
}

/// Runs `sockit relay`.
pub async fn run(args: Args) -> Result<()> {
    let shutdown = Shutdown::on_signals();
    let a_text = if !args.a.is_empty() && args.a.bytes().all(|b| b.is_ascii_digit()) {
        format!(":{}", args.a)
    } else {
        args.a.clone()
    };
    let a = Endpoint::parse(&a_text, false)?;
    let b = Endpoint::parse(&args.b, args.net.udp)?;
    if args.tls_b.tls && !b.is_stream() {
        return Err(Error::Usage(format!(
            "--tls needs a stream endpoint B (TCP or unix:), not {}",
            b.proto()
        )));
    }
    let acl = args.access.acl(&a)?;
    let identity = args.tls_a.identity();
    if identity.is_some() && !a.is_stream() {
        return Err(Error::Usage(format!(
            "TLS needs a stream endpoint A (TCP or unix:), not {}",
            a.proto()
        )));
    }
    let sock_opts = SockOpts {
        v6only: args.net.ipv6,
        ..args.sock.opts()
    };
    let (bound, _guard) = bind(&a, args.net.family(), args.backlog, &sock_opts).await?;
    let listener = match bound {
        Bound::Stream(l) => l,
        Bound::Datagram(_) => {
            return Err(Error::Usage(format!(
                "endpoint A must accept connections (TCP, unix:, unix-seqpacket:), not {}",
                a.proto()
            )))
        }
    };
    let tls = args.tls_a.server()?;
    let where_ = format!("{} ({}) -> {b}", listener.local_addr(), a.proto());
    announce_listening(&a, &where_);
    let forward = Forward {
        target: b,
        dial: DialOpts {
            family: args.net.family(),
            wait: args.wait,
            sock: args.sock.opts(),
            tls: args.tls_b.options(),
            proxy: None,
        },
        gate: Gate {
            tls,
            acl,
            handshake_timeout: args.handshake_timeout,
        },
        keep_open: args.keep_open,
        max_conns: args.max_conns as usize,
    };
    forward.run(listener, &shutdown).await
}
