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
    for round in 0..5 {
        // Many lines in one write: the room's fan-out is still busy with
        // them when foo's PING is read.
        let batch: String = (0..500)
            .map(|i| format!("PRIVMSG #chan :hello {round} {i}\r\n"))
            .collect();
        a.send(&batch);
        // foo's PONG: the server has taken the messages...
        a.sync();
        // ...so bar has them all before its own PONG.
        let got = b.sync();
        assert_eq!(got.len(), 500, "round {round}: {:?}", got.last());
        let last = format!(":foo!foo@sockit PRIVMSG #chan :hello {round} 499");
        assert_eq!(got[499], last);
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
