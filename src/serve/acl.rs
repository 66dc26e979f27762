//! `--allow` / `--deny`: which peer addresses a listener serves.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// Allow and deny lists. A peer is refused if any deny rule matches, or if allow
/// rules exist and none matches.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Parses `10.0.0.0/8`, `::1`, or `192.0.2.7` (a single host).
pub fn parse_net(text: &str) -> Result<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(Error::Usage(format!(
        "invalid address or CIDR '{text}': expected e.g. 10.0.0.0/8, 192.0.2.7 or ::1"
    )))
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
    /// Builds the lists from flags and files.
    pub fn new(
        allow: &[String],
        deny: &[String],
        allow_file: Option<&Path>,
        deny_file: Option<&Path>,
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
        Ok(acl)
    }

    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `ip` may connect. IPv4-mapped IPv6 peers match IPv4 rules.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_allow_restricts() {
        let acl = Acl::new(&["127.0.0.0/8".into()], &["127.0.0.2".into()], None, None).unwrap();
        assert!(acl.permits("127.0.0.1".parse().unwrap()));
        assert!(acl.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!acl.permits("127.0.0.2".parse().unwrap()));
        assert!(!acl.permits("10.0.0.1".parse().unwrap()));
        let open = Acl::default();
        assert!(open.permits("10.0.0.1".parse().unwrap()));
        assert!(parse_net("nope").is_err());
    }
}
