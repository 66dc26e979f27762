//! Members in several rooms at once (IRC's channels): entering and parting
//! a given room, talking to a given room, topics, room modes and room
//! operators, putting someone out of a room, away state, and members who
//! register under their own nick in no room.
//!
//! Line and web members keep one room each (their `join` moves them, in
//! `mod.rs`); everything here is protocol-neutral events, so they see what
//! members in several rooms do in their own form.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{
    enter_room, now_ms, resolve_room, seat_of, wants_own_private, Caller, ChatHub, ChatMember,
    Echo, EventKind, HubState, Id, ModeChange, ModeChangeRequest, Notice, Refusal, RegisterError,
    RoomEvent, Style, TopicInfo, LOBBY,
};
use crate::chat::front::Protocol;
use crate::chat::outbox::Sink;
use crate::chat::protocol::{check_nick, check_room, nick_key};
use std::sync::atomic::Ordering;

impl ChatHub {
    /// Adds a member under its own `nick`, in no room and without a
    /// welcome (the front-end greets it in its own way).
    pub fn register(
        &self,
        protocol: Protocol,
        nick: &str,
        sink: Option<Sink>,
        removed: CancellationToken,
        kill: CancellationToken,
    ) -> Result<ChatMember, RegisterError> {
        check_nick(nick).map_err(RegisterError::BadNick)?;
        let mut st = self.lock();
        let key = nick_key(nick);
        if st.nicks.contains_key(&key) || st.reserved.as_deref() == Some(key.as_str()) {
            return Err(RegisterError::Taken);
        }
        let m = self
            .add(
                &mut st,
                nick.into(),
                protocol,
                false,
                false,
                sink,
                removed,
                kill,
            )
            .map_err(|_| RegisterError::Closed)?;
        if let Some(link) = &st.cluster {
            // Another node may hold it: then the member becomes a guest.
            link.claim(m.id, nick, true);
        }
        self.unlock(st);
        Ok(m)
    }

    /// Whether `nick` is free for a newcomer (not in use, not reserved).
    pub fn nick_free(&self, nick: &str) -> bool {
        let st = self.lock();
        let key = nick_key(nick);
        !st.nicks.contains_key(&key) && st.reserved.as_deref() != Some(key.as_str())
    }

    /// Changes how a member's events are encoded (same front-end, other
    /// options) and which of its own come back.
    pub fn set_style(&self, id: Id, protocol: Protocol, echo: Echo) {
        let mut st = self.lock();
        let Some(m) = st.members.get_mut(&id) else {
            return;
        };
        let old = m.protocol;
        m.protocol = protocol;
        m.echo = echo;
        let rooms = m.rooms.clone();
        for room in rooms {
            let Some(r) = st.rooms.get_mut(&room) else {
                continue;
            };
            let list = Arc::make_mut(&mut r.members);
            if let Some(seat) = list.iter_mut().find(|s| s.id == id) {
                seat.protocol = protocol;
                seat.echo = echo;
            }
            r.protocols[old.index()] -= 1;
            r.protocols[protocol.index()] += 1;
        }
        self.unlock(st);
    }

    /// An announcement of a member-wide event (a quit, a nick change, away)
    /// in each of `rooms`: everyone sharing one of them gets it once,
    /// through the first they share; the operator, if in none, gets a copy.
    pub(super) fn announce_everywhere(
        &self,
        st: &mut HubState,
        rooms: &[Arc<str>],
        except: Option<Id>,
        from: Arc<str>,
        kind: EventKind,
    ) {
        let Some((first, rest)) = rooms.split_first() else {
            return;
        };
        if rest.is_empty() {
            return self.announce(st, first, except, from, kind);
        }
        let op_outside = st.operator.filter(|op| {
            Some(*op) != except
                && st
                    .members
                    .get(op)
                    .is_some_and(|m| !m.rooms.iter().any(|r| rooms.contains(r)))
        });
        let mut seen: HashSet<Id> = HashSet::new();
        let mut first_seq = 0;
        // In a cluster the event reaches each room's batch when the room
        // log gives it back, at no index known now: a member in several
        // rooms then hears it in each.
        let skips = st.cluster.is_none();
        for (i, room) in rooms.iter().enumerate() {
            if let Some(r) = st.rooms.get_mut(room).filter(|_| skips) {
                let at = r.pending.len();
                for seat in r.members.iter() {
                    if !seen.insert(seat.id) {
                        r.skips.push((seat.id, at));
                    }
                }
            }
            let seq = self.post(st, room, except, [(from.clone(), kind.clone())]);
            if i == 0 {
                first_seq = seq;
            }
        }
        if let Some(op) = op_outside {
            let ev = RoomEvent {
                room: first.clone(),
                seq: first_seq,
                prev: 0,
                ts: now_ms(),
                from,
                kind,
            };
            self.deliver(st, op, &ev);
        }
    }

    /// Whether `id` may run room `room` (its operators, and the server's).
    fn is_room_op(st: &HubState, room: &str, id: Id) -> bool {
        st.operator == Some(id) || st.rooms.get(room).is_some_and(|r| r.ops.contains(&id))
    }

    /// The room's name if the member is in it (`room` as typed, any case).
    fn member_room(st: &HubState, id: Id, room: &str) -> Option<Arc<str>> {
        let name = resolve_room(st, room);
        st.members
            .get(&id)
            .and_then(|m| m.rooms.iter().find(|r| **r == name).cloned())
    }

    /// Enters a room in addition to the others.
    pub(super) fn enter(&self, st: &mut HubState, me: &Caller, room: &str) {
        let id = me.id;
        if let Err(e) = check_room(room) {
            return self.error(st, id, Refusal::BadRoom(e));
        }
        if Self::member_room(st, id, room).is_some() {
            return;
        }
        let max = self.max_rooms.load(Ordering::Relaxed);
        let count = st.members.get(&id).map_or(0, |m| m.rooms.len());
        if count >= max && st.operator != Some(id) {
            let refusal = Refusal::TooManyRooms {
                room: room.to_string(),
                max,
            };
            return self.error(st, id, refusal);
        }
        let name = resolve_room(st, room);
        let Some(seat) = seat_of(st, id) else {
            return;
        };
        let entered = enter_room(st, &name, seat, &me.nick);
        if let Some(m) = st.members.get_mut(&id) {
            m.rooms.push(entered.clone());
            m.room = entered.clone();
        }
        let notice = self.entered_notice(st, &entered);
        self.reply(st, id, EventKind::Notice(notice));
        self.replay(st, id, &entered);
        self.announce(st, &entered, Some(id), me.nick.clone(), EventKind::Join);
    }

    /// What a member entering `room` is told.
    fn entered_notice(&self, st: &HubState, room: &Arc<str>) -> Notice {
        let (topic, names) = match st.rooms.get(room) {
            Some(r) => {
                let ops: HashSet<String> = r
                    .ops
                    .iter()
                    .chain(st.operator.iter())
                    .filter_map(|id| st.members.get(id).map(|m| nick_key(&m.nick)))
                    .collect();
                let names = r
                    .names
                    .iter()
                    .map(|(k, n)| (n.clone(), ops.contains(k)))
                    .collect();
                (r.topic.clone(), names)
            }
            None => (None, Vec::new()),
        };
        Notice::Entered {
            room: room.clone(),
            topic,
            names,
        }
    }

    /// Leaves one room: the member is told (it is no longer in the room's
    /// stream), the room too.
    pub(super) fn part(&self, st: &mut HubState, me: &Caller, room: &str, reason: Option<String>) {
        let Some(name) = Self::member_room(st, me.id, room) else {
            let refusal = if st.rooms.contains_key(&*resolve_room(st, room)) {
                Refusal::NotInRoom(room.to_string())
            } else {
                Refusal::NoSuchRoom(room.to_string())
            };
            return self.error(st, me.id, refusal);
        };
        self.take_out(st, me.id, &me.nick, &name);
        let ev = RoomEvent {
            room: name.clone(),
            seq: st.rooms.get(&name).map_or(0, |r| r.seq + 1),
            prev: 0,
            ts: now_ms(),
            from: me.nick.clone(),
            kind: EventKind::Part {
                reason: reason.clone().unwrap_or_default(),
            },
        };
        self.deliver(st, me.id, &ev);
        let parted = EventKind::Part {
            reason: reason.unwrap_or_default(),
        };
        self.announce(st, &name, Some(me.id), me.nick.clone(), parted);
    }

    /// Takes member `id` out of one of its rooms (its lists and the room's).
    fn take_out(&self, st: &mut HubState, id: Id, nick: &str, room: &Arc<str>) {
        self.leave_room(st, id, nick, room);
        if let Some(m) = st.members.get_mut(&id) {
            m.rooms.retain(|r| r != room);
            if m.room == *room {
                m.room = m.rooms.last().cloned().unwrap_or_else(|| Arc::from(""));
            }
        }
    }

    /// Leaves every room.
    pub(super) fn part_all(&self, st: &mut HubState, me: &Caller) {
        let rooms = st
            .members
            .get(&me.id)
            .map(|m| m.rooms.clone())
            .unwrap_or_default();
        for room in rooms {
            self.part(st, me, &room, None);
        }
    }

    /// Talk to a given room.
    pub(super) fn say_to(
        &self,
        st: &mut HubState,
        me: &Caller,
        room: &str,
        text: String,
        style: Option<Style>,
    ) {
        let name = resolve_room(st, room);
        let Some(r) = st.rooms.get(&name) else {
            return self.error(st, me.id, Refusal::NoSuchRoom(room.to_string()));
        };
        let inside = r.members.iter().any(|s| s.id == me.id);
        if !inside && r.no_outside {
            return self.error(st, me.id, Refusal::CannotSend(room.to_string()));
        }
        let kind = match style {
            None if text.trim().is_empty() => return,
            None => EventKind::Message { text },
            Some(Style::Action) => EventKind::Action { text },
            Some(style) => EventKind::Styled { text, style },
        };
        self.post(st, &name, Some(me.id), [(me.nick.clone(), me.tag(kind))]);
    }

    /// Client-only tags alone (IRC `TAGMSG`) to a room or a member: only
    /// to members whose protocol shows them, outside the room's sequence;
    /// back to the sender as its echo setting says.
    pub(super) fn tags_only(
        &self,
        st: &mut HubState,
        me: &Caller,
        room: Option<&str>,
        to: &str,
        tags: Arc<str>,
    ) {
        let (targets, ev_room, to) = match room {
            Some(room) => {
                let name = resolve_room(st, room);
                let Some(r) = st.rooms.get(&name) else {
                    return self.error(st, me.id, Refusal::NoSuchRoom(room.to_string()));
                };
                let inside = r.members.iter().any(|s| s.id == me.id);
                if !inside && r.no_outside {
                    return self.error(st, me.id, Refusal::CannotSend(room.to_string()));
                }
                let ids: Vec<Id> = r
                    .members
                    .iter()
                    .map(|s| s.id)
                    .filter(|&i| i != me.id)
                    .collect();
                (ids, name, None)
            }
            None => {
                let Some(target) = st.nicks.get(&nick_key(to)).copied() else {
                    return self.error(st, me.id, Refusal::NoSuchNick(to.to_string()));
                };
                let Some(nick) = st.members.get(&target).map(|t| t.nick.clone()) else {
                    return;
                };
                let ids = if target == me.id {
                    vec![]
                } else {
                    vec![target]
                };
                (ids, me.room.clone(), Some(nick))
            }
        };
        let ev = RoomEvent {
            room: ev_room,
            seq: 0,
            prev: 0,
            ts: now_ms(),
            from: me.nick.clone(),
            kind: EventKind::TagsOnly { tags, to },
        };
        let echo = st.members.get(&me.id).is_some_and(|m| m.echo != Echo::None);
        for id in targets.into_iter().chain(echo.then_some(me.id)) {
            if st.members.get(&id).is_some_and(|m| m.protocol.shows_tags()) {
                self.deliver(st, id, &ev);
            }
        }
    }

    /// A private message in a style.
    pub(super) fn private_styled(
        &self,
        st: &mut HubState,
        me: &Caller,
        to: &str,
        text: String,
        style: Style,
    ) {
        let Some(target) = st.nicks.get(&nick_key(to)).copied() else {
            return self.error(st, me.id, Refusal::NoSuchNick(to.to_string()));
        };
        let Some(t) = st.members.get(&target) else {
            return;
        };
        let target_nick = t.nick.clone();
        let mut ev = RoomEvent {
            room: me.room.clone(),
            seq: 0,
            prev: 0,
            ts: now_ms(),
            from: me.nick.clone(),
            kind: me.tag(EventKind::PrivateStyled {
                to: target_nick,
                text,
                echo: false,
                style,
            }),
        };
        if target != me.id {
            self.deliver(st, target, &ev);
        }
        if let EventKind::PrivateStyled { echo, .. } = ev.kind.untagged_mut() {
            *echo = true;
        }
        if wants_own_private(st, me.id) {
            self.deliver(st, me.id, &ev);
        }
    }

    /// A topic query or change.
    pub(super) fn topic(&self, st: &mut HubState, me: &Caller, room: &str, text: Option<String>) {
        let name = resolve_room(st, room);
        let Some(r) = st.rooms.get(&name) else {
            return self.error(st, me.id, Refusal::NoSuchRoom(room.to_string()));
        };
        let inside = r.members.iter().any(|s| s.id == me.id);
        let Some(text) = text else {
            let notice = Notice::Topic {
                room: r.name.clone(),
                topic: r.topic.clone(),
            };
            return self.reply(st, me.id, EventKind::Notice(notice));
        };
        if !inside {
            return self.error(st, me.id, Refusal::NotInRoom(room.to_string()));
        }
        if r.topic_lock && !Self::is_room_op(st, &name, me.id) {
            return self.error(st, me.id, Refusal::NotRoomOperator(name.to_string()));
        }
        if let Some(r) = st.rooms.get_mut(&name) {
            r.topic = (!text.is_empty()).then(|| TopicInfo {
                text: text.clone(),
                by: me.nick.clone(),
                ts: now_ms(),
            });
        }
        self.room_change(st, me, &name, EventKind::Topic { text });
    }

    /// An event about a room the member changed: the room hears it, and so
    /// does the member (whatever it echoes).
    fn room_change(&self, st: &mut HubState, me: &Caller, room: &Arc<str>, kind: EventKind) {
        let ev = RoomEvent {
            room: room.clone(),
            seq: st.rooms.get(room).map_or(0, |r| r.seq + 1),
            prev: 0,
            ts: now_ms(),
            from: me.nick.clone(),
            kind: kind.clone(),
        };
        let inside = st
            .rooms
            .get(room)
            .is_some_and(|r| r.members.iter().any(|s| s.id == me.id));
        let echoes = st.members.get(&me.id).is_some_and(|m| m.echo == Echo::All);
        if !(inside && echoes) {
            self.deliver(st, me.id, &ev);
        }
        self.announce(st, room, Some(me.id), me.nick.clone(), kind);
    }

    /// A room mode change.
    pub(super) fn mode(
        &self,
        st: &mut HubState,
        me: &Caller,
        room: &str,
        change: ModeChangeRequest,
    ) {
        let name = resolve_room(st, room);
        if !st.rooms.contains_key(&name) {
            return self.error(st, me.id, Refusal::NoSuchRoom(room.to_string()));
        }
        if !Self::is_room_op(st, &name, me.id) {
            return self.error(st, me.id, Refusal::NotRoomOperator(name.to_string()));
        }
        let change = match change {
            ModeChangeRequest::TopicLock(on) => {
                let r = st.rooms.get_mut(&name).expect("checked");
                if r.topic_lock == on {
                    return;
                }
                r.topic_lock = on;
                ModeChange::TopicLock(on)
            }
            ModeChangeRequest::NoOutside(on) => {
                let r = st.rooms.get_mut(&name).expect("checked");
                if r.no_outside == on {
                    return;
                }
                r.no_outside = on;
                ModeChange::NoOutside(on)
            }
            ModeChangeRequest::Operator { nick, on } => {
                let Some(target) = st.nicks.get(&nick_key(&nick)).copied() else {
                    return self.error(st, me.id, Refusal::NoSuchNick(nick));
                };
                let r = st.rooms.get_mut(&name).expect("checked");
                if !r.members.iter().any(|s| s.id == target) {
                    let refusal = Refusal::TheyAreNotIn {
                        nick,
                        room: name.to_string(),
                    };
                    return self.error(st, me.id, refusal);
                }
                let has = r.ops.contains(&target);
                if has == on {
                    return;
                }
                if on {
                    r.ops.push(target);
                } else {
                    r.ops.retain(|o| *o != target);
                }
                let nick = st
                    .members
                    .get(&target)
                    .map_or_else(|| nick.into(), |m| m.nick.clone());
                ModeChange::Operator { nick, on }
            }
        };
        self.room_change(st, me, &name, EventKind::Mode(change));
    }

    /// Puts someone out of a room (not out of the chat).
    pub(super) fn kick_from(
        &self,
        st: &mut HubState,
        me: &Caller,
        room: &str,
        nick: &str,
        reason: Option<String>,
    ) {
        let name = resolve_room(st, room);
        if !st.rooms.contains_key(&name) {
            return self.error(st, me.id, Refusal::NoSuchRoom(room.to_string()));
        }
        if !Self::is_room_op(st, &name, me.id) {
            return self.error(st, me.id, Refusal::NotRoomOperator(name.to_string()));
        }
        let Some(target) = st.nicks.get(&nick_key(nick)).copied() else {
            return self.error(st, me.id, Refusal::NoSuchNick(nick.to_string()));
        };
        let Some(target_nick) = Self::member_room(st, target, &name)
            .and_then(|_| st.members.get(&target).map(|m| m.nick.clone()))
        else {
            let refusal = Refusal::TheyAreNotIn {
                nick: nick.to_string(),
                room: name.to_string(),
            };
            return self.error(st, me.id, refusal);
        };
        let kind = EventKind::Kick {
            target: target_nick.clone(),
            reason,
        };
        // The kicked member hears it, then leaves the room's stream.
        let ev = RoomEvent {
            room: name.clone(),
            seq: st.rooms.get(&name).map_or(0, |r| r.seq + 1),
            prev: 0,
            ts: now_ms(),
            from: me.nick.clone(),
            kind: kind.clone(),
        };
        if target != me.id {
            self.deliver(st, target, &ev);
        }
        self.take_out(st, target, &target_nick, &name);
        tracing::info!("{} put {target_nick} out of {name}", me.nick);
        if name.as_ref() == LOBBY || st.rooms.contains_key(&name) {
            self.room_change(st, me, &name, kind);
        } else if target != me.id {
            self.deliver(st, me.id, &ev);
        }
    }

    /// Away, or back.
    pub(super) fn away(&self, st: &mut HubState, me: &Caller, text: Option<String>) {
        let text = text.filter(|t| !t.trim().is_empty());
        let Some(m) = st.members.get_mut(&me.id) else {
            return;
        };
        m.away = text.clone();
        let rooms = m.rooms.clone();
        self.reply(st, me.id, EventKind::Notice(Notice::Away(text.is_some())));
        let kind = EventKind::Away { text };
        self.announce_everywhere(st, &rooms, Some(me.id), me.nick.clone(), kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::hub::{ChatHub, Flow, HubCommand};

    fn drain(hub: &ChatHub, m: &ChatMember) -> String {
        while hub.flush() {}
        let mut s = String::new();
        while let Some(b) = m.out.try_take() {
            s.push_str(std::str::from_utf8(&b).unwrap());
        }
        s
    }

    fn reg(hub: &ChatHub, nick: &str) -> ChatMember {
        hub.register(
            Protocol::Line,
            nick,
            None,
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .unwrap()
    }

    fn line(hub: &ChatHub) -> ChatMember {
        hub.join(
            Protocol::Line,
            None,
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .unwrap()
    }

    fn cmd(hub: &ChatHub, m: &ChatMember, c: HubCommand) {
        assert_eq!(hub.command(m.id, c), Flow::Continue);
    }

    fn enter(hub: &ChatHub, m: &ChatMember, room: &str) {
        cmd(hub, m, HubCommand::Enter(room.into()));
    }

    fn say(room: &str, text: &str) -> HubCommand {
        HubCommand::SayTo {
            room: room.into(),
            text: text.into(),
            style: None,
        }
    }

    #[test]
    fn registered_members_start_nowhere_and_nicks_stay_unique() {
        let hub = ChatHub::new(1 << 20);
        let a = reg(&hub, "alice");
        assert_eq!(drain(&hub, &a), "");
        assert!(hub.rooms_of(a.id).is_empty());
        let again = hub.register(
            Protocol::Line,
            "ALICE",
            None,
            CancellationToken::new(),
            CancellationToken::new(),
        );
        assert_eq!(again.err(), Some(RegisterError::Taken));
        assert!(!hub.nick_free("Alice") && hub.nick_free("bob"));
        let bad = hub.register(
            Protocol::Line,
            "1x",
            None,
            CancellationToken::new(),
            CancellationToken::new(),
        );
        assert!(matches!(bad, Err(RegisterError::BadNick(_))));
    }

    #[test]
    fn a_member_may_be_in_several_rooms_and_talk_to_each() {
        let hub = ChatHub::new(1 << 20);
        let lobby = line(&hub);
        drain(&hub, &lobby);
        let a = reg(&hub, "alice");
        enter(&hub, &a, "lobby");
        enter(&hub, &a, "Games");
        assert_eq!(
            drain(&hub, &a),
            "* you are now in lobby with 1 other\n* you are now in Games with 0 others\n"
        );
        assert_eq!(drain(&hub, &lobby), "* alice joined lobby\n");
        // Entering again is a no-op; rooms ignore case.
        enter(&hub, &a, "games");
        assert_eq!(drain(&hub, &a), "");
        assert_eq!(hub.rooms_of(a.id).len(), 2);
        cmd(&hub, &a, say("LOBBY", "hi lobby"));
        cmd(&hub, &a, say("games", "hi games"));
        assert_eq!(drain(&hub, &lobby), "<alice> hi lobby\n");
        // A line member moving into games sees the room's case.
        cmd(&hub, &lobby, HubCommand::Join("GAMES".into()));
        assert!(drain(&hub, &lobby).starts_with("* you are now in Games with 1 other"));
        let v = hub.room_view("games", 10).unwrap();
        assert_eq!(&*v.name, "Games");
        assert_eq!(
            v.members[0],
            ("alice".to_string(), true, false),
            "creator runs it"
        );
    }

    #[test]
    fn part_and_part_all_leave_rooms_not_the_chat() {
        let hub = ChatHub::new(1 << 20);
        let watcher = line(&hub);
        let a = reg(&hub, "alice");
        enter(&hub, &a, "lobby");
        enter(&hub, &a, "x");
        drain(&hub, &a);
        drain(&hub, &watcher);
        cmd(
            &hub,
            &a,
            HubCommand::Part {
                room: "lobby".into(),
                reason: Some("bye".into()),
            },
        );
        assert_eq!(drain(&hub, &a), "* alice left (bye)\n");
        assert_eq!(drain(&hub, &watcher), "* alice left (bye)\n");
        cmd(
            &hub,
            &a,
            HubCommand::Part {
                room: "lobby".into(),
                reason: None,
            },
        );
        assert_eq!(drain(&hub, &a), "! you are not in lobby\n");
        cmd(
            &hub,
            &a,
            HubCommand::Part {
                room: "nowhere".into(),
                reason: None,
            },
        );
        assert_eq!(drain(&hub, &a), "! no such room: nowhere\n");
        cmd(&hub, &a, HubCommand::PartAll);
        assert_eq!(drain(&hub, &a), "* alice left (left the room)\n");
        assert!(hub.rooms_of(a.id).is_empty());
        assert!(hub.room_view("x", 1).is_none(), "empty rooms go");
        assert_eq!(hub.len(), 2);
    }

    #[test]
    fn a_nick_change_or_quit_reaches_each_member_once() {
        let hub = ChatHub::new(1 << 20);
        let a = reg(&hub, "alice");
        let b = reg(&hub, "bob");
        let c = line(&hub);
        for room in ["lobby", "x", "y"] {
            enter(&hub, &a, room);
            enter(&hub, &b, room);
        }
        drain(&hub, &a);
        drain(&hub, &b);
        drain(&hub, &c);
        cmd(&hub, &a, say("x", "before"));
        cmd(&hub, &a, HubCommand::Nick("carol".into()));
        cmd(&hub, &b, say("y", "after"));
        assert_eq!(
            drain(&hub, &b),
            "<alice> before\n* alice is now carol\n",
            "once, in order"
        );
        assert_eq!(drain(&hub, &c), "* alice is now carol\n");
        assert_eq!(drain(&hub, &a), "* alice is now carol\n<bob> after\n");
        hub.leave(b.id, "quit");
        assert_eq!(drain(&hub, &a), "* bob left (quit)\n");
        assert_eq!(drain(&hub, &c), "* bob left (quit)\n");
    }

    #[test]
    fn topics_modes_and_room_operators() {
        let hub = ChatHub::new(1 << 20);
        let op = hub
            .join_operator("server", CancellationToken::new(), CancellationToken::new())
            .unwrap();
        let a = reg(&hub, "alice");
        let b = reg(&hub, "bob");
        enter(&hub, &a, "x");
        enter(&hub, &b, "x");
        drain(&hub, &a);
        drain(&hub, &b);
        let topic = |t: &str| HubCommand::Topic {
            room: "x".into(),
            text: Some(t.into()),
        };
        cmd(&hub, &b, topic("mine"));
        assert_eq!(drain(&hub, &b), "! you are not an operator of x\n");
        cmd(&hub, &a, topic("rust"));
        assert_eq!(drain(&hub, &a), "* alice set the topic of x: rust\n");
        assert_eq!(drain(&hub, &b), "* alice set the topic of x: rust\n");
        let mode = |change| HubCommand::Mode {
            room: "x".into(),
            change,
        };
        cmd(&hub, &a, mode(ModeChangeRequest::TopicLock(false)));
        assert_eq!(drain(&hub, &b), "* alice turned off topic lock in x\n");
        drain(&hub, &a);
        cmd(&hub, &b, topic("ours"));
        assert_eq!(drain(&hub, &a), "* bob set the topic of x: ours\n");
        drain(&hub, &b);
        cmd(&hub, &b, mode(ModeChangeRequest::NoOutside(false)));
        assert_eq!(drain(&hub, &b), "! you are not an operator of x\n");
        // The server's operator runs every room, from outside too.
        drain(&hub, &op);
        cmd(
            &hub,
            &op,
            mode(ModeChangeRequest::Operator {
                nick: "BOB".into(),
                on: true,
            }),
        );
        assert_eq!(drain(&hub, &b), "* server made bob an operator of x\n");
        assert_eq!(drain(&hub, &op), "* server made bob an operator of x\n");
        let v = hub.room_view("x", 10).unwrap();
        assert!(v.members.iter().all(|m| m.1), "{:?}", v.members);
        cmd(
            &hub,
            &b,
            HubCommand::Topic {
                room: "x".into(),
                text: None,
            },
        );
        assert_eq!(drain(&hub, &b), "* topic of x: ours\n");
    }

    #[test]
    fn room_operators_put_members_out_of_a_room_only() {
        let hub = ChatHub::new(1 << 20);
        let a = reg(&hub, "alice");
        let b = reg(&hub, "bob");
        enter(&hub, &a, "x");
        enter(&hub, &b, "x");
        enter(&hub, &b, "lobby");
        drain(&hub, &a);
        drain(&hub, &b);
        let kick = |room: &str, nick: &str| HubCommand::KickFrom {
            room: room.into(),
            nick: nick.into(),
            reason: Some("spam".into()),
        };
        cmd(&hub, &b, kick("x", "alice"));
        assert_eq!(drain(&hub, &b), "! you are not an operator of x\n");
        cmd(&hub, &a, kick("x", "nobody"));
        assert_eq!(drain(&hub, &a), "! no such nick: nobody\n");
        cmd(&hub, &a, kick("x", "bob"));
        assert_eq!(
            drain(&hub, &b),
            "* bob left (put out of x by alice: spam)\n"
        );
        assert_eq!(
            drain(&hub, &a),
            "* bob left (put out of x by alice: spam)\n"
        );
        assert_eq!(hub.rooms_of(b.id).len(), 1, "still in lobby");
        assert!(!b.removed.is_cancelled());
        cmd(&hub, &a, kick("x", "bob"));
        assert_eq!(drain(&hub, &a), "! bob is not in x\n");
    }

    #[test]
    fn away_state_and_room_cap() {
        let hub = ChatHub::new(1 << 20);
        hub.set_max_rooms(2);
        let a = reg(&hub, "alice");
        let watcher = line(&hub);
        enter(&hub, &a, "lobby");
        enter(&hub, &a, "x");
        drain(&hub, &watcher);
        enter(&hub, &a, "y");
        assert!(drain(&hub, &a).ends_with("! cannot enter y: you are in 2 rooms already\n"));
        cmd(&hub, &a, HubCommand::Away(Some("lunch".into())));
        assert_eq!(drain(&hub, &a), "* you are marked away\n");
        assert_eq!(drain(&hub, &watcher), "* alice is away: lunch\n");
        assert_eq!(
            hub.member_view("ALICE").unwrap().away.as_deref(),
            Some("lunch")
        );
        cmd(&hub, &a, HubCommand::Away(None));
        assert_eq!(drain(&hub, &watcher), "* alice is back\n");
    }

    #[test]
    fn outsiders_talk_only_where_the_room_allows_it() {
        let hub = ChatHub::new(1 << 20);
        let a = reg(&hub, "alice");
        let b = reg(&hub, "bob");
        enter(&hub, &a, "x");
        drain(&hub, &a);
        cmd(&hub, &b, say("x", "from outside"));
        assert_eq!(drain(&hub, &b), "! only members of x may talk there\n");
        cmd(
            &hub,
            &a,
            HubCommand::Mode {
                room: "x".into(),
                change: ModeChangeRequest::NoOutside(false),
            },
        );
        drain(&hub, &a);
        cmd(&hub, &b, say("x", "from outside"));
        assert_eq!(drain(&hub, &a), "<bob> from outside\n");
        cmd(&hub, &b, say("nowhere", "x"));
        assert_eq!(drain(&hub, &b), "! no such room: nowhere\n");
    }
}
