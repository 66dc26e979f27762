//! The SQLite side of history: opening (and refusing) a database, the schema,
//! writing batches in one transaction, pruning, and range reads.
//!
//! Schema (`PRAGMA user_version` 2):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value TEXT)           -- epoch, open
//! rooms(name TEXT PRIMARY KEY, last_seq INTEGER)   -- the highest seq stored per room
//! events(room, seq, ts, kind, nick, text, prev, PRIMARY KEY (room, seq)) WITHOUT ROWID
//! private(id INTEGER PRIMARY KEY, ts, nick, target, text)  -- only with --history-private
//! ```
//!
//! `events` is clustered on (room, seq), so every query (latest, before,
//! after, between) is one range scan of one room, and age pruning of a room
//! deletes from the start of its range up to the first row young enough.
//! `prev` is the room's seq before the event (NULL in rows of version 1,
//! where it is always `seq - 1`): in a cluster, seqs are places in the
//! shared room log and leave holes, and `prev` tells a hole from a loss.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::chat::hub::{EventKind, RoomEvent};

/// How events are kept in the `kind` column.
const MESSAGE: i64 = 1;
const ACTION: i64 = 2;
const JOIN: i64 = 3;
const LEAVE: i64 = 4;
const NICK: i64 = 5;

/// Why a database cannot be used.
#[derive(Debug)]
pub enum OpenError {
    /// The file is not a SQLite database (the cause).
    NotDatabase(String),
    /// The file or its directory cannot be written (the cause).
    ReadOnly(String),
    /// Something else (the cause).
    Other(String),
}

fn classify(e: rusqlite::Error) -> OpenError {
    let text = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => OpenError::NotDatabase(text),
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied) => OpenError::ReadOnly(text),
        _ => OpenError::Other(text),
    }
}

/// What the database said about itself when opened.
#[derive(Debug)]
pub struct Opened {
    /// The writer's connection.
    pub writer: Connection,
    /// A connection for reads (WAL: reads never wait for the writer).
    pub reader: Connection,
    /// The database's epoch.
    pub epoch: String,
    /// The last stored seq per room.
    pub seqs: HashMap<String, u64>,
    /// The previous server did not close the database (it crashed or was killed).
    pub unclean: bool,
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(Duration::from_secs(2))?;
    // WAL with synchronous=NORMAL: a commit is one append to the log, synced
    // at checkpoints; a killed process loses nothing committed.
    let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some(format!("cannot use WAL mode (journal_mode is {mode})")),
        ));
    }
    c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;")?;
    Ok(())
}

/// Opens (or creates) the database at `path`, checks that it can be
/// written, and loads the epoch and the rooms' last sequence numbers.
/// `max_size`: most bytes the file may grow to (writes past it fail as on a
/// full disk). `epoch`: the numbering the events must belong to (a
/// cluster's room log); a database from another one is emptied first.
pub fn open(path: &Path, max_size: Option<u64>, epoch: Option<&str>) -> Result<Opened, OpenError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let writer = Connection::open_with_flags(path, flags).map_err(classify)?;
    configure(&writer).map_err(classify)?;
    writer
        .execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS rooms(name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS events(
                 room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
                 kind INTEGER NOT NULL, nick TEXT NOT NULL, text TEXT NOT NULL,
                 prev INTEGER,
                 PRIMARY KEY (room, seq)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS private(
                 id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, nick TEXT NOT NULL,
                 target TEXT NOT NULL, text TEXT NOT NULL);
             COMMIT;",
        )
        .map_err(classify)?;
    let version: i64 = writer
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(classify)?;
    if version < 2 {
        let has_prev: bool = writer
            .query_row(
                "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'prev'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(classify)?
            > 0;
        if !has_prev {
            writer
                .execute_batch("ALTER TABLE events ADD COLUMN prev INTEGER")
                .map_err(classify)?;
        }
        writer
            .execute_batch("PRAGMA user_version = 2")
            .map_err(classify)?;
    }
    let stored: Option<String> = writer
        .query_row("SELECT value FROM meta WHERE key='epoch'", [], |r| r.get(0))
        .optional()
        .map_err(classify)?;
    let epoch = match (stored, epoch) {
        (Some(e), None) => e,
        (Some(e), Some(want)) if e == want => e,
        (stored, want) => {
            let e = want.map_or_else(new_epoch, str::to_string);
            if stored.is_some() {
                // Another numbering: what is kept cannot be resumed from.
                writer
                    .execute_batch("DELETE FROM events; DELETE FROM rooms;")
                    .map_err(classify)?;
            }
            writer
                .execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('epoch', ?1)",
                    params![e],
                )
                .map_err(classify)?;
            e
        }
    };
    let unclean: bool = writer
        .query_row("SELECT value FROM meta WHERE key='open'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .map_err(classify)?
        .is_some_and(|v| v == "1");
    writer
        .execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('open', '1')",
            [],
        )
        .map_err(classify)?;
    if let Some(bytes) = max_size {
        let page: u64 = writer
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(classify)?;
        let pages = (bytes / page.max(1)).max(2);
        writer
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(classify)?;
    }
    let mut seqs = HashMap::new();
    {
        let mut st = writer
            .prepare("SELECT name, last_seq FROM rooms")
            .map_err(classify)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(classify)?;
        for row in rows {
            let (name, seq) = row.map_err(classify)?;
            seqs.insert(name, seq.max(0) as u64);
        }
    }
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(classify)?;
    reader
        .busy_timeout(Duration::from_secs(2))
        .map_err(classify)?;
    // Open the log and its index now, not at the first join.
    reader
        .query_row("SELECT count(*) FROM rooms", [], |_| Ok(()))
        .map_err(classify)?;
    Ok(Opened {
        writer,
        reader,
        epoch,
        seqs,
        unclean,
    })
}

/// A new epoch: 16 hex digits from the system's random source (the clock
/// and the process id if that cannot be read).
fn new_epoch() -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b = (t ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Marks the database as closed cleanly.
pub fn close(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('open', '0')",
        [],
    )?;
    // Fold the log back into the database so the next start reads one file.
    let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(())
}

/// Writes room events and private messages in one transaction.
pub fn write(
    c: &mut Connection,
    rooms: &[Arc<Vec<RoomEvent>>],
    private: &[RoomEvent],
) -> rusqlite::Result<usize> {
    let tx = c.transaction()?;
    let mut n = 0;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR REPLACE INTO events(room, seq, ts, kind, nick, text, prev) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut last: HashMap<&str, u64> = HashMap::new();
        for batch in rooms {
            // Unnumbered events (a cluster node's own while the room log
            // was away) are not the room's to keep.
            for ev in batch.iter().filter(|e| e.seq > 0) {
                let Some((kind, text)) = columns(ev.kind.untagged()) else {
                    continue;
                };
                ins.execute(params![
                    &*ev.room,
                    ev.seq as i64,
                    ev.ts as i64,
                    kind,
                    &*ev.from,
                    text,
                    ev.prev as i64
                ])?;
                let l = last.entry(&ev.room).or_default();
                *l = (*l).max(ev.seq);
                n += 1;
            }
        }
        let mut up = tx.prepare_cached(
            "INSERT INTO rooms(name, last_seq) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
        )?;
        for (room, seq) in last {
            up.execute(params![room, seq as i64])?;
        }
        let mut pm = tx.prepare_cached(
            "INSERT INTO private(ts, nick, target, text) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for ev in private {
            if let EventKind::Private { to, text, .. } = ev.kind.untagged() {
                pm.execute(params![ev.ts as i64, &*ev.from, &**to, text])?;
                n += 1;
            }
        }
    }
    tx.commit()?;
    Ok(n)
}

fn columns(kind: &EventKind) -> Option<(i64, &str)> {
    Some(match kind {
        EventKind::Message { text } => (MESSAGE, text),
        EventKind::Action { text } => (ACTION, text),
        EventKind::Join => (JOIN, ""),
        EventKind::Leave { reason } => (LEAVE, reason),
        EventKind::Nick { new } => (NICK, new),
        _ => return None,
    })
}

/// One row of `events` as an event: (seq, ts, kind, nick, text, prev).
type Row = (i64, i64, i64, String, String, i64);

fn event(room: &Arc<str>, (seq, ts, kind, nick, text, prev): Row) -> RoomEvent {
    let kind = match kind {
        MESSAGE => EventKind::Message { text },
        ACTION => EventKind::Action { text },
        JOIN => EventKind::Join,
        LEAVE => EventKind::Leave { reason: text },
        _ => EventKind::Nick {
            new: Arc::from(text),
        },
    };
    RoomEvent {
        room: room.clone(),
        seq: seq.max(0) as u64,
        prev: prev.max(0) as u64,
        ts: ts.max(0) as u64,
        from: Arc::from(nick),
        kind,
    }
}

/// Whether an event is said (a message or an action), not an announcement.
pub fn is_said(kind: &EventKind) -> bool {
    matches!(
        kind.untagged(),
        EventKind::Message { .. } | EventKind::Action { .. }
    )
}

/// Up to `n` events of `room` with `lo < seq < hi`: the first `n` if
/// `!from_end`, else the last `n`; `said`: messages and actions only.
/// In ascending order.
pub fn range(
    c: &Connection,
    room: &Arc<str>,
    lo: u64,
    hi: u64,
    n: usize,
    from_end: bool,
    said: bool,
) -> rusqlite::Result<Vec<RoomEvent>> {
    let filter = if said { " AND kind IN (1, 2)" } else { "" };
    let order = if from_end { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT seq, ts, kind, nick, text, coalesce(prev, seq - 1) FROM events
         WHERE room = ?1 AND seq > ?2 AND seq < ?3{filter} ORDER BY seq {order} LIMIT ?4"
    );
    let mut st = c.prepare_cached(&sql)?;
    let hi = hi.min(i64::MAX as u64) as i64;
    let rows = st.query_map(
        params![&**room, lo.min(i64::MAX as u64) as i64, hi, n as i64],
        |r| {
            Ok(event(
                room,
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ),
            ))
        },
    )?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if from_end {
        out.reverse();
    }
    Ok(out)
}

/// The lowest seq stored for `room` (None: nothing stored).
pub fn first_seq(c: &Connection, room: &str) -> rusqlite::Result<Option<u64>> {
    c.prepare_cached("SELECT min(seq) FROM events WHERE room = ?1")?
        .query_row(params![room], |r| r.get::<_, Option<i64>>(0))
        .map(|v| v.map(|s| s.max(0) as u64))
}

/// Keeps the last `keep` events of each of `rooms`; returns the rows deleted.
/// (Counted by rows, not by numbers: a cluster's numbers leave holes.)
pub fn prune_count(c: &Connection, rooms: &[String], keep: u64) -> rusqlite::Result<usize> {
    let mut del = c.prepare_cached(
        "DELETE FROM events WHERE room = ?1 AND seq <=
             (SELECT seq FROM events WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
    )?;
    let mut n = 0;
    for room in rooms {
        n += del.execute(params![room, keep.min(i64::MAX as u64) as i64])?;
    }
    Ok(n)
}

/// Deletes events and private messages older than `cutoff_ms`; returns the rows deleted.
pub fn prune_age(c: &Connection, cutoff_ms: u64) -> rusqlite::Result<usize> {
    let rooms: Vec<String> = {
        let mut st = c.prepare_cached("SELECT name FROM rooms")?;
        let r = st.query_map([], |r| r.get(0))?;
        r.collect::<rusqlite::Result<_>>()?
    };
    let cutoff = cutoff_ms.min(i64::MAX as u64) as i64;
    // Per room, from the start of its range: what is older than the cutoff
    // comes first (the clock only goes forward within a room's stream).
    let mut del = c.prepare_cached(
        "DELETE FROM events WHERE room = ?1 AND seq < coalesce(
             (SELECT seq FROM events WHERE room = ?1 AND ts >= ?2 ORDER BY seq LIMIT 1),
             (SELECT last_seq + 1 FROM rooms WHERE name = ?1))",
    )?;
    let mut n = 0;
    for room in &rooms {
        n += del.execute(params![room, cutoff])?;
    }
    n += c.execute("DELETE FROM private WHERE ts < ?1", params![cutoff])?;
    Ok(n)
}
