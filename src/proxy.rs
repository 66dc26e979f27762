//! Proxies for outgoing TCP connections (`-x/--proxy URL`): what a proxy URL
//! means (`socks5://`, `socks5h://`, `socks4://`, `socks4a://`, `http://`,
//! `https://`: TLS to the proxy, then CONNECT inside it),
//! the handshake that turns a connection to the proxy into a tunnel to the
//! target, and curl's `no_proxy` rules.
//!
//! Connecting to the proxy itself is [`crate::dial`]'s job (same resolve,
//! `--resolve`, deadline and socket options as a direct connect); this module
//! only speaks the proxy protocols over a connected stream. SOCKS is
//! `tokio-socks`; HTTP CONNECT is a few lines of HTTP/1.1 written here, since
//! it needs the reply head read byte by byte so no tunnelled byte is consumed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::Link;
use crate::endpoint::Host;
use crate::error::{Error, ProxyFailure, Result};

/// Longest reply head an HTTP proxy may send to CONNECT.
const MAX_CONNECT_REPLY: usize = 16 * 1024;

/// The proxy protocols, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `socks4://`: the target resolved here (IPv4 only).
    Socks4,
    /// `socks4a://`: the proxy resolves the target's name.
    Socks4a,
    /// `socks5://`: the target resolved here.
    Socks5,
    /// `socks5h://`: the proxy resolves the target's name.
    Socks5h,
    /// `http://`: CONNECT (or, for plain HTTP requests, absolute-form requests).
    Http,
    /// `https://`: as `http://`, inside TLS to the proxy.
    Https,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Socks4 => "socks4",
            Scheme::Socks4a => "socks4a",
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A proxy: where it is, how to speak to it, and who to say we are.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The protocol.
    pub scheme: Scheme,
    /// The proxy's host.
    pub host: Host,
    /// The proxy's port (1080 when the URL has none, as curl).
    pub port: u16,
    /// User name and password (URL user info or `--proxy-user`).
    pub auth: Option<(String, String)>,
    /// How the proxy's own certificate is checked (`https://` proxies).
    pub tls: ProxyTls,
}

/// `--proxy-cacert` and `--proxy-insecure`: how the certificate of an
/// `https://` proxy is verified (by default against the system roots and
/// the proxy's host name, as curl).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyTls {
    /// Trust only the certificates in this PEM file.
    pub cacert: Option<std::path::PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
}

// Debug without the password: proxies end up in `{:?}` of option structs.
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({self})")
    }
}

/// `socks5h://127.0.0.1:1080`: the proxy as messages show it, never with a password.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.name(), self.host, self.port)
    }
}

impl Proxy {
    /// Parses `[SCHEME://][USER:PASSWORD@]HOST[:PORT]`; no scheme means
    /// `http://`, as curl. User and password may be percent-encoded.
    pub fn parse(text: &str) -> Result<Proxy> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "invalid proxy '{}' ({why}; e.g. socks5h://127.0.0.1:1080 or http://USER:PASSWORD@proxy:3128)",
                shown(text)
            ))
        };
        let full = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&full).map_err(|e| bad(&e.to_string()))?;
        let scheme = match url.scheme() {
            "socks4" => Scheme::Socks4,
            "socks4a" => Scheme::Socks4a,
            "socks5" => Scheme::Socks5,
            "socks5h" => Scheme::Socks5h,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(bad(&format!("unknown scheme {other}://"))),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => Host::Name(d.to_string()),
            Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => Host::Ip(ip.into()),
            None => return Err(bad("no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(bad("a proxy URL has no path"));
        }
        let auth = match url.username() {
            "" => None,
            user => Some((decode(user), decode(url.password().unwrap_or_default()))),
        };
        Ok(Proxy {
            scheme,
            host,
            // curl: 443 for an HTTPS proxy, 1080 for the others.
            port: url
                .port()
                .unwrap_or(if scheme == Scheme::Https { 443 } else { 1080 }),
            auth,
            tls: ProxyTls::default(),
        })
    }

    /// `--proxy-user USER:PASSWORD` (replaces the URL's user info).
    pub fn set_user(&mut self, text: &str) {
        let (user, pass) = text.split_once(':').unwrap_or((text, ""));
        self.auth = Some((user.to_string(), pass.to_string()));
    }

    /// True when the proxy, not this machine, resolves the target's name.
    pub fn resolves_names(&self) -> bool {
        matches!(
            self.scheme,
            Scheme::Socks4a | Scheme::Socks5h | Scheme::Http | Scheme::Https
        )
    }

    /// True for the proxies that take HTTP requests (`http://`, `https://`).
    pub fn is_http(&self) -> bool {
        matches!(self.scheme, Scheme::Http | Scheme::Https)
    }

    /// The TLS client for an `https://` proxy: its host name verified, with
    /// `--proxy-cacert` or `--proxy-insecure`. No ALPN: the proxy speaks HTTP/1.1.
    pub fn tls_client(&self) -> Result<crate::tls::TlsClient> {
        let opts = crate::tls::ClientOptions {
            cacert: self.tls.cacert.clone(),
            insecure: self.tls.insecure,
            ..crate::tls::ClientOptions::default()
        };
        let name = match &self.host {
            Host::Ip(ip) => ip.to_string(),
            h => h.to_string(),
        };
        crate::tls::TlsClient::new(&opts, &name).map_err(|e| self.tls_error(e))
    }

    /// A TLS error with the proxy: says it was the proxy's handshake, keeps the class.
    pub fn tls_error(&self, e: Error) -> Error {
        match e {
            Error::Tls {
                what,
                reason,
                failure,
            } => Error::Tls {
                what: match what.strip_prefix("TLS handshake with ") {
                    Some(_) => format!("TLS handshake with proxy {self} failed"),
                    None => format!("{what} (proxy {self})"),
                },
                reason: match failure {
                    crate::error::TlsFailure::Certificate if !self.tls.insecure => format!(
                        "{reason}; trust its CA with --proxy-cacert, or skip the check with --proxy-insecure"
                    ),
                    _ => reason,
                },
                failure,
            },
            e => e,
        }
    }

    /// A resolve error for the proxy's own name as a proxy error (curl's
    /// exit 5 tells it from the target's); other errors unchanged.
    pub fn unresolved(&self, e: Error) -> Error {
        if !matches!(e, Error::Resolve { .. }) {
            return e;
        }
        // "cannot resolve HOST (why)": keep the why.
        let text = e.to_string();
        let why = text.split_once(" (").map_or("", |(_, why)| why);
        Error::Proxy {
            what: format!("cannot resolve proxy host {}", self.host),
            reason: why.strip_suffix(')').unwrap_or(why).to_string(),
            failure: ProxyFailure::Resolve,
        }
    }

    /// `Proxy-Authorization` value for an HTTP proxy with credentials.
    pub fn authorization(&self) -> Option<String> {
        let (user, pass) = self.auth.as_ref()?;
        Some(format!(
            "Basic {}",
            crate::http::request::base64(format!("{user}:{pass}").as_bytes())
        ))
    }

    /// Over `stream`, connected to the proxy, asks for a tunnel to the
    /// target: `name` when the proxy resolves it, else `addr` (resolved here).
    /// An `https://` proxy's tunnel runs inside TLS: a stream link; the others
    /// hand back the TCP connection itself.
    pub async fn handshake(&self, stream: TcpStream, target: Target<'_>) -> Result<Link> {
        if self.scheme == Scheme::Https {
            let tls = self
                .tls_client()?
                .connect(stream)
                .await
                .map_err(|e| self.tls_error(e))?;
            let tunnel = self.connect_http(tls, &target).await?;
            return Ok(Link::Stream(Box::new(tunnel)));
        }
        self.tcp_handshake(stream, target).await.map(Link::Tcp)
    }

    async fn tcp_handshake(&self, stream: TcpStream, target: Target<'_>) -> Result<TcpStream> {
        let failed = |failure: ProxyFailure, reason: String| Error::Proxy {
            what: format!("cannot connect to {target} through {self}"),
            reason,
            failure,
        };
        match self.scheme {
            Scheme::Http | Scheme::Https => self.connect_http(stream, &target).await,
            Scheme::Socks5 | Scheme::Socks5h => {
                let dest = target.socks();
                let done = match &self.auth {
                    Some((user, pass)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                            stream, dest, user, pass,
                        )
                        .await
                    }
                    None => tokio_socks::tcp::Socks5Stream::connect_with_socket(stream, dest).await,
                };
                done.map(|s| s.into_inner())
                    .map_err(|e| socks_error(e, &failed))
            }
            Scheme::Socks4 | Scheme::Socks4a => {
                let dest = target.socks();
                if let tokio_socks::TargetAddr::Ip(SocketAddr::V6(_)) = dest {
                    return Err(failed(
                        ProxyFailure::Refused,
                        "SOCKS4 carries IPv4 addresses only; try socks5://".into(),
                    ));
                }
                let done = match &self.auth {
                    Some((user, _)) => {
                        tokio_socks::tcp::Socks4Stream::connect_with_userid_and_socket(
                            stream, dest, user,
                        )
                        .await
                    }
                    None => tokio_socks::tcp::Socks4Stream::connect_with_socket(stream, dest).await,
                };
                done.map(|s| s.into_inner())
                    .map_err(|e| socks_error(e, &failed))
            }
        }
    }

    /// `CONNECT host:port HTTP/1.1`, then the reply head, read a byte at a
    /// time so that what follows it stays in the socket for the tunnel.
    async fn connect_http<S>(&self, mut stream: S, target: &Target<'_>) -> Result<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let authority = target.authority();
        let mut req = format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: sockit/{}\r\nProxy-Connection: Keep-Alive\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(auth) = self.authorization() {
            req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        req.push_str("\r\n");
        let what = format!("cannot connect to {target} through {self}");
        let io_err = |e: std::io::Error| Error::Proxy {
            what: what.clone(),
            reason: crate::error::describe_io(&e),
            failure: ProxyFailure::Reply,
        };
        stream.write_all(req.as_bytes()).await.map_err(io_err)?;
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_CONNECT_REPLY {
                return Err(Error::Proxy {
                    what,
                    reason: format!("reply head over {MAX_CONNECT_REPLY} bytes"),
                    failure: ProxyFailure::Reply,
                });
            }
            if stream.read(&mut byte).await.map_err(io_err)? == 0 {
                return Err(Error::Proxy {
                    what,
                    reason: "the proxy closed the connection without a reply".into(),
                    failure: ProxyFailure::Reply,
                });
            }
            head.push(byte[0]);
        }
        let status_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let status_line = String::from_utf8_lossy(status_line);
        let mut words = status_line.splitn(3, ' ');
        let version = words.next().unwrap_or_default();
        let code = words.next().and_then(|c| c.parse::<u16>().ok());
        let text = crate::chat::sanitize::sanitize(status_line.as_bytes());
        match code {
            Some(200..=299) if version.starts_with("HTTP/1.") => Ok(stream),
            Some(code @ (401 | 407)) => Err(Error::Proxy {
                what,
                reason: match &self.auth {
                    Some(_) => format!("credentials refused: {text}"),
                    None => format!("the proxy wants credentials (--proxy-user): {text}"),
                },
                failure: ProxyFailure::Status(code),
            }),
            Some(code) if version.starts_with("HTTP/1.") => Err(Error::Proxy {
                what,
                reason: format!("CONNECT refused: {text}"),
                failure: ProxyFailure::Status(code),
            }),
            _ => Err(Error::Proxy {
                what,
                reason: format!("not an HTTP reply: {text}"),
                failure: ProxyFailure::Reply,
            }),
        }
    }
}

/// The target of a tunnel: its name (when the proxy resolves) or address.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A name for the proxy to resolve, and the port.
    Name(&'a str, u16),
    /// An address.
    Addr(SocketAddr),
}

impl Target<'_> {
    fn socks(&self) -> tokio_socks::TargetAddr<'_> {
        match *self {
            Target::Name(name, port) => {
                tokio_socks::TargetAddr::Domain(std::borrow::Cow::Borrowed(name), port)
            }
            Target::Addr(a) => tokio_socks::TargetAddr::Ip(a),
        }
    }

    fn authority(&self) -> String {
        match self {
            Target::Name(n, p) => format!("{n}:{p}"),
            Target::Addr(a) => a.to_string(),
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

/// A SOCKS failure in words, with its kind: refused credentials, a target
/// the proxy could not reach, or a reply that is not SOCKS.
fn socks_error(e: tokio_socks::Error, failed: &dyn Fn(ProxyFailure, String) -> Error) -> Error {
    use tokio_socks::Error as S;
    let failure = match &e {
        S::PasswordAuthFailure(_)
        | S::NoAcceptableAuthMethods
        | S::AuthorizationRequired
        | S::IdentdAuthFailure
        | S::InvalidUserIdAuthFailure => ProxyFailure::Auth,
        S::GeneralSocksServerFailure
        | S::ConnectionNotAllowedByRuleset
        | S::NetworkUnreachable
        | S::HostUnreachable
        | S::ConnectionRefused
        | S::TtlExpired
        | S::CommandNotSupported
        | S::AddressTypeNotSupported
        | S::UnknownError => ProxyFailure::Refused,
        _ => ProxyFailure::Reply,
    };
    let reason = match &e {
        S::Io(io) => crate::error::describe_io(io),
        S::PasswordAuthFailure(_) => "user name or password refused".into(),
        S::NoAcceptableAuthMethods => {
            "the proxy accepts none of the offered methods (credentials needed? --proxy-user)"
                .into()
        }
        S::InvalidResponseVersion | S::InvalidReservedByte | S::UnknownAddressType => {
            format!("not a SOCKS reply ({})", e.to_string().to_lowercase())
        }
        other => other.to_string().to_lowercase(),
    };
    failed(failure, reason)
}

/// Percent-decoding of URL user info (`p%40ss` is `p@ss`).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A proxy URL as an error may show it: without the password, controls visible.
fn shown(text: &str) -> String {
    let safe = match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &text[..s], &text[at + 1..]),
        (None, Some(at)) => format!("***@{}", &text[at + 1..]),
        _ => text.to_string(),
    };
    crate::chat::sanitize::sanitize(safe.as_bytes())
}

/// curl's `no_proxy` / `--noproxy`: a comma list of host names (a name
/// matches itself and its subdomains; a leading dot is ignored), IP
/// addresses, CIDR ranges, or `*` for every host. Ports are not compared.
#[derive(Debug, Clone, Default)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<ipnet::IpNet>,
}

impl NoProxy {
    /// Parses the list (empty entries ignored).
    pub fn parse(list: &str) -> NoProxy {
        let mut np = NoProxy::default();
        for entry in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "*" {
                np.all = true;
            } else if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                np.nets.push(net);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                np.nets.push(ipnet::IpNet::from(ip));
            } else {
                np.names
                    .push(entry.trim_start_matches('.').to_ascii_lowercase());
            }
        }
        np
    }

    /// True when `host` (a name, or an address without brackets) goes direct.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.nets.iter().any(|n| n.contains(&ip));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            host == *n
                || (host.len() > n.len()
                    && host.ends_with(n.as_str())
                    && host.as_bytes()[host.len() - n.len() - 1] == b'.')
        })
    }
}

/// Which proxy, if any, the HTTP client uses for a URL: `-x` first, else
/// the environment as curl reads it (`http_proxy` only in lower case, since
/// CGI puts a request's `Proxy:` header in `HTTP_PROXY`; `https_proxy` or
/// `HTTPS_PROXY`; `all_proxy` or `ALL_PROXY`), unless `--noproxy` or
/// `no_proxy`/`NO_PROXY` lists the host. `-x ""` turns proxies off.
#[derive(Debug, Clone, Default)]
pub struct ProxyRules {
    /// `-x`: for every URL.
    pub explicit: Option<Proxy>,
    /// From the environment, for http:// URLs.
    pub http: Option<Proxy>,
    /// From the environment, for https:// URLs.
    pub https: Option<Proxy>,
    /// Hosts that go direct.
    pub no_proxy: NoProxy,
}

impl ProxyRules {
    /// The rules from flags and an environment lookup (`env`, for tests).
    /// `proxy`: `-x` (`Some("")` disables proxies); `user`: `--proxy-user`;
    /// `noproxy`: `--noproxy`.
    pub fn new(
        proxy: Option<&str>,
        user: Option<&str>,
        noproxy: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyRules> {
        let var = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        let with_user = |mut p: Proxy| {
            if let Some(u) = user {
                p.set_user(u);
            }
            p
        };
        let parse = |text: String, from: &str| {
            Proxy::parse(&text)
                .map(with_user)
                .map_err(|e| Error::Usage(format!("{from}: {e}")))
        };
        let no_proxy = match noproxy {
            Some(list) => NoProxy::parse(list),
            None => NoProxy::parse(&var(&["no_proxy", "NO_PROXY"]).unwrap_or_default()),
        };
        if let Some(text) = proxy {
            if text.is_empty() {
                return Ok(ProxyRules::default());
            }
            return Ok(ProxyRules {
                explicit: Some(with_user(Proxy::parse(text)?)),
                no_proxy,
                ..ProxyRules::default()
            });
        }
        let all = var(&["all_proxy", "ALL_PROXY"]);
        let http = var(&["http_proxy"]).or_else(|| all.clone());
        let https = var(&["https_proxy", "HTTPS_PROXY"]).or(all);
        Ok(ProxyRules {
            explicit: None,
            http: http.map(|t| parse(t, "http_proxy")).transpose()?,
            https: https.map(|t| parse(t, "https_proxy")).transpose()?,
            no_proxy,
        })
    }

    /// `--proxy-cacert` and `--proxy-insecure` for every proxy of the rules.
    pub fn with_tls(mut self, tls: &ProxyTls) -> ProxyRules {
        for p in [&mut self.explicit, &mut self.http, &mut self.https]
            .into_iter()
            .flatten()
        {
            p.tls = tls.clone();
        }
        self
    }

    /// The proxy for a URL with this scheme and host, if any.
    pub fn for_url(&self, tls: bool, host: &str) -> Option<&Proxy> {
        let p = match &self.explicit {
            Some(p) => Some(p),
            None if tls => self.https.as_ref(),
            None => self.http.as_ref(),
        }?;
        (!self.no_proxy.matches(host)).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = Proxy::parse("socks5h://u%40x:p%3Aw@proxy.local:9050").unwrap();
        assert_eq!(p.scheme, Scheme::Socks5h);
        assert_eq!(p.host, Host::Name("proxy.local".into()));
        assert_eq!(p.port, 9050);
        assert_eq!(p.auth, Some(("u@x".into(), "p:w".into())));
        assert_eq!(p.to_string(), "socks5h://proxy.local:9050");
        let p = Proxy::parse("127.0.0.1").unwrap();
        assert_eq!((p.scheme, p.port), (Scheme::Http, 1080));
        let p = Proxy::parse("socks4a://[::1]:1").unwrap();
        assert_eq!(p.to_string(), "socks4a://[::1]:1");
        let p = Proxy::parse("https://proxy.local").unwrap();
        assert_eq!((p.scheme, p.port), (Scheme::Https, 443));
        assert_eq!(p.to_string(), "https://proxy.local:443");
        for bad in ["ftp://h:1", "socks5://", "http://h:1/path"] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        let e = Proxy::parse("gopher://me:secret@h")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    /// A one-shot proxy on 127.0.0.1: reads `expect.len()` bytes, checks
    /// them, answers `reply`; returns its proxy URL.
    async fn fake_proxy(scheme: &str, expect: Vec<u8>, reply: &'static [u8]) -> Proxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = vec![0u8; expect.len()];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expect, "{}", String::from_utf8_lossy(&got));
            s.write_all(reply).await.unwrap();
            let _ = s.read(&mut [0u8; 1]).await;
        });
        Proxy::parse(&format!("{scheme}://127.0.0.1:{port}")).unwrap()
    }

    async fn through(proxy: &Proxy, target: Target<'_>) -> Result<TcpStream> {
        let s = TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, proxy.port))
            .await
            .unwrap();
        match proxy.handshake(s, target).await? {
            Link::Tcp(s) => Ok(s),
            _ => panic!("not a TCP link"),
        }
    }

    // dante has no SOCKS4a, so its wire format is checked here.
    #[tokio::test]
    async fn socks4a_sends_the_name() {
        let mut req = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
        req.extend_from_slice(b"name.only.there\0");
        let p = fake_proxy("socks4a", req, &[0, 90, 0, 0, 0, 0, 0, 0]).await;
        through(&p, Target::Name("name.only.there", 80))
            .await
            .unwrap();
        let mut req = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
        req.extend_from_slice(b"x\0");
        let p = fake_proxy("socks4a", req, &[0, 91, 0, 0, 0, 0, 0, 0]).await;
        match through(&p, Target::Name("x", 80)).await {
            Err(Error::Proxy { failure, .. }) => assert_eq!(failure, ProxyFailure::Refused),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn connect_replies_that_are_not_http_or_not_2xx() {
        let req = b"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n".to_vec();
        let p = fake_proxy("http", req.clone(), b"SSH-2.0-OpenSSH\r\n\r\n").await;
        match through(&p, Target::Name("h", 1)).await {
            Err(Error::Proxy {
                failure, reason, ..
            }) => {
                assert_eq!(failure, ProxyFailure::Reply);
                assert!(reason.starts_with("not an HTTP reply: SSH-2.0"), "{reason}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let p = fake_proxy("http", req, b"HTTP/1.1 403 Filtered\r\nX: \x1b[31m\r\n\r\n").await;
        match through(&p, Target::Name("h", 1)).await {
            Err(Error::Proxy {
                failure, reason, ..
            }) => {
                assert_eq!(failure, ProxyFailure::Status(403));
                assert_eq!(reason, "CONNECT refused: HTTP/1.1 403 Filtered");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn no_proxy_like_curl() {
        let np = NoProxy::parse("example.com, .local,10.0.0.0/8,::1");
        assert!(np.matches("example.com"));
        assert!(np.matches("www.Example.com"));
        assert!(!np.matches("badexample.com"));
        assert!(np.matches("printer.local"));
        assert!(np.matches("10.1.2.3"));
        assert!(!np.matches("11.1.2.3"));
        assert!(np.matches("[::1]"));
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::parse("").matches("anything"));
    }

    #[test]
    fn environment_like_curl() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        // HTTP_PROXY in capitals is ignored, as curl does.
        let r = ProxyRules::new(None, None, None, env(&[("HTTP_PROXY", "h:1")])).unwrap();
        assert!(r.for_url(false, "x").is_none());
        let r = ProxyRules::new(
            None,
            None,
            None,
            env(&[
                ("http_proxy", "h:1"),
                ("HTTPS_PROXY", "socks5://s:2"),
                ("no_proxy", "skip.me"),
            ]),
        )
        .unwrap();
        assert_eq!(r.for_url(false, "x").unwrap().to_string(), "http://h:1");
        assert_eq!(r.for_url(true, "x").unwrap().to_string(), "socks5://s:2");
        assert!(r.for_url(true, "a.skip.me").is_none());
        // --proxy-cacert/--proxy-insecure reach the proxies from the environment too.
        let tls = ProxyTls {
            cacert: Some("ca.pem".into()),
            insecure: false,
        };
        let r = ProxyRules::new(None, None, None, env(&[("https_proxy", "https://p")]))
            .unwrap()
            .with_tls(&tls);
        let p = r.for_url(true, "x").unwrap();
        assert_eq!((p.to_string(), &p.tls), ("https://p:443".into(), &tls));
        let r = ProxyRules::new(
            None,
            None,
            Some(""),
            env(&[("ALL_PROXY", "h:3"), ("no_proxy", "*")]),
        )
        .unwrap();
        assert!(
            r.for_url(true, "x").is_some(),
            "--noproxy '' overrides no_proxy"
        );
        let r = ProxyRules::new(Some(""), None, None, env(&[("ALL_PROXY", "h:3")])).unwrap();
        assert!(r.for_url(true, "x").is_none(), "-x '' turns proxies off");
        let r = ProxyRules::new(Some("h:4"), Some("me:pw"), None, env(&[])).unwrap();
        assert_eq!(
            r.for_url(false, "x").unwrap().auth,
            Some(("me".into(), "pw".into()))
        );
    }
}
