//! One request and its response over a [`Connection`]: write the request, feed
//! what arrives to the [`ResponseParser`], hand body bytes to the caller, and say
//! whether the connection may be reused.
//!
//! Owns the read buffer discipline (bounded: the parser fails before a head can
//! outgrow `max_header_bytes`), TLS close_notify handling at EOF, and spotting a
//! reused connection the server had already closed. It never decides what to do
//! with a response; `cmd::http` does.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::parse::{Event, Head, Header, Limits, Response, ResponseParser};
use super::pool::Connection;
use super::{Error as HttpError, Kind};
use crate::error::{Error, Result};

/// Initial read buffer size; large reads keep system calls few on big bodies.
pub const READ_BUFFER: usize = 256 * 1024;

/// Body pieces from this size up may leave in their read buffer (see
/// [`Exchange::swap_out`]); smaller ones are copied.
const SWAP_MIN: usize = 32 * 1024;

/// Bytes read from a connection and not yet consumed by the parser.
pub struct Buffer {
    data: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            data: vec![0; READ_BUFFER],
            pos: 0,
            end: 0,
        }
    }
}

impl Buffer {
    fn clear(&mut self) {
        self.pos = 0;
        self.end = 0;
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.pos..self.end]
    }

    /// Makes room at the end: reuse the start, else grow. The parser bounds how
    /// much unconsumed data can pile up, so growth is bounded too.
    fn make_room(&mut self) {
        if self.pos == self.end {
            self.clear();
        } else if self.end == self.data.len() {
            if self.pos > 0 {
                self.data.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            } else {
                let n = self.data.len() * 2;
                self.data.resize(n, 0);
            }
        }
    }
}

/// What reading from the connection produced.
enum Read {
    Data,
    /// EOF; `clean` is false for TLS without close_notify.
    Eof {
        clean: bool,
    },
}

/// The outcome of the response head.
pub enum Started {
    /// The final response's head.
    Response(Box<Response>),
    /// A reused connection turned out to be closed by the server before anything
    /// came back: the request may be sent again on a new connection.
    Stale,
}

/// One request/response exchange in progress.
pub struct Exchange<'a> {
    conn: &'a mut Connection,
    buf: &'a mut Buffer,
    parser: ResponseParser,
    /// When the first byte of the response arrived.
    pub first_byte: Option<Instant>,
    /// Trailer fields, once the body is complete.
    pub trailers: Vec<Header>,
    /// Sending failed (the server closed while the body was going out): a
    /// response it sent first (a 401, a 413) is still read and shown; without
    /// one, this is the error.
    send_failed: Option<Error>,
    /// The request was not sent whole: the connection cannot be reused.
    broken: bool,
}

fn recv_error(peer: &str, e: &io::Error) -> Error {
    HttpError::new(
        Kind::Recv,
        format!("failed receiving the response from {peer}"),
        crate::error::describe_io(e),
    )
    .into()
}

/// Where an upload (`-T`) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (or a FIFO, a device), opened when the request is sent.
    File(std::path::PathBuf),
    /// Standard input (`-T -`): it can be sent only once.
    Stdin,
}

/// What is sent as the request body with `-T`, read as it goes out: with its
/// length known when the run began (a regular file: `Content-Length`), or
/// chunked (`Transfer-Encoding: chunked`, as curl sends stdin and pipes) with
/// memory bounded by one piece whatever the size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Where the bytes come from.
    pub source: Source,
    /// Bytes to send (`Content-Length`); None: chunked, to the end of the input.
    pub len: Option<u64>,
}

/// Set once stdin has been opened for an upload: it cannot be read again.
static STDIN_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Bytes read from the upload and written per piece.
const UPLOAD_PIECE: usize = 256 * 1024;

type UploadReader = std::fs::File;

impl Upload {
    /// The input, as named in messages.
    pub fn name(&self) -> String {
        match &self.source {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "stdin".into(),
        }
    }

    fn open(&self) -> Result<UploadReader> {
        match &self.source {
            Source::File(path) => match std::fs::File::open(path) {
                Ok(f) => Ok(f),
                Err(e) => Err(HttpError::new(
                    Kind::ReadFile,
                    format!("cannot read {}", path.display()),
                    crate::error::describe_io(&e),
                )
                .into()),
            },
            Source::Stdin => {
                if STDIN_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    // curl: "necessary data rewind wasn't possible".
                    return Err(HttpError::new(
                        Kind::Send,
                        "cannot send stdin again",
                        "it was sent to an earlier request; a redirect or retry cannot rewind it",
                    )
                    .into());
                }
                // Its descriptor as a file: read without std's buffer, and
                // tellable apart as a regular file or a pipe.
                use std::os::fd::AsFd;
                let fd = std::io::stdin().as_fd().try_clone_to_owned();
                fd.map(std::fs::File::from).map_err(|e| {
                    HttpError::new(
                        Kind::ReadFile,
                        "cannot read stdin",
                        crate::error::describe_io(&e),
                    )
                    .into()
                })
            }
        }
    }
}

/// Paces what is written to `--limit-rate`: before a piece goes out, waits until
/// what went before is due at the rate (the shape of the download side).
struct Pace {
    rate: Option<u64>,
    began: Instant,
    sent: u64,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace {
            rate,
            began: Instant::now(),
            sent: 0,
        }
    }

    /// The largest piece to write at once: about a quarter second at the rate,
    /// so the pace is smooth, within [1 KiB, `UPLOAD_PIECE`].
    fn piece(&self) -> usize {
        match self.rate {
            Some(r) => usize::try_from(r / 4)
                .unwrap_or(UPLOAD_PIECE)
                .clamp(1024, UPLOAD_PIECE),
            None => UPLOAD_PIECE,
        }
    }

    async fn before(&mut self, n: usize) {
        if let Some(rate) = self.rate {
            let due = self.sent as f64 / rate as f64;
            let ahead = due - self.began.elapsed().as_secs_f64();
            if ahead > 0.0 {
                tokio::time::sleep(std::time::Duration::from_secs_f64(ahead)).await;
            }
        }
        self.sent += n as u64;
    }
}

/// Writes `data` in paced pieces.
async fn write_paced<S: tokio::io::AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    data: &[u8],
    pace: &mut Pace,
) -> io::Result<()> {
    for piece in data.chunks(pace.piece()) {
        pace.before(piece.len()).await;
        stream.write_all(piece).await?;
    }
    Ok(())
}

/// Room left before each piece read for a chunk-size line (`{hex}\r\n`).
const CHUNK_ROOM: usize = 18;

/// Pieces read ahead of the socket: reading overlaps sending, and memory
/// stays at a few pieces whatever the size.
const READ_AHEAD: usize = 2;

/// A piece read: its buffer, the bytes at `CHUNK_ROOM..CHUNK_ROOM + len`.
type Piece = io::Result<(Vec<u8>, usize)>;

/// Reads `input` on a thread of its own (a file or stdin: blocking reads),
/// `piece` bytes at a time and at most `limit` in all, into buffers that come
/// back through the returned sender once written. A stalled stdin never
/// blocks the runtime; the thread ends when the receiver goes.
fn read_ahead(
    mut input: UploadReader,
    piece: usize,
    limit: Option<u64>,
) -> (
    tokio::sync::mpsc::Receiver<Piece>,
    std::sync::mpsc::Sender<Vec<u8>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(READ_AHEAD);
    let (back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = move || {
        let mut left = limit;
        loop {
            let want = match left {
                Some(l) => piece.min(usize::try_from(l).unwrap_or(usize::MAX)),
                None => piece,
            };
            if want == 0 {
                return;
            }
            let mut buf = spare
                .try_recv()
                .unwrap_or_else(|_| vec![0u8; CHUNK_ROOM + piece + 2]);
            let r = loop {
                match io::Read::read(&mut input, &mut buf[CHUNK_ROOM..CHUNK_ROOM + want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let done = !matches!(r, Ok(n) if n > 0);
            if let (Ok(n), Some(l)) = (&r, left.as_mut()) {
                *l -= *n as u64;
            }
            if matches!(r, Ok(0)) || tx.blocking_send(r.map(|n| (buf, n))).is_err() || done {
                return;
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("sockit-upload".into())
        .spawn(reader)
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(1);
        let _ = tx.try_send(Err(e));
        return (rx, back);
    }
    (rx, back)
}

/// Writes the piece at `buf[CHUNK_ROOM..CHUNK_ROOM + n]`, as a chunk when
/// `chunked`: its size line, the data and its CRLF in one write.
async fn write_piece<S: tokio::io::AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut [u8],
    n: usize,
    chunked: bool,
) -> io::Result<()> {
    if !chunked {
        return stream.write_all(&buf[CHUNK_ROOM..CHUNK_ROOM + n]).await;
    }
    let size = format!("{n:x}\r\n");
    let start = CHUNK_ROOM - size.len();
    buf[start..CHUNK_ROOM].copy_from_slice(size.as_bytes());
    buf[CHUNK_ROOM + n..CHUNK_ROOM + n + 2].copy_from_slice(b"\r\n");
    stream.write_all(&buf[start..CHUNK_ROOM + n + 2]).await
}

/// Sends `u`'s bytes as they are read: memory stays flat whatever the size.
/// A regular file (or stdin redirected from one) is read right here, as its
/// reads do not wait; a pipe or a device is read ahead on a thread.
async fn send_upload<S: tokio::io::AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    u: &Upload,
    mut input: UploadReader,
    pace: &mut Pace,
) -> io::Result<()> {
    let read_error = |e: io::Error| {
        io::Error::other(format!(
            "cannot read {}: {}",
            u.name(),
            crate::error::describe_io(&e)
        ))
    };
    let chunked = u.len.is_none();
    let piece = pace.piece();
    let mut sent = 0u64;
    if input.metadata().is_ok_and(|m| m.is_file()) {
        let mut buf = vec![0u8; CHUNK_ROOM + piece + 2];
        loop {
            let left = u.len.map_or(u64::MAX, |l| l - sent);
            let want = piece.min(usize::try_from(left).unwrap_or(usize::MAX));
            if want == 0 {
                break;
            }
            let n = loop {
                match io::Read::read(&mut input, &mut buf[CHUNK_ROOM..CHUNK_ROOM + want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r.map_err(read_error)?,
                }
            };
            if n == 0 {
                break;
            }
            pace.before(n).await;
            write_piece(stream, &mut buf, n, chunked).await?;
            sent += n as u64;
        }
    } else {
        let (mut pieces, back) = read_ahead(input, piece, u.len);
        while let Some(p) = pieces.recv().await {
            let (mut buf, n) = p.map_err(read_error)?;
            pace.before(n).await;
            write_piece(stream, &mut buf, n, chunked).await?;
            sent += n as u64;
            let _ = back.send(buf);
        }
    }
    match u.len {
        Some(len) if sent < len => Err(io::Error::other(format!(
            "{} ended {} bytes short of the {len} announced",
            u.name(),
            len - sent
        ))),
        Some(_) => Ok(()),
        None => stream.write_all(b"0\r\n\r\n").await,
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

impl<'a> Exchange<'a> {
    /// Writes the request (`head`, then `body`, then `upload`'s bytes read as they
    /// go), the body paced to `limit_rate` bytes a second when given. A write
    /// failure on a reused connection is reported as `Ok(None)` (stale), so the
    /// caller can retry.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        conn: &'a mut Connection,
        buf: &'a mut Buffer,
        head: &[u8],
        body: Option<&[u8]>,
        upload: Option<&Upload>,
        head_request: bool,
        limits: Limits,
        limit_rate: Option<u64>,
    ) -> Result<Option<Exchange<'a>>> {
        let input = match upload {
            Some(u) => Some((u.open()?, u)),
            None => None,
        };
        buf.clear();
        let reused = conn.uses > 0;
        conn.uses += 1;
        let stream = &mut conn.stream;
        let r = async move {
            let mut pace = Pace::new(limit_rate);
            match body {
                Some(b) if b.len() <= 64 * 1024 && limit_rate.is_none() => {
                    // One write, so a small request is one segment.
                    let mut all = Vec::with_capacity(head.len() + b.len());
                    all.extend_from_slice(head);
                    all.extend_from_slice(b);
                    stream.write_all(&all).await?;
                }
                Some(b) => {
                    stream.write_all(head).await?;
                    write_paced(stream, b, &mut pace).await?;
                }
                None => stream.write_all(head).await?,
            }
            if let Some((input, u)) = input {
                send_upload(stream, u, input, &mut pace).await?;
            }
            stream.flush().await
        }
        .await;
        let mut send_failed = None;
        match r {
            Ok(()) => {}
            Err(e) if reused && is_stale(&e) => return Ok(None),
            Err(e) => {
                let err: Error = HttpError::new(
                    Kind::Send,
                    format!("failed sending the request to {}", conn.peer),
                    crate::error::describe_io(&e),
                )
                .into();
                if !is_stale(&e) {
                    return Err(err);
                }
                // The server may have answered before closing (curl shows it too).
                send_failed = Some(err);
            }
        }
        Ok(Some(Exchange {
            conn,
            buf,
            parser: ResponseParser::new(head_request, limits),
            first_byte: None,
            trailers: Vec::new(),
            broken: send_failed.is_some(),
            send_failed,
        }))
    }

    async fn fill(&mut self) -> Result<Read> {
        self.buf.make_room();
        let end = self.buf.end;
        match self.conn.stream.read(&mut self.buf.data[end..]).await {
            Ok(0) => Ok(Read::Eof { clean: true }),
            Ok(n) => {
                self.buf.end += n;
                if self.first_byte.is_none() {
                    self.first_byte = Some(Instant::now());
                }
                Ok(Read::Data)
            }
            Err(e) if self.conn.tls && e.kind() == io::ErrorKind::UnexpectedEof => {
                Ok(Read::Eof { clean: false })
            }
            Err(e) => Err(e).map_err(|e| recv_error(&self.conn.peer, &e)),
        }
    }

    fn parse_error(&self, e: &super::parse::ParseError) -> Error {
        HttpError::from_parse(e, &self.conn.peer).into()
    }

    /// Reads up to the final response's head; interim (1xx) heads go to `on_interim`.
    /// After a failed send, a response is still taken; anything else reports
    /// the send failure.
    pub async fn start(&mut self, on_interim: &mut (dyn FnMut(&Head) + Send)) -> Result<Started> {
        let r = self.read_head(on_interim).await;
        match (r, self.send_failed.take()) {
            (Ok(Started::Response(resp)), _) => Ok(Started::Response(resp)),
            (_, Some(e)) => Err(e),
            (r, None) => r,
        }
    }

    async fn read_head(&mut self, on_interim: &mut (dyn FnMut(&Head) + Send)) -> Result<Started> {
        let reused = self.conn.uses > 1;
        loop {
            let parsed = self
                .parser
                .parse(&self.buf.data[self.buf.pos..self.buf.end]);
            let (n, ev) = match parsed {
                Ok(x) => x,
                Err(e) => return Err(self.parse_error(&e)),
            };
            self.buf.pos += n;
            match ev {
                Some(Event::Interim(head)) => on_interim(&head),
                Some(Event::Final(resp)) => return Ok(Started::Response(resp)),
                Some(_) => {
                    return Err(
                        HttpError::new(Kind::Malformed, "unexpected parser event", "").into(),
                    )
                }
                None => {
                    let nothing_yet = self.parser.offset() == 0 && self.buf.pos == self.buf.end;
                    match self.fill().await {
                        Ok(Read::Data) => {}
                        Ok(Read::Eof { .. }) if reused && nothing_yet => return Ok(Started::Stale),
                        Err(_) if reused && nothing_yet => return Ok(Started::Stale),
                        Err(e) => return Err(e),
                        Ok(Read::Eof { clean }) => {
                            let pending = self.buf.pending().to_vec();
                            return match self.parser.finish(clean, &pending) {
                                Err(e) => Err(self.parse_error(&e)),
                                Ok(_) => Err(HttpError::new(
                                    Kind::Malformed,
                                    "response ended inside the head",
                                    "",
                                )
                                .into()),
                            };
                        }
                    }
                }
            }
        }
    }

    /// The next piece of the body, a slice of the read buffer, or its end with
    /// whether the connection may carry another request. Trailers, if any, are in
    /// [`Exchange::trailers`] once the end is reported.
    pub async fn next(&mut self) -> Result<BodyPart<'_>> {
        loop {
            let parsed = self
                .parser
                .parse(&self.buf.data[self.buf.pos..self.buf.end]);
            let (n, ev) = match parsed {
                Ok(x) => x,
                Err(e) => return Err(self.parse_error(&e)),
            };
            // Owned, so the parser's borrow of the buffer ends here.
            let step = match ev {
                Some(Event::Data(d)) => Step::Data(d.len()),
                Some(Event::Trailers(t)) => Step::Trailers(t),
                Some(Event::End { reusable }) => Step::End(reusable),
                Some(Event::Interim(_) | Event::Final(_)) => Step::Unexpected,
                None => Step::More,
            };
            self.buf.pos += n;
            match step {
                // Body bytes always end where the parser stopped consuming.
                Step::Data(len) => {
                    let end = self.buf.pos;
                    return Ok(BodyPart::Data(&self.buf.data[end - len..end]));
                }
                Step::Trailers(t) => self.trailers = t,
                // Bytes after the end of a response mean the server and this client
                // disagree on framing: never reuse such a connection.
                Step::End(reusable) => {
                    let reusable = reusable && self.buf.pos == self.buf.end && !self.broken;
                    return Ok(BodyPart::End { reusable });
                }
                Step::Unexpected => {
                    return Err(
                        HttpError::new(Kind::Malformed, "unexpected parser event", "").into(),
                    )
                }
                Step::More => match self.fill().await? {
                    Read::Data => {}
                    Read::Eof { clean } => {
                        let pending = self.buf.pending().to_vec();
                        return match self.parser.finish(clean, &pending) {
                            Ok(_) => Ok(BodyPart::End { reusable: false }),
                            Err(e) => Err(self.parse_error(&e)),
                        };
                    }
                },
            }
        }
    }

    /// Hands over the read buffer holding the `len` body bytes the last
    /// [`Exchange::next`] returned, taking `fresh` in its place, when that is
    /// cheaper than copying them: the piece is large and little was read after it.
    /// Returns the buffer and where the piece is in it; gives `fresh` back otherwise.
    pub fn swap_out(
        &mut self,
        len: usize,
        mut fresh: Vec<u8>,
    ) -> std::result::Result<(Vec<u8>, std::ops::Range<usize>), Vec<u8>> {
        let b = &mut *self.buf;
        let tail = b.end - b.pos;
        if len < SWAP_MIN || tail > SWAP_MIN / 4 || fresh.len() < b.data.len() || len > b.pos {
            return Err(fresh);
        }
        fresh[..tail].copy_from_slice(&b.data[b.pos..b.end]);
        let old = std::mem::replace(&mut b.data, fresh);
        let piece = b.pos - len..b.pos;
        b.pos = 0;
        b.end = tail;
        Ok((old, piece))
    }

    /// The last `len` bytes consumed: the piece the last [`Exchange::next`] returned.
    pub fn last_piece(&self, len: usize) -> &[u8] {
        &self.buf.data[self.buf.pos.saturating_sub(len)..self.buf.pos]
    }

    /// The size of the read buffer (what [`Exchange::swap_out`] wants in exchange).
    pub fn buffer_len(&self) -> usize {
        self.buf.data.len()
    }

    /// Reads the body to its end and drops it (a redirect's body, so the connection
    /// can be reused). Returns whether it may be.
    pub async fn skip_body(&mut self) -> Result<bool> {
        loop {
            if let BodyPart::End { reusable } = self.next().await? {
                return Ok(reusable);
            }
        }
    }
}

/// What [`Exchange::next`] produced.
#[derive(Debug)]
pub enum BodyPart<'b> {
    /// Body bytes, framing removed (still content- and transfer-coded).
    Data(&'b [u8]),
    /// The body is complete.
    End {
        /// The connection may carry another request.
        reusable: bool,
    },
}

/// A parser event with the borrow of the buffer dropped.
enum Step {
    Data(usize),
    Trailers(Vec<Header>),
    End(bool),
    Unexpected,
    More,
}
