//! The hub's side of history (`chat::history`): replay on entering a room,
//! `/history`, resume, cursor marks, and numbering that outlives a room.
//!
//! Everything here runs under the hub's lock, so what a member is sent from
//! history comes before any live event of the room it has not seen: the
//! room's pending events are not yet fanned out, and history reads merge
//! them with the writer's queue and the database.

use std::sync::Arc;

use super::{ChatHub, Echo, EventKind, HubState, Id, Notice, Pushed, Refusal, RoomEvent};
use crate::chat::front::Protocol;
use crate::chat::history::{Query, HISTORY_MAX, RESUME_MAX};
use crate::chat::hub::now_ms;

// `history`, `history_epoch` and `history_said` are the query API of
// front-ends that ask for ranges (IRC's CHATHISTORY uses `history_said`);
// the line and web front-ends go through hub commands.
#[allow(dead_code)]
impl ChatHub {
    /// A query on `room`'s history (for front-ends, e.g. IRC's CHATHISTORY),
    /// including events not yet fanned out. Empty without history.
    pub fn history(&self, room: &str, q: Query) -> Vec<RoomEvent> {
        let Some((h, _)) = &self.history else {
            return Vec::new();
        };
        let st = self.lock();
        let (name, pending): (Arc<str>, &[RoomEvent]) = match st.rooms.get(room) {
            Some(r) => (r.name.clone(), &r.pending),
            None => (Arc::from(room), &[]),
        };
        h.query_with(&name, q, pending)
    }

    /// Up to `n` messages and actions of `room` with `lo < seq < hi`: the
    /// first `n`, or the last `n` if `from_end` (for IRC's CHATHISTORY),
    /// including events not yet fanned out. Ascending; empty without history.
    pub fn history_said(
        &self,
        room: &str,
        lo: u64,
        hi: u64,
        n: usize,
        from_end: bool,
    ) -> Vec<RoomEvent> {
        let Some((h, _)) = &self.history else {
            return Vec::new();
        };
        let st = self.lock();
        let (name, pending): (Arc<str>, &[RoomEvent]) = match st.rooms.get(room) {
            Some(r) => (r.name.clone(), &r.pending),
            None => (Arc::from(room), &[]),
        };
        h.range(&name, lo, hi, n, from_end, true, pending)
    }

    /// Whether member `id` (IRC, with `batch`) gets replays on entering a
    /// room inside a `chathistory` batch.
    pub fn set_history_batch(&self, id: Id, on: bool) {
        if let Some(m) = self.lock().members.get_mut(&id) {
            m.batch = on;
        }
    }

    /// Whether the hub keeps history.
    pub fn keeps_history(&self) -> bool {
        self.history.is_some()
    }

    /// The history database's epoch, if the hub keeps history.
    pub fn history_epoch(&self) -> Option<Arc<str>> {
        self.history.as_ref().map(|(h, _)| h.epoch().clone())
    }

    /// A room emptied and closed: keep its number, and hand its last
    /// events (nobody was left to see them) to history.
    pub(super) fn room_closed(
        &self,
        st: &mut HubState,
        name: Arc<str>,
        seq: u64,
        pending: Vec<RoomEvent>,
    ) {
        if let Some((h, _)) = &self.history {
            h.submit(Arc::new(pending));
            st.seqs.insert(name.to_string(), seq);
        }
    }

    /// Sends `events` to member `to` as history, with its cursor for `room`
    /// before them (`first`: on entering a room, so that a client knows the
    /// epoch before any of the room's events) or after them.
    fn send_history(
        &self,
        st: &mut HubState,
        to: Id,
        room: &Arc<str>,
        events: &[RoomEvent],
        first: bool,
    ) {
        let Some((h, _)) = &self.history else {
            return;
        };
        let seq = st.rooms.get(room).map_or(0, |r| r.seq);
        let slow = match st.members.get(&to) {
            Some(m) => {
                let mut data = Vec::new();
                let cursor = RoomEvent {
                    room: room.clone(),
                    seq: 0,
                    prev: 0,
                    ts: now_ms(),
                    from: Arc::from(""),
                    kind: EventKind::Notice(Notice::Cursor {
                        room: room.clone(),
                        epoch: h.epoch().clone(),
                        seq,
                    }),
                };
                if first {
                    m.protocol.encode_event(&cursor, &mut data);
                }
                m.protocol.encode_replay(room, events, m.batch, &mut data);
                if !first {
                    m.protocol.encode_event(&cursor, &mut data);
                }
                if data.is_empty() {
                    return;
                }
                let pushed = m.out.enqueue(&[bytes::Bytes::from(data)]);
                st.touched.push(m.out.clone());
                pushed == Pushed::TooSlow
            }
            None => return,
        };
        if slow {
            self.remove(st, to, "too slow");
        }
    }

    /// The last `--history-on-join` messages of `room`, for a member who
    /// just entered it (before the room's next live event reaches it).
    pub(super) fn replay(&self, st: &mut HubState, id: Id, room: &Arc<str>) {
        let Some((h, n)) = &self.history else {
            return;
        };
        if st.cluster.as_ref().is_some_and(|l| !l.filled(room)) {
            // The room log's history of the room is on its way.
            if let Some(r) = st.rooms.get_mut(room) {
                r.fresh.push(id);
            }
            return;
        }
        let (hi, events) = match st.rooms.get(room) {
            Some(r) => (
                r.seq + 1,
                h.range(room, 0, r.seq + 1, *n, true, true, &r.pending),
            ),
            None => return,
        };
        debug_assert!(events.iter().all(|e| e.seq < hi));
        self.send_history(st, id, room, &events, true);
    }

    /// `/history [N]`: the last N messages of the member's room.
    pub(super) fn show_history(&self, st: &mut HubState, id: Id, room: &Arc<str>, n: Option<u32>) {
        let Some((h, on_join)) = &self.history else {
            return self.error(
                st,
                id,
                Refusal::Usage("this server keeps no history (--no-history)"),
            );
        };
        let n = n.map_or(*on_join, |n| n as usize).min(HISTORY_MAX);
        let events = match st.rooms.get(room) {
            Some(r) => h.range(room, 0, r.seq + 1, n, true, true, &r.pending),
            None => Vec::new(),
        };
        self.send_history(st, id, room, &events, false);
    }

    /// A resume: every event of `room` after `after`, or a gap notice when
    /// they are not all kept (pruned, another epoch, paused history, too many).
    pub(super) fn resume(&self, st: &mut HubState, id: Id, room: &str, epoch: &str, after: u64) {
        let Some((h, _)) = &self.history else {
            return self.error(
                st,
                id,
                Refusal::Usage("this server keeps no history (--no-history)"),
            );
        };
        let mine = st
            .members
            .get(&id)
            .and_then(|m| m.rooms.iter().find(|r| &***r == room).cloned());
        let Some(room) = mine else {
            return self.error(st, id, Refusal::Usage("/resume: you are not in that room"));
        };
        let gap = |st: &mut HubState, reason: String| {
            let kind = EventKind::Notice(Notice::Gap {
                room: room.clone(),
                reason,
            });
            self.reply(st, id, kind);
        };
        if epoch != &**h.epoch() {
            return gap(st, "the server's history was reset (another epoch)".into());
        }
        let (now, events) = match st.rooms.get(&room) {
            Some(r) => (
                r.seq,
                h.range(
                    &room,
                    after,
                    u64::MAX,
                    RESUME_MAX + 1,
                    false,
                    false,
                    &r.pending,
                ),
            ),
            None => return,
        };
        if after > now {
            return gap(st, format!("seq {after} is ahead of the room's {now}"));
        }
        if events.len() > RESUME_MAX {
            return gap(st, format!("more than {RESUME_MAX} events were missed"));
        }
        // Every event from after to now must be there, each naming the one
        // before it (in a cluster numbers leave holes; `prev` says which are
        // events): a break is what was pruned, lost in a crash, or not
        // stored while history was paused.
        let mut at = after;
        let whole = events.iter().all(|e| {
            let next = e.prev == at;
            at = e.seq;
            next
        }) && at == now;
        if !whole {
            let first = h.first_seq(&room);
            let why = match first {
                Some(f) if f > after + 1 => format!("events before {f} are no longer kept"),
                _ => "some events after it are not kept".to_string(),
            };
            return gap(st, why);
        }
        self.send_history(st, id, &room, &events, false);
    }

    /// `/cursors`: from now on, this line member's room events carry their
    /// cursor marks, and its own events come back (so none is unnumbered);
    /// then a cursor for each room it is in.
    pub(super) fn cursors(&self, st: &mut HubState, id: Id) {
        // Without history there is nothing to resume: no marks either.
        if self.history.is_none() {
            return;
        }
        let Some(m) = st.members.get_mut(&id) else {
            return;
        };
        match m.protocol {
            Protocol::Line => {
                m.protocol = Protocol::LineCursor;
                m.echo = Echo::All;
                let rooms = m.rooms.clone();
                for room in &rooms {
                    let Some(r) = st.rooms.get_mut(room) else {
                        continue;
                    };
                    r.protocols[Protocol::Line.index()] -= 1;
                    r.protocols[Protocol::LineCursor.index()] += 1;
                    let list = Arc::make_mut(&mut r.members);
                    if let Some(seat) = list.iter_mut().find(|s| s.id == id) {
                        seat.protocol = Protocol::LineCursor;
                        seat.echo = Echo::All;
                    }
                }
            }
            Protocol::LineCursor => {}
            _ => return self.error(st, id, Refusal::Usage("/cursors is for the line protocol")),
        }
        let rooms = st
            .members
            .get(&id)
            .map(|m| m.rooms.clone())
            .unwrap_or_default();
        for room in rooms {
            self.send_history(st, id, &room, &[], false);
        }
    }
}
