//! The transfer engine: fetch a URL over the pool, following redirects, reusing
//! connections, retrying once on a connection the server had already closed, and
//! handing the body to the `BodyWriter` (which decodes and writes it).
//!
//! What is shown along the way (`-v` traces, the progress bar) is the caller's
//! business, through [`Observer`]; so is where the body goes ([`FetchOutput`]). This
//! module prints nothing and picks no exit code.

use std::sync::Arc;
use std::time::Instant;

use url::Url;

use super::decode::Decoder;
use super::exchange::{BodyPart, Buffer, Exchange, Started};
use super::parse::{Head, Header, Limits, Response};
use super::pool::{ConnectOpts, Connection, Pool};
use super::redirect::{self, Next};
use super::request::{self, BodyFraming, Request, Template};
use super::target::{self, Origin};
use super::writer::{BodyWriter, Destination, WriteError};
use super::{Error as HttpError, Kind};
use crate::error::{Error, Result};

/// What stays the same for every request of a run.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Default and user headers.
    pub template: Template,
    /// Response parser limits.
    pub limits: Limits,
    /// Follow redirects (`-L`).
    pub follow: bool,
    /// Most redirects followed per URL (`--max-redirs`).
    pub max_redirs: u32,
    /// Remove `Content-Encoding` too (`--compressed`), not only transfer codings.
    pub compressed: bool,
    /// Most codings removed from one body (`--max-codings`).
    pub max_codings: usize,
    /// Most body bytes per second (`--limit-rate`).
    pub limit_rate: Option<u64>,
    /// `Referer` of the first request (`-e`).
    pub referer: Option<String>,
    /// On each redirect, `Referer` is the URL redirected from (`-e ';auto'`).
    pub auto_referer: bool,
    /// A `Cookie` header sent with every request as given (`-b 'a=b'`).
    pub cookie: Option<String>,
}

/// Where one URL's output goes, and what goes there.
#[derive(Debug, Clone)]
pub struct FetchOutput {
    /// The body's destination, opened at the first byte written, so that `-f` or
    /// a failed connect leave no empty file behind.
    pub dest: Destination,
    /// Write each response head before its body (`-i`).
    pub include_heads: bool,
    /// A final status of 400 or more is an error and no body is written (`-f`).
    pub fail_on_error: bool,
    /// A final status of 400 or more is an error after its body is written
    /// (`--fail-with-body`).
    pub fail_with_body: bool,
    /// `Range` to ask for: `-r`, or `N-` for `-C`.
    pub range: Option<String>,
    /// The range resumes a download (`-C`): a 200 (the whole body) is an error.
    pub resume: bool,
    /// `-J`: name the file after `Content-Disposition`, in this directory.
    pub header_name: Option<std::path::PathBuf>,
    /// A transient status (408, 429, 500, 502, 503, 504) ends the fetch with no
    /// body written, marked [`Transfer::retriable`] (`--retry`, retries left).
    pub retry_status: bool,
}

/// Told what happens during a transfer, for traces and progress.
pub trait Observer: Send {
    /// A connection event ("Connected to ...", "Following redirect ...").
    fn note(&mut self, text: &str);
    /// The request head about to be sent.
    fn request_head(&mut self, head: &[u8]);
    /// A response head: interim (1xx) or final.
    fn response_head(&mut self, head: &Head);
    /// The final response whose body is about to be written.
    fn body_start(&mut self, resp: &Response);
    /// `n` more body bytes arrived (before decoding).
    fn body_bytes(&mut self, n: usize);
    /// The body is complete; `trailers` followed it.
    fn body_end(&mut self, trailers: &[Header]);
}

/// Measurements of one fetch (curl's `-w` variables).
#[derive(Debug, Clone)]
pub struct Transfer {
    /// When the fetch began.
    pub start: Instant,
    /// First TCP (or Unix) connect done.
    pub connected: Option<Instant>,
    /// First TLS handshake done.
    pub app_connected: Option<Instant>,
    /// First response byte.
    pub first_byte: Option<Instant>,
    /// The end of the last body.
    pub end: Option<Instant>,
    /// Body bytes on the wire (framing removed, before decoding).
    pub size_download: u64,
    /// Bytes of every response head, interim ones included.
    pub size_header: u64,
    /// Status of the last response.
    pub http_code: u16,
    /// `Content-Type` of the last response.
    pub content_type: String,
    /// The last URL fetched, for display.
    pub url_effective: String,
    /// Redirects followed.
    pub num_redirects: u32,
    /// Address of the last connection's peer.
    pub remote_ip: String,
    /// Port of the last connection's peer.
    pub remote_port: String,
    /// HTTP version of the last response: `1.1` or `1.0`.
    pub http_version: String,
    /// Where a redirect not followed (no `-L`) pointed.
    pub redirect_url: String,
    /// The final status was a transient one and its body was skipped
    /// ([`FetchOutput::retry_status`]).
    pub retriable: bool,
    /// The response's `Retry-After`, in seconds or as a date.
    pub retry_after: Option<std::time::Duration>,
}

impl Transfer {
    /// Nothing measured yet; the clock starts now.
    pub fn new(url: &Url) -> Transfer {
        Transfer {
            start: Instant::now(),
            connected: None,
            app_connected: None,
            first_byte: None,
            end: None,
            size_download: 0,
            size_header: 0,
            http_code: 0,
            content_type: String::new(),
            url_effective: target::display(url),
            num_redirects: 0,
            remote_ip: String::new(),
            remote_port: String::new(),
            http_version: String::new(),
            redirect_url: String::new(),
            retriable: false,
            retry_after: None,
        }
    }
}

impl Transfer {
    /// Takes the status, `Content-Type` and head size of a final response.
    fn record(&mut self, head: &Head) {
        self.size_header += head.raw.len() as u64;
        self.http_code = head.status;
        self.http_version = format!("1.{}", head.minor);
        self.content_type = head
            .get("content-type")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
    }
}

/// How one exchange ended.
enum Outcome {
    /// A reused connection was already closed: send again on a new one.
    Stale,
    /// A redirect to follow.
    Redirect(Next, bool),
    /// The final response was handled; the flag says the connection is reusable.
    Done(bool),
}

/// One request and its URL-independent parts, as the redirect loop rewrites it.
struct Attempt<'o> {
    req: Request,
    out: &'o FetchOutput,
    /// Where the body goes: `out.dest`, or the `-J` name.
    dest: super::writer::Destination,
    /// `Referer` for this request.
    referer: Option<String>,
    /// The destination was opened (the first byte for it was written).
    opened: bool,
}

/// An HTTP/1.1 client: a connection pool, a read buffer and the output thread.
pub struct Client {
    settings: ClientSettings,
    pool: Pool,
    buf: Buffer,
    out: Delivery,
    /// The cookie engine (`-b`, `-c`), when on.
    jar: Option<super::cookie::Jar>,
    /// Where response heads are copied (`-D`).
    dump: Option<Dump>,
}

/// The `-D` destination: stdout (in order with the bodies) or a file.
pub enum Dump {
    /// Standard output.
    Stdout,
    /// An open file and its name.
    File(std::fs::File, std::path::PathBuf),
}

/// The output thread and what its failures mean for the run.
struct Delivery {
    writer: BodyWriter,
    stdout_closed: bool,
    /// The peer of the body last handed over, for a decoding failure the thread
    /// reports later.
    peer: String,
}

impl Client {
    /// A client with no connection yet; starts the output thread.
    pub fn new(settings: ClientSettings, connect: ConnectOpts) -> Result<Client> {
        let writer =
            BodyWriter::start().map_err(|e| Error::io("cannot start the output thread", e))?;
        Ok(Client {
            settings,
            pool: Pool::new(connect),
            buf: Buffer::default(),
            out: Delivery {
                writer,
                stdout_closed: false,
                peer: String::new(),
            },
            jar: None,
            dump: None,
        })
    }

    /// Turns the cookie engine on with `jar`'s cookies.
    pub fn set_jar(&mut self, jar: super::cookie::Jar) {
        self.jar = Some(jar);
    }

    /// The cookie engine's cookies, when it is on.
    pub fn jar(&self) -> Option<&super::cookie::Jar> {
        self.jar.as_ref()
    }

    /// Copies every response head to `dump` from now on (`-D`).
    pub fn set_dump(&mut self, dump: Dump) {
        self.dump = Some(dump);
    }

    /// True once a write to stdout failed because its reader went away.
    pub fn stdout_closed(&self) -> bool {
        self.out.stdout_closed
    }

    /// Writes `text` to stdout after everything before it (`-w`).
    pub async fn write_stdout(&mut self, text: &[u8]) -> Result<()> {
        let r = self.out.writer.stdout(text.to_vec()).await;
        self.out.written(r, "")
    }

    /// Waits until every byte handed over so far is written.
    pub async fn flush(&mut self) -> Result<()> {
        let r = self.out.writer.sync(false).await;
        self.out.written(r, "")
    }

    /// Closes the idle connections.
    pub async fn close(&mut self) {
        self.pool.close_all().await;
    }

    /// Fetches `url` with `method` and `body`, following redirects if asked.
    pub async fn fetch(
        &mut self,
        url: &Url,
        method: &str,
        body: Option<Arc<Vec<u8>>>,
        upload: Option<Arc<super::exchange::Upload>>,
        out: &FetchOutput,
        obs: &mut dyn Observer,
    ) -> Result<Transfer> {
        let mut stats = Transfer::new(url);
        let mut attempt = Attempt {
            req: Request {
                method: method.to_string(),
                url: url.clone(),
                body,
                credentials: true,
                extra: Vec::new(),
                upload,
            },
            out,
            dest: out.dest.clone(),
            referer: self.settings.referer.clone(),
            opened: false,
        };
        loop {
            match self.exchange_once(&mut attempt, &mut stats, obs).await? {
                Outcome::Redirect(next, _) => {
                    stats.num_redirects += 1;
                    obs.note(&format!(
                        "Following redirect to {}",
                        target::display(&next.url)
                    ));
                    if self.settings.auto_referer {
                        attempt.referer = Some(target::display(&attempt.req.url));
                    }
                    let req = &mut attempt.req;
                    if next.drop_credentials {
                        req.credentials = false;
                    }
                    req.url = next.url;
                    req.method = next.method;
                    if !next.keep_body {
                        req.body = None;
                        req.upload = None;
                    }
                    stats.url_effective = target::display(&req.url);
                }
                _ => {
                    stats.end = Some(Instant::now());
                    return Ok(stats);
                }
            }
        }
    }

    /// Sends the request on a pooled connection, once more on a new one if the
    /// pooled one turns out to be closed, and puts the connection back.
    async fn exchange_once(
        &mut self,
        attempt: &mut Attempt<'_>,
        stats: &mut Transfer,
        obs: &mut dyn Observer,
    ) -> Result<Outcome> {
        let origin = Origin::of(&attempt.req.url);
        attempt.req.extra = self.extra_headers(attempt);
        let proxy = self.pool.forward_proxy(&origin);
        let head = attempt.req.head_via(&self.settings.template, proxy);
        let mut retried = false;
        loop {
            let (mut conn, timing) = {
                let log = std::sync::Mutex::new(&mut *obs);
                let note = |s: &str| {
                    if let Ok(mut o) = log.lock() {
                        o.note(s);
                    }
                };
                self.pool.get(&origin, &note).await?
            };
            stats.connected.get_or_insert(timing.connected);
            if conn.tls {
                // Plain HTTP has no TLS step: %{time_appconnect} stays 0, as curl.
                stats.app_connected.get_or_insert(timing.app_connected);
            }
            if let Ok(a) = conn.peer.parse::<std::net::SocketAddr>() {
                stats.remote_ip = a.ip().to_string();
                stats.remote_port = a.port().to_string();
            }
            obs.request_head(head.strip_suffix(b"\r\n").unwrap_or(&head));
            let outcome = self.exchange(&mut conn, attempt, &head, stats, obs).await?;
            match outcome {
                Outcome::Stale if !retried => {
                    obs.note("Connection closed by the server; retrying on a new one");
                    retried = true;
                    continue;
                }
                Outcome::Stale => {
                    return Err(HttpError::new(
                        Kind::EmptyReply,
                        format!("no response from {}", conn.peer),
                        "the server closed the connection",
                    )
                    .into())
                }
                Outcome::Redirect(_, reusable) | Outcome::Done(reusable) => {
                    self.release(origin, conn, reusable, obs);
                }
            }
            return Ok(outcome);
        }
    }

    /// `Cookie`, `Referer` and `Range` for this request.
    fn extra_headers(&self, attempt: &Attempt<'_>) -> Vec<(String, String)> {
        let mut extra = Vec::new();
        let jar = self
            .jar
            .as_ref()
            .and_then(|j| j.header(&attempt.req.url, super::cookie::now()));
        // A `-b 'a=b'` string is the user's, like `-H Cookie`: not sent to
        // another origin after a redirect. Jar cookies follow their own rules.
        let literal = self
            .settings
            .cookie
            .as_ref()
            .filter(|_| attempt.req.credentials);
        let cookie = match (literal, jar) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (Some(a), None) => Some(a.clone()),
            (None, b) => b,
        };
        if let Some(c) = cookie {
            extra.push(("Cookie".to_string(), c));
        }
        if let Some(r) = &attempt.referer {
            extra.push(("Referer".to_string(), r.clone()));
        }
        if let Some(r) = &attempt.out.range {
            extra.push(("Range".to_string(), format!("bytes={r}")));
        }
        extra
    }

    fn release(
        &mut self,
        origin: Origin,
        conn: Connection,
        reusable: bool,
        obs: &mut dyn Observer,
    ) {
        if reusable {
            obs.note(&format!(
                "Connection #{} to host {} left intact",
                conn.id, origin.host
            ));
            self.pool.put(origin, conn);
        } else {
            obs.note(&format!("Closing connection #{}", conn.id));
        }
    }

    /// One request and response on `conn`.
    async fn exchange(
        &mut self,
        conn: &mut Connection,
        attempt: &mut Attempt<'_>,
        head: &[u8],
        stats: &mut Transfer,
        obs: &mut dyn Observer,
    ) -> Result<Outcome> {
        let Client {
            settings,
            buf,
            out,
            jar,
            dump,
            ..
        } = self;
        let settings: &ClientSettings = settings;
        let peer = conn.peer.clone();
        let req = &attempt.req;
        let is_head = req.method.eq_ignore_ascii_case("HEAD");
        let framed;
        let body = match settings.template.body_framing {
            BodyFraming::Length => req.body.as_deref().map(|b| b.as_slice()),
            // An upload is framed as it is sent.
            BodyFraming::Chunked if req.upload.is_some() => None,
            BodyFraming::Chunked => {
                framed = request::chunked(req.body.as_deref().map_or(&[], |b| b.as_slice()));
                Some(framed.as_slice())
            }
        };
        let limits = settings.limits;
        let upload = req.upload.as_deref();
        let rate = settings.limit_rate;
        let sent = Exchange::send(conn, buf, head, body, upload, is_head, limits, rate).await?;
        let Some(mut ex) = sent else {
            return Ok(Outcome::Stale);
        };
        let mut header_bytes = 0u64;
        let mut interim: Vec<Vec<u8>> = Vec::new();
        let dumping = dump.is_some();
        let started = ex
            .start(&mut |h: &Head| {
                header_bytes += h.raw.len() as u64;
                if dumping {
                    interim.push(h.raw.clone());
                }
                obs.response_head(h);
            })
            .await?;
        let resp = match started {
            Started::Stale => return Ok(Outcome::Stale),
            Started::Response(r) => r,
        };
        stats.first_byte = stats.first_byte.or(ex.first_byte);
        stats.size_header += header_bytes;
        stats.record(&resp.head);
        obs.response_head(&resp.head);
        if let Some(d) = dump {
            interim.push(resp.head.raw.clone());
            out.dump(d, interim.concat()).await?;
        }
        if let Some(jar) = jar {
            let at = super::cookie::now();
            for h in resp.head.headers.iter() {
                if h.name.eq_ignore_ascii_case("set-cookie") {
                    jar.set(&req.url, &h.value, at);
                }
            }
        }
        stats.redirect_url.clear();
        if !settings.follow && redirect::is_redirect(resp.head.status) {
            if let Some(loc) = resp.head.get("location") {
                if let Ok(u) = req.url.join(&String::from_utf8_lossy(loc)) {
                    stats.redirect_url = target::display(&u);
                }
            }
        }
        if attempt.out.retry_status && is_transient(resp.head.status) {
            stats.retriable = true;
            stats.retry_after = resp.head.get("retry-after").and_then(retry_after);
            let reusable = ex.skip_body().await?;
            return Ok(Outcome::Done(reusable));
        }

        if let Some(next) = redirect_target(settings, req, &resp, stats)? {
            if attempt.out.include_heads {
                out.open(attempt).await?;
                let r = out.writer.raw(resp.head.raw.clone()).await;
                out.written(r, &peer)?;
            }
            // Read (and drop) the redirect's body so the connection can be reused.
            let reusable = ex.skip_body().await?;
            return Ok(Outcome::Redirect(next, reusable));
        }
        if attempt.out.fail_on_error && resp.head.status >= 400 {
            return Err(status_error(&req.url, &resp.head, "-f"));
        }
        if attempt.out.resume && resp.head.status == 416 {
            // Nothing left to fetch: the file is complete (curl says so with 0).
            obs.note("The file is already complete; nothing to resume");
            let reusable = ex.skip_body().await?;
            return Ok(Outcome::Done(reusable));
        }
        if attempt.out.resume && resp.head.status == 200 {
            return Err(HttpError::new(
                Kind::RangeError,
                format!("cannot resume {}", target::display(&req.url)),
                "the server sent the whole body, not the range asked for",
            )
            .into());
        }
        if let Some(dir) = &attempt.out.header_name {
            if (200..300).contains(&resp.head.status) {
                if let Some(name) = disposition_name(&resp.head)? {
                    attempt.dest = super::writer::Destination::New(dir.join(name));
                }
            }
        }
        out.open(attempt).await?;
        if attempt.out.include_heads {
            let r = out.writer.raw(resp.head.raw.clone()).await;
            out.written(r, &peer)?;
        }
        let decoder = decoder(settings, &resp, &peer)?;
        out.peer.clone_from(&peer);
        let r = out.writer.decoder(decoder).await;
        out.written(r, &peer)?;
        obs.body_start(&resp);
        let reusable = out
            .body(&mut ex, stats, obs, &peer, settings.limit_rate)
            .await?;
        if attempt.out.fail_with_body && resp.head.status >= 400 {
            let r = out.writer.sync(false).await;
            out.written(r, &peer)?;
            return Err(status_error(
                &attempt.req.url,
                &resp.head,
                "--fail-with-body",
            ));
        }
        Ok(Outcome::Done(reusable))
    }
}

/// The statuses curl's `--retry` retries: 408, 429, 500, 502, 503, 504.
pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After`: delay seconds or an HTTP date (RFC 9110 10.2.3).
fn retry_after(v: &[u8]) -> Option<std::time::Duration> {
    let v = std::str::from_utf8(v).ok()?.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(std::time::Duration::from_secs(n));
    }
    let at = super::cookie::parse_date(v)?;
    Some(std::time::Duration::from_secs(
        (at - super::cookie::now()).max(0) as u64,
    ))
}

/// `-J`: the file name in `Content-Disposition` (`filename=`), its directories
/// stripped. None when there is none; an error for a name that would leave the
/// directory or is empty after stripping.
fn disposition_name(head: &Head) -> Result<Option<String>> {
    let Some(v) = head.get("content-disposition") else {
        return Ok(None);
    };
    let v = String::from_utf8_lossy(v);
    let Some(name) = v.split(';').find_map(|p| {
        let (k, val) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| val.trim().trim_matches('"').to_string())
    }) else {
        return Ok(None);
    };
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").to_string();
    if base.is_empty() || base == "." || base == ".." || base.bytes().any(|b| b < 0x20 || b == 0x7f)
    {
        return Err(HttpError::new(
            Kind::Write,
            format!(
                "-J: refusing the file name '{}' from Content-Disposition",
                super::shown(name.as_bytes())
            ),
            "it names no file in the current directory",
        )
        .into());
    }
    Ok(Some(base))
}

/// `-f`: the final status was 400 or above.
fn status_error(url: &Url, head: &Head, flag: &str) -> Error {
    HttpError::new(
        Kind::HttpStatus,
        format!("{} returned HTTP {}", target::display(url), head.status),
        format!("{}; {flag}", super::shown(&head.reason)),
    )
    .into()
}

/// The redirect to follow after `resp`, if `-L` and it is one.
fn redirect_target(
    s: &ClientSettings,
    req: &Request,
    resp: &Response,
    stats: &Transfer,
) -> Result<Option<Next>> {
    if !s.follow || !redirect::is_redirect(resp.head.status) {
        return Ok(None);
    }
    let Some(location) = resp.head.get("location") else {
        return Ok(None);
    };
    if stats.num_redirects >= s.max_redirs {
        return Err(HttpError::new(
            Kind::TooManyRedirects,
            format!("too many redirects from {}", target::display(&req.url)),
            format!("maximum of {} followed; see --max-redirs", s.max_redirs),
        )
        .into());
    }
    let next = redirect::follow(resp.head.status, &req.method, &req.url, location)?
        .ok_or_else(|| HttpError::new(Kind::Malformed, "redirect without a target", ""))?;
    Ok(Some(next))
}

/// The decoder for the body's codings: transfer codings always, content
/// codings with `--compressed`.
fn decoder(settings: &ClientSettings, resp: &Response, peer: &str) -> Result<Option<Decoder>> {
    let mut codings: Vec<String> = Vec::new();
    if settings.compressed {
        codings.extend(
            resp.head
                .list("content-encoding")
                .iter()
                .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase()),
        );
    }
    codings.extend(resp.transfer_codings.iter().cloned());
    Decoder::new(&codings, settings.max_codings).map_err(|e| {
        HttpError::new(
            Kind::BadEncoding,
            format!("cannot decode the response from {peer}"),
            super::shown(e.to_string().as_bytes()),
        )
        .into()
    })
}

impl Delivery {
    /// Hands the body to the writer piece by piece, then ends it there.
    async fn body(
        &mut self,
        ex: &mut Exchange<'_>,
        stats: &mut Transfer,
        obs: &mut dyn Observer,
        peer: &str,
        limit_rate: Option<u64>,
    ) -> Result<bool> {
        let began = (Instant::now(), stats.size_download);
        let reusable = loop {
            if let Some(rate) = limit_rate {
                // Read no faster than the rate: the socket buffers fill and TCP
                // slows the sender.
                let due = (stats.size_download - began.1) as f64 / rate as f64;
                let ahead = due - began.0.elapsed().as_secs_f64();
                if ahead > 0.0 {
                    tokio::time::sleep(std::time::Duration::from_secs_f64(ahead)).await;
                }
            }
            match ex.next().await {
                Ok(BodyPart::Data(d)) => {
                    let len = d.len();
                    stats.size_download += len as u64;
                    obs.body_bytes(len);
                    if self.writer.inline() {
                        // Written here, straight from the read buffer.
                        let r = self.writer.body(d).await;
                        self.written(r, peer)?;
                        continue;
                    }
                    // For the thread, a large piece leaves in its own read buffer (no copy).
                    let fresh = self.writer.spare(ex.buffer_len());
                    let r = match ex.swap_out(len, fresh) {
                        Ok((buf, range)) => self.writer.body_owned(buf, range).await,
                        Err(fresh) => {
                            self.writer.give_back(fresh);
                            self.writer.body(ex.last_piece(len)).await
                        }
                    };
                    self.written(r, peer)?;
                }
                Ok(BodyPart::End { reusable }) => break reusable,
                Err(e) => {
                    // A write failure already queued explains more than the read error.
                    let r = self.writer.sync(false).await;
                    self.written(r, peer)?;
                    return Err(e);
                }
            }
        };
        let r = self.writer.end_body().await;
        self.written(r, peer)?;
        obs.body_end(&ex.trailers);
        Ok(reusable)
    }

    /// Opens the attempt's destination before its first byte.
    async fn open(&mut self, attempt: &mut Attempt<'_>) -> Result<()> {
        if !attempt.opened {
            attempt.opened = true;
            let r = self.writer.open(attempt.dest.clone()).await;
            self.written(r, "")?;
        }
        Ok(())
    }

    /// Copies response heads to the `-D` destination.
    async fn dump(&mut self, d: &mut Dump, heads: Vec<u8>) -> Result<()> {
        match d {
            Dump::Stdout => {
                let r = self.writer.stdout(heads).await;
                self.written(r, "")
            }
            Dump::File(f, path) => {
                use std::io::Write;
                f.write_all(&heads).map_err(|e| {
                    HttpError::new(
                        Kind::Write,
                        format!("cannot write to {}", path.display()),
                        crate::error::describe_io(&e),
                    )
                    .into()
                })
            }
        }
    }

    /// Turns a writer failure into the run's error; remembers a closed stdout.
    fn written(&mut self, r: std::result::Result<(), WriteError>, peer: &str) -> Result<()> {
        let Err(e) = r else {
            return Ok(());
        };
        let peer = if peer.is_empty() { &self.peer } else { peer };
        if e.is_stdout_closed() {
            self.stdout_closed = true;
        }
        let err = match e {
            WriteError::Create { path, err } => HttpError::new(
                Kind::Write,
                format!("cannot create {}", path.display()),
                crate::error::describe_io(&err),
            ),
            WriteError::Write { dest, err } => HttpError::new(
                Kind::Write,
                format!("cannot write to {}", dest.name()),
                crate::error::describe_io(&err),
            ),
            WriteError::Decode(why) => HttpError::new(
                Kind::BadEncoding,
                format!("cannot decode the response from {peer}"),
                why,
            ),
            WriteError::Gone => HttpError::new(
                Kind::Write,
                "cannot write the output",
                "the output thread stopped",
            ),
        };
        Err(err.into())
    }
}
