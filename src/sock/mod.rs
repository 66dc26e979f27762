//! Socket creation and options, on socket2: family, type, `setsockopt`, bind, listen, connect.
//!
//! Everything that makes a socket goes through here so every subcommand gets the
//! same options and the same error wording. This module knows nothing about what
//! is sent over the sockets it makes.

mod packet;
mod unix;

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::error::{Error, Result};

pub use packet::{PacketListener, PacketSock};
pub use unix::{bind_unix, connect_unix, UnixPathGuard};

/// Socket options a user can set from the command line (the tutorial's `setsockopt`).
#[derive(Debug, Clone, Default)]
pub struct SockOpts {
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `SO_KEEPALIVE` with this idle time before the first probe.
    pub keepalive: Option<Duration>,
    /// `SO_RCVBUF` in bytes.
    pub rcvbuf: Option<usize>,
    /// `SO_SNDBUF` in bytes.
    pub sndbuf: Option<usize>,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`.
    pub ttl: Option<u32>,
    /// Local address to bind before connecting.
    pub source: Option<SocketAddr>,
    /// Listening on an IPv6 address: `IPV6_V6ONLY` (`listen -6`). Off, `[::]`
    /// is dual-stack and also takes IPv4 clients.
    pub v6only: bool,
}

impl SockOpts {
    /// Applies the options that make sense for this socket.
    pub fn apply(&self, sock: &Socket, addr_is_v6: bool, stream: bool) -> std::io::Result<()> {
        if stream && self.nodelay {
            sock.set_nodelay(true)?;
        }
        if let (true, Some(idle)) = (stream, self.keepalive) {
            let ka = TcpKeepalive::new().with_time(idle).with_interval(idle);
            sock.set_tcp_keepalive(&ka)?;
        }
        if let Some(n) = self.rcvbuf {
            sock.set_recv_buffer_size(n)?;
        }
        if let Some(n) = self.sndbuf {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(ttl) = self.ttl {
            if addr_is_v6 {
                sock.set_unicast_hops_v6(ttl)?;
            } else {
                sock.set_ttl(ttl)?;
            }
        }
        Ok(())
    }
}

fn ip_socket(addr: &SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(*addr), ty.cloexec(), Some(proto))?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Connects a TCP socket to `addr`, giving up after `wait`.
pub async fn connect_tcp(addr: SocketAddr, opts: &SockOpts, wait: Duration) -> Result<TcpStream> {
    let what = || format!("cannot connect to {addr}");
    let sock = ip_socket(&addr, Type::STREAM, Protocol::TCP).map_err(|e| Error::io(what(), e))?;
    opts.apply(&sock, addr.is_ipv6(), true)
        .map_err(|e| Error::io(format!("cannot set socket options for {addr}"), e))?;
    if let Some(src) = opts.source {
        sock.bind(&src.into())
            .map_err(|e| Error::io(format!("cannot bind source address {src}"), e))?;
    }
    let sock = TcpSocket::from_std_stream(sock.into());
    match tokio::time::timeout(wait, sock.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(Error::io(what(), e)),
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: wait,
        }),
    }
}

/// Binds and listens on a TCP address with `SO_REUSEADDR`; `[::]` is dual-stack
/// unless [`SockOpts::v6only`].
pub fn listen_tcp(addr: SocketAddr, backlog: u32, opts: &SockOpts) -> Result<TcpListener> {
    let sock = bind_ip(addr, Type::STREAM, Protocol::TCP, opts)?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    TcpListener::from_std(sock.into()).map_err(|e| Error::io("cannot register listener", e))
}

/// Binds a UDP socket (for listening).
pub fn bind_udp(addr: SocketAddr, opts: &SockOpts) -> Result<PacketSock> {
    let sock = bind_ip(addr, Type::DGRAM, Protocol::UDP, opts)?;
    PacketSock::new(sock)
}

/// Creates a UDP socket connected to `addr` (so ICMP errors surface as `ECONNREFUSED`).
pub fn connect_udp(addr: SocketAddr, opts: &SockOpts) -> Result<PacketSock> {
    let what = || format!("cannot connect to udp://{addr}");
    let sock = ip_socket(&addr, Type::DGRAM, Protocol::UDP).map_err(|e| Error::io(what(), e))?;
    opts.apply(&sock, addr.is_ipv6(), false)
        .map_err(|e| Error::io(format!("cannot set socket options for {addr}"), e))?;
    if let Some(src) = opts.source {
        sock.bind(&src.into())
            .map_err(|e| Error::io(format!("cannot bind source address {src}"), e))?;
    }
    sock.connect(&addr.into())
        .map_err(|e| Error::io(what(), e))?;
    PacketSock::new(sock)
}

fn bind_ip(addr: SocketAddr, ty: Type, proto: Protocol, opts: &SockOpts) -> Result<Socket> {
    let what = || format!("cannot bind {addr}");
    let sock = match ip_socket(&addr, ty, proto) {
        Ok(s) => s,
        // A kernel without IPv6: "all interfaces" falls back to IPv4.
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() && !opts.v6only => {
            tracing::debug!("IPv6 unavailable ({e}), binding 0.0.0.0");
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            return bind_ip(v4, ty, proto, opts);
        }
        Err(e) => return Err(Error::io(what(), e)),
    };
    if addr.is_ipv6() {
        sock.set_only_v6(opts.v6only)
            .map_err(|e| Error::io(what(), e))?;
    }
    if ty == Type::STREAM {
        sock.set_reuse_address(true)
            .map_err(|e| Error::io(what(), e))?;
    }
    opts.apply(&sock, addr.is_ipv6(), ty == Type::STREAM)
        .map_err(|e| Error::io(format!("cannot set socket options for {addr}"), e))?;
    sock.bind(&SockAddr::from(addr))
        .map_err(|e| Error::io(what(), e))?;
    Ok(sock)
}

/// Human form of a socket address: `127.0.0.1:80`, `[::1]:80`, `/path`, `@name`, `(unnamed)`.
/// IPv4-mapped IPv6 addresses (from dual-stack listeners) are shown as IPv4.
pub fn fmt_sockaddr(addr: &SockAddr) -> String {
    if let Some(sa) = addr.as_socket() {
        return fmt_ip(sa);
    }
    if let Some(path) = addr.as_pathname() {
        return path.display().to_string();
    }
    if let Some(name) = addr.as_abstract_namespace() {
        return format!("@{}", String::from_utf8_lossy(name));
    }
    "(unnamed)".to_string()
}

/// Socket address with IPv4-mapped IPv6 shown as plain IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Formats an IP socket address, unmapping IPv4-mapped IPv6.
pub fn fmt_ip(addr: SocketAddr) -> String {
    canonical(addr).to_string()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so a server can hold
/// `want` descriptors; warns when even the hard limit is lower. Returns the
/// soft limit now in force (0 when it cannot be read).
pub fn raise_nofile_limit(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((mut soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        soft = hard;
    }
    if soft < want {
        let clients = want.saturating_sub(64);
        let s = if clients == 1 { "" } else { "s" };
        tracing::warn!(
            "open-file limit is {soft} but {clients} client{s} need about {want}; raise it with ulimit -n"
        );
    }
    soft
}
