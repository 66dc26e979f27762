//! The line protocol's front-end: input lines to hub commands, events to the
//! lines of [`ServerLine`] (the grammar lives in `chat::protocol`, shared
//! with the client's classifier, `chat::event`).
//!
//! History adds two line forms, written only by the server (a member's text
//! only ever follows a `<nick> ` or `+ nick ` the server wrote, and no other
//! line starts with `=` or `@`):
//!
//! | line | meaning |
//! |---|---|
//! | `=ROOM#SEQ TIME LINE` | an event replayed from history: `LINE` is its usual line, `TIME` its server time (RFC 3339 UTC, ms) |
//! | `@ROOM#SEQ LINE` | a live room event, for members that asked for marks (`/cursors`) |
//! | `@ROOM#SEQ epoch=EPOCH` | a cursor: the member has everything of ROOM up to SEQ, in database EPOCH (`/cursors` members) |
//! | `* gap: reload ROOM (why)` | a `/resume` could not be answered |
//!
//! On one server a room's numbers are consecutive. In a cluster they are
//! places in the shared room log: increasing, not consecutive, and a mark
//! says the room's number before its own when that is not `SEQ - 1`:
//! `@ROOM#SEQ/PREV LINE`, `=ROOM#SEQ/PREV TIME LINE`.
//!
//! Commands: `/history [N]`, `/resume ROOM EPOCH SEQ`, `/cursors`.

use std::time::{Duration, UNIX_EPOCH};

use crate::chat::event::rfc3339;
use crate::chat::hub::{
    ChatHub, EventKind, Flow, HubCommand, Id, ModeChange, Notice, Refusal, RoomEvent, Style,
};
use crate::chat::protocol::{
    parse, Input, ServerLine, HELP_LINES, MAX_LISTED, OPERATOR_HELP, SHUTTING_DOWN,
};

/// What a (sanitized) input line asks for: a command, or a refusal to
/// send back (bad usage, unknown command). `None` for blank text.
pub fn command(line: &str) -> Option<Result<HubCommand, Refusal>> {
    if let Some(h) = history_command(line) {
        return Some(h);
    }
    Some(Ok(match parse(line) {
        Input::Say(t) => {
            if t.trim().is_empty() {
                return None;
            }
            HubCommand::Say(t.to_string())
        }
        Input::Me(t) => HubCommand::Action(t.to_string()),
        Input::Nick(n) => HubCommand::Nick(n.to_string()),
        Input::Who => HubCommand::Who,
        Input::Rooms => HubCommand::Rooms,
        Input::Msg { to, text } => HubCommand::Msg {
            to: to.to_string(),
            text: text.to_string(),
        },
        Input::Join(r) => HubCommand::Join(r.to_string()),
        Input::Quit(r) => HubCommand::Quit(r.map(str::to_string)),
        Input::Help => HubCommand::Help,
        Input::Kick { nick, reason } => HubCommand::Kick {
            nick: nick.to_string(),
            reason: reason.map(str::to_string),
        },
        Input::Usage(u) => return Some(Err(Refusal::Usage(u))),
        Input::Unknown(c) => return Some(Err(Refusal::UnknownCommand(c.to_string()))),
    }))
}

/// `/history [N]`, `/resume ROOM EPOCH SEQ` and `/cursors`.
fn history_command(line: &str) -> Option<Result<HubCommand, Refusal>> {
    let rest = line.strip_prefix('/')?;
    let mut words = rest.split_ascii_whitespace();
    let cmd = words.next()?.to_ascii_lowercase();
    let args: Vec<&str> = words.collect();
    Some(match cmd.as_str() {
        "history" => match args.as_slice() {
            [] => Ok(HubCommand::History(None)),
            [n] => match n.parse::<u32>() {
                Ok(n) => Ok(HubCommand::History(Some(n))),
                Err(_) => Err(Refusal::Usage("usage: /history [N]")),
            },
            _ => Err(Refusal::Usage("usage: /history [N]")),
        },
        "resume" => match args.as_slice() {
            [room, epoch, seq] => match seq.parse::<u64>() {
                Ok(after) => Ok(HubCommand::Resume {
                    room: room.trim_start_matches('#').to_string(),
                    epoch: epoch.to_string(),
                    after,
                }),
                Err(_) => Err(Refusal::Usage("usage: /resume ROOM EPOCH SEQ")),
            },
            _ => Err(Refusal::Usage("usage: /resume ROOM EPOCH SEQ")),
        },
        "cursors" => Ok(HubCommand::Cursors),
        _ => return None,
    })
}

/// Hands one sanitized input line from member `id` to the hub.
pub fn input(hub: &ChatHub, id: Id, line: &str) -> Flow {
    match command(line) {
        Some(Ok(cmd)) => hub.command(id, cmd),
        Some(Err(refusal)) => {
            hub.refuse(id, refusal);
            Flow::Continue
        }
        None => Flow::Continue,
    }
}

/// Appends the lines that show `ev` to a line-protocol member.
pub fn encode_event(ev: &RoomEvent, out: &mut Vec<u8>) {
    let from = &*ev.from;
    match &ev.kind {
        EventKind::Message { text } => ServerLine::Message { nick: from, text }.append_to(out),
        EventKind::Action { text } => ServerLine::Action { nick: from, text }.append_to(out),
        EventKind::Private { to, text, echo } => match echo {
            false => ServerLine::Private { from, text }.append_to(out),
            true => ServerLine::PrivateSent { to, text }.append_to(out),
        },
        EventKind::Join => ServerLine::Joined {
            nick: from,
            room: &ev.room,
        }
        .append_to(out),
        EventKind::Leave { reason } => ServerLine::Left { nick: from, reason }.append_to(out),
        EventKind::Nick { new } => ServerLine::Renamed { old: from, new }.append_to(out),
        EventKind::Part { reason } => {
            let reason = if reason.is_empty() {
                "left the room"
            } else {
                reason
            };
            ServerLine::Left { nick: from, reason }.append_to(out)
        }
        EventKind::Kick { target, reason } => {
            let why = match reason {
                Some(r) => format!("put out of {} by {from}: {r}", ev.room),
                None => format!("put out of {} by {from}", ev.room),
            };
            ServerLine::Left {
                nick: target,
                reason: &why,
            }
            .append_to(out)
        }
        EventKind::Topic { text } if text.is_empty() => {
            ServerLine::Notice(&format!("{from} cleared the topic of {}", ev.room)).append_to(out)
        }
        EventKind::Topic { text } => {
            ServerLine::Notice(&format!("{from} set the topic of {}: {text}", ev.room))
                .append_to(out)
        }
        EventKind::Mode(change) => {
            ServerLine::Notice(&format!("{from} {}", mode_text(change, &ev.room))).append_to(out)
        }
        EventKind::Away { text: Some(t) } => {
            ServerLine::Notice(&format!("{from} is away: {t}")).append_to(out)
        }
        EventKind::Away { text: None } => {
            ServerLine::Notice(&format!("{from} is back")).append_to(out)
        }
        // A notice shows as talk; client-to-client requests are not for terminals.
        EventKind::Styled { text, style } => match style {
            Style::Notice => ServerLine::Message { nick: from, text }.append_to(out),
            Style::Action => ServerLine::Action { nick: from, text }.append_to(out),
            Style::Ctcp | Style::CtcpReply => {}
        },
        EventKind::PrivateStyled {
            to,
            text,
            echo,
            style,
        } => {
            let text = match style {
                Style::Notice => text.clone(),
                Style::Action => format!("/me {text}"),
                Style::Ctcp | Style::CtcpReply => return,
            };
            match echo {
                false => ServerLine::Private { from, text: &text }.append_to(out),
                true => ServerLine::PrivateSent { to, text: &text }.append_to(out),
            }
        }
        // Client-only tags are for IRC clients that take them.
        EventKind::Tagged { event, .. } => encode_event(
            &RoomEvent {
                kind: (**event).clone(),
                ..ev.clone()
            },
            out,
        ),
        EventKind::TagsOnly { .. } => {}
        EventKind::Notice(n) => notice(n, out),
        EventKind::Error(Refusal::Kicked { by, reason }) => ServerLine::Kicked {
            by,
            reason: reason.as_deref(),
        }
        .append_to(out),
        EventKind::Error(e) => ServerLine::Error(&e.to_string()).append_to(out),
    }
}

/// Appends `ev` for a member that asked for cursor marks: room events as
/// `@ROOM#SEQ LINE`, the rest as usual.
pub fn encode_marked(ev: &RoomEvent, out: &mut Vec<u8>) {
    use std::io::Write;
    if let EventKind::Notice(Notice::Cursor { room, epoch, seq }) = &ev.kind {
        let _ = writeln!(out, "@{room}#{seq} epoch={epoch}");
        return;
    }
    if ev.seq == 0 {
        return encode_event(ev, out);
    }
    let _ = write!(out, "@{}#{}{} ", ev.room, ev.seq, Prev(ev));
    encode_event(ev, out);
}

/// `/PREV` after a mark's number when the room's event before is not
/// `seq - 1` (in a cluster, numbers are places in the shared room log).
struct Prev<'a>(&'a RoomEvent);

impl std::fmt::Display for Prev<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (seq, prev) = (self.0.seq, self.0.prev);
        if prev != 0 && prev + 1 != seq {
            write!(f, "/{prev}")?;
        }
        Ok(())
    }
}

/// Appends `ev` as a history line: `=ROOM#SEQ TIME LINE`.
pub fn encode_history(ev: &RoomEvent, out: &mut Vec<u8>) {
    use std::io::Write;
    let time = rfc3339(UNIX_EPOCH + Duration::from_millis(ev.ts));
    let _ = write!(out, "={}#{}{} {time} ", ev.room, ev.seq, Prev(ev));
    encode_event(ev, out);
}

/// A mode change in words: `made alice an operator of games`.
fn mode_text(change: &ModeChange, room: &str) -> String {
    let on_off = |on: bool| if on { "on" } else { "off" };
    match change {
        ModeChange::TopicLock(on) => format!("turned {} topic lock in {room}", on_off(*on)),
        ModeChange::NoOutside(on) => {
            format!("turned {} members-only talk in {room}", on_off(*on))
        }
        ModeChange::Operator { nick, on: true } => format!("made {nick} an operator of {room}"),
        ModeChange::Operator { nick, on: false } => {
            format!("took operator of {room} from {nick}")
        }
    }
}

fn notice(n: &Notice, out: &mut Vec<u8>) {
    match n {
        // Plain line members are not told cursors (see `encode_marked`).
        Notice::Cursor { .. } => {}
        Notice::Gap { room, reason } => {
            ServerLine::Notice(&format!("gap: reload {room} ({reason})")).append_to(out)
        }
        Notice::Welcome { nick, room, others } => ServerLine::Welcome {
            nick,
            room,
            others: *others,
        }
        .append_to(out),
        Notice::Moved { room, others } => ServerLine::Moved {
            room,
            others: *others,
        }
        .append_to(out),
        Notice::Who { room, total, nicks } => ServerLine::Listing {
            title: room,
            total: *total,
            items: nicks,
        }
        .append_to(out),
        Notice::Rooms { total, rooms } => {
            let items: Vec<String> = rooms
                .iter()
                .take(MAX_LISTED)
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            ServerLine::Listing {
                title: "rooms",
                total: *total,
                items: &items,
            }
            .append_to(out)
        }
        Notice::Help { operator } => {
            let extra: &[&str] = if *operator { OPERATOR_HELP } else { &[] };
            for l in HELP_LINES.iter().chain(extra) {
                ServerLine::Notice(l).append_to(out);
            }
        }
        Notice::ShuttingDown => ServerLine::Notice(SHUTTING_DOWN).append_to(out),
        Notice::Entered { room, names, .. } => ServerLine::Moved {
            room,
            others: names.len().saturating_sub(1),
        }
        .append_to(out),
        Notice::Topic { room, topic } => match topic {
            Some(t) => ServerLine::Notice(&format!("topic of {room}: {}", t.text)).append_to(out),
            None => ServerLine::Notice(&format!("{room} has no topic")).append_to(out),
        },
        Notice::Away(true) => ServerLine::Notice("you are marked away").append_to(out),
        Notice::Away(false) => ServerLine::Notice("you are back").append_to(out),
        Notice::ConsoleStays => {
            ServerLine::Notice("the operator console stays; stop the server with Ctrl-C")
                .append_to(out)
        }
    }
}
