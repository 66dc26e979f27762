//! Chat history: what rooms said, kept in an embedded SQLite database, for
//! replay on join, `/history`, resume after a reconnect, and restarts.
//!
//! Shape: the hub hands every fan-out batch (one room's events, in sequence
//! order) to [`History::submit`], which only appends it to a bounded queue
//! and never waits. One writer thread takes everything queued and commits
//! it in one transaction (group commit: one per wake-up, so a flood of
//! batches becomes a few transactions), then prunes in the background.
//! Reads go through their own connection (WAL: readers never wait for the
//! writer) and merge what is queued but not yet committed, so a query sees
//! every event the hub has handed over.
//!
//! Offsets are the hub's per-room sequence numbers; with the database's
//! random **epoch** they form the cursor `(epoch, room, seq)` clients resume
//! from. A new database gets a new epoch, so a cursor from another one is
//! told to reload. On start the hub continues each room's numbering from the
//! stored maximum; after a crash (the database was not closed) it skips
//! [`CRASH_SKIP`] numbers, so events lost in the crash leave a visible hole
//! (resume says "gap") instead of being reused by new events.
//!
//! Failure never reaches the chat: a full queue or a failing disk pauses
//! history with one log line, counts what was not stored, and retries.
//!
//! This module knows nothing of protocols or members; the hub's glue is
//! `chat::hub::history`.

mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::chat::hub::{now_ms, EventKind, RoomEvent};
use crate::error::{Error, Result};
use crate::util::lock_unpoisoned;

pub use store::is_said;

/// Numbers skipped per room after a crash: more than the events the hub and
/// the writer's queue can hold uncommitted.
pub const CRASH_SKIP: u64 = 1 << 20;

/// Most events waiting for the writer; past this, history pauses.
pub const QUEUE_EVENTS: usize = 1 << 18;

/// Most bytes (about) of events waiting for the writer; past this, history
/// pauses. The events are shared with the fan-out, so this is what history
/// can keep alive beyond it.
pub const QUEUE_BYTES: usize = 8 << 20;

/// About the memory an event takes.
fn event_bytes(ev: &RoomEvent) -> usize {
    let text = match ev.kind.untagged() {
        EventKind::Message { text } | EventKind::Action { text } => text.len(),
        EventKind::Leave { reason } => reason.len(),
        EventKind::Private { text, .. } => text.len(),
        _ => 0,
    };
    text + ev.from.len() + 96
}

/// Most events one resume answers with; more missed is a gap.
pub const RESUME_MAX: usize = 10_000;

/// Most events `/history N` shows.
pub const HISTORY_MAX: usize = 1_000;

/// The writer thread's nice value.
const WRITER_NICE: libc::c_int = 10;

/// After a write fails, how long history stays paused before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// What to keep and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database file.
    pub path: PathBuf,
    /// Events older than this are pruned.
    pub max_age: Option<Duration>,
    /// Events past the last this many of a room are pruned.
    pub max_per_room: Option<u64>,
    /// Store private messages too.
    pub private: bool,
    /// Most bytes the database may take (writes past it fail as on a full disk).
    pub max_size: Option<u64>,
    /// The numbering events come with, when it is not the database's own:
    /// a cluster's room log (its places number the events). A database
    /// kept under another one is emptied; numbering is not continued here.
    pub epoch: Option<String>,
}

/// The default database: `$XDG_STATE_HOME/sockit/chat.db`, else
/// `~/.local/state/sockit/chat.db`, else `./sockit-chat.db`.
pub fn default_path() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        });
    match state {
        Some(dir) => dir.join("sockit").join("chat.db"),
        None => PathBuf::from("sockit-chat.db"),
    }
}

/// A query on one room's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The last `n` events.
    Latest(usize),
    /// Up to `n` events before `seq` (the last of them).
    Before(u64, usize),
    /// Up to `n` events after `seq` (the first of them).
    After(u64, usize),
    /// Up to `n` events around `seq`: half before, the rest from `seq` on.
    Around(u64, usize),
    /// Up to `n` events strictly between `a` and `b` (the first of them).
    Between(u64, u64, usize),
}

/// Counters, for tests, benchmarks and `-v`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistoryStats {
    /// Events committed.
    pub stored: u64,
    /// Events not stored (queue full, write failed).
    pub dropped: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Rows pruned.
    pub pruned: u64,
}

#[derive(Default)]
struct Queue {
    rooms: Vec<Arc<Vec<RoomEvent>>>,
    private: Vec<RoomEvent>,
    /// Events in `rooms` and `private`.
    len: usize,
    /// About their bytes (with those in `inflight`).
    bytes: usize,
    /// Taken by the writer, not yet committed (still visible to reads).
    inflight: Vec<Arc<Vec<RoomEvent>>>,
    /// Dropping everything until then (a write failed).
    paused_until: Option<Instant>,
    /// The queue overflowed: dropping until the writer empties it.
    full: bool,
    closed: bool,
}

/// The history store.
pub struct History {
    epoch: Arc<str>,
    settings: Settings,
    seqs: Mutex<HashMap<String, u64>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    reader: Mutex<Connection>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    stored: AtomicU64,
    dropped: AtomicU64,
    commits: AtomicU64,
    pruned: AtomicU64,
    /// A pause has been logged and not yet its end.
    paused: AtomicBool,
    /// Held (locked) while the server runs: a second server on the same
    /// file is refused at start.
    _lock: File,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("epoch", &self.epoch)
            .field("path", &self.settings.path)
            .finish()
    }
}

impl History {
    /// Opens the database and starts the writer. Errors are for people:
    /// a file that is not SQLite, cannot be written, or is in use by another
    /// server.
    pub fn open(settings: Settings) -> Result<Arc<History>> {
        let path = settings.path.clone();
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::io(
                        format!("cannot create {} for --history-db", dir.display()),
                        e,
                    )
                })?;
            }
        }
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open history database {shown}"), e))?;
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this function owns; the lock
            // lives as long as the file (held in `History`).
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Err(Error::Usage(format!(
                        "history database {shown} is in use by another chat server \
                         (give this one its own --history-db, or --no-history)"
                    )));
                }
                return Err(Error::io(
                    format!("cannot lock history database {shown}"),
                    e,
                ));
            }
        }
        let opened = store::open(&path, settings.max_size, settings.epoch.as_deref()).map_err(
            |e| match e {
                store::OpenError::NotDatabase(why) => Error::Usage(format!(
                    "{shown} is not a SQLite database ({why}); give another --history-db"
                )),
                store::OpenError::ReadOnly(why) => Error::io(
                    format!("cannot write history database {shown} ({why})"),
                    std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                ),
                store::OpenError::Other(why) => {
                    Error::Usage(format!("cannot use history database {shown} ({why})"))
                }
            },
        )?;
        let mut seqs = opened.seqs;
        if settings.epoch.is_some() {
            // The room log numbers the events: nothing to continue.
            seqs.clear();
        } else if opened.unclean {
            tracing::warn!(
                "history: {shown} was not closed cleanly; numbering continues past a gap"
            );
            for s in seqs.values_mut() {
                *s += CRASH_SKIP;
            }
        }
        tracing::info!(
            "history in {shown} (epoch {}, {} rooms)",
            opened.epoch,
            seqs.len()
        );
        let h = Arc::new(History {
            epoch: opened.epoch.into(),
            settings,
            seqs: Mutex::new(seqs),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            reader: Mutex::new(opened.reader),
            writer: Mutex::new(None),
            stored: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            _lock: lock,
        });
        let writer = opened.writer;
        let hw = h.clone();
        let handle = std::thread::Builder::new()
            .name("chat-history".into())
            .spawn(move || hw.write_loop(writer))
            .map_err(|e| Error::io("cannot start the history writer", e))?;
        *lock_unpoisoned(&h.writer) = Some(handle);
        Ok(h)
    }

    /// The database's epoch.
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    /// Whether private messages are kept.
    pub fn keeps_private(&self) -> bool {
        self.settings.private
    }

    /// The rooms' last sequence numbers as stored at start (plus the skip
    /// after a crash), for the hub to continue from. Taken once.
    pub fn take_seqs(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *lock_unpoisoned(&self.seqs))
    }

    /// Counters so far.
    pub fn stats(&self) -> HistoryStats {
        HistoryStats {
            stored: self.stored.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            pruned: self.pruned.load(Ordering::Relaxed),
        }
    }

    /// Hands one room batch to the writer without waiting; when history is
    /// paused (queue full, disk failing) the batch is counted as dropped.
    pub fn submit(&self, batch: Arc<Vec<RoomEvent>>) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        let bytes: usize = batch.iter().map(event_bytes).sum();
        let mut q = lock_unpoisoned(&self.queue);
        if !self.admit(&mut q, n, bytes) {
            return;
        }
        q.rooms.push(batch);
        q.len += n;
        q.bytes += bytes;
        drop(q);
        self.wake.notify_one();
    }

    /// Hands a private message to the writer (only with `--history-private`).
    pub fn submit_private(&self, ev: RoomEvent) {
        if !self.settings.private {
            return;
        }
        let bytes = event_bytes(&ev);
        let mut q = lock_unpoisoned(&self.queue);
        if !self.admit(&mut q, 1, bytes) {
            return;
        }
        q.private.push(ev);
        q.len += 1;
        q.bytes += bytes;
        drop(q);
        self.wake.notify_one();
    }

    fn admit(&self, q: &mut Queue, n: usize, bytes: usize) -> bool {
        if q.closed {
            return false;
        }
        if let Some(until) = q.paused_until {
            if Instant::now() < until {
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
                return false;
            }
        }
        if q.full || q.len + n > QUEUE_EVENTS || q.bytes + bytes > QUEUE_BYTES {
            if !q.full {
                q.full = true;
                self.pause("the writer is behind (queue full)");
            }
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn pause(&self, why: &str) {
        if !self.paused.swap(true, Ordering::Relaxed) {
            tracing::warn!("history paused: {why}; chat continues, events are not stored");
        }
    }

    fn resumed(&self) {
        if self.paused.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "history resumed ({} events not stored so far)",
                self.dropped.load(Ordering::Relaxed)
            );
        }
    }

    /// Stops the writer after it has committed what is queued, and marks the
    /// database closed cleanly.
    pub fn close(&self) {
        lock_unpoisoned(&self.queue).closed = true;
        self.wake.notify_all();
        if let Some(h) = lock_unpoisoned(&self.writer).take() {
            let _ = h.join();
        }
    }

    fn write_loop(self: Arc<Self>, mut c: Connection) {
        // Below the fan-out: when the cores are busy, delivery goes first and
        // history lags (its queue takes up the slack, then it pauses).
        // SAFETY: setpriority on this thread's own id.
        unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                WRITER_NICE,
            );
        }
        let count_every = Duration::from_millis(500);
        let age_every = self
            .settings
            .max_age
            .map(|a| (a / 10).clamp(Duration::from_millis(100), Duration::from_secs(60)));
        let mut last_count = Instant::now();
        let mut last_age = Instant::now();
        let mut touched: HashSet<String> = HashSet::new();
        loop {
            let (rooms, private, closed, taken_bytes) = {
                let mut q = lock_unpoisoned(&self.queue);
                while q.len == 0 && !q.closed {
                    let (g, _) = self
                        .wake
                        .wait_timeout(q, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner());
                    q = g;
                    if q.len == 0 && self.prune_due(last_count, last_age, age_every, &touched) {
                        break;
                    }
                }
                let rooms = std::mem::take(&mut q.rooms);
                q.inflight = rooms.clone();
                let private = std::mem::take(&mut q.private);
                q.len = 0;
                let taken: usize = rooms
                    .iter()
                    .flat_map(|b| b.iter())
                    .chain(private.iter())
                    .map(event_bytes)
                    .sum();
                (rooms, private, q.closed, taken)
            };
            if !rooms.is_empty() || !private.is_empty() {
                let n: usize = rooms.iter().map(|b| b.len()).sum::<usize>() + private.len();
                match store::write(&mut c, &rooms, &private) {
                    Ok(_) => {
                        self.stored.fetch_add(n as u64, Ordering::Relaxed);
                        self.commits.fetch_add(1, Ordering::Relaxed);
                        if self.settings.max_per_room.is_some() {
                            for b in &rooms {
                                if let Some(ev) = b.first() {
                                    if !touched.contains(&*ev.room) {
                                        touched.insert(ev.room.to_string());
                                    }
                                }
                            }
                        }
                        let mut q = lock_unpoisoned(&self.queue);
                        q.inflight.clear();
                        q.bytes = q.bytes.saturating_sub(taken_bytes);
                        q.full = false;
                        drop(q);
                        self.resumed();
                    }
                    Err(e) => {
                        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
                        self.pause(&format!(
                            "cannot write {} ({e})",
                            self.settings.path.display()
                        ));
                        let mut q = lock_unpoisoned(&self.queue);
                        q.inflight.clear();
                        q.bytes = 0;
                        q.paused_until = Some(Instant::now() + RETRY);
                        self.dropped.fetch_add(q.len as u64, Ordering::Relaxed);
                        q.rooms.clear();
                        q.private.clear();
                        q.len = 0;
                    }
                }
            }
            if closed {
                let _ = store::close(&c);
                return;
            }
            if let Some(keep) = self.settings.max_per_room {
                if last_count.elapsed() >= count_every && !touched.is_empty() {
                    last_count = Instant::now();
                    let rooms: Vec<String> = touched.drain().collect();
                    self.prune(|c| store::prune_count(c, &rooms, keep), &c);
                }
            }
            if let (Some(age), Some(every)) = (self.settings.max_age, age_every) {
                if last_age.elapsed() >= every {
                    last_age = Instant::now();
                    let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
                    self.prune(|c| store::prune_age(c, cutoff), &c);
                }
            }
        }
    }

    fn prune_due(
        &self,
        last_count: Instant,
        last_age: Instant,
        age_every: Option<Duration>,
        touched: &HashSet<String>,
    ) -> bool {
        (!touched.is_empty() && last_count.elapsed() >= Duration::from_millis(500))
            || age_every.is_some_and(|e| last_age.elapsed() >= e)
    }

    fn prune(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<usize>, c: &Connection) {
        match f(c) {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!("history: pruned {n} events");
                }
                self.pruned.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("history: pruning failed ({e})"),
        }
    }

    /// Events of `room` with `lo < seq < hi`, `n` from the start or the end,
    /// from the database, the writer's queue, and `extra` (events the hub has
    /// not handed over yet); `said`: messages and actions only. Ascending.
    #[allow(clippy::too_many_arguments)]
    pub fn range(
        &self,
        room: &Arc<str>,
        lo: u64,
        hi: u64,
        n: usize,
        from_end: bool,
        said: bool,
        extra: &[RoomEvent],
    ) -> Vec<RoomEvent> {
        if n == 0 || hi <= lo.saturating_add(1) {
            return Vec::new();
        }
        let keep = |ev: &RoomEvent| {
            ev.seq > lo && ev.seq < hi && *ev.room == **room && (!said || is_said(&ev.kind))
        };
        let mut all: BTreeMap<u64, RoomEvent> = BTreeMap::new();
        // The queue first, then the database: a batch committed in between
        // is then seen twice (and merged), never missed.
        {
            let q = lock_unpoisoned(&self.queue);
            for b in q.inflight.iter().chain(q.rooms.iter()) {
                if b.first().is_some_and(|e| *e.room == **room) {
                    for ev in b.iter().filter(|e| keep(e)) {
                        all.insert(ev.seq, ev.clone());
                    }
                }
            }
        }
        for ev in extra.iter().filter(|e| keep(e)) {
            all.insert(ev.seq, ev.clone());
        }
        match store::range(
            &lock_unpoisoned(&self.reader),
            room,
            lo,
            hi,
            n,
            from_end,
            said,
        ) {
            Ok(rows) => {
                for ev in rows {
                    all.entry(ev.seq).or_insert(ev);
                }
            }
            Err(e) => tracing::debug!("history: read failed ({e})"),
        }
        let len = all.len();
        let skip = if from_end { len.saturating_sub(n) } else { 0 };
        all.into_values().skip(skip).take(n).collect()
    }

    /// Answers a query on `room` (for front-ends: IRC's CHATHISTORY), from
    /// what the writer has been handed. Ascending.
    pub fn query(&self, room: &str, q: Query) -> Vec<RoomEvent> {
        self.query_with(&Arc::from(room), q, &[])
    }

    /// [`History::query`], also searching `extra`.
    pub fn query_with(&self, room: &Arc<str>, q: Query, extra: &[RoomEvent]) -> Vec<RoomEvent> {
        match q {
            Query::Latest(n) => self.range(room, 0, u64::MAX, n, true, false, extra),
            Query::Before(s, n) => self.range(room, 0, s, n, true, false, extra),
            Query::After(s, n) => self.range(room, s, u64::MAX, n, false, false, extra),
            Query::Around(s, n) => {
                let before = n / 2;
                let mut v = self.range(room, 0, s, before, true, false, extra);
                let rest = n - v.len();
                v.extend(self.range(
                    room,
                    s.saturating_sub(1),
                    u64::MAX,
                    rest,
                    false,
                    false,
                    extra,
                ));
                v
            }
            Query::Between(a, b, n) => {
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                self.range(room, a, b, n, false, false, extra)
            }
        }
    }

    /// The lowest seq still stored for `room`, if any.
    pub fn first_seq(&self, room: &str) -> Option<u64> {
        store::first_seq(&lock_unpoisoned(&self.reader), room)
            .ok()
            .flatten()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::hub::EventKind;

    fn settings(path: &Path) -> Settings {
        Settings {
            path: path.to_path_buf(),
            max_age: None,
            max_per_room: None,
            private: false,
            max_size: None,
            epoch: None,
        }
    }

    fn ev(room: &str, seq: u64, text: &str) -> RoomEvent {
        RoomEvent {
            room: room.into(),
            seq,
            prev: seq.saturating_sub(1),
            ts: now_ms(),
            from: "ann".into(),
            kind: if text.is_empty() {
                EventKind::Join
            } else {
                EventKind::Message { text: text.into() }
            },
        }
    }

    fn seqs(v: &[RoomEvent]) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn queries_see_queued_and_committed_events_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(settings(&dir.path().join("h.db"))).unwrap();
        h.submit(Arc::new(
            (1..=5).map(|i| ev("r", i, &format!("m{i}"))).collect(),
        ));
        h.submit(Arc::new(vec![ev("other", 1, "x")]));
        // Whether or not the writer has committed them yet.
        assert_eq!(seqs(&h.query("r", Query::Latest(3))), [3, 4, 5]);
        assert_eq!(seqs(&h.query("r", Query::Before(3, 10))), [1, 2]);
        assert_eq!(seqs(&h.query("r", Query::After(3, 10))), [4, 5]);
        assert_eq!(seqs(&h.query("r", Query::Around(3, 3))), [2, 3, 4]);
        assert_eq!(seqs(&h.query("r", Query::Between(5, 1, 10))), [2, 3, 4]);
        // Pending events of the hub merge in; "said" skips announcements.
        let extra = [ev("r", 6, ""), ev("r", 7, "m7")];
        let r: Arc<str> = "r".into();
        assert_eq!(seqs(&h.range(&r, 0, 8, 2, true, true, &extra)), [5, 7]);
        h.close();
        assert_eq!(h.stats().stored, 6);
        let epoch = h.epoch().clone();
        drop(h);
        let h = History::open(settings(&dir.path().join("h.db"))).unwrap();
        assert_eq!(h.epoch(), &epoch);
        assert_eq!(h.take_seqs().get("r"), Some(&5));
        assert_eq!(seqs(&h.query("r", Query::Latest(10))), [1, 2, 3, 4, 5]);
        h.close();
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let h = History::open(settings(&path)).unwrap();
        let e = History::open(settings(&path)).unwrap_err();
        assert!(
            e.to_string().contains("in use by another chat server"),
            "{e}"
        );
        h.close();
    }
}
