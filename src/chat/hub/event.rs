//! What the hub carries: structured events out, protocol-neutral commands in.
//! No protocol text here: each front-end (`chat::front`) shows events in its
//! own form and turns its own input into [`HubCommand`]s.

use std::sync::Arc;

use crate::chat::protocol::KICKED;

/// Identifies a member for its lifetime.
pub type Id = u64;

/// Milliseconds since the Unix epoch, the events' clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One event, as the hub hands it to front-ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomEvent {
    /// The room it happened in (for replies to one member: that member's room).
    pub room: Arc<str>,
    /// The room's sequence number, assigned when the event entered the room:
    /// 1, 2, 3... per room, from the room's creation. 0 for what was never in
    /// a room's stream (replies, errors and private messages to one member).
    pub seq: u64,
    /// Server time in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The sender's nick; empty for the server itself.
    pub from: Arc<str>,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `from` said `text` in the room.
    Message {
        /// What was said.
        text: String,
    },
    /// `from` did `text` (`/me`).
    Action {
        /// The action.
        text: String,
    },
    /// A private message from `from` to `to`. The recipient gets it with
    /// `echo` false, the sender a copy with `echo` true.
    Private {
        /// The recipient's nick.
        to: Arc<str>,
        /// The text.
        text: String,
        /// The sender's own copy.
        echo: bool,
    },
    /// `from` came into the room.
    Join,
    /// `from` left the room.
    Leave {
        /// Why: `quit`, `quit: bye`, `connection closed`, `too slow`,
        /// `moved to games`, `kicked by op: spam`...
        reason: String,
    },
    /// `from` is now `new`.
    Nick {
        /// The new nick.
        new: Arc<str>,
    },
    /// Something the server tells one member.
    Notice(Notice),
    /// A refusal or a problem, for one member.
    Error(Refusal),
}

/// What the server tells one member, as data.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The first thing a member gets.
    Welcome {
        /// Its nick.
        nick: Arc<str>,
        /// Its room.
        room: Arc<str>,
        /// How many others are there.
        others: usize,
    },
    /// After a move to another room.
    Moved {
        /// The new room.
        room: Arc<str>,
        /// How many others are there.
        others: usize,
    },
    /// `who`: the first nicks of a room, sorted (case-folded).
    Who {
        /// The room.
        room: Arc<str>,
        /// How many members it has in all.
        total: usize,
        /// The first of them.
        nicks: Vec<String>,
    },
    /// `rooms`: the first rooms by name, with their member counts.
    Rooms {
        /// How many rooms there are in all.
        total: usize,
        /// (name, members) of the first of them.
        rooms: Vec<(String, usize)>,
    },
    /// The command list; `operator` adds the operator's.
    Help {
        /// The reader is the operator.
        operator: bool,
    },
    /// The server is stopping.
    ShuttingDown,
    /// The console asked to quit: it cannot.
    ConsoleStays,
    /// Where a member stands in a room's history: it has every event of
    /// `room` up to `seq` (resume from there), in the database `epoch`.
    Cursor {
        /// The room.
        room: Arc<str>,
        /// The history database's epoch.
        epoch: Arc<str>,
        /// The last sequence number the member has (or was shown as history).
        seq: u64,
    },
    /// A resume could not be answered: the member should reload the room.
    Gap {
        /// The room.
        room: Arc<str>,
        /// Why (pruned, another epoch, too many missed...).
        reason: String,
    },
}

/// Why a command was refused, or a problem with a member's input.
/// `Display` is the English text every front-end may show.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The nick breaks the grammar (the reason).
    BadNick(String),
    /// Someone else has the nick (as asked).
    NickTaken(String),
    /// The member already has that nick.
    AlreadyNick(String),
    /// The room name breaks the grammar (the reason).
    BadRoom(String),
    /// The member is already in that room.
    AlreadyIn(String),
    /// Nobody has that nick.
    NoSuchNick(String),
    /// A private message or kick aimed at oneself.
    ThatIsYou,
    /// Kick by someone who is not the operator.
    NotOperator,
    /// A command with bad arguments: the usage.
    Usage(&'static str),
    /// A command the front-end does not know (its name).
    UnknownCommand(String),
    /// An input line or frame over the limit (the limit, bytes).
    TooLong(usize),
    /// Flood control is dropping input (the allowed lines per second).
    SlowDown(f64),
    /// `--max-clients` reached (the limit).
    ServerFull(usize),
    /// The member was kicked.
    Kicked {
        /// By whom.
        by: Arc<str>,
        /// Why, if said.
        reason: Option<String>,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadNick(e) => write!(f, "cannot use that nick: {e}"),
            Refusal::NickTaken(n) => write!(f, "the nick {n} is taken"),
            Refusal::AlreadyNick(n) => write!(f, "you are already {n}"),
            Refusal::BadRoom(e) => write!(f, "cannot use that room name: {e}"),
            Refusal::AlreadyIn(r) => write!(f, "you are already in {r}"),
            Refusal::NoSuchNick(n) => write!(f, "no such nick: {n}"),
            Refusal::ThatIsYou => f.write_str("that is you"),
            Refusal::NotOperator => f.write_str("/kick is for the server operator"),
            Refusal::Usage(u) => f.write_str(u),
            Refusal::UnknownCommand(c) => write!(f, "unknown command /{c} (try /help)"),
            Refusal::TooLong(n) => write!(f, "line dropped: longer than {n} bytes"),
            Refusal::SlowDown(rate) => write!(
                f,
                "slow down: more than {rate} lines/s; lines are being dropped"
            ),
            Refusal::ServerFull(n) => write!(f, "server full ({n} clients), try again later"),
            Refusal::Kicked { by, reason } => match reason {
                Some(r) => write!(f, "{KICKED}{by}: {r}"),
                None => write!(f, "{KICKED}{by}"),
            },
        }
    }
}

/// What a member asks of the hub, whatever its protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum HubCommand {
    /// Text for the room.
    Say(String),
    /// An action for the room (`/me`).
    Action(String),
    /// Take another nick.
    Nick(String),
    /// Move to a room (created on first entry).
    Join(String),
    /// A private message.
    Msg {
        /// The recipient's nick.
        to: String,
        /// The text.
        text: String,
    },
    /// Who is in my room.
    Who,
    /// Which rooms exist.
    Rooms,
    /// Leave the chat, maybe saying why.
    Quit(Option<String>),
    /// Disconnect someone (the operator only).
    Kick {
        /// Who.
        nick: String,
        /// Why, if said.
        reason: Option<String>,
    },
    /// The command list.
    Help,
    /// The last `n` messages of my room, as history (`None`: the default).
    History(Option<u32>),
    /// What I missed in `room` after `after` (a cursor of database `epoch`).
    Resume {
        /// The room.
        room: String,
        /// The epoch the cursor belongs to.
        epoch: String,
        /// The last sequence number seen.
        after: u64,
    },
    /// Mark my room events with their cursors (the line protocol's
    /// `/cursors`: for clients that resume, e.g. `chat join --reconnect`).
    Cursors,
}
