//! `sockit listen`: the tutorial's server, and `nc -l` done right.

use crate::shutdown::Shutdown;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::{
    announce_listening, parse_millis, parse_secs, AclArgs, NetArgs, RelayArgs, SockArgs,
    TlsServerArgs,
};
use crate::endpoint::{Endpoint, UnixKind};
use crate::error::{Error, Result};
use crate::relay::RelayOpts;
use crate::serve::dgram::{self, DgramOpts, DgramService};
use crate::serve::{bind, Acl, Bound, ExecSpec, Gate, Server, ServerLimits, Service};
use crate::sock::{fmt_sockaddr, PacketSock, SockOpts};

/// Examples shown under `sockit listen --help`.
pub const HELP: &str = "\
Examples:
  sockit listen :8000                        one client: its bytes to stdout, stdin to it
  sockit listen 8000                         the same (nc -l 8000; nc -l -p 8000 works too)
  sockit listen -k :8000                     many clients at once; stdin goes to all of them
  sockit listen --greet :8000                the tutorial's server: 'bob' -> 'hello bob'
  sockit listen --echo -u :7                 RFC 862 echo over UDP
  sockit listen --broker :9000               every client's bytes go to every other client
  sockit listen -e 'cat -n' 127.0.0.1:9000   a child process per client (no shell)
  sockit listen --sh-exec 'date; uptime' :79
                                             the same, through /bin/sh -c
  sockit listen --tls-self-signed --echo :8443
                                             TLS; prints the certificate's SHA-256 to pin
  sockit listen -k --allow 10.0.0.0/8 --deny 10.0.0.9 :8000
                                             only that network, without that host
  sockit listen -6 :8000                     IPv6 only (IPV6_V6ONLY); neither -4 nor -6: both
  sockit listen unix:/tmp/app.sock           stale socket files are replaced, removed on exit
  sockit listen 127.0.0.1:0                  port 0: the kernel picks, and it is printed

Exit status: see 'sockit --help'.";

/// Flags for `sockit listen`.
#[derive(Debug, ClapArgs)]
// -x is the hex dump here, as ncat's; the clients use -x for --proxy (curl, OpenBSD nc).
#[command(mut_arg("hex_dump", |a| a.short('x')))]
pub struct Args {
    /// Where to listen: :PORT, HOST:PORT, [::]:PORT, udp://:PORT, unix:/PATH,
    /// unix-dgram:/PATH, unix-seqpacket:/PATH, unix:@ABSTRACT. A bare PORT
    /// means :PORT (as nc -l PORT); HOST PORT apart works too.
    pub endpoint: Option<String>,
    /// The port, given apart from the host (nc -l HOST PORT).
    pub port: Option<String>,
    /// The port to listen on (nc -l -p PORT).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    port_flag: Option<u16>,
    /// Accepted for nc's sake and ignored: listening is what this command does.
    #[arg(short = 'l', hide = true)]
    _listen: bool,
    #[command(flatten)]
    net: NetArgs,
    /// Serve clients concurrently and keep listening after they leave.
    #[arg(short = 'k', long)]
    keep_open: bool,
    /// Most clients at once; more are accepted and closed at once.
    #[arg(short = 'm', long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_conns: u32,
    /// Pending-connection queue length (listen backlog).
    #[arg(long, value_name = "N", default_value_t = 128)]
    backlog: u32,
    #[command(flatten)]
    access: AclArgs,

    /// Answer each message with 'hello <message>' (implies -k).
    #[arg(long, help_heading = "Services", group = "service")]
    greet: bool,
    /// Echo everything back, RFC 862 (implies -k).
    #[arg(long, help_heading = "Services", group = "service")]
    echo: bool,
    /// Relay every client's bytes to every other client (implies -k).
    #[arg(long, help_heading = "Services", group = "service")]
    broker: bool,
    /// Serve each client with this program (split like a shell, run without one).
    #[arg(
        short = 'e',
        long,
        value_name = "CMD",
        help_heading = "Services",
        group = "service"
    )]
    exec: Option<String>,
    /// Serve each client with /bin/sh -c CMD.
    #[arg(
        short = 'c',
        long,
        value_name = "CMD",
        help_heading = "Services",
        group = "service"
    )]
    sh_exec: Option<String>,

    /// Greeting: a partial line idle this long counts as a message.
    #[arg(long, value_name = "MS", default_value = "250", value_parser = parse_millis, help_heading = "Limits")]
    flush_partial: Duration,
    /// Greeting: longest message; longer lines are answered in pieces of this size.
    #[arg(long, value_name = "BYTES", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    max_line: u32,
    /// -k and --broker: bytes queued for one client before it is dropped as too
    /// slow (on message sockets each queued message counts 16 bytes more).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    max_queue: u32,
    /// UDP --broker: most peers at once, so one datagram (whose source may be
    /// forged) becomes at most N-1 sends.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..), help_heading = "Limits")]
    udp_broker_peers: u32,
    /// UDP with -k: stdin goes to every peer heard from within SECS.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs, help_heading = "Limits")]
    udp_peer_ttl: Duration,
    /// -e/--sh-exec: once a client's input ends or it leaves, its child's stdin
    /// is closed; still running SECS later, it gets SIGTERM, SECS after that SIGKILL.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs, help_heading = "Limits")]
    exec_grace: Duration,
    /// TLS handshake time limit.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, help_heading = "Limits")]
    handshake_timeout: Duration,

    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    sock: SockArgs,
    #[command(flatten)]
    tls: TlsServerArgs,
}

impl Args {
    /// The endpoint text from nc's spellings: `PORT`, `HOST PORT`, `-p PORT`
    /// with or without a HOST, or the endpoint itself.
    fn endpoint_text(&self) -> Result<String> {
        let bare = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let host_port = |host: &str, port: &str| {
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        };
        Ok(match (&self.endpoint, &self.port, self.port_flag) {
            (Some(_), Some(_), Some(_)) => {
                return Err(Error::Usage(
                    "the port is given twice (as an argument and with -p)".into(),
                ))
            }
            (Some(host), Some(port), None) => host_port(host, port),
            (Some(ep), None, None) if bare(ep) => format!(":{ep}"),
            (Some(ep), None, None) => ep.clone(),
            (Some(host), None, Some(port)) if !host.contains(':') => {
                host_port(host, &port.to_string())
            }
            (Some(ep), None, Some(_)) => {
                return Err(Error::Usage(format!(
                    "the port is given twice ('{ep}' and -p; did you mean sockit listen {ep}?)"
                )))
            }
            (None, _, Some(port)) => format!(":{port}"),
            (None, _, None) => {
                return Err(Error::Usage(
                    "where to listen is missing (e.g. sockit listen :8000, or sockit listen 8000)"
                        .into(),
                ))
            }
        })
    }

    fn service(&self) -> Result<Service> {
        Ok(if self.greet {
            Service::Greet
        } else if self.echo {
            Service::Echo
        } else if self.broker {
            Service::Broker
        } else if let Some(cmd) = &self.exec {
            self.exec_spec(ExecSpec::direct(cmd)?)?
        } else if let Some(cmd) = &self.sh_exec {
            self.exec_spec(ExecSpec::shell(cmd))?
        } else {
            Service::Stdio
        })
    }

    fn exec_spec(&self, spec: ExecSpec) -> Result<Service> {
        spec.check()?;
        Ok(Service::Exec(ExecSpec {
            grace: self.exec_grace,
            ..spec
        }))
    }
}

/// Runs `sockit listen`.
pub async fn run(args: Args) -> Result<()> {
    let shutdown = Shutdown::on_signals();
    let ep = Endpoint::parse(&args.endpoint_text()?, args.net.udp)?;
    let service = args.service()?;
    let keep_open = args.keep_open || !matches!(service, Service::Stdio);
    let acl = args.access.acl(&ep)?;
    let identity = args.tls.identity();
    check_endpoint(&ep, &service, identity.is_some())?;
    // As in `connect`: a client's half-close does not cut short what we send.
    let wait_for_stdin = !crate::relay::splice::stdin_is_terminal();
    let relay = args.relay.options(Duration::MAX, wait_for_stdin)?;

    // Bind first: the listening socket exists before any slow setup, and a
    // Unix path guard lives until this function returns.
    let sock_opts = SockOpts {
        v6only: args.net.ipv6,
        ..args.sock.opts()
    };
    let (bound, _guard) = bind(&ep, args.net.family(), args.backlog, &sock_opts).await?;
    let listener = match bound {
        Bound::Stream(l) => l,
        Bound::Datagram(s) => {
            let opts = args.dgram_opts(service, keep_open, relay, acl);
            return serve_dgram(&ep, s, opts, shutdown).await;
        }
    };
    let tls = args.tls.server()?;
    announce_listening(&ep, &format!("{} ({})", listener.local_addr(), ep.proto()));
    let server = Server {
        listener,
        service,
        gate: Gate {
            tls,
            acl,
            handshake_timeout: args.handshake_timeout,
        },
        limits: args.limits(),
        keep_open,
        relay,
    };
    server.run(shutdown).await
}

/// Refuses combinations the endpoint cannot serve.
fn check_endpoint(ep: &Endpoint, service: &Service, tls: bool) -> Result<()> {
    let connected = ep.is_stream()
        || matches!(
            ep,
            Endpoint::Unix {
                kind: UnixKind::SeqPacket,
                ..
            }
        );
    if tls && !ep.is_stream() {
        return Err(Error::Usage(format!(
            "TLS needs a stream endpoint (TCP or unix:), not {}",
            ep.proto()
        )));
    }
    if !connected && matches!(service, Service::Exec(_)) {
        return Err(Error::Usage(format!(
            "--exec needs a connection-oriented endpoint, not {}",
            ep.proto()
        )));
    }
    Ok(())
}

impl Args {
    fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_conns: self.max_conns as usize,
            max_line: self.max_line as usize,
            flush_partial: self.flush_partial,
            max_queue: self.max_queue as usize,
            ..ServerLimits::default()
        }
    }

    fn dgram_opts(
        &self,
        service: Service,
        keep_open: bool,
        relay: RelayOpts,
        acl: Acl,
    ) -> DgramOpts {
        let service = match service {
            Service::Stdio => DgramService::Stdio,
            Service::Greet => DgramService::Greet,
            Service::Echo => DgramService::Echo,
            Service::Broker => DgramService::Broker,
            Service::Exec(_) => unreachable!("rejected before binding"),
        };
        DgramOpts {
            service,
            keep_open,
            peer_ttl: self.udp_peer_ttl,
            max_peers: match service {
                DgramService::Broker => self.udp_broker_peers.min(self.max_conns) as usize,
                _ => self.max_conns as usize,
            },
            acl,
            relay,
        }
    }
}

async fn serve_dgram(
    ep: &Endpoint,
    sock: PacketSock,
    opts: DgramOpts,
    shutdown: Shutdown,
) -> Result<()> {
    let local = sock
        .local_addr()
        .map(|a| fmt_sockaddr(&a))
        .unwrap_or_default();
    announce_listening(ep, &format!("{local} (datagrams)"));
    dgram::serve(sock, opts, shutdown).await
}
