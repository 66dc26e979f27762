//! What a chat client makes of the server's lines, sans-IO: each line is
//! sanitized, then classified by the grammar in [`super::protocol`] into an
//! [`ServerEvent`], which renders either as a terminal line (nicks optionally
//! coloured) or as one JSON object.
//!
//! The server is not trusted either: every field is sanitized text, a line only
//! counts as a message, join, etc. when its nick fields are valid nicks, and
//! anything outside the grammar is kept as [`ServerEvent::Other`] rather than guessed at.
//! Nothing here touches a socket or a terminal.

use serde::Serialize;

use super::protocol::{check_nick, check_room};
use super::sanitize::sanitize;

/// One classified server line. Field text is sanitized (no control characters,
/// escape sequences or bidi overrides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// `<nick> text`: a message in your room.
    Message {
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
    },
    /// `+ nick text`: an action (`/me`).
    Action {
        /// Who did it.
        nick: String,
        /// The action.
        text: String,
    },
    /// `*nick* text`: a private message to you.
    Private {
        /// The sender.
        from: String,
        /// The text.
        text: String,
    },
    /// `-> *nick* text`: your private message, as the server delivered it.
    PrivateSent {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// `* nick joined room`.
    Join {
        /// Who.
        nick: String,
        /// The room joined.
        room: String,
    },
    /// `* nick left (reason)` (or `* nick left room (reason)`).
    Leave {
        /// Who.
        nick: String,
        /// The room left, when the line names it.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Why: `quit`, `connection closed`, `moved to games`, `kicked by op: ...`.
        reason: String,
    },
    /// `* old is now new`.
    Nick {
        /// The previous nick.
        old: String,
        /// The new nick.
        new: String,
    },
    /// `* text`: any other notice (welcome, `/who`, `/rooms`, `/help`, shutdown).
    System {
        /// The notice, without the `* ` prefix.
        text: String,
    },
    /// `! text`: an error meant for you.
    Error {
        /// The error, without the `! ` prefix.
        text: String,
    },
    /// A line outside the grammar (another kind of server, or a bug): the whole line.
    Other {
        /// The line.
        text: String,
    },
}

/// A nick as servers write them: today's grammar, or the older one (the
/// room grammar, with `.` and leading digits) that earlier servers allowed.
fn is_nick(s: &str) -> bool {
    check_nick(s).is_ok() || check_room(s).is_ok()
}

/// Whether a field is a nick the server really sent.
type NickCheck<'a> = &'a dyn Fn(&str) -> bool;

fn is_room(s: &str) -> bool {
    check_room(s).is_ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Splits `NICK rest` / `NICK` (end of line) after a prefix; `None` unless NICK is valid.
fn nick_then_text<'a>(s: &'a str, ok: NickCheck) -> Option<(&'a str, &'a str)> {
    let (nick, text) = match s.split_once(' ') {
        Some((n, t)) => (n, t),
        None => (s, ""),
    };
    ok(nick).then_some((nick, text))
}

/// Splits `NICK*` `rest`: the body of `*nick* text`.
fn starred_nick<'a>(s: &'a str, ok: NickCheck) -> Option<(&'a str, &'a str)> {
    let (nick, rest) = s.split_once('*')?;
    let text = match rest {
        "" => "",
        r => r.strip_prefix(' ')?,
    };
    ok(nick).then_some((nick, text))
}

impl ServerEvent {
    /// Classifies one line from the server (terminator already removed). The
    /// bytes are sanitized first, so hostile bytes can only ever end up as
    /// visible text inside a field.
    pub fn parse(line: &[u8]) -> ServerEvent {
        let clean = sanitize(line);
        if clean.as_bytes() == line {
            return ServerEvent::classify(&clean);
        }
        // Control characters are now visible text (`^[`...), and `^` and `[`
        // may be in nicks: a nick field must be bytes the server really sent.
        let sent = |n: &str| is_nick(n) && contains(line, n.as_bytes());
        ServerEvent::classify_with(&clean, &sent)
    }

    /// Classifies one already-sanitized line.
    pub fn classify(line: &str) -> ServerEvent {
        ServerEvent::classify_with(line, &is_nick)
    }

    fn classify_with(line: &str, ok: NickCheck) -> ServerEvent {
        let other = || ServerEvent::Other {
            text: line.to_string(),
        };
        if let Some(rest) = line.strip_prefix('<') {
            // Nicks never contain '>', so the first one closes the nick: in
            // `<bob> <alice> hi`, bob said "<alice> hi".
            let Some((nick, text)) = rest.split_once('>') else {
                return other();
            };
            let text = match text {
                "" => "",
                t => match t.strip_prefix(' ') {
                    Some(t) => t,
                    None => return other(),
                },
            };
            return match ok(nick) {
                true => ServerEvent::Message {
                    nick: nick.into(),
                    text: text.into(),
                },
                false => other(),
            };
        }
        if let Some(rest) = line.strip_prefix("+ ") {
            return match nick_then_text(rest, ok) {
                Some((nick, text)) => ServerEvent::Action {
                    nick: nick.into(),
                    text: text.into(),
                },
                None => other(),
            };
        }
        if let Some(rest) = line.strip_prefix("-> *") {
            return match starred_nick(rest, ok) {
                Some((to, text)) => ServerEvent::PrivateSent {
                    to: to.into(),
                    text: text.into(),
                },
                None => other(),
            };
        }
        if let Some(rest) = line.strip_prefix("! ") {
            return ServerEvent::Error { text: rest.into() };
        }
        if line == "!" {
            return ServerEvent::Error {
                text: String::new(),
            };
        }
        if let Some(rest) = line.strip_prefix("* ") {
            return classify_notice(rest, ok);
        }
        if line == "*" {
            return ServerEvent::System {
                text: String::new(),
            };
        }
        if let Some(rest) = line.strip_prefix('*') {
            return match starred_nick(rest, ok) {
                Some((from, text)) => ServerEvent::Private {
                    from: from.into(),
                    text: text.into(),
                },
                None => other(),
            };
        }
        other()
    }

    /// The line as the server wrote it (sanitized), with nicks coloured when
    /// `color` is on (see [`nick_color`]) and errors in red.
    pub fn render(&self, color: bool) -> String {
        let n = |nick: &str| paint_nick(nick, color);
        match self {
            ServerEvent::Message { nick, text } => join_text(format!("<{}>", n(nick)), text),
            ServerEvent::Action { nick, text } => join_text(format!("+ {}", n(nick)), text),
            ServerEvent::Private { from, text } => join_text(format!("*{}*", n(from)), text),
            ServerEvent::PrivateSent { to, text } => join_text(format!("-> *{}*", n(to)), text),
            ServerEvent::Join { nick, room } => format!("* {} joined {room}", n(nick)),
            ServerEvent::Leave { nick, room, reason } => match room {
                Some(room) => format!("* {} left {room} ({reason})", n(nick)),
                None => format!("* {} left ({reason})", n(nick)),
            },
            ServerEvent::Nick { old, new } => format!("* {} is now {}", n(old), n(new)),
            ServerEvent::System { text } => join_text("*".into(), text),
            ServerEvent::Error { text } => {
                let line = join_text("!".into(), text);
                if color {
                    format!("\x1b[1;31m{line}\x1b[0m")
                } else {
                    line
                }
            }
            ServerEvent::Other { text } => text.clone(),
        }
    }

    /// One JSON object (no newline): the event's fields plus `ts`.
    pub fn to_json(&self, ts: &str) -> String {
        #[derive(Serialize)]
        struct Stamped<'a> {
            #[serde(flatten)]
            event: &'a ServerEvent,
            ts: &'a str,
        }
        // Serializing strings into a String cannot fail; the fallback keeps the
        // output valid JSON regardless.
        serde_json::to_string(&Stamped { event: self, ts })
            .unwrap_or_else(|_| String::from(r#"{"type":"other","text":""}"#))
    }

    /// The nick the server gave us, from its welcome notice
    /// (`* welcome, you are guest3, in lobby ...`).
    pub fn welcome_nick(&self) -> Option<&str> {
        let ServerEvent::System { text } = self else {
            return None;
        };
        let nick = text.strip_prefix("welcome, you are ")?.split(',').next()?;
        is_nick(nick).then_some(nick)
    }
}

fn join_text(head: String, text: &str) -> String {
    if text.is_empty() {
        head
    } else {
        format!("{head} {text}")
    }
}

/// The part after `* `: a join, a leave, a nick change, or any other notice.
fn classify_notice(rest: &str, ok: NickCheck) -> ServerEvent {
    let system = || ServerEvent::System {
        text: rest.to_string(),
    };
    let Some((nick, tail)) = rest.split_once(' ') else {
        return system();
    };
    if !ok(nick) {
        return system();
    }
    if let Some(room) = tail.strip_prefix("joined ") {
        if is_room(room) {
            return ServerEvent::Join {
                nick: nick.into(),
                room: room.into(),
            };
        }
    }
    if let Some(new) = tail.strip_prefix("is now ") {
        if ok(new) {
            return ServerEvent::Nick {
                old: nick.into(),
                new: new.into(),
            };
        }
    }
    if let Some(after) = tail.strip_prefix("left ") {
        let (room, paren) = match after.split_once(' ') {
            Some((room, p)) if !after.starts_with('(') && is_room(room) => (Some(room), p),
            _ => (None, after),
        };
        if let Some(reason) = paren.strip_prefix('(').and_then(|p| p.strip_suffix(')')) {
            return ServerEvent::Leave {
                nick: nick.into(),
                room: room.map(Into::into),
                reason: reason.into(),
            };
        }
    }
    system()
}

/// Foreground colours for nicks: the six basic and six bright ones, no black,
/// white or grey, which vanish on one background or the other.
const NICK_COLORS: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// The SGR colour of a nick: stable across runs and machines (FNV-1a of the
/// lower-cased nick, since nicks are unique regardless of case).
pub fn nick_color(nick: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in nick.bytes() {
        h ^= u32::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0193);
    }
    NICK_COLORS[(h % NICK_COLORS.len() as u32) as usize]
}

fn paint_nick(nick: &str, color: bool) -> String {
    if color {
        format!("\x1b[{}m{nick}\x1b[0m", nick_color(nick))
    } else {
        nick.to_string()
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, sod) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn ev(line: &str) -> ServerEvent {
        ServerEvent::parse(line.as_bytes())
    }

    /// Every kind of line the server writes classifies back to its event.
    #[test]
    fn every_server_line_classifies_back() {
        use crate::chat::protocol::ServerLine as L;
        let names = ["alice".to_string(), "bob".to_string()];
        let cases: Vec<(L, ServerEvent)> = vec![
            (
                L::Message { nick: "alice", text: "hi <bob> *x* ! * a" },
                ServerEvent::Message { nick: s("alice"), text: s("hi <bob> *x* ! * a") },
            ),
            (L::Message { nick: "a.b-c_9", text: "" }, ServerEvent::Message { nick: s("a.b-c_9"), text: s("") }),
            (L::Action { nick: "bob", text: "waves" }, ServerEvent::Action { nick: s("bob"), text: s("waves") }),
            (L::Private { from: "bob", text: "psst" }, ServerEvent::Private { from: s("bob"), text: s("psst") }),
            (
                L::PrivateSent { to: "bob", text: "psst" },
                ServerEvent::PrivateSent { to: s("bob"), text: s("psst") },
            ),
            (L::Joined { nick: "bob", room: "games" }, ServerEvent::Join { nick: s("bob"), room: s("games") }),
            (
                L::Left { nick: "bob", reason: "kicked by op: spam (twice)" },
                ServerEvent::Leave { nick: s("bob"), room: None, reason: s("kicked by op: spam (twice)") },
            ),
            (L::Renamed { old: "guest1", new: "alice" }, ServerEvent::Nick { old: s("guest1"), new: s("alice") }),
            (
                L::Welcome { nick: "guest4", room: "lobby", others: 1 },
                ServerEvent::System {
                    text: s("welcome, you are guest4, in lobby with 1 other; /nick NAME to change it, /help for commands"),
                },
            ),
            (
                L::Moved { room: "games", others: 0 },
                ServerEvent::System { text: s("you are now in games with 0 others") },
            ),
            (
                L::Listing { title: "lobby", total: 5, items: &names },
                ServerEvent::System { text: s("lobby (5): alice, bob, ... and 3 more") },
            ),
            (L::Notice("server shutting down"), ServerEvent::System { text: s("server shutting down") }),
            (L::Error("no such nick: x"), ServerEvent::Error { text: s("no such nick: x") }),
            (
                L::Kicked { by: "op", reason: Some("spam") },
                ServerEvent::Error { text: s("you were kicked by op: spam") },
            ),
        ];
        for (line, want) in cases {
            let text = line.to_string();
            assert_eq!(ServerEvent::classify(&text), want, "{text}");
            assert_eq!(line.to_bytes(), format!("{text}\n").as_bytes());
        }
        let welcome = ServerEvent::classify(
            &L::Welcome {
                nick: "guest4",
                room: "lobby",
                others: 2,
            }
            .to_string(),
        );
        assert_eq!(welcome.welcome_nick(), Some("guest4"));
        let kicked = L::Kicked {
            by: "op",
            reason: None,
        }
        .to_string();
        assert!(crate::chat::protocol::is_kick_notice(&kicked[2..]));
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn every_line_kind_is_classified() {
        assert_eq!(
            ev("<alice> hello 你好"),
            ServerEvent::Message {
                nick: s("alice"),
                text: s("hello 你好")
            }
        );
        assert_eq!(
            ev("+ bob waves"),
            ServerEvent::Action {
                nick: s("bob"),
                text: s("waves")
            }
        );
        assert_eq!(
            ev("*bob* secret"),
            ServerEvent::Private {
                from: s("bob"),
                text: s("secret")
            }
        );
        assert_eq!(
            ev("-> *alice* secret"),
            ServerEvent::PrivateSent {
                to: s("alice"),
                text: s("secret")
            }
        );
        assert_eq!(
            ev("* bob joined lobby"),
            ServerEvent::Join {
                nick: s("bob"),
                room: s("lobby")
            }
        );
        assert_eq!(
            ev("* bob left (quit: bye now)"),
            ServerEvent::Leave {
                nick: s("bob"),
                room: None,
                reason: s("quit: bye now")
            }
        );
        assert_eq!(
            ev("* carol left games (connection closed)"),
            ServerEvent::Leave {
                nick: s("carol"),
                room: Some(s("games")),
                reason: s("connection closed")
            }
        );
        assert_eq!(
            ev("* carol left (moved to games)"),
            ServerEvent::Leave {
                nick: s("carol"),
                room: None,
                reason: s("moved to games")
            }
        );
        assert_eq!(
            ev("* guest1 is now Alice"),
            ServerEvent::Nick {
                old: s("guest1"),
                new: s("Alice")
            }
        );
        assert_eq!(
            ev("! no such nick: x"),
            ServerEvent::Error {
                text: s("no such nick: x")
            }
        );
        assert_eq!(
            ev("! you were kicked by op: spam"),
            ServerEvent::Error {
                text: s("you were kicked by op: spam")
            }
        );
        assert_eq!(
            ev("hello there"),
            ServerEvent::Other {
                text: s("hello there")
            }
        );
    }

    #[test]
    fn notices_that_look_like_announcements_stay_notices() {
        for line in [
            "* welcome, you are guest1, in lobby with 0 others; /nick NAME to change it, /help for commands",
            "* you are now in games with 0 others",
            "* lobby (2): alice, bob",
            "* rooms (2): games (2), lobby (1)",
            "* commands:",
            "*   /nick NAME        change your nick",
            "* server shutting down",
            "* alice joined lobby and more",
            "* alice is now bob and carol",
            "* alice left no parenthesis",
            "* <evil> joined lobby",
            "* a joined <x>",
        ] {
            let want = ServerEvent::System { text: s(&line[2..]) };
            assert_eq!(ev(line), want, "{line}");
        }
        assert_eq!(ev("*"), ServerEvent::System { text: s("") });
        assert_eq!(ev("!"), ServerEvent::Error { text: s("") });
    }

    #[test]
    fn a_nick_cannot_be_forged() {
        assert_eq!(
            ev("<bob> <alice> hi"),
            ServerEvent::Message {
                nick: s("bob"),
                text: s("<alice> hi")
            }
        );
        assert_eq!(
            ev("<bob> * alice joined lobby"),
            ServerEvent::Message {
                nick: s("bob"),
                text: s("* alice joined lobby")
            }
        );
        assert_eq!(
            ev("*bob* *alice* x"),
            ServerEvent::Private {
                from: s("bob"),
                text: s("*alice* x")
            }
        );
        assert_eq!(
            ev("+ bob <alice> hi"),
            ServerEvent::Action {
                nick: s("bob"),
                text: s("<alice> hi")
            }
        );
        // Text before the first newline cannot carry a second line.
        assert_eq!(
            ev("<bob> innocent\r<alice> I owe bob $100"),
            ServerEvent::Message {
                nick: s("bob"),
                text: s("innocent^M<alice> I owe bob $100")
            }
        );
    }

    #[test]
    fn malformed_prefixes_are_other() {
        for line in [
            "<> hi",
            "<bo b> hi",
            "<bob>hi",
            "<bob",
            "+ <bob> hi",
            "+bob hi",
            "*bob*hi",
            "*b b* hi",
            "-> *bob*x",
            "-> bob hi",
            "**",
        ] {
            let got = ev(line);
            assert!(
                matches!(got, ServerEvent::Other { .. }),
                "{line:?} -> {got:?}"
            );
        }
        let long = format!("<{}> hi", "a".repeat(33));
        assert!(matches!(ev(&long), ServerEvent::Other { .. }));
        // An escape is shown as `^[`, and `^[` may be in nicks, but only
        // bytes the server sent make a nick.
        assert!(matches!(
            ev("<bob\u{1b}[31m> hi"),
            ServerEvent::Other { .. }
        ));
        assert!(matches!(
            ServerEvent::classify("<bob^[[31m> hi"),
            ServerEvent::Message { .. }
        ));
        assert_eq!(
            ev("<bob>"),
            ServerEvent::Message {
                nick: s("bob"),
                text: s("")
            }
        );
    }

    #[test]
    fn hostile_bytes_only_reach_fields_as_visible_text() {
        let e = ServerEvent::parse(b"\x1b[2J<evil> hi");
        assert_eq!(
            e,
            ServerEvent::Other {
                text: s("^[[2J<evil> hi")
            }
        );
        let e =
            ServerEvent::parse(b"<mallory> \x1b]0;pwned\x07 \xc2\x9b31m bad\xff \xe2\x80\xaeevil");
        let ServerEvent::Message { nick, text } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(nick, "mallory");
        assert_eq!(text, "^[]0;pwned^G <U+009B>31m bad\u{fffd} <U+202E>evil");
        for color in [false, true] {
            let out = e.render(color);
            // Only our own colour codes may carry ESC.
            let stripped = out
                .replace("\x1b[0m", "")
                .replace(&format!("\x1b[{}m", nick_color("mallory")), "");
            assert!(!stripped.contains('\x1b'), "{out:?}");
        }
        let json = e.to_json("t");
        assert!(
            !json.contains('\u{202e}') && !json.contains('\u{9b}'),
            "{json}"
        );
        assert!(
            !json.contains('\x1b') && !json.contains("\\u001b"),
            "{json}"
        );
    }

    #[test]
    fn rendering_without_colour_gives_the_line_back() {
        for line in [
            "<alice> hello",
            "<bob>",
            "+ bob waves",
            "*bob* secret",
            "-> *alice* secret",
            "* bob joined lobby",
            "* bob left (quit)",
            "* bob left games (quit)",
            "* guest1 is now Alice",
            "* lobby (2): alice, bob",
            "*",
            "! no such nick: x",
            "!",
            "whatever",
        ] {
            assert_eq!(ev(line).render(false), line);
        }
    }

    #[test]
    fn colours_are_stable_per_nick_and_wrap_only_the_nick() {
        assert_eq!(nick_color("alice"), nick_color("ALICE"));
        let distinct: std::collections::HashSet<u8> =
            ["alice", "bob", "carol", "dave", "eve", "frank", "grace"]
                .iter()
                .map(|n| nick_color(n))
                .collect();
        assert!(distinct.len() > 2, "{distinct:?}");
        let c = nick_color("bob");
        assert_eq!(
            ev("<bob> hi").render(true),
            format!("<\x1b[{c}mbob\x1b[0m> hi")
        );
        assert_eq!(ev("! nope").render(true), "\x1b[1;31m! nope\x1b[0m");
        assert_eq!(ev("* lobby (1): bob").render(true), "* lobby (1): bob");
    }

    #[test]
    fn json_has_the_type_the_fields_and_ts() {
        let j: serde_json::Value =
            serde_json::from_str(&ev("<bob> hi \"x\"").to_json("T")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"type": "message", "nick": "bob", "text": "hi \"x\"", "ts": "T"})
        );
        let j: serde_json::Value = serde_json::from_str(&ev("-> *a* b").to_json("T")).unwrap();
        assert_eq!(j["type"], "private_sent");
        assert_eq!(j["to"], "a");
        let j: serde_json::Value =
            serde_json::from_str(&ev("* a left (quit)").to_json("T")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"type": "leave", "nick": "a", "reason": "quit", "ts": "T"})
        );
        let j: serde_json::Value = serde_json::from_str(&ev("* a is now b").to_json("T")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"type": "nick", "old": "a", "new": "b", "ts": "T"})
        );
        assert!(ev("<a> x")
            .to_json("T")
            .starts_with(r#"{"type":"message","#));
    }

    #[test]
    fn welcome_gives_our_nick() {
        let e = ev("* welcome, you are guest7, in lobby with 1 other; /nick NAME to change it");
        assert_eq!(e.welcome_nick(), Some("guest7"));
        assert_eq!(ev("* welcome, you are <x>, hi").welcome_nick(), None);
        assert_eq!(ev("<bob> welcome, you are bob,").welcome_nick(), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // last second of Feb 2024
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_800); // 2100-01-01
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00.000Z");
    }
}
