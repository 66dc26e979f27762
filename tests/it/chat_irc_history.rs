//! `chat serve --irc` with history: IRCv3 CHATHISTORY (`LATEST`, `BEFORE`,
//! `AFTER`, `AROUND`, `BETWEEN`; `*`, `msgid=` and `timestamp=`
//! references), the `batch` and `draft/chathistory` capabilities and the
//! `CHATHISTORY` 005 token (only with history), msgids on live and replayed
//! messages, and the replay on JOIN inside a `chathistory` batch.

use crate::chat_irc::{irc_serve, Irc};
use crate::util::*;

/// Registers with these capabilities (none: no CAP at all) and joins `#t`.
fn member(addr: &str, nick: &str, caps: &str) -> Irc {
    let mut c = Irc::connect(addr);
    if caps.is_empty() {
        c.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"));
    } else {
        c.send(&format!(
            "CAP LS 302\r\nCAP REQ :{caps}\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\n"
        ));
        c.expect(" ACK :");
    }
    c.expect(" 422 ");
    c.send("JOIN #t\r\n");
    c.expect(" 366 ");
    c
}

/// The value of tag `key` of a line, if it has it.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split_once(' ')?.0;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// The text of a PRIVMSG line.
fn text(line: &str) -> &str {
    line.split_once(" PRIVMSG ")
        .and_then(|(_, r)| r.split_once(" :"))
        .map_or("", |(_, t)| t)
}

/// Reads one whole `chathistory` batch for `#t`: checks its framing (every
/// line inside carries the batch's reference and a time) and returns the
/// lines inside.
fn batch(c: &mut Irc) -> Vec<String> {
    let open = c.expect(" BATCH +");
    let (head, kind) = open.split_once(" BATCH +").unwrap();
    assert_eq!(head, ":sockit", "{open}");
    let (id, rest) = kind.split_once(' ').unwrap();
    assert_eq!(rest, "chathistory #t", "{open}");
    let mut inside = Vec::new();
    loop {
        let l = c.line().expect("the batch's end");
        if l == format!(":sockit BATCH -{id}") {
            return inside;
        }
        assert_eq!(tag(&l, "batch"), Some(id), "in the batch: {l}");
        assert!(tag(&l, "time").is_some(), "server-time in the batch: {l}");
        inside.push(l);
    }
}

/// The texts of a batch's messages.
fn texts(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| text(l)).collect()
}

/// Asks `req`, reads the batch that answers it: its texts.
fn ask(c: &mut Irc, req: &str) -> Vec<String> {
    c.send(&format!("CHATHISTORY {req}\r\n"));
    texts(&batch(c)).into_iter().map(String::from).collect()
}

/// Asks `req`, expects a FAIL with `code`: the line.
fn fails(c: &mut Irc, req: &str, code: &str) -> String {
    c.send(&format!("CHATHISTORY {req}\r\nPING :after\r\n"));
    let l = c.expect(" FAIL CHATHISTORY ");
    assert!(
        l.starts_with(&format!(":sockit FAIL CHATHISTORY {code} ")),
        "{req}: {l}"
    );
    c.expect("PONG sockit :after");
    l
}

const FULL: &str = "batch server-time message-tags draft/chathistory";

/// A server with `#t` holding m1..m10 (said by a line member): the server,
/// the IRC address, a full member, and each message's (msgid, time).
fn ten_messages() -> (Proc, String, Irc, Vec<(String, String)>) {
    // Many requests in a row: no flood control.
    let (srv, line_addr, addr) = irc_serve(&["--rate", "0"]);
    let mut a = member(&addr, "ann", FULL);
    let mut nc = ChatClient::named(&line_addr, "liner");
    nc.send("/join t\n");
    nc.expect("you are now in t");
    let mut ids = Vec::new();
    for i in 1..=10 {
        nc.send(&format!("m{i}\n"));
        let l = a.expect(&format!("PRIVMSG #t :m{i}"));
        let id = tag(&l, "msgid").unwrap_or_else(|| panic!("a msgid: {l}"));
        let time = tag(&l, "time").unwrap();
        ids.push((id.to_string(), time.to_string()));
        if i == 5 {
            // Some messages in one fan-out, some in another.
            a.sync();
        }
    }
    a.sync();
    (srv, addr, a, ids)
}

fn names(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[test]
fn each_subcommand_with_msgids_and_limits() {
    let (_srv, _addr, mut a, ids) = ten_messages();
    let id = |i: usize| format!("msgid={}", ids[i - 1].0);
    // msgids are distinct, and name the room.
    let mut uniq: Vec<&String> = ids.iter().map(|(m, _)| m).collect();
    uniq.dedup();
    assert_eq!(uniq.len(), 10);
    assert!(ids[0].0.ends_with("-t"), "{}", ids[0].0);

    assert_eq!(ask(&mut a, "LATEST #t * 3"), names(8..=10));
    assert_eq!(ask(&mut a, "LATEST #t * 100"), names(1..=10));
    assert_eq!(
        ask(&mut a, &format!("LATEST #t {} 100", id(7))),
        names(8..=10)
    );
    assert_eq!(
        ask(&mut a, &format!("LATEST #t {} 2", id(3))),
        names(9..=10)
    );
    assert!(ask(&mut a, &format!("LATEST #t {} 5", id(10))).is_empty());

    assert_eq!(ask(&mut a, &format!("BEFORE #t {} 2", id(5))), names(3..=4));
    assert_eq!(
        ask(&mut a, &format!("BEFORE #t {} 50", id(5))),
        names(1..=4)
    );
    assert!(ask(&mut a, &format!("BEFORE #t {} 5", id(1))).is_empty());

    assert_eq!(ask(&mut a, &format!("AFTER #t {} 2", id(5))), names(6..=7));
    assert_eq!(
        ask(&mut a, &format!("AFTER #t {} 50", id(5))),
        names(6..=10)
    );
    assert!(ask(&mut a, &format!("AFTER #t {} 5", id(10))).is_empty());

    assert_eq!(ask(&mut a, &format!("AROUND #t {} 3", id(5))), names(4..=6));
    assert_eq!(ask(&mut a, &format!("AROUND #t {} 1", id(5))), names(5..=5));
    // Near an end, the other side tops up.
    assert_eq!(ask(&mut a, &format!("AROUND #t {} 6", id(1))), names(1..=6));
    assert_eq!(
        ask(&mut a, &format!("AROUND #t {} 4", id(10))),
        names(7..=10)
    );
    assert_eq!(
        ask(&mut a, &format!("AROUND #t {} 50", id(4))),
        names(1..=10)
    );

    assert_eq!(
        ask(&mut a, &format!("BETWEEN #t {} {} 10", id(2), id(6))),
        names(3..=5)
    );
    // Counted from the first reference: forwards, or backwards.
    assert_eq!(
        ask(&mut a, &format!("BETWEEN #t {} {} 2", id(2), id(6))),
        names(3..=4)
    );
    assert_eq!(
        ask(&mut a, &format!("BETWEEN #t {} {} 2", id(6), id(2))),
        names(4..=5)
    );
    assert!(ask(&mut a, &format!("BETWEEN #t {} {} 9", id(4), id(5))).is_empty());

    // The replayed lines are the live ones: same msgid, time, source.
    a.send("CHATHISTORY LATEST #t * 10\r\n");
    let lines = batch(&mut a);
    for (l, (m, t)) in lines.iter().zip(&ids) {
        assert_eq!(tag(l, "msgid"), Some(m.as_str()), "{l}");
        assert_eq!(tag(l, "time"), Some(t.as_str()), "{l}");
        assert!(l.contains(" :liner!liner@sockit PRIVMSG #t :m"), "{l}");
    }
    // The channel in any case; the subcommand too.
    assert_eq!(ask(&mut a, "latest #T * 1"), names(10..=10));
}

#[test]
fn timestamps_as_references() {
    let (_srv, _addr, mut a, ids) = ten_messages();
    let ms = |t: &str| t.to_string();
    let times: Vec<String> = ids.iter().map(|(_, t)| ms(t)).collect();
    // Times in RFC 3339 with ms compare as strings.
    let before = |t: &str| {
        names(1..=10)
            .into_iter()
            .zip(&times)
            .filter(|(_, x)| x.as_str() < t)
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    let after = |t: &str| {
        names(1..=10)
            .into_iter()
            .zip(&times)
            .filter(|(_, x)| x.as_str() > t)
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    for i in [1, 5, 6, 10] {
        let t = &times[i - 1];
        assert_eq!(
            ask(&mut a, &format!("BEFORE #t timestamp={t} 100")),
            before(t),
            "before m{i}"
        );
        assert_eq!(
            ask(&mut a, &format!("AFTER #t timestamp={t} 100")),
            after(t),
            "after m{i}"
        );
        assert_eq!(
            ask(&mut a, &format!("LATEST #t timestamp={t} 100")),
            after(t),
            "latest since m{i}"
        );
        let mut want = before(t);
        let last2 = want.split_off(want.len().saturating_sub(2));
        assert_eq!(
            ask(&mut a, &format!("BEFORE #t timestamp={t} 2")),
            last2,
            "2 before m{i}"
        );
    }
    // Before all, after all.
    assert_eq!(
        ask(&mut a, "AFTER #t timestamp=2000-01-01T00:00:00.000Z 3"),
        names(1..=3)
    );
    assert!(ask(&mut a, "BEFORE #t timestamp=2000-01-01T00:00:00.000Z 3").is_empty());
    assert_eq!(
        ask(&mut a, "BEFORE #t timestamp=2999-01-01T00:00:00.000Z 2"),
        names(9..=10)
    );
    assert!(ask(&mut a, "AFTER #t timestamp=2999-01-01T00:00:00.000Z 2").is_empty());
    assert_eq!(
        ask(
            &mut a,
            "BETWEEN #t timestamp=2000-01-01T00:00:00.000Z timestamp=2999-01-01T00:00:00.000Z 4"
        ),
        names(1..=4)
    );
    assert_eq!(
        ask(
            &mut a,
            "BETWEEN #t timestamp=2999-01-01T00:00:00.000Z timestamp=2000-01-01T00:00:00.000Z 4"
        ),
        names(7..=10)
    );
    // A msgid and a timestamp together.
    let first = format!("msgid={}", ids[0].0);
    assert_eq!(
        ask(
            &mut a,
            &format!("BETWEEN #t {first} timestamp=2999-01-01T00:00:00.000Z 2")
        ),
        names(2..=3)
    );
}

#[test]
fn errors_are_fail_replies_as_the_spec_says() {
    let (_srv, addr, mut a, ids) = ten_messages();
    for (req, code) in [
        ("LATEST #t * 0", "INVALID_PARAMS"),
        ("LATEST #t * -3", "INVALID_PARAMS"),
        ("LATEST #t * many", "INVALID_PARAMS"),
        ("BEFORE #t * 5", "INVALID_PARAMS"),
        ("AFTER #t msgid=garbage 5", "INVALID_PARAMS"),
        ("AFTER #t timestamp=yesterday 5", "INVALID_PARAMS"),
        ("AFTER #t seq=3 5", "INVALID_PARAMS"),
        ("SIDEWAYS #t * 5", "INVALID_PARAMS"),
        ("LATEST #t", "NEED_MORE_PARAMS"),
        ("BETWEEN #t * 5", "NEED_MORE_PARAMS"),
        ("LATEST #nowhere * 5", "INVALID_TARGET"),
        ("LATEST #bad#name * 5", "INVALID_TARGET"),
        ("LATEST liner * 5", "INVALID_TARGET"),
        ("BEFORE #t msgid=999-1-t 5", "MESSAGE_ERROR"),
        ("BEFORE #t msgid=3-1-t 5", "MESSAGE_ERROR"),
    ] {
        fails(&mut a, req, code);
    }
    // A msgid of another room.
    let other = ids[2].0.replace("-t", "-elsewhere");
    fails(
        &mut a,
        &format!("BEFORE #t msgid={other} 5"),
        "MESSAGE_ERROR",
    );
    let l = fails(&mut a, "LATEST #nowhere * 5", "INVALID_TARGET");
    assert_eq!(
        l,
        ":sockit FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :Messages could not be retrieved"
    );
    // A channel one is not in: no history of it.
    let mut out = member(&addr, "olga", FULL);
    out.send("PART #t\r\n");
    out.expect("PART #t");
    fails(&mut out, "LATEST #t * 5", "INVALID_TARGET");
    // Without batch: refused (its history could not be told from live lines).
    let mut plain = member(&addr, "pat", "server-time");
    let l = fails(&mut plain, "LATEST #t * 5", "MESSAGE_ERROR");
    assert!(l.contains("batch"), "{l}");
    // The member that asked is still there and served.
    assert_eq!(ask(&mut a, "LATEST #t * 1"), names(10..=10));
}

#[test]
fn caps_and_isupport_only_with_history() {
    let (_srv, _line, addr) = irc_serve(&[]);
    let mut c = Irc::connect(&addr);
    c.send("CAP LS 302\r\n");
    let ls = c.expect(" LS ");
    assert!(
        ls.contains("batch") && ls.contains("draft/chathistory"),
        "{ls}"
    );
    c.send("CAP REQ :batch draft/chathistory\r\nNICK h\r\nUSER h 0 * :h\r\nCAP END\r\n");
    c.expect("ACK :batch draft/chathistory");
    let isupport = c.expect(" 005 ");
    assert!(isupport.contains(" CHATHISTORY=1000 "), "{isupport}");
    assert!(
        isupport.contains(" MSGREFTYPES=msgid,timestamp "),
        "{isupport}"
    );
    c.send("CAP LIST\r\n");
    let list = c.expect(" LIST ");
    assert!(list.contains("batch draft/chathistory"), "{list}");

    let (_srv2, _line2, addr2) = irc_serve(&["--no-history"]);
    let mut c = Irc::connect(&addr2);
    c.send("CAP LS 302\r\n");
    let ls = c.expect(" LS ");
    assert!(!ls.contains("batch") && !ls.contains("chathistory"), "{ls}");
    c.send("CAP REQ :draft/chathistory\r\n");
    c.expect("NAK :draft/chathistory");
    c.send("CAP REQ :batch\r\n");
    c.expect("NAK :batch");
    c.send("NICK n\r\nUSER n 0 * :n\r\nCAP END\r\n");
    let isupport = c.expect(" 005 ");
    assert!(!isupport.contains("CHATHISTORY"), "{isupport}");
    c.expect(" 422 ");
    c.send("CHATHISTORY LATEST #t * 5\r\n");
    c.expect(":sockit 421 n CHATHISTORY :Unknown command");
}

#[test]
fn replay_on_join_is_one_chathistory_batch() {
    let (_srv, addr, mut a, ids) = ten_messages();
    // Batch and server-time: the last 10 (of the default 20) in one batch,
    // after the JOIN and NAMES, with their msgids under message-tags.
    let mut b = member(&addr, "bea", FULL);
    let lines = batch(&mut b);
    assert_eq!(texts(&lines), names(1..=10));
    for (l, (m, _)) in lines.iter().zip(&ids) {
        assert_eq!(tag(l, "msgid"), Some(m.as_str()), "{l}");
    }
    // batch with server-time but no message-tags: times, no msgids.
    let mut c = member(&addr, "cid", "batch server-time");
    let lines = batch(&mut c);
    assert_eq!(texts(&lines), names(1..=10));
    assert!(lines.iter().all(|l| tag(l, "msgid").is_none()), "{lines:?}");
    // server-time alone: the replay as before, time-tagged, no batch.
    let mut d = member(&addr, "dot", "server-time");
    let got = d.sync();
    let said: Vec<&String> = got.iter().filter(|l| l.contains(" PRIVMSG #t ")).collect();
    assert_eq!(said.len(), 10, "{got:#?}");
    assert!(said.iter().all(|l| tag(l, "time").is_some()), "{said:?}");
    assert!(got.iter().all(|l| !l.contains("BATCH")), "{got:#?}");
    // Without server-time: no replay at all (as without history).
    let mut e = member(&addr, "eve", "");
    let got = e.sync();
    assert!(got.iter().all(|l| !l.contains("PRIVMSG")), "{got:#?}");
    // Live messages after a replay: no batch tag, a msgid for tags members.
    a.send("PRIVMSG #t :live\r\n");
    let l = b.expect("PRIVMSG #t :live");
    assert!(
        tag(&l, "batch").is_none() && tag(&l, "msgid").is_some(),
        "{l}"
    );
    let l = c.expect("PRIVMSG #t :live");
    assert!(
        tag(&l, "batch").is_none() && tag(&l, "msgid").is_none(),
        "{l}"
    );
    e.expect("PRIVMSG #t :live");
    // An empty room: no batch at all on joining it.
    b.send("JOIN #empty\r\n");
    b.expect(" 366 bea #empty ");
    let got = b.sync();
    assert!(got.iter().all(|l| !l.contains("BATCH")), "{got:#?}");
}
