//! What nodes say to each other over NATS, and the names they say it under.
//!
//! Room events are JSON. A node publishes them on `sockit.log.<room>`, the
//! room log's subjects; the log stores each one and republishes it on
//! `sockit.room.<room>` with its place in the log, and that is what nodes
//! listen to. What is meant for one node (a private message, a kick) goes on
//! `sockit.node.<node>`. Names go into subject
//! tokens and key-value keys through [`token`], which keeps `[A-Za-z0-9-]`
//! and writes every other byte as `_XX`: a room name's `.` can never split a
//! subject, and the mapping is one-to-one.

use serde::{Deserialize, Serialize};

/// Every subject sockit uses starts with this.
pub const PREFIX: &str = "sockit";

/// `name` as one subject token or key-value key segment (see the module doc).
pub fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The inverse of [`token`], for names read back from keys.
pub fn untoken(tok: &str) -> Option<String> {
    let b = tok.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            let hex = tok.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The subject a room's events are delivered on (republished by the log).
pub fn room_subject(room: &str) -> String {
    format!("{PREFIX}.room.{}", token(room))
}

/// The subject a room's events are published and logged on.
pub fn log_subject(room: &str) -> String {
    format!("{PREFIX}.log.{}", token(room))
}

/// Every room's log subject (the log stream's filter).
pub fn all_logs() -> String {
    format!("{PREFIX}.log.*")
}

/// Where the log republishes what it stored from [`all_logs`]: the same
/// room's [`room_subject`].
pub fn republished() -> String {
    format!("{PREFIX}.room.{{{{wildcard(1)}}}}")
}

/// The subject of what is meant for one node.
pub fn node_subject(node: &str) -> String {
    format!("{PREFIX}.node.{}", token(node))
}

/// One room event as it crosses between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The node it happened on.
    pub node: String,
    /// That node's process (a node restarted under the same name starts a
    /// new sequence).
    pub epoch: u64,
    /// The origin's sequence number for this room: 1, 2, 3... per room and
    /// epoch, so a receiver sees a lost message as a gap.
    pub seq: u64,
    /// The room.
    pub room: String,
    /// The origin's server time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The sender's nick; empty for the server.
    pub from: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: WireKind,
}

/// The kinds of room event that cross (replies to one member never do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireKind {
    /// A message.
    Message {
        /// What was said.
        text: String,
    },
    /// `/me`.
    Action {
        /// The action.
        text: String,
    },
    /// A member came into the room.
    Join,
    /// A member left the room.
    Leave {
        /// Why.
        reason: String,
    },
    /// A member changed its nick.
    Nick {
        /// The new nick.
        new: String,
    },
    /// A member left the room but stays in the chat.
    Part {
        /// Why.
        reason: String,
    },
    /// A room operator put `target` out of the room.
    Kick {
        /// Who was put out.
        target: String,
        /// Why, if said.
        reason: Option<String>,
    },
    /// The room's topic changed.
    Topic {
        /// The new topic.
        text: String,
    },
    /// A member is away, or back (`None`).
    Away {
        /// Why, while away.
        text: Option<String>,
    },
}

/// What is sent to one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Direct {
    /// A private message for a member of that node.
    Private {
        /// Sender's nick.
        from: String,
        /// Recipient's nick.
        to: String,
        /// The sender's room.
        room: String,
        /// The text.
        text: String,
        /// Sender's server time.
        ts: u64,
    },
    /// The operator of another node kicks a member of that node.
    Kick {
        /// The member's nick.
        target: String,
        /// The operator's nick.
        by: String,
        /// Why, if said.
        reason: Option<String>,
    },
}

/// Who holds a nick, or who sits in a room (the key-value buckets' values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The node.
    pub node: String,
    /// The nick as its owner spells it.
    pub nick: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_safe_and_reversible() {
        for name in ["lobby", "a.b", "x_y", "[]\\`^{|}", "Room-1", "a b*>"] {
            let t = token(name);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert_eq!(untoken(&t).as_deref(), Some(name));
        }
        assert_eq!(room_subject("games.night"), "sockit.room.games_2Enight");
        assert_eq!(log_subject("games.night"), "sockit.log.games_2Enight");
        assert_eq!(republished(), "sockit.room.{{wildcard(1)}}");
    }

    #[test]
    fn events_round_trip_as_json() {
        let ev = WireEvent {
            node: "n1".into(),
            epoch: 7,
            seq: 3,
            room: "lobby".into(),
            ts: 1,
            from: "ann".into(),
            kind: WireKind::Leave {
                reason: "quit".into(),
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains(r#""kind":"leave""#), "{json}");
        assert_eq!(serde_json::from_str::<WireEvent>(&json).unwrap(), ev);
    }
}
