//! Read-only views of the hub for front-ends that answer queries in their
//! own form (IRC's `NAMES`, `WHO`, `WHOIS`, `LIST`, `LUSERS`, `ISON`):
//! snapshots taken under the lock, costing what they list.

use std::collections::HashSet;
use std::sync::Arc;

use super::{resolve_room, ChatHub, Id};
use crate::chat::front::Protocol;
use crate::chat::protocol::nick_key;

/// One room as a query sees it.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// Its name.
    pub name: Arc<str>,
    /// Only room operators may set the topic.
    pub topic_lock: bool,
    /// Only members may talk there.
    pub no_outside: bool,
    /// The first members (up to the limit asked): nick, room operator,
    /// away, sorted case-folded.
    pub members: Vec<(String, bool, bool)>,
}

/// A room in a listing: name, members, topic.
pub type RoomLine = (Arc<str>, usize, Option<String>);

/// One member as a query sees it.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// Its nick.
    pub nick: Arc<str>,
    /// Its rooms, and whether it runs each.
    pub rooms: Vec<(Arc<str>, bool)>,
    /// Why it is away, if it is.
    pub away: Option<String>,
    /// The server's operator.
    pub operator: bool,
    /// Its front-end.
    pub protocol: Protocol,
    /// When it came (ms since the epoch).
    pub since: u64,
}

impl ChatHub {
    /// Room `room` (any case), with up to `limit` of its members.
    pub fn room_view(&self, room: &str, limit: usize) -> Option<RoomView> {
        let st = self.lock();
        let name = resolve_room(&st, room);
        let r = st.rooms.get(&name)?;
        let ops: HashSet<Id> = r.ops.iter().copied().chain(st.operator).collect();
        let mut members: Vec<_> = r
            .names
            .keys()
            .take(limit)
            .filter_map(|k| st.nicks.get(k))
            .filter_map(|id| {
                let m = st.members.get(id)?;
                Some((m.nick.to_string(), ops.contains(id), m.away.is_some()))
            })
            .collect();
        // Members on other nodes of the cluster.
        if let Some(link) = &st.cluster {
            let remote = link.remote_names(&r.name);
            let room = members.len();
            members.extend(
                remote
                    .into_iter()
                    .take(limit.saturating_sub(room))
                    .map(|(_, n)| (n, false, false)),
            );
        }
        Some(RoomView {
            name: r.name.clone(),
            topic_lock: r.topic_lock,
            no_outside: r.no_outside,
            members,
        })
    }

    /// Every room (up to `limit`, by name): name, members, topic.
    pub fn rooms_view(&self, limit: usize) -> (usize, Vec<RoomLine>) {
        let st = self.lock();
        let mut rooms: Vec<_> = st
            .rooms
            .values()
            .map(|r| {
                let topic = r.topic.as_ref().map(|t| t.text.clone());
                (r.name.clone(), r.members.len(), topic)
            })
            .collect();
        rooms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let total = rooms.len();
        rooms.truncate(limit);
        (total, rooms)
    }

    /// The member with nick `nick` (any case).
    pub fn member_view(&self, nick: &str) -> Option<MemberView> {
        let st = self.lock();
        let id = *st.nicks.get(&nick_key(nick))?;
        let m = st.members.get(&id)?;
        let rooms = m
            .rooms
            .iter()
            .map(|r| {
                let op = st.operator == Some(id)
                    || st.rooms.get(r).is_some_and(|room| room.ops.contains(&id));
                (r.clone(), op)
            })
            .collect();
        Some(MemberView {
            nick: m.nick.clone(),
            rooms,
            away: m.away.clone(),
            operator: m.operator,
            protocol: m.protocol,
            since: m.since,
        })
    }

    /// (members, rooms, operators present).
    pub fn counts(&self) -> (usize, usize, usize) {
        let st = self.lock();
        (
            st.members.len(),
            st.rooms.len(),
            usize::from(st.operator.is_some()),
        )
    }

    /// The rooms member `id` is in.
    pub fn rooms_of(&self, id: Id) -> Vec<Arc<str>> {
        let st = self.lock();
        st.members
            .get(&id)
            .map(|m| m.rooms.clone())
            .unwrap_or_default()
    }
}
