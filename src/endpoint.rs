//! Endpoint strings (`tcp://h:p`, `unix-seqpacket:/p`, `[::1]:80`, ...) and name resolution.
//!
//! One parser serves every subcommand. This module only turns text into an
//! [`Endpoint`] and host names into addresses; it never creates a socket.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The forms an endpoint may take, shown on a parse error.
pub const FORMS: &str = "accepted forms: HOST:PORT, :PORT, [IPV6]:PORT, tcp://HOST:PORT, \
udp://HOST:PORT, unix:/PATH, unix-dgram:/PATH, unix-seqpacket:/PATH, unix:@ABSTRACT";

/// Transport of an IP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `SOCK_STREAM` over IP.
    Tcp,
    /// `SOCK_DGRAM` over IP.
    Udp,
}

/// Socket type of a Unix-domain endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixKind {
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_DGRAM`.
    Datagram,
    /// `SOCK_SEQPACKET`.
    SeqPacket,
}

/// Where a Unix socket lives: the file system, or Linux's abstract namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixName {
    /// A path in the file system.
    Path(PathBuf),
    /// An abstract name (written `@name`), not visible in the file system.
    Abstract(Vec<u8>),
}

/// The host part of an IP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Empty host (`:PORT`): every local interface.
    Any,
    /// A literal address.
    Ip(IpAddr),
    /// A name to resolve.
    Name(String),
}

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP or UDP, IPv4 or IPv6.
    Ip {
        /// Stream or datagram.
        transport: Transport,
        /// Host to connect to or bind.
        host: Host,
        /// Port number.
        port: u16,
    },
    /// A Unix-domain socket.
    Unix {
        /// Stream, datagram or seqpacket.
        kind: UnixKind,
        /// Path or abstract name.
        name: UnixName,
    },
}

/// Which IP families a name may resolve to (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Whatever the resolver returns.
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl Family {
    /// Builds the family from the `-4` and `-6` flags.
    pub fn from_flags(v4: bool, v6: bool) -> Self {
        match (v4, v6) {
            (true, false) => Family::V4,
            (false, true) => Family::V6,
            _ => Family::Any,
        }
    }

    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

impl Endpoint {
    /// Parses an endpoint. `udp` (the `-u` flag) makes a bare `HOST:PORT` UDP.
    pub fn parse(text: &str, udp: bool) -> Result<Self> {
        let bad = |why: &str| Error::Usage(format!("invalid endpoint '{text}': {why}; {FORMS}"));
        let unix = |kind, rest: &str| -> Result<Self> {
            let name = if let Some(abs) = rest.strip_prefix('@') {
                if abs.is_empty() {
                    return Err(bad("empty abstract name"));
                }
                UnixName::Abstract(abs.as_bytes().to_vec())
            } else if rest.is_empty() {
                return Err(bad("empty path"));
            } else {
                UnixName::Path(PathBuf::from(rest))
            };
            Ok(Endpoint::Unix { kind, name })
        };
        if let Some(rest) = text.strip_prefix("unix-seqpacket:") {
            return unix(UnixKind::SeqPacket, rest);
        }
        if let Some(rest) = text.strip_prefix("unix-dgram:") {
            return unix(UnixKind::Datagram, rest);
        }
        if let Some(rest) = text.strip_prefix("unix:") {
            return unix(UnixKind::Stream, rest);
        }
        let (transport, rest) = if let Some(rest) = text.strip_prefix("tcp://") {
            if udp {
                return Err(bad("-u contradicts tcp://"));
            }
            (Transport::Tcp, rest)
        } else if let Some(rest) = text.strip_prefix("udp://") {
            (Transport::Udp, rest)
        } else if text.contains("://") {
            return Err(bad("unknown scheme"));
        } else if udp {
            (Transport::Udp, text)
        } else {
            (Transport::Tcp, text)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("missing :PORT"))?;
            let ip: Ipv6Addr = addr.parse().map_err(|_| bad("bad IPv6 address"))?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("missing :PORT"))?;
            if host.contains(':') {
                return Err(bad("IPv6 addresses need brackets, e.g. [::1]:8000"));
            }
            let host = if host.is_empty() {
                Host::Any
            } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
                Host::Ip(IpAddr::V4(ip))
            } else if valid_hostname(host) {
                Host::Name(host.to_string())
            } else {
                return Err(bad("bad host name"));
            };
            (host, port)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port must be a number from 0 to 65535"))?;
        Ok(Endpoint::Ip {
            transport,
            host,
            port,
        })
    }

    /// True for endpoints whose sockets are byte streams (TCP, `unix:`).
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            Endpoint::Ip {
                transport: Transport::Tcp,
                ..
            } | Endpoint::Unix {
                kind: UnixKind::Stream,
                ..
            }
        )
    }

    /// Short protocol name, as exported to `--exec` children in `SOCKIT_PROTO`.
    pub fn proto(&self) -> &'static str {
        match self {
            Endpoint::Ip {
                transport: Transport::Tcp,
                ..
            } => "tcp",
            Endpoint::Ip {
                transport: Transport::Udp,
                ..
            } => "udp",
            Endpoint::Unix { kind, .. } => match kind {
                UnixKind::Stream => "unix",
                UnixKind::Datagram => "unix-dgram",
                UnixKind::SeqPacket => "unix-seqpacket",
            },
        }
    }
}

fn valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for UnixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixName::Path(p) => write!(f, "{}", p.display()),
            UnixName::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Any => Ok(()),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip {
                transport,
                host,
                port,
            } => {
                let scheme = match transport {
                    Transport::Tcp => "",
                    Transport::Udp => "udp://",
                };
                write!(f, "{scheme}{host}:{port}")
            }
            Endpoint::Unix { name, .. } => write!(f, "{}:{name}", self.proto()),
        }
    }
}

/// Resolves a host for connecting: every address, in resolver order, filtered by family.
pub async fn resolve(host: &Host, port: u16, family: Family) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Any => match family {
            Family::V6 => vec![SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port)],
            _ => vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)],
        },
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|source| Error::Resolve {
                host: name.clone(),
                source,
            })?
            .collect(),
    };
    let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| family.admits(a)).collect();
    if kept.is_empty() {
        let which = match family {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
            Family::Any => "any",
        };
        return Err(Error::Resolve {
            host: host.to_string(),
            source: std::io::Error::other(format!("no {which} address")),
        });
    }
    Ok(kept)
}

/// Resolves a host for binding. `:PORT` means every interface: dual-stack `[::]`
/// unless `-4` is given (the caller falls back to `0.0.0.0` without IPv6).
pub async fn resolve_bind(host: &Host, port: u16, family: Family) -> Result<Vec<SocketAddr>> {
    match host {
        Host::Any => Ok(match family {
            Family::V4 => vec![SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)],
            _ => vec![SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)],
        }),
        other => resolve(other, port, family).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(t: Transport, h: Host, port: u16) -> Endpoint {
        Endpoint::Ip {
            transport: t,
            host: h,
            port,
        }
    }

    #[test]
    fn parses_every_form() {
        let v4 = |s: &str| Host::Ip(s.parse().unwrap());
        assert_eq!(
            Endpoint::parse("127.0.0.1:80", false).unwrap(),
            ip(Transport::Tcp, v4("127.0.0.1"), 80)
        );
        assert_eq!(
            Endpoint::parse(":8000", false).unwrap(),
            ip(Transport::Tcp, Host::Any, 8000)
        );
        assert_eq!(
            Endpoint::parse("[::1]:9", false).unwrap(),
            ip(Transport::Tcp, v4("::1"), 9)
        );
        assert_eq!(
            Endpoint::parse("tcp://example.com:443", false).unwrap(),
            ip(Transport::Tcp, Host::Name("example.com".into()), 443)
        );
        assert_eq!(
            Endpoint::parse("udp://localhost:53", false).unwrap(),
            ip(Transport::Udp, Host::Name("localhost".into()), 53)
        );
        assert_eq!(
            Endpoint::parse("localhost:53", true).unwrap(),
            ip(Transport::Udp, Host::Name("localhost".into()), 53)
        );
        assert_eq!(
            Endpoint::parse("unix:/tmp/s", false).unwrap(),
            Endpoint::Unix {
                kind: UnixKind::Stream,
                name: UnixName::Path("/tmp/s".into())
            }
        );
        assert_eq!(
            Endpoint::parse("unix-dgram:rel/s", false).unwrap(),
            Endpoint::Unix {
                kind: UnixKind::Datagram,
                name: UnixName::Path("rel/s".into())
            }
        );
        assert_eq!(
            Endpoint::parse("unix-seqpacket:@name", false).unwrap(),
            Endpoint::Unix {
                kind: UnixKind::SeqPacket,
                name: UnixName::Abstract(b"name".to_vec())
            }
        );
    }

    #[test]
    fn rejects_malformed_with_the_forms() {
        for bad in [
            "",
            "host",
            "host:",
            "host:99999",
            "::1:80",
            "[::1]80",
            "[nope]:1",
            "ftp://h:1",
            "unix:",
            "unix:@",
            "bad host:1",
            "tcp://h:1x",
        ] {
            let err = Endpoint::parse(bad, false).unwrap_err().to_string();
            assert!(err.contains("accepted forms"), "{bad}: {err}");
        }
        assert!(Endpoint::parse("tcp://h:1", true).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:80",
            "[::1]:80",
            "udp://h:1",
            "unix:/p",
            "unix-dgram:@x",
            "unix-seqpacket:/q",
        ] {
            let e = Endpoint::parse(s, false).unwrap();
            assert_eq!(Endpoint::parse(&e.to_string(), false).unwrap(), e);
        }
    }
}
