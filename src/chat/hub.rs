//! The chat hub: members, nicks, rooms, and fan-out.
//!
//! Room traffic is batched: a line for a room is appended to the room's
//! pending buffer (formatted once), and the hub's flusher task fans the whole
//! buffer out once the runtime has run every other ready task, so each member
//! gets one write for everything its room said in that turn instead of one
//! per line or per sender. A member never receives its own lines: the buffer
//! remembers which runs each member wrote and hands that member the rest.
//! Fan-out never waits on a peer: [`Outbox::push`] writes without blocking or
//! queues, and a member whose queue passes the cap is dropped as too slow.
//! Replies meant for one member (welcome, errors, `/who`, private messages)
//! are pushed at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::outbox::{Outbox, Pushed, Sink};
use super::protocol::{
    check_name, parse, Input, ServerLine, HELP_LINES, MAX_LISTED, OPERATOR_HELP,
};

/// Identifies a member for its lifetime.
pub type Id = u64;

/// The room everyone starts in.
pub const LOBBY: &str = "lobby";

/// Most bytes waiting for fan-out (all rooms) before readers pause, as a
/// share of the per-member queue cap: one turn's fan-out can then never push
/// a member with a full socket far toward its cap.
const PENDING_SHARE: usize = 4;

/// Bounds of that limit.
const PENDING_MIN: usize = 4 * 1024;
const PENDING_MAX: usize = 256 * 1024;

#[derive(Debug)]
struct Member {
    nick: String,
    room: String,
    out: Arc<Outbox>,
    operator: bool,
    /// Cancelled when the member is removed (kick, shutdown): stop reading,
    /// flush what is queued, close.
    removed: CancellationToken,
}

/// The members of a room, shared with a fan-out in progress (copied on
/// write while one holds it).
type Roster = Arc<Vec<(Id, Arc<Outbox>)>>;

#[derive(Debug, Default)]
struct Room {
    members: Roster,
    /// Lower-cased nick -> nick, kept sorted so `/who` costs what it lists.
    names: BTreeMap<String, String>,
    /// Lines waiting for fan-out.
    pending: Vec<u8>,
    /// `pending` in runs: who wrote it (kept from that member), and where it ends.
    runs: Vec<(Option<Id>, usize)>,
    /// Members who came in while lines were pending, and how much of
    /// `pending` predates them (not theirs to receive).
    entered: Vec<(Id, usize)>,
    /// Listed in `State::dirty`.
    dirty: bool,
}

#[derive(Debug, Default)]
struct State {
    members: HashMap<Id, Member>,
    /// Lower-cased nick -> member.
    nicks: HashMap<String, Id>,
    rooms: HashMap<String, Room>,
    /// Rooms with pending lines, in the order they got them.
    dirty: Vec<String>,
    operator: Option<Id>,
    /// The operator's nick (lower-cased), never free for anyone else, with
    /// or without a console.
    reserved: Option<String>,
    /// Outboxes given lines while the lock was held; written once it is not.
    touched: Vec<Arc<Outbox>>,
    next_id: Id,
    next_guest: u64,
    closed: bool,
}

/// The hub.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    max_queue: usize,
    /// Bytes in every room's pending buffer.
    pending: AtomicUsize,
    pending_max: usize,
    /// Woken when a room gets pending lines (the flusher waits on it).
    dirty: Notify,
    /// Woken after a fan-out took pending lines (readers over the limit wait on it).
    drained: Notify,
    /// The fan-out is split among these by member id, so a big room's writes
    /// run on several threads while each member still gets batches in order.
    shards: Vec<Shard>,
}

/// One share of the fan-out: batches not yet written to its members.
#[derive(Debug, Default)]
struct Shard {
    queue: Mutex<std::collections::VecDeque<Arc<Batch>>>,
    /// Held while writing batches, so one shard's batches never interleave.
    fanning: Mutex<()>,
    ready: Notify,
}

/// A member's end of the hub.
#[derive(Debug)]
pub struct Membership {
    /// The member's id.
    pub id: Id,
    /// Lines to send to the member (what the socket did not take at once).
    pub out: Arc<Outbox>,
    /// Cancelled when the member fell too far behind.
    pub kill: CancellationToken,
    /// Cancelled when the member was removed (kicked, server shutting down).
    pub removed: CancellationToken,
}

/// The member a command came from, as it was when the command arrived.
struct Caller {
    id: Id,
    nick: String,
    room: String,
    operator: bool,
}

/// What a session should do after an input line.
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

fn line(text: impl Into<String>) -> Bytes {
    let mut s = text.into();
    s.push('\n');
    Bytes::from(s)
}

/// One room's lines for one fan-out.
#[derive(Debug)]
struct Batch {
    data: Bytes,
    runs: Vec<(Option<Id>, usize)>,
    /// The members who wrote runs, sorted.
    authors: Vec<Id>,
    /// Members who came in after the first bytes, sorted, and where theirs start.
    entered: Vec<(Id, usize)>,
    roster: Roster,
}

impl Hub {
    /// A hub whose members may each have `max_queue` bytes waiting.
    pub fn new(max_queue: usize) -> Arc<Self> {
        Arc::new(Hub {
            state: Mutex::new(State {
                next_id: 1,
                next_guest: 1,
                ..State::default()
            }),
            max_queue,
            pending: AtomicUsize::new(0),
            pending_max: (max_queue / PENDING_SHARE).clamp(PENDING_MIN, PENDING_MAX),
            dirty: Notify::new(),
            drained: Notify::new(),
            shards: (0..fan_out_threads()).map(|_| Shard::default()).collect(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Releases the hub's lock, then writes the lines queued under it: no
    /// socket call is made while the hub is locked. Each member's lines were
    /// queued in order under the lock, and are written from its queue's head.
    fn unlock(&self, mut st: MutexGuard<'_, State>) {
        let touched = std::mem::take(&mut st.touched);
        drop(st);
        for out in touched {
            out.send_queued();
        }
    }

    /// Keeps `nick` (the operator's) from clients, whether or not the
    /// operator is present.
    pub fn reserve_nick(&self, nick: &str) {
        self.lock().reserved = Some(nick.to_ascii_lowercase());
    }

    /// Number of members (the operator included).
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The nick of a member, if still present.
    pub fn nick(&self, id: Id) -> Option<String> {
        self.lock().members.get(&id).map(|m| m.nick.clone())
    }

    /// Adds a client as `guestN` in the lobby, welcomes it and announces it.
    /// `sink` is the client's socket when the fan-out may write to it directly.
    pub fn join(
        &self,
        sink: Option<Sink>,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<Membership, JoinError> {
        let mut st = self.lock();
        let nick = loop {
            let n = format!("guest{}", st.next_guest);
            st.next_guest += 1;
            if !st.nicks.contains_key(&n) && st.reserved.as_deref() != Some(n.as_str()) {
                break n;
            }
        };
        let m = self.add(&mut st, nick.clone(), false, sink, removed, kill)?;
        let others = st.rooms.get(LOBBY).map_or(0, |r| r.members.len()) - 1;
        let welcome = ServerLine::Welcome {
            nick: &nick,
            room: LOBBY,
            others,
        };
        self.deliver(&mut st, m.id, welcome.to_bytes());
        let joined = ServerLine::Joined {
            nick: &nick,
            room: LOBBY,
        };
        self.announce(&mut st, LOBBY, Some(m.id), &joined.to_string());
        self.unlock(st);
        Ok(m)
    }

    /// Adds the server's operator (the console) under `nick`.
    pub fn join_operator(
        &self,
        nick: &str,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<Membership, String> {
        check_name(nick).map_err(|e| format!("invalid operator nick '{nick}': {e}"))?;
        let mut st = self.lock();
        let m = self
            .add(&mut st, nick.to_string(), true, None, removed, kill)
            .map_err(|_| "server is shutting down".to_string())?;
        st.operator = Some(m.id);
        Ok(m)
    }

    fn add(
        &self,
        st: &mut State,
        nick: String,
        operator: bool,
        sink: Option<Sink>,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<Membership, JoinError> {
        if st.closed {
            return Err(JoinError::Closed);
        }
        let id = st.next_id;
        st.next_id += 1;
        let out = Outbox::new(sink, self.max_queue, kill.clone());
        st.nicks.insert(nick.to_ascii_lowercase(), id);
        enter_room(st, LOBBY, id, &nick, out.clone());
        st.members.insert(
            id,
            Member {
                nick,
                room: LOBBY.to_string(),
                out: out.clone(),
                operator,
                removed: removed.clone(),
            },
        );
        Ok(Membership {
            id,
            out,
            kill,
            removed,
        })
    }

    /// Queues `data` for one member, to be written once the lock is
    /// released; drops the member if it is too slow.
    fn deliver(&self, st: &mut State, to: Id, data: Bytes) {
        let slow = match st.members.get(&to) {
            Some(m) => {
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

    /// Queues `text` (a line without its newline) for `room`, kept from `author`.
    fn post(
        &self,
        st: &mut State,
        room: &str,
        author: Option<Id>,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        let before = r.pending.len();
        write(&mut r.pending);
        let added = r.pending.len() - before;
        if added == 0 {
            return;
        }
        match r.runs.last_mut() {
            Some((who, end)) if *who == author => *end = r.pending.len(),
            _ => r.runs.push((author, r.pending.len())),
        }
        self.pending.fetch_add(added, Ordering::Relaxed);
        if !r.dirty {
            r.dirty = true;
            st.dirty.push(room.to_string());
            self.dirty.notify_one();
        }
    }

    /// An announcement: to everyone in `room` but `except`, and to the
    /// operator wherever it is.
    fn announce(&self, st: &mut State, room: &str, except: Option<Id>, text: &str) {
        self.post(st, room, except, |buf| {
            buf.extend_from_slice(text.as_bytes());
            buf.push(b'\n');
        });
        if let Some(op) = st.operator {
            let elsewhere = st.members.get(&op).is_some_and(|m| m.room != room);
            if elsewhere && Some(op) != except {
                self.deliver(st, op, line(text));
            }
        }
    }

    /// Takes a member out and tells the room (and the operator) why.
    fn remove(&self, st: &mut State, id: Id, reason: &str) {
        let Some(m) = st.members.remove(&id) else {
            return;
        };
        m.out.close();
        st.nicks.remove(&m.nick.to_ascii_lowercase());
        if st.operator == Some(id) {
            st.operator = None;
        }
        self.leave_room(st, id, &m.nick, &m.room);
        m.removed.cancel();
        tracing::info!("{} left ({reason})", m.nick);
        let left = ServerLine::Left {
            nick: &m.nick,
            reason,
        };
        self.announce(st, &m.room, None, &left.to_string());
    }

    fn leave_room(&self, st: &mut State, id: Id, nick: &str, room: &str) {
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        r.names.remove(&nick.to_ascii_lowercase());
        let list = Arc::make_mut(&mut r.members);
        if let Some(pos) = list.iter().position(|(i, _)| *i == id) {
            list.swap_remove(pos);
        }
        if list.is_empty() && room != LOBBY {
            if let Some(r) = st.rooms.remove(room) {
                self.pending.fetch_sub(r.pending.len(), Ordering::Relaxed);
            }
        }
    }

    /// A member leaves (quit, closed connection, idle...).
    pub fn leave(&self, id: Id, reason: &str) {
        let mut st = self.lock();
        self.remove(&mut st, id, reason);
        self.unlock(st);
    }

    /// Sends a notice or error line to one member.
    pub fn tell(&self, id: Id, text: &str) {
        let mut st = self.lock();
        self.deliver(&mut st, id, line(text));
        self.unlock(st);
    }

    /// Plain lines from member `id`, to its room.
    pub fn say_many(&self, id: Id, texts: &[String]) {
        let mut st = self.lock();
        let Some(me) = st.members.get(&id) else {
            return;
        };
        let (nick, room) = (me.nick.clone(), me.room.clone());
        self.post(&mut st, &room, Some(id), |buf| {
            for text in texts.iter().filter(|t| !t.trim().is_empty()) {
                ServerLine::Message { nick: &nick, text }.append_to(buf);
            }
        });
    }

    /// Waits while more than the limit of room lines waits for fan-out, so
    /// readers go no faster than the fan-out (TCP pushes back on senders).
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

    /// Takes every room's pending lines as batches for the shards; false if
    /// there were none.
    fn collect(&self) -> bool {
        let batches: Vec<Arc<Batch>> = {
            let mut st = self.lock();
            let dirty = std::mem::take(&mut st.dirty);
            let mut batches = Vec::with_capacity(dirty.len());
            for name in dirty {
                let Some(r) = st.rooms.get_mut(&name) else {
                    continue;
                };
                r.dirty = false;
                if r.pending.is_empty() {
                    continue;
                }
                self.pending.fetch_sub(r.pending.len(), Ordering::Relaxed);
                let runs = std::mem::take(&mut r.runs);
                let mut authors: Vec<Id> = runs.iter().filter_map(|r| r.0).collect();
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
                batches.push(Arc::new(Batch {
                    data: Bytes::from(std::mem::take(&mut r.pending)),
                    runs,
                    authors,
                    entered,
                    roster: r.members.clone(),
                }));
            }
            batches
        };
        if batches.is_empty() {
            return false;
        }
        for shard in &self.shards {
            lock(&shard.queue).extend(batches.iter().cloned());
            shard.ready.notify_one();
        }
        self.drained.notify_waiters();
        true
    }

    /// Writes shard `n`'s queued batches, then drops the members found too slow.
    fn fan_out_shard(&self, n: usize) {
        let shard = &self.shards[n];
        let mut slow = Vec::new();
        {
            let _fanning = lock(&shard.fanning);
            loop {
                let Some(batch) = lock(&shard.queue).pop_front() else {
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

    /// Handles one sanitized input line from member `id`.
    pub fn input(&self, id: Id, text: &str) -> Flow {
        let mut st = self.lock();
        let flow = self.command(&mut st, id, text);
        self.unlock(st);
        flow
    }

    fn command(&self, st: &mut State, id: Id, text: &str) -> Flow {
        let Some(m) = st.members.get(&id) else {
            return Flow::Continue;
        };
        let me = Caller {
            id,
            nick: m.nick.clone(),
            room: m.room.clone(),
            operator: m.operator,
        };
        match parse(text) {
            Input::Say(t) => {
                if !t.trim().is_empty() {
                    let msg = ServerLine::Message {
                        nick: &me.nick,
                        text: t,
                    };
                    self.post(st, &me.room, Some(id), |b| msg.append_to(b));
                }
            }
            Input::Me(t) => {
                let msg = ServerLine::Action {
                    nick: &me.nick,
                    text: t,
                };
                self.post(st, &me.room, Some(id), |b| msg.append_to(b));
            }
            Input::Nick(new) => self.rename(st, &me, new),
            Input::Who => self.who(st, &me),
            Input::Rooms => self.list_rooms(st, &me),
            Input::Msg { to, text } => self.private(st, &me, to, text),
            Input::Join(room) => self.move_to(st, &me, room),
            Input::Quit(reason) => {
                return Flow::Quit(match reason {
                    Some(r) => format!("quit: {r}"),
                    None => "quit".to_string(),
                });
            }
            Input::Help => self.help(st, &me),
            Input::Kick { nick, reason } => self.kick(st, &me, nick, reason),
            Input::Usage(u) => self.error(st, id, u),
            Input::Unknown(cmd) => {
                self.error(st, id, &format!("unknown command /{cmd} (try /help)"))
            }
        }
        Flow::Continue
    }

    fn error(&self, st: &mut State, id: Id, text: &str) {
        self.deliver(st, id, ServerLine::Error(text).to_bytes());
    }

    /// `/nick NEW`.
    fn rename(&self, st: &mut State, me: &Caller, new: &str) {
        let (id, nick) = (me.id, me.nick.as_str());
        let key = new.to_ascii_lowercase();
        if let Err(e) = check_name(new) {
            return self.error(st, id, &format!("cannot use that nick: {e}"));
        }
        if new == nick {
            return self.error(st, id, &format!("you are already {nick}"));
        }
        let taken = st.nicks.get(&key).is_some_and(|other| *other != id)
            || (!me.operator && st.reserved.as_deref() == Some(key.as_str()));
        if taken {
            return self.error(st, id, &format!("the nick {new} is taken"));
        }
        st.nicks.remove(&nick.to_ascii_lowercase());
        st.nicks.insert(key.clone(), id);
        if let Some(r) = st.rooms.get_mut(&me.room) {
            r.names.remove(&nick.to_ascii_lowercase());
            r.names.insert(key, new.to_string());
        }
        if let Some(m) = st.members.get_mut(&id) {
            m.nick = new.to_string();
        }
        tracing::info!("{nick} is now {new}");
        let note = ServerLine::Renamed { old: nick, new }.to_string();
        self.deliver(st, id, line(note.as_str()));
        self.announce(st, &me.room, Some(id), &note);
    }

    /// `/who`: the first [`MAX_LISTED`] nicks of the room, from its sorted
    /// index, so the cost is what is listed, not the room's size.
    fn who(&self, st: &mut State, me: &Caller) {
        let (total, names): (usize, Vec<String>) =
            st.rooms.get(&me.room).map_or((0, Vec::new()), |r| {
                (
                    r.names.len(),
                    r.names.values().take(MAX_LISTED).cloned().collect(),
                )
            });
        let text = ServerLine::Listing {
            title: &me.room,
            total,
            items: &names,
        };
        self.deliver(st, me.id, text.to_bytes());
    }

    /// `/rooms`.
    fn list_rooms(&self, st: &mut State, me: &Caller) {
        let mut rooms: Vec<String> = st
            .rooms
            .iter()
            .map(|(name, r)| format!("{name} ({})", r.members.len()))
            .collect();
        rooms.sort_unstable();
        let text = ServerLine::Listing {
            title: "rooms",
            total: rooms.len(),
            items: &rooms[..rooms.len().min(MAX_LISTED)],
        };
        self.deliver(st, me.id, text.to_bytes());
    }

    /// `/msg TO text`.
    fn private(&self, st: &mut State, me: &Caller, to: &str, text: &str) {
        match st.nicks.get(&to.to_ascii_lowercase()).copied() {
            Some(target) if target != me.id => {
                let target_nick = st
                    .members
                    .get(&target)
                    .map(|m| m.nick.clone())
                    .unwrap_or_default();
                let from = &me.nick;
                self.deliver(st, target, ServerLine::Private { from, text }.to_bytes());
                let sent = ServerLine::PrivateSent {
                    to: &target_nick,
                    text,
                };
                self.deliver(st, me.id, sent.to_bytes());
            }
            Some(_) => self.error(st, me.id, "that is you"),
            None => self.error(st, me.id, &format!("no such nick: {to}")),
        }
    }

    /// `/join ROOM`.
    fn move_to(&self, st: &mut State, me: &Caller, new_room: &str) {
        let (id, nick, room) = (me.id, me.nick.as_str(), me.room.as_str());
        if let Err(e) = check_name(new_room) {
            return self.error(st, id, &format!("cannot use that room name: {e}"));
        }
        if new_room == room {
            return self.error(st, id, &format!("you are already in {room}"));
        }
        self.leave_room(st, id, nick, room);
        let out = st.members.get(&id).map(|m| m.out.clone());
        if let (Some(out), Some(m)) = (out, st.members.get_mut(&id)) {
            m.room = new_room.to_string();
            enter_room(st, new_room, id, nick, out);
        }
        let reason = format!("moved to {new_room}");
        let left = ServerLine::Left {
            nick,
            reason: &reason,
        };
        self.announce(st, room, None, &left.to_string());
        let others = st.rooms.get(new_room).map_or(0, |r| r.members.len()) - 1;
        let moved = ServerLine::Moved {
            room: new_room,
            others,
        };
        self.deliver(st, id, moved.to_bytes());
        let joined = ServerLine::Joined {
            nick,
            room: new_room,
        };
        self.announce(st, new_room, Some(id), &joined.to_string());
    }

    /// `/help`, with the operator's commands for the operator.
    fn help(&self, st: &mut State, me: &Caller) {
        let mut text = Vec::new();
        for l in HELP_LINES
            .iter()
            .chain(if me.operator { OPERATOR_HELP } else { &[] })
        {
            ServerLine::Notice(l).append_to(&mut text);
        }
        self.deliver(st, me.id, Bytes::from(text));
    }

    /// `/kick NICK [reason]`, for the operator.
    fn kick(&self, st: &mut State, me: &Caller, target: &str, reason: Option<&str>) {
        if !me.operator {
            return self.error(st, me.id, "/kick is for the server operator");
        }
        match st.nicks.get(&target.to_ascii_lowercase()).copied() {
            Some(t) if t != me.id => {
                let by = &me.nick;
                self.deliver(st, t, ServerLine::Kicked { by, reason }.to_bytes());
                let why = match reason {
                    Some(r) => format!("kicked by {by}: {r}"),
                    None => format!("kicked by {by}"),
                };
                self.remove(st, t, &why);
            }
            Some(_) => self.error(st, me.id, "that is you"),
            None => self.error(st, me.id, &format!("no such nick: {target}")),
        }
    }

    /// Tells everyone `text`, removes every member and refuses new ones.
    pub fn shutdown(&self, text: &str) {
        while self.flush() {}
        let mut st = self.lock();
        st.closed = true;
        let data = line(text);
        let members: Vec<Member> = st.members.drain().map(|(_, m)| m).collect();
        for m in &members {
            let _ = m.out.enqueue(std::slice::from_ref(&data));
            m.out.close();
            m.removed.cancel();
            st.touched.push(m.out.clone());
        }
        st.rooms.clear();
        st.dirty.clear();
        st.nicks.clear();
        st.operator = None;
        self.pending.store(0, Ordering::Relaxed);
        self.unlock(st);
        drop(members);
        self.drained.notify_waiters();
    }
}

fn enter_room(st: &mut State, room: &str, id: Id, nick: &str, out: Arc<Outbox>) {
    let r = st.rooms.entry(room.to_string()).or_default();
    Arc::make_mut(&mut r.members).push((id, out));
    r.names.insert(nick.to_ascii_lowercase(), nick.to_string());
    if !r.pending.is_empty() {
        r.entered.push((id, r.pending.len()));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fan-out shards: one per thread the machine runs at once, at most four.
fn fan_out_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Pushes one room's batch to the members of shard `n` of `shards`, minus
/// what each of them wrote.
fn fan_out(b: &Batch, n: usize, shards: usize, slow: &mut Vec<Id>) {
    let whole = std::slice::from_ref(&b.data);
    let mut parts = Vec::new();
    for (id, out) in b.roster.iter() {
        if *id as usize % shards != n {
            continue;
        }
        let since = b
            .entered
            .binary_search_by_key(id, |e| e.0)
            .map_or(0, |i| b.entered[i].1);
        let pushed = if since == 0 && b.authors.binary_search(id).is_err() {
            out.push(whole)
        } else {
            parts.clear();
            // Everything from its arrival on but its own runs, neighbouring
            // runs as one slice.
            let mut start = 0;
            let mut kept: Option<usize> = None;
            for &(author, end) in &b.runs {
                let lo = start.max(since);
                if author == Some(*id) || lo >= end {
                    if let Some(from) = kept.take() {
                        parts.push(b.data.slice(from..start));
                    }
                } else if kept.is_none() {
                    kept = Some(lo);
                }
                start = end;
            }
            if let Some(from) = kept {
                parts.push(b.data.slice(from..start));
            }
            if parts.is_empty() {
                continue;
            }
            out.push(&parts)
        };
        if pushed == Pushed::TooSlow {
            slow.push(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(hub: &Hub) -> Membership {
        hub.join(None, CancellationToken::new(), CancellationToken::new())
            .unwrap()
    }

    /// Fans out what is pending, then takes everything queued for `m`.
    fn drain(hub: &Hub, m: &Membership) -> String {
        while hub.flush() {}
        let mut s = String::new();
        while let Some(b) = m.out.try_take() {
            s.push_str(std::str::from_utf8(&b).unwrap());
        }
        s
    }

    #[test]
    fn messages_reach_the_room_but_not_the_sender() {
        let hub = Hub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        assert!(drain(&hub, &a).contains("* guest2 joined lobby"));
        assert!(drain(&hub, &b).starts_with("* welcome, you are guest2"));
        assert_eq!(hub.input(a.id, "hello"), Flow::Continue);
        assert_eq!(drain(&hub, &b), "<guest1> hello\n");
        assert_eq!(drain(&hub, &a), "");
    }

    #[test]
    fn nicks_are_unique_case_insensitively() {
        let hub = Hub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        drain(&hub, &b);
        hub.input(a.id, "/nick Alice");
        drain(&hub, &a);
        assert_eq!(drain(&hub, &b), "* guest1 is now Alice\n");
        hub.input(b.id, "/nick alice");
        assert_eq!(drain(&hub, &b), "! the nick alice is taken\n");
        hub.input(b.id, "/nick <alice>");
        assert!(drain(&hub, &b).starts_with("! cannot use that nick"));
    }

    #[test]
    fn rooms_isolate_and_private_messages_reach_one() {
        let hub = Hub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        let c = member(&hub);
        hub.input(c.id, "/join games");
        drain(&hub, &a);
        drain(&hub, &b);
        drain(&hub, &c);
        hub.input(a.id, "lobby only");
        assert_eq!(drain(&hub, &c), "");
        assert_eq!(drain(&hub, &b), "<guest1> lobby only\n");
        hub.input(a.id, "/msg GUEST3 psst");
        assert_eq!(drain(&hub, &c), "*guest1* psst\n");
        assert_eq!(drain(&hub, &a), "-> *guest3* psst\n");
        assert_eq!(drain(&hub, &b), "");
    }

    #[test]
    fn a_member_over_its_queue_cap_is_dropped_and_announced() {
        let hub = Hub::new(300);
        let slow = member(&hub);
        let ok = member(&hub);
        drain(&hub, &ok);
        for i in 0..20 {
            hub.input(ok.id, &format!("message {i}"));
            while hub.flush() {}
        }
        assert!(slow.kill.is_cancelled());
        assert!(slow.removed.is_cancelled());
        assert_eq!(drain(&hub, &ok), "* guest1 left (too slow)\n");
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn one_fan_out_carries_every_sender_minus_their_own_lines() {
        let hub = Hub::new(1 << 20);
        let a = member(&hub);
        let b = member(&hub);
        let c = member(&hub);
        drain(&hub, &a);
        drain(&hub, &b);
        drain(&hub, &c);
        hub.say_many(a.id, &["a1".into(), "a2".into()]);
        hub.say_many(b.id, &["b1".into()]);
        hub.say_many(a.id, &["a3".into()]);
        hub.input(c.id, "/me waves");
        assert!(!hub.flush(), "one fan-out takes everything pending");
        let take_all = |m: &Membership| {
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
        let hub = Hub::new(1 << 20);
        let a = member(&hub);
        hub.say_many(a.id, &["before".into()]);
        let b = member(&hub);
        hub.say_many(a.id, &["after".into()]);
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
        let hub = Hub::new(1 << 20);
        let op = hub
            .join_operator("server", CancellationToken::new(), CancellationToken::new())
            .unwrap();
        let a = member(&hub);
        drain(&hub, &a);
        drain(&hub, &op);
        hub.input(a.id, "/kick server");
        assert_eq!(drain(&hub, &a), "! /kick is for the server operator\n");
        hub.input(op.id, "/kick guest1 spam");
        assert_eq!(drain(&hub, &a), "! you were kicked by server: spam\n");
        assert!(a.removed.is_cancelled());
        assert_eq!(drain(&hub, &op), "* guest1 left (kicked by server: spam)\n");
    }
}
