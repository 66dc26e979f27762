//! The browser's wire format: one JSON object per WebSocket text frame.
//!
//! Commands from the page ([`WebCommand::parse`]): `say`, `me`, `nick`, `join`,
//! `msg`, `who`, `rooms`, `quit`, `history`, `resume`, each `{"type": ..., fields}`. The
//! page turns typed `/commands` into these objects itself; a text frame that is
//! not one of them is an error, never guessed at.
//!
//! Events to the page ([`WireEvent::encode`]): the vocabulary `chat join --json`
//! prints (`message`, `action`, `private`, `private_sent`, `join`, `leave`,
//! `nick`, `system`, `error`) with the same field names, plus `ts` (RFC 3339
//! UTC, milliseconds), and `room` and `seq` (the room's sequence number) when
//! the event belongs to a room, and `"history": true` for replayed events.
//! Three kinds are for the page's side panels only, so it need not parse
//! notice text: `welcome` (`nick`, `room`), `members` (`room`, `nicks`) and
//! `rooms` (`rooms`: `[{"name", "members"}]`); the hub may send them as the
//! answers to `who` and `rooms` to web members instead of `system` text.
//! One more is web only: `joins` (`nicks`, `room`, `seq` of the first,
//! `last_seq`), several consecutive joins of one batch in one object, so a
//! join storm costs each member a name per join rather than an object.
//! History adds `cursor` (`room`, `seq`, `epoch`: the member has everything
//! of the room up to `seq`) and `gap` (`room`, `text`: a `resume` that could
//! not be answered; reload the room). In a cluster a room's numbers are
//! places in the shared room log (increasing, not consecutive): a room event
//! then also carries `prev`, the room's number before it, when that is not
//! `seq - 1`.
//! [`WireEvent`] is deliberately small and borrowed: mapping the hub's event
//! onto it is one function, and it is encoded once per batch.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::chat::event::rfc3339;

/// One command from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCommand {
    /// Say `text` in the current room.
    Say(String),
    /// An action (`/me text`).
    Me(String),
    /// Change nick.
    Nick(String),
    /// Move to (or create) a room.
    Join(String),
    /// A private message.
    Msg {
        /// Recipient nick.
        to: String,
        /// The text.
        text: String,
    },
    /// Who is in the room.
    Who,
    /// The list of rooms.
    Rooms,
    /// Leave, with an optional reason.
    Quit(Option<String>),
    /// The last `n` messages of the room (`None`: the server's default).
    History(Option<u32>),
    /// What was missed in `room` after the cursor (`epoch`, `after`).
    Resume {
        /// The room.
        room: String,
        /// The history database's epoch the cursor belongs to.
        epoch: String,
        /// The last sequence number seen.
        after: u64,
    },
}

/// Why a frame is not a command; its `Display` is the text of the `error` event sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a JSON object.
    NotJson,
    /// No `type` string.
    NoType,
    /// A `type` this server does not know.
    UnknownType(String),
    /// A required field is missing.
    Missing(&'static str, &'static str),
    /// A field of the wrong JSON type.
    WrongType(&'static str, &'static str),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NotJson => write!(f, "expected one JSON object per message"),
            CommandError::NoType => write!(f, "the command has no \"type\" string"),
            CommandError::UnknownType(t) => {
                let shown: String = t.chars().take(32).collect();
                write!(f, "unknown command type {shown:?}")
            }
            CommandError::Missing(ty, field) => write!(f, "{ty}: missing \"{field}\""),
            CommandError::WrongType(ty, field) => write!(f, "{ty}: \"{field}\" has the wrong type"),
        }
    }
}

impl std::error::Error for CommandError {}

fn string(
    obj: &Map<String, Value>,
    ty: &'static str,
    field: &'static str,
) -> Result<String, CommandError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(CommandError::Missing(ty, field)),
        Some(_) => Err(CommandError::WrongType(ty, field)),
    }
}

fn opt_string(
    obj: &Map<String, Value>,
    ty: &'static str,
    field: &'static str,
) -> Result<Option<String>, CommandError> {
    match string(obj, ty, field) {
        Ok(s) => Ok(Some(s)),
        Err(CommandError::Missing(..)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl WebCommand {
    /// Parses one text frame. Unknown extra fields are ignored (so a newer page
    /// works with an older server); unknown types and missing fields are errors.
    pub fn parse(frame: &str) -> Result<WebCommand, CommandError> {
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(frame) else {
            return Err(CommandError::NotJson);
        };
        let Some(Value::String(ty)) = obj.get("type") else {
            return Err(CommandError::NoType);
        };
        Ok(match ty.as_str() {
            "say" => WebCommand::Say(string(&obj, "say", "text")?),
            "me" => WebCommand::Me(string(&obj, "me", "text")?),
            "nick" => WebCommand::Nick(string(&obj, "nick", "nick")?),
            "join" => WebCommand::Join(string(&obj, "join", "room")?),
            "msg" => WebCommand::Msg {
                to: string(&obj, "msg", "to")?,
                text: string(&obj, "msg", "text")?,
            },
            "who" => WebCommand::Who,
            "rooms" => WebCommand::Rooms,
            "quit" => WebCommand::Quit(opt_string(&obj, "quit", "reason")?),
            "history" => WebCommand::History(match obj.get("n") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(
                    n.as_u64()
                        .map(|n| n.min(u64::from(u32::MAX)) as u32)
                        .ok_or(CommandError::WrongType("history", "n"))?,
                ),
                Some(_) => return Err(CommandError::WrongType("history", "n")),
            }),
            "resume" => WebCommand::Resume {
                room: string(&obj, "resume", "room")?,
                epoch: string(&obj, "resume", "epoch")?,
                after: match obj.get("after") {
                    Some(Value::Number(n)) => n
                        .as_u64()
                        .ok_or(CommandError::WrongType("resume", "after"))?,
                    None | Some(Value::Null) => {
                        return Err(CommandError::Missing("resume", "after"))
                    }
                    Some(_) => return Err(CommandError::WrongType("resume", "after")),
                },
            },
            other => return Err(CommandError::UnknownType(other.to_string())),
        })
    }
}

/// The kind of an event, with the fields that differ between kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireKind<'a> {
    /// `nick` said `text` in the room.
    Message {
        /// Who said it.
        nick: &'a str,
        /// What was said.
        text: &'a str,
    },
    /// `/me`.
    Action {
        /// Who did it.
        nick: &'a str,
        /// The action.
        text: &'a str,
    },
    /// A private message to this member.
    Private {
        /// The sender.
        from: &'a str,
        /// The text.
        text: &'a str,
    },
    /// This member's private message, as delivered.
    PrivateSent {
        /// The recipient.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
    /// `nick` joined the event's room.
    Join {
        /// Who.
        nick: &'a str,
    },
    /// `nick` left the event's room.
    Leave {
        /// Who.
        nick: &'a str,
        /// Why (`quit`, `connection closed`, `moved to games`, `kicked by op: ...`).
        reason: &'a str,
    },
    /// A nick change.
    Nick {
        /// The previous nick.
        old: &'a str,
        /// The new nick.
        new: &'a str,
    },
    /// A notice (welcome, `/who`, `/rooms`, `/help`, shutdown).
    System {
        /// The notice.
        text: &'a str,
    },
    /// An error meant for this member.
    Error {
        /// The error.
        text: &'a str,
    },
    /// Web only, first event of a connection and after a nick change by the
    /// server: who this member is (the event's `room` is where it is).
    Welcome {
        /// The member's nick.
        nick: &'a str,
    },
    /// Web only: several members joined the event's room one after another
    /// (a join storm): one object instead of one `join` each. `seq` is the
    /// first join's sequence number, `last_seq` the last one's.
    Joins {
        /// Who, in the order they joined.
        nicks: &'a [&'a str],
        /// The last join's sequence number.
        last_seq: u64,
    },
    /// Web only, the answer to `who`: the nicks in the event's `room`.
    Members {
        /// The nicks.
        nicks: &'a [String],
    },
    /// Web only: the member has every event of the event's `room` up to its
    /// `seq`, in the history database `epoch` (resume from there).
    Cursor {
        /// The history database's epoch.
        epoch: &'a str,
    },
    /// A `resume` could not be answered: reload the event's `room`.
    Gap {
        /// `gap: reload ROOM (why)`.
        text: &'a str,
    },
    /// Web only, the answer to `rooms`.
    Rooms {
        /// Each room with its member count.
        rooms: &'a [RoomCount],
    },
}

/// A room and how many members it has, in a [`WireKind::Rooms`] event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomCount {
    /// The room's name.
    pub name: String,
    /// Its member count.
    pub members: usize,
}

/// One event as the browser receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireEvent<'a> {
    /// What happened.
    pub kind: WireKind<'a>,
    /// The room it happened in, for room events.
    pub room: Option<&'a str>,
    /// The room's sequence number of the event, for room events.
    pub seq: Option<u64>,
    /// The room's event before it, when that is not `seq - 1` (in a
    /// cluster, numbers are places in the shared room log).
    pub prev: Option<u64>,
    /// Server time, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Replayed from history rather than live.
    pub history: bool,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(flatten)]
    kind: &'a WireKind<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<u64>,
    ts: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    history: bool,
}

impl WireEvent<'_> {
    /// The JSON object (no newline), as one text frame's payload.
    pub fn to_json(self) -> String {
        let wire = Wire {
            kind: &self.kind,
            room: self.room,
            seq: self.seq,
            prev: self
                .prev
                .filter(|&p| p != 0 && self.seq.is_some_and(|s| p + 1 != s)),
            ts: rfc3339(UNIX_EPOCH + Duration::from_millis(self.ts_ms)),
            history: self.history,
        };
        // Serializing borrowed strings and integers cannot fail; the fallback
        // keeps the output valid JSON regardless.
        serde_json::to_string(&wire)
            .unwrap_or_else(|_| String::from(r#"{"type":"error","text":"encoding failed"}"#))
    }

    /// Appends the event as one complete WebSocket text frame (see
    /// [`super::ws::encode_text`]): call it for each event of a batch, once per
    /// batch, and share the bytes between all web members that receive it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        super::ws::encode_text(&self.to_json(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_parse() {
        let cases = [
            (
                r#"{"type":"say","text":"hi"}"#,
                WebCommand::Say("hi".into()),
            ),
            (
                r#"{"type":"me","text":"waves"}"#,
                WebCommand::Me("waves".into()),
            ),
            (
                r#"{"type":"nick","nick":"bob"}"#,
                WebCommand::Nick("bob".into()),
            ),
            (
                r#"{"type":"join","room":"games"}"#,
                WebCommand::Join("games".into()),
            ),
            (
                r#"{"type":"msg","to":"ann","text":"psst"}"#,
                WebCommand::Msg {
                    to: "ann".into(),
                    text: "psst".into(),
                },
            ),
            (r#"{"type":"who"}"#, WebCommand::Who),
            (r#"{"type":"rooms","extra":1}"#, WebCommand::Rooms),
            (r#"{"type":"quit"}"#, WebCommand::Quit(None)),
            (
                r#"{"type":"quit","reason":"bye"}"#,
                WebCommand::Quit(Some("bye".into())),
            ),
            (r#"{"type":"history"}"#, WebCommand::History(None)),
            (
                r#"{"type":"history","n":50}"#,
                WebCommand::History(Some(50)),
            ),
            (
                r#"{"type":"say","text":"<script>\u202e\u001b[31m"}"#,
                WebCommand::Say("<script>\u{202e}\u{1b}[31m".into()),
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(WebCommand::parse(frame), Ok(want), "{frame}");
        }
    }

    #[test]
    fn bad_commands_have_clear_errors() {
        let cases = [
            ("/nick bob", "expected one JSON object per message"),
            ("[1,2]", "expected one JSON object per message"),
            (r#"{"text":"x"}"#, "the command has no \"type\" string"),
            (r#"{"type":7}"#, "the command has no \"type\" string"),
            (r#"{"type":"dance"}"#, "unknown command type \"dance\""),
            (r#"{"type":"say"}"#, "say: missing \"text\""),
            (
                r#"{"type":"say","text":3}"#,
                "say: \"text\" has the wrong type",
            ),
            (r#"{"type":"msg","text":"x"}"#, "msg: missing \"to\""),
            (r#"{"type":"join"}"#, "join: missing \"room\""),
            (
                r#"{"type":"history","n":-1}"#,
                "history: \"n\" has the wrong type",
            ),
            (
                r#"{"type":"history","n":"5"}"#,
                "history: \"n\" has the wrong type",
            ),
        ];
        for (frame, want) in cases {
            let err = WebCommand::parse(frame).unwrap_err();
            assert_eq!(err.to_string(), want, "{frame}");
        }
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(1000));
        assert!(WebCommand::parse(&long).unwrap_err().to_string().len() < 80);
    }

    fn ev(kind: WireKind<'_>, room: Option<&str>, seq: Option<u64>) -> Value {
        let e = WireEvent {
            kind,
            room,
            seq,
            prev: None,
            ts_ms: 951_782_400_123,
            history: false,
        };
        serde_json::from_str(&e.to_json()).unwrap()
    }

    #[test]
    fn a_room_number_after_a_hole_says_the_one_before() {
        let with = |prev| {
            let e = WireEvent {
                kind: WireKind::Join { nick: "a" },
                room: Some("lobby"),
                seq: Some(10),
                prev,
                ts_ms: 951_782_400_123,
                history: false,
            };
            serde_json::from_str::<Value>(&e.to_json()).unwrap()
        };
        assert_eq!(with(Some(7))["prev"], 7);
        for consecutive in [Some(9), Some(0), None] {
            assert!(with(consecutive).get("prev").is_none(), "{consecutive:?}");
        }
    }

    #[test]
    fn events_carry_type_fields_ts_room_and_seq() {
        let ts = "2000-02-29T00:00:00.123Z";
        assert_eq!(
            ev(
                WireKind::Message {
                    nick: "bob",
                    text: "<b>\"hi\"</b>"
                },
                Some("lobby"),
                Some(7)
            ),
            json!({"type":"message","nick":"bob","text":"<b>\"hi\"</b>","room":"lobby","seq":7,"ts":ts})
        );
        assert_eq!(
            ev(
                WireKind::Action {
                    nick: "a",
                    text: "waves"
                },
                Some("r"),
                Some(1)
            ),
            json!({"type":"action","nick":"a","text":"waves","room":"r","seq":1,"ts":ts})
        );
        assert_eq!(
            ev(
                WireKind::Private {
                    from: "a",
                    text: "x"
                },
                None,
                None
            ),
            json!({"type":"private","from":"a","text":"x","ts":ts})
        );
        assert_eq!(
            ev(WireKind::PrivateSent { to: "b", text: "x" }, None, None),
            json!({"type":"private_sent","to":"b","text":"x","ts":ts})
        );
        assert_eq!(
            ev(WireKind::Join { nick: "a" }, Some("lobby"), Some(2)),
            json!({"type":"join","nick":"a","room":"lobby","seq":2,"ts":ts})
        );
        assert_eq!(
            ev(
                WireKind::Leave {
                    nick: "a",
                    reason: "quit"
                },
                Some("lobby"),
                Some(3)
            ),
            json!({"type":"leave","nick":"a","reason":"quit","room":"lobby","seq":3,"ts":ts})
        );
        assert_eq!(
            ev(
                WireKind::Nick { old: "a", new: "b" },
                Some("lobby"),
                Some(4)
            ),
            json!({"type":"nick","old":"a","new":"b","room":"lobby","seq":4,"ts":ts})
        );
        assert_eq!(
            ev(WireKind::System { text: "welcome" }, None, None),
            json!({"type":"system","text":"welcome","ts":ts})
        );
        assert_eq!(
            ev(
                WireKind::Error {
                    text: "no such nick"
                },
                None,
                None
            ),
            json!({"type":"error","text":"no such nick","ts":ts})
        );
    }

    #[test]
    fn panel_events() {
        let ts = "2000-02-29T00:00:00.123Z";
        assert_eq!(
            ev(WireKind::Welcome { nick: "guest3" }, Some("lobby"), None),
            json!({"type":"welcome","nick":"guest3","room":"lobby","ts":ts})
        );
        let nicks = vec!["ann".to_string(), "bob".to_string()];
        assert_eq!(
            ev(WireKind::Members { nicks: &nicks }, Some("lobby"), None),
            json!({"type":"members","nicks":["ann","bob"],"room":"lobby","ts":ts})
        );
        let rooms = vec![RoomCount {
            name: "lobby".into(),
            members: 2,
        }];
        assert_eq!(
            ev(WireKind::Rooms { rooms: &rooms }, None, None),
            json!({"type":"rooms","rooms":[{"name":"lobby","members":2}],"ts":ts})
        );
    }

    #[test]
    fn history_is_marked_only_when_true() {
        let mut e = WireEvent {
            kind: WireKind::Message {
                nick: "a",
                text: "x",
            },
            room: Some("lobby"),
            seq: Some(1),
            prev: None,
            ts_ms: 0,
            history: true,
        };
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["history"], json!(true));
        e.history = false;
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert!(v.get("history").is_none());
    }

    #[test]
    fn the_event_names_match_chat_join_json() {
        // The same `type` values as `chat join --json` (event.rs), so one
        // program can read both.
        use crate::chat::event::ServerEvent as Event;
        let join = Event::Message {
            nick: "a".into(),
            text: "x".into(),
        };
        let theirs: Value = serde_json::from_str(&join.to_json("T")).unwrap();
        let ours = ev(
            WireKind::Message {
                nick: "a",
                text: "x",
            },
            None,
            None,
        );
        assert_eq!(theirs["type"], ours["type"]);
        assert_eq!(theirs["nick"], ours["nick"]);
        let sent = Event::PrivateSent {
            to: "b".into(),
            text: "x".into(),
        };
        let theirs: Value = serde_json::from_str(&sent.to_json("T")).unwrap();
        let ours = ev(WireKind::PrivateSent { to: "b", text: "x" }, None, None);
        assert_eq!(theirs["type"], ours["type"]);
    }

    #[test]
    fn encode_makes_one_text_frame() {
        let e = WireEvent {
            kind: WireKind::System { text: "hi" },
            room: None,
            seq: None,
            prev: None,
            ts_ms: 0,
            history: false,
        };
        let mut out = Vec::new();
        e.encode(&mut out);
        let json = e.to_json();
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1] as usize, json.len());
        assert_eq!(&out[2..], json.as_bytes());
    }
}
