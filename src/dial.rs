//! Turning an [`Endpoint`] into a connected [`Conn`]: resolve, try each address in
//! order, then TLS if asked, all within one deadline (`-w`). `connect` and
//! `chat join` use it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::conn::{BoxStream, Conn, Link};
use crate::endpoint::{resolve, Endpoint, Family, Host, Transport, UnixKind, UnixName};
use crate::error::{Error, Result};
use crate::sock::{self, fmt_ip, fmt_sockaddr, PacketSock, SockOpts};
use crate::tls;

/// Everything needed to reach a peer.
#[derive(Debug, Clone)]
pub struct DialOpts {
    /// `-4` / `-6`.
    pub family: Family,
    /// The whole connect's time limit (`-w`): name resolution, every address
    /// tried, and the TLS handshake, together.
    pub wait: Duration,
    /// Socket options.
    pub sock: SockOpts,
    /// TLS client settings, when `--tls` is given.
    pub tls: Option<tls::ClientOptions>,
}

/// Connects to `ep` within `opts.wait`. Under `-v` says which address answered.
/// Race it against a [`Shutdown`](crate::shutdown::Shutdown) to make it
/// interruptible; dropping the future abandons the attempt.
pub async fn dial(ep: &Endpoint, opts: &DialOpts) -> Result<Conn> {
    dial_until(ep, opts, Instant::now() + opts.wait).await
}

/// Like [`dial`], with an explicit deadline for resolve, connect and handshake.
pub async fn dial_until(ep: &Endpoint, opts: &DialOpts, deadline: Instant) -> Result<Conn> {
    let limit = opts.wait;
    let connected = timeout_at(deadline, connect(ep, opts, deadline)).await;
    let conn = connected.map_err(|_| Error::Timeout {
        what: format!("cannot connect to {ep}"),
        after: limit,
    })??;
    let Some(tls_opts) = &opts.tls else {
        return Ok(conn);
    };
    let client = tls::TlsClient::new(tls_opts, &tls_name(ep))?;
    let what = format!("TLS handshake with {ep}");
    let handshake = async {
        let stream: BoxStream = match conn.link {
            Link::Tcp(s) => Box::new(client.connect(s).await?),
            Link::Unix(s) => Box::new(client.connect(s).await?),
            _ => {
                return Err(Error::Usage(
                    "--tls needs a stream endpoint (TCP or unix:)".into(),
                ))
            }
        };
        Ok(Conn {
            link: Link::Stream(stream),
            proto: format!("{}+tls", conn.proto),
            ..conn
        })
    };
    timeout_at(deadline, handshake)
        .await
        .map_err(|_| Error::Timeout { what, after: limit })?
}

/// The name TLS verifies by default: the endpoint's host.
fn tls_name(ep: &Endpoint) -> String {
    match ep {
        Endpoint::Ip {
            host: Host::Name(n),
            ..
        } => n.clone(),
        Endpoint::Ip {
            host: Host::Ip(ip), ..
        } => ip.to_string(),
        _ => "localhost".to_string(),
    }
}

/// The plain connection, before any TLS.
async fn connect(ep: &Endpoint, opts: &DialOpts, deadline: Instant) -> Result<Conn> {
    match ep {
        Endpoint::Ip {
            transport: Transport::Tcp,
            host,
            port,
        } => {
            let addrs = resolve(host, *port, opts.family).await?;
            let stream = connect_any(host, &addrs, opts, deadline).await?;
            let local = stream.local_addr().map(fmt_ip).unwrap_or_default();
            let peer = stream.peer_addr().map(fmt_ip).unwrap_or_default();
            Ok(Conn {
                link: Link::Tcp(stream),
                local,
                peer,
                proto: "tcp".into(),
            })
        }
        Endpoint::Ip {
            transport: Transport::Udp,
            host,
            port,
        } => {
            let addrs = resolve(host, *port, opts.family).await?;
            // UDP "connect" only sets the default peer; the first address is it.
            let sock = sock::connect_udp(addrs[0], &opts.sock)?;
            Ok(packet_conn(sock, false, "udp"))
        }
        Endpoint::Unix { kind, name } => {
            // connect(2) on a Unix socket blocks while the listener's backlog
            // is full (non-blocking it fails with EAGAIN and nothing says when
            // to retry): let it block on a thread of its own, so the deadline
            // and a shutdown can still end the wait.
            let (k, n) = (*kind, name.clone());
            let s = tokio::task::spawn_blocking(move || sock::connect_unix(k, &n))
                .await
                .map_err(|e| Error::io("connect thread failed", std::io::Error::other(e)))??;
            Ok(match kind {
                UnixKind::Stream => unix_stream_conn(s, name)?,
                UnixKind::Datagram => packet_conn(PacketSock::new(s)?, false, "unix-dgram"),
                UnixKind::SeqPacket => packet_conn(PacketSock::new(s)?, true, "unix-seqpacket"),
            })
        }
    }
}

/// Tries each address in order until one answers, each with the time left.
async fn connect_any(
    host: &Host,
    addrs: &[SocketAddr],
    opts: &DialOpts,
    deadline: Instant,
) -> Result<TcpStream> {
    let mut last_err = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        match sock::connect_tcp(*addr, &opts.sock, left).await {
            Ok(s) => {
                if addrs.len() > 1 {
                    tracing::info!(
                        "{host} resolved to {} addresses; {addr} answered",
                        addrs.len()
                    );
                }
                return Ok(s);
            }
            Err(e) => {
                // Say the limit the user set, not what was left of it.
                let e = match e {
                    Error::Timeout { what, .. } => Error::Timeout {
                        what,
                        after: opts.wait,
                    },
                    e => e,
                };
                if addrs.len() > 1 {
                    tracing::info!("{e}; trying the next address");
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.expect("resolve returns at least one address"))
}

fn unix_stream_conn(s: socket2::Socket, name: &UnixName) -> Result<Conn> {
    let std: std::os::unix::net::UnixStream = s.into();
    std.set_nonblocking(true)
        .map_err(|e| Error::io("cannot configure the socket", e))?;
    let stream = tokio::net::UnixStream::from_std(std)
        .map_err(|e| Error::io("cannot register the socket", e))?;
    Ok(Conn {
        link: Link::Unix(stream),
        local: "(unnamed)".into(),
        peer: name.to_string(),
        proto: "unix".into(),
    })
}

fn packet_conn(sock: PacketSock, eof_on_empty: bool, proto: &str) -> Conn {
    let local = sock
        .local_addr()
        .map(|a| fmt_sockaddr(&a))
        .unwrap_or_default();
    let peer = sock
        .peer_addr()
        .map(|a| fmt_sockaddr(&a))
        .unwrap_or_default();
    Conn {
        link: Link::Packet { sock, eof_on_empty },
        local,
        peer,
        proto: proto.into(),
    }
}
