//! The hub's side of the cluster (`chat::cluster`): what other nodes send in
//! (their room events, private messages, kicks, lost nodes) and the answers
//! to nick claims. Without `--cluster` none of this runs, and the hooks in
//! the hub cost one `Option` check.

use std::sync::Arc;

use super::{
    now_ms, Caller, ChatHub, EventKind, HubState, Id, Notice, Refusal, RoomEvent, Spread, LOBBY,
};
use crate::chat::cluster::wire::{WireEvent, WireKind};
use crate::chat::cluster::Link;
use crate::chat::protocol::{nick_key, MAX_LISTED};

/// One of this node's events shown without a number: (room, author, from, kind).
pub type Unnumbered = (Arc<str>, Option<Id>, Arc<str>, EventKind);

impl ChatHub {
    /// Joins this hub to the cluster through `link`. Guest numbers start at
    /// a random point, so nodes seldom offer the same guest nick.
    pub fn attach(&self, link: Arc<Link>) {
        let mut st = self.lock();
        st.next_guest = 1 + (now_ms() ^ u64::from(std::process::id()) << 7) % 900_000;
        link.interest(&Arc::from(LOBBY), true);
        st.cluster = Some(link);
    }

    /// A room event numbered by the room log, at place `seq` (the room's
    /// previous at `prev`): another node's, or with `own` this node's back
    /// (its author, its kind as posted, and whether it was already shown
    /// unnumbered: then it is only kept). Into the room's next batch, where
    /// the room's local members get it encoded once per protocol; only into
    /// history unless `live` (what the room said before this node hosted it).
    pub fn placed(
        &self,
        room: &str,
        seq: u64,
        prev: u64,
        ev: WireEvent,
        own: Option<(Option<Id>, EventKind, bool)>,
        live: bool,
    ) {
        let (author, kind, show) = match own {
            Some((author, kind, shown)) => (author, kind, !shown),
            None => (None, from_wire(ev.kind), live),
        };
        let mut e = RoomEvent {
            room: room.into(),
            seq,
            prev,
            ts: ev.ts,
            from: ev.from.into(),
            kind,
        };
        let mut st = self.lock();
        let Some(r) = st.rooms.get_mut(room) else {
            // History of a room no local member is in yet (the lobby's,
            // read at start): kept, and the room's number goes on from it.
            if let (Some((h, _)), false) = (&self.history, live) {
                let last = st.seqs.entry(room.to_string()).or_default();
                if seq > *last {
                    *last = seq;
                    h.submit(Arc::new(vec![e]));
                }
            }
            return self.unlock(st);
        };
        if seq <= r.seq {
            return self.unlock(st);
        }
        r.seq = seq;
        e.room = r.name.clone();
        if show {
            if matches!(e.kind, EventKind::Nick { .. } | EventKind::Leave { .. }) {
                self.spread_once(&mut st, &e);
            }
            self.push(&mut st, room, author, vec![e]);
        } else if let Some((h, _)) = &self.history {
            h.submit(Arc::new(vec![e]));
        }
        self.unlock(st);
    }

    /// A nick change or quit about to join `ev.room`'s batch: members who
    /// already got it through another room they share skip this copy.
    fn spread_once(&self, st: &mut HubState, ev: &RoomEvent) {
        /// How long copies of one change are matched, and how many kept.
        const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
        const KEEP: usize = 1024;
        while st
            .spread
            .front()
            .is_some_and(|s| s.at.elapsed() > WINDOW || st.spread.len() > KEEP)
        {
            st.spread.pop_front();
        }
        let found = st
            .spread
            .iter()
            .position(|s| s.from == ev.from && s.kind == ev.kind);
        let Some(i) = found else {
            st.spread.push_back(Spread {
                at: std::time::Instant::now(),
                from: ev.from.clone(),
                kind: ev.kind.clone(),
                rooms: vec![ev.room.clone()],
            });
            return;
        };
        let earlier = std::mem::take(&mut st.spread[i].rooms);
        if let Some(r) = st.rooms.get(&ev.room) {
            let at = r.pending.len();
            let skip: Vec<(Id, usize)> = r
                .members
                .iter()
                .filter(|seat| {
                    st.members
                        .get(&seat.id)
                        .is_some_and(|m| m.rooms.iter().any(|x| earlier.contains(x)))
                })
                .map(|seat| (seat.id, at))
                .collect();
            if let Some(r) = st.rooms.get_mut(&ev.room) {
                r.skips.extend(skip);
            }
        }
        let mut rooms = earlier;
        rooms.push(ev.room.clone());
        st.spread[i].rooms = rooms;
    }

    /// The room's last number here (0: nothing yet).
    pub fn room_seq(&self, room: &str) -> u64 {
        let st = self.lock();
        match st.rooms.get(room) {
            Some(r) => r.seq,
            None => st.seqs.get(room).copied().unwrap_or(0),
        }
    }

    /// The room log's history of a room this node has begun to host is in:
    /// members who came meanwhile get their replay now.
    pub fn filled(&self, room: &str) {
        let mut st = self.lock();
        let fresh = match st.rooms.get_mut(room) {
            Some(r) if !r.fresh.is_empty() => std::mem::take(&mut r.fresh),
            _ => return self.unlock(st),
        };
        if let Some(name) = st.rooms.get(room).map(|r| r.name.clone()) {
            for id in fresh {
                let here = st.members.get(&id).is_some_and(|m| m.rooms.contains(&name));
                if here {
                    self.replay(&mut st, id, &name);
                }
            }
        }
        self.unlock(st);
    }

    /// This node's events the room log did not give back in time: shown
    /// now, unnumbered, in their rooms.
    pub fn show_unnumbered(&self, events: Vec<Unnumbered>) {
        let mut st = self.lock();
        let ts = now_ms();
        for (room, author, from, kind) in events {
            let e = RoomEvent {
                room: room.clone(),
                seq: 0,
                prev: 0,
                ts,
                from,
                kind,
            };
            self.push(&mut st, &room, author, vec![e]);
        }
        self.unlock(st);
    }

    /// Posts events that came from another node: they are not published again.
    fn post_inbound(
        &self,
        st: &mut HubState,
        room: &str,
        events: impl IntoIterator<Item = (Arc<str>, EventKind)>,
    ) {
        st.inbound = true;
        self.post(st, room, None, events);
        st.inbound = false;
    }

    /// Members of a node that is gone: `left (node lost)` in each room.
    pub fn node_lost(&self, gone: Vec<(Arc<str>, String)>) {
        let mut st = self.lock();
        for (room, nick) in gone {
            // Came back on this node (reconnected) meanwhile: still here.
            if st.nicks.contains_key(&nick_key(&nick)) {
                continue;
            }
            let left = EventKind::Leave {
                reason: "node lost".into(),
            };
            self.post_inbound(&mut st, &room, [(Arc::from(nick), left)]);
        }
        self.unlock(st);
    }

    /// The cluster granted `new` to member `id`: the rename goes ahead (a
    /// guest's first nick needs nothing more).
    pub fn nick_claimed(&self, id: Id, new: &str, guest: bool) {
        let mut st = self.lock();
        let Some(m) = st.members.get(&id) else {
            drop(st);
            if let Some(link) = self.lock().cluster.clone() {
                link.release(new);
            }
            return;
        };
        if !guest && &*m.nick != new {
            let me = Caller {
                id,
                nick: m.nick.clone(),
                room: m.room.clone(),
                operator: m.operator,
                tags: None,
            };
            self.rename_now(&mut st, &me, new);
        }
        self.unlock(st);
    }

    /// The cluster refused `new`: a member is told; a guest whose number
    /// another node gave out takes the next one.
    pub fn nick_denied(&self, id: Id, new: &str, guest: bool) {
        let mut st = self.lock();
        if !guest {
            self.error(&mut st, id, Refusal::NickTaken(new.to_string()));
        } else if let Some(m) = st.members.get(&id) {
            if &*m.nick == new {
                let me = Caller {
                    id,
                    nick: m.nick.clone(),
                    room: m.room.clone(),
                    operator: m.operator,
                    tags: None,
                };
                let guest = self.next_guest(&mut st);
                self.rename_now(&mut st, &me, &guest);
                if let Some(link) = st.cluster.clone() {
                    link.claim(id, &guest, true);
                }
            }
        }
        self.unlock(st);
    }

    /// Nobody in the cluster has that nick.
    pub fn no_such_nick(&self, id: Id, nick: &str) {
        self.refuse(id, Refusal::NoSuchNick(nick.to_string()));
    }

    /// A private message went to another node: the sender's copy.
    pub fn private_sent(&self, id: Id, from: Arc<str>, room: Arc<str>, to: Arc<str>, text: String) {
        let ev = RoomEvent {
            room,
            seq: 0,
            prev: 0,
            ts: now_ms(),
            from,
            kind: EventKind::Private {
                to,
                text,
                echo: true,
            },
        };
        let mut st = self.lock();
        self.deliver(&mut st, id, &ev);
        self.unlock(st);
    }

    /// A private message from a member of another node.
    pub fn private_in(&self, from: &str, to: &str, room: &str, text: String, ts: u64) {
        let mut st = self.lock();
        if let Some(target) = st.nicks.get(&nick_key(to)).copied() {
            if let Some(m) = st.members.get(&target) {
                let ev = RoomEvent {
                    room: room.into(),
                    seq: 0,
                    prev: 0,
                    ts,
                    from: from.into(),
                    kind: EventKind::Private {
                        to: m.nick.clone(),
                        text: super::clean(text),
                        echo: false,
                    },
                };
                self.deliver(&mut st, target, &ev);
            }
        }
        self.unlock(st);
    }

    /// Another node's operator kicks a member of this one.
    pub fn kick_in(&self, target: &str, by: &str, reason: Option<String>) {
        let mut st = self.lock();
        if let Some(t) = st.nicks.get(&nick_key(target)).copied() {
            let why = match &reason {
                Some(r) => format!("kicked by {by}: {r}"),
                None => format!("kicked by {by}"),
            };
            let kicked = Refusal::Kicked {
                by: by.into(),
                reason: super::clean_opt(reason),
            };
            self.error(&mut st, t, kicked);
            self.remove(&mut st, t, &why);
        }
        self.unlock(st);
    }

    /// `who` in cluster mode: local and remote members, merged in order.
    pub(super) fn who_cluster(&self, st: &HubState, link: &Link, me: &Caller) -> Notice {
        let remote = link.remote_names(&me.room);
        let local = st.rooms.get(&me.room);
        let mut all: Vec<(String, String)> = local
            .map(|r| {
                r.names
                    .iter()
                    .map(|(k, n)| (k.clone(), n.clone()))
                    .collect()
            })
            .unwrap_or_default();
        all.extend(remote);
        all.sort_unstable();
        all.dedup_by(|a, b| a.0 == b.0);
        Notice::Who {
            room: me.room.clone(),
            total: all.len(),
            nicks: all.into_iter().take(MAX_LISTED).map(|(_, n)| n).collect(),
        }
    }
}

/// A room event's kind as it crossed, as the hub keeps it (peer text
/// sanitized as any front-end's).
fn from_wire(kind: WireKind) -> EventKind {
    match kind {
        WireKind::Message { text } => EventKind::Message {
            text: super::clean(text),
        },
        WireKind::Action { text } => EventKind::Action {
            text: super::clean(text),
        },
        WireKind::Join => EventKind::Join,
        WireKind::Leave { reason } => EventKind::Leave {
            reason: super::clean(reason),
        },
        WireKind::Nick { new } => EventKind::Nick { new: new.into() },
        WireKind::Part { reason } => EventKind::Part {
            reason: super::clean(reason),
        },
        WireKind::Kick { target, reason } => EventKind::Kick {
            target: target.into(),
            reason: super::clean_opt(reason),
        },
        WireKind::Topic { text } => EventKind::Topic {
            text: super::clean(text),
        },
        WireKind::Away { text } => EventKind::Away {
            text: super::clean_opt(text),
        },
    }
}
