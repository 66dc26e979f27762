//! `chat serve --irc`: IRCv3 message-tags. Client-only tags (`+name`) ride
//! with PRIVMSG, NOTICE and TAGMSG to the IRC members that negotiated
//! message-tags; everyone else gets the message without them (and no
//! TAGMSG at all).

use crate::chat_irc::{irc_serve, Irc};
use crate::util::*;

/// Registers with these capabilities and joins `#t`.
fn with_caps(addr: &str, nick: &str, caps: &str) -> Irc {
    let mut c = Irc::connect(addr);
    c.send(&format!(
        "CAP LS 302\r\nCAP REQ :{caps}\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\n"
    ));
    c.expect(" 422 ");
    c.send("JOIN #t\r\n");
    c.expect(" 366 ");
    c
}

/// The tags of a line (without the `@`), or "" when it has none.
fn tags(line: &str) -> &str {
    line.strip_prefix('@')
        .and_then(|l| l.split_once(' '))
        .map_or("", |(t, _)| t)
}

#[test]
fn client_tags_reach_message_tags_members_only() {
    let (_srv, line_addr, addr) = irc_serve(&[]);
    let mut c = Irc::connect(&addr);
    c.send("CAP LS 302\r\n");
    let ls = c.line().unwrap();
    assert!(ls.contains("message-tags"), "{ls}");
    let mut a = with_caps(&addr, "ann", "message-tags echo-message");
    let mut b = with_caps(&addr, "bea", "message-tags");
    let mut plain = with_caps(&addr, "pat", "server-time");
    let mut nc = ChatClient::named(&line_addr, "liner");
    nc.send("/join t\n");
    nc.expect("you are now in t");
    a.sync();
    b.sync();
    plain.sync();

    // Client-only tags ride along; server tags a client made up do not.
    a.send("@+draft/reply=abc;+example.com/x=a\\sb;label=l1;msgid=forged PRIVMSG #t :hi all\r\n");
    let got = b.expect("PRIVMSG #t :hi all");
    let t = tags(&got);
    assert!(t.contains("+draft/reply=abc"), "{got}");
    assert!(t.contains("+example.com/x=a\\sb"), "{got}");
    assert!(!t.contains("label") && !t.contains("msgid"), "{got}");
    assert!(
        t.contains("time="),
        "message-tags members get server time: {got}"
    );
    // echo-message: the sender gets its own, with its tags.
    let echo = a.expect("PRIVMSG #t :hi all");
    assert!(tags(&echo).contains("+draft/reply=abc"), "{echo}");
    // Without message-tags: no client tags (server-time's own tag only).
    let got = plain.expect("PRIVMSG #t :hi all");
    assert!(!got.contains("draft"), "{got}");
    assert!(tags(&got).starts_with("time="), "{got}");
    nc.expect("<ann> hi all");

    // TAGMSG: to message-tags members only; nothing for the others.
    a.send("@+typing=active TAGMSG #t\r\n");
    let got = b.expect("TAGMSG #t");
    assert!(tags(&got).contains("+typing=active"), "{got}");
    assert!(got.contains(":ann!ann@sockit TAGMSG #t"), "{got}");
    a.expect("TAGMSG #t");
    a.send("PRIVMSG #t :after typing\r\n");
    let seen = plain.expect("PRIVMSG #t :after typing");
    assert!(plain.seen.iter().all(|l| !l.contains("TAGMSG")), "{seen}");
    // The line member saw nothing of the TAGMSG in between.
    assert_eq!(nc.line(), "<ann> after typing");

    // Private TAGMSG and a tagged private NOTICE.
    a.send("@+typing=paused TAGMSG bea\r\n@+draft/react=x NOTICE bea :psst\r\n");
    let got = b.expect("TAGMSG bea");
    assert!(tags(&got).contains("+typing=paused"), "{got}");
    let got = b.expect("NOTICE bea :psst");
    assert!(tags(&got).contains("+draft/react=x"), "{got}");

    // Errors: no target, no such nick, no client tags at all (nothing sent).
    a.send("TAGMSG\r\n@+typing=active TAGMSG nobody\r\n");
    let got = a.sync();
    assert!(
        got.iter().any(|l| l.contains(" 461 ann TAGMSG ")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|l| l.contains(" 401 ann nobody ")),
        "{got:?}"
    );
}

#[test]
fn client_tags_over_the_limit_get_417() {
    let (_srv, _line, addr) = irc_serve(&[]);
    let mut a = with_caps(&addr, "ann", "message-tags");
    let mut b = with_caps(&addr, "bea", "message-tags");
    a.sync();
    // 4094 bytes of tag data is the most a client may send.
    let big = format!("+x={}", "y".repeat(4094 - 3));
    a.send(&format!("@{big} PRIVMSG #t :fits\r\n"));
    let got = b.expect("PRIVMSG #t :fits");
    assert!(got.contains(&big), "the tags arrive whole");
    let over = format!("+x={}", "y".repeat(4095 - 3));
    a.send(&format!("@{over} PRIVMSG #t :too much\r\n"));
    assert_eq!(a.sync(), [":sockit 417 ann :Input line was too long"]);
    a.send("PRIVMSG #t :next\r\n");
    let got = b.expect("PRIVMSG #t :");
    assert!(got.ends_with("PRIVMSG #t :next"), "{got}");
}
