//! The chat hub: members, nicks, rooms, and fan-out.
//!
//! Fan-out never waits on a peer: each line is formatted once into a shared
//! buffer and pushed onto every recipient's queue. Each queue is capped in bytes;
//! a member whose queue would pass the cap is disconnected as too slow and the
//! room is told. The hub never touches a socket; sessions drain the queues.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::protocol::{check_name, parse, Input, HELP_LINES, OPERATOR_HELP};

/// Identifies a member for its lifetime.
pub type Id = u64;

/// The room everyone starts in.
pub const LOBBY: &str = "lobby";

/// Longest `/who` or `/rooms` listing before it is cut short.
const MAX_LISTED: usize = 200;

/// Lines waiting for one member's writer. Holds no allocation while empty.
#[derive(Debug, Default)]
pub struct Queue {
    state: Mutex<(VecDeque<Bytes>, bool)>,
    ready: Notify,
}

impl Queue {
    fn send(&self, b: Bytes) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.1 {
            st.0.push_back(b);
        }
        drop(st);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.ready.notify_one();
    }

    /// Takes up to `max` lines, waiting for one; 0 once closed and drained.
    pub async fn recv_many(&self, out: &mut Vec<Bytes>, max: usize) -> usize {
        loop {
            {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if !st.0.is_empty() {
                    let n = st.0.len().min(max);
                    out.extend(st.0.drain(..n));
                    if st.0.is_empty() {
                        st.0 = VecDeque::new();
                    }
                    return n;
                }
                if st.1 {
                    return 0;
                }
            }
            self.ready.notified().await;
        }
    }

    /// True with nothing queued.
    pub fn is_empty(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .is_empty()
    }

    /// One line if there is one, without waiting.
    pub fn try_recv(&self) -> Option<Bytes> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .pop_front()
    }
}

/// A member's outbound queue, shared by the hub and the member's session.
#[derive(Debug, Clone)]
struct Outbox {
    tx: Arc<Queue>,
    queued: Arc<AtomicUsize>,
    /// Cancelled when the member must stop at once (too slow).
    kill: CancellationToken,
}

#[derive(Debug)]
struct Member {
    nick: String,
    room: String,
    out: Outbox,
    operator: bool,
    /// Cancelled when the member is removed (kick, shutdown): stop reading,
    /// flush what is queued, close.
    removed: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    members: HashMap<Id, Member>,
    /// Lower-cased nick -> member.
    nicks: HashMap<String, Id>,
    /// Room -> its members' queues (the hot path of fan-out).
    rooms: HashMap<String, Vec<(Id, Outbox)>>,
    operator: Option<Id>,
    next_id: Id,
    next_guest: u64,
    closed: bool,
}

/// The hub.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    max_queue: usize,
}

/// A member's end of the hub.
#[derive(Debug)]
pub struct Membership {
    /// The member's id.
    pub id: Id,
    /// Lines to send to the member.
    pub rx: Arc<Queue>,
    /// Bytes in `rx` not yet written; the session subtracts what it writes.
    pub queued: Arc<AtomicUsize>,
    /// Cancelled when the member fell too far behind.
    pub kill: CancellationToken,
    /// Cancelled when the member was removed (kicked, server shutting down).
    pub removed: CancellationToken,
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
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn join(
        &self,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<Membership, JoinError> {
        let mut st = self.lock();
        let nick = loop {
            let n = format!("guest{}", st.next_guest);
            st.next_guest += 1;
            if !st.nicks.contains_key(&n) {
                break n;
            }
        };
        let m = self.add(&mut st, nick.clone(), false, removed, kill)?;
        let others = st.rooms.get(LOBBY).map_or(0, |r| r.len()) - 1;
        let welcome = line(format!(
            "* welcome, you are {nick}, in {LOBBY} with {others} other{}; /nick NAME to change it, /help for commands",
            if others == 1 { "" } else { "s" }
        ));
        self.deliver(&mut st, m.id, welcome);
        self.announce(
            &mut st,
            LOBBY,
            Some(m.id),
            line(format!("* {nick} joined {LOBBY}")),
        );
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
            .add(&mut st, nick.to_string(), true, removed, kill)
            .map_err(|_| "server is shutting down".to_string())?;
        st.operator = Some(m.id);
        Ok(m)
    }

    fn add(
        &self,
        st: &mut State,
        nick: String,
        operator: bool,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<Membership, JoinError> {
        if st.closed {
            return Err(JoinError::Closed);
        }
        let id = st.next_id;
        st.next_id += 1;
        let tx = Arc::new(Queue::default());
        let rx = tx.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let out = Outbox {
            tx,
            queued: queued.clone(),
            kill: kill.clone(),
        };
        st.nicks.insert(nick.to_ascii_lowercase(), id);
        st.rooms
            .entry(LOBBY.to_string())
            .or_default()
            .push((id, out.clone()));
        st.members.insert(
            id,
            Member {
                nick,
                room: LOBBY.to_string(),
                out,
                operator,
                removed: removed.clone(),
            },
        );
        Ok(Membership {
            id,
            rx,
            queued,
            kill,
            removed,
        })
    }

    /// Queues `data` for one member. False if the member is over its cap (it is
    /// then marked for removal by the caller).
    fn push(&self, out: &Outbox, data: &Bytes) -> bool {
        let before = out.queued.fetch_add(data.len(), Ordering::Relaxed);
        if before + data.len() > self.max_queue {
            out.queued.fetch_sub(data.len(), Ordering::Relaxed);
            tracing::debug!("queue full: {before} bytes waiting, {} more", data.len());
            out.kill.cancel();
            return false;
        }
        out.tx.send(data.clone());
        true
    }

    fn deliver(&self, st: &mut State, to: Id, data: Bytes) {
        let ok = match st.members.get(&to) {
            Some(m) => self.push(&m.out, &data),
            None => return,
        };
        if !ok {
            self.remove(st, to, "too slow");
        }
    }

    /// Sends to everyone in `room` but `except`, and to the operator wherever it is.
    fn announce(&self, st: &mut State, room: &str, except: Option<Id>, data: Bytes) {
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(room) {
            for (id, out) in members {
                if Some(*id) != except && !self.push(out, &data) {
                    slow.push(*id);
                }
            }
        }
        if let Some(op) = st.operator {
            let in_room = st.members.get(&op).is_some_and(|m| m.room == room);
            if !in_room && Some(op) != except {
                if let Some(m) = st.members.get(&op) {
                    if !self.push(&m.out, &data) {
                        slow.push(op);
                    }
                }
            }
        }
        for id in slow {
            self.remove(st, id, "too slow");
        }
    }

    /// Takes a member out and tells the room (and the operator) why.
    fn remove(&self, st: &mut State, id: Id, reason: &str) {
        let Some(m) = st.members.remove(&id) else {
            return;
        };
        m.out.tx.close();
        st.nicks.remove(&m.nick.to_ascii_lowercase());
        if st.operator == Some(id) {
            st.operator = None;
        }
        self.leave_room(st, id, &m.room);
        m.removed.cancel();
        tracing::info!("{} left ({reason})", m.nick);
        self.announce(
            st,
            &m.room,
            None,
            line(format!("* {} left ({reason})", m.nick)),
        );
    }

    fn leave_room(&self, st: &mut State, id: Id, room: &str) {
        if let Some(list) = st.rooms.get_mut(room) {
            if let Some(pos) = list.iter().position(|(i, _)| *i == id) {
                list.swap_remove(pos);
            }
            if list.is_empty() && room != LOBBY {
                st.rooms.remove(room);
            }
        }
    }

    /// A member leaves (quit, closed connection, idle...).
    pub fn leave(&self, id: Id, reason: &str) {
        let mut st = self.lock();
        self.remove(&mut st, id, reason);
    }

    /// Sends a notice or error line to one member.
    pub fn tell(&self, id: Id, text: &str) {
        let mut st = self.lock();
        self.deliver(&mut st, id, line(text));
    }

    /// Plain lines from one read of member `id`, fanned out as one buffer.
    pub fn say_many(&self, id: Id, texts: &[String]) {
        let mut st = self.lock();
        let Some(me) = st.members.get(&id) else {
            return;
        };
        let (nick, room) = (me.nick.clone(), me.room.clone());
        let mut buf = String::new();
        for t in texts.iter().filter(|t| !t.trim().is_empty()) {
            buf.push('<');
            buf.push_str(&nick);
            buf.push_str("> ");
            buf.push_str(t);
            buf.push('\n');
        }
        if !buf.is_empty() {
            self.announce_room_only(&mut st, &room, id, Bytes::from(buf));
        }
    }

    /// Handles one sanitized input line from member `id`.
    pub fn input(&self, id: Id, text: &str) -> Flow {
        let mut st = self.lock();
        let Some(me) = st.members.get(&id) else {
            return Flow::Continue;
        };
        let (nick, room, operator) = (me.nick.clone(), me.room.clone(), me.operator);
        match parse(text) {
            Input::Say(t) => {
                if !t.trim().is_empty() {
                    let msg = line(format!("<{nick}> {t}"));
                    self.announce_room_only(&mut st, &room, id, msg);
                }
            }
            Input::Me(t) => {
                let msg = line(format!("+ {nick} {t}"));
                self.announce_room_only(&mut st, &room, id, msg);
            }
            Input::Nick(new) => {
                if let Err(e) = check_name(new) {
                    self.deliver(&mut st, id, line(format!("! cannot use that nick: {e}")));
                } else if new == nick {
                    self.deliver(&mut st, id, line(format!("! you are already {nick}")));
                } else if st
                    .nicks
                    .get(&new.to_ascii_lowercase())
                    .is_some_and(|other| *other != id)
                {
                    self.deliver(&mut st, id, line(format!("! the nick {new} is taken")));
                } else {
                    st.nicks.remove(&nick.to_ascii_lowercase());
                    st.nicks.insert(new.to_ascii_lowercase(), id);
                    if let Some(m) = st.members.get_mut(&id) {
                        m.nick = new.to_string();
                    }
                    tracing::info!("{nick} is now {new}");
                    let note = line(format!("* {nick} is now {new}"));
                    self.deliver(&mut st, id, note.clone());
                    self.announce(&mut st, &room, Some(id), note);
                }
            }
            Input::Who => {
                let mut names: Vec<String> = st
                    .rooms
                    .get(&room)
                    .map(|r| {
                        r.iter()
                            .filter_map(|(i, _)| st.members.get(i).map(|m| m.nick.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
                let total = names.len();
                let text = listing(&format!("* {room} ({total}): "), names);
                self.deliver(&mut st, id, line(text));
            }
            Input::Rooms => {
                let mut rooms: Vec<String> = st
                    .rooms
                    .iter()
                    .map(|(name, list)| format!("{name} ({})", list.len()))
                    .collect();
                rooms.sort_unstable();
                let text = listing(&format!("* rooms ({}): ", rooms.len()), rooms);
                self.deliver(&mut st, id, line(text));
            }
            Input::Msg { to, text } => match st.nicks.get(&to.to_ascii_lowercase()).copied() {
                Some(target) if target != id => {
                    let target_nick = st
                        .members
                        .get(&target)
                        .map(|m| m.nick.clone())
                        .unwrap_or_default();
                    self.deliver(&mut st, target, line(format!("*{nick}* {text}")));
                    self.deliver(&mut st, id, line(format!("-> *{target_nick}* {text}")));
                }
                Some(_) => self.deliver(&mut st, id, line("! that is you")),
                None => self.deliver(&mut st, id, line(format!("! no such nick: {to}"))),
            },
            Input::Join(new_room) => {
                if let Err(e) = check_name(new_room) {
                    self.deliver(
                        &mut st,
                        id,
                        line(format!("! cannot use that room name: {e}")),
                    );
                } else if new_room == room {
                    self.deliver(&mut st, id, line(format!("! you are already in {room}")));
                } else {
                    self.leave_room(&mut st, id, &room);
                    let out = st.members.get(&id).map(|m| m.out.clone());
                    if let (Some(out), Some(m)) = (out, st.members.get_mut(&id)) {
                        m.room = new_room.to_string();
                        st.rooms
                            .entry(new_room.to_string())
                            .or_default()
                            .push((id, out));
                    }
                    self.announce(
                        &mut st,
                        &room,
                        None,
                        line(format!("* {nick} left (moved to {new_room})")),
                    );
                    let others = st.rooms.get(new_room).map_or(0, |r| r.len()) - 1;
                    self.deliver(
                        &mut st,
                        id,
                        line(format!(
                            "* you are now in {new_room} with {others} other{}",
                            if others == 1 { "" } else { "s" }
                        )),
                    );
                    self.announce(
                        &mut st,
                        new_room,
                        Some(id),
                        line(format!("* {nick} joined {new_room}")),
                    );
                }
            }
            Input::Quit(reason) => {
                return Flow::Quit(match reason {
                    Some(r) => format!("quit: {r}"),
                    None => "quit".to_string(),
                });
            }
            Input::Help => {
                let mut text = String::new();
                for l in HELP_LINES
                    .iter()
                    .chain(if operator { OPERATOR_HELP } else { &[] })
                {
                    text.push_str("* ");
                    text.push_str(l);
                    text.push('\n');
                }
                self.deliver(&mut st, id, Bytes::from(text));
            }
            Input::Kick {
                nick: target,
                reason,
            } => {
                if !operator {
                    self.deliver(&mut st, id, line("! /kick is for the server operator"));
                } else {
                    match st.nicks.get(&target.to_ascii_lowercase()).copied() {
                        Some(t) if t != id => {
                            let why = match reason {
                                Some(r) => format!("kicked by {nick}: {r}"),
                                None => format!("kicked by {nick}"),
                            };
                            self.deliver(&mut st, t, line(format!("! you were {why}")));
                            self.remove(&mut st, t, &why);
                        }
                        Some(_) => self.deliver(&mut st, id, line("! that is you")),
                        None => {
                            self.deliver(&mut st, id, line(format!("! no such nick: {target}")))
                        }
                    }
                }
            }
            Input::Usage(u) => self.deliver(&mut st, id, line(format!("! {u}"))),
            Input::Unknown(cmd) => self.deliver(
                &mut st,
                id,
                line(format!("! unknown command /{cmd} (try /help)")),
            ),
        }
        Flow::Continue
    }

    /// Room traffic goes to the room only (the operator sees its own room).
    fn announce_room_only(&self, st: &mut State, room: &str, except: Id, data: Bytes) {
        let mut slow = Vec::new();
        if let Some(members) = st.rooms.get(room) {
            for (id, out) in members {
                if *id != except && !self.push(out, &data) {
                    slow.push(*id);
                }
            }
        }
        for id in slow {
            self.remove(st, id, "too slow");
        }
    }

    /// Tells everyone `text`, removes every member and refuses new ones.
    pub fn shutdown(&self, text: &str) {
        let mut st = self.lock();
        st.closed = true;
        let data = line(text);
        let ids: Vec<Id> = st.members.keys().copied().collect();
        for id in ids {
            if let Some(m) = st.members.remove(&id) {
                let _ = self.push(&m.out, &data);
                m.out.tx.close();
                m.removed.cancel();
            }
        }
        st.rooms.clear();
        st.nicks.clear();
        st.operator = None;
    }
}

fn listing(prefix: &str, items: Vec<String>) -> String {
    let total = items.len();
    let mut text = String::from(prefix);
    text.push_str(
        &items
            .into_iter()
            .take(MAX_LISTED)
            .collect::<Vec<_>>()
            .join(", "),
    );
    if total > MAX_LISTED {
        text.push_str(&format!(", ... and {} more", total - MAX_LISTED));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(hub: &Hub) -> Membership {
        hub.join(CancellationToken::new(), CancellationToken::new())
            .unwrap()
    }

    fn drain(m: &mut Membership) -> String {
        let mut s = String::new();
        while let Some(b) = m.rx.try_recv() {
            m.queued.fetch_sub(b.len(), Ordering::Relaxed);
            s.push_str(std::str::from_utf8(&b).unwrap());
        }
        s
    }

    #[test]
    fn messages_reach_the_room_but_not_the_sender() {
        let hub = Hub::new(1 << 20);
        let mut a = member(&hub);
        let mut b = member(&hub);
        assert!(drain(&mut a).contains("* guest2 joined lobby"));
        assert!(drain(&mut b).starts_with("* welcome, you are guest2"));
        assert_eq!(hub.input(a.id, "hello"), Flow::Continue);
        assert_eq!(drain(&mut b), "<guest1> hello\n");
        assert_eq!(drain(&mut a), "");
    }

    #[test]
    fn nicks_are_unique_case_insensitively() {
        let hub = Hub::new(1 << 20);
        let mut a = member(&hub);
        let mut b = member(&hub);
        drain(&mut b);
        hub.input(a.id, "/nick Alice");
        drain(&mut a);
        assert_eq!(drain(&mut b), "* guest1 is now Alice\n");
        hub.input(b.id, "/nick alice");
        assert_eq!(drain(&mut b), "! the nick alice is taken\n");
        hub.input(b.id, "/nick <alice>");
        assert!(drain(&mut b).starts_with("! cannot use that nick"));
    }

    #[test]
    fn rooms_isolate_and_private_messages_reach_one() {
        let hub = Hub::new(1 << 20);
        let mut a = member(&hub);
        let mut b = member(&hub);
        let mut c = member(&hub);
        hub.input(c.id, "/join games");
        drain(&mut a);
        drain(&mut b);
        drain(&mut c);
        hub.input(a.id, "lobby only");
        assert_eq!(drain(&mut c), "");
        assert_eq!(drain(&mut b), "<guest1> lobby only\n");
        hub.input(a.id, "/msg GUEST3 psst");
        assert_eq!(drain(&mut c), "*guest1* psst\n");
        assert_eq!(drain(&mut a), "-> *guest3* psst\n");
        assert_eq!(drain(&mut b), "");
    }

    #[test]
    fn a_member_over_its_queue_cap_is_dropped_and_announced() {
        let hub = Hub::new(300);
        let slow = member(&hub);
        let mut ok = member(&hub);
        drain(&mut ok);
        for i in 0..20 {
            hub.input(ok.id, &format!("message {i}"));
        }
        assert!(slow.kill.is_cancelled());
        assert!(slow.removed.is_cancelled());
        assert_eq!(drain(&mut ok), "* guest1 left (too slow)\n");
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn kick_is_for_the_operator() {
        let hub = Hub::new(1 << 20);
        let mut op = hub
            .join_operator("server", CancellationToken::new(), CancellationToken::new())
            .unwrap();
        let mut a = member(&hub);
        drain(&mut a);
        drain(&mut op);
        hub.input(a.id, "/kick server");
        assert_eq!(drain(&mut a), "! /kick is for the server operator\n");
        hub.input(op.id, "/kick guest1 spam");
        assert_eq!(drain(&mut a), "! you were kicked by server: spam\n");
        assert!(a.removed.is_cancelled());
        assert_eq!(drain(&mut op), "* guest1 left (kicked by server: spam)\n");
    }
}
