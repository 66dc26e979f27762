//! One member's outbound side: a byte-capped queue, and for plain sockets a
//! direct path that writes without waking the member's task.
//!
//! Fan-out calls [`Outbox::push`]. When nothing is queued and the member's
//! writer is idle, the bytes go straight to the socket with a non-blocking
//! write, so a room's fan-out costs one syscall per member and no task
//! wake-ups. Whatever the socket does not take (a full send buffer, a TLS
//! stream) is copied, in order, into the member's own buffer for its writer
//! task, which owns the socket's readiness from then on. The copy is the
//! point: a queued slice of a room's batch would keep the whole batch alive
//! while counting only its own length, so a member's queue could pin far more
//! than the cap. Queued bytes count against the cap; a member over it is
//! cancelled as too slow.

use crate::util::lock_unpoisoned;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes, BytesMut};
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
struct OutboxState {
    /// Bytes waiting for the writer, in order, in the member's own buffer:
    /// never a slice of a room's batch, so what is queued is what is kept alive.
    queue: BytesMut,
    /// Bytes queued or taken by the writer and not yet written.
    queued: usize,
    /// The writer task holds bytes it took and has not finished writing.
    busy: bool,
    /// No more lines are accepted; the writer ends once the queue is empty.
    closed: bool,
    /// For a message outbox: the length of each queued message, in order.
    bounds: std::collections::VecDeque<usize>,
}

/// What a queued message costs a message outbox beyond its bytes: its entry
/// in the list of boundaries (a deque may hold twice the slots it uses).
pub const MESSAGE_COST: usize = 2 * std::mem::size_of::<usize>();

/// Smallest buffer a member's queue starts with (then doubling, never past the cap).
const MIN_QUEUE_BUF: usize = 1024;

/// Lines waiting for one member, shared by the hub and the member's session.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    ready: Notify,
    sink: Option<Sink>,
    max: usize,
    /// Keeps each push a message of its own (for message sockets).
    messages: bool,
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
            state: Mutex::new(OutboxState::default()),
            ready: Notify::new(),
            sink,
            max,
            messages: false,
            kill,
        })
    }

    /// An outbox that keeps message boundaries: each push is one message,
    /// and [`Outbox::take`] hands them back one `Bytes` each. Each message is
    /// charged its bytes plus [`MESSAGE_COST`]. No direct writes.
    pub fn for_messages(max: usize, kill: CancellationToken) -> Arc<Self> {
        Arc::new(Outbox {
            state: Mutex::new(OutboxState::default()),
            ready: Notify::new(),
            sink: None,
            max,
            messages: true,
            kill,
        })
    }

    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        lock_unpoisoned(&self.state)
    }

    /// Sends `parts` in order: straight to the socket when the writer is idle
    /// and nothing is queued, else (and for whatever the socket did not take)
    /// copied into the queue.
    pub fn push(&self, parts: &[Bytes]) -> Pushed {
        let mut st = self.lock();
        if st.closed || self.kill.is_cancelled() {
            return Pushed::Ok;
        }
        let mut at = (0, 0);
        if let (Some(sink), true) = (&self.sink, st.queue.is_empty() && !st.busy) {
            // One part (the usual case) needs no slice list on the heap.
            let written = match parts {
                [one] => sink.try_write_vectored(&[IoSlice::new(one)]),
                _ => sink.try_write_vectored(&slices(parts, (0, 0))),
            };
            // Errors other than a full buffer are left for the writer to meet
            // and report: the bytes are queued as if the socket were full.
            if let Ok(n) = written {
                at = advance(parts, (0, 0), n);
            }
        }
        if at.0 == parts.len() {
            return Pushed::Ok;
        }
        let pushed = self.queue_locked(&mut st, parts, at);
        drop(st);
        if pushed == Pushed::Ok {
            self.ready.notify_one();
        }
        pushed
    }

    /// Queues `parts` without touching the socket (no syscall), for callers
    /// holding a lock of their own; [`Outbox::send_queued`] then writes them.
    pub fn enqueue(&self, parts: &[Bytes]) -> Pushed {
        let mut st = self.lock();
        if st.closed || self.kill.is_cancelled() {
            return Pushed::Ok;
        }
        self.queue_locked(&mut st, parts, (0, 0))
    }

    /// Copies `parts` from (part, offset) on into the queue, or cancels the
    /// member if that would pass the cap.
    fn queue_locked(
        &self,
        st: &mut OutboxState,
        parts: &[Bytes],
        (skip, offset): (usize, usize),
    ) -> Pushed {
        let rest = parts[skip..].iter().map(Bytes::len).sum::<usize>() - offset;
        let cost = rest + if self.messages { MESSAGE_COST } else { 0 };
        if st.queued + cost > self.max {
            tracing::debug!("queue full: {} bytes waiting, {rest} more", st.queued);
            self.kill.cancel();
            return Pushed::TooSlow;
        }
        st.queued += cost;
        if self.messages {
            st.bounds.push_back(rest);
        }
        let q = &mut st.queue;
        if q.capacity() - q.len() < rest {
            // Grow by doubling, but never allocate past the cap: the buffer is
            // what the member keeps alive, and the cap is what it may keep.
            let need = q.len() + rest;
            let cap = need
                .max(2 * q.len())
                .max(MIN_QUEUE_BUF)
                .min(self.max.max(need));
            let mut bigger = BytesMut::with_capacity(cap);
            bigger.extend_from_slice(q);
            *q = bigger;
        }
        q.extend_from_slice(&parts[skip][offset..]);
        for p in &parts[skip + 1..] {
            q.extend_from_slice(p);
        }
        Pushed::Ok
    }

    /// Writes what is queued straight to the socket if the writer is idle,
    /// and wakes the writer for whatever is left.
    pub fn send_queued(&self) {
        let mut st = self.lock();
        if st.queue.is_empty() {
            return;
        }
        if let (Some(sink), false) = (&self.sink, st.busy) {
            if let Ok(n) = sink.try_write_vectored(&[IoSlice::new(&st.queue)]) {
                st.queue.advance(n);
                st.queued -= n;
                if st.queue.is_empty() {
                    st.queue = BytesMut::new();
                    return;
                }
            }
        }
        drop(st);
        self.ready.notify_one();
    }

    /// Accepts nothing more; the writer finishes what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// For the writer: takes what is queued (as one buffer, or for a message
    /// outbox up to `max` messages), waiting for something, and marks the
    /// writer busy until [`Outbox::written`]. 0 once closed and drained.
    pub async fn take(&self, out: &mut Vec<Bytes>, max: usize) -> usize {
        loop {
            {
                let mut st = self.lock();
                if self.messages && !st.bounds.is_empty() && max > 0 {
                    let n = st.bounds.len().min(max);
                    let total: usize = st.bounds.iter().take(n).sum();
                    let mut taken = st.queue.split_to(total).freeze();
                    for len in st.bounds.drain(..n) {
                        out.push(taken.split_to(len));
                    }
                    // The boundaries are gone; their bytes are charged until written.
                    st.queued -= n * MESSAGE_COST;
                    if st.bounds.is_empty() {
                        st.bounds = std::collections::VecDeque::new();
                    }
                    st.busy = true;
                    return n;
                }
                if !self.messages && !st.queue.is_empty() && max > 0 {
                    out.push(st.queue.split().freeze());
                    st.busy = true;
                    return 1;
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
        if st.queue.is_empty() {
            // Back to nothing after a burst: idle members stay small.
            st.queue = BytesMut::new();
        }
    }

    /// Everything queued, without waiting (tests).
    #[cfg(test)]
    pub fn try_take(&self) -> Option<Bytes> {
        let mut st = self.lock();
        if st.queue.is_empty() {
            return None;
        }
        let b = st.queue.split().freeze();
        st.queued -= b.len() + st.bounds.len() * MESSAGE_COST;
        st.bounds.clear();
        Some(b)
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
        // A cancelled member takes nothing more.
        assert_eq!(out.push(&[Bytes::from_static(b"x")]), Pushed::Ok);
        assert_eq!(out.try_take().as_deref(), Some(&b"12345678"[..]));
        assert_eq!(out.try_take(), None);
    }

    #[test]
    fn a_queued_slice_does_not_keep_its_batch_alive() {
        let out = Outbox::new(None, 1 << 20, CancellationToken::new());
        let batch = Bytes::from(vec![b'x'; 1 << 20]);
        out.push(&[batch.slice(..10), batch.slice(500..505)]);
        // The batch's only owner is now this test: the queue holds a copy.
        assert!(batch.is_unique());
        assert_eq!(out.try_take().as_deref(), Some(&b"xxxxxxxxxxxxxxx"[..]));
    }

    #[test]
    fn the_queue_buffer_never_grows_past_the_cap() {
        let out = Outbox::new(None, 5000, CancellationToken::new());
        for _ in 0..49 {
            assert_eq!(out.enqueue(&[Bytes::from_static(&[b'y'; 100])]), Pushed::Ok);
        }
        assert!(out.lock().queue.capacity() <= 5000);
        assert_eq!(out.try_take().map(|b| b.len()), Some(4900));
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
        // Queued without a syscall, then written by send_queued once idle.
        out.enqueue(&[Bytes::from_static(b"five\n")]);
        out.send_queued();
        assert_eq!(out.try_take().as_deref(), Some(&b"five\n"[..]));
        out.written(0);
        out.push(&[Bytes::from_static(b"four\n")]);
        assert_eq!(out.try_take(), None);
        let mut got = vec![0u8; 13];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one\ntwo\nfour\n");
    }
}
