//! The IRC front-end: `chat serve --irc ADDR`. Rooms are channels (`lobby`
//! is `#lobby`); members of every front-end are users (`nick!nick@sockit`).
//!
//! Events are encoded here, once per batch for each of six IRC encodings
//! in use ([`Protocol::irc`]): with or without `server-time` tags, with
//! `message-tags` (client-only tags and `TAGMSG`, with the time tag), and
//! each with or without `away-notify`'s AWAY lines. `echo-message` changes which of a
//! member's own events come back (the hub's [`Echo`](crate::chat::hub::Echo)),
//! not the bytes, so it needs no encoding of its own. Replies to one member
//! (numerics) carry its nick, which the hub gives as the event's sender.
//! The connection side (registration, commands) is in [`session`].

pub mod message;
pub mod session;

use std::time::{Duration, UNIX_EPOCH};

use crate::chat::event::rfc3339;
use crate::chat::front::line;
use crate::chat::hub::{EventKind, ModeChange, Notice, Refusal, RoomEvent, Style, TopicInfo};

/// The server's name in prefixes and numerics.
pub const SERVER: &str = "sockit";
/// The host every user shows.
pub const HOST: &str = "sockit";
/// Longest topic.
pub const TOPICLEN: usize = 390;

/// How one IRC encoding differs from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    /// `@time=` tags (server-time).
    pub time: bool,
    /// AWAY lines for co-members (away-notify).
    pub away: bool,
    /// Client-only tags and TAGMSG (message-tags; implies `time`).
    pub tags: bool,
}

/// Writes IRC lines for one event.
struct Out<'a> {
    out: &'a mut Vec<u8>,
    tag: Option<String>,
}

impl Out<'_> {
    /// One line: `:source rest\r\n` (and the time tag), cut to 512 bytes.
    fn line(&mut self, source: &str, rest: &str) {
        if let Some(t) = &self.tag {
            self.out.extend_from_slice(t.as_bytes());
        }
        let start = self.out.len();
        self.out.push(b':');
        self.out.extend_from_slice(source.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(rest.as_bytes());
        let mut end = self.out.len();
        if end - start > 510 {
            end = start + 510;
            while !is_char_boundary(&self.out[start..], end - start) {
                end -= 1;
            }
            self.out.truncate(end);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    /// A message to `target`, split into as many lines as the text needs.
    fn text(&mut self, from: &str, verb: &str, target: &str, text: &str, ctcp: Option<&str>) {
        let src = user(from);
        let head = src.len() + verb.len() + target.len() + 6;
        let wrap = ctcp.map_or(0, |c| c.len() + 3);
        let room = 510usize.saturating_sub(head + wrap).max(64);
        let mut rest = text;
        loop {
            let mut cut = rest.len().min(room);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, after) = rest.split_at(cut);
            let body = match ctcp {
                Some("") => format!("\x01{piece}\x01"),
                Some(c) => format!("\x01{c} {piece}\x01"),
                None => piece.to_string(),
            };
            self.line(&src, &format!("{verb} {target} :{body}"));
            rest = after;
            if rest.is_empty() {
                break;
            }
        }
    }

    /// A numeric to `to`.
    fn num(&mut self, code: &str, to: &str, rest: &str) {
        let to = if to.is_empty() { "*" } else { to };
        self.line(SERVER, &format!("{code} {to} {rest}"));
    }
}

fn is_char_boundary(b: &[u8], i: usize) -> bool {
    i >= b.len() || (b[i] as i8) >= -0x40
}

/// `nick!nick@sockit`.
pub fn user(nick: &str) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// `#room`.
pub fn chan(room: &str) -> String {
    format!("#{room}")
}

/// The `@time=...` tag of a time in ms.
pub fn time_tag(ts: u64) -> String {
    format!("@time={} ", rfc3339(UNIX_EPOCH + Duration::from_millis(ts)))
}

/// The time tag and client-only `tags`: `@time=...;+a=b `.
fn client_tags(ts: u64, tags: &str) -> String {
    let mut t = time_tag(ts);
    t.pop();
    t.push(';');
    t.push_str(tags);
    t.push(' ');
    t
}

/// Appends the IRC lines that show `ev` in encoding `flavor`.
pub fn encode_event(ev: &RoomEvent, out: &mut Vec<u8>, flavor: Flavor) {
    let tag = flavor.time.then(|| time_tag(ev.ts));
    let mut o = Out { out, tag };
    let from = &*ev.from;
    let room = chan(&ev.room);
    let kind = match &ev.kind {
        EventKind::Tagged { tags, event } => {
            if flavor.tags {
                o.tag = Some(client_tags(ev.ts, tags));
            }
            &**event
        }
        EventKind::TagsOnly { tags, to } => {
            if flavor.tags {
                o.tag = Some(client_tags(ev.ts, tags));
                let target = to.as_deref().map_or(room, str::to_string);
                o.line(&user(from), &format!("TAGMSG {target}"));
            }
            return;
        }
        kind => kind,
    };
    match kind {
        EventKind::Tagged { .. } | EventKind::TagsOnly { .. } => {}
        EventKind::Message { text } => o.text(from, "PRIVMSG", &room, text, None),
        EventKind::Action { text } => o.text(from, "PRIVMSG", &room, text, Some("ACTION")),
        EventKind::Styled { text, style } => styled(&mut o, from, &room, text, *style),
        EventKind::Private { to, text, .. } => o.text(from, "PRIVMSG", to, text, None),
        EventKind::PrivateStyled {
            to, text, style, ..
        } => styled(&mut o, from, to, text, *style),
        EventKind::Join => o.line(&user(from), &format!("JOIN {room}")),
        EventKind::Part { reason } if reason.is_empty() => {
            o.line(&user(from), &format!("PART {room}"))
        }
        EventKind::Part { reason } => o.line(&user(from), &format!("PART {room} :{reason}")),
        EventKind::Leave { reason } => o.line(&user(from), &format!("QUIT :{reason}")),
        EventKind::Nick { new } => o.line(&user(from), &format!("NICK :{new}")),
        EventKind::Kick { target, reason } => {
            let why = reason.as_deref().unwrap_or(from);
            o.line(&user(from), &format!("KICK {room} {target} :{why}"))
        }
        EventKind::Topic { text } => o.line(&user(from), &format!("TOPIC {room} :{text}")),
        EventKind::Mode(change) => {
            let sign = |on: bool| if on { '+' } else { '-' };
            let m = match change {
                ModeChange::TopicLock(on) => format!("{}t", sign(*on)),
                ModeChange::NoOutside(on) => format!("{}n", sign(*on)),
                ModeChange::Operator { nick, on } => format!("{}o {nick}", sign(*on)),
            };
            o.line(&user(from), &format!("MODE {room} {m}"))
        }
        EventKind::Away { text } if flavor.away => match text {
            Some(t) => o.line(&user(from), &format!("AWAY :{t}")),
            None => o.line(&user(from), "AWAY"),
        },
        EventKind::Away { .. } => {}
        EventKind::Notice(n) => notice(&mut o, ev, n),
        EventKind::Error(e) => refusal(&mut o, from, e),
    }
}

fn styled(o: &mut Out, from: &str, target: &str, text: &str, style: Style) {
    match style {
        Style::Notice => o.text(from, "NOTICE", target, text, None),
        Style::Action => o.text(from, "PRIVMSG", target, text, Some("ACTION")),
        Style::Ctcp => o.text(from, "PRIVMSG", target, text, Some("")),
        Style::CtcpReply => o.text(from, "NOTICE", target, text, Some("")),
    }
}

/// 332 and 333, or 331.
fn topic(o: &mut Out, me: &str, room: &str, t: &Option<TopicInfo>, unset: bool) {
    match t {
        Some(t) => {
            o.num("332", me, &format!("{room} :{}", t.text));
            o.num("333", me, &format!("{room} {} {}", t.by, t.ts / 1000));
        }
        None if unset => o.num("331", me, &format!("{room} :No topic is set")),
        None => {}
    }
}

/// 353 lines (as many as the names need) and 366.
pub fn names<'a>(
    out: &mut Vec<u8>,
    time: Option<String>,
    me: &str,
    room: &str,
    names: impl Iterator<Item = (&'a str, bool)>,
) {
    let mut o = Out { out, tag: time };
    let head = format!("= {room} :");
    let room_for = 510 - (SERVER.len() + me.len() + head.len() + 8);
    let mut lineb = String::new();
    for (nick, op) in names {
        if lineb.len() + nick.len() + 2 > room_for {
            o.num("353", me, &format!("{head}{lineb}"));
            lineb.clear();
        }
        if !lineb.is_empty() {
            lineb.push(' ');
        }
        if op {
            lineb.push('@');
        }
        lineb.push_str(nick);
    }
    if !lineb.is_empty() {
        o.num("353", me, &format!("{head}{lineb}"));
    }
    o.num("366", me, &format!("{room} :End of /NAMES list"));
}

fn notice(o: &mut Out, ev: &RoomEvent, n: &Notice) {
    let me = &*ev.from;
    match n {
        Notice::Entered {
            room,
            topic: t,
            names: list,
        } => {
            let room = chan(room);
            o.line(&user(me), &format!("JOIN {room}"));
            topic(o, me, &room, t, true);
            let tag = o.tag.clone();
            names(
                o.out,
                tag,
                me,
                &room,
                list.iter().map(|(n, op)| (n.as_str(), *op)),
            );
        }
        Notice::Topic { room, topic: t } => topic(o, me, &chan(room), t, true),
        Notice::Away(true) => o.num("306", me, ":You have been marked as being away"),
        Notice::Away(false) => o.num("305", me, ":You are no longer marked as being away"),
        Notice::ShuttingDown => {
            o.tag = None;
            o.out
                .extend_from_slice(b"ERROR :Closing link: server shutting down\r\n");
        }
        // Anything else as server notices, in the line protocol's words.
        other => {
            let mut text = Vec::new();
            let ev = RoomEvent {
                kind: EventKind::Notice(other.clone()),
                ..ev.clone()
            };
            line::encode_event(&ev, &mut text);
            for l in String::from_utf8_lossy(&text).lines() {
                let l = l.strip_prefix("* ").unwrap_or(l);
                o.line(SERVER, &format!("NOTICE {} :{l}", star(me)));
            }
        }
    }
}

fn star(nick: &str) -> &str {
    if nick.is_empty() {
        "*"
    } else {
        nick
    }
}

fn refusal(o: &mut Out, me: &str, e: &Refusal) {
    match e {
        Refusal::NickTaken(n) => o.num("433", me, &format!("{n} :Nickname is already in use")),
        Refusal::BadNick(why) => o.num("432", me, &format!("* :Erroneous nickname: {why}")),
        Refusal::AlreadyNick(_) | Refusal::AlreadyIn(_) => {}
        Refusal::NoSuchNick(n) => o.num("401", me, &format!("{n} :No such nick/channel")),
        Refusal::NotOperator => o.num("481", me, ":Permission Denied- You're not an IRC operator"),
        Refusal::UnknownCommand(c) => o.num("421", me, &format!("{c} :Unknown command")),
        Refusal::TooLong(_) => o.num("417", me, ":Input line was too long"),
        Refusal::NotInRoom(r) => o.num(
            "442",
            me,
            &format!("{} :You're not on that channel", chan(r)),
        ),
        Refusal::NoSuchRoom(r) => o.num("403", me, &format!("{} :No such channel", chan(r))),
        Refusal::BadRoom(_) => o.num("403", me, "* :No such channel"),
        Refusal::NotRoomOperator(r) => o.num(
            "482",
            me,
            &format!("{} :You're not channel operator", chan(r)),
        ),
        Refusal::TheyAreNotIn { nick, room } => o.num(
            "441",
            me,
            &format!("{nick} {} :They aren't on that channel", chan(room)),
        ),
        Refusal::CannotSend(r) => o.num("404", me, &format!("{} :Cannot send to channel", chan(r))),
        Refusal::TooManyRooms { room, .. } => o.num(
            "405",
            me,
            &format!("{} :You have joined too many channels", chan(room)),
        ),
        Refusal::ServerFull(_) => {
            o.tag = None;
            o.out
                .extend_from_slice(format!("ERROR :{e}\r\n").as_bytes());
        }
        Refusal::Kicked { .. } => {
            o.tag = None;
            o.out
                .extend_from_slice(format!("ERROR :Closing link: {e}\r\n").as_bytes());
        }
        other => o.line(SERVER, &format!("NOTICE {} :{other}", star(me))),
    }
}
