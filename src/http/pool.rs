//! Connections for HTTP: the origin (or `--unix-socket`) dialed through
//! [`crate::dial::dial_route`] (resolve or `--resolve`, connect, TLS with ALPN
//! `http/1.1`, one `--connect-timeout` over all of it); and at most one idle
//! keep-alive connection per origin for the next request.
//!
//! It knows nothing of HTTP messages; `exchange` decides whether a connection
//! goes back into the pool.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::target::Origin;
use crate::conn::{BoxStream, Link};
pub use crate::dial::ResolveEntry;
use crate::dial::{dial_route, DialOpts, Route, Step};
use crate::endpoint::{Endpoint, Family, Transport, UnixKind, UnixName};
use crate::error::{Error, Result};
use crate::proxy::{Proxy, ProxyRules, Scheme};
use crate::sock::SockOpts;
use crate::tls;

/// Read buffer between the socket and TLS: rustls reads records in small pieces,
/// so a buffer in front of it saves many system calls on large downloads.
const TLS_READ_BUFFER: usize = 256 * 1024;

/// Parses `HOST:PORT:ADDR[,ADDR...]`; IPv6 addresses may be in brackets.
pub fn parse_resolve(text: &str) -> std::result::Result<ResolveEntry, String> {
    let bad = || {
        format!(
            "invalid --resolve '{}': expected HOST:PORT:ADDR, e.g. example.com:443:127.0.0.1",
            super::shown(text.as_bytes())
        )
    };
    let (host, rest) = if let Some(inner) = text.strip_prefix('[') {
        let (h, r) = inner.split_once("]:").ok_or_else(bad)?;
        (h, r)
    } else {
        text.split_once(':').ok_or_else(bad)?
    };
    let (port, addrs) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            let a = a.trim();
            let a = a
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(a);
            a.parse::<IpAddr>().map_err(|_| bad())
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if host.is_empty() || addrs.is_empty() {
        return Err(bad());
    }
    Ok(ResolveEntry {
        host: host.to_ascii_lowercase(),
        port,
        addrs,
    })
}

/// How to reach servers.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    /// `-4` / `-6`.
    pub family: Family,
    /// `--connect-timeout`: name resolution, TCP connect and TLS handshake together.
    pub connect_timeout: Duration,
    /// `--resolve` entries.
    pub resolve: Vec<ResolveEntry>,
    /// `--unix-socket`: every connection goes to this path instead.
    pub unix_socket: Option<PathBuf>,
    /// TLS trust settings for https:// (ALPN is set here).
    pub tls: tls::ClientOptions,
    /// Which proxy each URL goes through (`-x`, the environment, `--noproxy`).
    pub proxy: ProxyRules,
}

/// A connection that carries HTTP.
pub struct Connection {
    /// The byte stream (plain or TLS).
    pub stream: BoxStream,
    /// True for TLS: an EOF without close_notify is then unclean.
    pub tls: bool,
    /// Sequence number in this run (`-v` shows "connection #N").
    pub id: u32,
    /// The peer, for messages: `127.0.0.1:80` or the socket path.
    pub peer: String,
    /// Requests sent on it so far.
    pub uses: u32,
}

/// When the phases of getting a connection ended.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// TCP (or Unix) connect done.
    pub connected: Instant,
    /// TLS handshake done (same as `connected` without TLS).
    pub app_connected: Instant,
    /// The connection was an idle one from the pool.
    pub reused: bool,
}

/// Idle keep-alive connections, one per origin.
pub struct Pool {
    opts: ConnectOpts,
    idle: HashMap<Origin, Connection>,
    tls_clients: HashMap<String, tls::TlsClient>,
    next_id: u32,
}

impl Pool {
    /// An empty pool.
    pub fn new(opts: ConnectOpts) -> Pool {
        Pool {
            opts,
            idle: HashMap::new(),
            tls_clients: HashMap::new(),
            next_id: 0,
        }
    }

    /// An idle connection to `origin` if there is one, else a new one.
    pub async fn get(
        &mut self,
        origin: &Origin,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(Connection, Timing)> {
        if let Some(conn) = self.idle.remove(origin) {
            log(&format!(
                "Re-using existing connection #{} with host {}",
                conn.id, origin.host
            ));
            let now = Instant::now();
            return Ok((
                conn,
                Timing {
                    connected: now,
                    app_connected: now,
                    reused: true,
                },
            ));
        }
        self.connect(origin, log).await
    }

    /// The HTTP proxy that plain http:// requests to `origin` are sent to in
    /// absolute form (as curl does), if any; https:// and SOCKS are tunnels.
    pub fn forward_proxy(&self, origin: &Origin) -> Option<&Proxy> {
        self.proxy_for(origin)
            .filter(|p| p.is_http() && !origin.tls)
    }

    fn proxy_for(&self, origin: &Origin) -> Option<&Proxy> {
        match self.opts.unix_socket {
            Some(_) => None,
            None => self.opts.proxy.for_url(origin.tls, &origin.host),
        }
    }

    /// Keeps `conn` for the next request to `origin`.
    pub fn put(&mut self, origin: Origin, conn: Connection) {
        self.idle.insert(origin, conn);
    }

    /// Closes every idle connection (TLS: close_notify first), politely but quickly.
    pub async fn close_all(&mut self) {
        for (_, mut conn) in self.idle.drain() {
            if conn.tls {
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), conn.stream.shutdown()).await;
            }
        }
    }

    async fn connect(
        &mut self,
        origin: &Origin,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(Connection, Timing)> {
        let id = self.next_id;
        self.next_id += 1;
        let deadline = tokio::time::Instant::now() + self.opts.connect_timeout;
        let forward = self.forward_proxy(origin).cloned();
        let tunnel = match forward {
            Some(_) => None,
            None => self.proxy_for(origin).cloned(),
        };
        let ep = match (&self.opts.unix_socket, &forward) {
            (Some(path), _) => Endpoint::Unix {
                kind: UnixKind::Stream,
                name: UnixName::Path(path.clone()),
            },
            (None, Some(p)) => Endpoint::Ip {
                transport: Transport::Tcp,
                host: p.host.clone(),
                port: p.port,
            },
            (None, None) => Endpoint::Ip {
                transport: Transport::Tcp,
                host: origin.endpoint_host(),
                port: origin.port,
            },
        };
        // An https:// proxy taking plain http:// requests: TLS with the proxy.
        let to_proxy = forward.as_ref().filter(|p| p.scheme == Scheme::Https);
        let client = match (origin.tls, to_proxy) {
            (true, _) => Some(self.tls_client(&origin.host)?),
            (false, Some(p)) => Some(p.tls_client()?),
            (false, None) => None,
        };
        let dial = DialOpts {
            family: self.opts.family,
            wait: self.opts.connect_timeout,
            sock: SockOpts {
                nodelay: true,
                ..SockOpts::default()
            },
            tls: None,
            proxy: tunnel,
        };
        let note = |step: Step<'_>| log(&step_line(step, &origin.host, id));
        let route = Route {
            overrides: &self.opts.resolve,
            tls: client.as_ref(),
            tls_read_buffer: TLS_READ_BUFFER,
            note: &note,
        };
        let dialed = match dial_route(&ep, &dial, &route, deadline).await {
            Ok(dialed) => dialed,
            Err(e) => {
                return Err(match &forward {
                    Some(p) => p.tls_error(p.unresolved(e)),
                    None => e,
                })
            }
        };
        let conn = Connection {
            stream: match dialed.conn.link {
                Link::Tcp(s) => Box::new(s),
                Link::Unix(s) => Box::new(s),
                Link::Stream(s) => s,
                Link::Packet { .. } => {
                    return Err(Error::Usage("HTTP needs a stream connection".into()))
                }
            },
            tls: origin.tls || to_proxy.is_some(),
            id,
            peer: dialed.conn.peer,
            uses: 0,
        };
        let timing = Timing {
            connected: dialed.connected.into_std(),
            app_connected: Instant::now(),
            reused: false,
        };
        Ok((conn, timing))
    }

    fn tls_client(&mut self, host: &str) -> Result<tls::TlsClient> {
        if let Some(c) = self.tls_clients.get(host) {
            return Ok(c.clone());
        }
        let client = tls::TlsClient::new(&self.opts.tls, host)?;
        self.tls_clients.insert(host.to_string(), client.clone());
        Ok(client)
    }
}

/// What `-v` says of a dial step, in curl's words.
fn step_line(step: Step<'_>, host: &str, id: u32) -> String {
    match step {
        Step::Trying(peer) => format!("Trying {peer}..."),
        Step::Connected {
            addr: Some(addr), ..
        } => format!(
            "Connected to {host} ({}) port {} (#{id})",
            addr.ip().to_canonical(),
            addr.port()
        ),
        Step::Connected { peer, .. } => format!("Connected to {host} ({peer}) #{id}"),
        Step::Failed { error, .. } => error.to_string(),
        Step::Tunnel { proxy, target } => format!("Tunnel to {target} through {proxy} established"),
        Step::Tls(c) => tls_info(c),
    }
}

fn tls_info(c: &rustls::ClientConnection) -> String {
    let version = c
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_else(|| "TLS".into());
    let suite = c
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let alpn = c
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "none".into());
    format!("TLS connection using {version} / {suite}, ALPN: {alpn}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_forms() {
        let e = parse_resolve("Example.com:443:127.0.0.1,[::1]").unwrap();
        assert_eq!(e.host, "example.com");
        assert_eq!(e.port, 443);
        assert_eq!(
            e.addrs,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_resolve("h:80:::1").unwrap().addrs,
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
        for bad in ["h", "h:80", "h:x:1.2.3.4", ":80:1.2.3.4", "h:80:nope"] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }
}
