//! `chat serve --irc`: what irctest's RFC and IRCv3 cases found
//! (bench/irc_conformance.sh): PONG after the room's pending talk, an
//! exact CAP LIST, RPL_NOTOPIC on joining a channel without a topic.

use crate::chat_irc::{irc_serve, Irc};

#[test]
fn a_pong_comes_after_what_was_said_before_the_ping() {
    let (_srv, _line, addr) = irc_serve(&["--rate", "0"]);
    let mut a = Irc::registered(&addr, "foo");
    let mut b = Irc::registered(&addr, "bar");
    a.send("JOIN #chan\r\n");
    a.expect(" 366 ");
    b.send("JOIN #chan\r\n");
    b.expect(" 366 ");
    b.sync();
    for i in 0..20 {
        a.send(&format!("PRIVMSG #chan :hello {i}\r\n"));
        // foo's PONG: the server has taken the message...
        a.sync();
        // ...so bar has it before its own PONG.
        let got = b.sync();
        let want = format!(":foo!foo@sockit PRIVMSG #chan :hello {i}");
        assert_eq!(got, [want], "round {i}");
    }
}

#[test]
fn cap_list_names_exactly_what_was_enabled() {
    let (_srv, _line, addr) = irc_serve(&[]);
    let mut c = Irc::connect(&addr);
    c.send("CAP LIST\r\n");
    assert_eq!(c.line().unwrap(), ":sockit CAP * LIST :");
    c.send("CAP REQ :multi-prefix\r\nCAP LIST\r\n");
    assert!(c.line().unwrap().contains("ACK :multi-prefix"));
    assert_eq!(c.line().unwrap(), ":sockit CAP * LIST :multi-prefix");
}

#[test]
fn joining_a_channel_without_a_topic_gives_331() {
    let (_srv, _line, addr) = irc_serve(&[]);
    let mut c = Irc::registered(&addr, "joiner");
    c.send("JOIN #fresh\r\n");
    assert_eq!(c.line().unwrap(), ":joiner!joiner@sockit JOIN #fresh");
    assert_eq!(
        c.line().unwrap(),
        ":sockit 331 joiner #fresh :No topic is set"
    );
    assert!(c.line().unwrap().contains(" 353 joiner = #fresh :@joiner"));
}
