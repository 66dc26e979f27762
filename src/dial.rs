//! Turning an [`Endpoint`] into a connected [`Conn`]: resolve, try each address in
//! order, then TLS if asked. `connect` uses it today; `chat join` and `http` reuse it.

use std::time::Duration;

use crate::conn::{Conn, Link};
use crate::endpoint::{resolve, Endpoint, Family, Host, Transport, UnixKind};
use crate::error::{Error, Result};
use crate::sock::{self, fmt_ip, fmt_sockaddr, PacketSock, SockOpts};
use crate::tls;

/// Everything needed to reach a peer.
#[derive(Debug, Clone)]
pub struct DialOpts {
    /// `-4` / `-6`.
    pub family: Family,
    /// Per-address connect timeout (`-w`).
    pub wait: Duration,
    /// Socket options.
    pub sock: SockOpts,
    /// TLS client settings, when `--tls` is given.
    pub tls: Option<tls::ClientOptions>,
}

/// Connects to `ep`. Under `-v` says which address answered.
pub async fn dial(ep: &Endpoint, opts: &DialOpts) -> Result<Conn> {
    let conn = match ep {
        Endpoint::Ip {
            transport: Transport::Tcp,
            host,
            port,
        } => {
            let addrs = resolve(host, *port, opts.family).await?;
            let mut last_err = None;
            let mut stream = None;
            for addr in &addrs {
                match sock::connect_tcp(*addr, &opts.sock, opts.wait).await {
                    Ok(s) => {
                        if addrs.len() > 1 {
                            tracing::info!(
                                "{host} resolved to {} addresses; {addr} answered",
                                addrs.len()
                            );
                        }
                        stream = Some(s);
                        break;
                    }
                    Err(e) => {
                        if addrs.len() > 1 {
                            tracing::info!("{e}; trying the next address");
                        }
                        last_err = Some(e);
                    }
                }
            }
            let stream = match stream {
                Some(s) => s,
                None => return Err(last_err.expect("at least one address was tried")),
            };
            let local = stream.local_addr().map(fmt_ip).unwrap_or_default();
            let peer = stream.peer_addr().map(fmt_ip).unwrap_or_default();
            Conn {
                link: Link::Tcp(stream),
                local,
                peer,
                proto: "tcp".into(),
            }
        }
        Endpoint::Ip {
            transport: Transport::Udp,
            host,
            port,
        } => {
            let addrs = resolve(host, *port, opts.family).await?;
            // UDP "connect" only sets the default peer; the first address is it.
            let sock = sock::connect_udp(addrs[0], &opts.sock)?;
            packet_conn(sock, false, "udp")
        }
        Endpoint::Unix { kind, name } => {
            let s = sock::connect_unix(*kind, name)?;
            match kind {
                UnixKind::Stream => {
                    let std: std::os::unix::net::UnixStream = s.into();
                    std.set_nonblocking(true)
                        .map_err(|e| Error::io("cannot configure the socket", e))?;
                    let stream = tokio::net::UnixStream::from_std(std)
                        .map_err(|e| Error::io("cannot register the socket", e))?;
                    Conn {
                        link: Link::Unix(stream),
                        local: "(unnamed)".into(),
                        peer: name.to_string(),
                        proto: "unix".into(),
                    }
                }
                UnixKind::Datagram => packet_conn(PacketSock::new(s)?, false, "unix-dgram"),
                UnixKind::SeqPacket => packet_conn(PacketSock::new(s)?, true, "unix-seqpacket"),
            }
        }
    };
    match &opts.tls {
        None => Ok(conn),
        Some(tls_opts) => {
            let default_name = match ep {
                Endpoint::Ip {
                    host: Host::Name(n),
                    ..
                } => n.clone(),
                Endpoint::Ip {
                    host: Host::Ip(ip), ..
                } => ip.to_string(),
                _ => "localhost".to_string(),
            };
            let client = tls::Client::new(tls_opts, &default_name)?;
            let stream: crate::conn::BoxStream = match conn.link {
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
        }
    }
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
