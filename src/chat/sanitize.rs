//! The one sanitizer for text that came from a peer and is about to reach a
//! terminal: chat lines on the server and in the client.
//!
//! Invalid UTF-8 becomes U+FFFD; valid UTF-8 (Chinese, emoji) passes intact.
//! C0 controls and DEL are shown in caret notation (`ESC` -> `^[`, so an ANSI
//! sequence becomes harmless text), C1 controls, Unicode bidi/format overrides
//! and characters that print as nothing are shown as `<U+XXXX>`. Nothing that
//! could move the cursor, recolour the screen, reorder text or hide it survives.
//! Tabs become a space.

/// Cleans `input` for display on a terminal.
pub fn sanitize(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_visible(&mut out, c);
    }
    out
}

/// True when `s` would come out of [`sanitize`] unchanged.
pub fn is_clean(s: &str) -> bool {
    s.chars().all(|c| !needs_escape(c))
}

fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20 || u == 0x7f || (0x80..0xa0).contains(&u) || is_bidi_or_invisible(c)
}

/// Bidi embeddings, overrides and isolates, directional marks, and other format
/// characters used to disguise text (e.g. CVE-2021-42574 "Trojan Source"), and
/// characters that print as nothing: the soft hyphen, the Mongolian vowel
/// separator, the Hangul fillers (which pass for a blank or empty nick-like
/// word), Khmer invisible vowels, the combining grapheme joiner, musical
/// format controls and the tag characters (which can hide a whole message).
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00ad
            | 0x034f
            | 0x061c
            | 0x115f..=0x1160
            | 0x17b4..=0x17b5
            | 0x180e
            | 0x200b..=0x200f
            | 0x2028..=0x202e
            | 0x2060..=0x206f
            | 0x3164
            | 0xfeff
            | 0xffa0
            | 0xfff9..=0xfffb
            | 0x1d173..=0x1d17a
            | 0xe0000..=0xe007f
    )
}

fn push_visible(out: &mut String, c: char) {
    let u = c as u32;
    if c == '\t' {
        out.push(' ');
    } else if u < 0x20 {
        out.push('^');
        out.push((u as u8 + 0x40) as char);
    } else if u == 0x7f {
        out.push_str("^?");
    } else if needs_escape(c) {
        out.push_str(&format!("<U+{u:04X}>"));
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_passes_and_invalid_becomes_replacement() {
        assert_eq!(sanitize("你好, world 👋".as_bytes()), "你好, world 👋");
        assert_eq!(sanitize(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn controls_and_escapes_become_visible() {
        assert_eq!(sanitize(b"\x1b[2J\x1b]0;pwned\x07"), "^[[2J^[]0;pwned^G");
        assert_eq!(sanitize(b"fake\rreal"), "fake^Mreal");
        assert_eq!(sanitize(b"nul\0del\x7f"), "nul^@del^?");
        assert_eq!(sanitize("c1\u{9b}31m".as_bytes()), "c1<U+009B>31m");
        assert_eq!(sanitize(b"tab\there"), "tab here");
    }

    #[test]
    fn bidi_overrides_are_shown() {
        assert_eq!(
            sanitize("abc\u{202e}fed\u{2066}x".as_bytes()),
            "abc<U+202E>fed<U+2066>x"
        );
        assert!(!is_clean("a\u{202e}"));
        assert!(is_clean("plain 中文"));
    }

    #[test]
    fn invisible_characters_are_shown() {
        assert_eq!(sanitize("a\u{ad}b".as_bytes()), "a<U+00AD>b");
        assert_eq!(sanitize("a\u{180e}b".as_bytes()), "a<U+180E>b");
        assert_eq!(
            sanitize("\u{3164}\u{115f}\u{1160}\u{ffa0}".as_bytes()),
            "<U+3164><U+115F><U+1160><U+FFA0>"
        );
        // Tag characters spelling "hi" after a flag: all shown.
        assert_eq!(
            sanitize("x\u{e0001}\u{e0068}\u{e0069}\u{e007f}".as_bytes()),
            "x<U+E0001><U+E0068><U+E0069><U+E007F>"
        );
        for c in ['\u{ad}', '\u{180e}', '\u{3164}', '\u{e0020}', '\u{e007f}'] {
            assert!(!is_clean(&c.to_string()), "{c:?}");
        }
        // Their visible neighbours are untouched.
        assert!(is_clean("\u{ac}\u{ae}\u{3163}\u{3165}\u{e0080}"));
    }

    #[test]
    fn output_never_contains_controls() {
        let all: Vec<u8> = (0u8..=255).collect();
        let s = sanitize(&all);
        assert!(is_clean(&s), "{s:?}");
        assert!(s.chars().all(|c| !c.is_control()));
    }
}
