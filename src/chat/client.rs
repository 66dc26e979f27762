//! `sockit chat join`: the chat client's I/O. Connects (TCP, Unix, TLS over
//! either), sends the nick, then moves lines both ways until the server closes:
//! input lines to the server as they are, server lines through
//! `ServerEvent` (sanitized, classified) to the terminal or as
//! JSON. Optionally reconnects with backoff and restores the nick.
//!
//! With `--reconnect` the client also resumes: it asks for cursor marks
//! (`/cursors`), remembers the room it is in, the history database's epoch
//! and the last sequence number it has shown, and after a reconnect goes
//! back to the room and asks for what it missed (`/resume ROOM EPOCH SEQ`).
//! Lines it already showed are not shown again, and nothing is shown past a
//! hole until the resume fills it (or the server says the gap cannot be
//! filled: `* gap: reload ...`).
//!
//! Input comes either from an interactive line editor (rustyline, on its own
//! thread, with its external printer showing incoming lines above the prompt)
//! or from plain stdin for scripts. Every queue between the two sides is
//! bounded, and no server byte reaches stdout without being sanitized.

use crate::shutdown::Shutdown;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal;
use std::thread;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::event::{rfc3339, ServerEvent};
use super::protocol::is_kick_notice;
use super::protocol::{parse, Frame, Input, LineFramer};
use crate::conn::{Chunk, Conn, ConnReader, ConnWriter};
use crate::dial::{dial, DialOpts};
use crate::endpoint::Endpoint;
use crate::error::{Class, Error, Result};

/// Shortest wait before a reconnect.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait before a reconnect.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the backoff to its minimum.
const STABLE: Duration = Duration::from_secs(10);
/// Input lines waiting to be sent (typed while reconnecting, or a fast pipe).
const INPUT_QUEUE: usize = 64;
/// Lines waiting for the terminal's external printer.
const PRINT_QUEUE: usize = 256;

/// Everything `chat join` needs, flags already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub endpoint: Endpoint,
    /// More servers (other nodes of a cluster): tried in turn after
    /// `endpoint` when a connect fails, and the next one is tried first when
    /// a connection drops.
    pub others: Vec<Endpoint>,
    /// How to reach it (family, connect timeout, TLS).
    pub dial: DialOpts,
    /// Nick to take after each connect.
    pub nick: Option<String>,
    /// One JSON object per server line instead of text.
    pub json: bool,
    /// Colour nicks in text output.
    pub color: bool,
    /// Reconnect with backoff when the connection drops.
    pub reconnect: bool,
    /// Use the line editor (stdin and stdout are terminals and output is text).
    pub interactive: bool,
    /// Longest line in bytes, either way.
    pub max_line: usize,
}

/// Exponential backoff with jitter: the ceiling doubles from `min` per attempt
/// up to `max`, and each wait is the ceiling times a factor in [0.75, 1.25),
/// kept within [`min`, `max`].
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff at its first attempt.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The next wait; `jitter` is uniform in [0, 1).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
        ceiling.mul_f64(factor).clamp(self.min, self.max)
    }

    /// Back to the first attempt (after a connection that held).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A number in [0, 1) from the standard library's per-instance random keys.
fn jitter() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// "0.5s", "12.3s".
fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// One unit of user input.
#[derive(Debug)]
enum UserInput {
    /// A line to send (no terminator).
    Text(Vec<u8>),
    /// Input ended: half-close and wait for the server to finish.
    Eof,
}

/// Where server lines and client notices go.
enum Screen {
    /// stdout (text or JSON); notices on stderr.
    Plain(tokio::io::Stdout),
    /// The line editor's external printer, fed by a thread (its `print` blocks).
    Printer {
        tx: Option<mpsc::Sender<String>>,
        thread: Option<thread::JoinHandle<()>>,
    },
}

/// Stdout went away (e.g. `| head`): a quiet end, not an error.
struct StdoutClosed;

impl Screen {
    async fn line(&mut self, text: String) -> std::result::Result<(), StdoutClosed> {
        match self {
            Screen::Plain(out) => {
                let mut text = text;
                text.push('\n');
                let r = match out.write_all(text.as_bytes()).await {
                    Ok(()) => out.flush().await,
                    Err(e) => Err(e),
                };
                r.map_err(|e| {
                    tracing::debug!("stdout: {e}");
                    StdoutClosed
                })
            }
            // With a newline: the printer writes as is while no prompt is shown.
            Screen::Printer { tx, .. } => match tx {
                Some(tx) => tx.send(text + "\n").await.map_err(|_| StdoutClosed),
                None => Err(StdoutClosed),
            },
        }
    }

    /// A notice from the client itself (`* reconnecting in 1.0s`): stderr, or
    /// above the prompt when interactive.
    async fn notice(&mut self, text: &str) {
        match self {
            Screen::Plain(_) => stderr_line(text),
            Screen::Printer { .. } => {
                let _ = self.line(text.to_string()).await;
            }
        }
    }

    /// Hands every queued line to the printer.
    fn finish(&mut self) {
        if let Screen::Printer { tx, thread } = self {
            tx.take();
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Writes one whole line to stderr in a single write, so that it cannot be
/// interleaved with other output or read half-written.
fn stderr_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Restores the terminal when the client ends while the editor is waiting for
/// a key (its thread never returns from `readline`, so it cannot do it).
struct TermGuard {
    saved: Option<libc::termios>,
}

impl TermGuard {
    fn save() -> Self {
        // SAFETY: tcgetattr fills the struct for fd 0; it is used only on success.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(0, &mut t) == 0).then_some(t)
        };
        TermGuard { saved }
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // Give the editor a moment to draw what it was handed last.
            thread::sleep(Duration::from_millis(30));
            // SAFETY: restores attributes read from the same descriptor.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, t);
            }
            // Bracketed paste off, then erase the abandoned prompt line.
            let mut out = std::io::stdout();
            let _ = std::io::Write::write_all(&mut out, b"\x1b[?2004l\r\x1b[K");
            let _ = std::io::Write::flush(&mut out);
        }
    }
}

/// Starts the line editor on its own thread. `None` if the terminal cannot
/// support it (e.g. TERM=dumb), so the caller falls back to plain stdin.
fn start_editor(
    tx: mpsc::Sender<UserInput>,
    quit: CancellationToken,
    max_line: usize,
) -> Option<(Screen, TermGuard)> {
    use rustyline::error::ReadlineError;
    use rustyline::{Config as RlConfig, DefaultEditor, ExternalPrinter};

    let config = RlConfig::builder().max_history_size(1000).ok()?.build();
    let mut editor = DefaultEditor::with_config(config).ok()?;
    let mut printer = editor.create_external_printer().ok()?;
    let guard = TermGuard::save();
    thread::Builder::new()
        .name("chat-editor".into())
        .spawn(move || loop {
            match editor.readline("> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if line.len() > max_line {
                        // Between two prompts the terminal is in its normal mode.
                        stderr_line(&format!(
                            "* not sent: an input line longer than {max_line} bytes (--max-line)"
                        ));
                        continue;
                    }
                    if tx
                        .blocking_send(UserInput::Text(line.into_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    quit.cancel();
                    return;
                }
                Err(ReadlineError::Eof) => {
                    let _ = tx.blocking_send(UserInput::Eof);
                    return;
                }
                Err(e) => {
                    tracing::warn!("line editor: {e}");
                    let _ = tx.blocking_send(UserInput::Eof);
                    return;
                }
            }
        })
        .ok()?;
    let (ptx, mut prx) = mpsc::channel::<String>(PRINT_QUEUE);
    let printer_thread = thread::Builder::new()
        .name("chat-printer".into())
        .spawn(move || {
            while let Some(msg) = prx.blocking_recv() {
                if printer.print(msg).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some((
        Screen::Printer {
            tx: Some(ptx),
            thread: Some(printer_thread),
        },
        guard,
    ))
}

/// Reads stdin into lines of at most `max` bytes; a longer one is reported and skipped.
async fn read_stdin(tx: mpsc::Sender<UserInput>, max: usize) {
    let mut stdin = tokio::io::stdin();
    let mut framer = LineFramer::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    loop {
        let eof = match stdin.read(&mut buf).await {
            Ok(0) => true,
            Ok(n) => {
                framer.push(&buf[..n], &mut frames);
                false
            }
            Err(e) => {
                tracing::warn!("reading stdin: {}", crate::error::describe_io(&e));
                true
            }
        };
        if eof {
            frames.extend(framer.finish());
        }
        for frame in frames.drain(..) {
            match frame {
                Frame::Line(line) => {
                    if tx.send(UserInput::Text(line)).await.is_err() {
                        return;
                    }
                }
                Frame::TooLong => stderr_line(&format!(
                    "* not sent: an input line longer than {max} bytes (--max-line)"
                )),
            }
        }
        if eof {
            let _ = tx.send(UserInput::Eof).await;
            return;
        }
    }
}

/// What the client knows across connections.
#[derive(Debug, Default)]
struct NickState {
    /// The nick to ask for after connecting (`--nick`, then any accepted change).
    wanted: Option<String>,
    /// The nick the server says we have.
    current: Option<String>,
    /// The server kicked us: do not come back on our own.
    kicked: bool,
}

impl NickState {
    fn observe(&mut self, ev: &ServerEvent) {
        if let Some(n) = ev.welcome_nick() {
            self.current = Some(n.to_string());
        }
        match ev {
            ServerEvent::Nick { old, new }
                if self
                    .current
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(old)) =>
            {
                self.current = Some(new.clone());
                self.wanted = Some(new.clone());
            }
            ServerEvent::Error { text } if is_kick_notice(text) => self.kicked = true,
            _ => {}
        }
    }
}

/// A server line with its history or cursor mark taken off.
#[derive(Debug, PartialEq, Eq)]
enum Marked<'a> {
    /// `=ROOM#SEQ TIME LINE`.
    History {
        room: &'a str,
        seq: u64,
        prev: u64,
        time: &'a str,
        line: &'a [u8],
    },
    /// `@ROOM#SEQ LINE`.
    Live {
        room: &'a str,
        seq: u64,
        prev: u64,
        line: &'a [u8],
    },
    /// `@ROOM#SEQ epoch=EPOCH`: where the room stands.
    Cursor {
        room: &'a str,
        seq: u64,
        epoch: &'a str,
    },
    /// Any other line.
    Plain,
}

/// `ROOM#SEQ` or `ROOM#SEQ/PREV`: the room, its number and the number before
/// (`SEQ - 1` unless said).
fn room_seq(mark: &str) -> Option<(&str, u64, u64)> {
    let (room, num) = mark.rsplit_once('#')?;
    let (seq, prev) = match num.split_once('/') {
        Some((s, p)) => (s.parse().ok()?, p.parse().ok()?),
        None => {
            let s: u64 = num.parse().ok()?;
            (s, s.saturating_sub(1))
        }
    };
    Some((room, seq, prev))
}

fn split_mark(line: &[u8]) -> Marked<'_> {
    let (kind, rest) = match line.first() {
        Some(b'=') => ('=', &line[1..]),
        Some(b'@') => ('@', &line[1..]),
        _ => return Marked::Plain,
    };
    let Some(sp) = rest.iter().position(|&b| b == b' ') else {
        return Marked::Plain;
    };
    let Some((room, seq, prev)) = std::str::from_utf8(&rest[..sp]).ok().and_then(room_seq) else {
        return Marked::Plain;
    };
    let after = &rest[sp + 1..];
    if kind == '@' {
        if let Some(e) = after.strip_prefix(b"epoch=") {
            return match std::str::from_utf8(e) {
                Ok(epoch) => Marked::Cursor { room, seq, epoch },
                Err(_) => Marked::Plain,
            };
        }
        return Marked::Live {
            room,
            seq,
            prev,
            line: after,
        };
    }
    let Some(sp) = after.iter().position(|&b| b == b' ') else {
        return Marked::Plain;
    };
    match std::str::from_utf8(&after[..sp]) {
        Ok(time) => Marked::History {
            room,
            seq,
            prev,
            time,
            line: &after[sp + 1..],
        },
        Err(_) => Marked::Plain,
    }
}

/// Where the client stands in its room's history, across connections
/// (`--reconnect`).
#[derive(Debug, Default)]
struct CursorState {
    /// The room the client is in (from the welcome and `/join` notices).
    room: Option<String>,
    /// The history database's epoch, from the server's cursor notices.
    epoch: Option<String>,
    /// The last sequence number shown of `room` (None: not known yet).
    last: Option<u64>,
    /// After a reconnect: the room to go back to, and the last number
    /// shown of it.
    target: Option<(String, u64)>,
}

impl CursorState {
    /// The lines to send after connecting, before the nick: marks, then
    /// (after a reconnect) back to the room and what was missed.
    fn greeting(&mut self) -> (Vec<u8>, Vec<u8>) {
        let before = b"/cursors\n".to_vec();
        let mut after = Vec::new();
        self.target = None;
        if let (Some(room), Some(epoch), Some(last)) = (&self.room, &self.epoch, self.last) {
            if room != "lobby" {
                after.extend_from_slice(format!("/join {room}\n").as_bytes());
            }
            after.extend_from_slice(format!("/resume {room} {epoch} {last}\n").as_bytes());
            self.target = Some((room.clone(), last));
        }
        (before, after)
    }

    /// Whether a resume of `room` is under way.
    fn resuming(&self, room: &str) -> bool {
        self.target.as_ref().is_some_and(|(r, _)| r == room)
    }

    /// Whether to show a line of `room` numbered `seq`, the room's event
    /// before it being `prev`: not if already shown, nor past a hole (a
    /// resume fills it).
    fn admit(&mut self, room: &str, seq: u64, prev: u64) -> bool {
        if self.room.as_deref() != Some(room) {
            return true;
        }
        match self.last {
            Some(l) if seq <= l => false,
            Some(l) if prev > l => false,
            _ => {
                self.last = Some(seq);
                true
            }
        }
    }

    /// Follows room changes, epochs and gaps.
    fn observe(&mut self, ev: &ServerEvent, marked: &Marked<'_>) {
        if let Marked::Cursor { room, seq, epoch } = marked {
            if self.epoch.as_deref() != Some(*epoch) {
                if self.epoch.is_some() {
                    self.last = None;
                }
                self.epoch = Some(epoch.to_string());
            }
            // Entering the room (its history before this is shown as
            // history), or `/history`: live events go on from here. During
            // a resume of the room (until the client leaves it) its lines
            // move the place instead, so that nothing is shown twice.
            if self.room.as_deref() == Some(*room) && !self.resuming(room) {
                self.last = Some(*seq);
            }
            return;
        }
        let ServerEvent::System { text } = ev else {
            return;
        };
        let entered = text
            .strip_prefix("welcome, you are ")
            .and_then(|t| t.split_once(", in ").map(|x| x.1))
            .or_else(|| text.strip_prefix("you are now in "))
            .and_then(|t| t.split(' ').next());
        if let Some(room) = entered {
            self.last = match &self.target {
                Some((r, last)) if r == room => Some(*last),
                _ => None,
            };
            // Moved on from a room other than the one being resumed (the
            // welcome is always the lobby's): the resume is over.
            if text.starts_with("you are now in ")
                && self.target.as_ref().is_some_and(|(r, _)| r != room)
            {
                self.target = None;
            }
            self.room = Some(room.to_string());
        } else if let Some(rest) = text.strip_prefix("gap: reload ") {
            if rest.split(' ').next() == self.room.as_deref() {
                self.last = None;
                self.target = None;
            }
        }
    }
}

/// What the user's side has done, across connections.
#[derive(Debug, Default)]
struct SendState {
    /// Input ended and the connection was half-closed.
    input_done: bool,
    /// The user sent `/quit`.
    quit_sent: bool,
}

/// Why a connection ended.
enum ConnEnd {
    /// The server closed its side cleanly.
    Closed,
    /// Reading or writing failed.
    Lost(Error),
    /// Ctrl-C, SIGTERM, or Ctrl-C in the editor.
    Interrupted,
    /// Our stdout is gone.
    StdoutClosed,
}

/// Runs the client until the server closes (or, with reconnect, until the user
/// leaves).
pub async fn run(cfg: Config, shutdown: Shutdown) -> Result<()> {
    let quit = CancellationToken::new();
    {
        let quit = quit.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            quit.cancel();
        });
    }
    let servers: Vec<&Endpoint> = std::iter::once(&cfg.endpoint).chain(&cfg.others).collect();
    let mut at = 0;
    let first = tokio::select! {
        r = dial_any(&servers, &mut at, &cfg.dial) => r,
        _ = quit.cancelled() => return Ok(()),
    };
    let mut conn = first?;
    tracing::info!(
        "connected to {} from {} ({})",
        conn.peer,
        conn.local,
        conn.proto
    );
    // Input starts once connected, so a failed connect leaves the terminal alone.
    let (tx, mut rx) = mpsc::channel::<UserInput>(INPUT_QUEUE);
    let editor = if cfg.interactive {
        start_editor(tx.clone(), quit.clone(), cfg.max_line)
    } else {
        None
    };
    let (mut out, _term) = match editor {
        Some((out, guard)) => (out, Some(guard)),
        None => {
            tokio::spawn(read_stdin(tx.clone(), cfg.max_line));
            (Screen::Plain(tokio::io::stdout()), None)
        }
    };
    drop(tx);
    let mut nick = NickState {
        wanted: cfg.nick.clone(),
        ..NickState::default()
    };
    let mut sent = SendState::default();
    let mut cursor = CursorState::default();
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let result = loop {
        let peer = conn.peer.clone();
        let started = Instant::now();
        let end = session(
            conn,
            &cfg,
            &mut nick,
            &mut cursor,
            &mut sent,
            &mut rx,
            &mut out,
            &quit,
        )
        .await;
        let why = match end {
            ConnEnd::Interrupted | ConnEnd::StdoutClosed => break Ok(()),
            ConnEnd::Closed => {
                tracing::info!("{peer} closed the connection");
                "the server closed the connection".to_string()
            }
            ConnEnd::Lost(e) => {
                if !cfg.reconnect || sent.input_done || sent.quit_sent {
                    break Err(e);
                }
                format!("connection lost: {e}")
            }
        };
        if !cfg.reconnect || sent.input_done || sent.quit_sent || nick.kicked {
            break Ok(());
        }
        if started.elapsed() >= STABLE {
            backoff.reset();
        }
        out.notice(&format!("* {why}")).await;
        // The next server first: the one that dropped us may be gone.
        at = (at + 1) % servers.len();
        conn = match reconnect(&servers, &mut at, &cfg, &mut backoff, &mut out, &quit).await {
            Ok(Some(c)) => c,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
    };
    out.finish();
    result
}

/// Waits and dials until a connection is made (`Some`), the user quits
/// (`None`), or the error cannot improve by retrying (a usage error).
async fn reconnect(
    servers: &[&Endpoint],
    at: &mut usize,
    cfg: &Config,
    backoff: &mut Backoff,
    out: &mut Screen,
    quit: &CancellationToken,
) -> Result<Option<Conn>> {
    loop {
        let wait = backoff.next_delay(jitter());
        out.notice(&format!("* reconnecting in {}", fmt_secs(wait)))
            .await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = quit.cancelled() => return Ok(None),
        }
        let r = tokio::select! {
            r = dial_any(servers, at, &cfg.dial) => r,
            _ = quit.cancelled() => return Ok(None),
        };
        match r {
            Ok(conn) => {
                out.notice(&format!("* reconnected to {}", conn.peer)).await;
                return Ok(Some(conn));
            }
            Err(e) if e.class() == Class::Usage => return Err(e),
            Err(e) => out.notice(&format!("* cannot reconnect: {e}")).await,
        }
    }
}

/// Dials the servers in turn from `servers[*at]` until one answers (`*at`
/// then names it); the last failure if none does. A usage error stops at once.
async fn dial_any(servers: &[&Endpoint], at: &mut usize, opts: &DialOpts) -> Result<Conn> {
    let mut last = None;
    for k in 0..servers.len() {
        let i = (*at + k) % servers.len();
        match dial(servers[i], opts).await {
            Ok(c) => {
                *at = i;
                return Ok(c);
            }
            Err(e) if e.class() == Class::Usage => return Err(e),
            Err(e) => {
                if servers.len() > 1 {
                    tracing::info!("{e}");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Usage("no server to connect to".into())))
}

/// One connection: sends the nick, then runs the reading and writing sides
/// side by side until the server closes, something fails, or the user quits.
#[allow(clippy::too_many_arguments)]
async fn session(
    conn: Conn,
    cfg: &Config,
    nick: &mut NickState,
    cursor: &mut CursorState,
    sent: &mut SendState,
    rx: &mut mpsc::Receiver<UserInput>,
    out: &mut Screen,
    quit: &CancellationToken,
) -> ConnEnd {
    let peer = conn.peer.clone();
    let lost = |e: std::io::Error| {
        ConnEnd::Lost(crate::tls::read_error(
            format!("connection to {peer} lost"),
            e,
        ))
    };
    let (mut reader, mut writer) = conn.split();
    let (before, after) = if cfg.reconnect {
        cursor.greeting()
    } else {
        (Vec::new(), Vec::new())
    };
    let mut hello = before;
    if let Some(name) = &nick.wanted {
        hello.extend_from_slice(format!("/nick {name}\n").as_bytes());
    }
    hello.extend_from_slice(&after);
    if !hello.is_empty() {
        if let Err(e) = writer.write(&hello).await {
            return lost(e);
        }
    }
    let reading = read_side(&mut reader, cfg, nick, cursor, out);
    let writing = write_side(&mut writer, sent, rx);
    tokio::select! {
        r = reading => match r {
            Ok(end) => end,
            Err(e) => lost(e),
        },
        e = writing => lost(e),
        _ = quit.cancelled() => ConnEnd::Interrupted,
    }
}

/// Server lines to the output until EOF (`Ok(ConnEnd::Closed)`), stdout closing,
/// or a read error.
async fn read_side(
    reader: &mut ConnReader,
    cfg: &Config,
    nick: &mut NickState,
    cursor: &mut CursorState,
    out: &mut Screen,
) -> std::io::Result<ConnEnd> {
    let mut framer = LineFramer::new(cfg.max_line);
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    loop {
        let eof = match reader.read(&mut buf).await? {
            Chunk::Eof => true,
            Chunk::Data(n) => {
                framer.push(&buf[..n], &mut frames);
                false
            }
        };
        if eof {
            frames.extend(framer.finish());
        }
        for frame in frames.drain(..) {
            let text = match frame {
                Frame::Line(line) => {
                    let marked = split_mark(&line);
                    let (body, mark) = match &marked {
                        Marked::History {
                            room,
                            seq,
                            prev,
                            time,
                            line,
                        } => (*line, Some((*room, *seq, *prev, Some(*time)))),
                        Marked::Live {
                            room,
                            seq,
                            prev,
                            line,
                        } => (*line, Some((*room, *seq, *prev, None))),
                        Marked::Cursor { .. } | Marked::Plain => (&line[..], None),
                    };
                    let ev = ServerEvent::parse(body);
                    nick.observe(&ev);
                    cursor.observe(&ev, &marked);
                    if matches!(marked, Marked::Cursor { .. }) {
                        continue;
                    }
                    if let Some((room, seq, prev, time)) = mark {
                        // History outside a resume (on entering a room,
                        // `/history`) is shown as it comes; the rest only
                        // once, and not past a hole.
                        let past = time.is_some() && !cursor.resuming(room);
                        if !past && !cursor.admit(room, seq, prev) {
                            continue;
                        }
                        // Our own messages come back marked: a terminal
                        // already shows what was typed.
                        let own = match &ev {
                            ServerEvent::Message { nick: n, .. }
                            | ServerEvent::Action { nick: n, .. } => {
                                time.is_none() && nick.current.as_deref() == Some(n.as_str())
                            }
                            _ => false,
                        };
                        if own {
                            continue;
                        }
                        if cfg.json {
                            marked_json(&ev, room, seq, time)
                        } else {
                            match time {
                                Some(t) => format!("[{}] {}", shown_time(t), ev.render(cfg.color)),
                                None => ev.render(cfg.color),
                            }
                        }
                    } else if cfg.json {
                        ev.to_json(&rfc3339(SystemTime::now()))
                    } else {
                        ev.render(cfg.color)
                    }
                }
                Frame::TooLong => {
                    out.notice(&format!(
                        "* dropped a line from the server longer than {} bytes (--max-line)",
                        cfg.max_line
                    ))
                    .await;
                    continue;
                }
            };
            if out.line(text).await.is_err() {
                return Ok(ConnEnd::StdoutClosed);
            }
        }
        if eof {
            return Ok(ConnEnd::Closed);
        }
        framer.shrink();
    }
}

/// `2026-11-30T11:24:25.503Z` as `2026-11-30 11:24:25`.
fn shown_time(t: &str) -> String {
    let t = t.split('.').next().unwrap_or(t).trim_end_matches('Z');
    t.replacen('T', " ", 1)
}

/// The JSON of a marked event: its own time (for history), `room`, `seq`,
/// and `"history": true` for history.
fn marked_json(ev: &ServerEvent, room: &str, seq: u64, time: Option<&str>) -> String {
    let now = rfc3339(SystemTime::now());
    let json = ev.to_json(time.unwrap_or(&now));
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str(&json) else {
        return json;
    };
    obj.entry("room").or_insert_with(|| room.into());
    obj.insert("seq".into(), seq.into());
    if time.is_some() {
        obj.insert("history".into(), true.into());
    }
    serde_json::Value::Object(obj).to_string()
}

/// Input lines to the server. On input EOF it half-closes and then waits
/// forever (the reading side decides when the connection is over); returns
/// only a write error.
async fn write_side(
    writer: &mut ConnWriter,
    sent: &mut SendState,
    rx: &mut mpsc::Receiver<UserInput>,
) -> std::io::Error {
    loop {
        if sent.input_done {
            return std::future::pending().await;
        }
        match rx.recv().await {
            Some(UserInput::Text(mut line)) => {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Input::Quit(_) = parse(&String::from_utf8_lossy(&line)) {
                    sent.quit_sent = true;
                }
                line.push(b'\n');
                if let Err(e) = writer.write(&line).await {
                    return e;
                }
            }
            Some(UserInput::Eof) | None => {
                sent.input_done = true;
                tracing::debug!("input ended: half-closing");
                if let Err(e) = writer.shutdown().await {
                    // The server may already be gone; the reading side will say.
                    tracing::debug!("shutdown: {e}");
                }
            }
        }
    }
}

/// True when both stdin and stdout are terminals.
pub fn stdio_is_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty_with_jitter() {
        let mut b = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let lows: Vec<f64> = (0..10).map(|_| b.next_delay(0.0).as_secs_f64()).collect();
        assert_eq!(
            lows,
            vec![0.5, 0.75, 1.5, 3.0, 6.0, 12.0, 22.5, 22.5, 22.5, 22.5]
        );
        b.reset();
        let highs: Vec<f64> = (0..10)
            .map(|_| b.next_delay(0.999_999).as_secs_f64())
            .collect();
        assert!((highs[0] - 0.625).abs() < 1e-3, "{highs:?}");
        assert!(highs.iter().all(|d| (0.5..=30.0).contains(d)), "{highs:?}");
        assert_eq!(highs[9], 30.0);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
        // Never overflows, however long the server stays away.
        let mut b = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        for _ in 0..1000 {
            assert!(b.next_delay(0.5) <= BACKOFF_MAX);
        }
    }

    #[test]
    fn the_cursor_on_entering_a_room_is_where_live_lines_go_on() {
        let mut c = CursorState::default();
        let welcome = ServerEvent::parse(b"* welcome, you are ann, in lobby with 2 others");
        c.observe(&welcome, &Marked::Plain);
        // History up to 3; joins 4 and 5 are not history; the room is at 5.
        let cursor = split_mark(b"@lobby#5 epoch=e1");
        c.observe(&ServerEvent::parse(b""), &cursor);
        assert_eq!(c.last, Some(5));
        assert!(
            c.admit("lobby", 6, 5),
            "the first live line after the cursor"
        );
        assert!(!c.admit("lobby", 6, 5), "not twice");
        assert!(!c.admit("lobby", 8, 7), "not past a hole");
        // After a reconnect, the room's entry cursor does not move a resume.
        let (_, after) = c.greeting();
        assert_eq!(after, b"/resume lobby e1 6\n");
        c.observe(&welcome, &Marked::Plain);
        c.observe(&ServerEvent::parse(b""), &split_mark(b"@lobby#9 epoch=e1"));
        assert_eq!(c.last, Some(6));
        assert!(c.resuming("lobby"));
        for seq in 7..=9 {
            assert!(c.admit("lobby", seq, seq - 1));
        }
        // The resume's own answer brings them again: not shown twice.
        c.observe(&ServerEvent::parse(b""), &split_mark(b"@lobby#9 epoch=e1"));
        assert!(!c.admit("lobby", 8, 7));
        // Places in a cluster's room log: the mark says the one before.
        let Marked::Live { seq, prev, .. } = split_mark(b"@lobby#15/9 <bob> hi") else {
            panic!("not a live mark");
        };
        assert!(c.admit("lobby", seq, prev));
        assert!(!c.admit("lobby", 20, 17), "past a hole");
        assert!(c.admit("lobby", 20, 15));
    }

    #[test]
    fn the_nick_follows_the_server() {
        let mut n = NickState {
            wanted: Some("alice".into()),
            ..NickState::default()
        };
        n.observe(&ServerEvent::parse(
            b"* welcome, you are guest4, in lobby with 0 others",
        ));
        assert_eq!(n.current.as_deref(), Some("guest4"));
        n.observe(&ServerEvent::parse(b"* guest9 is now bob"));
        assert_eq!(n.current.as_deref(), Some("guest4"));
        n.observe(&ServerEvent::parse(b"* guest4 is now alice"));
        n.observe(&ServerEvent::parse(b"* alice is now Carol"));
        assert_eq!(
            (n.current.as_deref(), n.wanted.as_deref()),
            (Some("Carol"), Some("Carol"))
        );
        assert!(!n.kicked);
        n.observe(&ServerEvent::parse(b"! you were kicked by op: spam"));
        assert!(n.kicked);
    }
}
