//! `--allow` / `--deny`: which peer addresses a listener serves.
//!
//! An IPv4 address and its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`, how a
//! dual-stack listener sees IPv4 clients) are the same peer: rules and peers are
//! both brought to the plain form before matching, so neither form can be used
//! to slip past a rule written in the other.

use std::net::IpAddr;
use std::path::Path;

use ipnet::{IpNet, Ipv4Net};

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};

/// Allow and deny lists. A peer is refused if any deny rule matches, or if allow
/// rules exist and none matches.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Parses `10.0.0.0/8`, `::1`, or `192.0.2.7` (a single host). A network
/// inside `::ffff:0:0/96` comes back as the IPv4 network it maps.
pub fn parse_net(text: &str) -> Result<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(canonical(net));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(canonical(IpNet::from(ip)));
    }
    Err(Error::Usage(format!(
        "invalid address or CIDR '{text}': expected e.g. 10.0.0.0/8, 192.0.2.7 or ::1"
    )))
}

/// `::ffff:127.0.0.0/104` -> `127.0.0.0/8`; anything else unchanged.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// Whether `net` holds `ip` (already canonical) in either of its forms: a
/// broad IPv6 rule such as `::/0` also covers the mapped IPv4 range.
fn holds(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip)
        || match (net, ip) {
            (IpNet::V6(n), IpAddr::V4(v4)) => n.contains(&v4.to_ipv6_mapped()),
            _ => false,
        }
}

fn read_file(path: &Path) -> Result<Vec<IpNet>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(parse_net)
        .collect()
}

impl Acl {
    /// Builds the lists from flags and files for a server on `ep`: rules on
    /// a Unix socket are a usage error (its peers have no IP address).
    pub fn new(
        allow: &[String],
        deny: &[String],
        allow_file: Option<&Path>,
        deny_file: Option<&Path>,
        ep: &Endpoint,
    ) -> Result<Self> {
        let mut acl = Acl::default();
        for a in allow {
            acl.allow.push(parse_net(a)?);
        }
        for d in deny {
            acl.deny.push(parse_net(d)?);
        }
        if let Some(p) = allow_file {
            acl.allow.extend(read_file(p)?);
        }
        if let Some(p) = deny_file {
            acl.deny.extend(read_file(p)?);
        }
        if !acl.is_empty() && matches!(ep, Endpoint::Unix { .. }) {
            return Err(Error::Usage(
                "--allow/--deny filter IP addresses; they do not apply to Unix sockets".into(),
            ));
        }
        Ok(acl)
    }

    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `ip` may connect. IPv4-mapped IPv6 peers match IPv4 rules and
    /// the other way round.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| holds(n, ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| holds(n, ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Endpoint {
        Endpoint::parse("127.0.0.1:80", false).unwrap()
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let acl = Acl::new(
            &["127.0.0.0/8".into()],
            &["127.0.0.2".into()],
            None,
            None,
            &tcp(),
        )
        .unwrap();
        assert!(acl.permits("127.0.0.1".parse().unwrap()));
        assert!(acl.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!acl.permits("127.0.0.2".parse().unwrap()));
        assert!(!acl.permits("10.0.0.1".parse().unwrap()));
        let open = Acl::default();
        assert!(open.permits("10.0.0.1".parse().unwrap()));
        assert!(parse_net("nope").is_err());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_and_plain_forms_are_the_same_peer() {
        // A mapped deny rule blocks the plain IPv4 peer, and the mapped peer.
        let deny = Acl::new(&[], &["::ffff:127.0.0.1/128".into()], None, None, &tcp()).unwrap();
        assert!(!deny.permits(ip("127.0.0.1")));
        assert!(!deny.permits(ip("::ffff:127.0.0.1")));
        assert!(deny.permits(ip("127.0.0.2")));
        // A mapped allow network lets the plain IPv4 peer in, and no other.
        let allow = Acl::new(&["::ffff:127.0.0.0/104".into()], &[], None, None, &tcp()).unwrap();
        assert!(allow.permits(ip("127.0.0.1")));
        assert!(allow.permits(ip("::ffff:127.9.9.9")));
        assert!(!allow.permits(ip("10.0.0.1")));
        assert!(!allow.permits(ip("::1")));
        // A plain IPv4 rule covers the mapped peer.
        let plain = Acl::new(&[], &["127.0.0.0/8".into()], None, None, &tcp()).unwrap();
        assert!(!plain.permits(ip("::ffff:127.0.0.1")));
        // A broad IPv6 rule covers IPv4 peers through their mapped form.
        let all6 = Acl::new(&[], &["::/0".into()], None, None, &tcp()).unwrap();
        assert!(!all6.permits(ip("192.0.2.1")));
        let other6 = Acl::new(&["2001:db8::/32".into()], &[], None, None, &tcp()).unwrap();
        assert!(!other6.permits(ip("192.0.2.1")));
        assert!(other6.permits(ip("2001:db8::1")));
        assert_eq!(
            parse_net("::ffff:10.0.0.0/104").unwrap(),
            parse_net("10.0.0.0/8").unwrap()
        );
        assert_eq!(
            parse_net("::ffff:10.1.2.3").unwrap(),
            parse_net("10.1.2.3").unwrap()
        );
    }

    #[test]
    fn rules_on_a_unix_socket_are_a_usage_error() {
        let unix = Endpoint::parse("unix:/tmp/x.sock", false).unwrap();
        let e = Acl::new(&["10.0.0.0/8".into()], &[], None, None, &unix).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert!(Acl::new(&[], &[], None, None, &unix).unwrap().is_empty());
    }
}
