//! Fan-out for `listen -k` (stdin to every client) and `listen --broker`
//! (every client's bytes to every other): a roster of members, each with a
//! [`chat::outbox::Outbox`](crate::chat::outbox::Outbox), the same byte-capped
//! queue the chat uses. Sending never waits on a member; a member whose queue
//! would pass the cap is dropped instead of slowing the sender.
//!
//! The outbox copies what it queues into the member's own buffer, so the cap
//! charges what is really kept; a member on a message socket gets a message
//! outbox, which keeps each message's boundary (charged too).

use crate::util::lock_unpoisoned;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::chat::outbox::{Outbox, Pushed};
use crate::conn::ConnWriter;

/// Most queued messages taken at once.
const BATCH: usize = 256;

/// Small messages are gathered into writes of up to this many bytes.
const GATHER: usize = 16 * 1024;

/// The connected members.
#[derive(Debug)]
pub struct FanOut {
    members: Mutex<HashMap<u64, Subscriber>>,
    next_id: AtomicU64,
    max_queue: usize,
}

#[derive(Debug)]
struct Subscriber {
    out: Arc<Outbox>,
    kill: CancellationToken,
    peer: String,
}

/// One member's end: its queue, and its place in the roster until dropped.
#[derive(Debug)]
pub struct Subscription {
    /// The member's id, to exclude it from its own broadcasts.
    pub id: u64,
    out: Arc<Outbox>,
    kill: CancellationToken,
    roster: Arc<FanOut>,
}

impl FanOut {
    /// A roster whose members may each have at most `max_queue` bytes waiting.
    pub fn new(max_queue: usize) -> Arc<Self> {
        Arc::new(FanOut {
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            max_queue,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Subscriber>> {
        lock_unpoisoned(&self.members)
    }

    /// Adds a member; `messages` for a message socket (boundaries kept).
    pub fn join(self: &Arc<Self>, peer: &str, messages: bool) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let kill = CancellationToken::new();
        let out = if messages {
            Outbox::for_messages(self.max_queue, kill.clone())
        } else {
            Outbox::new(None, self.max_queue, kill.clone())
        };
        self.lock().insert(
            id,
            Subscriber {
                out: out.clone(),
                kill: kill.clone(),
                peer: peer.to_string(),
            },
        );
        Subscription {
            id,
            out,
            kill,
            roster: self.clone(),
        }
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Queues `data` for every member except `except`. Never waits.
    pub fn send_all(&self, except: Option<u64>, data: Bytes) {
        let mut members = self.lock();
        let mut slow = Vec::new();
        for (id, m) in members.iter() {
            if Some(*id) != except && m.out.push(std::slice::from_ref(&data)) == Pushed::TooSlow {
                slow.push(*id);
            }
        }
        for id in slow {
            if let Some(m) = members.remove(&id) {
                m.kill.cancel();
                tracing::warn!(
                    "dropping {}: more than {} bytes waiting (too slow)",
                    m.peer,
                    self.max_queue
                );
            }
        }
    }
}

impl Subscription {
    /// Writes what is queued for this member to `wr` until the roster drops
    /// it (an error: too slow) or it leaves. A write stuck on a peer that does
    /// not read is abandoned as soon as the member is dropped.
    pub async fn drain(&self, wr: &mut ConnWriter, on_write: impl Fn()) -> io::Result<()> {
        let mut batch = Vec::new();
        let mut gathered = Vec::new();
        let res = async {
            loop {
                if self.out.take(&mut batch, BATCH).await == 0 {
                    return Ok(());
                }
                write_parts(wr, &batch, &mut gathered).await?;
                self.wrote(&batch);
                batch.clear();
                on_write();
            }
        };
        tokio::select! {
            r = res => r,
            _ = self.kill.cancelled() => Err(io::Error::other("too slow: output queue full")),
        }
    }
}

impl Subscription {
    /// Whether the roster dropped this member as too slow.
    pub fn was_dropped(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// `batch`, taken from the queue, is written: its charge is returned.
    fn wrote(&self, batch: &[Bytes]) {
        self.out.written(batch.iter().map(Bytes::len).sum());
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.roster.lock().remove(&self.id);
        self.out.close();
    }
}

/// A member dropped as too slow leaves up to a queue's worth of small blocks
/// freed inside the allocator's arenas, which glibc keeps (RSS stays high)
/// unless asked to hand them back.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Writes queued messages: small ones gathered into `buf` (up to [`GATHER`]
/// bytes a write), large ones as they are; one message each on a message
/// socket.
async fn write_parts(wr: &mut ConnWriter, parts: &[Bytes], buf: &mut Vec<u8>) -> io::Result<()> {
    if matches!(wr, ConnWriter::Packet(_)) {
        for p in parts {
            wr.write(p).await?;
        }
        return Ok(());
    }
    for p in parts {
        if !buf.is_empty() && buf.len() + p.len() > GATHER {
            wr.write(buf).await?;
            buf.clear();
        }
        if p.len() >= GATHER {
            wr.write(p).await?;
        } else {
            buf.extend_from_slice(p);
        }
    }
    if !buf.is_empty() {
        wr.write(buf).await?;
        buf.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::outbox::MESSAGE_COST;

    #[tokio::test]
    async fn fans_out_except_sender_and_drops_slow_members() {
        let roster = FanOut::new(10);
        let a = roster.join("a", false);
        let b = roster.join("b", false);
        roster.send_all(Some(a.id), Bytes::from_static(b"hello"));
        let mut got = Vec::new();
        assert_eq!(b.out.take(&mut got, BATCH).await, 1);
        assert_eq!(&got[0][..], b"hello");
        b.wrote(&got);
        // a never reads: two messages fit, the third passes the cap.
        for _ in 0..2 {
            roster.send_all(None, Bytes::from_static(b"12345"));
            got.clear();
            assert_eq!(b.out.take(&mut got, BATCH).await, 1);
            b.wrote(&got);
        }
        assert!(!a.kill.is_cancelled());
        roster.send_all(None, Bytes::from_static(b"x"));
        assert!(a.kill.is_cancelled());
        assert!(!b.kill.is_cancelled());
        assert_eq!(roster.lock().len(), 1);
        drop(b);
        assert!(roster.is_empty());
    }

    #[tokio::test]
    async fn message_members_keep_boundaries_and_pay_for_them() {
        let roster = FanOut::new(10 * (1 + MESSAGE_COST));
        let a = roster.join("a", true);
        let b = roster.join("b", true);
        for _ in 0..10 {
            roster.send_all(None, Bytes::from_static(b"x"));
        }
        assert!(!a.kill.is_cancelled());
        // Ten bytes queued, far under a byte cap, but each boundary is charged.
        roster.send_all(None, Bytes::from_static(b"y"));
        assert!(a.kill.is_cancelled() && b.kill.is_cancelled());
        let c = roster.join("c", true);
        roster.send_all(None, Bytes::from_static(b"one"));
        roster.send_all(None, Bytes::from_static(b"two"));
        let mut got = Vec::new();
        assert_eq!(c.out.take(&mut got, BATCH).await, 2);
        assert_eq!(
            got,
            [Bytes::from_static(b"one"), Bytes::from_static(b"two")]
        );
        c.wrote(&got);
        // Written: the whole charge is back.
        for _ in 0..10 {
            roster.send_all(None, Bytes::from_static(b"x"));
        }
        assert!(!c.kill.is_cancelled());
    }
}
