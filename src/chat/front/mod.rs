//! Front-ends: one per protocol. Each turns a member's input into hub
//! [`HubCommand`](super::hub::HubCommand)s and hub [`RoomEvent`]s into its own bytes.
//!
//! The seam is [`Protocol`]: every member is tagged with one when it joins
//! ([`ChatHub::join`](super::hub::ChatHub::join)), and the hub encodes each
//! room batch once per protocol present in the room through
//! [`Protocol::encode_event`], so that protocol's members share the bytes.
//! A new protocol adds a variant here, an encoder, and a session that reads
//! its input into commands.

pub mod irc;
pub mod line;
pub mod web;

use super::hub::{Echo, RoomEvent};

/// How a member speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The line protocol (`nc`, telnet, `chat join`, the operator console).
    Line = 0,
    /// WebSocket with one JSON object per text frame: each event is one
    /// complete, unmasked text frame, so a batch's frames are shared by every
    /// web member of the room, like line bytes.
    Web = 1,
    /// IRC (`--irc`), plain.
    Irc = 2,
    /// IRC with `away-notify`.
    IrcAway = 3,
    /// IRC with `server-time` tags.
    IrcTime = 4,
    /// IRC with `server-time` tags and `away-notify`.
    IrcTimeAway = 5,
    /// IRC with `message-tags`: client-only tags and `TAGMSG`, and the
    /// `server-time` tag (a client that takes tags ignores those it does
    /// not know).
    IrcTags = 6,
    /// IRC with `message-tags` and `away-notify`.
    IrcTagsAway = 7,
    /// The line protocol with cursor marks: a line member that asked for them
    /// (`/cursors`, as `chat join --reconnect` does) gets each room event as
    /// `@ROOM#SEQ ` followed by its line, and its own events back, so it
    /// knows the last sequence number it has and can resume from it.
    LineCursor = 8,
}

impl Protocol {
    /// How many protocols there are (the hub keeps one slot per protocol).
    pub const COUNT: usize = 9;

    /// Every protocol, in slot order.
    pub const ALL: [Protocol; Protocol::COUNT] = [
        Protocol::Line,
        Protocol::Web,
        Protocol::Irc,
        Protocol::IrcAway,
        Protocol::IrcTime,
        Protocol::IrcTimeAway,
        Protocol::IrcTags,
        Protocol::IrcTagsAway,
        Protocol::LineCursor,
    ];

    /// The IRC encoding with these options: six in all, whatever the
    /// members' other capabilities, so a batch never needs more.
    pub fn irc(time: bool, away: bool, tags: bool) -> Protocol {
        match (time || tags, away, tags) {
            (_, false, true) => Protocol::IrcTags,
            (_, true, true) => Protocol::IrcTagsAway,
            (false, false, _) => Protocol::Irc,
            (false, true, _) => Protocol::IrcAway,
            (true, false, _) => Protocol::IrcTime,
            (true, true, _) => Protocol::IrcTimeAway,
        }
    }

    /// Whether members of this protocol see client-only message tags.
    pub fn shows_tags(self) -> bool {
        matches!(self, Protocol::IrcTags | Protocol::IrcTagsAway)
    }

    /// This protocol's slot, `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Appends `ev` as this protocol shows it to a member (possibly nothing).
    pub fn encode_event(self, ev: &RoomEvent, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => line::encode_event(ev, out),
            Protocol::Web => web::encode_event(ev, out),
            Protocol::LineCursor => line::encode_marked(ev, out),
            irc => {
                let flavor = irc::Flavor {
                    time: !matches!(irc, Protocol::Irc | Protocol::IrcAway),
                    away: matches!(
                        irc,
                        Protocol::IrcAway | Protocol::IrcTimeAway | Protocol::IrcTagsAway
                    ),
                    tags: irc.shows_tags(),
                };
                irc::encode_event(ev, out, flavor)
            }
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
    /// protocol whose members get all their own events back ([`Echo::All`],
    /// the web's [`Self::default_echo`]), since no author's run is ever cut
    /// out of theirs, and because a member's skips (events it gets through
    /// another room) are nick changes and leaves, never joins.
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

    /// Appends `ev`, replayed from history, marked so that it cannot be
    /// mistaken for a live event: the line protocol's `=ROOM#SEQ TIME` lines,
    /// the web's `"history": true`, IRC's `server-time` tag with the event's
    /// own time (an IRC client without `server-time` is sent no history: it
    /// could not tell it from live lines).
    pub fn encode_history(self, ev: &RoomEvent, out: &mut Vec<u8>) {
        match self {
            Protocol::Line | Protocol::LineCursor => line::encode_history(ev, out),
            Protocol::Web => web::encode_history(ev, out),
            Protocol::IrcTime
            | Protocol::IrcTimeAway
            | Protocol::IrcTags
            | Protocol::IrcTagsAway => self.encode_event(ev, out),
            Protocol::Irc | Protocol::IrcAway => {}
        }
    }

    /// Which of their own room events members get back by default (the
    /// page shows what was said once the room has it, with its sequence
    /// number; a terminal already shows what was typed).
    pub fn default_echo(self) -> Echo {
        match self {
            Protocol::Web | Protocol::LineCursor => Echo::All,
            _ => Echo::None,
        }
    }

    /// Whether this is one of IRC's encodings.
    pub fn is_irc(self) -> bool {
        matches!(
            self,
            Protocol::Irc
                | Protocol::IrcAway
                | Protocol::IrcTime
                | Protocol::IrcTimeAway
                | Protocol::IrcTags
                | Protocol::IrcTagsAway
        )
    }

    /// `ev` alone, encoded.
    pub fn encode(self, ev: &RoomEvent) -> bytes::Bytes {
        let mut out = Vec::new();
        self.encode_event(ev, &mut out);
        bytes::Bytes::from(out)
    }
}
