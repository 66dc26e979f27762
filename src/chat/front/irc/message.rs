//! The IRC message grammar (Modern IRC, RFC 1459/2812 where it is silent),
//! sans-IO: one line without its CR LF into a [`Message`], and back.
//!
//! ```text
//! message = ["@" tags SPACE] [":" source SPACE] command *14(SPACE middle) [SPACE ":" trailing]
//! ```
//! Up to 15 parameters (a 15th may omit the `:`); spaces separate (several
//! in a row count as one); tags are at most [`MAX_TAGS`] bytes with their
//! `@` and space, the rest at most [`MAX_REST`] bytes (512 with the CR LF).

/// Most bytes of the tags part (`@...` and its space).
pub const MAX_TAGS: usize = 8191;
/// Most bytes of the rest of a line, without CR LF.
pub const MAX_REST: usize = 510;
/// Most bytes of tag data a client may send (without the `@` and the
/// space), as message-tags sets it.
pub const MAX_CLIENT_TAGS: usize = 4094;
/// Most parameters.
pub const MAX_PARAMS: usize = 15;

/// One parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Tags as (key, unescaped value).
    pub tags: Vec<(String, String)>,
    /// The source (`nick!user@host` or a server), if given.
    pub source: Option<String>,
    /// The command, upper-cased (or a 3-digit numeric).
    pub command: String,
    /// The parameters, the trailing one last.
    pub params: Vec<String>,
}

/// Why a line is not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Nothing but spaces (ignored, as the spec asks).
    Empty,
    /// A NUL, or a CR not at the end.
    Forbidden,
    /// The tags part is over [`MAX_TAGS`] bytes.
    TagsTooLong,
    /// The rest is over [`MAX_REST`] bytes.
    TooLong,
    /// No command after the tags or source.
    NoCommand,
}

/// Unescapes a tag value (`\:` `;`, `\s` space, `\\`, `\r`, `\n`; a lone
/// trailing `\` is dropped; other `\x` are `x`).
fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

/// Escapes a tag value.
pub fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Message {
    /// Parses one line (terminator removed). Invalid UTF-8 is replaced.
    pub fn parse(line: &[u8]) -> Result<Message, LineError> {
        if line.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return Err(LineError::Forbidden);
        }
        let text = String::from_utf8_lossy(line);
        let mut rest: &str = &text;
        let mut tags = Vec::new();
        if let Some(t) = rest.strip_prefix('@') {
            let (raw, after) = t.split_once(' ').unwrap_or((t, ""));
            if raw.len() + 2 > MAX_TAGS {
                return Err(LineError::TagsTooLong);
            }
            for tag in raw.split(';').filter(|t| !t.is_empty()) {
                let (k, v) = tag.split_once('=').unwrap_or((tag, ""));
                tags.push((k.to_string(), unescape(v)));
            }
            rest = after;
        }
        rest = rest.trim_start_matches(' ');
        if rest.len() > MAX_REST {
            return Err(LineError::TooLong);
        }
        let mut source = None;
        if let Some(s) = rest.strip_prefix(':') {
            let (src, after) = s.split_once(' ').unwrap_or((s, ""));
            source = Some(src.to_string());
            rest = after.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(if tags.is_empty() && source.is_none() {
                LineError::Empty
            } else {
                LineError::NoCommand
            });
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(t) = rest.strip_prefix(':') {
                params.push(t.to_string());
                break;
            }
            if params.len() == MAX_PARAMS - 1 {
                // The 15th parameter is the rest, `:` or not.
                params.push(rest.to_string());
                break;
            }
            let (p, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_string());
            rest = after;
        }
        Ok(Message {
            tags,
            source,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The message as a line with CR LF. The last parameter gets a `:`
    /// when it needs one (empty, has a space or starts with `:`).
    #[cfg(test)]
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        if !self.tags.is_empty() {
            s.push('@');
            for (i, (k, v)) in self.tags.iter().enumerate() {
                if i > 0 {
                    s.push(';');
                }
                s.push_str(k);
                if !v.is_empty() {
                    s.push('=');
                    escape(v, &mut s);
                }
            }
            s.push(' ');
        }
        if let Some(src) = &self.source {
            s.push(':');
            s.push_str(src);
            s.push(' ');
        }
        s.push_str(&self.command);
        for (i, p) in self.params.iter().enumerate() {
            s.push(' ');
            let last = i + 1 == self.params.len();
            if last && (p.is_empty() || p.contains(' ') || p.starts_with(':')) {
                s.push(':');
            }
            s.push_str(p);
        }
        s.push_str("\r\n");
        s
    }

    /// Parameter `i`, if given.
    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(line: &str) -> Message {
        Message::parse(line.as_bytes()).unwrap()
    }

    #[test]
    fn the_parts_of_a_message() {
        let m =
            p("@time=2024-01-01T00:00:00Z;+x=a\\sb\\:c;flag :nick!u@h PRIVMSG #chan :hello there");
        assert_eq!(
            m.tags,
            [
                ("time".to_string(), "2024-01-01T00:00:00Z".to_string()),
                ("+x".to_string(), "a b;c".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(m.source.as_deref(), Some("nick!u@h"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#chan", "hello there"]);
        assert_eq!(p("privmsg a b").command, "PRIVMSG");
        assert_eq!(p("CMD a  b   :").params, ["a", "b", ""]);
        assert_eq!(p("CMD :  spaced  ").params, ["  spaced  "]);
        assert_eq!(p("CMD a :b :c").params, ["a", "b :c"]);
        assert_eq!(p("PING").params, Vec::<String>::new());
        assert_eq!(p("   NICK   bob  ").params, ["bob"]);
    }

    #[test]
    fn fifteen_parameters_at_most() {
        let many: Vec<String> = (1..=17).map(|i| format!("p{i}")).collect();
        let m = p(&format!("CMD {}", many.join(" ")));
        assert_eq!(m.params.len(), 15);
        assert_eq!(m.params[14], "p15 p16 p17");
        let m = p("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :last one");
        assert_eq!(m.params.len(), 15);
        assert_eq!(m.params[14], "last one");
    }

    #[test]
    fn bad_lines_are_refused_not_guessed() {
        assert_eq!(Message::parse(b""), Err(LineError::Empty));
        assert_eq!(Message::parse(b"   "), Err(LineError::Empty));
        assert_eq!(Message::parse(b"NICK a\0b"), Err(LineError::Forbidden));
        assert_eq!(Message::parse(b"NICK a\rb"), Err(LineError::Forbidden));
        assert_eq!(Message::parse(b"@a=b"), Err(LineError::NoCommand));
        assert_eq!(Message::parse(b":src"), Err(LineError::NoCommand));
        let long = format!("PRIVMSG #a :{}", "x".repeat(600));
        assert_eq!(Message::parse(long.as_bytes()), Err(LineError::TooLong));
        let tags = format!("@a={} PING x", "y".repeat(9000));
        assert_eq!(Message::parse(tags.as_bytes()), Err(LineError::TagsTooLong));
        let ok = format!("@a={} PING x", "y".repeat(8000));
        assert!(Message::parse(ok.as_bytes()).is_ok());
        let bad = Message::parse(b"PRIVMSG #a :\xff\xfe").unwrap();
        assert_eq!(bad.params[1], "\u{fffd}\u{fffd}");
    }

    fn word() -> impl Strategy<Value = String> {
        "[A-Za-z0-9#&!@.\\[\\]{}|^_-][A-Za-z0-9#&!@.:\\[\\]{}|^_-]{0,12}"
    }

    proptest! {
        #[test]
        fn round_trips(
            tags in proptest::collection::vec(("[a-z+][a-z0-9/.-]{0,8}", "[ -~]{0,10}"), 0..4),
            source in proptest::option::of("[a-z][a-z0-9!@.]{0,15}"),
            command in "[A-Z]{1,8}|[0-9]{3}",
            middles in proptest::collection::vec(word(), 0..13),
            trailing in proptest::option::of("[ -~]{0,30}"),
        ) {
            let mut params = middles;
            if let Some(t) = trailing {
                params.push(t);
            }
            let m = Message { tags, source, command, params };
            let line = m.to_line();
            prop_assert!(line.ends_with("\r\n"));
            let back = Message::parse(line.trim_end_matches("\r\n").as_bytes()).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = Message::parse(&bytes);
        }
    }
}
