//! The chat hub: members, nicks, rooms, and fan-out of structured events.
//!
//! The hub never builds protocol text. What happens in a room is a
//! [`RoomEvent`] (message, action, join, leave, nick change...) stamped with
//! the server time and the room's next sequence number; replies for one member
//! (welcome, `who`, errors, private messages) are events too. Each member is
//! tagged with its front-end's [`Protocol`], which turns events into bytes.
//!
//! Room traffic is batched: an event for a room is appended to the room's
//! pending events, and the hub's flusher task fans them out once the runtime
//! has run every other ready task, so each member gets one write for
//! everything its room said in that turn instead of one per line or per
//! sender. A batch is encoded **once per protocol present in the room**, and
//! that protocol's members share the bytes. A member never receives its own
//! lines: the batch remembers which runs of events each member wrote, and each
//! encoding where every event ends, so that member gets the rest as slices.
//! Fan-out never waits on a peer: [`Outbox::push`] writes without blocking or
//! queues, and a member whose queue passes the cap is dropped as too slow.
//! Replies meant for one member are encoded and queued at once.

mod cluster;
pub mod event;
mod history;
mod rooms;
mod view;

use crate::util::lock_unpoisoned;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use self::event::{
    now_ms, EventKind, HubCommand, Id, ModeChange, ModeChangeRequest, Notice, Refusal, RoomEvent,
    Style, TopicInfo,
};
use super::cluster::Logged;
use super::front::Protocol;
use super::history::History;
use super::outbox::{Outbox, Pushed, Sink};
use super::protocol::{check_nick, check_room, nick_key, MAX_LISTED};
use super::sanitize::{is_clean, sanitize};

/// Peer text as every front-end may show it: the one sanitizer, applied in
/// the hub whatever the protocol it came in by (a line front-end has already
/// cleaned its lines; clean text passes without a copy).
fn clean(text: String) -> String {
    if is_clean(&text) {
        text
    } else {
        sanitize(text.as_bytes())
    }
}

fn clean_opt(text: Option<String>) -> Option<String> {
    text.map(clean)
}

/// The room everyone starts in.
pub const LOBBY: &str = "lobby";

/// Most rooms a member may be in at once, by default.
pub const DEFAULT_MAX_ROOMS: usize = 50;

/// Most bytes waiting for fan-out (all rooms) before readers pause, as a
/// share of the per-member queue cap: one turn's fan-out can then never push
/// a member with a full socket far toward its cap.
const PENDING_SHARE: usize = 4;

/// Bounds of that limit.
const PENDING_MIN: usize = 4 * 1024;
const PENDING_MAX: usize = 256 * 1024;

/// Which of its own room events come back to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// None (a terminal shows what was typed).
    None,
    /// Its talk (messages, actions, styled messages), not its joins, parts
    /// or nick changes (IRC's `echo-message`).
    Talk,
    /// Everything (the web page shows what the room has, with its number).
    All,
}

#[derive(Debug)]
struct Member {
    nick: Arc<str>,
    /// The room line and web commands act on: their only room. A member in
    /// several rooms (IRC) has here the last it entered, or "" in none.
    room: Arc<str>,
    /// Every room the member is in, in the order entered.
    rooms: Vec<Arc<str>>,
    out: Arc<Outbox>,
    protocol: Protocol,
    echo: Echo,
    operator: bool,
    /// Why the member is away, if it is.
    away: Option<String>,
    /// When it came, ms since the epoch.
    since: u64,
    /// History replays come inside an IRC `chathistory` batch.
    batch: bool,
    /// Cancelled when the member is removed (kick, shutdown): stop reading,
    /// flush what is queued, close.
    removed: CancellationToken,
}

/// One member in a room's roster.
#[derive(Debug, Clone)]
struct Seat {
    id: Id,
    out: Arc<Outbox>,
    protocol: Protocol,
    echo: Echo,
}

/// A run of pending events by one author (or none: the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    author: Option<Id>,
    /// The index of the event after the run.
    end: usize,
    /// Only talk (messages, actions): what [`Echo::Talk`] sends back.
    talk: bool,
}

/// The members of a room, shared with a fan-out in progress (copied on
/// write while one holds it).
type Roster = Arc<Vec<Seat>>;

#[derive(Debug, Default)]
struct Room {
    name: Arc<str>,
    members: Roster,
    /// Members per protocol (which encodings a batch needs).
    protocols: [usize; Protocol::COUNT],
    /// Case-folded nick -> nick, kept sorted so `who` costs what it lists.
    names: BTreeMap<String, String>,
    /// The last sequence number given to an event of this room.
    seq: u64,
    /// Events waiting for fan-out.
    pending: Vec<RoomEvent>,
    /// About the bytes `pending` will take (the backpressure measure).
    pending_cost: usize,
    /// `pending` in runs: who wrote them (kept from that member).
    runs: Vec<Run>,
    /// Members who came in while events were pending, and how many of them
    /// predate each (not theirs to receive).
    entered: Vec<(Id, usize)>,
    /// (member, event index): pending events a member gets through another
    /// room (a nick change or quit of someone it shares several rooms with).
    skips: Vec<(Id, usize)>,
    /// Listed in `HubState::dirty`.
    dirty: bool,
    /// The topic, if set.
    topic: Option<TopicInfo>,
    /// Only room operators may set the topic.
    topic_lock: bool,
    /// Only members may talk in the room.
    no_outside: bool,
    /// The room's operators (the server's operator is one in every room).
    ops: Vec<Id>,
    /// In a cluster, members who came before this node had the room log's
    /// history of the room: they get their replay when it is in.
    fresh: Vec<Id>,
}

#[derive(Debug, Default)]
struct HubState {
    members: HashMap<Id, Member>,
    /// Case-folded nick -> member.
    nicks: HashMap<String, Id>,
    rooms: HashMap<Arc<str>, Room>,
    /// Case-folded room name -> room name: rooms are unique ignoring ASCII
    /// case, and keep the case they were created with.
    room_keys: HashMap<String, Arc<str>>,
    /// Rooms with pending events, in the order they got them.
    dirty: Vec<Arc<str>>,
    operator: Option<Id>,
    /// The operator's nick (case-folded), never free for anyone else, with
    /// or without a console.
    reserved: Option<String>,
    /// Outboxes given bytes while the lock was held; written once it is not.
    touched: Vec<Arc<Outbox>>,
    next_id: Id,
    next_guest: u64,
    closed: bool,
    /// With history: each room's last sequence number, for rooms not open
    /// now (stored at start, kept when a room empties), so that numbering
    /// continues and cursors stay valid.
    seqs: HashMap<String, u64>,
    /// The link to the other nodes (`--cluster`).
    cluster: Option<Arc<super::cluster::Link>>,
    /// Events being posted came from another node (not published again).
    inbound: bool,
    /// In a cluster: nick changes and quits lately put into rooms' batches
    /// (each room's copy comes from the room log on its own), with the rooms
    /// they went to, so that a member in several of them hears each once.
    spread: VecDeque<Spread>,
}

/// A nick change or quit and the rooms it has reached (see `HubState::spread`).
#[derive(Debug)]
struct Spread {
    at: std::time::Instant,
    from: Arc<str>,
    kind: EventKind,
    rooms: Vec<Arc<str>>,
}

/// Counters of the fan-out, for tests, benchmarks and `-vv`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanOutStats {
    /// Room batches fanned out.
    pub batches: u64,
    /// Batch encodings made (one per protocol present in the batch's room).
    pub encodings: u64,
    /// Events carried by those batches.
    pub events: u64,
}

/// The hub.
#[derive(Debug)]
pub struct ChatHub {
    state: Mutex<HubState>,
    max_queue: usize,
    /// About the bytes in every room's pending events.
    pending: AtomicUsize,
    pending_max: usize,
    /// Woken when a room gets pending events (the flusher waits on it).
    dirty: Notify,
    /// Woken after a fan-out took pending events (readers over the limit wait on it).
    drained: Notify,
    /// Held while taking and encoding batches, so a room's batches reach the
    /// shards in order.
    collecting: Mutex<()>,
    /// The fan-out is split among these by member id, so a big room's writes
    /// run on several threads while each member still gets batches in order.
    shards: Vec<Shard>,
    batches: AtomicU64,
    encodings: AtomicU64,
    events: AtomicU64,
    /// Where room batches are kept, and how many messages a newcomer sees.
    history: Option<(Arc<History>, usize)>,
    /// Most rooms a member may be in at once (entering, not moving).
    max_rooms: AtomicUsize,
}

/// One share of the fan-out: batches not yet written to its members.
#[derive(Debug, Default)]
struct Shard {
    queue: Mutex<VecDeque<Arc<Batch>>>,
    /// Held while writing batches, so one shard's batches never interleave.
    fanning: Mutex<()>,
    ready: Notify,
}

/// A member's end of the hub.
#[derive(Debug)]
pub struct ChatMember {
    /// The member's id.
    pub id: Id,
    /// Bytes to send to the member (what the socket did not take at once),
    /// already encoded for its protocol.
    pub out: Arc<Outbox>,
    /// Cancelled when the member fell too far behind.
    pub kill: CancellationToken,
    /// Cancelled when the member was removed (kicked, server shutting down).
    pub removed: CancellationToken,
}

/// The member a command came from, as it was when the command arrived.
struct Caller {
    id: Id,
    nick: Arc<str>,
    room: Arc<str>,
    operator: bool,
    /// Client-only message tags the command came with.
    tags: Option<Arc<str>>,
}

impl Caller {
    /// `kind` with the caller's message tags, if any.
    fn tag(&self, kind: EventKind) -> EventKind {
        match &self.tags {
            Some(tags) => EventKind::Tagged {
                tags: tags.clone(),
                event: Box::new(kind),
            },
            None => kind,
        }
    }
}

/// Why [`ChatHub::register`] refused a member.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The server is shutting down.
    Closed,
    /// The nick breaks the grammar (why).
    BadNick(String),
    /// Someone has the nick.
    Taken,
}

/// What a session should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// The member quit; the reason to announce.
    Quit(String),
}

/// Why a join was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The server is shutting down.
    Closed,
}

/// One room's events for one fan-out, encoded for each protocol present.
#[derive(Debug)]
struct Batch {
    /// Per protocol slot: the bytes, and where each event's bytes end.
    encoded: [Option<(Bytes, Vec<usize>)>; Protocol::COUNT],
    /// Runs of events: who wrote them, and the index after the run.
    runs: Vec<Run>,
    /// (member, event index) pairs to leave out, sorted.
    skips: Vec<(Id, usize)>,
    /// The members who wrote runs, sorted.
    authors: Vec<Id>,
    /// Members who came in after the first events, sorted, and the index of
    /// the first event that is theirs.
    entered: Vec<(Id, usize)>,
    roster: Roster,
}

/// A room's pending events, taken under the lock to be encoded outside it.
struct Taken {
    events: Arc<Vec<RoomEvent>>,
    /// Their estimated size (the first encoding's capacity).
    cost: usize,
    protocols: [usize; Protocol::COUNT],
    runs: Vec<Run>,
    skips: Vec<(Id, usize)>,
    authors: Vec<Id>,
    entered: Vec<(Id, usize)>,
    roster: Roster,
}

/// About the bytes an event takes once encoded (its text and nick, plus a
/// line's punctuation).
fn cost(ev: &RoomEvent) -> usize {
    let text = match &ev.kind {
        EventKind::Tagged { tags, event } => match &**event {
            EventKind::Message { text } | EventKind::Action { text } => text.len() + tags.len(),
            _ => tags.len() + ev.room.len() + 8,
        },
        EventKind::Message { text } | EventKind::Action { text } => text.len(),
        EventKind::Leave { reason } => reason.len() + ev.room.len(),
        EventKind::Nick { new } => new.len() + 8,
        _ => ev.room.len() + 8,
    };
    ev.from.len() + text + 4
}

impl ChatHub {
    /// A hub whose members may each have `max_queue` bytes waiting.
    #[cfg(test)]
    pub fn new(max_queue: usize) -> Arc<Self> {
        Self::with_history(max_queue, None)
    }

    /// A hub that hands its room batches to `history` and replays the last
    /// `on_join` messages of a room to whoever enters it.
    pub fn with_history(max_queue: usize, history: Option<(Arc<History>, usize)>) -> Arc<Self> {
        let seqs = history
            .as_ref()
            .map(|h| h.0.take_seqs())
            .unwrap_or_default();
        Arc::new(ChatHub {
            state: Mutex::new(HubState {
                next_id: 1,
                next_guest: 1,
                seqs,
                ..HubState::default()
            }),
            max_queue,
            pending: AtomicUsize::new(0),
            pending_max: (max_queue / PENDING_SHARE).clamp(PENDING_MIN, PENDING_MAX),
            dirty: Notify::new(),
            drained: Notify::new(),
            collecting: Mutex::new(()),
            shards: (0..fan_out_threads()).map(|_| Shard::default()).collect(),
            batches: AtomicU64::new(0),
            encodings: AtomicU64::new(0),
            events: AtomicU64::new(0),
            history,
            max_rooms: AtomicUsize::new(DEFAULT_MAX_ROOMS),
        })
    }

    /// Caps the rooms a member may be in at once (see [`HubCommand::Enter`]).
    pub fn set_max_rooms(&self, max: usize) {
        self.max_rooms.store(max.max(1), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        lock_unpoisoned(&self.state)
    }

    /// Releases the hub's lock, then writes the bytes queued under it: no
    /// socket call is made while the hub is locked. Each member's bytes were
    /// queued in order under the lock, and are written from its queue's head.
    fn unlock(&self, mut st: MutexGuard<'_, HubState>) {
        let touched = std::mem::take(&mut st.touched);
        drop(st);
        for out in touched {
            out.send_queued();
        }
    }

    /// The fan-out's counters so far.
    pub fn stats(&self) -> FanOutStats {
        FanOutStats {
            batches: self.batches.load(Ordering::Relaxed),
            encodings: self.encodings.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
        }
    }

    /// Keeps `nick` (the operator's) from clients, whether or not the
    /// operator is present.
    pub fn reserve_nick(&self, nick: &str) {
        self.lock().reserved = Some(nick_key(nick));
    }

    /// Number of members (the operator included).
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    /// The nick of a member, if still present.
    pub fn nick(&self, id: Id) -> Option<String> {
        self.lock().members.get(&id).map(|m| m.nick.to_string())
    }

    /// Adds a client of `protocol` as `guestN` in the lobby, welcomes it and
    /// announces it. `sink` is the client's socket when the fan-out may write
    /// its bytes to it directly (plain TCP and Unix, once any handshake is over).
    pub fn join(
        &self,
        protocol: Protocol,
        sink: Option<Sink>,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<ChatMember, JoinError> {
        let mut st = self.lock();
        let nick: Arc<str> = self.next_guest(&mut st).into();
        let m = self.add(
            &mut st,
            nick.clone(),
            protocol,
            false,
            true,
            sink,
            removed,
            kill,
        )?;
        if let Some(link) = &st.cluster {
            link.claim(m.id, &nick, true);
        }
        let (room, others) = match st.rooms.get(LOBBY) {
            Some(r) => (r.name.clone(), r.members.len() - 1),
            None => (Arc::from(LOBBY), 0),
        };
        let welcome = Notice::Welcome {
            nick: nick.clone(),
            room: room.clone(),
            others,
        };
        self.reply(&mut st, m.id, EventKind::Notice(welcome));
        self.replay(&mut st, m.id, &room);
        self.announce(&mut st, &room, Some(m.id), nick, EventKind::Join);
        self.unlock(st);
        Ok(m)
    }

    /// The next free guest nick.
    fn next_guest(&self, st: &mut HubState) -> String {
        loop {
            let n = format!("guest{}", st.next_guest);
            st.next_guest += 1;
            if !st.nicks.contains_key(&n) && st.reserved.as_deref() != Some(n.as_str()) {
                break n;
            }
        }
    }

    /// Adds the server's operator (the console, a line-protocol member) under `nick`.
    pub fn join_operator(
        &self,
        nick: &str,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<ChatMember, String> {
        check_nick(nick).map_err(|e| format!("invalid operator nick '{nick}': {e}"))?;
        let mut st = self.lock();
        let m = self
            .add(
                &mut st,
                nick.into(),
                Protocol::Line,
                true,
                true,
                None,
                removed,
                kill,
            )
            .map_err(|_| "server is shutting down".to_string())?;
        st.operator = Some(m.id);
        Ok(m)
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        st: &mut HubState,
        nick: Arc<str>,
        protocol: Protocol,
        operator: bool,
        lobby: bool,
        sink: Option<Sink>,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<ChatMember, JoinError> {
        if st.closed {
            return Err(JoinError::Closed);
        }
        let id = st.next_id;
        st.next_id += 1;
        let out = Outbox::new(sink, self.max_queue, kill.clone());
        st.nicks.insert(nick_key(&nick), id);
        let echo = protocol.default_echo();
        let (room, rooms) = if lobby {
            let seat = Seat {
                id,
                out: out.clone(),
                protocol,
                echo,
            };
            let room = enter_room(st, LOBBY, seat, &nick);
            (room.clone(), vec![room])
        } else {
            (Arc::from(""), Vec::new())
        };
        st.members.insert(
            id,
            Member {
                nick,
                room,
                rooms,
                out: out.clone(),
                protocol,
                echo,
                operator,
                away: None,
                since: now_ms(),
                batch: false,
                removed: removed.clone(),
            },
        );
        Ok(ChatMember {
            id,
            out,
            kill,
            removed,
        })
    }

    /// Queues `ev` for one member, encoded for its protocol, to be written
    /// once the lock is released; drops the member if it is too slow.
    fn deliver(&self, st: &mut HubState, to: Id, ev: &RoomEvent) {
        let slow = match st.members.get(&to) {
            Some(m) => {
                let data = m.protocol.encode(ev);
                if data.is_empty() {
                    return;
                }
                let pushed = m.out.enqueue(std::slice::from_ref(&data));
                st.touched.push(m.out.clone());
                pushed == Pushed::TooSlow
            }
            None => return,
        };
        if slow {
            self.remove(st, to, "too slow");
        }
    }

    /// An event for member `to` alone, in its room, outside the room's sequence.
    fn reply(&self, st: &mut HubState, to: Id, kind: EventKind) {
        let Some(m) = st.members.get(&to) else {
            return;
        };
        let ev = RoomEvent {
            room: m.room.clone(),
            seq: 0,
            prev: 0,
            ts: now_ms(),
            from: m.nick.clone(),
            kind,
        };
        self.deliver(st, to, &ev);
    }

    /// Adds events to `room`'s stream (next sequence numbers), kept from
    /// `author`; returns the last one's sequence number (0 without a room).
    ///
    /// In a cluster the room log numbers a room's events: this node's go to
    /// the log and come back numbered ([`ChatHub::placed`]), and are fanned
    /// out then. Events that stay on this node (modes, styled messages,
    /// what is told about a lost node) and this node's own while the log is
    /// out of reach go out at once, unnumbered.
    fn post(
        &self,
        st: &mut HubState,
        room: &str,
        author: Option<Id>,
        events: impl IntoIterator<Item = (Arc<str>, EventKind)>,
    ) -> u64 {
        let Some(r) = st.rooms.get_mut(room) else {
            // The room's last local member just left: the other nodes
            // still hear it.
            if let (Some(link), false) = (&st.cluster, st.inbound) {
                link.publish_all(room, events);
            }
            return 0;
        };
        let ts = now_ms();
        let mut fresh = Vec::new();
        for (from, kind) in events {
            let (seq, prev) = match (&st.cluster, st.inbound) {
                (None, _) => {
                    r.seq += 1;
                    (r.seq, r.seq - 1)
                }
                (Some(_), true) => (0, 0),
                (Some(link), false) => match link.publish(&r.name, author, &from, &kind, ts) {
                    Logged::Later => continue,
                    Logged::Now => (0, 0),
                },
            };
            fresh.push(RoomEvent {
                room: r.name.clone(),
                seq,
                prev,
                ts,
                from,
                kind,
            });
        }
        let seq = r.seq;
        self.push(st, room, author, fresh);
        seq
    }

    /// Appends events to `room`'s pending batch, kept from `author`.
    fn push(&self, st: &mut HubState, room: &str, author: Option<Id>, events: Vec<RoomEvent>) {
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let mut added = 0;
        for ev in events {
            let talk = is_talk(&ev.kind);
            added += cost(&ev);
            r.pending.push(ev);
            let end = r.pending.len();
            match r.runs.last_mut() {
                Some(run) if run.author == author && run.talk == talk => run.end = end,
                _ => r.runs.push(Run { author, end, talk }),
            }
        }
        r.pending_cost += added;
        self.pending.fetch_add(added, Ordering::Relaxed);
        if !r.dirty {
            r.dirty = true;
            let name = r.name.clone();
            st.dirty.push(name);
            self.dirty.notify_one();
        }
    }

    /// An announcement: to everyone in `room` but `except`, and to the
    /// operator wherever it is.
    fn announce(
        &self,
        st: &mut HubState,
        room: &str,
        except: Option<Id>,
        from: Arc<str>,
        kind: EventKind,
    ) {
        let copy = match st.operator {
            Some(op) if Some(op) != except => st
                .members
                .get(&op)
                .is_some_and(|m| !m.rooms.iter().any(|r| &**r == room))
                .then(|| (op, from.clone(), kind.clone())),
            _ => None,
        };
        let seq = self.post(st, room, except, [(from, kind)]);
        if let Some((op, from, kind)) = copy {
            let ev = RoomEvent {
                room: room.into(),
                seq,
                prev: 0,
                ts: now_ms(),
                from,
                kind,
            };
            self.deliver(st, op, &ev);
        }
    }

    /// Takes a member out and tells the room (and the operator) why.
    fn remove(&self, st: &mut HubState, id: Id, reason: &str) {
        let Some(m) = st.members.remove(&id) else {
            return;
        };
        m.out.close();
        st.nicks.remove(&nick_key(&m.nick));
        if let (Some(link), false) = (&st.cluster, m.operator) {
            link.release(&m.nick);
        }
        if st.operator == Some(id) {
            st.operator = None;
        }
        for room in &m.rooms {
            self.leave_room(st, id, &m.nick, room);
        }
        m.removed.cancel();
        tracing::info!("{} left ({reason})", m.nick);
        let left = EventKind::Leave {
            reason: reason.to_string(),
        };
        self.announce_everywhere(st, &m.rooms, None, m.nick.clone(), left);
    }

    fn leave_room(&self, st: &mut HubState, id: Id, nick: &str, room: &str) {
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        if let Some(link) = &st.cluster {
            link.present(room, nick, false);
        }
        r.names.remove(&nick_key(nick));
        r.ops.retain(|o| *o != id);
        let list = Arc::make_mut(&mut r.members);
        if let Some(pos) = list.iter().position(|s| s.id == id) {
            let seat = list.swap_remove(pos);
            r.protocols[seat.protocol.index()] -= 1;
        }
        if list.is_empty() && room != LOBBY {
            if let Some(r) = st.rooms.remove(room) {
                st.room_keys.remove(&room_key(&r.name));
                self.pending.fetch_sub(r.pending_cost, Ordering::Relaxed);
                if let Some(link) = &st.cluster {
                    link.interest(&r.name, false);
                }
                self.room_closed(st, r.name, r.seq, r.pending);
            }
        }
    }

    /// A member leaves (quit, closed connection, idle...).
    pub fn leave(&self, id: Id, reason: &str) {
        let mut st = self.lock();
        self.remove(&mut st, id, reason);
        self.unlock(st);
    }

    /// Tells one member why its input was refused.
    pub fn refuse(&self, id: Id, refusal: Refusal) {
        let mut st = self.lock();
        self.reply(&mut st, id, EventKind::Error(refusal));
        self.unlock(st);
    }

    /// Tells one member something.
    pub fn notice(&self, id: Id, notice: Notice) {
        let mut st = self.lock();
        self.reply(&mut st, id, EventKind::Notice(notice));
        self.unlock(st);
    }

    /// Messages from member `id` to its room (blank ones are skipped): one
    /// run of events, one lock.
    pub fn say_many(&self, id: Id, texts: impl IntoIterator<Item = String>) {
        let mut st = self.lock();
        let Some(me) = st.members.get(&id) else {
            return;
        };
        let (nick, room) = (me.nick.clone(), me.room.clone());
        let events = texts
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(|text| (nick.clone(), EventKind::Message { text: clean(text) }));
        self.post(&mut st, &room, Some(id), events);
    }

    /// Waits while too much room traffic waits for fan-out, so readers go no
    /// faster than the fan-out (TCP pushes back on senders).
    pub async fn backpressure(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.pending.load(Ordering::Relaxed) <= self.pending_max {
                return;
            }
            drained.await;
        }
    }

    /// Takes every room's pending events, encodes them as batches (once per
    /// protocol in the room) and hands them to the shards; false if there
    /// were none.
    fn collect(&self) -> bool {
        let _collecting = lock_unpoisoned(&self.collecting);
        let taken = {
            let mut st = self.lock();
            let dirty = std::mem::take(&mut st.dirty);
            let mut taken = Vec::with_capacity(dirty.len());
            for name in dirty {
                let Some(r) = st.rooms.get_mut(&name) else {
                    continue;
                };
                r.dirty = false;
                if r.pending.is_empty() {
                    continue;
                }
                self.pending.fetch_sub(r.pending_cost, Ordering::Relaxed);
                let cost = std::mem::take(&mut r.pending_cost);
                let runs = std::mem::take(&mut r.runs);
                let mut skips = std::mem::take(&mut r.skips);
                skips.sort_unstable();
                let mut authors: Vec<Id> = runs.iter().filter_map(|r| r.author).collect();
                authors.sort_unstable();
                authors.dedup();
                let mut entered = std::mem::take(&mut r.entered);
                entered.sort_unstable();
                // Left and came back within the turn: the last arrival counts.
                entered.dedup_by(|later, earlier| {
                    later.0 == earlier.0 && {
                        earlier.1 = later.1;
                        true
                    }
                });
                let events = Arc::new(std::mem::take(&mut r.pending));
                // Handed over under the lock: a history read under it then
                // finds every event either pending or with the writer.
                if let Some((h, _)) = &self.history {
                    h.submit(events.clone());
                }
                taken.push(Taken {
                    events,
                    cost,
                    protocols: r.protocols,
                    runs,
                    skips,
                    authors,
                    entered,
                    roster: r.members.clone(),
                });
            }
            taken
        };
        if taken.is_empty() {
            return false;
        }
        // Encoding happens outside the hub's lock: members keep talking.
        let batches: Vec<Arc<Batch>> = taken.into_iter().map(|t| self.encode(t)).collect();
        for shard in &self.shards {
            lock_unpoisoned(&shard.queue).extend(batches.iter().cloned());
            shard.ready.notify_one();
        }
        self.drained.notify_waiters();
        true
    }

    /// One room's taken events as a batch: encoded once per protocol present
    /// in the room.
    fn encode(&self, t: Taken) -> Arc<Batch> {
        let Taken {
            events,
            cost,
            protocols,
            runs,
            skips,
            authors,
            entered,
            roster,
        } = t;
        let mut encoded: [Option<(Bytes, Vec<usize>)>; Protocol::COUNT] = Default::default();
        for p in Protocol::ALL {
            if protocols[p.index()] == 0 {
                continue;
            }
            let mut data = Vec::with_capacity(cost);
            let mut ends = Vec::with_capacity(events.len());
            p.encode_batch(&events, &mut data, &mut ends);
            encoded[p.index()] = Some((Bytes::from(data), ends));
            self.encodings.fetch_add(1, Ordering::Relaxed);
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Arc::new(Batch {
            encoded,
            runs,
            skips,
            authors,
            entered,
            roster,
        })
    }

    /// Writes shard `n`'s queued batches, then drops the members found too slow.
    fn fan_out_shard(&self, n: usize) {
        let shard = &self.shards[n];
        let mut slow = Vec::new();
        {
            let _fanning = lock_unpoisoned(&shard.fanning);
            loop {
                let Some(batch) = lock_unpoisoned(&shard.queue).pop_front() else {
                    break;
                };
                fan_out(&batch, n, self.shards.len(), &mut slow);
            }
        }
        if !slow.is_empty() {
            let mut st = self.lock();
            for id in slow {
                self.remove(&mut st, id, "too slow");
            }
            self.unlock(st);
        }
    }

    /// Fans out every room's pending lines on this thread. True if more
    /// arrived meanwhile.
    pub fn flush(&self) -> bool {
        self.collect();
        for n in 0..self.shards.len() {
            self.fan_out_shard(n);
        }
        !self.lock().dirty.is_empty()
    }

    /// The fan-out tasks, until `stop`: this one batches pending lines and
    /// writes the first shard, one more task per further shard.
    pub async fn run_flusher(self: Arc<Self>, stop: CancellationToken) {
        for n in 1..self.shards.len() {
            let (hub, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = hub.shards[n].ready.notified() => hub.fan_out_shard(n),
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        loop {
            tokio::select! {
                _ = self.dirty.notified() => {}
                _ = stop.cancelled() => return,
            }
            // Let every task that is ready now (readers of other members) add
            // its lines first: one fan-out then carries all of them.
            tokio::task::yield_now().await;
            while self.collect() {
                self.fan_out_shard(0);
                tokio::task::yield_now().await;
            }
        }
    }

    /// Carries out one command of member `id`.
    pub fn command(&self, id: Id, cmd: HubCommand) -> Flow {
        let mut st = self.lock();
        let flow = self.command_locked(&mut st, id, cmd);
        self.unlock(st);
        flow
    }

    fn command_locked(&self, st: &mut HubState, id: Id, cmd: HubCommand) -> Flow {
        let Some(m) = st.members.get(&id) else {
            return Flow::Continue;
        };
        let (tags, cmd) = match cmd {
            HubCommand::Tagged { tags, cmd } => (Some(Arc::from(tags)), *cmd),
            cmd => (None, cmd),
        };
        let me = Caller {
            id,
            nick: m.nick.clone(),
            room: m.room.clone(),
            operator: m.operator,
            tags,
        };
        let cmd = match cmd {
            HubCommand::Say(t) => HubCommand::Say(clean(t)),
            HubCommand::Action(t) => HubCommand::Action(clean(t)),
            HubCommand::Msg { to, text } => HubCommand::Msg {
                to,
                text: clean(text),
            },
            HubCommand::Quit(r) => HubCommand::Quit(clean_opt(r)),
            HubCommand::Kick { nick, reason } => HubCommand::Kick {
                nick,
                reason: clean_opt(reason),
            },
            HubCommand::KickFrom { room, nick, reason } => HubCommand::KickFrom {
                room,
                nick,
                reason: clean_opt(reason),
            },
            HubCommand::Part { room, reason } => HubCommand::Part {
                room,
                reason: clean_opt(reason),
            },
            HubCommand::SayTo { room, text, style } => HubCommand::SayTo {
                room,
                text: clean(text),
                style,
            },
            HubCommand::MsgStyled { to, text, style } => HubCommand::MsgStyled {
                to,
                text: clean(text),
                style,
            },
            HubCommand::Topic { room, text } => HubCommand::Topic {
                room,
                text: clean_opt(text),
            },
            HubCommand::Away(text) => HubCommand::Away(clean_opt(text)),
            // Nicks and room names follow their grammars (checked below),
            // which admit no control or format character.
            other => other,
        };
        match cmd {
            HubCommand::Say(text) => {
                if !text.trim().is_empty() {
                    let said = (me.nick.clone(), EventKind::Message { text });
                    self.post(st, &me.room, Some(id), [said]);
                }
            }
            HubCommand::Action(text) => {
                let did = (me.nick.clone(), EventKind::Action { text });
                self.post(st, &me.room, Some(id), [did]);
            }
            HubCommand::Nick(new) => self.rename(st, &me, &new),
            HubCommand::Who => self.who(st, &me),
            HubCommand::Rooms => self.list_rooms(st, &me),
            HubCommand::Msg { to, text } => self.private(st, &me, &to, text),
            HubCommand::Join(room) => self.move_to(st, &me, &room),
            HubCommand::Quit(reason) => {
                return Flow::Quit(match reason {
                    Some(r) => format!("quit: {r}"),
                    None => "quit".to_string(),
                });
            }
            HubCommand::Help => {
                let help = Notice::Help {
                    operator: me.operator,
                };
                self.reply(st, id, EventKind::Notice(help));
            }
            HubCommand::Kick { nick, reason } => self.kick(st, &me, &nick, reason),
            HubCommand::History(n) => self.show_history(st, id, &me.room, n),
            HubCommand::Resume { room, epoch, after } => self.resume(st, id, &room, &epoch, after),
            HubCommand::Cursors => self.cursors(st, id),
            HubCommand::Enter(room) => self.enter(st, &me, &room),
            HubCommand::Part { room, reason } => self.part(st, &me, &room, reason),
            HubCommand::PartAll => self.part_all(st, &me),
            HubCommand::SayTo { room, text, style } => self.say_to(st, &me, &room, text, style),
            HubCommand::MsgStyled { to, text, style } => {
                self.private_styled(st, &me, &to, text, style)
            }
            HubCommand::Topic { room, text } => self.topic(st, &me, &room, text),
            HubCommand::Mode { room, change } => self.mode(st, &me, &room, change),
            HubCommand::KickFrom { room, nick, reason } => {
                self.kick_from(st, &me, &room, &nick, reason)
            }
            HubCommand::Away(text) => self.away(st, &me, text),
            HubCommand::TagsOnly { room, to, tags } => {
                self.tags_only(st, &me, room.as_deref(), &to, tags.into())
            }
            // Unwrapped above: tags on tags are dropped.
            HubCommand::Tagged { .. } => {}
        }
        Flow::Continue
    }

    fn error(&self, st: &mut HubState, id: Id, refusal: Refusal) {
        self.reply(st, id, EventKind::Error(refusal));
    }

    /// Nick changes.
    fn rename(&self, st: &mut HubState, me: &Caller, new: &str) {
        let id = me.id;
        let key = nick_key(new);
        if let Err(e) = check_nick(new) {
            return self.error(st, id, Refusal::BadNick(e));
        }
        if new == &*me.nick {
            return self.error(st, id, Refusal::AlreadyNick(new.to_string()));
        }
        let taken = st.nicks.get(&key).is_some_and(|other| *other != id)
            || (!me.operator && st.reserved.as_deref() == Some(key.as_str()));
        if taken {
            return self.error(st, id, Refusal::NickTaken(new.to_string()));
        }
        match &st.cluster {
            // The cluster's bucket decides; `nick_claimed` carries on.
            Some(link) if !me.operator => link.claim(id, new, false),
            _ => self.rename_now(st, me, new),
        }
    }

    /// A nick change the nick registry has granted.
    fn rename_now(&self, st: &mut HubState, me: &Caller, new: &str) {
        let id = me.id;
        let key = nick_key(new);
        if st.nicks.get(&key).is_some_and(|other| *other != id) {
            return self.error(st, id, Refusal::NickTaken(new.to_string()));
        }
        let new: Arc<str> = new.into();
        st.nicks.remove(&nick_key(&me.nick));
        st.nicks.insert(key.clone(), id);
        let rooms = st
            .members
            .get(&id)
            .map(|m| m.rooms.clone())
            .unwrap_or_default();
        for room in &rooms {
            if let Some(r) = st.rooms.get_mut(room) {
                r.names.remove(&nick_key(&me.nick));
                r.names.insert(key.clone(), new.to_string());
            }
            if let Some(link) = &st.cluster {
                link.present(room, &me.nick, false);
                link.present(room, &new, true);
            }
        }
        if let (Some(link), false) = (&st.cluster, me.operator) {
            link.release(&me.nick);
        }
        if let Some(m) = st.members.get_mut(&id) {
            m.nick = new.clone();
        }
        tracing::info!("{} is now {new}", me.nick);
        let renamed = EventKind::Nick { new };
        // The member's own copy carries the number the room's will get.
        let seq = st.rooms.get(&me.room).map_or(0, |r| r.seq + 1);
        let ev = RoomEvent {
            room: me.room.clone(),
            seq,
            prev: 0,
            ts: now_ms(),
            from: me.nick.clone(),
            kind: renamed.clone(),
        };
        // A member whose protocol echoes its own events gets the room's copy.
        let echoes = st.members.get(&id).is_some_and(|m| m.echo == Echo::All);
        if !echoes || rooms.is_empty() {
            self.deliver(st, id, &ev);
        }
        self.announce_everywhere(st, &rooms, Some(id), me.nick.clone(), renamed);
    }

    /// `who`: the first [`MAX_LISTED`] nicks of the room, from its sorted
    /// index, so the cost is what is listed, not the room's size.
    fn who(&self, st: &mut HubState, me: &Caller) {
        if let Some(link) = st.cluster.clone() {
            let who = self.who_cluster(st, &link, me);
            return self.reply(st, me.id, EventKind::Notice(who));
        }
        let (total, nicks) = st.rooms.get(&me.room).map_or((0, Vec::new()), |r| {
            (
                r.names.len(),
                r.names.values().take(MAX_LISTED).cloned().collect(),
            )
        });
        let who = Notice::Who {
            room: me.room.clone(),
            total,
            nicks,
        };
        self.reply(st, me.id, EventKind::Notice(who));
    }

    /// `rooms`.
    fn list_rooms(&self, st: &mut HubState, me: &Caller) {
        let mut rooms: Vec<(String, usize)> = st
            .rooms
            .iter()
            .map(|(name, r)| (name.to_string(), r.members.len()))
            .collect();
        rooms.sort_unstable();
        let total = rooms.len();
        rooms.truncate(MAX_LISTED);
        let listed = Notice::Rooms { total, rooms };
        self.reply(st, me.id, EventKind::Notice(listed));
    }

    /// A private message.
    fn private(&self, st: &mut HubState, me: &Caller, to: &str, text: String) {
        match st.nicks.get(&nick_key(to)).copied() {
            Some(target) if target != me.id => {
                let Some(target_nick) = st.members.get(&target).map(|m| m.nick.clone()) else {
                    return;
                };
                let mut ev = RoomEvent {
                    room: me.room.clone(),
                    seq: 0,
                    prev: 0,
                    ts: now_ms(),
                    from: me.nick.clone(),
                    kind: me.tag(EventKind::Private {
                        to: target_nick,
                        text,
                        echo: false,
                    }),
                };
                self.deliver(st, target, &ev);
                if let Some((h, _)) = &self.history {
                    h.submit_private(ev.clone());
                }
                if let EventKind::Private { echo, .. } = ev.kind.untagged_mut() {
                    *echo = true;
                }
                if wants_own_private(st, me.id) {
                    self.deliver(st, me.id, &ev);
                }
            }
            Some(_) => self.error(st, me.id, Refusal::ThatIsYou),
            None => match &st.cluster {
                Some(link) => link.private(me.id, me.nick.clone(), me.room.clone(), to, text),
                None => self.error(st, me.id, Refusal::NoSuchNick(to.to_string())),
            },
        }
    }

    /// Moves a member to another room.
    fn move_to(&self, st: &mut HubState, me: &Caller, new_room: &str) {
        let (id, nick, room) = (me.id, me.nick.clone(), me.room.clone());
        if let Err(e) = check_room(new_room) {
            return self.error(st, id, Refusal::BadRoom(e));
        }
        let new_room = &*resolve_room(st, new_room);
        if new_room == &*room {
            return self.error(st, id, Refusal::AlreadyIn(room.to_string()));
        }
        let rooms = st
            .members
            .get(&id)
            .map(|m| m.rooms.clone())
            .unwrap_or_default();
        for r in &rooms {
            self.leave_room(st, id, &nick, r);
        }
        let Some(seat) = seat_of(st, id) else {
            return;
        };
        let entered = enter_room(st, new_room, seat, &nick);
        if let Some(m) = st.members.get_mut(&id) {
            m.room = entered.clone();
            m.rooms = vec![entered.clone()];
        }
        let left = EventKind::Part {
            reason: format!("moved to {new_room}"),
        };
        self.announce(st, &room, None, nick.clone(), left);
        let others = st.rooms.get(new_room).map_or(0, |r| r.members.len()) - 1;
        let moved = Notice::Moved {
            room: entered.clone(),
            others,
        };
        self.reply(st, id, EventKind::Notice(moved));
        self.replay(st, id, &entered);
        self.announce(st, &entered, Some(id), nick, EventKind::Join);
    }

    /// Kicks, for the operator.
    fn kick(&self, st: &mut HubState, me: &Caller, target: &str, reason: Option<String>) {
        if !me.operator {
            return self.error(st, me.id, Refusal::NotOperator);
        }
        match st.nicks.get(&nick_key(target)).copied() {
            Some(t) if t != me.id => {
                let why = match &reason {
                    Some(r) => format!("kicked by {}: {r}", me.nick),
                    None => format!("kicked by {}", me.nick),
                };
                let kicked = Refusal::Kicked {
                    by: me.nick.clone(),
                    reason,
                };
                self.error(st, t, kicked);
                self.remove(st, t, &why);
            }
            Some(_) => self.error(st, me.id, Refusal::ThatIsYou),
            None => match &st.cluster {
                Some(link) => link.kick(me.id, me.nick.clone(), target, reason),
                None => self.error(st, me.id, Refusal::NoSuchNick(target.to_string())),
            },
        }
    }

    /// Tells everyone the server is stopping, removes every member and
    /// refuses new ones.
    pub fn shutdown(&self) {
        while self.flush() {}
        let mut st = self.lock();
        st.closed = true;
        let members: Vec<Member> = st.members.drain().map(|(_, m)| m).collect();
        let mut encoded: [Option<Bytes>; Protocol::COUNT] = Default::default();
        for m in &members {
            let data = encoded[m.protocol.index()].get_or_insert_with(|| {
                let ev = RoomEvent {
                    room: m.room.clone(),
                    seq: 0,
                    prev: 0,
                    ts: now_ms(),
                    from: Arc::from(""),
                    kind: EventKind::Notice(Notice::ShuttingDown),
                };
                m.protocol.encode(&ev)
            });
            let _ = m.out.enqueue(std::slice::from_ref(data));
            m.out.close();
            m.removed.cancel();
            st.touched.push(m.out.clone());
        }
        st.rooms.clear();
        st.room_keys.clear();
        st.dirty.clear();
        st.nicks.clear();
        st.operator = None;
        self.pending.store(0, Ordering::Relaxed);
        self.unlock(st);
        drop(members);
        self.drained.notify_waiters();
        if let Some((h, _)) = &self.history {
            h.close();
        }
        let s = self.stats();
        tracing::debug!(
            "fan-out: {} batches, {} events, {} encodings",
            s.batches,
            s.events,
            s.encodings
        );
    }
}

/// Seats a member in `room` (created if need be); returns the room's name.
fn enter_room(st: &mut HubState, room: &str, seat: Seat, nick: &str) -> Arc<str> {
    let r = match st.rooms.get_mut(room) {
        Some(r) => r,
        None => {
            let name: Arc<str> = room.into();
            let seq = st.seqs.get(room).copied().unwrap_or(0);
            if let Some(link) = &st.cluster {
                link.interest(&name, true);
            }
            st.room_keys.insert(room_key(room), name.clone());
            // The first member of a new room is its operator; the lobby
            // has only the server's.
            let ops = if room == LOBBY {
                Vec::new()
            } else {
                vec![seat.id]
            };
            st.rooms.entry(name.clone()).or_insert_with(|| Room {
                name,
                topic_lock: true,
                no_outside: true,
                ops,
                seq,
                ..Room::default()
            })
        }
    };
    if !r.pending.is_empty() {
        r.entered.push((seat.id, r.pending.len()));
    }
    r.protocols[seat.protocol.index()] += 1;
    Arc::make_mut(&mut r.members).push(seat);
    r.names.insert(nick_key(nick), nick.to_string());
    if let Some(link) = &st.cluster {
        link.present(&r.name, nick, true);
    }
    r.name.clone()
}

/// Fan-out shards: one per thread the machine runs at once, at most four.
fn fan_out_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Pushes one room's batch to the members of shard `n` of `shards`, each in
/// its protocol's encoding, minus the events each of them wrote (unless it
/// wants them back) and those it gets through another room.
fn fan_out(b: &Batch, n: usize, shards: usize, slow: &mut Vec<Id>) {
    let mut parts = Vec::new();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for seat in b.roster.iter() {
        let id = seat.id;
        if id as usize % shards != n {
            continue;
        }
        let Some((data, ends)) = &b.encoded[seat.protocol.index()] else {
            continue;
        };
        let since = b
            .entered
            .binary_search_by_key(&id, |e| e.0)
            .map_or(0, |i| b.entered[i].1);
        let skip_at = b.skips.partition_point(|s| s.0 < id);
        let skips = &b.skips[skip_at..b.skips[skip_at..].partition_point(|s| s.0 == id) + skip_at];
        let all_own = seat.echo == Echo::All || b.authors.binary_search(&id).is_err();
        let pushed = if since == 0 && all_own && skips.is_empty() {
            if data.is_empty() {
                continue;
            }
            seat.out.push(std::slice::from_ref(data))
        } else {
            // Where event `i` starts in this encoding.
            let at = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
            // Everything from its arrival on but the runs it wrote (unless
            // they come back to it) and its skips, neighbours as one slice.
            ranges.clear();
            let mut start = 0;
            for run in &b.runs {
                let lo = start.max(since);
                let own = run.author == Some(id)
                    && match seat.echo {
                        Echo::All => false,
                        Echo::Talk => !run.talk,
                        Echo::None => true,
                    };
                if !own && lo < run.end {
                    match ranges.last_mut() {
                        Some(last) if last.1 == lo => last.1 = run.end,
                        _ => ranges.push((lo, run.end)),
                    }
                }
                start = run.end;
            }
            for &(_, i) in skips {
                if let Some(k) = ranges.iter().position(|r| r.0 <= i && i < r.1) {
                    let (lo, hi) = ranges[k];
                    ranges[k] = (i + 1, hi);
                    if lo < i {
                        ranges.insert(k, (lo, i));
                    }
                }
            }
            parts.clear();
            parts.extend(
                ranges
                    .iter()
                    .filter(|r| r.0 < r.1)
                    .map(|&(lo, hi)| data.slice(at(lo)..at(hi)))
                    .filter(|p| !p.is_empty()),
            );
            if parts.is_empty() {
                continue;
            }
            seat.out.push(&parts)
        };
        if pushed == Pushed::TooSlow {
            slow.push(id);
        }
    }
}

/// Whether an event is talk (what [`Echo::Talk`] sends back).
fn is_talk(kind: &EventKind) -> bool {
    matches!(
        kind.untagged(),
        EventKind::Message { .. } | EventKind::Action { .. } | EventKind::Styled { .. }
    )
}

/// Rooms are unique ignoring ASCII case.
fn room_key(room: &str) -> String {
    room.to_ascii_lowercase()
}

/// The name of the existing room `room` means (ignoring case), or `room`.
fn resolve_room(st: &HubState, room: &str) -> Arc<str> {
    if st.rooms.contains_key(room) {
        return room.into();
    }
    st.room_keys
        .get(&room_key(room))
        .cloned()
        .unwrap_or_else(|| room.into())
}

/// A member's seat, for entering a room.
fn seat_of(st: &HubState, id: Id) -> Option<Seat> {
    st.members.get(&id).map(|m| Seat {
        id,
        out: m.out.clone(),
        protocol: m.protocol,
        echo: m.echo,
    })
}

/// Whether the sender of a private message gets its copy: always in the
/// line and web protocols (they show it as sent), with IRC only when it
/// asked for its talk back.
fn wants_own_private(st: &HubState, id: Id) -> bool {
    st.members
        .get(&id)
        .is_some_and(|m| m.echo != Echo::None || !m.protocol.is_irc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(hub: &ChatHub) -> ChatMember {
        joined(hub, Protocol::Line)
    }

    fn joined(hub: &ChatHub, p: Protocol) -> ChatMember {
        hub.join(p, None, CancellationToken::new(), CancellationToken::new())
            .unwrap()
    }

    /// One line from a line-protocol member.
    fn input(hub: &ChatHub, id: Id, line: &str) -> Flow {
        crate::chat::front::line::input(hub, id, line)
    }

    /// Fans out what is pending, then takes everything queued for `m`.
    fn drain(hub: &ChatHub, m: &ChatMember) -> String {
        while hub.flush() {}
        let mut s = String::new();
        while let Some(b) = m.out.try_take() {
            s.push_str(std::str::from_utf8(&b).unwrap());
        }
        s
    }

    /// As `drain`, for a web member: the payloads of its (unmasked, short)
    /// text frames, one per line.
    fn drain_web(hub: &ChatHub, m: &ChatMember) -> String {
        while hub.flush() {}
        let mut raw = Vec::new();
        while let Some(b) = m.out.try_take() {
            raw.extend_from_slice(&b);
        }
        let mut s = String::new();
        let mut at = 0;
        while at < raw.len() {
            assert_eq!(raw[at], 0x81, "a text frame");
            let (len, head) = match raw[at + 1] {
                126 => (u16::from_be_bytes([raw[at + 2], raw[at + 3]]) as usize, 4),
                n => (n as usize, 2),
            };
            s.push_str(std::str::from_utf8(&raw[at + head..at + head + len]).unwrap());
            s.push('\n');
            at += head + len;
        }
        s
    }

    #[test]
    fn messages_reach_the_room_but_not_the_sender() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        assert!(drain(&hub, &a).contains("* guest2 joined lobby"));
        assert!(drain(&hub, &b).starts_with("* welcome, you are guest2"));
        assert_eq!(input(&hub, a.id, "hello"), Flow::Continue);
        assert_eq!(drain(&hub, &b), "<guest1> hello\n");
        assert_eq!(drain(&hub, &a), "");
    }

    #[test]
    fn nicks_are_unique_case_insensitively() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        drain(&hub, &b);
        input(&hub, a.id, "/nick Alice");
        drain(&hub, &a);
        assert_eq!(drain(&hub, &b), "* guest1 is now Alice\n");
        input(&hub, b.id, "/nick alice");
        assert_eq!(drain(&hub, &b), "! the nick alice is taken\n");
        input(&hub, b.id, "/nick <alice>");
        assert!(drain(&hub, &b).starts_with("! cannot use that nick"));
    }

    #[test]
    fn rooms_isolate_and_private_messages_reach_one() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        let c = member(&hub);
        input(&hub, c.id, "/join games");
        drain(&hub, &a);
        drain(&hub, &b);
        drain(&hub, &c);
        input(&hub, a.id, "lobby only");
        assert_eq!(drain(&hub, &c), "");
        assert_eq!(drain(&hub, &b), "<guest1> lobby only\n");
        input(&hub, a.id, "/msg GUEST3 psst");
        assert_eq!(drain(&hub, &c), "*guest1* psst\n");
        assert_eq!(drain(&hub, &a), "-> *guest3* psst\n");
        assert_eq!(drain(&hub, &b), "");
    }

    #[test]
    fn a_member_over_its_queue_cap_is_dropped_and_announced() {
        let hub = ChatHub::new(300);
        let slow = member(&hub);
        let ok = member(&hub);
        drain(&hub, &ok);
        for i in 0..20 {
            input(&hub, ok.id, &format!("message {i}"));
            while hub.flush() {}
        }
        assert!(slow.kill.is_cancelled());
        assert!(slow.removed.is_cancelled());
        assert_eq!(drain(&hub, &ok), "* guest1 left (too slow)\n");
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn one_fan_out_carries_every_sender_minus_their_own_lines() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        let c = member(&hub);
        drain(&hub, &a);
        drain(&hub, &b);
        drain(&hub, &c);
        hub.say_many(a.id, ["a1".into(), "a2".into()]);
        hub.say_many(b.id, ["b1".into()]);
        hub.say_many(a.id, ["a3".into()]);
        input(&hub, c.id, "/me waves");
        assert!(!hub.flush(), "one fan-out takes everything pending");
        let take_all = |m: &ChatMember| {
            let mut parts = Vec::new();
            while let Some(p) = m.out.try_take() {
                parts.push(String::from_utf8(p.to_vec()).unwrap());
            }
            parts
        };
        assert_eq!(take_all(&a), ["<guest2> b1\n+ guest3 waves\n"]);
        assert_eq!(
            take_all(&b),
            ["<guest1> a1\n<guest1> a2\n<guest1> a3\n+ guest3 waves\n"]
        );
        assert_eq!(
            take_all(&c),
            ["<guest1> a1\n<guest1> a2\n<guest2> b1\n<guest1> a3\n"]
        );
    }

    #[test]
    fn a_newcomer_gets_only_what_was_said_after_it_came() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        hub.say_many(a.id, ["before".into()]);
        let b = member(&hub);
        hub.say_many(a.id, ["after".into()]);
        let text = drain(&hub, &b);
        assert!(text.starts_with("* welcome, you are guest2"), "{text}");
        assert!(text.ends_with("\n<guest1> after\n"), "{text}");
        assert!(
            !text.contains("before") && !text.contains("guest1 joined"),
            "{text}"
        );
    }

    #[test]
    fn kick_is_for_the_operator() {
        let hub = ChatHub::new(1 << 20);
        let op = hub
            .join_operator("server", CancellationToken::new(), CancellationToken::new())
            .unwrap();
        let a = member(&hub);
        drain(&hub, &a);
        drain(&hub, &op);
        input(&hub, a.id, "/kick server");
        assert_eq!(drain(&hub, &a), "! /kick is for the server operator\n");
        input(&hub, op.id, "/kick guest1 spam");
        assert_eq!(drain(&hub, &a), "! you were kicked by server: spam\n");
        assert!(a.removed.is_cancelled());
        assert_eq!(drain(&hub, &op), "* guest1 left (kicked by server: spam)\n");
    }

    /// Runs the fan-out without sockets and keeps the events it carried.
    fn pending_events(hub: &ChatHub, room: &str) -> Vec<RoomEvent> {
        hub.lock()
            .rooms
            .get(room)
            .map(|r| r.pending.clone())
            .unwrap_or_default()
    }

    #[test]
    fn room_events_are_numbered_per_room_and_stamped() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        let c = member(&hub);
        input(&hub, c.id, "/join games");
        let t0 = now_ms();
        hub.say_many(a.id, ["one".into(), "two".into()]);
        input(&hub, b.id, "/me waves");
        input(&hub, c.id, "in games");
        let lobby = pending_events(&hub, LOBBY);
        let seqs: Vec<u64> = lobby.iter().map(|e| e.seq).collect();
        // guest1 and guest2 joined, guest3 joined then moved, then three lines.
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let last: Vec<_> = lobby[lobby.len() - 3..].iter().map(|e| &e.kind).collect();
        assert_eq!(
            last,
            [
                &EventKind::Message { text: "one".into() },
                &EventKind::Message { text: "two".into() },
                &EventKind::Action {
                    text: "waves".into()
                },
            ]
        );
        assert!(lobby.iter().all(|e| &*e.room == LOBBY));
        assert!(lobby
            .iter()
            .all(|e| e.ts >= t0.saturating_sub(60_000) && e.ts <= now_ms()));
        let games = pending_events(&hub, "games");
        assert_eq!(games.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(games[0].kind, EventKind::Join);
        assert_eq!(&*games[1].from, "guest3");
        // Fan-out does not renumber: the next lobby event goes on from there.
        while hub.flush() {}
        hub.say_many(a.id, ["three".into()]);
        assert_eq!(
            pending_events(&hub, LOBBY)[0].seq,
            *seqs.last().unwrap() + 1
        );
    }

    #[test]
    fn a_batch_is_encoded_once_per_protocol_in_the_room() {
        let hub = ChatHub::new(1 << 20);
        let lines: Vec<_> = (0..3).map(|_| member(&hub)).collect();
        while hub.flush() {}
        let before = hub.stats();
        for m in &lines {
            hub.say_many(m.id, ["hi".into()]);
        }
        while hub.flush() {}
        let one = hub.stats();
        assert_eq!(one.batches - before.batches, 1);
        assert_eq!(
            one.encodings - before.encodings,
            1,
            "line only: one encoding"
        );

        let webs: Vec<_> = (0..2).map(|_| joined(&hub, Protocol::Web)).collect();
        while hub.flush() {}
        for m in &lines {
            drain(&hub, m);
        }
        for m in &webs {
            drain_web(&hub, m);
        }
        let before = hub.stats();
        hub.say_many(lines[0].id, ["from a line client".into()]);
        hub.say_many(webs[0].id, ["from a web client".into()]);
        while hub.flush() {}
        let two = hub.stats();
        assert_eq!(two.batches - before.batches, 1);
        assert_eq!(two.encodings - before.encodings, 2, "line and web: two");
        // Each gets its protocol's bytes, minus its own lines.
        assert_eq!(
            drain(&hub, &lines[1]),
            "<guest1> from a line client\n<guest4> from a web client\n"
        );
        assert_eq!(drain(&hub, &lines[0]), "<guest4> from a web client\n");
        let web = drain_web(&hub, &webs[1]);
        assert_eq!(web.lines().count(), 2, "{web}");
        assert!(web.contains(r#""text":"from a line client""#), "{web}");
        // Web members see their own messages come back (the page shows them
        // from the room's stream).
        let own = drain_web(&hub, &webs[0]);
        assert!(
            own.contains("from a line client") && own.contains("from a web client"),
            "{own}"
        );
        // A room with web members only needs the web encoding.
        input(&hub, webs[0].id, "/join web");
        input(&hub, webs[1].id, "/join web");
        while hub.flush() {}
        let before = hub.stats();
        hub.say_many(webs[0].id, ["just us".into()]);
        while hub.flush() {}
        assert_eq!(hub.stats().encodings - before.encodings, 1);
    }

    #[test]
    fn the_hub_sanitizes_text_whatever_the_protocol() {
        let hub = ChatHub::new(1 << 20);
        let line = member(&hub);
        let web = joined(&hub, Protocol::Web);
        while hub.flush() {}
        drain(&hub, &line);
        drain_web(&hub, &web);
        hub.command(web.id, HubCommand::Say("\x1b[31mred \u{202e}evil".into()));
        hub.command(web.id, HubCommand::Action("\x07waves".into()));
        let got = drain(&hub, &line);
        assert_eq!(got, "<guest2> ^[[31mred <U+202E>evil\n+ guest2 ^Gwaves\n");
        let echo = drain_web(&hub, &web);
        assert!(
            echo.contains(r#""text":"^[[31mred <U+202E>evil""#),
            "{echo}"
        );
    }

    #[test]
    fn nicks_follow_the_shared_grammar_and_ascii_case() {
        let hub = ChatHub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        drain(&hub, &a);
        for bad in ["a.b", "1abc", "-x", "a!b", "a@b", "#a", "a:b", "a,b"] {
            input(&hub, a.id, &format!("/nick {bad}"));
            let got = drain(&hub, &a);
            assert!(got.starts_with("! cannot use that nick: "), "{bad}: {got}");
        }
        input(&hub, a.id, "/nick [Bot]^");
        assert_eq!(drain(&hub, &a), "* guest1 is now [Bot]^\n");
        drain(&hub, &b);
        input(&hub, b.id, "/nick [bot]^");
        assert_eq!(drain(&hub, &b), "! the nick [bot]^ is taken\n");
        // ascii casemapping: `{` is not `[`.
        input(&hub, b.id, "/nick {bot}^");
        assert_eq!(drain(&hub, &b), "* guest2 is now {bot}^\n");
        input(&hub, b.id, "/msg [BOT]^ hi");
        assert_eq!(drain(&hub, &a), "* guest2 is now {bot}^\n*{bot}^* hi\n");
    }
}
