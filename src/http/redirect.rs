//! Redirects: which statuses are followed, where to, and what the next request
//! keeps (RFC 9110 section 15.4): 303 becomes GET (HEAD stays HEAD), 301 and 302
//! turn a POST into a GET, 307 and 308 keep the method and body; credentials are
//! dropped when the origin changes.
//!
//! Pure decisions on values; counting against `--max-redirs` is the caller's job.

use url::Url;

use super::target::{self, Origin};
use super::{Error, Kind};

/// The request a redirect leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// The resolved `Location`.
    pub url: Url,
    /// Method of the next request.
    pub method: String,
    /// Whether the request body is sent again.
    pub keep_body: bool,
    /// Whether `Authorization` and `Cookie` must be dropped (another origin).
    pub drop_credentials: bool,
}

/// True for the statuses `-L` follows.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect response leads; `None` when `status` is not a followed redirect.
pub fn follow(
    status: u16,
    method: &str,
    current: &Url,
    location: &[u8],
) -> Result<Option<Next>, Error> {
    if !is_redirect(status) {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(location);
    // For messages: escaped, so a terminal shows the bytes rather than acting on them.
    let shown = super::shown(location);
    let mut url = current.join(text.trim()).map_err(|e| {
        Error::new(
            Kind::BadUrl,
            format!("invalid redirect Location '{shown}'"),
            e.to_string(),
        )
    })?;
    target::check(&url, &shown)?;
    if url.fragment().is_none() {
        // RFC 9110 section 10.2.2: the original fragment carries over.
        url.set_fragment(current.fragment());
    }
    let to_get = match status {
        303 => method != "HEAD",
        301 | 302 => method == "POST",
        _ => false,
    };
    let method = if to_get {
        "GET".to_string()
    } else {
        method.to_string()
    };
    Ok(Some(Next {
        drop_credentials: Origin::of(&url) != Origin::of(current),
        url,
        method,
        keep_body: !to_get,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn method_rules() {
        let cur = u("http://a/x/y");
        let n = follow(303, "POST", &cur, b"/z").unwrap().unwrap();
        assert_eq!((n.method.as_str(), n.keep_body), ("GET", false));
        assert_eq!(n.url.as_str(), "http://a/z");
        let n = follow(303, "HEAD", &cur, b"z").unwrap().unwrap();
        assert_eq!(n.method, "HEAD");
        assert_eq!(n.url.as_str(), "http://a/x/z");
        let n = follow(302, "POST", &cur, b"z").unwrap().unwrap();
        assert_eq!((n.method.as_str(), n.keep_body), ("GET", false));
        let n = follow(301, "PUT", &cur, b"z").unwrap().unwrap();
        assert_eq!((n.method.as_str(), n.keep_body), ("PUT", true));
        for s in [307, 308] {
            let n = follow(s, "POST", &cur, b"z").unwrap().unwrap();
            assert_eq!((n.method.as_str(), n.keep_body), ("POST", true));
        }
        assert!(follow(300, "GET", &cur, b"z").unwrap().is_none());
        assert!(follow(304, "GET", &cur, b"z").unwrap().is_none());
    }

    #[test]
    fn origin_change_drops_credentials() {
        let cur = u("http://a:8080/x#f");
        assert!(
            !follow(302, "GET", &cur, b"/y")
                .unwrap()
                .unwrap()
                .drop_credentials
        );
        assert!(
            follow(302, "GET", &cur, b"http://b:8080/")
                .unwrap()
                .unwrap()
                .drop_credentials
        );
        assert!(
            follow(302, "GET", &cur, b"http://a/")
                .unwrap()
                .unwrap()
                .drop_credentials
        );
        assert!(
            follow(302, "GET", &cur, b"https://a:8080/")
                .unwrap()
                .unwrap()
                .drop_credentials
        );
        assert_eq!(
            follow(302, "GET", &cur, b"/y")
                .unwrap()
                .unwrap()
                .url
                .fragment(),
            Some("f")
        );
        assert_eq!(
            follow(302, "GET", &cur, b"ftp://a/").unwrap_err().kind,
            Kind::UnsupportedProtocol
        );
    }
}
