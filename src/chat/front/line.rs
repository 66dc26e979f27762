//! The line protocol's front-end: input lines to hub commands, events to the
//! lines of [`ServerLine`] (the grammar lives in `chat::protocol`, shared
//! with the client's classifier, `chat::event`).

use std::io::Write;

use crate::chat::hub::{ChatHub, Command, EventKind, Flow, Id, Notice, Refusal, RoomEvent};
use crate::chat::protocol::{
    parse, Input, ServerLine, HELP_LINES, MAX_LISTED, OPERATOR_HELP, SHUTTING_DOWN,
};

/// What a (sanitized) input line asks for: a command, or a refusal to
/// send back (bad usage, unknown command). `None` for blank text.
pub fn command(line: &str) -> Option<Result<Command, Refusal>> {
    Some(Ok(match parse(line) {
        Input::Say(t) => {
            if t.trim().is_empty() {
                return None;
            }
            Command::Say(t.to_string())
        }
        Input::Me(t) => Command::Action(t.to_string()),
        Input::Nick(n) => Command::Nick(n.to_string()),
        Input::Who => Command::Who,
        Input::Rooms => Command::Rooms,
        Input::Msg { to, text } => Command::Msg {
            to: to.to_string(),
            text: text.to_string(),
        },
        Input::Join(r) => Command::Join(r.to_string()),
        Input::Quit(r) => Command::Quit(r.map(str::to_string)),
        Input::Help => Command::Help,
        Input::Kick { nick, reason } => Command::Kick {
            nick: nick.to_string(),
            reason: reason.map(str::to_string),
        },
        Input::Usage(u) => return Some(Err(Refusal::Usage(u))),
        Input::Unknown(c) => return Some(Err(Refusal::UnknownCommand(c.to_string()))),
    }))
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
        EventKind::Notice(n) => notice(n, out),
        EventKind::Error(Refusal::Kicked { by, reason }) => ServerLine::Kicked {
            by,
            reason: reason.as_deref(),
        }
        .append_to(out),
        EventKind::Error(e) => {
            out.extend_from_slice(b"! ");
            let _ = write!(out, "{e}");
            out.push(b'\n');
        }
    }
}

fn notice(n: &Notice, out: &mut Vec<u8>) {
    match n {
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
        Notice::ConsoleStays => {
            ServerLine::Notice("the operator console stays; stop the server with Ctrl-C")
                .append_to(out)
        }
    }
}
