//! The chat's line protocol, sans-IO: framing bytes into lines, parsing commands,
//! and the exact text of every line the server sends ([`ServerLine`]: the hub
//! formats through it, and `chat::event` classifies its lines back).
//!
//! Grammar of server lines (one per `\n`), so that plain `nc` users can read them
//! and programs (`chat join --json`) can parse them without ambiguity:
//!
//! | line | meaning |
//! |---|---|
//! | `<nick> text` | a message in your room |
//! | `+ nick text` | an action (`/me`) |
//! | `*nick* text` | a private message to you |
//! | `-> *nick* text` | your private message, as sent |
//! | `* nick joined room` / `* nick left (reason)` / `* old is now new` | announcements |
//! | `* text` | other notices (welcome, `/who`, `/rooms`, `/help`) |
//! | `! text` | an error, for you only |
//!
//! Nicks follow [`check_nick`] and room names [`check_room`]: neither can
//! contain `<`, `>`, `*` or a space, so peer text (sanitized) only ever follows
//! a prefix the server wrote.

/// Longest nick or room name.
pub const MAX_NAME: usize = 32;

/// One framed input line, or the news that a line was too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line (terminator removed), or a partial one flushed after a pause.
    Line(Vec<u8>),
    /// A line passed the limit; its bytes up to the next newline are discarded.
    TooLong,
}

/// Splits bytes into lines ending in `\n` or `\r\n`, holding partial lines.
/// Memory is bounded by `max` bytes per connection.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max` bytes (terminator excluded).
    pub fn new(max: usize) -> Self {
        LineFramer {
            buf: Vec::new(),
            max: max.max(1),
            discarding: false,
        }
    }

    /// Feeds bytes, appending every completed frame to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (head, rest) = (&data[..i], &data[i + 1..]);
                    data = rest;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if self.buf.len() + head.len() > self.max + 1 {
                        self.buf.clear();
                        out.push(Frame::TooLong);
                        continue;
                    }
                    self.buf.extend_from_slice(head);
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                    if self.buf.len() > self.max {
                        self.buf.clear();
                        out.push(Frame::TooLong);
                        continue;
                    }
                    let line = std::mem::take(&mut self.buf);
                    if !line.is_empty() {
                        out.push(Frame::Line(line));
                    }
                }
                None => {
                    if !self.discarding {
                        // One extra byte of room for a '\r' before the '\n'.
                        if self.buf.len() + data.len() > self.max + 1 {
                            self.buf = Vec::new();
                            self.discarding = true;
                            out.push(Frame::TooLong);
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// True when a partial line is held that [`LineFramer::flush_partial`]
    /// would hand over (more than the start of one UTF-8 character).
    pub fn has_partial(&self) -> bool {
        !self.discarding && self.buf.len() > incomplete_utf8_tail(&self.buf)
    }

    /// The client paused mid-line: hand over what it sent as a line, but
    /// never cut inside a UTF-8 character: an unfinished one at the end is
    /// held back for the rest of the line.
    pub fn flush_partial(&mut self) -> Option<Frame> {
        if !self.has_partial() {
            return None;
        }
        let keep = self.buf.len() - incomplete_utf8_tail(&self.buf);
        let tail = self.buf.split_off(keep);
        let line = std::mem::replace(&mut self.buf, tail);
        self.finish_line(line)
    }

    /// The input ended: hand over whatever is held, complete or not.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.discarding || self.buf.is_empty() {
            return None;
        }
        let line = std::mem::take(&mut self.buf);
        self.finish_line(line)
    }

    fn finish_line(&self, mut line: Vec<u8>) -> Option<Frame> {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max {
            return Some(Frame::TooLong);
        }
        (!line.is_empty()).then_some(Frame::Line(line))
    }

    /// Drops the buffer's spare capacity (after a burst, idle clients stay small).
    /// Held-back bytes of an unfinished character are kept.
    pub fn shrink(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }
}

/// How many bytes at the end of `buf` are the start of a UTF-8 character
/// still missing its continuation bytes (0 to 3).
fn incomplete_utf8_tail(buf: &[u8]) -> usize {
    // The last byte that is not a continuation byte (10xxxxxx), within the
    // last four, is the lead of the final character.
    for back in 1..=buf.len().min(4) {
        let b = buf[buf.len() - back];
        if b & 0xc0 == 0x80 {
            continue;
        }
        let need = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return 0,
        };
        return if back < need { back } else { 0 };
    }
    0
}

/// What a (sanitized) input line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Plain text for the room (`//text` sends `/text`).
    Say(&'a str),
    /// `/nick NAME`.
    Nick(&'a str),
    /// `/who`.
    Who,
    /// `/msg NICK text`.
    Msg {
        /// Recipient.
        to: &'a str,
        /// Text.
        text: &'a str,
    },
    /// `/me action`.
    Me(&'a str),
    /// `/join ROOM`.
    Join(&'a str),
    /// `/rooms`.
    Rooms,
    /// `/quit [reason]`.
    Quit(Option<&'a str>),
    /// `/help`.
    Help,
    /// `/kick NICK [reason]` (operator only).
    Kick {
        /// Who.
        nick: &'a str,
        /// Why.
        reason: Option<&'a str>,
    },
    /// A known command with bad arguments: the usage text.
    Usage(&'static str),
    /// An unknown command (its name).
    Unknown(&'a str),
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(' ') {
        Some(i) => (&s[..i], s[i + 1..].trim_start()),
        None => (s, ""),
    }
}

fn nonempty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// Parses one line.
pub fn parse(line: &str) -> Input<'_> {
    let Some(rest) = line.strip_prefix('/') else {
        return Input::Say(line);
    };
    if rest.starts_with('/') {
        return Input::Say(rest);
    }
    let (cmd, args) = split_word(rest);
    match cmd.to_ascii_lowercase().as_str() {
        "nick" => match nonempty(args) {
            Some(n) => Input::Nick(n),
            None => Input::Usage("usage: /nick NAME"),
        },
        "who" | "names" => Input::Who,
        "msg" | "m" | "query" => {
            let (to, text) = split_word(args);
            match (nonempty(to), nonempty(text)) {
                (Some(to), Some(_)) => Input::Msg { to, text },
                _ => Input::Usage("usage: /msg NICK text"),
            }
        }
        "me" => match nonempty(args) {
            Some(_) => Input::Me(args),
            None => Input::Usage("usage: /me action"),
        },
        "join" => match nonempty(args) {
            Some(r) => Input::Join(r.trim_start_matches('#')),
            None => Input::Usage("usage: /join ROOM"),
        },
        "rooms" | "list" => Input::Rooms,
        "quit" | "exit" => Input::Quit(nonempty(args)),
        "help" | "?" => Input::Help,
        "kick" => {
            let (nick, reason) = split_word(args);
            match nonempty(nick) {
                Some(nick) => Input::Kick {
                    nick,
                    reason: nonempty(reason),
                },
                None => Input::Usage("usage: /kick NICK [reason]"),
            }
        }
        _ => Input::Unknown(cmd),
    }
}

/// Characters besides ASCII letters a nick may start with (IRC's "special").
const NICK_SPECIAL: &[char] = &['[', ']', '\\', '`', '_', '^', '{', '|', '}'];

/// Why a nick is not acceptable, if it is not. One grammar valid in every
/// front-end (line, web, IRC): 1 to [`MAX_NAME`] characters, the first an
/// ASCII letter or one of `[ ] \ ` _ ^ { | }`, the rest letters, digits, `-`
/// or those. So no `.`, no leading digit or `-` (IRC forbids them), and never
/// `<`, `>`, `*`, `!`, `@`, `#`, `:`, `,` or a space (the line grammar and IRC
/// prefixes depend on it). Uniqueness ignores ASCII case ([`nick_key`]).
pub fn check_nick(nick: &str) -> Result<(), String> {
    if nick.is_empty() || nick.len() > MAX_NAME {
        return Err(format!("nicks are 1 to {MAX_NAME} characters"));
    }
    let mut chars = nick.chars();
    let first = chars.next().unwrap_or(' ');
    if !(first.is_ascii_alphabetic() || NICK_SPECIAL.contains(&first)) {
        return Err(format!(
            "'{}' cannot start a nick: start with a letter or one of []\\`_^{{|}}",
            first.escape_default()
        ));
    }
    if let Some(bad) =
        chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || NICK_SPECIAL.contains(c)))
    {
        return Err(format!(
            "'{}' is not allowed in a nick: use letters, digits, - and []\\`_^{{|}}",
            bad.escape_default()
        ));
    }
    Ok(())
}

/// The key nicks are unique under: ASCII case folding (`ascii` casemapping,
/// so `[]\` and `{}|` are different characters).
pub fn nick_key(nick: &str) -> String {
    nick.to_ascii_lowercase()
}

/// Why a room name is not acceptable, if it is not: 1 to [`MAX_NAME`] of
/// `[A-Za-z0-9._-]` (IRC shows room `lobby` as channel `#lobby`).
pub fn check_room(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("names are 1 to {MAX_NAME} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "'{}' is not allowed: use letters, digits, '-', '_' or '.'",
            bad.escape_default()
        ));
    }
    Ok(())
}

/// The notice everyone gets when the server stops.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// Longest `/who` or `/rooms` listing before it is cut short.
pub const MAX_LISTED: usize = 200;

/// The start of the error a kicked member gets (`! you were kicked by op: why`).
pub const KICKED: &str = "you were kicked by ";

/// True when an error line's text (after `! `) tells its reader it was kicked.
pub fn is_kick_notice(error_text: &str) -> bool {
    error_text.starts_with(KICKED)
}

/// One line the server sends, by kind. Its `Display` is the exact text of
/// the line (without the newline): the hub formats every line through this
/// type, and `chat join` classifies them back (`chat::event::ServerEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerLine<'a> {
    /// `<nick> text`: a message in the reader's room.
    Message {
        /// Who said it.
        nick: &'a str,
        /// What was said.
        text: &'a str,
    },
    /// `+ nick text`: an action (`/me`).
    Action {
        /// Who did it.
        nick: &'a str,
        /// The action.
        text: &'a str,
    },
    /// `*from* text`: a private message to the reader.
    Private {
        /// The sender.
        from: &'a str,
        /// The text.
        text: &'a str,
    },
    /// `-> *to* text`: the reader's private message, as delivered.
    PrivateSent {
        /// The recipient.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
    /// `* nick joined room`.
    Joined {
        /// Who.
        nick: &'a str,
        /// Where.
        room: &'a str,
    },
    /// `* nick left (reason)`.
    Left {
        /// Who.
        nick: &'a str,
        /// Why (`quit`, `too slow`, `moved to games`...).
        reason: &'a str,
    },
    /// `* old is now new`.
    Renamed {
        /// The previous nick.
        old: &'a str,
        /// The new one.
        new: &'a str,
    },
    /// `* welcome, you are NICK, in ROOM with N others; ...`: the first line.
    Welcome {
        /// The reader's nick.
        nick: &'a str,
        /// Its room.
        room: &'a str,
        /// How many others are there.
        others: usize,
    },
    /// `* you are now in ROOM with N others`: after `/join`.
    Moved {
        /// The new room.
        room: &'a str,
        /// How many others are there.
        others: usize,
    },
    /// `* TITLE (TOTAL): a, b, ... and N more`: `/who` and `/rooms`.
    Listing {
        /// What is listed (`lobby`, `rooms`).
        title: &'a str,
        /// How many there are in all.
        total: usize,
        /// The first [`MAX_LISTED`] of them.
        items: &'a [String],
    },
    /// `* text`: any other notice.
    Notice(&'a str),
    /// `! text`: an error for the reader only.
    Error(&'a str),
    /// `! you were kicked by OP[: reason]`.
    Kicked {
        /// The operator.
        by: &'a str,
        /// Why, if said.
        reason: Option<&'a str>,
    },
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl std::fmt::Display for ServerLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ServerLine::Message { nick, text } => write!(f, "<{nick}> {text}"),
            ServerLine::Action { nick, text } => write!(f, "+ {nick} {text}"),
            ServerLine::Private { from, text } => write!(f, "*{from}* {text}"),
            ServerLine::PrivateSent { to, text } => write!(f, "-> *{to}* {text}"),
            ServerLine::Joined { nick, room } => write!(f, "* {nick} joined {room}"),
            ServerLine::Left { nick, reason } => write!(f, "* {nick} left ({reason})"),
            ServerLine::Renamed { old, new } => write!(f, "* {old} is now {new}"),
            ServerLine::Welcome { nick, room, others } => write!(
                f,
                "* welcome, you are {nick}, in {room} with {others} other{}; \
                 /nick NAME to change it, /help for commands",
                plural(others)
            ),
            ServerLine::Moved { room, others } => write!(
                f,
                "* you are now in {room} with {others} other{}",
                plural(others)
            ),
            ServerLine::Listing {
                title,
                total,
                items,
            } => {
                write!(f, "* {title} ({total}): ")?;
                for (i, item) in items.iter().take(MAX_LISTED).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(item)?;
                }
                let shown = items.len().min(MAX_LISTED);
                if total > shown {
                    write!(f, ", ... and {} more", total - shown)?;
                }
                Ok(())
            }
            ServerLine::Notice(text) => write!(f, "* {text}"),
            ServerLine::Error(text) => write!(f, "! {text}"),
            ServerLine::Kicked { by, reason } => match reason {
                Some(r) => write!(f, "! {KICKED}{by}: {r}"),
                None => write!(f, "! {KICKED}{by}"),
            },
        }
    }
}

impl ServerLine<'_> {
    /// Appends the line and its newline to `buf` (room batches).
    pub fn append_to(&self, buf: &mut Vec<u8>) {
        use std::io::Write;
        match *self {
            // The common case, written without the formatting machinery.
            ServerLine::Message { nick, text } => {
                buf.push(b'<');
                buf.extend_from_slice(nick.as_bytes());
                buf.extend_from_slice(b"> ");
                buf.extend_from_slice(text.as_bytes());
            }
            _ => {
                let _ = write!(buf, "{self}");
            }
        }
        buf.push(b'\n');
    }

    /// The line with its newline, ready to send.
    #[cfg(test)]
    pub fn to_bytes(self) -> bytes::Bytes {
        let mut buf = Vec::new();
        self.append_to(&mut buf);
        bytes::Bytes::from(buf)
    }
}

/// The `/help` text, one notice line per entry.
pub const HELP_LINES: &[&str] = &[
    "commands:",
    "  /nick NAME        change your nick: up to 32 of letters, digits, - and",
    "                    []\\`_^{|}, not starting with a digit or -; case is ignored",
    "  /who              who is in your room",
    "  /msg NICK text    private message",
    "  /me action        + nick action",
    "  /join ROOM        move to another room (everyone starts in lobby)",
    "  /rooms            list rooms",
    "  /quit [reason]    leave",
    "  //text            send text starting with /",
];

/// Operator-only help lines.
pub const OPERATOR_HELP: &[&str] = &["  /kick NICK [reason]  disconnect someone"];

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &mut LineFramer, data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        f.push(data, &mut out);
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_split_and_joined_across_reads() {
        let mut f = LineFramer::new(100);
        assert!(frames(&mut f, b"hel").is_empty());
        assert!(frames(&mut f, b"lo\r").is_empty());
        assert_eq!(
            frames(&mut f, b"\nx\ny\r\n\n"),
            vec![line("hello"), line("x"), line("y")]
        );
        assert!(!f.has_partial());
    }

    #[test]
    fn partial_line_is_flushed_on_demand() {
        let mut f = LineFramer::new(100);
        assert!(frames(&mut f, b"baihuixin").is_empty());
        assert!(f.has_partial());
        assert_eq!(f.flush_partial(), Some(line("baihuixin")));
        assert_eq!(f.flush_partial(), None);
    }

    #[test]
    fn a_partial_flush_never_cuts_a_character() {
        let mut f = LineFramer::new(100);
        let zhong = "中".as_bytes();
        // Only the first bytes of a character: nothing to hand over yet.
        assert!(frames(&mut f, &zhong[..2]).is_empty());
        assert!(!f.has_partial());
        assert_eq!(f.flush_partial(), None);
        assert_eq!(frames(&mut f, &zhong[2..]), vec![]);
        // Text, then an unfinished emoji: the text goes, the emoji waits.
        let wave = "👋".as_bytes();
        let mut f = LineFramer::new(100);
        let mut data = b"hi ".to_vec();
        data.extend_from_slice(&wave[..3]);
        assert!(frames(&mut f, &data).is_empty());
        assert_eq!(f.flush_partial(), Some(line("hi ")));
        assert_eq!(frames(&mut f, &[wave[3], b'\n']), vec![line("👋")]);
        // At the end of input, what is held goes as it is.
        assert!(frames(&mut f, &zhong[..1]).is_empty());
        assert_eq!(f.finish(), Some(Frame::Line(zhong[..1].to_vec())));
        // Bytes that cannot start a character are not held.
        assert_eq!(incomplete_utf8_tail(b"a\xff"), 0);
        assert_eq!(incomplete_utf8_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_utf8_tail(&"é".as_bytes()[..1]), 1);
    }

    #[test]
    fn too_long_lines_are_dropped_and_the_next_one_read() {
        let mut f = LineFramer::new(4);
        assert_eq!(frames(&mut f, b"abcd\r\n"), vec![line("abcd")]);
        assert_eq!(
            frames(&mut f, b"abcde\nok\n"),
            vec![Frame::TooLong, line("ok")]
        );
        // A long line arriving in pieces is reported once, then skipped to '\n'.
        assert_eq!(frames(&mut f, b"abc"), vec![]);
        assert_eq!(frames(&mut f, b"def"), vec![Frame::TooLong]);
        assert!(!f.has_partial());
        assert_eq!(frames(&mut f, b"ghi"), vec![]);
        assert_eq!(frames(&mut f, b"j\nnext\n"), vec![line("next")]);
    }

    #[test]
    fn any_split_gives_the_same_frames() {
        let input = b"one\r\ntwo\n\nthree-is-long\nfour\n".to_vec();
        let mut whole = LineFramer::new(8);
        let expect = frames(&mut whole, &input);
        for cut in 0..input.len() {
            for cut2 in cut..input.len() {
                let mut f = LineFramer::new(8);
                let mut got = frames(&mut f, &input[..cut]);
                got.extend(frames(&mut f, &input[cut..cut2]));
                got.extend(frames(&mut f, &input[cut2..]));
                assert_eq!(got, expect, "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse("hi there"), Input::Say("hi there"));
        assert_eq!(parse("//not a command"), Input::Say("/not a command"));
        assert_eq!(parse("/nick  bob"), Input::Nick("bob"));
        assert_eq!(parse("/NICK"), Input::Usage("usage: /nick NAME"));
        assert_eq!(
            parse("/msg bob hello you"),
            Input::Msg {
                to: "bob",
                text: "hello you"
            }
        );
        assert_eq!(parse("/msg bob"), Input::Usage("usage: /msg NICK text"));
        assert_eq!(parse("/me waves"), Input::Me("waves"));
        assert_eq!(parse("/join #games"), Input::Join("games"));
        assert_eq!(parse("/quit"), Input::Quit(None));
        assert_eq!(parse("/quit bye all"), Input::Quit(Some("bye all")));
        assert_eq!(
            parse("/kick bob spam"),
            Input::Kick {
                nick: "bob",
                reason: Some("spam")
            }
        );
        assert_eq!(parse("/frobnicate x"), Input::Unknown("frobnicate"));
    }

    #[test]
    fn rooms_are_checked() {
        assert!(check_room("alice_1.x-y").is_ok());
        assert!(check_room("2024").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room(&"a".repeat(33)).is_err());
        assert!(check_room("a b").is_err());
        assert!(check_room("<bob>").is_err());
        assert!(check_room("#x").is_err());
        assert!(check_room("名字").is_err());
    }

    #[test]
    fn nicks_are_valid_in_every_protocol() {
        for ok in ["a", "alice_1-x", "[bot]", "`q", "_x", "^^", "{a}|b", "\\o"] {
            assert!(check_nick(ok).is_ok(), "{ok}");
        }
        assert!(check_nick(&"a".repeat(32)).is_ok());
        for bad in [
            "", "1abc", "-x", "a.b", "a b", "<bob>", "a*", "a!b", "a@b", "#a", "a:b", "a,b", "a/b",
            "名字", "a\u{7f}",
        ] {
            assert!(check_nick(bad).is_err(), "{bad}");
        }
        assert!(check_nick(&"a".repeat(33)).is_err());
        assert_eq!(nick_key("Al[I]ce"), "al[i]ce");
        assert_ne!(nick_key("a[b]"), nick_key("a{b}"));
    }
}
