//! One chat client: reads its lines into the hub and drains its queue to its socket.
//!
//! The parts that do not depend on the protocol are public, for the other
//! front-ends' sessions: [`split`] (a connection, plus bytes already read
//! from it, into halves), [`Flood`] (flood control), and [`serve_member`]
//! (runs a member's read loop beside its writer until either ends).
//!
//! Reading and writing run side by side in one task. The reader frames lines
//! (flushing a partial line after a pause), sanitizes them, applies the flood
//! limit and hands them to the hub. The writer drains the member's queue with
//! vectored writes, many lines per syscall. Plain TCP and Unix clients are read
//! by readiness into a per-thread buffer, so an idle client holds no read buffer.

use crate::util::sleep_until;
use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::front::{line, Protocol};
use super::hub::{ChatHub, ChatMember, Flow, Notice, Refusal, RoomEvent};
use super::outbox::{advance, slices, Sink};
use super::protocol::{Frame, LineFramer};
use super::sanitize::sanitize;
use crate::conn::{BoxStream, Conn, Link};

/// Per-client limits of the chat server.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Longest input line in bytes.
    pub max_line: usize,
    /// A partial line idle this long is delivered as a message.
    pub flush_partial: Duration,
    /// Lines per second allowed on average (0: no limit).
    pub rate: f64,
    /// Lines allowed in a burst.
    pub burst: u32,
    /// Disconnect after this long without input.
    pub idle: Option<Duration>,
    /// After a member leaves, how long its queued lines may take to flush.
    pub drain: Duration,
}

/// Most lines taken from the queue for one vectored write.
const BATCH: usize = 256;

/// Bytes taken from a client per read: also the most one read can fan out at
/// once, which keeps a burst from one sender well under any member's queue cap.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_CHUNK]);
}

/// A client's reading half. Bytes read ahead (by an HTTP handshake, say)
/// come first.
pub struct Reader {
    ahead: Bytes,
    from: ReadFrom,
}

enum ReadFrom {
    Socket(Sink),
    Other(ReadHalf<BoxStream>, Vec<u8>),
}

/// A client's writing half.
pub enum Writer {
    Socket(Sink),
    Other(WriteHalf<BoxStream>),
}

/// The two halves of a client, and its socket for the hub's direct writes
/// (plain TCP and Unix; TLS goes through the writer). `read_ahead` is what
/// was already read from the connection: the reader hands it over first.
pub fn split(conn: Conn, read_ahead: Bytes) -> io::Result<(Reader, Writer, Option<Sink>)> {
    let sink = match conn.link {
        Link::Tcp(s) => {
            let _ = s.set_nodelay(true);
            Sink::Tcp(Arc::new(s))
        }
        Link::Unix(s) => Sink::Unix(Arc::new(s)),
        Link::Stream(s) => {
            let (r, w) = tokio::io::split(s);
            let reader = Reader {
                ahead: read_ahead,
                from: ReadFrom::Other(r, vec![0u8; 4096]),
            };
            return Ok((reader, Writer::Other(w), None));
        }
        Link::Packet { .. } => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "chat needs a stream socket",
            ))
        }
    };
    let reader = Reader {
        ahead: read_ahead,
        from: ReadFrom::Socket(sink.clone()),
    };
    Ok((reader, Writer::Socket(sink.clone()), Some(sink)))
}

impl Reader {
    /// Waits for input and feeds it to `f`; `Ok(0)` at EOF.
    pub async fn read_with(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
        if !self.ahead.is_empty() {
            let ahead = std::mem::take(&mut self.ahead);
            f(&ahead);
            return Ok(ahead.len());
        }
        match &mut self.from {
            ReadFrom::Socket(s) => loop {
                s.readable().await?;
                let r: io::Result<usize> = READ_BUF.with_borrow_mut(|buf| {
                    let n = s.try_read(buf)?;
                    f(&buf[..n]);
                    Ok(n)
                });
                match r {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            },
            ReadFrom::Other(h, buf) => {
                let n = h.read(buf).await?;
                f(&buf[..n]);
                Ok(n)
            }
        }
    }
}

impl Writer {
    /// Writes every buffer, in order, with as few syscalls as the socket allows.
    pub async fn write_all_vectored(&mut self, bufs: &[Bytes]) -> io::Result<()> {
        let mut at = (0, 0);
        while at.0 < bufs.len() {
            let n = match self {
                // Shared with the hub's direct writes: non-blocking writes,
                // waiting for readiness when the socket is full.
                Writer::Socket(s) => match s.try_write_vectored(&slices(bufs, at)) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        s.writable().await?;
                        continue;
                    }
                    r => r?,
                },
                Writer::Other(w) => w.write_vectored(&slices(bufs, at)).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            at = advance(bufs, at, n);
        }
        match self {
            Writer::Socket(_) => Ok(()),
            Writer::Other(w) => w.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Writer::Socket(s) => s.shutdown_write(),
            Writer::Other(w) => w.shutdown().await,
        }
    }
}

/// A token bucket: `rate` lines per second, bursts of `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32) -> Self {
        TokenBucket {
            rate,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one. A rate of 0 means no limit.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Tracks dropped lines to tell the client (once a second) and to spot sustained abuse.
#[derive(Debug)]
pub struct Flood {
    bucket: TokenBucket,
    dropped: u32,
    window_start: Instant,
    warned: Option<Instant>,
    limit: u32,
}

/// What flood control makes of one more input line.
pub enum FloodVerdict {
    /// Take it.
    Pass,
    /// Drop it; `warn`: tell the client (at most once a second).
    Drop {
        /// Tell the client ([`Refusal::SlowDown`]).
        warn: bool,
    },
    /// Sustained abuse: disconnect.
    Disconnect,
}

impl Flood {
    /// Flood control with the limits' rate and burst.
    pub fn new(limits: &SessionLimits) -> Self {
        Flood {
            bucket: TokenBucket::new(limits.rate, limits.burst),
            dropped: 0,
            window_start: Instant::now(),
            warned: None,
            // Ten seconds' worth of the allowed rate, dropped within ten seconds.
            limit: ((limits.rate * 10.0) as u32).max(limits.burst).max(10),
        }
    }

    /// Judges one more input line.
    pub fn judge(&mut self) -> FloodVerdict {
        let now = Instant::now();
        if self.bucket.take(now) {
            return FloodVerdict::Pass;
        }
        if now.duration_since(self.window_start) > Duration::from_secs(10) {
            self.window_start = now;
            self.dropped = 0;
        }
        self.dropped += 1;
        if self.dropped > self.limit {
            return FloodVerdict::Disconnect;
        }
        let warn = self
            .warned
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if warn {
            self.warned = Some(now);
        }
        FloodVerdict::Drop { warn }
    }
}

/// Serves one line client until it leaves, is dropped, or the server stops.
pub async fn run(
    conn: Conn,
    hub: Arc<ChatHub>,
    limits: &SessionLimits,
    stop_reading: CancellationToken,
    hard_stop: CancellationToken,
) {
    let Some((mut reader, mut writer, m)) =
        enter(conn, &hub, Protocol::Line, stop_reading, hard_stop).await
    else {
        return;
    };
    let read = read_loop(&mut reader, &hub, m.id, limits, &m.removed);
    serve_member(&hub, &m, &mut writer, limits, read).await;
}

/// Makes `conn` a member of `hub` speaking `protocol`: splits it, joins, and
/// logs who joined. `None` (the connection told why, if it could be) when the
/// socket cannot be split or the server is shutting down.
pub async fn enter(
    conn: Conn,
    hub: &ChatHub,
    protocol: Protocol,
    stop_reading: CancellationToken,
    hard_stop: CancellationToken,
) -> Option<(Reader, Writer, ChatMember)> {
    let peer = conn.peer.clone();
    let (reader, mut writer, sink) = match split(conn, Bytes::new()) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::info!("{peer}: {e}");
            return None;
        }
    };
    let joined = hub.join(
        protocol,
        sink,
        stop_reading.child_token(),
        hard_stop.child_token(),
    );
    let Ok(m) = joined else {
        let bye = RoomEvent {
            room: "".into(),
            seq: 0,
            prev: 0,
            ts: super::hub::now_ms(),
            from: "".into(),
            kind: super::hub::EventKind::Notice(Notice::ShuttingDown),
        };
        let _ = writer.write_all_vectored(&[protocol.encode(&bye)]).await;
        return None;
    };
    if let Some(nick) = hub.nick(m.id) {
        let via = if protocol == Protocol::Line {
            ""
        } else {
            " (web)"
        };
        tracing::info!("{peer} joined as {nick}{via}");
    }
    Some((reader, writer, m))
}

/// Runs a member's reading (`read`, which returns the reason to announce, or
/// `None` when the hub removed the member) beside its writer, which drains
/// the member's outbox to `writer`, until one ends; then tells the hub, and
/// flushes what is queued (briefly). Any front-end's session ends here.
pub async fn serve_member(
    hub: &ChatHub,
    m: &ChatMember,
    writer: &mut Writer,
    limits: &SessionLimits,
    read: impl std::future::Future<Output = Option<String>>,
) {
    let id = m.id;
    let write = write_loop(writer, m);
    tokio::pin!(read, write);
    tokio::select! {
        reason = &mut read => {
            if let Some(reason) = reason {
                hub.leave(id, &reason);
            }
            // Flush what is queued (a kick notice, the last messages), briefly.
            tokio::select! {
                _ = tokio::time::timeout(limits.drain, &mut write) => {}
                _ = m.kill.cancelled() => {}
            }
        }
        res = &mut write => {
            let reason = match res {
                Ok(()) => "connection closed".to_string(),
                Err(e) => crate::error::describe_io(&e),
            };
            hub.leave(id, &reason);
        }
        _ = m.kill.cancelled() => {
            // The hub dropped this member as too slow and already said so.
        }
    }
}

/// Returns the reason to announce, or `None` when the hub removed the member.
async fn read_loop(
    reader: &mut Reader,
    hub: &ChatHub,
    id: u64,
    limits: &SessionLimits,
    removed: &CancellationToken,
) -> Option<String> {
    let mut framer = LineFramer::new(limits.max_line);
    let mut flood = Flood::new(limits);
    let mut frames = Vec::new();
    let mut says: Vec<String> = Vec::new();
    let mut last_input = Instant::now();
    loop {
        let flush_at = framer
            .has_partial()
            .then(|| last_input + limits.flush_partial);
        let idle_at = limits.idle.map(|d| last_input + d);
        let read = reader.read_with(|data| framer.push(data, &mut frames));
        // Removal first (a client that never pauses can still be kicked);
        // then input that is already there, which wins over a timer that ran
        // out while this task waited for a core: the client was not idle.
        let eof = tokio::select! {
            biased;
            _ = removed.cancelled() => return None,
            r = read => match r {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => return Some(crate::error::describe_io(&e)),
            },
            _ = sleep_until(flush_at) => {
                frames.extend(framer.flush_partial());
                false
            }
            _ = sleep_until(idle_at) => return Some("idle timeout".into()),
        };
        if eof {
            frames.extend(framer.finish());
        }
        if let Some(reason) = dispatch(&mut frames, hub, id, limits, &mut flood, &mut says) {
            return Some(reason);
        }
        if eof {
            return Some("connection closed".into());
        }
        framer.shrink();
        // Read no faster than the hub fans out, and let other readers add
        // their lines to this turn's fan-out before reading more.
        hub.backpressure().await;
        tokio::task::yield_now().await;
        // Idle time (for --flush-partial and --idle-timeout) is the client's,
        // counted from when this loop is ready to read again, not time the
        // server spent holding reads back.
        last_input = Instant::now();
    }
}

/// Hands framed input to the hub: each line sanitized and flood-checked,
/// consecutive plain lines as one batch, commands one by one. Returns the
/// reason to leave if a line asked for it (`/quit`) or the client floods.
fn dispatch(
    frames: &mut Vec<Frame>,
    hub: &ChatHub,
    id: u64,
    limits: &SessionLimits,
    flood: &mut Flood,
    says: &mut Vec<String>,
) -> Option<String> {
    for frame in frames.drain(..) {
        let text = match frame {
            Frame::Line(bytes) => sanitize(&bytes),
            Frame::TooLong => {
                hub.refuse(id, Refusal::TooLong(limits.max_line));
                continue;
            }
        };
        match flood.judge() {
            FloodVerdict::Pass => {}
            FloodVerdict::Drop { warn } => {
                if warn {
                    hub.refuse(id, Refusal::SlowDown(limits.rate));
                }
                continue;
            }
            FloodVerdict::Disconnect => return Some("flooding".into()),
        }
        if !text.starts_with('/') {
            says.push(text);
            continue;
        }
        if !says.is_empty() {
            hub.say_many(id, says.drain(..));
        }
        if let Flow::Quit(reason) = line::input(hub, id, &text) {
            return Some(reason);
        }
    }
    if !says.is_empty() {
        hub.say_many(id, says.drain(..));
    }
    None
}

/// Drains the member's outbox to `writer` until the member is removed and
/// everything queued is written.
pub async fn write_loop(writer: &mut Writer, m: &ChatMember) -> io::Result<()> {
    let mut batch = Vec::new();
    loop {
        if m.out.take(&mut batch, BATCH).await == 0 {
            // Removed from the hub and everything queued is written.
            return writer.shutdown().await;
        }
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        writer.write_all_vectored(&batch).await?;
        m.out.written(bytes);
        batch.clear();
        if batch.capacity() > BATCH {
            batch = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_allows_bursts_then_the_rate() {
        let mut b = TokenBucket::new(2.0, 3);
        let t0 = Instant::now();
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(600)));
        let mut unlimited = TokenBucket::new(0.0, 1);
        assert!((0..1000).all(|_| unlimited.take(t0)));
    }
}
