//! The HTTP side of `--web`: the embedded page and the WebSocket upgrade, on
//! one listener, with hyper.
//!
//! Each accepted connection goes through [`serve_web_conn`]: hyper serves
//! `GET /` (and the page's script and style sheet) and answers `GET /ws` with
//! `101 Switching Protocols` once the handshake is valid and the `Origin` is
//! allowed. Then the raw stream is taken back from hyper
//! (`Upgraded::downcast`), together with any bytes hyper had read past the
//! request, and handed to the caller as a [`WebMember`]: from there the chat
//! reads WebSocket frames with [`super::ws::WsReader`] and writes shared
//! pre-encoded frames straight to the socket, without hyper in between.
//!
//! Bounds: the request head is at most [`WebConfig::max_head`] bytes (431
//! beyond), and the whole HTTP phase of a connection (every request on it,
//! keep-alive included, up to the upgrade) must end within
//! [`WebConfig::handshake_timeout`]: then the connection is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::page;

/// The Content-Security-Policy of every response: only the page's own script,
/// style and WebSocket; no inline script or style, no frames, no forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Smallest request-head limit hyper accepts.
pub const MIN_HEAD: usize = 8192;

/// How the web front-end serves a connection.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Origins allowed to open `/ws` (`--web-origin`, normalized by
    /// [`parse_origin`]). Empty: the origin must name the same host as the
    /// request's `Host` header (`http://HOST` or `https://HOST`).
    pub origins: Vec<String>,
    /// Longest request head in bytes (at least [`MIN_HEAD`]); 431 beyond.
    pub max_head: usize,
    /// Time allowed for the HTTP phase of a connection, up to the upgrade.
    pub handshake_timeout: Duration,
    /// Accept a handshake with no `Origin` at all (default false). Browsers
    /// always send one, so this admits only non-browser programs (the
    /// Autobahn suite, scripts) and opens no cross-site hole; a foreign
    /// origin is refused either way.
    pub allow_no_origin: bool,
    /// Take a WebSocket upgrade on any path, not only `/ws` (the echo
    /// endpoint: conformance runners connect to `/`).
    pub upgrade_any_path: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            origins: Vec::new(),
            max_head: MIN_HEAD,
            handshake_timeout: Duration::from_secs(10),
            allow_no_origin: false,
            upgrade_any_path: false,
        }
    }
}

/// A browser that completed the WebSocket handshake: the chat takes over its socket.
#[derive(Debug)]
pub struct WebMember<T> {
    /// The raw stream (TCP or TLS), positioned after the HTTP request.
    pub stream: T,
    /// Bytes hyper had already read past the request: the first WebSocket
    /// bytes. Feed them to the reader first (`WsReader::with_read_ahead`).
    pub read_ahead: Vec<u8>,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The (allowed) `Origin` of the handshake.
    pub origin: String,
}

/// Why a web connection ended without becoming a member (for the debug log:
/// none of these concern anyone but that connection).
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The HTTP phase took longer than `handshake_timeout`.
    #[error("HTTP handshake timed out")]
    Timeout,
    /// hyper gave up on the connection (bad request, reset, ...).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The upgraded stream was not the stream type served (cannot happen).
    #[error("upgrade: unexpected stream type")]
    Downcast,
}

/// Checks and normalizes a `--web-origin` value: `scheme://host[:port]` with
/// scheme `http` or `https`, no path, lower-cased.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let lower = s.trim_end_matches('/').to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| format!("origin {s:?} must start with http:// or https://"))?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
        || rest.bytes().any(|b| b.is_ascii_control())
    {
        return Err(format!(
            "origin {s:?} must be scheme://host[:port], nothing more"
        ));
    }
    Ok(strip_default_port(&lower))
}

/// `http://h:80` -> `http://h`, `https://h:443` -> `https://h` (browsers omit default ports).
fn strip_default_port(origin: &str) -> String {
    if let Some(h) = origin.strip_prefix("http://") {
        if let Some(h) = h.strip_suffix(":80") {
            return format!("http://{h}");
        }
    } else if let Some(h) = origin.strip_prefix("https://") {
        if let Some(h) = h.strip_suffix(":443") {
            return format!("https://{h}");
        }
    }
    origin.to_string()
}

/// Whether a WebSocket handshake's `Origin` may open the chat: it must be
/// present, and either in `allowed` (normalized origins) or, when `allowed` is
/// empty, name the request's `Host` (over http or https). A missing or `null`
/// origin is refused: browsers always send one, and other programs can use
/// the line protocol.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return false;
    };
    let Ok(origin) = parse_origin(origin) else {
        return false;
    };
    if !allowed.is_empty() {
        return allowed.contains(&origin);
    }
    let Some(host) = host.map(str::to_ascii_lowercase) else {
        return false;
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return false;
    }
    [format!("http://{host}"), format!("https://{host}")]
        .iter()
        .any(|o| strip_default_port(o) == origin)
}

type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    security_headers(h);
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether a comma-separated header contains `token` (case-insensitive).
fn has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A pending upgrade: hyper's handle and the origin that was allowed.
type Slot = Arc<Mutex<Option<(OnUpgrade, String)>>>;

fn route(mut req: Request<Incoming>, cfg: &WebConfig, slot: &Slot) -> Response<Body> {
    let path = req.uri().path();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let upgrade_here = cfg.upgrade_any_path && has_token(&req, header::UPGRADE, "websocket");
    let asset = match path {
        _ if upgrade_here => None,
        "/" | "/index.html" => Some((page::INDEX_HTML, "text/html; charset=utf-8")),
        "/chat.js" => Some((page::CHAT_JS, "text/javascript; charset=utf-8")),
        "/chat.css" => Some((page::CHAT_CSS, "text/css; charset=utf-8")),
        "/favicon.svg" | "/favicon.ico" => Some((page::FAVICON_SVG, "image/svg+xml")),
        _ => None,
    };
    if let Some((body, ty)) = asset {
        if !get {
            return not_allowed("GET, HEAD");
        }
        return respond(StatusCode::OK, ty, Bytes::from_static(body.as_bytes()));
    }
    if path != "/ws" && !upgrade_here {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET {
        return not_allowed("GET");
    }
    if !has_token(&req, header::UPGRADE, "websocket")
        || !has_token(&req, header::CONNECTION, "upgrade")
    {
        let mut r = plain(
            StatusCode::UPGRADE_REQUIRED,
            "expected a WebSocket upgrade\n",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    }
    if header_str(&req, header::SEC_WEBSOCKET_VERSION).map(str::trim) != Some("13") {
        let mut r = plain(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    // The key is the base64 of 16 bytes: 24 characters ending in "==".
    let key = match header_str(&req, header::SEC_WEBSOCKET_KEY).map(str::trim) {
        Some(k) if k.len() == 24 && k.ends_with("==") => k.to_string(),
        _ => return plain(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key\n"),
    };
    let origin = header_str(&req, header::ORIGIN);
    let host = header_str(&req, header::HOST);
    let no_origin_ok = origin.is_none() && cfg.allow_no_origin;
    if !no_origin_ok && !origin_allowed(origin, host, &cfg.origins) {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let origin = origin.unwrap_or_default().to_string();
    let on_upgrade = hyper::upgrade::on(&mut req);
    if let Ok(mut s) = slot.lock() {
        *s = Some((on_upgrade, origin));
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The whole response to a web connection over `--max-clients`, written
/// once at accept, without reading the request: `503 Service Unavailable`.
pub fn server_full(max: usize) -> bytes::Bytes {
    let full = crate::relay::plural(max as u64, "client");
    let body = format!("server full ({full}), try again later\n");
    bytes::Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Serves one accepted connection of the `--web` listener: the page, or the
/// WebSocket handshake. On a successful upgrade, `on_member` gets the raw
/// stream and runs (its future is awaited here, so the caller's task becomes
/// the member's). Returns `Ok(false)` when the connection ended without an
/// upgrade (page served, refused handshake), `Ok(true)` after `on_member` ran.
pub async fn serve_web_conn<T, F, Fut>(
    stream: T,
    remote: SocketAddr,
    cfg: &WebConfig,
    on_member: F,
) -> Result<bool, WebError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(WebMember<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let slot: Slot = Arc::new(Mutex::new(None));
    let member = tokio::time::timeout(cfg.handshake_timeout, async {
        let svc_slot = slot.clone();
        let svc_cfg = cfg.clone();
        let service = hyper::service::service_fn(move |req| {
            let r = route(req, &svc_cfg, &svc_slot);
            async move { Ok::<_, Infallible>(r) }
        });
        hyper::server::conn::http1::Builder::new()
            .max_buf_size(cfg.max_head.max(MIN_HEAD))
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await?;
        let pending = slot.lock().ok().and_then(|mut s| s.take());
        let Some((on_upgrade, origin)) = pending else {
            return Ok(None);
        };
        let upgraded = on_upgrade.await?;
        let parts = upgraded
            .downcast::<TokioIo<T>>()
            .map_err(|_| WebError::Downcast)?;
        Ok::<_, WebError>(Some(WebMember {
            stream: parts.io.into_inner(),
            read_ahead: parts.read_buf.to_vec(),
            remote,
            origin,
        }))
    })
    .await
    .map_err(|_| WebError::Timeout)??;
    match member {
        Some(m) => {
            on_member(m).await;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Echoes every text and binary message back to the member until it closes:
/// the endpoint the Autobahn conformance cases expect (`fuzzingclient` drives
/// an echo server), built from the same reader and frame encoders the chat
/// uses. Not reachable by default; the server mounts it only when asked.
pub async fn echo_member<T>(member: WebMember<T>, max_message: usize) -> std::io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    use super::ws::{encode_binary, encode_text, WsInput, WsReader};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = |input: WsInput, out: &mut Vec<u8>| match input {
        WsInput::Text(t) => encode_text(&t, out),
        WsInput::Binary(b) => encode_binary(&b, out),
        _ => {}
    };
    let mut reader = WsReader::new(max_message).accept_binary(true);
    let mut stream = member.stream;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    reader.feed(&member.read_ahead, &mut out, echo);
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out = Vec::new();
        }
        if reader.is_done() {
            return stream.shutdown().await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        reader.feed(&buf[..n], &mut out, echo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn remote() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    /// Sends `request`, returns the whole response text (requests without an
    /// upgrade say `Connection: close`, so the server closes) and the member made, if any.
    async fn exchange(
        request: &[u8],
        cfg: WebConfig,
    ) -> (String, Option<WebMember<DuplexStream>>, DuplexStream) {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let got = Arc::new(Mutex::new(None));
        let got2 = got.clone();
        let task = tokio::spawn(async move {
            serve_web_conn(server, remote(), &cfg, |m| async move {
                *got2.lock().unwrap() = Some(m);
            })
            .await
        });
        client.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read the head and, unless it is a 101, a body of Content-Length bytes.
        loop {
            match tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
        let upgraded = buf.starts_with(b"HTTP/1.1 101");
        if !upgraded {
            // Let the server see the end of the connection.
            drop(client);
            let (c, _) = tokio::io::duplex(1);
            client = c;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        let m = got.lock().unwrap().take();
        (String::from_utf8_lossy(&buf).into_owned(), m, client)
    }

    fn ws_request(origin: Option<&str>, extra: &str) -> Vec<u8> {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        format!(
            "GET /ws HTTP/1.1\r\nHost: chat.example:8080\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{origin}{extra}\r\n"
        )
        .into_bytes()
    }

    fn status(resp: &str) -> &str {
        resp.get(9..12).unwrap_or("")
    }

    #[test]
    fn origins() {
        let none: &[String] = &[];
        let host = Some("chat.example:8080");
        assert!(origin_allowed(Some("http://chat.example:8080"), host, none));
        assert!(origin_allowed(
            Some("https://CHAT.example:8080"),
            host,
            none
        ));
        assert!(!origin_allowed(
            Some("http://evil.example:8080"),
            host,
            none
        ));
        assert!(!origin_allowed(Some("http://chat.example"), host, none));
        assert!(!origin_allowed(
            Some("http://chat.example:8080.evil"),
            host,
            none
        ));
        assert!(!origin_allowed(None, host, none));
        assert!(!origin_allowed(Some("null"), host, none));
        assert!(!origin_allowed(
            Some("http://chat.example:8080"),
            None,
            none
        ));
        // Default ports: browsers send neither in Origin nor (usually) in Host.
        assert!(origin_allowed(
            Some("http://a.example"),
            Some("a.example:80"),
            none
        ));
        assert!(origin_allowed(
            Some("https://a.example"),
            Some("a.example:443"),
            none
        ));
        assert!(origin_allowed(
            Some("https://a.example"),
            Some("a.example"),
            none
        ));

        let allowed = vec![
            parse_origin("https://Chat.Example/").unwrap(),
            parse_origin("http://localhost:8080").unwrap(),
        ];
        assert_eq!(allowed[0], "https://chat.example");
        assert!(origin_allowed(
            Some("https://chat.example"),
            Some("x"),
            &allowed
        ));
        assert!(origin_allowed(
            Some("https://chat.example:443"),
            None,
            &allowed
        ));
        assert!(origin_allowed(
            Some("http://localhost:8080"),
            None,
            &allowed
        ));
        assert!(!origin_allowed(
            Some("http://chat.example"),
            Some("chat.example"),
            &allowed
        ));
        assert!(!origin_allowed(
            Some("http://localhost:8081"),
            None,
            &allowed
        ));

        for bad in [
            "chat.example",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://a b",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_page_and_its_headers() {
        let (resp, m, _) = exchange(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert!(m.is_none());
        assert_eq!(status(&resp), "200", "{resp}");
        let lower = resp.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/html; charset=utf-8"));
        assert!(lower.contains(&format!(
            "content-security-policy: {}",
            CSP.to_ascii_lowercase()
        )));
        assert!(lower.contains("x-content-type-options: nosniff"));
        assert!(resp.contains("<script src=\"chat.js\""));

        let (resp, _, _) = exchange(
            b"GET /chat.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert!(resp
            .to_ascii_lowercase()
            .contains("content-type: text/javascript"));
        let (resp, _, _) = exchange(
            b"GET /chat.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert!(resp.to_ascii_lowercase().contains("content-type: text/css"));
        let (resp, _, _) = exchange(
            b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert!(resp
            .to_ascii_lowercase()
            .contains("content-type: image/svg+xml"));
    }

    #[tokio::test]
    async fn other_paths_and_methods() {
        let (resp, _, _) = exchange(
            b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert_eq!(status(&resp), "404");
        assert!(resp
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"));
        let (resp, _, _) = exchange(
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert_eq!(status(&resp), "405");
        assert!(resp.contains("allow: GET, HEAD") || resp.contains("Allow: GET, HEAD"));
        let (resp, _, _) = exchange(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WebConfig::default(),
        )
        .await;
        assert_eq!(status(&resp), "426");
    }

    #[tokio::test]
    async fn an_oversized_head_is_431() {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(10 * 1024)
        );
        let (resp, _, _) = exchange(req.as_bytes(), WebConfig::default()).await;
        assert_eq!(status(&resp), "431", "{resp}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
        let (_client, server) = tokio::io::duplex(1024);
        let cfg = WebConfig {
            handshake_timeout: Duration::from_secs(3),
            ..WebConfig::default()
        };
        let r = serve_web_conn(server, remote(), &cfg, |_| async {}).await;
        assert!(matches!(r, Err(WebError::Timeout)), "{r:?}");
    }

    #[tokio::test]
    async fn the_upgrade_hands_over_the_stream_and_early_bytes() {
        // A masked text frame "hi" sent right behind the request.
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let req = [
            ws_request(Some("http://chat.example:8080"), ""),
            frame.to_vec(),
        ]
        .concat();
        let (resp, m, mut client) = exchange(&req, WebConfig::default()).await;
        assert_eq!(status(&resp), "101", "{resp}");
        assert!(
            resp.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{resp}"
        );
        let mut m = m.expect("a member");
        assert_eq!(m.origin, "http://chat.example:8080");
        assert_eq!(m.remote, remote());
        // The frame is in the read-ahead bytes or still in the stream.
        let mut reader = super::super::ws::WsReader::with_read_ahead(m.read_ahead.clone(), 1000);
        let (mut inputs, mut reply) = (Vec::new(), Vec::new());
        reader.feed(&[], &mut reply, |i, _| inputs.push(i));
        if inputs.is_empty() {
            let mut buf = [0u8; 64];
            let n = m.stream.read(&mut buf).await.unwrap();
            reader.feed(&buf[..n], &mut reply, |i, _| inputs.push(i));
        }
        assert_eq!(inputs, vec![super::super::ws::WsInput::Text("hi".into())]);
        // The server writes its own frames straight to the stream.
        let mut out = Vec::new();
        super::super::ws::encode_text("yo", &mut out);
        m.stream.write_all(&out).await.unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x81\x02yo");
    }

    #[tokio::test]
    async fn the_echo_endpoint_echoes_and_closes() {
        let (mut client, server) = tokio::io::duplex(4096);
        let member = WebMember {
            stream: server,
            read_ahead: vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'],
            remote: remote(),
            origin: String::new(),
        };
        let task = tokio::spawn(echo_member(member, 1000));
        client
            .write_all(&[
                0x82, 0x81, 0, 0, 0, 0, 7, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8,
            ])
            .await
            .unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"\x81\x02hi\x82\x01\x07\x88\x02\x03\xe8");
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn foreign_or_missing_origin_is_403() {
        for origin in [Some("http://evil.example"), None, Some("null")] {
            let (resp, m, _) = exchange(&ws_request(origin, ""), WebConfig::default()).await;
            assert_eq!(status(&resp), "403", "{origin:?}: {resp}");
            assert!(m.is_none());
        }
        let cfg = WebConfig {
            origins: vec![parse_origin("https://chat.example").unwrap()],
            ..WebConfig::default()
        };
        let (resp, _, _) = exchange(
            &ws_request(Some("http://chat.example:8080"), ""),
            cfg.clone(),
        )
        .await;
        assert_eq!(status(&resp), "403");
        let (resp, m, _) = exchange(&ws_request(Some("https://chat.example"), ""), cfg).await;
        assert_eq!(status(&resp), "101");
        assert!(m.is_some());
        // allow_no_origin admits a missing Origin, never a foreign one.
        let cfg = WebConfig {
            allow_no_origin: true,
            ..WebConfig::default()
        };
        let (resp, _, _) = exchange(&ws_request(None, ""), cfg.clone()).await;
        assert_eq!(status(&resp), "101");
        let (resp, _, _) = exchange(&ws_request(Some("http://evil.example"), ""), cfg).await;
        assert_eq!(status(&resp), "403");
    }

    #[tokio::test]
    async fn bad_handshakes() {
        let bad_version = String::from_utf8(ws_request(Some("http://chat.example:8080"), ""))
            .unwrap()
            .replace("Version: 13", "Version: 8");
        let (resp, _, _) = exchange(bad_version.as_bytes(), WebConfig::default()).await;
        assert_eq!(status(&resp), "426");
        assert!(resp
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13"));
        let bad_key = String::from_utf8(ws_request(Some("http://chat.example:8080"), ""))
            .unwrap()
            .replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
        let (resp, _, _) = exchange(bad_key.as_bytes(), WebConfig::default()).await;
        assert_eq!(status(&resp), "400");
    }
}
