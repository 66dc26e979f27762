//! Moving bytes between stdin/stdout and one connection: the zero-copy fast path,
//! the general async path (TLS, hex dump, CRLF, idle timeout, message sockets),
//! half-close and byte counts.
//!
//! The relay never decides what a connection is for; services that answer peers
//! themselves live in `serve`.

pub mod hexdump;
pub(crate) mod splice;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::conn::{Chunk, Conn, ConnReader, ConnWriter, Link};
use crate::error::{Error, Result};
use hexdump::{Direction, HexDump};

/// Read buffer for the async path; also the largest message accepted.
pub const BUF_SIZE: usize = 256 * 1024;

/// Largest datagram a stdin line is cut into (the UDP payload limit).
pub const MAX_DATAGRAM: usize = 65507;

/// How `connect` and single-client `listen` move bytes.
#[derive(Clone, Default)]
pub struct RelayOpts {
    /// Copy stdin to the peer (off with `--recv-only`).
    pub send: bool,
    /// Copy the peer to stdout (off with `--send-only`).
    pub recv: bool,
    /// Half-close after stdin EOF (off with `--no-shutdown`).
    pub shutdown_on_eof: bool,
    /// When the peer is done sending, keep sending stdin until it ends (or the
    /// peer stops reading) instead of ending the relay: a peer's half-close
    /// must not truncate our upload. Set unless stdin is a terminal, where
    /// nothing is pending and the peer's close should end the session.
    pub wait_for_stdin: bool,
    /// Close after this long with no traffic either way.
    pub idle: Option<Duration>,
    /// Message sockets without EOF (UDP, unix-dgram): how long to keep printing
    /// replies after stdin ends, counted from the last traffic.
    pub linger: Duration,
    /// Send LF as CRLF.
    pub crlf: bool,
    /// Dump both directions here.
    pub hexdump: Option<Arc<HexDump>>,
    /// Cut stdin into messages of this many bytes instead of lines.
    pub datagram_size: Option<usize>,
}

/// A count and its noun: `1 byte`, `2 bytes`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Byte counts for `-v`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Bytes sent to the peer.
    pub sent: u64,
    /// Bytes received from the peer.
    pub received: u64,
}

/// Relays stdin/stdout with `conn` until the peer closes (or the idle timer fires).
///
/// A peer that resets the connection, or stops reading before all of stdin
/// was sent, is an error ([`Error::Transfer`], with the byte counts): the
/// transfer was cut short. Ending normally is both sides finishing, or the
/// peer closing cleanly after everything was sent; stdout closing early
/// (`| head`) is a quiet success too.
pub async fn run(conn: Conn, opts: &RelayOpts) -> Result<Stats> {
    let zero_copy = opts.hexdump.is_none() && !opts.crlf && opts.idle.is_none();
    let peer = conn.peer.clone();
    let mut messages = None;
    let fd: OwnedFd = match conn.link {
        // Seqpacket: reliable, with an end; datagram sockets keep the async
        // path for its linger after stdin ends.
        Link::Packet {
            sock,
            eof_on_empty: true,
        } if zero_copy => {
            messages = Some(opts.datagram_size);
            sock.into_socket().into()
        }
        Link::Tcp(s) if zero_copy => s
            .into_std()
            .map_err(|e| Error::io("cannot take over the socket", e))?
            .into(),
        Link::Unix(s) if zero_copy => s
            .into_std()
            .map_err(|e| Error::io("cannot take over the socket", e))?
            .into(),
        _ => return relay_async(conn, opts).await,
    };
    blocking(fd, &peer, opts, messages).await
}

/// The error for a transfer the peer cut short.
fn broken(peer: &str, stats: Stats, source: io::Error) -> Error {
    Error::Transfer {
        peer: peer.to_string(),
        sent: stats.sent,
        received: stats.received,
        source,
    }
}

async fn blocking(
    fd: OwnedFd,
    peer: &str,
    opts: &RelayOpts,
    messages: Option<Option<usize>>,
) -> Result<Stats> {
    // Blocking I/O on dedicated threads: sendfile and splice then sleep in the
    // kernel instead of bouncing through EAGAIN and poll(2). (The one case
    // where a sleeping splice would hurt, socket into a pipe, polls first.)
    socket2::SockRef::from(&fd)
        .set_nonblocking(false)
        .map_err(|e| Error::io("cannot configure the socket", e))?;
    let plan = splice::SpliceOpts {
        send: opts.send,
        recv: opts.recv,
        shutdown_on_eof: opts.shutdown_on_eof,
        wait_for_stdin: opts.wait_for_stdin,
        messages,
    };
    let counters = Arc::new(splice::Counters::default());
    let c = counters.clone();
    let res = tokio::task::spawn_blocking(move || splice::relay(fd, plan, c))
        .await
        .map_err(|e| Error::io("relay thread failed", io::Error::other(e.to_string())))?;
    let stats = Stats {
        sent: counters.sent.load(Ordering::Relaxed),
        received: counters.received.load(Ordering::Relaxed),
    };
    match res {
        Ok(()) => Ok(stats),
        // stdout went away (e.g. `| head`): a quiet, successful end.
        Err(splice::Failed {
            way: splice::Way::Down,
            source,
        }) if source.raw_os_error() == Some(libc::EPIPE) => Ok(stats),
        Err(splice::Failed { source, .. }) if splice::is_peer_gone(&source) => {
            Err(broken(peer, stats, source))
        }
        Err(splice::Failed { source, .. }) => Err(Error::io("connection failed", source)),
    }
}

/// Last time anything moved, for the idle timer.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// Starts the clock now.
    pub fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Records traffic now.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Resolves once `limit` has passed without traffic.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Turns bare LF into CRLF, remembering a CR that ended the previous chunk.
#[derive(Debug, Default)]
pub struct Crlf {
    last_cr: bool,
}

impl Crlf {
    /// Converts one chunk.
    pub fn convert(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + data.len() / 16);
        for &b in data {
            if b == b'\n' && !self.last_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_cr = b == b'\r';
        }
        out
    }
}

/// Cuts stdin into messages: lines (newline kept) or fixed-size chunks.
///
/// Each [`push`](Messages::push) returns the messages it completes as one
/// [`Cut`] borrowed from the buffer, so a batch goes out without a copy or an
/// allocation per message.
#[derive(Debug)]
pub struct Messages {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out in the last cut.
    taken: usize,
    /// End offsets of the messages in the last cut.
    ends: Vec<usize>,
    size: Option<usize>,
}

/// Complete messages, in order: consecutive pieces of one buffer.
#[derive(Debug, Clone, Copy)]
pub struct Cut<'a> {
    buf: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Cut<'a> {
    /// How many messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when no message was completed.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of all the messages.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (buf, ends) = (self.buf, self.ends);
        let starts = std::iter::once(0).chain(ends.iter().copied());
        starts
            .zip(ends.iter().copied())
            .map(move |(a, b)| &buf[a..b])
    }
}

impl Messages {
    /// `size`: fixed chunk size, or `None` for lines.
    pub fn new(size: Option<usize>) -> Self {
        Messages {
            buf: Vec::new(),
            taken: 0,
            ends: Vec::new(),
            size: size.map(|s| s.clamp(1, MAX_DATAGRAM)),
        }
    }

    /// Drops the messages handed out last time and clears the cut.
    fn forget_taken(&mut self) {
        // Only the unfinished tail moves to the front, once per push.
        self.buf.drain(..self.taken);
        self.taken = 0;
        self.ends.clear();
    }

    fn cut(&self) -> Cut<'_> {
        Cut {
            buf: &self.buf[..self.taken],
            ends: &self.ends,
        }
    }

    /// Adds input and returns the complete messages it finishes.
    pub fn push(&mut self, data: &[u8]) -> Cut<'_> {
        self.forget_taken();
        self.buf.extend_from_slice(data);
        let limit = self.size.unwrap_or(MAX_DATAGRAM);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            let cut = match self.size {
                Some(n) => (rest.len() >= n).then_some(n),
                None => match memchr::memchr(b'\n', &rest[..rest.len().min(limit)]) {
                    Some(i) => Some(i + 1),
                    None => (rest.len() >= limit).then_some(limit),
                },
            };
            match cut {
                Some(n) => {
                    start += n;
                    self.ends.push(start);
                }
                None => break,
            }
        }
        self.taken = start;
        self.cut()
    }

    /// At EOF: whatever is left, as a last message (an empty cut if nothing is).
    pub fn finish(&mut self) -> Cut<'_> {
        self.forget_taken();
        if !self.buf.is_empty() {
            self.taken = self.buf.len();
            self.ends.push(self.taken);
        }
        self.cut()
    }
}

async fn upload(
    wr: &mut ConnWriter,
    opts: &RelayOpts,
    activity: &Activity,
    sent: &AtomicU64,
    packet: bool,
) -> Result<()> {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut crlf = Crlf::default();
    let mut messages = Messages::new(opts.datagram_size);
    let send_err = |e| Error::io("cannot send", e);
    loop {
        let n = stdin
            .read(&mut buf)
            .await
            .map_err(|e| Error::io("cannot read stdin", e))?;
        let data: Vec<u8> = if n == 0 {
            Vec::new()
        } else if opts.crlf {
            crlf.convert(&buf[..n])
        } else {
            buf[..n].to_vec()
        };
        activity.touch();
        let chunks: Vec<&[u8]> = if packet {
            let cut = if n == 0 {
                messages.finish()
            } else {
                messages.push(&data)
            };
            cut.iter().collect()
        } else if data.is_empty() {
            Vec::new()
        } else {
            vec![&data]
        };
        for chunk in chunks {
            if let Some(h) = &opts.hexdump {
                h.dump(Direction::Sent, chunk).await;
            }
            wr.write(chunk).await.map_err(send_err)?;
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if n == 0 {
            break;
        }
    }
    if opts.shutdown_on_eof {
        half_close(wr).await?;
    }
    Ok(())
}

/// Half-closes after stdin EOF: `shutdown(SHUT_WR)`, or TLS close_notify first.
async fn half_close(wr: &mut ConnWriter) -> Result<()> {
    match wr.shutdown().await {
        Err(e) if !splice::is_peer_gone(&e) => Err(Error::io("cannot shut down the connection", e)),
        _ => Ok(()),
    }
}

async fn download(
    mut rd: ConnReader,
    opts: &RelayOpts,
    activity: &Activity,
    received: &AtomicU64,
) -> Result<()> {
    let mut stdout = tokio::io::stdout();
    // Message sockets: the messages already queued are gathered behind the
    // first into one stdout write (one write per small message caps a
    // seqpacket relay at a few MB/s). Each still gets BUF_SIZE of room.
    let packet = rd.is_packet();
    let mut buf = vec![0u8; if packet { 4 * BUF_SIZE } else { BUF_SIZE }];
    let mut eof = false;
    let mut failed: Option<io::Error> = None;
    loop {
        if let Some(e) = failed.take() {
            return Err(Error::io("connection failed", e));
        }
        if eof {
            return Ok(());
        }
        let first = if packet { BUF_SIZE } else { buf.len() };
        let n = match rd.read(&mut buf[..first]).await {
            Ok(Chunk::Data(n)) => n,
            Ok(Chunk::Eof) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // rustls: the peer closed the TCP connection without close_notify.
                return Err(Error::Truncated {
                    peer: String::new(),
                    received: received.load(Ordering::Relaxed),
                });
            }
            Err(e) => return Err(crate::tls::read_error("connection failed", e)),
        };
        activity.touch();
        received.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(h) = &opts.hexdump {
            h.dump(Direction::Received, &buf[..n]).await;
        }
        let mut filled = n;
        if let ConnReader::Packet { sock, eof_on_empty } = &rd {
            while buf.len() - filled >= BUF_SIZE {
                let m = match sock.try_recv(&mut buf[filled..filled + BUF_SIZE]) {
                    Ok(0) if *eof_on_empty => {
                        eof = true;
                        break;
                    }
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Reported once what came before it is written.
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                received.fetch_add(m as u64, Ordering::Relaxed);
                if let Some(h) = &opts.hexdump {
                    h.dump(Direction::Received, &buf[filled..filled + m]).await;
                }
                filled += m;
            }
        }
        if !opts.recv {
            continue;
        }
        let wrote = async {
            stdout.write_all(&buf[..filled]).await?;
            stdout.flush().await
        };
        match wrote.await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::io("cannot write stdout", e)),
        }
    }
}

async fn relay_async(conn: Conn, opts: &RelayOpts) -> Result<Stats> {
    let peer = conn.peer.clone();
    let endless = matches!(
        conn.link,
        Link::Packet {
            eof_on_empty: false,
            ..
        }
    );
    let packet = conn.is_packet();
    let (rd, mut wr) = conn.split();
    let activity = Activity::new();
    let (sent, received) = (AtomicU64::new(0), AtomicU64::new(0));
    let wait_for_stdin = opts.wait_for_stdin;
    let mut up_done = !opts.send;
    let mut down_done = false;
    {
        let up = upload(&mut wr, opts, &activity, &sent, packet);
        let down = download(rd, opts, &activity, &received);
        tokio::pin!(up, down);
        let mut lingering = up_done && endless;
        loop {
            if down_done && (up_done || !wait_for_stdin) {
                break;
            }
            let quiet = match (opts.idle, lingering) {
                (Some(idle), _) => Some(idle),
                (None, true) => Some(opts.linger),
                (None, false) => None,
            };
            let timer = async {
                match quiet {
                    Some(d) => activity.idle_for(d).await,
                    None => std::future::pending().await,
                }
            };
            let stats = || Stats {
                sent: sent.load(Ordering::Relaxed),
                received: received.load(Ordering::Relaxed),
            };
            tokio::select! {
                r = &mut down, if !down_done => {
                    match r {
                        Ok(()) => {}
                        // The peer reset the connection.
                        Err(Error::Io { source, .. }) if splice::is_peer_gone(&source) => {
                            return Err(broken(&peer, stats(), source));
                        }
                        Err(Error::Truncated { received, .. }) => {
                            return Err(Error::Truncated { peer: peer.clone(), received });
                        }
                        Err(e) => return Err(e),
                    }
                    down_done = true;
                }
                r = &mut up, if !up_done => {
                    match r {
                        Ok(()) => {}
                        // The peer stopped reading before stdin ended.
                        Err(Error::Io { source, .. }) if splice::is_peer_gone(&source) => {
                            return Err(broken(&peer, stats(), source));
                        }
                        Err(e) => return Err(e),
                    }
                    up_done = true;
                    lingering = endless;
                }
                _ = timer => {
                    if lingering && opts.idle.is_none() {
                        break;
                    }
                    return Err(Error::Timeout {
                        what: "idle timeout: no traffic".into(),
                        after: quiet.unwrap_or_default(),
                    });
                }
            }
        }
    }
    if !up_done && !endless {
        // Ending before stdin did: still close TLS properly, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    }
    Ok(Stats {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_handles_splits_and_existing_cr() {
        let mut c = Crlf::default();
        assert_eq!(c.convert(b"a\nb\r"), b"a\r\nb\r");
        assert_eq!(c.convert(b"\nc\n"), b"\nc\r\n");
    }

    #[test]
    fn messages_are_lines_or_chunks() {
        fn all(cut: Cut<'_>) -> Vec<Vec<u8>> {
            cut.iter().map(<[u8]>::to_vec).collect()
        }
        let mut m = Messages::new(None);
        assert!(m.push(b"ab").is_empty());
        assert_eq!(
            all(m.push(b"c\nd\ne")),
            vec![b"abc\n".to_vec(), b"d\n".to_vec()]
        );
        assert_eq!(all(m.push(b"\n\nf")), vec![b"e\n".to_vec(), b"\n".to_vec()]);
        assert_eq!(all(m.finish()), vec![b"f".to_vec()]);
        assert!(m.finish().is_empty());
        let mut m = Messages::new(Some(3));
        let cut = m.push(b"abcdefg");
        assert_eq!((cut.len(), cut.bytes()), (2, 6));
        assert_eq!(all(cut), vec![b"abc".to_vec(), b"def".to_vec()]);
        assert_eq!(all(m.finish()), vec![b"g".to_vec()]);
        let mut m = Messages::new(None);
        let long = vec![b'x'; MAX_DATAGRAM + 10];
        let out = all(m.push(&long));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_DATAGRAM);
        assert_eq!(all(m.finish()), vec![vec![b'x'; 10]]);
    }
}
