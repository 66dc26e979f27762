//! One member's outbound side: a byte-capped queue, and for plain sockets a
//! direct path that writes without waking the member's task.
//!
//! Fan-out calls [`Outbox::push`]. When nothing is queued and the member's
//! writer is idle, the bytes go straight to the socket with a non-blocking
//! write, so a room's fan-out costs one syscall per member and no task
//! wake-ups. Whatever the socket does not take (a full send buffer, a TLS
//! stream) is queued in order for the member's writer task, which owns the
//! socket's readiness from then on. Queued bytes count against the cap; a
//! member over it is cancelled as too slow.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A plain client socket shared by the member's session (reads, its writer)
/// and the fan-out (direct writes).
#[derive(Debug, Clone)]
pub enum Sink {
    /// Plain TCP.
    Tcp(Arc<tokio::net::TcpStream>),
    /// Unix stream.
    Unix(Arc<tokio::net::UnixStream>),
}

impl Sink {
    /// Waits until the socket may have input.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Sink::Tcp(s) => s.readable().await,
            Sink::Unix(s) => s.readable().await,
        }
    }

    /// Reads without blocking.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sink::Tcp(s) => s.try_read(buf),
            Sink::Unix(s) => s.try_read(buf),
        }
    }

    /// Waits until the socket may take output.
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Sink::Tcp(s) => s.writable().await,
            Sink::Unix(s) => s.writable().await,
        }
    }

    /// Writes without blocking.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sink::Tcp(s) => s.try_write_vectored(bufs),
            Sink::Unix(s) => s.try_write_vectored(bufs),
        }
    }

    /// Ends the sending direction (the socket stays open for reading).
    pub fn shutdown_write(&self) -> io::Result<()> {
        let sock = match self {
            Sink::Tcp(s) => socket2::SockRef::from(&**s),
            Sink::Unix(s) => socket2::SockRef::from(&**s),
        };
        sock.shutdown(std::net::Shutdown::Write)
    }
}

/// The unwritten part of `bufs` from (buffer, offset), at most 1024 slices (IOV_MAX).
pub fn slices(bufs: &[Bytes], (idx, offset): (usize, usize)) -> Vec<IoSlice<'_>> {
    std::iter::once(IoSlice::new(&bufs[idx][offset..]))
        .chain(bufs[idx + 1..].iter().take(1023).map(|b| IoSlice::new(b)))
        .collect()
}

/// (buffer, offset) after `n` more bytes of `bufs` were written.
pub fn advance(
    bufs: &[Bytes],
    (mut idx, mut offset): (usize, usize),
    mut n: usize,
) -> (usize, usize) {
    while n > 0 && idx < bufs.len() {
        let left = bufs[idx].len() - offset;
        if n >= left {
            n -= left;
            idx += 1;
            offset = 0;
        } else {
            offset += n;
            n = 0;
        }
    }
    (idx, offset)
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued: usize,
    /// The writer task holds lines it took and has not finished writing.
    busy: bool,
    /// No more lines are accepted; the writer ends once the queue is empty.
    closed: bool,
}

/// Lines waiting for one member, shared by the hub and the member's session.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    sink: Option<Sink>,
    max: usize,
    /// Cancelled when the member fell more than `max` bytes behind.
    kill: CancellationToken,
}

/// What became of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Written or queued (or dropped because the member is leaving).
    Ok,
    /// Over the cap: the member was cancelled and must be removed.
    TooSlow,
}

impl Outbox {
    /// An outbox holding at most `max` queued bytes, writing directly to `sink` when it can.
    pub fn new(sink: Option<Sink>, max: usize, kill: CancellationToken) -> Arc<Self> {
        Arc::new(Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            sink,
            max,
            kill,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `parts` in order: straight to the socket when the writer is idle
    /// and nothing is queued, else (and for whatever the socket did not take)
    /// through the queue.
    pub fn push(&self, parts: &[Bytes]) -> Pushed {
        let mut st = self.lock();
        if st.closed || self.kill.is_cancelled() {
            return Pushed::Ok;
        }
        let (mut skip, mut offset) = (0, 0);
        if let (Some(sink), true) = (&self.sink, st.queue.is_empty() && !st.busy) {
            // One part (the usual case) needs no slice list on the heap.
            let written = match parts {
                [one] => sink.try_write_vectored(&[IoSlice::new(one)]),
                _ => sink.try_write_vectored(&slices(parts, (0, 0))),
            };
            // Errors other than a full buffer are left for the writer to meet
            // and report: the bytes are queued as if the socket were full.
            if let Ok(n) = written {
                (skip, offset) = advance(parts, (0, 0), n);
            }
        }
        if skip == parts.len() {
            return Pushed::Ok;
        }
        let rest = parts[skip..].iter().map(Bytes::len).sum::<usize>() - offset;
        if st.queued + rest > self.max {
            tracing::debug!("queue full: {} bytes waiting, {rest} more", st.queued);
            drop(st);
            self.kill.cancel();
            return Pushed::TooSlow;
        }
        st.queued += rest;
        st.queue.push_back(parts[skip].slice(offset..));
        st.queue.extend(parts[skip + 1..].iter().cloned());
        drop(st);
        self.ready.notify_one();
        Pushed::Ok
    }

    /// Accepts nothing more; the writer finishes what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// For the writer: takes up to `max` queued lines, waiting for one, and
    /// marks the writer busy until [`Outbox::written`]. 0 once closed and drained.
    pub async fn take(&self, out: &mut Vec<Bytes>, max: usize) -> usize {
        loop {
            {
                let mut st = self.lock();
                if !st.queue.is_empty() {
                    let n = st.queue.len().min(max);
                    out.extend(st.queue.drain(..n));
                    if st.queue.is_empty() {
                        // Back to nothing after a burst: idle members stay small.
                        st.queue = VecDeque::new();
                    }
                    st.busy = true;
                    return n;
                }
                if st.closed {
                    return 0;
                }
            }
            self.ready.notified().await;
        }
    }

    /// For the writer: `bytes` of what it took are written; it is idle again.
    pub fn written(&self, bytes: usize) {
        let mut st = self.lock();
        st.queued = st.queued.saturating_sub(bytes);
        st.busy = false;
    }

    /// One queued line, without waiting (tests and the console).
    pub fn try_take(&self) -> Option<Bytes> {
        let mut st = self.lock();
        let b = st.queue.pop_front()?;
        st.queued -= b.len();
        Some(b)
    }

    /// True once the member fell too far behind.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_bytes_are_capped() {
        let kill = CancellationToken::new();
        let out = Outbox::new(None, 10, kill.clone());
        assert_eq!(out.push(&[Bytes::from_static(b"12345")]), Pushed::Ok);
        assert_eq!(out.push(&[Bytes::from_static(b"678")]), Pushed::Ok);
        assert_eq!(out.push(&[Bytes::from_static(b"abc")]), Pushed::TooSlow);
        assert!(kill.is_cancelled());
        assert_eq!(out.try_take().as_deref(), Some(&b"12345"[..]));
        // A cancelled member takes nothing more.
        assert_eq!(out.push(&[Bytes::from_static(b"x")]), Pushed::Ok);
        assert_eq!(out.try_take().as_deref(), Some(&b"678"[..]));
        assert_eq!(out.try_take(), None);
    }

    #[tokio::test]
    async fn direct_writes_keep_order_with_the_queue() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(tokio::net::TcpStream::connect(addr), async {
            listener.accept().await.unwrap().0
        });
        let mut client = client.unwrap();
        let server = Arc::new(server);
        server.writable().await.unwrap();
        let out = Outbox::new(
            Some(Sink::Tcp(server.clone())),
            1 << 20,
            CancellationToken::new(),
        );
        // Idle writer, empty queue: written at once.
        out.push(&[Bytes::from_static(b"one\n"), Bytes::from_static(b"two\n")]);
        assert_eq!(out.try_take(), None);
        // While the writer holds lines, later ones queue behind them.
        out.lock().busy = true;
        out.push(&[Bytes::from_static(b"three\n")]);
        assert_eq!(out.try_take().as_deref(), Some(&b"three\n"[..]));
        out.written(0);
        out.push(&[Bytes::from_static(b"four\n")]);
        assert_eq!(out.try_take(), None);
        let mut got = vec![0u8; 13];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one\ntwo\nfour\n");
    }
}
