//! The sans-IO HTTP/1.x response parser: bytes in, [`Event`]s out.
//!
//! It owns the response grammar (RFC 9112 sections 4, 5, 6 and 7) and the
//! message-length rules of section 6.3: which responses have no body, when
//! `Transfer-Encoding` overrides `Content-Length`, chunk sizes, trailers and
//! close-delimited bodies. It never touches a socket and never buffers a body:
//! the caller keeps the unconsumed bytes and hands them back on the next call,
//! and body bytes come out as slices of the caller's buffer. What it retains is
//! bounded by [`Limits`].
//!
//! Lenient on purpose: bare LF line ends, obs-fold continuation lines (joined
//! with a space), a missing reason phrase, empty list elements in
//! `Transfer-Encoding`/`Connection`, identical repeated `Content-Length` values.
//! Rejected: anything that makes the body length ambiguous (conflicting or
//! non-digit `Content-Length`, `chunked` not last or twice, `Transfer-Encoding`
//! in an HTTP/1.0 response), whitespace before a header's colon, bare CR,
//! control characters in fields, malformed chunk sizes and chunk-size overflow.

use std::fmt;

/// Caps on what a server can make the parser hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest status line plus header block (and trailer block, and chunk-size line), in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one head (and in the trailers).
    pub max_headers: usize,
    /// Most interim (1xx) responses accepted before the final one.
    pub max_interim: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_headers: 200,
            max_interim: 64,
        }
    }
}

/// One header or trailer field, as received (obs-fold joined with a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name, case as received.
    pub name: String,
    /// Field value without leading and trailing whitespace.
    pub value: Vec<u8>,
    /// Offset of the field line from the first byte of the response.
    pub at: u64,
}

/// A response's status line and header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Minor version: `HTTP/1.0` is 0, `HTTP/1.1` is 1 (`HTTP/1.x` above 1 is read as 1).
    pub minor: u8,
    /// Status code, 100 to 999.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: Vec<u8>,
    /// Header fields in order.
    pub headers: Vec<Header>,
    /// The head exactly as received, status line through the empty line.
    pub raw: Vec<u8>,
}

impl Head {
    /// The first value of the field `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Every value of the field `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Comma-separated list elements of every `name` field, trimmed, empty ones dropped.
    pub fn list(&self, name: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for value in self.get_all(name) {
            for item in value.split(|&b| b == b',') {
                let item = trim(item);
                if !item.is_empty() {
                    out.push(item.to_vec());
                }
            }
        }
        out
    }
}

/// How the body of a final response is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding` with `chunked` last.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A final response's head and how its body is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status line and headers.
    pub head: Head,
    /// Body delimitation.
    pub framing: Framing,
    /// Transfer codings other than `chunked`, in the order the server applied them
    /// (the body must be decoded in reverse order).
    pub transfer_codings: Vec<String>,
}

/// What the parser produced from the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// An interim 1xx response (not 101); the final response follows.
    Interim(Head),
    /// The final response's head.
    Final(Box<Response>),
    /// Body bytes (after chunk framing is removed), a slice of the input.
    Data(&'a [u8]),
    /// Trailer fields after the last chunk.
    Trailers(Vec<Header>),
    /// The response is complete. `reusable` says whether the connection may carry
    /// another request (keep-alive, and the framing left no doubt where it ended).
    End {
        /// Keep-alive is allowed.
        reusable: bool,
    },
}

/// Why a response could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes break the grammar or the framing rules; `at` is the offset of the
    /// offending byte from the start of the response.
    Malformed {
        /// What was wrong.
        what: String,
        /// Byte offset from the first byte of the response.
        at: u64,
    },
    /// The head (or trailers, or a chunk-size line) grew past `max_header_bytes`.
    HeadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// More header fields than `max_headers`.
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// More than `max_interim` 1xx responses.
    TooManyInterim {
        /// The limit in force.
        limit: u32,
    },
    /// The connection closed before the response was complete.
    Truncated {
        /// Where it stopped, e.g. "after 500 of 1000 body bytes".
        what: String,
    },
    /// The connection closed before any byte of a response arrived.
    Empty,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Malformed { what, at } => write!(f, "{what} at byte {at}"),
            ParseError::HeadTooLarge { limit } => {
                write!(
                    f,
                    "response header block larger than {limit} bytes (--max-header-bytes)"
                )
            }
            ParseError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields (--max-headers)")
            }
            ParseError::TooManyInterim { limit } => {
                write!(f, "more than {limit} interim (1xx) responses")
            }
            ParseError::Truncated { what } => write!(f, "connection closed {what}"),
            ParseError::Empty => f.write_str("empty reply from server"),
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete head; `scanned` is the start of the first line not yet seen.
    Head {
        scanned: usize,
    },
    Length {
        remaining: u64,
    },
    UntilClose,
    /// Waiting for a chunk-size line; `scanned` bytes of it have no LF.
    ChunkSize {
        scanned: usize,
    },
    ChunkData {
        remaining: u64,
    },
    ChunkEnd,
    Trailers {
        scanned: usize,
    },
    /// Body complete; `End` not yet reported.
    Finished,
    Done,
    Failed,
}

/// Incremental parser for one response (including any interim responses before it).
#[derive(Debug, Clone)]
pub struct ResponseParser {
    state: State,
    limits: Limits,
    head_request: bool,
    /// Bytes consumed since the first byte of the response.
    offset: u64,
    interims: u32,
    reusable: bool,
    framing: Framing,
    body: u64,
}

impl ResponseParser {
    /// A parser for the response to a request; `head_request` is true for HEAD,
    /// whose response never has a body.
    pub fn new(head_request: bool, limits: Limits) -> Self {
        ResponseParser {
            state: State::Head { scanned: 0 },
            limits,
            head_request,
            offset: 0,
            interims: 0,
            reusable: false,
            framing: Framing::Empty,
            body: 0,
        }
    }

    /// True once [`Event::End`] has been returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True while nothing of the final response's body framing has been decided yet
    /// (still reading heads).
    pub fn in_head(&self) -> bool {
        matches!(self.state, State::Head { .. })
    }

    /// Bytes consumed so far, from the first byte of the response.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Parses from `input`, which must begin with the first byte not consumed by
    /// earlier calls. Returns how many bytes were consumed and the next event;
    /// `None` means more input is needed (everything usable was consumed).
    pub fn parse<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Event<'a>>), ParseError> {
        let r = self.step(input);
        match &r {
            Ok((n, _)) => self.offset += *n as u64,
            Err(_) => self.state = State::Failed,
        }
        r
    }

    /// Up to `remaining` body bytes of `rest` (after `used` bytes of the
    /// input) as one data event; `next` gives the state for what is left.
    fn counted<'a>(
        &mut self,
        rest: &'a [u8],
        used: usize,
        remaining: u64,
        next: impl FnOnce(u64) -> State,
    ) -> (usize, Option<Event<'a>>) {
        let n = rest
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        if n == 0 {
            return (used, None);
        }
        self.body += n as u64;
        self.state = next(remaining - n as u64);
        (used + n, Some(Event::Data(&rest[..n])))
    }

    fn step<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Event<'a>>), ParseError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Head { scanned } => return self.head(input, used, scanned),
                State::Length { remaining } => {
                    return Ok(self.counted(rest, used, remaining, |left| match left {
                        0 => State::Finished,
                        _ => State::Length { remaining: left },
                    }));
                }
                State::UntilClose => {
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    self.body += rest.len() as u64;
                    return Ok((input.len(), Some(Event::Data(rest))));
                }
                State::ChunkSize { scanned } => match self.chunk_size(rest, used, scanned)? {
                    Some(n) => used += n,
                    None => return Ok((used, None)),
                },
                State::ChunkData { remaining } => {
                    return Ok(self.counted(rest, used, remaining, |left| match left {
                        0 => State::ChunkEnd,
                        _ => State::ChunkData { remaining: left },
                    }));
                }
                State::ChunkEnd => match rest {
                    [] | [b'\r'] => return Ok((used, None)),
                    [b'\n', ..] => {
                        used += 1;
                        self.state = State::ChunkSize { scanned: 0 };
                    }
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::ChunkSize { scanned: 0 };
                    }
                    _ => {
                        return Err(ParseError::Malformed {
                            what: "expected CRLF after chunk data".into(),
                            at: self.offset + used as u64,
                        })
                    }
                },
                State::Trailers { scanned } => {
                    let Some(end) =
                        self.block_end(rest, scanned, |s| State::Trailers { scanned: s })?
                    else {
                        return Ok((used, None));
                    };
                    let base = self.offset + used as u64;
                    let trailers = parse_fields(&rest[..end], 0, base, &self.limits)?;
                    used += end;
                    self.state = State::Finished;
                    if !trailers.is_empty() {
                        return Ok((used, Some(Event::Trailers(trailers))));
                    }
                }
                State::Finished => {
                    self.state = State::Done;
                    return Ok((
                        used,
                        Some(Event::End {
                            reusable: self.reusable,
                        }),
                    ));
                }
                State::Done => return Ok((used, None)),
                State::Failed => {
                    return Err(ParseError::Malformed {
                        what: "parser used after an error".into(),
                        at: self.offset + used as u64,
                    })
                }
            }
        }
    }

    /// The `Head` state: a complete status line and header block, if there is one,
    /// becomes an interim or final response event.
    fn head<'a>(
        &mut self,
        input: &'a [u8],
        mut used: usize,
        scanned: usize,
    ) -> Result<(usize, Option<Event<'a>>), ParseError> {
        let rest = &input[used..];
        let Some(end) = self.block_end(rest, scanned, |s| State::Head { scanned: s })? else {
            return Ok((used, None));
        };
        let base = self.offset + used as u64;
        let head = parse_head(&rest[..end], base, &self.limits)?;
        used += end;
        if (100..200).contains(&head.status) && head.status != 101 {
            self.interims += 1;
            if self.interims > self.limits.max_interim {
                return Err(ParseError::TooManyInterim {
                    limit: self.limits.max_interim,
                });
            }
            self.state = State::Head { scanned: 0 };
            return Ok((used, Some(Event::Interim(head))));
        }
        let (framing, codings, reusable) = framing(&head, self.head_request)?;
        self.framing = framing;
        self.reusable = reusable;
        self.state = match framing {
            Framing::Empty | Framing::Length(0) => State::Finished,
            Framing::Length(n) => State::Length { remaining: n },
            Framing::Chunked => State::ChunkSize { scanned: 0 },
            Framing::UntilClose => State::UntilClose,
        };
        let response = Response {
            head,
            framing,
            transfer_codings: codings,
        };
        Ok((used, Some(Event::Final(Box::new(response)))))
    }

    /// The `ChunkSize` state: parses a chunk-size line if it is complete. `Some(n)`:
    /// `n` bytes consumed, the state moved on; `None`: more input is needed.
    fn chunk_size(
        &mut self,
        rest: &[u8],
        used: usize,
        scanned: usize,
    ) -> Result<Option<usize>, ParseError> {
        let limit = self.limits.max_header_bytes;
        let end = rest.len().min(limit);
        let from = scanned.min(end);
        let Some(nl) = memchr(b'\n', &rest[from..end]).map(|i| from + i) else {
            if rest.len() >= limit {
                return Err(ParseError::HeadTooLarge { limit });
            }
            self.state = State::ChunkSize {
                scanned: rest.len(),
            };
            return Ok(None);
        };
        let base = self.offset + used as u64;
        let size = parse_chunk_line(&rest[..nl], base)?;
        self.state = if size == 0 {
            State::Trailers { scanned: 0 }
        } else {
            State::ChunkData { remaining: size }
        };
        Ok(Some(nl + 1))
    }

    /// Finds the end of a block of lines closed by an empty line, scanning only the
    /// part not seen by earlier calls. Enforces `max_header_bytes`.
    fn block_end(
        &mut self,
        rest: &[u8],
        mut scanned: usize,
        save: impl Fn(usize) -> State,
    ) -> Result<Option<usize>, ParseError> {
        let limit = self.limits.max_header_bytes;
        while let Some(nl) = memchr(b'\n', &rest[scanned.min(rest.len())..]) {
            let line_end = scanned + nl;
            let line = &rest[scanned..line_end];
            let end = line_end + 1;
            if end > limit {
                return Err(ParseError::HeadTooLarge { limit });
            }
            if line.is_empty() || line == b"\r" {
                return Ok(Some(end));
            }
            scanned = end;
        }
        if rest.len() >= limit {
            return Err(ParseError::HeadTooLarge { limit });
        }
        self.state = save(scanned);
        Ok(None)
    }

    /// Tells the parser the connection ended. `clean` is false when the transport
    /// ended without a proper close (TLS without close_notify), which makes a
    /// close-delimited body incomplete too. `pending` is what the caller still holds
    /// unconsumed. Returns the `End` event when the close completes the response.
    pub fn finish(
        &mut self,
        clean: bool,
        pending: &[u8],
    ) -> Result<Option<Event<'static>>, ParseError> {
        let err = match self.state {
            State::Done => return Ok(None),
            State::Finished => {
                self.state = State::Done;
                return Ok(Some(Event::End {
                    reusable: self.reusable,
                }));
            }
            State::UntilClose if clean => {
                self.state = State::Done;
                return Ok(Some(Event::End { reusable: false }));
            }
            State::UntilClose => ParseError::Truncated {
                what: format!(
                    "without TLS close_notify after {} body bytes; the body may be incomplete",
                    self.body
                ),
            },
            State::Head { .. } if self.offset == 0 && pending.is_empty() => ParseError::Empty,
            State::Head { .. } => ParseError::Truncated {
                what: format!(
                    "in the response head (after {} bytes)",
                    self.offset + pending.len() as u64
                ),
            },
            State::Length { remaining } => ParseError::Truncated {
                what: format!(
                    "after {} of {} body bytes",
                    self.body,
                    self.body + remaining
                ),
            },
            State::ChunkSize { .. } | State::ChunkData { .. } | State::ChunkEnd => {
                ParseError::Truncated {
                    what: format!(
                        "in a chunked body after {} body bytes, before the last chunk",
                        self.body
                    ),
                }
            }
            State::Trailers { .. } => ParseError::Truncated {
                what: "in the trailers of a chunked body".into(),
            },
            State::Failed => ParseError::Truncated {
                what: "after a parse error".into(),
            },
        };
        self.state = State::Failed;
        Err(err)
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field-value and reason-phrase bytes: VCHAR, obs-text, SP, HTAB.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Splits a block into lines (without their LF or CRLF), with each line's offset.
/// A CR anywhere but right before the LF is an error.
fn lines(block: &[u8], base: u64) -> Result<Vec<(usize, &[u8])>, ParseError> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < block.len() {
        let nl = memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        let mut line = &block[start..nl];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if let Some(cr) = memchr(b'\r', line) {
            return Err(ParseError::Malformed {
                what: "bare CR in the response head".into(),
                at: base + (start + cr) as u64,
            });
        }
        out.push((start, line));
        start = nl + 1;
    }
    Ok(out)
}

fn parse_head(block: &[u8], base: u64, limits: &Limits) -> Result<Head, ParseError> {
    let bad = |what: &str, at: usize| ParseError::Malformed {
        what: what.into(),
        at: base + at as u64,
    };
    let first_end = memchr(b'\n', block).unwrap_or(block.len());
    let mut line = &block[..first_end];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if !line.starts_with(b"HTTP/") {
        return Err(bad("expected 'HTTP/' at the start of the status line", 0));
    }
    let (major, minor) = match line.get(5..8) {
        Some([ma, b'.', mi]) if ma.is_ascii_digit() && mi.is_ascii_digit() => {
            (*ma - b'0', *mi - b'0')
        }
        _ => return Err(bad("malformed HTTP version in the status line", 5)),
    };
    if major != 1 {
        return Err(bad(
            &format!("unsupported HTTP version {major}.{minor} (expected 1.x)"),
            5,
        ));
    }
    if line.get(8) != Some(&b' ') {
        return Err(bad("expected a space after the HTTP version", 8));
    }
    let status = match line.get(9..12) {
        Some(d) if d.iter().all(u8::is_ascii_digit) => {
            d.iter().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'))
        }
        _ => return Err(bad("expected a 3-digit status code", 9)),
    };
    if status < 100 {
        return Err(bad(&format!("invalid status code {status:03}"), 9));
    }
    let reason = match line.get(12) {
        None => &[][..],
        Some(b' ') => &line[13..],
        Some(_) => return Err(bad("expected a space after the status code", 12)),
    };
    if let Some(i) = reason.iter().position(|&b| !is_field_byte(b)) {
        if reason[i] == b'\r' {
            return Err(bad("bare CR in the response head", 13 + i));
        }
        return Err(bad("control character in the reason phrase", 13 + i));
    }
    let headers = parse_fields(block, (first_end + 1).min(block.len()), base, limits)?;
    Ok(Head {
        minor: minor.min(1),
        status,
        reason: reason.to_vec(),
        headers,
        raw: block.to_vec(),
    })
}

/// Parses header (or trailer) field lines from `block[from..]` up to the empty line.
fn parse_fields(
    block: &[u8],
    from: usize,
    base: u64,
    limits: &Limits,
) -> Result<Vec<Header>, ParseError> {
    let base_from = base + from as u64;
    let mut headers: Vec<Header> = Vec::new();
    for (start, line) in lines(&block[from..], base_from)? {
        let bad = |what: &str, i: usize| ParseError::Malformed {
            what: what.into(),
            at: base_from + (start + i) as u64,
        };
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            // obs-fold: a continuation of the previous field's value.
            let Some(prev) = headers.last_mut() else {
                return Err(bad("whitespace before the first header field", 0));
            };
            let more = trim(line);
            if let Some(i) = more.iter().position(|&b| !is_field_byte(b)) {
                let at = line.len() - trim_start_len(line) + i;
                return Err(bad("control character in a header value", at));
            }
            if !more.is_empty() {
                if !prev.value.is_empty() {
                    prev.value.push(b' ');
                }
                prev.value.extend_from_slice(more);
            }
            continue;
        }
        let Some(colon) = memchr(b':', line) else {
            return Err(bad("header line without a colon", 0));
        };
        let name = &line[..colon];
        if name.is_empty() {
            return Err(bad("empty header name", 0));
        }
        if let Some(i) = name.iter().position(|&b| !is_tchar(b)) {
            return Err(bad("invalid character in a header name", i));
        }
        let raw_value = &line[colon + 1..];
        let lead = raw_value.len() - trim_start_len(raw_value);
        let value = trim(raw_value);
        if let Some(i) = value.iter().position(|&b| !is_field_byte(b)) {
            return Err(bad(
                "control character in a header value",
                colon + 1 + lead + i,
            ));
        }
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        headers.push(Header {
            // tchar is ASCII, so this cannot fail.
            name: String::from_utf8_lossy(name).into_owned(),
            value: value.to_vec(),
            at: base_from + start as u64,
        });
    }
    Ok(headers)
}

/// Length of `s` after dropping leading whitespace.
fn trim_start_len(mut s: &[u8]) -> usize {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s.len()
}

/// Peer bytes for an error message: at most 40, through the crate's one
/// sanitizer so a terminal shows them rather than acting on them.
fn shown(b: &[u8]) -> String {
    let mut s = super::shown(&b[..b.len().min(40)]);
    if b.len() > 40 {
        s.push_str("...");
    }
    s
}

fn lower(v: &[u8]) -> String {
    String::from_utf8_lossy(v).to_ascii_lowercase()
}

/// RFC 9112 section 6.3: the body length of a final response.
fn framing(head: &Head, head_request: bool) -> Result<(Framing, Vec<String>, bool), ParseError> {
    let te_at = head
        .headers
        .iter()
        .rev()
        .find(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .map_or(0, |h| h.at);
    let bad = |what: String| ParseError::Malformed { what, at: te_at };
    let conn: Vec<String> = head.list("connection").iter().map(|v| lower(v)).collect();
    let mut reusable = if conn.iter().any(|t| t == "close") {
        false
    } else if head.minor == 0 {
        conn.iter().any(|t| t == "keep-alive")
    } else {
        true
    };
    let has_te = head.get("transfer-encoding").is_some();
    let has_cl = head.get("content-length").is_some();
    if head.status == 101 {
        // The connection now speaks another protocol, which this client never asks for.
        return Ok((Framing::Empty, Vec::new(), false));
    }
    if head_request || head.status == 204 || head.status == 304 {
        if head.status != 200 && (has_te || has_cl) && !head_request {
            // A stray length on a bodiless status: the server may send bytes we must not
            // mistake for the next response.
            reusable = false;
        }
        return Ok((Framing::Empty, Vec::new(), reusable));
    }
    if has_te {
        if head.minor == 0 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 response".into()));
        }
        let codings: Vec<String> = head
            .list("transfer-encoding")
            .iter()
            .map(|c| {
                let name = c.split(|&b| b == b';').next().unwrap_or(c);
                lower(trim(name))
            })
            .collect();
        if codings.is_empty() {
            return Err(bad("empty Transfer-Encoding".into()));
        }
        if let Some(c) = codings
            .iter()
            .find(|c| c.is_empty() || !c.bytes().all(is_tchar))
        {
            return Err(bad(format!(
                "invalid transfer coding '{}'",
                shown(c.as_bytes())
            )));
        }
        let chunked = codings.iter().filter(|c| *c == "chunked").count();
        let last_chunked = codings.last().is_some_and(|c| c == "chunked");
        // Transfer-Encoding overrides Content-Length; a message with both is a smuggling
        // risk, so the connection is not reused.
        if has_cl {
            reusable = false;
        }
        return match (chunked, last_chunked) {
            (1, true) => {
                let rest = codings[..codings.len() - 1].to_vec();
                Ok((Framing::Chunked, rest, reusable))
            }
            (0, _) => Ok((Framing::UntilClose, codings, false)),
            _ => Err(bad(format!(
                "Transfer-Encoding '{}': chunked must be applied once and last",
                codings.join(", ")
            ))),
        };
    }
    if has_cl {
        if let Some(n) = content_length(head)? {
            return Ok((Framing::Length(n), Vec::new(), reusable));
        }
    }
    Ok((Framing::UntilClose, Vec::new(), false))
}

/// The body length from every `Content-Length` field: list elements must all be
/// the same digits (`5, 5` is 5; `5, 6`, `+5` or an overflow is an error).
fn content_length(head: &Head) -> Result<Option<u64>, ParseError> {
    let mut length: Option<u64> = None;
    let fields = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    for field in fields {
        let bad = |what: String| ParseError::Malformed { what, at: field.at };
        for item in field.value.split(|&b| b == b',') {
            let item = trim(item);
            let text = shown(item);
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err(bad(format!("invalid Content-Length '{text}'")));
            }
            let n = item.iter().try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            let Some(n) = n else {
                return Err(bad(format!("Content-Length '{text}' is too large")));
            };
            match length {
                Some(prev) if prev != n => {
                    return Err(bad(format!(
                        "conflicting Content-Length values {prev} and {n}"
                    )))
                }
                _ => length = Some(n),
            }
        }
    }
    Ok(length)
}

/// `chunk-size [ chunk-ext ]`: hex size with overflow checked; extensions ignored.
fn parse_chunk_line(line: &[u8], base: u64) -> Result<u64, ParseError> {
    let bad = |what: &str, i: usize| ParseError::Malformed {
        what: what.into(),
        at: base + i as u64,
    };
    let line = match line {
        [rest @ .., b'\r'] => rest,
        l => l,
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(bad("expected a hexadecimal chunk size", 0));
    }
    let mut size: u64 = 0;
    for &d in &line[..digits] {
        let v = (d as char).to_digit(16).unwrap_or(0) as u64;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(v))
            .ok_or_else(|| bad("chunk size overflows 64 bits", 0))?;
    }
    let mut i = digits;
    while matches!(line.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match line.get(i) {
        None => {}
        Some(b';') => {
            if let Some(j) = line[i..].iter().position(|&b| !is_field_byte(b)) {
                return Err(bad("control character in a chunk extension", i + j));
            }
        }
        Some(_) => return Err(bad("invalid character after the chunk size", i)),
    }
    Ok(size)
}

#[cfg(test)]
mod tests;
