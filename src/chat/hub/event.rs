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
    /// The room it happened in (for replies to one member: that member's
    /// current room, empty when it is in none).
    pub room: Arc<str>,
    /// The room's sequence number, assigned when the event entered the room:
    /// 1, 2, 3... per room, from the room's creation. 0 for what was never in
    /// a room's stream (replies, errors and private messages to one member).
    pub seq: u64,
    /// The sequence number of the room's event before this one: `seq - 1`
    /// on one server; in a cluster, where numbers are places in the shared
    /// room log (increasing, not consecutive), the place before. 0 when
    /// there is none or it is not known.
    pub prev: u64,
    /// Server time in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The sender's nick; for replies to one member (notices, errors), the
    /// recipient's own nick.
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
    /// `from` left this room but stays in the chat (a part, or a move to
    /// another room).
    Part {
        /// Why: `moved to games`, or what the member said when leaving.
        reason: String,
    },
    /// `from` (a room operator) put `target` out of this room; `target`
    /// stays in the chat.
    Kick {
        /// Who was put out.
        target: Arc<str>,
        /// Why, if said.
        reason: Option<String>,
    },
    /// `from` set the room's topic (empty: cleared it).
    Topic {
        /// The new topic.
        text: String,
    },
    /// `from` changed one of the room's modes.
    Mode(ModeChange),
    /// `from` is away (`Some(why)`) or back (`None`). Posted to every room
    /// the member is in.
    Away {
        /// Why, while away.
        text: Option<String>,
    },
    /// A room message in another style than plain talk (a notice, a CTCP
    /// request or reply): front-ends that have no such style show notices
    /// as messages and drop CTCP.
    Styled {
        /// The text (for CTCP: the command and its arguments, without the
        /// \x01 delimiters).
        text: String,
        /// Which style.
        style: Style,
    },
    /// A private message in another style than plain talk, as
    /// [`EventKind::Private`] otherwise.
    PrivateStyled {
        /// The recipient's nick.
        to: Arc<str>,
        /// The text.
        text: String,
        /// The sender's own copy.
        echo: bool,
        /// Which style.
        style: Style,
    },
    /// Client-only message tags (IRCv3 `+name=value`, `;`-separated and
    /// escaped as on the wire) on `event`, which is talk (a message, an
    /// action, a styled or private message). Only IRC members that
    /// negotiated message-tags see the tags; everyone else sees `event`.
    Tagged {
        /// The tags.
        tags: Arc<str>,
        /// The event they come with.
        event: Box<EventKind>,
    },
    /// Client-only tags without a message (IRC `TAGMSG`, e.g. `+typing`),
    /// to the room or, with `to`, to one member: delivered only to IRC
    /// members that negotiated message-tags, outside the room's sequence.
    TagsOnly {
        /// The tags, as in [`EventKind::Tagged`].
        tags: Arc<str>,
        /// The recipient of a private one.
        to: Option<Arc<str>>,
    },
    /// Something the server tells one member.
    Notice(Notice),
    /// A refusal or a problem, for one member.
    Error(Refusal),
}

impl EventKind {
    /// The event under its tags, if it has any.
    pub fn untagged(&self) -> &EventKind {
        match self {
            EventKind::Tagged { event, .. } => event,
            other => other,
        }
    }

    /// The event under its tags, to change.
    pub fn untagged_mut(&mut self) -> &mut EventKind {
        match self {
            EventKind::Tagged { event, .. } => event,
            other => other,
        }
    }
}

/// How a message is meant: the styles other than plain talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A notice: never to be answered automatically.
    Notice,
    /// An action (private; a room action is [`EventKind::Action`]).
    Action,
    /// A client-to-client request (CTCP, e.g. `VERSION`).
    Ctcp,
    /// A client-to-client reply.
    CtcpReply,
}

/// A change to a room's modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeChange {
    /// Only room operators may set the topic (IRC `+t`).
    TopicLock(bool),
    /// Only members may talk in the room (IRC `+n`).
    NoOutside(bool),
    /// `nick` is (or is no longer) a room operator (IRC `+o`).
    Operator {
        /// Who.
        nick: Arc<str>,
        /// Given or taken.
        on: bool,
    },
}

/// A room's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The text.
    pub text: String,
    /// Who set it.
    pub by: Arc<str>,
    /// When, in milliseconds since the Unix epoch.
    pub ts: u64,
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
    /// After entering a room in addition to the others (IRC `JOIN`): the
    /// room, its topic and who is there, room operators first marked.
    Entered {
        /// The room.
        room: Arc<str>,
        /// Its topic, if set.
        topic: Option<TopicInfo>,
        /// Its members (nick, room operator), sorted case-folded.
        names: Vec<(String, bool)>,
    },
    /// The answer to a topic query.
    Topic {
        /// The room.
        room: Arc<str>,
        /// Its topic, if set.
        topic: Option<TopicInfo>,
    },
    /// The member is now away (true) or back (false).
    Away(bool),
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
    /// The member is not in that room (its name).
    NotInRoom(String),
    /// No such room (as asked).
    NoSuchRoom(String),
    /// Only the room's operators may do that (the room).
    NotRoomOperator(String),
    /// Someone is not in the room.
    TheyAreNotIn {
        /// Who.
        nick: String,
        /// The room.
        room: String,
    },
    /// Outsiders may not talk in that room (the room).
    CannotSend(String),
    /// The member is in as many rooms as it may be.
    TooManyRooms {
        /// The room it asked for.
        room: String,
        /// The cap.
        max: usize,
    },
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
            Refusal::ServerFull(n) => write!(
                f,
                "server full ({}), try again later",
                crate::relay::plural(*n as u64, "client")
            ),
            Refusal::NotInRoom(r) => write!(f, "you are not in {r}"),
            Refusal::NoSuchRoom(r) => write!(f, "no such room: {r}"),
            Refusal::NotRoomOperator(r) => write!(f, "you are not an operator of {r}"),
            Refusal::TheyAreNotIn { nick, room } => write!(f, "{nick} is not in {room}"),
            Refusal::CannotSend(r) => write!(f, "only members of {r} may talk there"),
            Refusal::TooManyRooms { room, max } => {
                write!(f, "cannot enter {room}: you are in {max} rooms already")
            }
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
    /// Enter a room in addition to the others (created on first entry).
    /// Entering a room one is in does nothing.
    Enter(String),
    /// Leave one room, staying in the chat.
    Part {
        /// Which.
        room: String,
        /// Why, if said.
        reason: Option<String>,
    },
    /// Leave every room, staying in the chat.
    PartAll,
    /// A message to a given room (one the member is in, or any room that
    /// lets outsiders talk), in plain talk, as an action, or in a style.
    SayTo {
        /// The room.
        room: String,
        /// The text.
        text: String,
        /// `None`: talk; `Some(Style::Action)`: an action; others as named.
        style: Option<Style>,
    },
    /// A private message in a style.
    MsgStyled {
        /// The recipient's nick.
        to: String,
        /// The text.
        text: String,
        /// The style.
        style: Style,
    },
    /// Ask for a room's topic (`None`) or set it (`Some("")` clears it).
    Topic {
        /// The room.
        room: String,
        /// The new topic.
        text: Option<String>,
    },
    /// Change a room's mode (room operators).
    Mode {
        /// The room.
        room: String,
        /// The change.
        change: ModeChangeRequest,
    },
    /// Put someone out of a room (room operators).
    KickFrom {
        /// The room.
        room: String,
        /// Who.
        nick: String,
        /// Why, if said.
        reason: Option<String>,
    },
    /// Mark oneself away (`Some(why)`) or back (`None`).
    Away(Option<String>),
    /// `cmd` (`SayTo`, `Msg` or `MsgStyled`) with client-only message tags
    /// (see [`EventKind::Tagged`]).
    Tagged {
        /// The tags, escaped as on the wire.
        tags: String,
        /// The command they come with.
        cmd: Box<HubCommand>,
    },
    /// Client-only tags alone (IRC `TAGMSG`) to a room (`#room` given as
    /// `room`) or a member.
    TagsOnly {
        /// The room, or `None` for a member.
        room: Option<String>,
        /// The member, when `room` is `None`.
        to: String,
        /// The tags, escaped as on the wire.
        tags: String,
    },
}

/// A mode change as asked (the nick not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeChangeRequest {
    /// `+t` / `-t`.
    TopicLock(bool),
    /// `+n` / `-n`.
    NoOutside(bool),
    /// `+o nick` / `-o nick`.
    Operator {
        /// Who.
        nick: String,
        /// Given or taken.
        on: bool,
    },
}
