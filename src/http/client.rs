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
        }
    }
}

impl Transfer {
    /// Takes the status, `Content-Type` and head size of a final response.
    fn record(&mut self, head: &Head) {
        self.size_header += head.raw.len() as u64;
        self.http_code = head.status;
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
    /// The destination was opened (the first byte for it was written).
    opened: bool,
}

/// An HTTP/1.1 client: a connection pool, a read buffer and the output thread.
pub struct Client {
    settings: ClientSettings,
    pool: Pool,
    buf: Buffer,
    out: Delivery,
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
        })
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
            },
            out,
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
                    let req = &mut attempt.req;
                    if next.drop_credentials {
                        req.credentials = false;
                    }
                    req.url = next.url;
                    req.method = next.method;
                    if !next.keep_body {
                        req.body = None;
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
            stats.app_connected.get_or_insert(timing.app_connected);
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
            settings, buf, out, ..
        } = self;
        let settings: &ClientSettings = settings;
        let peer = conn.peer.clone();
        let req = &attempt.req;
        let is_head = req.method.eq_ignore_ascii_case("HEAD");
        let framed;
        let body = match settings.template.body_framing {
            BodyFraming::Length => req.body.as_deref().map(|b| b.as_slice()),
            BodyFraming::Chunked => {
                framed = request::chunked(req.body.as_deref().map_or(&[], |b| b.as_slice()));
                Some(framed.as_slice())
            }
        };
        let limits = settings.limits;
        let Some(mut ex) = Exchange::send(conn, buf, head, body, is_head, limits).await? else {
            return Ok(Outcome::Stale);
        };
        let mut header_bytes = 0u64;
        let started = ex
            .start(&mut |h: &Head| {
                header_bytes += h.raw.len() as u64;
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
            return Err(status_error(&req.url, &resp.head));
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
        let reusable = out.body(&mut ex, stats, obs, &peer).await?;
        Ok(Outcome::Done(reusable))
    }
}

/// `-f`: the final status was 400 or above.
fn status_error(url: &Url, head: &Head) -> Error {
    HttpError::new(
        Kind::HttpStatus,
        format!("{} returned HTTP {}", target::display(url), head.status),
        format!("{}; -f", super::shown(&head.reason)),
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
    ) -> Result<bool> {
        let reusable = loop {
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
            let r = self.writer.open(attempt.out.dest.clone()).await;
            self.written(r, "")?;
        }
        Ok(())
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
