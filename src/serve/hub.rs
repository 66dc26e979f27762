//! Fan-out to many connections without ever waiting on one of them.
//!
//! Each member has a queue capped in bytes; a member whose queue would pass the
//! cap is dropped (and told nothing more) instead of slowing the sender. Used by
//! `listen -k` (stdin to every client) and `listen --broker`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The set of connected members.
#[derive(Debug)]
pub struct Hub {
    members: Mutex<HashMap<u64, Member>>,
    next_id: AtomicU64,
    max_queue: usize,
}

#[derive(Debug)]
struct Member {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    dropped: CancellationToken,
    peer: String,
}

/// One member's end: its queue, and its place in the hub until dropped.
#[derive(Debug)]
pub struct Membership {
    /// The member's id, to exclude it from its own broadcasts.
    pub id: u64,
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    dropped: CancellationToken,
    hub: Arc<Hub>,
}

impl Hub {
    /// A hub whose members may each have at most `max_queue` bytes waiting.
    pub fn new(max_queue: usize) -> Arc<Self> {
        Arc::new(Hub {
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            max_queue,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a member.
    pub fn join(self: &Arc<Self>, peer: &str) -> Membership {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = CancellationToken::new();
        self.lock().insert(
            id,
            Member {
                tx,
                queued: queued.clone(),
                dropped: dropped.clone(),
                peer: peer.to_string(),
            },
        );
        Membership {
            id,
            rx,
            queued,
            dropped,
            hub: self.clone(),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `data` for every member except `except`. Never waits.
    pub fn send_all(&self, except: Option<u64>, data: Bytes) {
        let mut members = self.lock();
        let mut slow = Vec::new();
        for (id, m) in members.iter() {
            if Some(*id) == except {
                continue;
            }
            let now = m.queued.load(Ordering::Relaxed);
            if now + data.len() > self.max_queue {
                slow.push(*id);
                continue;
            }
            m.queued.fetch_add(data.len(), Ordering::Relaxed);
            let _ = m.tx.send(data.clone());
        }
        for id in slow {
            if let Some(m) = members.remove(&id) {
                m.dropped.cancel();
                tracing::warn!(
                    "dropping {}: more than {} bytes waiting (too slow)",
                    m.peer,
                    self.max_queue
                );
            }
        }
    }
}

impl Membership {
    /// Waits for queued data and returns as much as is ready, up to `max` bytes
    /// in one buffer (one write for many messages). `None` once the member was
    /// dropped for being too slow, or the hub is gone.
    pub async fn next_batch(&mut self, max: usize) -> Option<Vec<u8>> {
        let first = self.rx.recv().await?;
        if self.dropped.is_cancelled() {
            return None;
        }
        let mut out = Vec::with_capacity(first.len().max(4096));
        out.extend_from_slice(&first);
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        Some(out)
    }

    /// Marks `n` bytes as written to the socket.
    pub fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Whether the hub dropped this member.
    pub fn was_dropped(&self) -> bool {
        self.dropped.is_cancelled()
    }

    /// Resolves once the hub drops this member, so a write stuck on a peer that
    /// does not read can be abandoned.
    pub fn dropped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.dropped.clone().cancelled_owned()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fans_out_except_sender_and_drops_slow_members() {
        let hub = Hub::new(10);
        let mut a = hub.join("a");
        let mut b = hub.join("b");
        hub.send_all(Some(a.id), Bytes::from_static(b"hello"));
        assert_eq!(b.next_batch(1024).await.unwrap(), b"hello");
        b.written(5);
        // a never reads: 5 + 5 fits, the third message passes the cap.
        hub.send_all(None, Bytes::from_static(b"12345"));
        hub.send_all(None, Bytes::from_static(b"12345"));
        // b keeps up, and gets both messages in one buffer.
        assert_eq!(b.next_batch(1024).await.unwrap(), b"1234512345");
        b.written(10);
        assert!(!a.was_dropped());
        hub.send_all(None, Bytes::from_static(b"x"));
        assert!(a.was_dropped());
        assert_eq!(hub.len(), 1);
        assert_eq!(a.next_batch(1024).await, None);
        assert_eq!(b.next_batch(1024).await.unwrap(), b"x");
        drop(b);
        assert!(hub.is_empty());
    }
}
