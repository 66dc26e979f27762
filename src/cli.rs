//! Command-line types shared by subcommands: argument groups that several
//! subcommands flatten in, and value parsers. The top-level parser and the
//! subcommand list live in `cmd`, which depends on this module (never the
//! other way round).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::endpoint::Family;
use crate::error::{Error, Result};
use crate::relay::hexdump::HexDump;
use crate::relay::RelayOpts;
use crate::sock::SockOpts;
use crate::tls;

/// Address family and transport selection.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Use IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 only (listen: IPV6_V6ONLY, no IPv4 clients on [::]).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// UDP: a bare HOST:PORT means udp://HOST:PORT.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
}

impl NetArgs {
    /// The family the flags ask for.
    pub fn family(&self) -> Family {
        Family::from_flags(self.ipv4, self.ipv6)
    }
}

/// Socket options (the tutorial's `setsockopt`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Socket options")]
pub struct SockArgs {
    /// Set TCP_NODELAY (no Nagle delay for small writes).
    #[arg(long)]
    pub nodelay: bool,
    /// Enable TCP keepalive, first probe after SECS idle.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub keepalive: Option<Duration>,
    /// SO_RCVBUF size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub rcvbuf: Option<usize>,
    /// SO_SNDBUF size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub sndbuf: Option<usize>,
    /// IP time-to-live (IPv6: unicast hop limit).
    #[arg(long, value_name = "N")]
    pub ttl: Option<u32>,
}

impl SockArgs {
    /// The options as the `sock` module takes them.
    pub fn opts(&self) -> SockOpts {
        SockOpts {
            nodelay: self.nodelay,
            keepalive: self.keepalive,
            rcvbuf: self.rcvbuf,
            sndbuf: self.sndbuf,
            ttl: self.ttl,
            source: None,
            v6only: false,
        }
    }
}

/// How data moves between the terminal and the socket.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Data")]
pub struct RelayArgs {
    /// Keep the write side open after stdin ends (no half-close).
    #[arg(long)]
    pub no_shutdown: bool,
    /// Only send stdin; discard what the peer sends.
    #[arg(long, conflicts_with = "recv_only")]
    pub send_only: bool,
    /// Only print what the peer sends; never read stdin.
    #[arg(long)]
    pub recv_only: bool,
    /// Close after SECS with no traffic in either direction (exit 5).
    #[arg(short = 'i', long = "idle-timeout", value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,
    /// Send LF as CRLF.
    #[arg(short = 'C', long)]
    pub crlf: bool,
    /// Hex dump both directions to FILE ('-' for stderr).
    #[arg(long = "hex-dump", value_name = "FILE")]
    pub hex_dump: Option<PathBuf>,
    /// Datagram sockets: cut stdin into messages of BYTES instead of lines.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..=65507))]
    pub datagram_size: Option<u32>,
}

impl RelayArgs {
    /// The relay options these flags ask for. `linger`: how long datagram
    /// sockets keep printing replies after stdin ends; `wait_for_stdin`: see
    /// [`RelayOpts::wait_for_stdin`].
    pub fn options(&self, linger: Duration, wait_for_stdin: bool) -> Result<RelayOpts> {
        Ok(RelayOpts {
            send: !self.recv_only,
            recv: !self.send_only,
            shutdown_on_eof: !self.no_shutdown,
            wait_for_stdin,
            idle: self.idle_timeout,
            linger,
            crlf: self.crlf,
            hexdump: open_hexdump(self.hex_dump.as_deref())?,
            datagram_size: self.datagram_size.map(|n| n as usize),
        })
    }
}

/// Opens the `-x` target: a file, or stderr for `-`.
fn open_hexdump(path: Option<&Path>) -> Result<Option<Arc<HexDump>>> {
    let Some(path) = path else { return Ok(None) };
    let out: Box<dyn Write + Send> = if path == Path::new("-") {
        Box::new(std::io::stderr())
    } else {
        Box::new(
            std::fs::File::create(path)
                .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?,
        )
    };
    Ok(Some(Arc::new(HexDump::new(out))))
}

/// TLS client flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS client")]
pub struct TlsClientArgs {
    /// Speak TLS to the peer (verifies against the system roots).
    #[arg(long)]
    pub tls: bool,
    /// Trust only the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM", requires = "tls")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the certificate (still encrypted).
    #[arg(short = 'k', long, requires = "tls")]
    pub insecure: bool,
    /// Server name to send and verify (default: the endpoint's host).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub sni: Option<String>,
    /// Accept exactly the certificate with this SHA-256 fingerprint.
    #[arg(long, value_name = "HEX", requires = "tls")]
    pub pin_sha256: Option<String>,
    /// Client certificate (PEM, chain allowed) for servers that ask for one (mTLS).
    #[arg(long, value_name = "PEM", requires = "tls")]
    pub cert: Option<PathBuf>,
    /// Private key for --cert (PEM; default: the key inside the --cert file).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl TlsClientArgs {
    /// `Some` when `--tls` is on.
    pub fn options(&self) -> Option<tls::ClientOptions> {
        self.tls.then(|| tls::ClientOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            sni: self.sni.clone(),
            pin_sha256: self.pin_sha256.clone(),
            alpn: Vec::new(),
            identity: self.cert.as_ref().map(|cert| tls::ClientIdentity {
                cert: cert.clone(),
                key: self.key.clone(),
            }),
        })
    }
}

/// Proxy flags of the clients (`connect`, `chat join`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Proxy")]
pub struct ProxyArgs {
    /// Connect through this proxy: socks5://HOST:PORT (the name resolved here),
    /// socks5h:// (resolved by the proxy), socks4://, socks4a://, http:// (CONNECT;
    /// the default scheme) or https:// (CONNECT inside TLS to the proxy).
    /// USER:PASSWORD@ may precede HOST; the port defaults to 1080 (443 for https://).
    #[arg(short = 'x', long = "proxy", value_name = "URL")]
    pub proxy: Option<String>,
    /// User name and password for the proxy (instead of the URL's).
    #[arg(long, value_name = "USER:PASSWORD", requires = "proxy")]
    pub proxy_user: Option<String>,
    /// Verify an https:// proxy's certificate against the CAs in this PEM file
    /// (a self-signed certificate too) instead of the system roots.
    #[arg(long, value_name = "PEM", requires = "proxy")]
    pub proxy_cacert: Option<std::path::PathBuf>,
    /// Do not verify an https:// proxy's certificate.
    #[arg(long, requires = "proxy")]
    pub proxy_insecure: bool,
}

impl ProxyArgs {
    /// The proxy the flags name, if any.
    pub fn proxy(&self) -> Result<Option<crate::proxy::Proxy>> {
        let Some(text) = &self.proxy else {
            return Ok(None);
        };
        if text == "-" || text.starts_with('/') || text.starts_with("./") {
            return Err(Error::Usage(format!(
                "invalid proxy '{text}' (-x is --proxy URL here; the hex dump is --hex-dump FILE)"
            )));
        }
        let mut proxy = crate::proxy::Proxy::parse(text)?;
        if let Some(user) = &self.proxy_user {
            proxy.set_user(user);
        }
        proxy.tls = crate::proxy::ProxyTls {
            cacert: self.proxy_cacert.clone(),
            insecure: self.proxy_insecure,
        };
        Ok(Some(proxy))
    }
}

/// Access-list flags for servers (`listen`, `chat serve`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access")]
pub struct AclArgs {
    /// Only serve peers in this network (repeatable), e.g. 10.0.0.0/8.
    #[arg(long, value_name = "CIDR")]
    allow: Vec<String>,
    /// Refuse peers in this network (repeatable): connections are closed unread,
    /// datagrams dropped. ::ffff:a.b.c.d forms match IPv4 peers.
    #[arg(long, value_name = "CIDR")]
    deny: Vec<String>,
    /// Read --allow networks from a file (one per line, # comments).
    #[arg(long, value_name = "FILE")]
    allow_file: Option<PathBuf>,
    /// Read --deny networks from a file.
    #[arg(long, value_name = "FILE")]
    deny_file: Option<PathBuf>,
}

impl AclArgs {
    /// The access list for a server on `ep` (a usage error on a Unix socket).
    pub fn acl(&self, ep: &crate::endpoint::Endpoint) -> Result<crate::serve::Acl> {
        crate::serve::Acl::new(
            &self.allow,
            &self.deny,
            self.allow_file.as_deref(),
            self.deny_file.as_deref(),
            ep,
        )
    }
}

/// TLS server flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS server")]
pub struct TlsServerArgs {
    /// PEM certificate chain for TLS.
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate generated at start; its fingerprint is printed.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Require a client certificate signed by a CA in this PEM file (mTLS); the
    /// verified subject is logged (-v) and given to -e programs as SOCKIT_PEER_CERT.
    #[arg(long, value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsServerArgs {
    /// The TLS server these flags ask for (its fingerprint printed), if any.
    pub fn server(&self) -> Result<Option<tls::TlsServer>> {
        tls::TlsServer::announced(self.identity(), self.tls_client_ca.as_deref())
    }

    /// `Some` when any TLS server flag is given.
    pub fn identity(&self) -> Option<tls::ServerIdentity> {
        if self.tls_self_signed {
            return Some(tls::ServerIdentity::SelfSigned(vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
            ]));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(tls::ServerIdentity::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

/// The `listening on ADDR` line of `listen` and `relay`: under -v, and always
/// when the kernel chose the port (`:0`), since nothing else says where to
/// connect. Written in one piece, so a reader never sees half the line.
pub fn announce_listening(ep: &crate::endpoint::Endpoint, where_: &str) {
    if matches!(ep, crate::endpoint::Endpoint::Ip { port: 0, .. }) {
        let line = format!("sockit: listening on {where_}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    } else {
        tracing::info!("listening on {where_}");
    }
}

/// Parses seconds, fractions allowed: `10`, `0.5`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(0.0..=1e9).contains(&v) || v.is_nan() {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses milliseconds.
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    let v: u64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number of milliseconds"))?;
    Ok(Duration::from_millis(v))
}
