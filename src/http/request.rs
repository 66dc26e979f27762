//! The request to send and its bytes on the wire: request line, default headers
//! (`Host`, `User-Agent`, `Accept`, ...), user headers that override or remove
//! them, Basic credentials and the body.
//!
//! It builds bytes; it does not send them. User-supplied names and values are
//! checked here so nothing the user types can split the request.

use url::Url;

use super::target;

/// A header given with `-H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserHeader {
    /// `Name: value`: send it, replacing a default header of the same name.
    Set(String, String),
    /// `Name:`: do not send this header at all (removes a default).
    Remove(String),
}

/// Parses a `-H` argument: `Name: value`, `Name:` (remove) or `Name;` (send empty).
/// The error shows the argument with control characters made visible.
pub fn parse_header(text: &str) -> Result<UserHeader, String> {
    let bad = |why: &str| format!("invalid header '{}': {why}", super::shown(text.as_bytes()));
    if let Some(name) = text.strip_suffix(';') {
        if !name.contains(':') {
            check_name(name).map_err(|w| bad(&w))?;
            return Ok(UserHeader::Set(name.to_string(), String::new()));
        }
    }
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| bad("expected 'Name: value'"))?;
    check_name(name).map_err(|w| bad(&w))?;
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(bad("CR, LF and NUL are not allowed in a value"));
    }
    if value.is_empty() {
        return Ok(UserHeader::Remove(name.to_string()));
    }
    Ok(UserHeader::Set(name.to_string(), value.to_string()))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if !name.bytes().all(is_tchar) {
        return Err("the name may contain only letters, digits and !#$%&'*+-.^_`|~".into());
    }
    Ok(())
}

/// Checks a method name (`-X`): an HTTP token.
pub fn check_method(method: &str) -> Result<(), String> {
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(format!(
            "invalid method '{}'",
            super::shown(method.as_bytes())
        ));
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// How a request body is delimited on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` (the default).
    #[default]
    Length,
    /// `Transfer-Encoding: chunked`, asked for with `-H`: the body goes as one chunk
    /// and the last chunk, with no `Content-Length`.
    Chunked,
}

/// The body framing the `-H` headers ask for. A `Transfer-Encoding` whose last
/// coding is not `chunked`, or one next to a user `Content-Length`, would leave the
/// end of the body ambiguous (a request-smuggling shape), so both are refused.
pub fn body_framing(user: &[UserHeader]) -> Result<BodyFraming, String> {
    let set = |name: &str| {
        user.iter().rev().find_map(|h| match h {
            UserHeader::Set(n, v) if n.eq_ignore_ascii_case(name) => Some(v.as_str()),
            _ => None,
        })
    };
    let Some(te) = set("transfer-encoding") else {
        return Ok(BodyFraming::Length);
    };
    let last = te.rsplit(',').next().unwrap_or("");
    let last = last.split(';').next().unwrap_or("").trim();
    if !last.eq_ignore_ascii_case("chunked") {
        return Err(format!(
            "-H 'Transfer-Encoding: {}': the last coding must be chunked",
            super::shown(te.as_bytes())
        ));
    }
    if set("content-length").is_some() {
        return Err("-H Content-Length and -H Transfer-Encoding cannot be sent together".into());
    }
    Ok(BodyFraming::Chunked)
}

/// `body` as chunked data: one chunk (none when empty), then the last chunk.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    if !body.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Everything that decides the headers, independent of the URL.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// `User-Agent` (None: not sent).
    pub user_agent: Option<String>,
    /// `Accept` value.
    pub accept: String,
    /// `Accept-Encoding` value (None: not sent).
    pub accept_encoding: Option<String>,
    /// `user:password` for Basic authentication.
    pub basic: Option<String>,
    /// `Content-Type` for the body, when there is one.
    pub content_type: Option<String>,
    /// `-H` headers, in order.
    pub user: Vec<UserHeader>,
    /// How the body is delimited (from [`body_framing`] of `user`).
    pub body_framing: BodyFraming,
    /// `.netrc` entries (`--netrc`): credentials by host, after `-u` and the URL's.
    pub netrc: Vec<super::netrc::Entry>,
}

/// One request, ready to write.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Absolute URL (http or https).
    pub url: Url,
    /// Body, if any.
    pub body: Option<std::sync::Arc<Vec<u8>>>,
    /// A file sent as the body instead (`-T FILE`), read as it is sent.
    pub upload: Option<std::sync::Arc<super::exchange::Upload>>,
    /// Send `Authorization` and `Cookie` (false after a cross-origin redirect).
    pub credentials: bool,
    /// Headers of this request only (`Cookie`, `Referer`, `Range`), after the
    /// defaults; `-H` still replaces or removes them.
    pub extra: Vec<(String, String)>,
}

impl Request {
    /// The request line and header block, CRLF-terminated.
    pub fn head(&self, t: &Template) -> Vec<u8> {
        self.head_via(t, None)
    }

    /// [`Request::head`] for a server or, with `proxy`, for an HTTP proxy:
    /// then the target is the absolute URL (without user info), with the
    /// proxy's credentials and `Proxy-Connection` as curl sends them.
    pub fn head_via(&self, t: &Template, proxy: Option<&crate::proxy::Proxy>) -> Vec<u8> {
        let mut headers: Vec<(String, String)> = Vec::with_capacity(8 + t.user.len());
        headers.push(("Host".into(), target::host_header(&self.url)));
        if let Some(ua) = &t.user_agent {
            headers.push(("User-Agent".into(), ua.clone()));
        }
        headers.push(("Accept".into(), t.accept.clone()));
        if let Some(ae) = &t.accept_encoding {
            headers.push(("Accept-Encoding".into(), ae.clone()));
        }
        if self.credentials {
            let auth = t
                .basic
                .clone()
                .or_else(|| target::userinfo(&self.url).map(|(u, p)| format!("{u}:{p}")))
                .or_else(|| {
                    let host = self.url.host_str()?;
                    super::netrc::lookup(&t.netrc, host.trim_matches(['[', ']']))
                });
            if let Some(auth) = auth {
                headers.push((
                    "Authorization".into(),
                    format!("Basic {}", base64(auth.as_bytes())),
                ));
            }
        }
        if let Some(p) = proxy {
            if let Some(auth) = p.authorization() {
                headers.push(("Proxy-Authorization".into(), auth));
            }
            headers.push(("Proxy-Connection".into(), "Keep-Alive".into()));
        }
        if let Some(body) = &self.body {
            if let Some(ct) = &t.content_type {
                headers.push(("Content-Type".into(), ct.clone()));
            }
            if t.body_framing == BodyFraming::Length {
                headers.push(("Content-Length".into(), body.len().to_string()));
            }
        } else if let Some(u) = &self.upload {
            match u.len {
                Some(len) => headers.push(("Content-Length".into(), len.to_string())),
                // Stdin or a pipe: its length is known at its end only (curl does this too).
                None => headers.push(("Transfer-Encoding".into(), "chunked".into())),
            }
        }
        headers.extend(self.extra.iter().cloned());
        for h in &t.user {
            let name = match h {
                UserHeader::Set(n, _) | UserHeader::Remove(n) => n,
            };
            let sensitive =
                name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie");
            if sensitive && !self.credentials {
                continue;
            }
            let is_default = headers
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name));
            match (h, is_default) {
                (UserHeader::Set(n, v), Some(i)) => headers[i] = (n.clone(), v.clone()),
                (UserHeader::Set(n, v), None) => headers.push((n.clone(), v.clone())),
                (UserHeader::Remove(_), Some(i)) => {
                    headers.remove(i);
                }
                (UserHeader::Remove(_), None) => {}
            }
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        match proxy {
            Some(_) => out.extend_from_slice(target::display(&self.url).as_bytes()),
            None => out.extend_from_slice(target::request_target(&self.url).as_bytes()),
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (n, v) in headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Standard base64 with padding (RFC 4648), for Basic credentials.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template {
            user_agent: Some("sockit/test".into()),
            accept: "*/*".into(),
            ..Template::default()
        }
    }

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn header_forms() {
        assert_eq!(
            parse_header("X-A: 1").unwrap(),
            UserHeader::Set("X-A".into(), "1".into())
        );
        assert_eq!(
            parse_header("Accept:").unwrap(),
            UserHeader::Remove("Accept".into())
        );
        assert_eq!(
            parse_header("X-E;").unwrap(),
            UserHeader::Set("X-E".into(), "".into())
        );
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("X: a\r\nEvil: 1").is_err());
        assert!(parse_header("novalue").is_err());
    }

    #[test]
    fn head_bytes() {
        let mut t = template();
        t.user = vec![
            UserHeader::Set("accept".into(), "text/plain".into()),
            UserHeader::Remove("User-Agent".into()),
            UserHeader::Set("X-Extra".into(), "yes".into()),
        ];
        t.basic = Some("user:pass".into());
        t.content_type = Some("application/x-www-form-urlencoded".into());
        let r = Request {
            method: "POST".into(),
            url: Url::parse("http://h:8080/p?q").unwrap(),
            body: Some(std::sync::Arc::new(b"a=1".to_vec())),
            credentials: true,
            extra: Vec::new(),
            upload: None,
        };
        assert_eq!(
            String::from_utf8(r.head(&t)).unwrap(),
            "POST /p?q HTTP/1.1\r\nHost: h:8080\r\naccept: text/plain\r\n\
             Authorization: Basic dXNlcjpwYXNz\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\
             X-Extra: yes\r\n\r\n"
        );
        let r = Request {
            credentials: false,
            ..r
        };
        assert!(!String::from_utf8(r.head(&t))
            .unwrap()
            .contains("Authorization"));
    }

    #[test]
    fn a_user_transfer_encoding_chunks_the_body() {
        let h = |s: &str| parse_header(s).unwrap();
        assert_eq!(body_framing(&[]), Ok(BodyFraming::Length));
        assert_eq!(
            body_framing(&[h("Transfer-Encoding: chunked")]),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            body_framing(&[h("transfer-encoding: gzip, Chunked")]),
            Ok(BodyFraming::Chunked)
        );
        assert!(body_framing(&[h("Transfer-Encoding: gzip")]).is_err());
        assert!(body_framing(&[h("Transfer-Encoding: chunked"), h("Content-Length: 1")]).is_err());
        assert_eq!(chunked(b"x"), b"1\r\nx\r\n0\r\n\r\n");
        assert_eq!(chunked(b""), b"0\r\n\r\n");
        let mut t = template();
        t.user = vec![h("Transfer-Encoding: chunked")];
        t.body_framing = BodyFraming::Chunked;
        let r = Request {
            method: "POST".into(),
            url: Url::parse("http://h/").unwrap(),
            body: Some(std::sync::Arc::new(b"x".to_vec())),
            credentials: true,
            extra: Vec::new(),
            upload: None,
        };
        let head = String::from_utf8(r.head(&t)).unwrap();
        assert!(!head.contains("Content-Length"), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    }

    #[test]
    fn errors_show_control_bytes_escaped() {
        let e = check_method("GE\x1b[2JT").unwrap_err();
        assert!(!e.contains('\x1b'), "{e}");
        let e = parse_header("X-\x1b[2J: v").unwrap_err();
        assert!(!e.contains('\x1b'), "{e}");
    }
}
