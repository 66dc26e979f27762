//! Turning an [`Endpoint`] into a connected [`Conn`]: resolve (or take
//! `--resolve` overrides), try each address in order, then TLS if asked (with
//! ALPN when the client offers it), all within one deadline. The one connector:
//! `connect` and `chat join` use [`dial`] (`-w`), the HTTP client
//! [`dial_route`] (`--connect-timeout`). With a proxy (`-x`) the TCP connect
//! goes to the proxy, then [`crate::proxy`] asks it for a tunnel to the
//! endpoint, and TLS (if any) runs inside the tunnel (inside the TLS session
//! with the proxy for an `https://` proxy).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::conn::{BoxStream, Conn, Link};
use crate::endpoint::{resolve, Endpoint, Family, Host, Transport, UnixKind, UnixName};
use crate::error::{Error, Result};
use crate::proxy::{Proxy, Target};
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
    /// Reach TCP endpoints through this proxy (`-x`).
    pub proxy: Option<Proxy>,
}

/// Connects to `ep` within `opts.wait`. Under `-v` says which address answered.
/// Race it against a [`Shutdown`](crate::shutdown::Shutdown) to make it
/// interruptible; dropping the future abandons the attempt.
pub async fn dial(ep: &Endpoint, opts: &DialOpts) -> Result<Conn> {
    dial_until(ep, opts, Instant::now() + opts.wait).await
}

/// Like [`dial`], with an explicit deadline for resolve, connect and handshake.
pub async fn dial_until(ep: &Endpoint, opts: &DialOpts, deadline: Instant) -> Result<Conn> {
    let client = match &opts.tls {
        Some(tls_opts) => Some(tls::TlsClient::new(tls_opts, &tls_name(ep))?),
        None => None,
    };
    let note = |step: Step<'_>| trace_step(ep, step);
    let route = Route {
        tls: client.as_ref(),
        note: &note,
        ..Route::default()
    };
    Ok(dial_route(ep, opts, &route, deadline).await?.conn)
}

/// `--resolve HOST:PORT:ADDR[,ADDR...]`: connect to these addresses for that
/// host and port instead of asking the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveEntry {
    /// Host name as written (compared case-insensitively).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Addresses to try, in order.
    pub addrs: Vec<IpAddr>,
}

/// What happens during a dial, for callers that report it their own way
/// (`http -v` prints curl's lines). The default reports through `tracing`.
#[derive(Debug)]
pub enum Step<'a> {
    /// About to connect to this address (or socket path).
    Trying(&'a str),
    /// Connected; `addr` is the address for TCP, `of` how many there were.
    Connected {
        /// The peer as text.
        peer: &'a str,
        /// The peer's address for TCP.
        addr: Option<SocketAddr>,
        /// How many addresses the name had.
        of: usize,
    },
    /// An address failed; `more` when another one is tried next.
    Failed {
        /// Why.
        error: &'a Error,
        /// Another address follows.
        more: bool,
    },
    /// The proxy opened a tunnel to the target.
    Tunnel {
        /// The proxy, as `socks5h://HOST:PORT`.
        proxy: &'a Proxy,
        /// The target as the proxy was asked for it (a name or an address).
        target: &'a str,
    },
    /// The TLS handshake is done.
    Tls(&'a rustls::ClientConnection),
}

/// The parts of a dial only some callers set, on top of [`DialOpts`].
#[derive(Clone, Copy)]
pub struct Route<'a> {
    /// Fixed addresses for some host and port (`--resolve`).
    pub overrides: &'a [ResolveEntry],
    /// The TLS client to run the handshake with; `None`: plain. A caller that
    /// keeps its clients keeps their session caches (resumption).
    pub tls: Option<&'a tls::TlsClient>,
    /// Bytes of read buffer between the socket and TLS (0: none): rustls reads
    /// records in small pieces, so a buffer saves system calls on big transfers.
    pub tls_read_buffer: usize,
    /// Told each step.
    pub note: &'a (dyn Fn(Step<'_>) + Sync),
}

impl Default for Route<'_> {
    fn default() -> Self {
        Route {
            overrides: &[],
            tls: None,
            tls_read_buffer: 0,
            note: &|_| {},
        }
    }
}

/// What `-v` of `connect` and `chat join` shows of a dial.
fn trace_step(ep: &Endpoint, step: Step<'_>) {
    match step {
        Step::Connected {
            addr: Some(addr),
            of,
            ..
        } if of > 1 => {
            if let Endpoint::Ip { host, .. } = ep {
                tracing::info!("{host} resolved to {of} addresses; {addr} answered");
            }
        }
        Step::Failed { error, more: true } => tracing::info!("{error}; trying the next address"),
        Step::Tunnel { proxy, target } => tracing::info!("tunnel to {target} through {proxy}"),
        _ => {}
    }
}

/// A connection and when its plain connect (before TLS) ended.
pub struct Dialed {
    /// The connection (TLS inside when the route has a client).
    pub conn: Conn,
    /// When the TCP or Unix connect finished.
    pub connected: Instant,
}

/// The one connector: resolve (or take `route.overrides`), try each address in
/// order, then the TLS handshake when `route.tls` is set, all before `deadline`.
/// Errors keep their class: resolve, connect, timeout, TLS.
pub async fn dial_route(
    ep: &Endpoint,
    opts: &DialOpts,
    route: &Route<'_>,
    deadline: Instant,
) -> Result<Dialed> {
    let limit = opts.wait;
    let connected = timeout_at(deadline, connect(ep, opts, route, deadline)).await;
    let conn = connected.map_err(|_| Error::Timeout {
        what: format!("cannot connect to {ep}"),
        after: limit,
    })??;
    let connected = Instant::now();
    let Some(client) = route.tls else {
        return Ok(Dialed { conn, connected });
    };
    let what = format!("TLS handshake with {ep}");
    let conn = timeout_at(deadline, handshake(conn, client, route))
        .await
        .map_err(|_| Error::Timeout { what, after: limit })??;
    Ok(Dialed { conn, connected })
}

/// TLS over a plain stream connection.
async fn handshake(conn: Conn, client: &tls::TlsClient, route: &Route<'_>) -> Result<Conn> {
    let buffer = route.tls_read_buffer;
    let stream = match conn.link {
        Link::Tcp(s) if buffer > 0 => {
            secure(client, BufReader::with_capacity(buffer, s), route).await?
        }
        Link::Tcp(s) => secure(client, s, route).await?,
        Link::Unix(s) if buffer > 0 => {
            secure(client, BufReader::with_capacity(buffer, s), route).await?
        }
        Link::Unix(s) => secure(client, s, route).await?,
        // A tunnel inside TLS to an https:// proxy: TLS inside TLS.
        Link::Stream(s) => secure(client, s, route).await?,
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
}

async fn secure<S>(client: &tls::TlsClient, io: S, route: &Route<'_>) -> Result<BoxStream>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tls = client.connect(io).await?;
    (route.note)(Step::Tls(tls.get_ref().1));
    Ok(Box::new(tls))
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
async fn connect(
    ep: &Endpoint,
    opts: &DialOpts,
    route: &Route<'_>,
    deadline: Instant,
) -> Result<Conn> {
    match ep {
        Endpoint::Ip {
            transport: Transport::Tcp,
            host,
            port,
        } => {
            if let Some(proxy) = &opts.proxy {
                return through_proxy(proxy, host, *port, opts, route, deadline).await;
            }
            let addrs = match overridden(route.overrides, host, *port) {
                Some(addrs) => addrs,
                None => resolve(host, *port, opts.family).await?,
            };
            let stream = connect_any(&addrs, opts, route, deadline).await?;
            let local = stream.local_addr().map(fmt_ip).unwrap_or_default();
            let peer = stream.peer_addr().map(fmt_ip).unwrap_or_default();
            Ok(Conn {
                link: Link::Tcp(stream),
                local,
                peer,
                proto: "tcp".into(),
                peer_cert: None,
            })
        }
        _ if opts.proxy.is_some() => Err(Error::Usage(format!(
            "a proxy carries TCP connections only, not {}",
            ep.proto()
        ))),
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
            let peer = name.to_string();
            (route.note)(Step::Trying(&peer));
            let (k, n) = (*kind, name.clone());
            let s = tokio::task::spawn_blocking(move || sock::connect_unix(k, &n))
                .await
                .map_err(|e| Error::io("connect thread failed", std::io::Error::other(e)))??;
            (route.note)(Step::Connected {
                peer: &peer,
                addr: None,
                of: 1,
            });
            Ok(match kind {
                UnixKind::Stream => unix_stream_conn(s, name)?,
                UnixKind::Datagram => packet_conn(PacketSock::new(s)?, false, "unix-dgram"),
                UnixKind::SeqPacket => packet_conn(PacketSock::new(s)?, true, "unix-seqpacket"),
            })
        }
    }
}

/// A TCP connection to `host:port` through `proxy`: connect to the proxy
/// (its name resolved here, `--resolve` applies), then its handshake. The
/// target's name goes to the proxy for `socks5h`, `socks4a` and `http`;
/// for `socks5` and `socks4` it is resolved here first.
async fn through_proxy(
    proxy: &Proxy,
    host: &Host,
    port: u16,
    opts: &DialOpts,
    route: &Route<'_>,
    deadline: Instant,
) -> Result<Conn> {
    let addrs = match overridden(route.overrides, &proxy.host, proxy.port) {
        Some(addrs) => addrs,
        None => resolve(&proxy.host, proxy.port, opts.family)
            .await
            .map_err(|e| proxy.unresolved(e))?,
    };
    let stream = connect_any(&addrs, opts, route, deadline)
        .await
        .map_err(|e| match e {
            Error::Io { source, .. } => {
                Error::io(format!("cannot connect to proxy {proxy}"), source)
            }
            Error::Timeout { after, .. } => Error::Timeout {
                what: format!("cannot connect to proxy {proxy}"),
                after,
            },
            e => e,
        })?;
    let local = stream.local_addr().map(fmt_ip).unwrap_or_default();
    let name;
    let target = match host {
        Host::Name(n) if proxy.resolves_names() => {
            name = n.clone();
            Target::Name(&name, port)
        }
        _ => {
            // SOCKS4 has no IPv6: ask the resolver for IPv4 then.
            let family = match proxy.scheme {
                crate::proxy::Scheme::Socks4 | crate::proxy::Scheme::Socks4a => Family::V4,
                _ => opts.family,
            };
            let addrs = match overridden(route.overrides, host, port) {
                Some(addrs) => addrs,
                None => resolve(host, port, family).await?,
            };
            Target::Addr(addrs[0])
        }
    };
    let shown = target.to_string();
    let link = proxy.handshake(stream, target).await?;
    (route.note)(Step::Tunnel {
        proxy,
        target: &shown,
    });
    Ok(Conn {
        link,
        local,
        peer: format!("{host}:{port} via {proxy}"),
        proto: "tcp".into(),
        peer_cert: None,
    })
}

/// The `--resolve` addresses for `host` and `port`, if an entry names them.
fn overridden(overrides: &[ResolveEntry], host: &Host, port: u16) -> Option<Vec<SocketAddr>> {
    let name = match host {
        Host::Name(n) => n.to_ascii_lowercase(),
        Host::Ip(ip) => ip.to_string(),
        Host::Any => return None,
    };
    let entry = overrides
        .iter()
        .find(|e| e.port == port && e.host.eq_ignore_ascii_case(&name))?;
    Some(
        entry
            .addrs
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect(),
    )
}

/// Tries each address in order until one answers, each with the time left.
async fn connect_any(
    addrs: &[SocketAddr],
    opts: &DialOpts,
    route: &Route<'_>,
    deadline: Instant,
) -> Result<TcpStream> {
    let mut last_err = None;
    for (i, addr) in addrs.iter().enumerate() {
        let peer = fmt_ip(*addr);
        (route.note)(Step::Trying(&peer));
        let left = deadline.saturating_duration_since(Instant::now());
        match sock::connect_tcp(*addr, &opts.sock, left).await {
            Ok(s) => {
                (route.note)(Step::Connected {
                    peer: &peer,
                    addr: Some(*addr),
                    of: addrs.len(),
                });
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
                (route.note)(Step::Failed {
                    error: &e,
                    more: i + 1 < addrs.len(),
                });
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Usage("no address to connect to".into())))
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
        peer_cert: None,
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
        peer_cert: None,
    }
}
