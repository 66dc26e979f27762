//! Front-ends: one per protocol. Each turns a member's input into hub
//! [`HubCommand`](super::hub::HubCommand)s and hub [`RoomEvent`]s into its own bytes.
//!
//! The seam is [`Protocol`]: every member is tagged with one when it joins
//! ([`ChatHub::join`](super::hub::ChatHub::join)), and the hub encodes each
//! room batch once per protocol present in the room through
//! [`Protocol::encode_event`], so that protocol's members share the bytes.
//! A new protocol adds a variant here, an encoder, and a session that reads
//! its input into commands.

pub mod line;
pub mod web;

use super::hub::RoomEvent;

/// How a member speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The line protocol (`nc`, telnet, `chat join`, the operator console).
    Line = 0,
    /// WebSocket with one JSON object per text frame: each event is one
    /// complete, unmasked text frame, so a batch's frames are shared by every
    /// web member of the room, like line bytes.
    Web = 1,
}

impl Protocol {
    /// How many protocols there are (the hub keeps one slot per protocol).
    pub const COUNT: usize = 2;

    /// Every protocol, in slot order.
    pub const ALL: [Protocol; Protocol::COUNT] = [Protocol::Line, Protocol::Web];

    /// This protocol's slot, `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Appends `ev` as this protocol shows it to a member (possibly nothing).
    pub fn encode_event(self, ev: &RoomEvent, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => line::encode_event(ev, out),
            Protocol::Web => web::encode_event(ev, out),
        }
    }

    /// Appends a room batch's events, pushing after each the offset where
    /// that event's bytes end in `out` (one entry per event, never
    /// decreasing): a member who arrived at event `i` gets `out[ends[i - 1]..]`.
    /// Line-like protocols encode each event on its own. The web front-end
    /// folds a run of joins into one `joins` object: the events inside such
    /// a run end where the run starts, so a member arriving in the middle
    /// gets the whole run (it is told of the joins just before its own, of
    /// members who are in the room anyway). That is only sound for a
    /// protocol whose members get their own events back ([`Self::echoes_own`]),
    /// since no author's run is ever cut out of theirs.
    pub fn encode_batch(self, events: &[RoomEvent], out: &mut Vec<u8>, ends: &mut Vec<usize>) {
        match self {
            Protocol::Web => web::encode_batch(events, out, ends),
            _ => {
                for ev in events {
                    self.encode_event(ev, out);
                    ends.push(out.len());
                }
            }
        }
    }

    /// Whether members see their own room messages come back (the page
    /// shows what was said once the room has it, with its sequence number;
    /// a terminal already shows what was typed).
    pub fn echoes_own(self) -> bool {
        self == Protocol::Web
    }

    /// `ev` alone, encoded.
    pub fn encode(self, ev: &RoomEvent) -> bytes::Bytes {
        let mut out = Vec::new();
        self.encode_event(ev, &mut out);
        bytes::Bytes::from(out)
    }
}
