//! ICMP, ICMPv6 and IPv4 header wire formats: the Internet checksum, echo requests
//! to send, and replies and errors to recognise.
//!
//! Sans-IO: bytes in, values out. Nothing here touches a socket, and no input, however
//! short or malformed, makes a function here panic (the tests feed it arbitrary bytes).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Length of an ICMP or ICMPv6 echo header (type, code, checksum, identifier, sequence).
pub const ICMP_HEADER_LEN: usize = 8;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// Largest echo payload over IPv4: 65535 minus the IPv4 and ICMP headers.
pub const MAX_PAYLOAD_V4: usize = 65535 - IPV4_HEADER_LEN - ICMP_HEADER_LEN;
/// Largest echo payload over IPv6: the 16-bit payload length minus the ICMPv6 header.
pub const MAX_PAYLOAD_V6: usize = 65535 - ICMP_HEADER_LEN;
/// Payloads at least this long start with the run's nonce.
pub const NONCE_LEN: usize = 8;

/// ICMPv4 type numbers.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (deprecated, still recognised).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// ICMPv6 type numbers.
pub mod v6 {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time (hop limit) exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
}

/// IP version, which decides the ICMP flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// ICMP over IPv4.
    V4,
    /// ICMPv6 over IPv6.
    V6,
}

impl Version {
    /// The version of an address.
    pub fn of(addr: IpAddr) -> Version {
        match addr {
            IpAddr::V4(_) => Version::V4,
            IpAddr::V6(_) => Version::V6,
        }
    }

    /// Type number of an echo request.
    pub fn echo_request(self) -> u8 {
        match self {
            Version::V4 => v4::ECHO_REQUEST,
            Version::V6 => v6::ECHO_REQUEST,
        }
    }

    /// Type number of an echo reply.
    pub fn echo_reply(self) -> u8 {
        match self {
            Version::V4 => v4::ECHO_REPLY,
            Version::V6 => v6::ECHO_REPLY,
        }
    }

    /// Largest payload an echo request can carry.
    pub fn max_payload(self) -> usize {
        match self {
            Version::V4 => MAX_PAYLOAD_V4,
            Version::V6 => MAX_PAYLOAD_V6,
        }
    }

    /// Bytes of headers the network adds around the payload (IP header + ICMP header);
    /// for IPv6 only the ICMPv6 header, as iputils counts it.
    pub fn overhead(self) -> usize {
        match self {
            Version::V4 => IPV4_HEADER_LEN + ICMP_HEADER_LEN,
            Version::V6 => ICMP_HEADER_LEN,
        }
    }
}

/// Why bytes could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// The IP version nibble is not 4.
    NotIpv4,
    /// The IPv4 header length field is below 20 bytes or beyond the packet.
    BadHeaderLength,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketError::Truncated => "truncated packet",
            PacketError::NotIpv4 => "not an IPv4 packet",
            PacketError::BadHeaderLength => "bad IPv4 header length",
        })
    }
}

impl std::error::Error for PacketError {}

/// The Internet checksum (RFC 1071): one's complement of the one's complement sum of
/// 16-bit big-endian words, an odd last byte padded with zero. A buffer that already
/// holds a correct checksum sums to 0.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The payload of an echo request: the run's nonce first (when `size` leaves room for
/// it), so that replies to other processes' pings with the same identifier are told
/// apart, then the iputils pattern (byte `i` holds `i`).
pub fn echo_payload(size: usize, nonce: u64) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size).map(|i| i as u8).collect();
    if size >= NONCE_LEN {
        p[..NONCE_LEN].copy_from_slice(&nonce.to_be_bytes());
    }
    p
}

/// As [`echo_payload`], with the bytes after the nonce taken from `pattern`
/// repeated (`-p`, as iputils fills the pad bytes) when there is one.
pub fn echo_payload_with(size: usize, nonce: u64, pattern: Option<&[u8]>) -> Vec<u8> {
    let mut p = echo_payload(size, nonce);
    if let Some(pat) = pattern.filter(|p| !p.is_empty()) {
        // The nonce stays when the payload holds one (see `echo_payload`).
        let from = if size >= NONCE_LEN { NONCE_LEN } else { 0 };
        for (i, b) in p[from..].iter_mut().enumerate() {
            *b = pat[i % pat.len()];
        }
    }
    p
}

/// The nonce a payload starts with, if it is long enough to hold one.
pub fn payload_nonce(payload: &[u8]) -> Option<u64> {
    let b: [u8; NONCE_LEN] = payload.get(..NONCE_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// Builds an echo request. For ICMPv4 the checksum is filled in; for ICMPv6 it is left
/// zero, because it covers the IPv6 pseudo-header and the kernel always computes it.
pub fn echo_request(version: Version, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(ICMP_HEADER_LEN + payload.len());
    p.push(version.echo_request());
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if version == Version::V4 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// An IPv4 header (RFC 791), as sent with `IP_HDRINCL` or read off a raw socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Header length in bytes (IHL × 4), 20 to 60.
    pub header_len: usize,
    /// Type of service / DSCP + ECN.
    pub tos: u8,
    /// Total length of the datagram, header included.
    pub total_len: u16,
    /// Identification.
    pub id: u16,
    /// The DF (don't fragment) flag.
    pub dont_fragment: bool,
    /// The MF (more fragments) flag.
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload (1 for ICMP).
    pub protocol: u8,
    /// Header checksum as found or as written.
    pub checksum: u16,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// A 20-byte header for an ICMP datagram with `payload_len` bytes after the header;
    /// the checksum is computed by [`Ipv4Header::to_bytes`].
    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, ttl: u8) -> Self {
        Ipv4Header {
            header_len: IPV4_HEADER_LEN,
            tos: 0,
            total_len: (IPV4_HEADER_LEN + payload_len).min(usize::from(u16::MAX)) as u16,
            id: 0,
            dont_fragment: false,
            more_fragments: false,
            frag_offset: 0,
            ttl,
            protocol: PROTO_ICMP,
            checksum: 0,
            src,
            dst,
        }
    }

    /// Parses the header at the start of `packet`; returns it and the payload it
    /// announces (cut to what is there, so a truncated capture still parses).
    pub fn parse(packet: &[u8]) -> Result<(Ipv4Header, &[u8]), PacketError> {
        let first = *packet.first().ok_or(PacketError::Truncated)?;
        if first >> 4 != 4 {
            return Err(PacketError::NotIpv4);
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < IPV4_HEADER_LEN {
            return Err(PacketError::BadHeaderLength);
        }
        if packet.len() < IPV4_HEADER_LEN {
            return Err(PacketError::Truncated);
        }
        if packet.len() < header_len {
            return Err(PacketError::BadHeaderLength);
        }
        let get16 = |at| be16(packet, at).ok_or(PacketError::Truncated);
        let total_len = get16(2)?;
        let flags_frag = get16(6)?;
        let addr = |at| {
            be32(packet, at)
                .map(Ipv4Addr::from)
                .ok_or(PacketError::Truncated)
        };
        let h = Ipv4Header {
            header_len,
            tos: packet[1],
            total_len,
            id: get16(4)?,
            dont_fragment: flags_frag & 0x4000 != 0,
            more_fragments: flags_frag & 0x2000 != 0,
            frag_offset: flags_frag & 0x1fff,
            ttl: packet[8],
            protocol: packet[9],
            checksum: get16(10)?,
            src: addr(12)?,
            dst: addr(16)?,
        };
        // Raw sockets hand over what arrived; trust total_len only as an upper bound.
        let end = usize::from(total_len).clamp(header_len, packet.len());
        Ok((h, &packet[header_len..end]))
    }

    /// The 20 header bytes (options are not written) for `payload_len` bytes of
    /// payload, with the total length and the checksum computed here.
    pub fn header_bytes(&self, payload_len: usize) -> [u8; IPV4_HEADER_LEN] {
        let total = (IPV4_HEADER_LEN + payload_len).min(usize::from(u16::MAX)) as u16;
        let flags_frag = (u16::from(self.dont_fragment) << 14)
            | (u16::from(self.more_fragments) << 13)
            | (self.frag_offset & 0x1fff);
        let mut h = [0u8; IPV4_HEADER_LEN];
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.id.to_be_bytes());
        h[6..8].copy_from_slice(&flags_frag.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    /// The whole datagram: [`Ipv4Header::header_bytes`] followed by `payload`.
    pub fn to_bytes(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(IPV4_HEADER_LEN + payload.len());
        p.extend_from_slice(&self.header_bytes(payload.len()));
        p.extend_from_slice(payload);
        p
    }

    /// The header exactly as [`Ipv4Header::header_bytes`] writes it (20 bytes, total
    /// length and checksum filled in): what goes on the wire, for `-v`.
    pub fn finished(&self, payload_len: usize) -> Ipv4Header {
        let mut h = self.clone();
        let bytes = self.header_bytes(payload_len);
        h.header_len = IPV4_HEADER_LEN;
        h.total_len = u16::from_be_bytes([bytes[2], bytes[3]]);
        h.checksum = u16::from_be_bytes([bytes[10], bytes[11]]);
        h
    }
}

impl fmt::Display for Ipv4Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut flags = Vec::new();
        if self.dont_fragment {
            flags.push("DF");
        }
        if self.more_fragments {
            flags.push("MF");
        }
        let flags = if flags.is_empty() {
            "none".to_string()
        } else {
            flags.join(",")
        };
        write!(
            f,
            "version 4, ihl {} ({} bytes), tos 0x{:02x}, total length {}, id 0x{:04x}, \
             flags {}, fragment offset {}, ttl {}, protocol {}{}, checksum 0x{:04x}, {} -> {}",
            self.header_len / 4,
            self.header_len,
            self.tos,
            self.total_len,
            self.id,
            flags,
            self.frag_offset,
            self.ttl,
            self.protocol,
            if self.protocol == PROTO_ICMP {
                " (ICMP)"
            } else {
                ""
            },
            self.checksum,
            self.src,
            self.dst
        )
    }
}

/// The echo request an ICMP error message quotes: enough to tell whose it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted<'a> {
    /// Identifier of the quoted echo request.
    pub ident: u16,
    /// Sequence number of the quoted echo request.
    pub seq: u16,
    /// As much of its payload as the error carries (often only a prefix, or nothing).
    pub payload: &'a [u8],
}

/// What an ICMP or ICMPv6 message is, as far as ping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// An echo reply.
    EchoReply {
        /// Identifier (for unprivileged sockets, the socket's local "port").
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data after the echo header.
        payload: &'a [u8],
    },
    /// An echo request (a raw socket sees its own requests to a local address).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// An error message (unreachable, time exceeded, ...) quoting an echo request.
    Error {
        /// Extra word of the header: the MTU of "packet too big" / "fragmentation
        /// needed", the pointer of "parameter problem".
        info: u32,
        /// The quoted echo request, if the quoted datagram was one.
        quoted: Option<Quoted<'a>>,
    },
    /// Anything else.
    Other,
}

/// A parsed ICMP or ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Type.
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// Length of the whole message (header + data).
    pub len: usize,
    /// For ICMPv4, whether the checksum verifies. ICMPv6 checksums cover a
    /// pseudo-header and the kernel verifies them before delivery, so this is `true`.
    pub checksum_ok: bool,
    /// What the message is.
    pub body: Body<'a>,
}

fn is_error_type(version: Version, t: u8) -> bool {
    match version {
        Version::V4 => matches!(
            t,
            v4::DEST_UNREACH
                | v4::SOURCE_QUENCH
                | v4::REDIRECT
                | v4::TIME_EXCEEDED
                | v4::PARAMETER_PROBLEM
        ),
        Version::V6 => matches!(
            t,
            v6::DEST_UNREACH | v6::PACKET_TOO_BIG | v6::TIME_EXCEEDED | v6::PARAMETER_PROBLEM
        ),
    }
}

/// Parses an ICMP (`V4`) or ICMPv6 (`V6`) message, without any IP header in front.
pub fn parse_icmp(version: Version, msg: &[u8]) -> Result<Message<'_>, PacketError> {
    if msg.len() < ICMP_HEADER_LEN {
        return Err(PacketError::Truncated);
    }
    let icmp_type = msg[0];
    let code = msg[1];
    let checksum_ok = match version {
        Version::V4 => checksum(msg) == 0,
        Version::V6 => true,
    };
    let ident = be16(msg, 4).ok_or(PacketError::Truncated)?;
    let seq = be16(msg, 6).ok_or(PacketError::Truncated)?;
    let rest = &msg[ICMP_HEADER_LEN..];
    let body = if icmp_type == version.echo_reply() {
        Body::EchoReply {
            ident,
            seq,
            payload: rest,
        }
    } else if icmp_type == version.echo_request() {
        Body::EchoRequest { ident, seq }
    } else if is_error_type(version, icmp_type) {
        Body::Error {
            info: be32(msg, 4).unwrap_or(0),
            quoted: parse_quoted(version, rest),
        }
    } else {
        Body::Other
    };
    Ok(Message {
        icmp_type,
        code,
        len: msg.len(),
        checksum_ok,
        body,
    })
}

/// Parses the datagram an error message quotes (IP header + the start of its ICMP
/// message) and returns the echo request in it, if it is one.
pub fn parse_quoted(version: Version, quoted: &[u8]) -> Option<Quoted<'_>> {
    let icmp = match version {
        Version::V4 => {
            let (h, payload) = Ipv4Header::parse(quoted).ok()?;
            if h.protocol != PROTO_ICMP {
                return None;
            }
            payload
        }
        Version::V6 => {
            let header = quoted.get(..IPV6_HEADER_LEN)?;
            // Extension headers in the quote are rare for echo requests; such quotes
            // are not recognised rather than guessed at.
            if header[0] >> 4 != 6 || header[6] != PROTO_ICMPV6 {
                return None;
            }
            &quoted[IPV6_HEADER_LEN..]
        }
    };
    parse_echo_request(version, icmp)
}

/// Reads an echo request (as sent, or as quoted back in an error or by the kernel's
/// error queue): identifier, sequence and whatever payload is present.
pub fn parse_echo_request(version: Version, icmp: &[u8]) -> Option<Quoted<'_>> {
    if *icmp.first()? != version.echo_request() {
        return None;
    }
    Some(Quoted {
        ident: be16(icmp, 4)?,
        seq: be16(icmp, 6)?,
        payload: icmp.get(ICMP_HEADER_LEN..).unwrap_or(&[]),
    })
}

/// The words iputils uses for an ICMP error, e.g. "Destination Host Unreachable".
pub fn describe_error(version: Version, icmp_type: u8, code: u8, info: u32) -> String {
    match version {
        Version::V4 => describe_v4(icmp_type, code, info),
        Version::V6 => describe_v6(icmp_type, code, info),
    }
}

fn describe_v4(t: u8, code: u8, info: u32) -> String {
    let s = match (t, code) {
        (v4::DEST_UNREACH, 0) => "Destination Net Unreachable",
        (v4::DEST_UNREACH, 1) => "Destination Host Unreachable",
        (v4::DEST_UNREACH, 2) => "Destination Protocol Unreachable",
        (v4::DEST_UNREACH, 3) => "Destination Port Unreachable",
        (v4::DEST_UNREACH, 4) => {
            return format!("Frag needed and DF set (mtu = {})", info & 0xffff);
        }
        (v4::DEST_UNREACH, 5) => "Source Route Failed",
        (v4::DEST_UNREACH, 6) => "Destination Net Unknown",
        (v4::DEST_UNREACH, 7) => "Destination Host Unknown",
        (v4::DEST_UNREACH, 8) => "Source Host Isolated",
        (v4::DEST_UNREACH, 9) => "Destination Net Prohibited",
        (v4::DEST_UNREACH, 10) => "Destination Host Prohibited",
        (v4::DEST_UNREACH, 11) => "Destination Net Unreachable for Type of Service",
        (v4::DEST_UNREACH, 12) => "Destination Host Unreachable for Type of Service",
        (v4::DEST_UNREACH, 13) => "Packet filtered",
        (v4::DEST_UNREACH, 14) => "Precedence Violation",
        (v4::DEST_UNREACH, 15) => "Precedence Cutoff",
        (v4::DEST_UNREACH, _) => return format!("Dest Unreachable, Bad Code: {code}"),
        (v4::SOURCE_QUENCH, _) => "Source Quench",
        (v4::REDIRECT, 0) => "Redirect Network",
        (v4::REDIRECT, 1) => "Redirect Host",
        (v4::REDIRECT, 2) => "Redirect Type of Service and Network",
        (v4::REDIRECT, 3) => "Redirect Type of Service and Host",
        (v4::REDIRECT, _) => return format!("Redirect, Bad Code: {code}"),
        (v4::TIME_EXCEEDED, 0) => "Time to live exceeded",
        (v4::TIME_EXCEEDED, 1) => "Frag reassembly time exceeded",
        (v4::TIME_EXCEEDED, _) => return format!("Time exceeded, Bad Code: {code}"),
        (v4::PARAMETER_PROBLEM, _) => {
            return format!("Parameter problem: pointer = {}", info >> 24);
        }
        _ => return format!("Bad ICMP type: {t}"),
    };
    s.to_string()
}

fn describe_v6(t: u8, code: u8, info: u32) -> String {
    let s = match (t, code) {
        (v6::DEST_UNREACH, 0) => "Destination unreachable: No route",
        (v6::DEST_UNREACH, 1) => "Destination unreachable: Administratively prohibited",
        (v6::DEST_UNREACH, 2) => "Destination unreachable: Beyond scope of source address",
        (v6::DEST_UNREACH, 3) => "Destination unreachable: Address unreachable",
        (v6::DEST_UNREACH, 4) => "Destination unreachable: Port unreachable",
        (v6::DEST_UNREACH, 5) => "Destination unreachable: Source address failed policy",
        (v6::DEST_UNREACH, 6) => "Destination unreachable: Reject route to destination",
        (v6::DEST_UNREACH, _) => return format!("Destination unreachable: Unknown code {code}"),
        (v6::PACKET_TOO_BIG, _) => return format!("Packet too big: mtu={info}"),
        (v6::TIME_EXCEEDED, 0) => "Time exceeded: Hop limit",
        (v6::TIME_EXCEEDED, 1) => "Time exceeded: Defragmentation failure",
        (v6::TIME_EXCEEDED, _) => return format!("Time exceeded: code {code}"),
        (v6::PARAMETER_PROBLEM, _) => {
            return format!("Parameter problem: code {code}, pointer {info}");
        }
        _ => return format!("Unknown ICMPv6 type {t}, code {code}"),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift: deterministic pseudo-random input for the "never panics" tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let n = (self.next() % (max_len as u64 + 1)) as usize;
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2, checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), 0x220d);
        assert_eq!(checksum(&[]), 0xffff);
        // An odd byte is padded with zero on the right.
        assert_eq!(checksum(&[0xab]), !0xab00);
    }

    #[test]
    fn checksum_of_a_checksummed_buffer_is_zero() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for _ in 0..500 {
            let payload = rng.bytes(300);
            let p = echo_request(Version::V4, rng.next() as u16, rng.next() as u16, &payload);
            assert_eq!(checksum(&p), 0, "{p:?}");
        }
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // The classic example from Wikipedia's IPv4 header checksum article.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn echo_request_layout() {
        let p = echo_request(Version::V4, 0x1234, 7, b"abc");
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[8..], b"abc");
        let p6 = echo_request(Version::V6, 1, 2, b"");
        assert_eq!(p6, vec![128, 0, 0, 0, 0, 1, 0, 2]);
    }

    #[test]
    fn payload_carries_the_nonce_then_the_pattern() {
        let p = echo_payload(56, 0x0102030405060708);
        assert_eq!(p.len(), 56);
        assert_eq!(payload_nonce(&p), Some(0x0102030405060708));
        assert_eq!(p[8], 8);
        assert_eq!(p[55], 55);
        assert_eq!(echo_payload(3, 99), vec![0, 1, 2]);
        assert_eq!(payload_nonce(&[1, 2, 3]), None);
        assert!(echo_payload(0, 1).is_empty());
        // -p: the pattern repeats after the nonce.
        let p = echo_payload_with(16, 0x0102030405060708, Some(&[0xff, 0x00, 0xab]));
        assert_eq!(&p[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&p[8..], &[0xff, 0x00, 0xab, 0xff, 0x00, 0xab, 0xff, 0x00]);
        assert_eq!(echo_payload_with(4, 9, Some(&[0xee])), vec![0xee; 4]);
        assert_eq!(echo_payload_with(12, 9, None), echo_payload(12, 9));
    }

    #[test]
    fn reply_round_trip_through_an_ipv4_header() {
        let mut icmp = echo_request(Version::V4, 0xbeef, 3, &echo_payload(56, 42));
        // Turn the request into a reply the way a host does: type 0, checksum redone.
        icmp[0] = 0;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut h = Ipv4Header::icmp(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, icmp.len(), 61);
        h.dont_fragment = true;
        h.id = 0x4242;
        let packet = h.to_bytes(&icmp);
        assert_eq!(checksum(&packet[..20]), 0);
        let (parsed, rest) = Ipv4Header::parse(&packet).unwrap();
        assert_eq!(parsed, h.finished(icmp.len()));
        assert_eq!(parsed.ttl, 61);
        assert!(parsed.dont_fragment);
        assert_eq!(parsed.total_len, 84);
        let m = parse_icmp(Version::V4, rest).unwrap();
        assert!(m.checksum_ok);
        assert_eq!(m.len, 64);
        match m.body {
            Body::EchoReply {
                ident,
                seq,
                payload,
            } => {
                assert_eq!((ident, seq), (0xbeef, 3));
                assert_eq!(payload_nonce(payload), Some(42));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupted_reply_fails_the_checksum() {
        let mut p = echo_request(Version::V4, 1, 1, b"hello");
        p[0] = 0;
        let c = checksum(&{
            let mut q = p.clone();
            q[2..4].copy_from_slice(&[0, 0]);
            q
        });
        p[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(parse_icmp(Version::V4, &p).unwrap().checksum_ok);
        p[9] ^= 0x40;
        assert!(!parse_icmp(Version::V4, &p).unwrap().checksum_ok);
    }

    #[test]
    fn ip_header_with_options_and_short_total_length() {
        let icmp = echo_request(Version::V4, 9, 9, b"xy");
        let mut packet = Ipv4Header::icmp(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 0, 64)
            .to_bytes(&[1, 1, 1, 1]);
        // Make the four bytes an option: IHL 6.
        packet[0] = 0x46;
        let total = (packet.len() + icmp.len()) as u16;
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet.extend_from_slice(&icmp);
        packet.extend_from_slice(b"trailing junk beyond total length");
        let (h, rest) = Ipv4Header::parse(&packet).unwrap();
        assert_eq!(h.header_len, 24);
        assert_eq!(rest, &icmp[..]);
    }

    #[test]
    fn quoted_request_in_errors() {
        let req = echo_request(Version::V4, 0x1111, 5, &echo_payload(56, 7));
        let inner = Ipv4Header::icmp(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(10, 0, 0, 1),
            req.len(),
            1,
        )
        .to_bytes(&req[..16]);
        let mut err = vec![v4::TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&inner);
        let m = parse_icmp(Version::V4, &err).unwrap();
        match m.body {
            Body::Error {
                quoted: Some(q), ..
            } => {
                assert_eq!((q.ident, q.seq), (0x1111, 5));
                assert_eq!(payload_nonce(q.payload), Some(7));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            describe_error(Version::V4, m.icmp_type, m.code, 0),
            "Time to live exceeded"
        );

        let req6 = echo_request(Version::V6, 0x2222, 6, b"");
        let mut ip6 = vec![0u8; IPV6_HEADER_LEN];
        ip6[0] = 0x60;
        ip6[6] = PROTO_ICMPV6;
        ip6.extend_from_slice(&req6);
        let mut err6 = vec![v6::DEST_UNREACH, 3, 0, 0, 0, 0, 0, 0];
        err6.extend_from_slice(&ip6);
        let m6 = parse_icmp(Version::V6, &err6).unwrap();
        assert!(matches!(
            m6.body,
            Body::Error {
                quoted: Some(Quoted {
                    ident: 0x2222,
                    seq: 6,
                    ..
                }),
                ..
            }
        ));
        assert_eq!(
            describe_error(Version::V6, 1, 3, 0),
            "Destination unreachable: Address unreachable"
        );
        assert_eq!(
            describe_error(Version::V4, 3, 4, 1400),
            "Frag needed and DF set (mtu = 1400)"
        );
    }

    #[test]
    fn short_and_malformed_inputs_are_errors() {
        assert_eq!(Ipv4Header::parse(&[]), Err(PacketError::Truncated));
        assert_eq!(Ipv4Header::parse(&[0x60; 40]), Err(PacketError::NotIpv4));
        assert_eq!(
            Ipv4Header::parse(&[0x44; 40]),
            Err(PacketError::BadHeaderLength)
        );
        assert_eq!(
            Ipv4Header::parse(&[0x4f; 40]),
            Err(PacketError::BadHeaderLength)
        );
        assert_eq!(Ipv4Header::parse(&[0x45; 19]), Err(PacketError::Truncated));
        assert_eq!(
            parse_icmp(Version::V4, &[0; 7]),
            Err(PacketError::Truncated)
        );
        assert_eq!(parse_quoted(Version::V6, &[0x60; 10]), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0xdeadbeefcafef00d);
        for round in 0..20_000 {
            let mut b = rng.bytes(if round % 10 == 0 { 2000 } else { 120 });
            // Bias towards plausible headers so the deeper paths are exercised.
            if round % 3 == 0 && !b.is_empty() {
                b[0] = 0x40 | (b[0] & 0x0f);
            }
            if round % 5 == 0 && b.len() > 9 {
                b[9] = PROTO_ICMP;
            }
            if let Ok((h, rest)) = Ipv4Header::parse(&b) {
                assert!(rest.len() <= b.len());
                let _ = h.to_string();
                let _ = h.to_bytes(rest);
                let _ = h.finished(rest.len());
            }
            for v in [Version::V4, Version::V6] {
                if let Ok(m) = parse_icmp(v, &b) {
                    assert_eq!(m.len, b.len());
                    let _ = describe_error(v, m.icmp_type, m.code, 0);
                }
                let _ = parse_quoted(v, &b);
                let _ = parse_echo_request(v, &b);
                if let Some(t) = b.first() {
                    let _ = parse_icmp(v, &[&[*t, 0][..], &b].concat());
                }
            }
            let _ = checksum(&b);
            let _ = payload_nonce(&b);
        }
    }

    #[test]
    fn every_error_type_and_code_has_words() {
        for v in [Version::V4, Version::V6] {
            for t in 0..=255u8 {
                for c in 0..=255u8 {
                    assert!(!describe_error(v, t, c, u32::MAX).is_empty());
                }
            }
        }
    }
}
