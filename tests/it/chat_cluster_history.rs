//! History in a cluster: the room log numbers every room's events on every
//! node, so replay on entering a room works on a node that was not there when
//! it was said, and one room's events carry one numbering on all nodes.

use crate::chat_cluster::Nats;
use crate::util::*;

fn node(nats: &Nats, name: &str) -> (Proc, String) {
    let url = nats.url();
    let op = format!("op-{name}");
    let (p, addr) = chat_serve(&[
        "127.0.0.1:0",
        "--cluster",
        &url,
        "--node",
        name,
        "--cluster-lease",
        "3",
        "--rate",
        "0",
        "--operator-nick",
        &op,
    ]);
    p.wait_stderr(&format!("cluster: node {name} ready"));
    (p, addr)
}

/// `=ROOM#SEQ[/PREV] TIME LINE` -> (ROOM, SEQ, LINE).
fn history_line(l: &str) -> Option<(String, u64, String)> {
    let rest = l.strip_prefix('=')?;
    let (mark, rest) = rest.split_once(' ')?;
    let (_, line) = rest.split_once(' ')?;
    let (room, num) = mark.rsplit_once('#')?;
    let seq = num.split('/').next()?.parse().ok()?;
    Some((room.to_string(), seq, line.to_string()))
}

/// Reads lines until `last` (a line's text) is read as history: the
/// history lines read, in order.
fn replay_until(c: &mut ChatClient, last: &str) -> Vec<(String, u64, String)> {
    let mut got = Vec::new();
    loop {
        let l = c.line();
        if let Some(h) = history_line(&l) {
            let done = h.2 == last;
            got.push(h);
            if done {
                return got;
            }
        }
    }
}

#[test]
fn a_node_that_joins_later_replays_what_its_rooms_said_before() {
    let Some(nats) = Nats::start("cluster_history_late_node") else {
        return;
    };
    let (_a, addr_a) = node(&nats, "a");
    let mut ann = ChatClient::named(&addr_a, "ann");
    let mut ada = ChatClient::named(&addr_a, "ada");
    ada.send("/join games\n/cursors\n");
    ada.expect(" epoch=");
    ann.send("old one\nold two\n/join games\n");
    ann.expect("you are now in games");
    ann.send("in games\n");
    // The number node a gave it, from ada's mark: @games#SEQ[/PREV] LINE.
    let mark = ada.expect("<ann> in games");
    let seq: u64 = mark
        .strip_prefix("@games#")
        .and_then(|r| r.split([' ', '/']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a mark: {mark}"));

    // Node b starts after all of it, and has never hosted either room.
    let (_b, addr_b) = node(&nats, "b");
    let mut cat = ChatClient::connect(&addr_b);
    let lobby = replay_until(&mut cat, "<ann> old two");
    let texts: Vec<&str> = lobby.iter().map(|h| h.2.as_str()).collect();
    assert_eq!(texts, ["<ann> old one", "<ann> old two"]);
    cat.send("/join games\n");
    let games = replay_until(&mut cat, "<ann> in games");
    // The same event has the same number on both nodes.
    assert_eq!(games.last().map(|h| h.1), Some(seq), "{games:?}");
}

#[test]
fn one_room_has_one_order_and_numbering_on_every_node() {
    let Some(nats) = Nats::start("cluster_one_order") else {
        return;
    };
    let (_a, addr_a) = node(&nats, "a");
    let (_b, addr_b) = node(&nats, "b");
    let mut ann = ChatClient::named(&addr_a, "ann");
    let mut bob = ChatClient::named(&addr_b, "bob");
    ann.expect("is now bob");
    // Watchers with cursor marks on each node.
    let mut wa = ChatClient::named(&addr_a, "wa");
    let mut wb = ChatClient::named(&addr_b, "wb");
    wa.expect("is now wb");
    for w in [&mut wa, &mut wb] {
        w.send("/cursors\n");
        w.expect(" epoch=");
    }
    // Both sides talk at once.
    let n = 200;
    let (sa, sb): (String, String) = (
        (0..n).map(|i| format!("a{i}\n")).collect(),
        (0..n).map(|i| format!("b{i}\n")).collect(),
    );
    let ta = std::thread::spawn(move || {
        ann.send(&sa);
        ann
    });
    bob.send(&sb);
    let _ann = ta.join().unwrap();
    let marked = |w: &mut ChatClient| {
        let mut got = Vec::new();
        while got.len() < 2 * n {
            let l = w.line();
            if let Some(rest) = l.strip_prefix("@lobby#") {
                if rest.contains("> a") || rest.contains("> b") {
                    got.push(rest.to_string());
                }
            }
        }
        got
    };
    let (on_a, on_b) = (marked(&mut wa), marked(&mut wb));
    assert_eq!(
        on_a, on_b,
        "the nodes disagree on the room's order or numbers"
    );
    // Each sender's lines in the order sent.
    for who in ["ann> a", "bob> b"] {
        let mine: Vec<u32> = on_a
            .iter()
            .filter_map(|l| l.split_once(who).and_then(|(_, i)| i.parse().ok()))
            .collect();
        assert_eq!(mine, (0..n as u32).collect::<Vec<_>>());
    }
}

#[test]
fn a_member_in_several_rooms_hears_a_nick_change_or_quit_once() {
    use crate::chat_irc::{irc_serve, Irc};
    let Some(nats) = Nats::start("cluster_spread_once") else {
        return;
    };
    let url = nats.url();
    let irc_node = |name: &str| {
        let (p, _, irc) = irc_serve(&["--cluster", &url, "--node", name, "--rate", "0"]);
        p.wait_stderr(&format!("cluster: node {name} ready"));
        (p, irc)
    };
    let (_a, irc_a) = irc_node("a");
    let (_b, irc_b) = irc_node("b");
    let mut ian = Irc::registered(&irc_b, "ian");
    ian.send("JOIN #lobby,#games,#music\r\n");
    ian.expect(" 366 ian #music ");
    let mut ann = Irc::registered(&irc_a, "ann");
    ann.send("JOIN #lobby,#games,#music\r\n");
    ann.expect(" 366 ann #music ");
    ian.expect(":ann!");
    ann.send("NICK anna\r\n");
    ann.expect(" NICK ");
    // The change crosses once per room; ian, in all three, hears it once,
    // then the marker after it proves nothing else is on the way.
    ann.send("PRIVMSG #music :after the nick\r\n");
    ian.expect("after the nick");
    ann.send("QUIT :bye\r\n");
    ian.expect(" QUIT ");
    // All three copies were queued together; ben's lines in each room come
    // after them in that room's log.
    let mut ben = Irc::registered(&irc_a, "ben");
    ben.send("JOIN #lobby,#games,#music\r\n");
    for room in ["#lobby", "#games", "#music"] {
        ben.send(&format!("PRIVMSG {room} :after the quit in {room}\r\n"));
    }
    for room in ["#lobby", "#games", "#music"] {
        let marker = format!(":after the quit in {room}");
        if !ian.seen.iter().any(|l| l.ends_with(&marker)) {
            ian.expect(&marker);
        }
    }
    let nicks = ian
        .seen
        .iter()
        .filter(|l| l.contains(" NICK :anna") || l.ends_with(" NICK anna"))
        .count();
    let quits = ian
        .seen
        .iter()
        .filter(|l| l.starts_with(":anna!") && l.contains(" QUIT "))
        .count();
    assert_eq!((nicks, quits), (1, 1), "{:#?}", ian.seen);
}
