//! URLs for `sockit http`: the default scheme, scheme and host checks, the
//! connection origin, the `Host` header, the request target and `-O` file names.
//!
//! IDNA and percent-encoding are the `url` crate's; this module only decides what
//! the client does with a parsed URL. It does no I/O.

use std::net::IpAddr;

use url::Url;

use super::{Error, Kind};
use crate::endpoint::Host;

/// Parses a command-line URL; a missing scheme means `http://`, as in curl.
pub fn parse(text: &str) -> Result<Url, Error> {
    let owned;
    let full = if text.contains("://") {
        text
    } else {
        owned = format!("http://{text}");
        &owned
    };
    let url = Url::parse(full).map_err(|e| {
        Error::new(
            Kind::BadUrl,
            format!("invalid URL '{}'", super::shown(text.as_bytes())),
            e.to_string(),
        )
    })?;
    check(&url, text)?;
    Ok(url)
}

/// Checks that a URL is one this client can fetch: http or https, with a host.
/// `text` is how the user wrote it, for messages (control characters made visible).
pub fn check(url: &Url, text: &str) -> Result<(), Error> {
    let text = super::shown(text.as_bytes());
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::new(
                Kind::UnsupportedProtocol,
                format!("unsupported protocol '{other}' in '{text}'"),
                "only http:// and https:// are supported",
            ))
        }
    }
    if url.host().is_none() {
        return Err(Error::new(
            Kind::BadUrl,
            format!("invalid URL '{text}'"),
            "no host",
        ));
    }
    Ok(())
}

/// Where a request goes: scheme, host and port. Connections are reused per origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `https://`.
    pub tls: bool,
    /// Host as in the URL (IDNA applied; IPv6 without brackets).
    pub host: String,
    /// Port, the scheme's default when the URL has none.
    pub port: u16,
}

impl Origin {
    /// The origin of `url` (which passed [`check`]).
    pub fn of(url: &Url) -> Origin {
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => String::new(),
        };
        Origin {
            tls: url.scheme() == "https",
            host,
            port: url.port_or_known_default().unwrap_or(80),
        }
    }

    /// The host as an endpoint host, for resolution.
    pub fn endpoint_host(&self) -> Host {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(self.host.clone()),
        }
    }

    /// `host:port`, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The `Host` header value: host, plus the port when it is not the default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The request target in origin form: path and query, never the fragment.
pub fn request_target(url: &Url) -> String {
    let path = url.path();
    let path = if path.is_empty() { "/" } else { path };
    match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// The URL without user info or fragment, as shown in messages and `%{url_effective}`.
pub fn display(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.to_string()
}

/// `-O`: the last path segment, which must be a usable file name.
pub fn remote_name(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    let name = percent_decode(last);
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return None;
    }
    Some(name)
}

/// User and password from the URL (`http://user:pass@host/`), percent-decoded.
pub fn userinfo(url: &Url) -> Option<(String, String)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    Some((
        percent_decode(url.username()),
        percent_decode(url.password().unwrap_or("")),
    ))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_forms() {
        let u = parse("example.com/a b?q=1#frag").unwrap();
        assert_eq!(u.scheme(), "http");
        assert_eq!(request_target(&u), "/a%20b?q=1");
        assert_eq!(host_header(&u), "example.com");
        let u = parse("http://[::1]:8080/").unwrap();
        assert_eq!(host_header(&u), "[::1]:8080");
        let o = Origin::of(&u);
        assert_eq!((o.host.as_str(), o.port), ("::1", 8080));
        assert_eq!(o.authority(), "[::1]:8080");
        let u = parse("https://bücher.example/").unwrap();
        assert_eq!(host_header(&u), "xn--bcher-kva.example");
        assert_eq!(Origin::of(&u).port, 443);
        assert_eq!(host_header(&parse("http://h:80/").unwrap()), "h");
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse("ftp://h/").unwrap_err().kind,
            Kind::UnsupportedProtocol
        );
        assert_eq!(parse("http://[::1/").unwrap_err().kind, Kind::BadUrl);
        assert_eq!(parse("http://").unwrap_err().kind, Kind::BadUrl);
    }

    #[test]
    fn remote_names() {
        let name = |s: &str| remote_name(&parse(s).unwrap());
        assert_eq!(
            name("http://h/dir/file.bin?x=1").as_deref(),
            Some("file.bin")
        );
        assert_eq!(name("http://h/a%20b").as_deref(), Some("a b"));
        assert_eq!(name("http://h/"), None);
        assert_eq!(name("http://h/dir/"), None);
        assert_eq!(name("http://h/a%2Fb"), None);
    }
}
