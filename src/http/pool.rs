//! Connections for HTTP: resolve (or `--resolve`), connect with `sock`, TLS with
//! ALPN `http/1.1` through `tls`, or a Unix socket (`--unix-socket`); and at most
//! one idle keep-alive connection per origin for the next request.
//!
//! It knows nothing of HTTP messages; `exchange` decides whether a connection
//! goes back into the pool.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::target::Origin;
use crate::conn::BoxStream;
use crate::endpoint::{resolve, Family, UnixKind, UnixName};
use crate::error::{Error, Result};
use crate::sock::{self, SockOpts};
use crate::tls;

/// Read buffer between the socket and TLS: rustls reads records in small pieces,
/// so a buffer in front of it saves many system calls on large downloads.
const TLS_READ_BUFFER: usize = 256 * 1024;

/// `--resolve HOST:PORT:ADDR[,ADDR...]`: connect to these addresses for that host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveEntry {
    /// Host name as in the URL (case-insensitive).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Addresses to try, in order.
    pub addrs: Vec<IpAddr>,
}

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
        let limit = self.opts.connect_timeout;
        let what = format!("cannot connect to {}", origin.authority());
        match tokio::time::timeout(limit, self.connect(origin, log)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { what, after: limit }),
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
        let (stream, peer): (BoxStream, String) = match self.opts.unix_socket.clone() {
            Some(path) => (
                connect_unix(&path, origin, id, log)?,
                path.display().to_string(),
            ),
            None => {
                let (s, peer) = connect_tcp(&self.opts, origin, id, log).await?;
                if origin.tls {
                    // Big reads under TLS: fewer system calls per record.
                    let s = tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, s);
                    (Box::new(s), peer)
                } else {
                    (Box::new(s), peer)
                }
            }
        };
        let connected = Instant::now();
        let mut conn = Connection {
            stream,
            tls: false,
            id,
            peer,
            uses: 0,
        };
        if origin.tls {
            let client = self.tls_client(&origin.host)?;
            let tls = client.connect(conn.stream).await?;
            log(&tls_info(tls.get_ref().1));
            conn.stream = Box::new(tls);
            conn.tls = true;
        }
        let timing = Timing {
            connected,
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

/// The addresses for `origin`: a `--resolve` entry, else the resolver's answer.
async fn addresses(opts: &ConnectOpts, origin: &Origin) -> Result<Vec<SocketAddr>> {
    let host = origin.host.to_ascii_lowercase();
    if let Some(e) = opts
        .resolve
        .iter()
        .find(|e| e.host == host && e.port == origin.port)
    {
        return Ok(e
            .addrs
            .iter()
            .map(|ip| SocketAddr::new(*ip, origin.port))
            .collect());
    }
    resolve(&origin.endpoint_host(), origin.port, opts.family).await
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

/// `--unix-socket`: every request goes to `path`, whatever the URL's host.
fn connect_unix(
    path: &std::path::Path,
    origin: &Origin,
    id: u32,
    log: &(dyn Fn(&str) + Sync),
) -> Result<BoxStream> {
    log(&format!("Trying {}...", path.display()));
    let name = UnixName::Path(path.to_path_buf());
    let s = sock::connect_unix(UnixKind::Stream, &name)?;
    let std: std::os::unix::net::UnixStream = s.into();
    std.set_nonblocking(true)
        .map_err(|e| Error::io("cannot configure the socket", e))?;
    let stream = tokio::net::UnixStream::from_std(std)
        .map_err(|e| Error::io("cannot register the socket", e))?;
    log(&format!(
        "Connected to {} ({}) #{id}",
        origin.host,
        path.display()
    ));
    Ok(Box::new(stream))
}

/// Tries the origin's addresses in order; the first that connects wins.
async fn connect_tcp(
    opts: &ConnectOpts,
    origin: &Origin,
    id: u32,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(tokio::net::TcpStream, String)> {
    let addrs = addresses(opts, origin).await?;
    let sock_opts = SockOpts {
        nodelay: true,
        ..SockOpts::default()
    };
    let mut last = None;
    for addr in &addrs {
        log(&format!("Trying {}...", crate::sock::fmt_ip(*addr)));
        match sock::connect_tcp(*addr, &sock_opts, opts.connect_timeout).await {
            Ok(s) => {
                log(&format!(
                    "Connected to {} ({}) port {} (#{id})",
                    origin.host,
                    addr.ip().to_canonical(),
                    addr.port()
                ));
                return Ok((s, crate::sock::fmt_ip(*addr)));
            }
            Err(e) => {
                log(&format!("{e}"));
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Usage("no address to connect to".into())))
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
