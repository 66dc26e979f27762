//! ICMP sockets: a raw socket (`SOCK_RAW`) when the process may open one (root or
//! `CAP_NET_RAW`), otherwise the unprivileged ICMP datagram socket (`SOCK_DGRAM` +
//! `IPPROTO_ICMP`, allowed by `net.ipv4.ping_group_range`), registered with tokio.
//!
//! Timestamps are taken as close to the system call as user space can: the clock is
//! read immediately before `sendto`, and replies carry the kernel's own receive time
//! (`SO_TIMESTAMPNS`, read with `recvmsg` together with the TTL or hop limit). This
//! module moves bytes and control messages; what the bytes mean is [`super::packet`]'s.

use crate::util::as_uninit;
use std::io;
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::packet::{self, Version};
use crate::error::{Error, Result};

/// `ICMP_FILTER` (linux/icmp.h), at level `SOL_RAW`: a bit per ICMP type to drop.
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (netinet/icmp6.h), at level `IPPROTO_ICMPV6`: 256 bits, set = drop.
const ICMP6_FILTER: libc::c_int = 1;
/// Room for a timestamp, a TTL and an extended error with its offender address.
const CONTROL_LEN: usize = 512;

/// Which kind of ICMP socket is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_RAW`: sees every ICMP message for the host; IPv4 reads include the IP header.
    Raw,
    /// `SOCK_DGRAM` + `IPPROTO_ICMP`/`IPPROTO_ICMPV6`: the kernel picks the echo
    /// identifier and delivers only replies to it.
    Dgram,
}

/// How to open the socket.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// ICMP over IPv4 or ICMPv6 over IPv6.
    pub version: Version,
    /// `IP_HDRINCL`: the caller writes the IPv4 header (needs a raw socket).
    pub header_included: bool,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS` (ignored with `header_included`: the header says).
    pub ttl: Option<u8>,
    /// Set DF on every datagram (`IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`), IPv4 only.
    pub dont_fragment: bool,
    /// `-M`: path MTU discovery (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`, one of
    /// the `IP_PMTUDISC_*` values, which IPv6 shares).
    pub mtu_discover: Option<libc::c_int>,
    /// `-I IFACE`: send and receive through this interface only (`SO_BINDTODEVICE`).
    pub device: Option<&'a str>,
    /// `-I ADDR`: the source address of the requests (bound before the first one).
    pub source: Option<IpAddr>,
}

/// The two clocks read immediately before a send.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// Monotonic.
    pub mono: Instant,
    /// Wall clock since the epoch (to pair with kernel receive timestamps).
    pub wall: Option<Duration>,
}

/// One datagram read from the socket; its bytes are in the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// Who sent it.
    pub from: Option<IpAddr>,
    /// TTL or hop limit from the control messages (not for raw IPv4: read the header).
    pub ttl: Option<u8>,
    /// The kernel's receive timestamp, wall clock since the epoch.
    pub kernel_time: Option<Duration>,
    /// Monotonic clock read right after `recvmsg` returned.
    pub at: Instant,
}

/// An error the kernel queued for the socket (`IP_RECVERR` / `IPV6_RECVERR`): on
/// datagram ICMP sockets this is how ICMP errors about our requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedErr {
    /// The errno it stands for.
    pub errno: u32,
    /// `SO_EE_ORIGIN_*`: local, ICMP or ICMPv6.
    pub origin: u8,
    /// ICMP type, for ICMP origins.
    pub icmp_type: u8,
    /// ICMP code, for ICMP origins.
    pub code: u8,
    /// Extra information (e.g. the MTU).
    pub info: u32,
    /// The host or router that sent the ICMP error.
    pub offender: Option<IpAddr>,
}

impl ExtendedErr {
    /// True when the error came from an ICMP or ICMPv6 message.
    pub fn is_icmp(&self) -> bool {
        self.origin == libc::SO_EE_ORIGIN_ICMP || self.origin == libc::SO_EE_ORIGIN_ICMP6
    }
}

/// A queued error and how many bytes of the request it quotes are in the buffer.
#[derive(Debug, Clone, Copy)]
pub struct QueuedError {
    /// Bytes of the quoted request (its ICMP header first) in the caller's buffer.
    pub len: usize,
    /// The error.
    pub err: ExtendedErr,
}

/// What the control messages of one `recvmsg` said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ancillary {
    /// `SCM_TIMESTAMPNS`, as a duration since the epoch.
    pub kernel_time: Option<Duration>,
    /// `IP_TTL` or `IPV6_HOPLIMIT`.
    pub ttl: Option<u8>,
    /// `IP_RECVERR` or `IPV6_RECVERR`.
    pub ext_err: Option<ExtendedErr>,
}

/// An open ICMP socket registered with the runtime.
#[derive(Debug)]
pub struct IcmpSocket {
    fd: AsyncFd<Socket>,
    kind: SocketKind,
    version: Version,
}

fn set_opt_bytes(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the fd stays open for the borrow of `sock`; the pointer and length
    // describe `value`, which outlives the call; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_opt_int(sock: &Socket, level: libc::c_int, name: libc::c_int, v: i32) -> io::Result<()> {
    set_opt_bytes(sock, level, name, &v.to_ne_bytes())
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

fn domain(version: Version) -> (Domain, Protocol) {
    match version {
        Version::V4 => (Domain::IPV4, Protocol::ICMPV4),
        Version::V6 => (Domain::IPV6, Protocol::ICMPV6),
    }
}

fn unspecified(version: Version) -> IpAddr {
    match version {
        Version::V4 => Ipv4Addr::UNSPECIFIED.into(),
        Version::V6 => Ipv6Addr::UNSPECIFIED.into(),
    }
}

fn flavour(version: Version) -> &'static str {
    match version {
        Version::V4 => "ICMP",
        Version::V6 => "ICMPv6",
    }
}

/// The groups `net.ipv4.ping_group_range` allows, as the file says them ("1 0").
pub fn ping_group_range() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").ok()?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Why neither kind of ICMP socket could be opened, and how to allow one.
fn permission_error(version: Version) -> Error {
    // SAFETY: getegid(2) cannot fail and has no memory effects.
    let gid = unsafe { libc::getegid() };
    let now = ping_group_range()
        .map(|r| format!(" (now \"{r}\")"))
        .unwrap_or_default();
    Error::io(
        format!("cannot open an {} socket", flavour(version)),
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "raw sockets need root or CAP_NET_RAW; unprivileged ICMP needs your group \
                 (gid {gid}) in net.ipv4.ping_group_range{now}, e.g. \
                 sysctl -w net.ipv4.ping_group_range=\"0 2147483647\""
            ),
        ),
    )
}

/// The bit mask of ICMPv4 types a raw socket should not even wake us for: all but
/// echo replies and the errors that can quote an echo request.
fn icmp_filter_v4() -> u32 {
    use packet::v4::*;
    let pass = [
        ECHO_REPLY,
        DEST_UNREACH,
        SOURCE_QUENCH,
        REDIRECT,
        TIME_EXCEEDED,
        PARAMETER_PROBLEM,
    ];
    !pass.iter().fold(0u32, |m, t| m | (1u32 << t))
}

/// `struct icmp6_filter` for ICMPv6 raw sockets: block all, pass replies and errors.
fn icmp_filter_v6() -> [u8; 32] {
    use packet::v6::*;
    let mut words = [u32::MAX; 8];
    for t in [
        ECHO_REPLY,
        DEST_UNREACH,
        PACKET_TOO_BIG,
        TIME_EXCEEDED,
        PARAMETER_PROBLEM,
    ] {
        words[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    out
}

impl IcmpSocket {
    /// Opens a raw ICMP socket if allowed, else the unprivileged datagram kind, and
    /// applies the options. With `header_included` only a raw socket will do.
    pub fn open(opts: &Options<'_>) -> Result<IcmpSocket> {
        let (dom, proto) = domain(opts.version);
        let what = || format!("cannot open an {} socket", flavour(opts.version));
        let (sock, kind) = match Socket::new(dom, Type::RAW.cloexec(), Some(proto)) {
            Ok(s) => (s, SocketKind::Raw),
            Err(e) if opts.header_included => {
                return Err(if is_permission(&e) {
                    Error::io(
                        "cannot open a raw ICMP socket for --raw-header",
                        io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            "IP_HDRINCL needs a raw socket, and raw sockets need root or CAP_NET_RAW",
                        ),
                    )
                } else {
                    Error::io(what(), e)
                });
            }
            Err(raw_err) => {
                tracing::debug!("no raw ICMP socket ({raw_err}); trying SOCK_DGRAM");
                match Socket::new(dom, Type::DGRAM.cloexec(), Some(proto)) {
                    Ok(s) => (s, SocketKind::Dgram),
                    Err(e) if is_permission(&e) && is_permission(&raw_err) => {
                        return Err(permission_error(opts.version));
                    }
                    // Report the failure that is not about permission: it says more.
                    Err(e) if is_permission(&e) => return Err(Error::io(what(), raw_err)),
                    Err(e) => return Err(Error::io(what(), e)),
                }
            }
        };
        Self::configure(&sock, kind, opts).map_err(|e| {
            Error::io(
                format!("cannot set options on the {} socket", flavour(opts.version)),
                e,
            )
        })?;
        // SAFETY: `Socket` owns its fd and always returns that same fd, which stays
        // open until the `AsyncFd` (and with it the `Socket`) is dropped.
        let fd = unsafe { AsyncFd::register(sock) }.map_err(|e| {
            Error::io(
                "cannot register the ICMP socket",
                io::Error::other(e.to_string()),
            )
        })?;
        Ok(IcmpSocket {
            fd,
            kind,
            version: opts.version,
        })
    }

    fn configure(sock: &Socket, kind: SocketKind, opts: &Options<'_>) -> io::Result<()> {
        sock.set_nonblocking(true)?;
        set_opt_int(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        match (opts.version, kind) {
            (Version::V4, SocketKind::Raw) => {
                // Only an optimisation: replies are filtered in user space anyway.
                if let Err(e) = set_opt_bytes(
                    sock,
                    libc::SOL_RAW,
                    ICMP_FILTER,
                    &icmp_filter_v4().to_ne_bytes(),
                ) {
                    tracing::debug!("ICMP_FILTER not set ({e})");
                }
            }
            (Version::V4, SocketKind::Dgram) => {
                set_opt_int(sock, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
                set_opt_int(sock, libc::IPPROTO_IP, libc::IP_RECVERR, 1)?;
            }
            (Version::V6, SocketKind::Raw) => {
                if let Err(e) =
                    set_opt_bytes(sock, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &icmp_filter_v6())
                {
                    tracing::debug!("ICMP6_FILTER not set ({e})");
                }
                sock.set_recv_hoplimit_v6(true)?;
            }
            (Version::V6, SocketKind::Dgram) => {
                sock.set_recv_hoplimit_v6(true)?;
                set_opt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)?;
            }
        }
        if opts.header_included {
            sock.set_header_included_v4(true)?;
        } else if let Some(ttl) = opts.ttl {
            match opts.version {
                Version::V4 => sock.set_ttl(u32::from(ttl))?,
                Version::V6 => sock.set_unicast_hops_v6(u32::from(ttl))?,
            }
        }
        if opts.dont_fragment && !opts.header_included && opts.version == Version::V4 {
            set_opt_int(
                sock,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_DO,
            )?;
        }
        if let Some(mode) = opts.mtu_discover {
            match opts.version {
                Version::V4 => set_opt_int(sock, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)?,
                Version::V6 => {
                    set_opt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, mode)?
                }
            }
        }
        if let Some(dev) = opts.device {
            sock.bind_device(Some(dev.as_bytes()))
                .map_err(|e| io::Error::new(e.kind(), format!("SO_BINDTODEVICE {dev}: {e}")))?;
        }
        if kind == SocketKind::Dgram || opts.source.is_some() {
            // Binding now makes the kernel choose the echo identifier (the socket's
            // "port") before the first request, so replies can be matched to it;
            // with -I ADDR it also fixes the source address.
            let ip = opts.source.unwrap_or_else(|| unspecified(opts.version));
            sock.bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind to {ip}: {e}")))?;
        }
        Ok(())
    }

    /// Raw or datagram.
    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// For a datagram socket, the identifier the kernel writes into every request
    /// (its local "port"); `None` for raw sockets, where the caller chooses.
    pub fn kernel_ident(&self) -> io::Result<Option<u16>> {
        if self.kind == SocketKind::Raw {
            return Ok(None);
        }
        let addr = self.fd.get_ref().local_addr()?;
        Ok(addr.as_socket().map(|a| a.port()))
    }

    /// Sends one datagram to `dest`, reading the clocks immediately before `sendto`.
    pub async fn send_to(&self, packet: &[u8], dest: &SockAddr) -> io::Result<Stamp> {
        self.fd
            .async_io(Interest::WRITABLE, |s| {
                let mono = Instant::now();
                let wall = SystemTime::now().duration_since(UNIX_EPOCH).ok();
                s.send_to(packet, dest).map(|_| Stamp { mono, wall })
            })
            .await
    }

    /// Receives one datagram into `buf`, with its timestamp and TTL.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let version = self.version;
        // A queued error (IP_RECVERR) signals EPOLLERR without EPOLLIN: wait for
        // both, so that recvmsg reports it and the caller reads the error queue.
        self.fd
            .async_io(Interest::READABLE | Interest::ERROR, |s| {
                let mut control = [0u8; CONTROL_LEN];
                let (len, from, clen) = recvmsg(s, version, buf, &mut control, 0)?;
                let at = Instant::now();
                let anc = parse_control(control.get(..clen).unwrap_or(&control));
                Ok(Received {
                    len,
                    from,
                    ttl: anc.ttl,
                    kernel_time: anc.kernel_time,
                    at,
                })
            })
            .await
    }

    /// Takes one error from the socket's error queue (never waits); `None` when empty.
    pub fn recv_error(&self, buf: &mut [u8]) -> io::Result<Option<QueuedError>> {
        let mut control = [0u8; CONTROL_LEN];
        match recvmsg(
            self.fd.get_ref(),
            self.version,
            buf,
            &mut control,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        ) {
            Ok((len, _, clen)) => {
                let anc = parse_control(control.get(..clen).unwrap_or(&control));
                Ok(anc.ext_err.map(|err| QueuedError { len, err }))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn recvmsg(
    sock: &Socket,
    version: Version,
    buf: &mut [u8],
    control: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<IpAddr>, usize)> {
    let mut addr = SockAddr::from(SocketAddr::new(unspecified(version), 0));
    let (len, clen) = {
        let mut bufs = [MaybeUninitSlice::new(as_uninit(buf))];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut addr)
            .with_buffers(&mut bufs)
            .with_control(as_uninit(control));
        let len = sock.recvmsg(&mut msg, flags)?;
        (len, msg.control_len())
    };
    let from = addr
        .as_socket()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    Ok((len, from, clen))
}

/// The IPv4 address the kernel would send from towards `dest` (a connected UDP socket
/// asks the routing table; nothing is sent).
pub fn source_for(dest: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let probe = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    probe.connect(&SocketAddr::new(dest.into(), 9).into())?;
    match probe.local_addr()?.as_socket() {
        Some(SocketAddr::V4(a)) => Ok(*a.ip()),
        _ => Err(io::Error::other("no IPv4 source address")),
    }
}

fn read_uint(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    Some(match width {
        1 => u64::from(b[0]),
        2 => u64::from(u16::from_ne_bytes(b.try_into().ok()?)),
        4 => u64::from(u32::from_ne_bytes(b.try_into().ok()?)),
        8 => u64::from_ne_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

fn read_int(bytes: &[u8], at: usize, width: usize) -> Option<i64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    Some(match width {
        4 => i64::from(i32::from_ne_bytes(b.try_into().ok()?)),
        8 => i64::from_ne_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

/// Size of a field's type, from a projection that is never called.
fn field_size<S, T>(_: fn(&S) -> &T) -> usize {
    size_of::<T>()
}

/// Parses a `sockaddr_in` / `sockaddr_in6` (the offender after an extended error).
fn parse_sockaddr(b: &[u8]) -> Option<IpAddr> {
    let family = read_uint(b, 0, size_of::<libc::sa_family_t>())?;
    if family == libc::AF_INET as u64 {
        let at = offset_of!(libc::sockaddr_in, sin_addr);
        let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::from(o))
    } else if family == libc::AF_INET6 as u64 {
        let at = offset_of!(libc::sockaddr_in6, sin6_addr);
        let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::from(o))
    } else {
        None
    }
}

fn parse_ext_err(data: &[u8]) -> Option<ExtendedErr> {
    type E = libc::sock_extended_err;
    let u8_at = |at| data.get(at).copied();
    let errno = read_uint(data, offset_of!(E, ee_errno), 4)? as u32;
    let offender = data.get(size_of::<E>()..).and_then(parse_sockaddr);
    Some(ExtendedErr {
        errno,
        origin: u8_at(offset_of!(E, ee_origin))?,
        icmp_type: u8_at(offset_of!(E, ee_type))?,
        code: u8_at(offset_of!(E, ee_code))?,
        info: read_uint(data, offset_of!(E, ee_info), 4)? as u32,
        offender,
    })
}

/// Walks a control buffer as `recvmsg` fills it (`struct cmsghdr` records, each
/// aligned to `size_t`) and picks out timestamp, TTL / hop limit and extended error.
/// Malformed or truncated records end the walk; nothing here can panic.
pub fn parse_control(control: &[u8]) -> Ancillary {
    let align = size_of::<usize>();
    let align_up = |n: usize| n.checked_add(align - 1).map(|v| v & !(align - 1));
    let hdr_len = size_of::<libc::cmsghdr>();
    let Some(data_off) = align_up(hdr_len) else {
        return Ancillary::default();
    };
    let len_off = offset_of!(libc::cmsghdr, cmsg_len);
    let len_width = field_size(|h: &libc::cmsghdr| &h.cmsg_len);
    let level_off = offset_of!(libc::cmsghdr, cmsg_level);
    let type_off = offset_of!(libc::cmsghdr, cmsg_type);

    let mut out = Ancillary::default();
    let mut at = 0usize;
    while let Some(rec) = control.get(at..) {
        let Some(len) = read_uint(rec, len_off, len_width).and_then(|l| usize::try_from(l).ok())
        else {
            break;
        };
        if len < data_off || len > rec.len() {
            break;
        }
        let (Some(level), Some(ty)) = (read_int(rec, level_off, 4), read_int(rec, type_off, 4))
        else {
            break;
        };
        let data = &rec[data_off..len];
        let (level, ty) = (level as libc::c_int, ty as libc::c_int);
        if level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPNS {
            let sec = read_int(
                data,
                offset_of!(libc::timespec, tv_sec),
                size_of::<libc::time_t>(),
            );
            let nsec = read_int(
                data,
                offset_of!(libc::timespec, tv_nsec),
                size_of::<libc::c_long>(),
            );
            if let (Some(sec), Some(nsec)) = (sec, nsec) {
                if let (Ok(sec), Ok(nsec)) = (u64::try_from(sec), u32::try_from(nsec)) {
                    if nsec < 1_000_000_000 {
                        out.kernel_time = Some(Duration::new(sec, nsec));
                    }
                }
            }
        } else if (level == libc::IPPROTO_IP && ty == libc::IP_TTL)
            || (level == libc::IPPROTO_IPV6 && ty == libc::IPV6_HOPLIMIT)
        {
            out.ttl = read_int(data, 0, 4).and_then(|t| u8::try_from(t).ok());
        } else if (level == libc::IPPROTO_IP && ty == libc::IP_RECVERR)
            || (level == libc::IPPROTO_IPV6 && ty == libc::IPV6_RECVERR)
        {
            out.ext_err = parse_ext_err(data);
        }
        match align_up(len) {
            Some(next) if next > 0 => at = at.saturating_add(next),
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let align = size_of::<usize>();
        let hdr = size_of::<libc::cmsghdr>().div_ceil(align) * align;
        let len = hdr + data.len();
        let mut rec = vec![0u8; len.div_ceil(align) * align];
        let lw = field_size(|h: &libc::cmsghdr| &h.cmsg_len);
        let lo = offset_of!(libc::cmsghdr, cmsg_len);
        rec[lo..lo + lw].copy_from_slice(&(len as u64).to_ne_bytes()[..lw]);
        let l = offset_of!(libc::cmsghdr, cmsg_level);
        rec[l..l + 4].copy_from_slice(&level.to_ne_bytes());
        let t = offset_of!(libc::cmsghdr, cmsg_type);
        rec[t..t + 4].copy_from_slice(&ty.to_ne_bytes());
        rec[hdr..hdr + data.len()].copy_from_slice(data);
        rec
    }

    fn timespec(sec: i64, nsec: i64) -> Vec<u8> {
        let mut d = vec![0u8; size_of::<libc::timespec>()];
        let so = offset_of!(libc::timespec, tv_sec);
        let sw = size_of::<libc::time_t>();
        d[so..so + sw].copy_from_slice(&sec.to_ne_bytes()[..sw]);
        let no = offset_of!(libc::timespec, tv_nsec);
        let nw = size_of::<libc::c_long>();
        d[no..no + nw].copy_from_slice(&nsec.to_ne_bytes()[..nw]);
        d
    }

    #[test]
    fn reads_timestamp_ttl_and_hoplimit() {
        let mut buf = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec(17, 42));
        buf.extend(cmsg(libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes()));
        let a = parse_control(&buf);
        assert_eq!(a.kernel_time, Some(Duration::new(17, 42)));
        assert_eq!(a.ttl, Some(64));
        assert_eq!(a.ext_err, None);
        let b = parse_control(&cmsg(
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &255i32.to_ne_bytes(),
        ));
        assert_eq!(b.ttl, Some(255));
        // Out-of-range values are ignored rather than wrapped.
        let c = parse_control(&cmsg(libc::IPPROTO_IP, libc::IP_TTL, &300i32.to_ne_bytes()));
        assert_eq!(c.ttl, None);
        let d = parse_control(&cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec(-1, 0),
        ));
        assert_eq!(d.kernel_time, None);
    }

    #[test]
    fn reads_extended_errors_with_offender() {
        let mut e = vec![0u8; size_of::<libc::sock_extended_err>()];
        e[offset_of!(libc::sock_extended_err, ee_errno)..][..4]
            .copy_from_slice(&(libc::EHOSTUNREACH as u32).to_ne_bytes());
        e[offset_of!(libc::sock_extended_err, ee_origin)] = libc::SO_EE_ORIGIN_ICMP;
        e[offset_of!(libc::sock_extended_err, ee_type)] = 3;
        e[offset_of!(libc::sock_extended_err, ee_code)] = 1;
        let mut sin = vec![0u8; size_of::<libc::sockaddr_in>()];
        sin[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        let ao = offset_of!(libc::sockaddr_in, sin_addr);
        sin[ao..ao + 4].copy_from_slice(&[10, 1, 2, 3]);
        e.extend(sin);
        let a = parse_control(&cmsg(libc::IPPROTO_IP, libc::IP_RECVERR, &e));
        let err = a.ext_err.unwrap();
        assert!(err.is_icmp());
        assert_eq!(
            (err.errno, err.icmp_type, err.code),
            (libc::EHOSTUNREACH as u32, 3, 1)
        );
        assert_eq!(err.offender, Some(IpAddr::from([10, 1, 2, 3])));
    }

    #[test]
    fn arbitrary_control_bytes_never_panic() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let n = (next() % 200) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            // Plausible lengths and levels now and then, to reach the record bodies.
            if round % 2 == 0 && b.len() >= 16 {
                let len = next() % 64;
                b[..8].copy_from_slice(&len.to_ne_bytes());
                let choices = [
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS),
                    (libc::IPPROTO_IP, libc::IP_TTL),
                    (libc::IPPROTO_IP, libc::IP_RECVERR),
                    (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
                ];
                let (l, t) = choices[(next() % 4) as usize];
                b[8..12].copy_from_slice(&l.to_ne_bytes());
                b[12..16].copy_from_slice(&t.to_ne_bytes());
            }
            let _ = parse_control(&b);
        }
    }

    #[test]
    fn filters_pass_replies_and_errors_only() {
        let f = icmp_filter_v4();
        assert_eq!(f & 1, 0, "echo reply passes");
        assert_ne!(f & (1 << 8), 0, "echo request is dropped");
        assert_eq!(f & (1 << 11), 0, "time exceeded passes");
        let f6 = icmp_filter_v6();
        let word =
            |t: u8| u32::from_ne_bytes(f6[usize::from(t >> 5) * 4..][..4].try_into().unwrap());
        assert_eq!(word(129) & (1 << (129 & 31)), 0);
        assert_ne!(word(128) & (1 << (128 & 31)), 0);
        assert_eq!(word(1) & (1 << 1), 0);
    }
}
