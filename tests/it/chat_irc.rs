//! `chat serve --irc`: the IRC front-end at the protocol level, through the
//! real binary: registration with and without CAP, commands and their error
//! numerics, parameter edge cases, casemapping, hostile input, and IRC
//! users talking with line users in the same rooms.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

/// A chat server with an IRC listener: the process, the line address, the IRC address.
pub fn irc_serve(extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["--irc", "127.0.0.1:0", "--no-console", "127.0.0.1:0"];
    args.extend(extra);
    let (srv, line) = chat_serve(&args);
    let deadline = Instant::now() + WAIT;
    let irc = loop {
        let err = srv.wait_stderr("chat IRC on irc");
        let rest = err.split("chat IRC on irc").nth(1).unwrap_or("");
        let rest = rest.strip_prefix('s').unwrap_or(rest);
        let rest = rest.strip_prefix("://").unwrap_or("");
        if let Some((addr, _)) = rest.split_once("/ ") {
            break addr.to_string();
        }
        assert!(Instant::now() < deadline, "no IRC address in {err}");
        std::thread::sleep(Duration::from_millis(10));
    };
    (srv, line, irc)
}

/// A raw IRC client: every read bounded by [`WAIT`].
pub struct Irc {
    s: TcpStream,
    r: BufReader<TcpStream>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Irc {
    pub fn connect(addr: &str) -> Irc {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        Irc {
            s,
            r,
            seen: Vec::new(),
        }
    }

    /// Connects and registers as `nick` (NICK and USER, no CAP).
    pub fn registered(addr: &str, nick: &str) -> Irc {
        let mut c = Irc::connect(addr);
        c.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick} here\r\n"));
        c.expect(" 422 ");
        c
    }

    pub fn send(&mut self, text: &str) {
        self.s.write_all(text.as_bytes()).unwrap();
    }

    /// The next line (without CR LF); `None` at EOF.
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.r.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                let l = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                assert!(buf.ends_with(b"\r\n"), "IRC lines end in CR LF: {buf:?}");
                self.seen.push(l.clone());
                Some(l)
            }
            Err(e) => panic!("reading: {e}; seen {:#?}", self.seen),
        }
    }

    /// Reads until a line contains `needle`; returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        loop {
            match self.line() {
                Some(l) if l.contains(needle) => return l,
                Some(_) => {}
                None => panic!("EOF waiting for {needle:?}; seen {:#?}", self.seen),
            }
        }
    }

    /// Reads until every one of `needles` was in some line, in any order
    /// (private messages are sent at once, room messages with the next
    /// fan-out).
    pub fn expect_all(&mut self, needles: &[&str]) {
        let mut left: Vec<&str> = needles.to_vec();
        while !left.is_empty() {
            let l = self
                .line()
                .unwrap_or_else(|| panic!("EOF waiting for {left:?}"));
            left.retain(|n| !l.contains(n));
        }
    }

    /// Writes `batch` from another thread while reading, then PING: the
    /// number of lines up to the PONG.
    pub fn flood(&mut self, batch: String) -> usize {
        let mut w = self.s.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let _ = w.write_all(batch.as_bytes());
            let _ = w.write_all(b"PING :sync\r\n");
        });
        let mut n = 0;
        loop {
            let l = self.line().expect("PONG");
            if l.ends_with("PONG sockit :sync") {
                break;
            }
            n += 1;
            if self.seen.len() > 64 {
                self.seen.drain(..32);
            }
        }
        t.join().unwrap();
        n
    }

    /// Sends PING and reads up to its PONG: the lines before it.
    pub fn sync(&mut self) -> Vec<String> {
        self.send("PING :sync\r\n");
        let mut got = Vec::new();
        loop {
            let l = self.line().expect("PONG");
            if l.ends_with("PONG sockit :sync") {
                return got;
            }
            got.push(l);
        }
    }
}

/// The numeric (or command) of a server line.
fn code(line: &str) -> &str {
    let rest = match line.strip_prefix('@') {
        Some(r) => r.split_once(' ').map_or("", |x| x.1),
        None => line,
    };
    rest.split(' ').nth(1).unwrap_or("")
}

#[test]
fn registration_without_cap_gives_001_to_005_lusers_and_422() {
    let (_srv, _line, addr) = irc_serve(&[]);
    let mut c = Irc::connect(&addr);
    c.send("JOIN #lobby\r\n");
    assert_eq!(
        c.line().unwrap(),
        ":sockit 451 * JOIN :You have not registered"
    );
    c.send("NICK 1bad\r\nNICK\r\nNICK alice\r\nUSER a\r\nUSER alice 0 * :Alice A\r\n");
    let mut codes = Vec::new();
    loop {
        let l = c.line().unwrap();
        codes.push(code(&l).to_string());
        if l.contains(" 005 ") {
            for want in [
                "CHANTYPES=#",
                "PREFIX=(o)@",
                "NETWORK=",
                "CASEMAPPING=ascii",
                "NICKLEN=32",
                "CHANNELLEN=",
                "TOPICLEN=",
            ] {
                assert!(l.contains(want), "{want} in {l}");
            }
        }
        if code(&l) == "422" {
            break;
        }
    }
    assert_eq!(
        codes,
        ["432", "431", "461", "001", "002", "003", "004", "005", "251", "254", "255", "422"]
    );
    c.send("USER again 0 * :x\r\nPASS x\r\n");
    assert!(c.line().unwrap().contains(" 462 alice "));
    assert!(c.line().unwrap().contains(" 462 alice "));
}

#[test]
fn cap_negotiation_holds_registration_until_cap_end() {
    let motd = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(motd.path(), "hello\nsecond line\n").unwrap();
    let path = motd.path().to_str().unwrap().to_string();
    let (_srv, _line, addr) = irc_serve(&["--motd", &path, "--irc-password", "sesame"]);
    let mut c = Irc::connect(&addr);
    c.send("CAP LS 302\r\nPASS sesame\r\nNICK bob\r\nUSER bob 0 * :Bob\r\n");
    let ls = c.line().unwrap();
    assert!(ls.starts_with(":sockit CAP * LS :"), "{ls}");
    for cap in [
        "server-time",
        "echo-message",
        "multi-prefix",
        "away-notify",
        "cap-notify",
    ] {
        assert!(ls.contains(cap), "{ls}");
    }
    c.send("CAP REQ :server-time bogus\r\nCAP REQ :server-time echo-message\r\nCAP BLAH\r\n");
    assert!(c.line().unwrap().contains("NAK :server-time bogus"));
    assert!(c.line().unwrap().contains("ACK :server-time echo-message"));
    assert!(c.line().unwrap().contains(" 410 bob BLAH "));
    c.send("CAP LIST\r\nCAP END\r\n");
    assert!(c.line().unwrap().contains("LIST :echo-message server-time"));
    assert!(c.line().unwrap().contains(" 001 bob "));
    c.expect(" 375 bob ");
    assert_eq!(c.line().unwrap(), ":sockit 372 bob :- hello");
    assert_eq!(c.line().unwrap(), ":sockit 372 bob :- second line");
    assert!(c.line().unwrap().contains(" 376 bob "));
    // server-time: room events carry @time; echo-message: own talk comes back.
    c.send("JOIN #lobby\r\nPRIVMSG #lobby :echo me\r\n");
    let join = c.expect("JOIN #lobby");
    assert!(
        join.starts_with("@time=20") && join.contains("Z :bob!bob@sockit JOIN"),
        "{join}"
    );
    let echo = c.expect("PRIVMSG #lobby");
    assert!(
        echo.ends_with(":bob!bob@sockit PRIVMSG #lobby :echo me"),
        "{echo}"
    );

    // A wrong password is refused after registration's commands.
    let mut bad = Irc::connect(&addr);
    bad.send("PASS nope\r\nNICK eve\r\nUSER eve 0 * :Eve\r\n");
    assert!(bad.line().unwrap().contains(" 464 eve "));
    assert!(bad.line().unwrap().starts_with("ERROR :"));
    assert_eq!(bad.line(), None);
}

#[test]
fn irc_and_line_users_share_rooms_messages_actions_and_privates() {
    let (_srv, line_addr, addr) = irc_serve(&[]);
    let mut nc = ChatClient::named(&line_addr, "carol");
    let mut a = Irc::registered(&addr, "alice");
    a.send("JOIN #LOBBY\r\n");
    a.expect("JOIN #lobby");
    let names = a.expect(" 353 ");
    assert_eq!(names, ":sockit 353 alice = #lobby :alice carol");
    a.expect(" 366 alice #lobby :End of /NAMES list");
    nc.expect("* alice joined lobby");
    nc.send("hello irc\n/me waves\n/msg alice psst\n");
    a.expect_all(&[
        ":carol!carol@sockit PRIVMSG #lobby :hello irc",
        ":carol!carol@sockit PRIVMSG #lobby :\x01ACTION waves\x01",
        ":carol!carol@sockit PRIVMSG alice :psst",
    ]);
    a.send("PRIVMSG #lobby :  spaced  out \r\nPRIVMSG #lobby :\x01ACTION dances\x01\r\n");
    a.send(
        "PRIVMSG CAROL :back at you\r\nPRIVMSG #lobby :\x01VERSION\x01\r\nNOTICE carol :fyi\r\n",
    );
    let mut want = vec![
        "<alice>   spaced  out ",
        "+ alice dances",
        "*alice* back at you",
        "*alice* fyi",
    ];
    while !want.is_empty() {
        let l = nc.line();
        assert!(!l.contains("VERSION"), "CTCP reached a line user: {l}");
        want.retain(|w| !l.contains(w));
    }
    // Other CTCP never reaches line users; a nick change and a part do.
    a.send("NICK Alicia\r\nPART #lobby :see you\r\n");
    assert_eq!(a.expect(" NICK "), ":alice!alice@sockit NICK :Alicia");
    nc.expect("* alice is now Alicia");
    nc.expect("* Alicia left (see you)");
    a.expect(":Alicia!Alicia@sockit PART #lobby :see you");
}

#[test]
fn commands_and_their_error_numerics() {
    let (_srv, _line, addr) = irc_serve(&["--irc-max-channels", "3", "--rate", "0"]);
    let mut a = Irc::registered(&addr, "alice");
    let mut b = Irc::registered(&addr, "bob");
    a.send("JOIN #ops,#b,#c\r\nJOIN #d\r\nJOIN nochan\r\n");
    a.expect(" 405 alice #d :You have joined too many channels");
    a.expect(" 403 alice nochan :No such channel");
    a.sync();
    b.send("JOIN #ops\r\n");
    b.expect(" 353 bob = #ops :@alice bob");
    b.expect(" 366 ");
    a.expect(":bob!bob@sockit JOIN #ops");
    let cases: &[(&str, &str)] = &[
        (
            "PRIVMSG\r\n",
            ":sockit 411 bob :No recipient given (PRIVMSG)",
        ),
        ("PRIVMSG #ops\r\n", ":sockit 412 bob :No text to send"),
        ("PRIVMSG #ops :\r\n", ":sockit 412 bob :No text to send"),
        (
            "PRIVMSG nobody :x\r\n",
            ":sockit 401 bob nobody :No such nick/channel",
        ),
        (
            "PRIVMSG #nowhere :x\r\n",
            ":sockit 403 bob #nowhere :No such channel",
        ),
        (
            "PRIVMSG #b :x\r\n",
            ":sockit 404 bob #b :Cannot send to channel",
        ),
        (
            "PART #b\r\n",
            ":sockit 442 bob #b :You're not on that channel",
        ),
        ("PART #zz\r\n", ":sockit 403 bob #zz :No such channel"),
        ("PART\r\n", ":sockit 461 bob PART :Not enough parameters"),
        (
            "TOPIC #ops :mine\r\n",
            ":sockit 482 bob #ops :You're not channel operator",
        ),
        (
            "KICK #ops alice\r\n",
            ":sockit 482 bob #ops :You're not channel operator",
        ),
        (
            "MODE #ops +t\r\n",
            ":sockit 482 bob #ops :You're not channel operator",
        ),
        ("MODE #ops\r\n", ":sockit 324 bob #ops +nt"),
        (
            "MODE #ops +b\r\n",
            ":sockit 368 bob #ops :End of channel ban list",
        ),
        (
            "MODE #ops +z\r\n",
            ":sockit 472 bob z :is unknown mode char to me",
        ),
        (
            "MODE alice +i\r\n",
            ":sockit 502 bob :Can't change mode for other users",
        ),
        ("MODE bob\r\n", ":sockit 221 bob +"),
        ("MODE bob +i\r\n", ":bob!bob@sockit MODE bob :+i"),
        (
            "NICK alice\r\n",
            ":sockit 433 bob alice :Nickname is already in use",
        ),
        ("NICK a.b\r\n", ":sockit 432 bob a.b :Erroneous nickname"),
        ("NICK\r\n", ":sockit 431 bob :No nickname given"),
        ("WHOIS\r\n", ":sockit 431 bob :No nickname given"),
        ("FROB x\r\n", ":sockit 421 bob FROB :Unknown command"),
        ("TOPIC #ops\r\n", ":sockit 331 bob #ops :No topic is set"),
        ("ISON alice nobody BOB\r\n", ":sockit 303 bob :alice bob"),
        ("USERHOST alice\r\n", ":sockit 302 bob :alice=+alice@sockit"),
        ("PING\r\n", ":sockit 409 bob :No origin specified"),
        ("PING :a b\r\n", ":sockit PONG sockit :a b"),
    ];
    for (send, want) in cases {
        b.send(send);
        let got = b.sync();
        assert_eq!(got, [want.to_string()], "after {send:?}");
    }
    b.send("KICK #ops\r\n");
    assert!(b.sync()[0].contains(" 461 bob KICK "));
    // The channel operator: topic, modes, +o, kick.
    a.sync();
    a.send("TOPIC #ops :the topic\r\nMODE #ops -t+o bob\r\n");
    b.expect(":alice!alice@sockit TOPIC #ops :the topic");
    b.expect(":alice!alice@sockit MODE #ops -t");
    b.expect(":alice!alice@sockit MODE #ops +o bob");
    b.send("TOPIC #ops\r\n");
    assert_eq!(
        b.sync()[..1],
        [":sockit 332 bob #ops :the topic".to_string()]
    );
    b.send("KICK #ops alice :bye now\r\n");
    a.expect(":bob!bob@sockit KICK #ops alice :bye now");
    b.expect(":bob!bob@sockit KICK #ops alice :bye now");
    a.send("PRIVMSG #ops :still here?\r\n");
    assert_eq!(a.sync(), [":sockit 404 alice #ops :Cannot send to channel"]);
    a.send("KICK #ops alice\r\n");
    assert_eq!(
        a.sync(),
        [":sockit 482 alice #ops :You're not channel operator"]
    );
    b.send("KICK #ops alice\r\n");
    assert_eq!(
        b.sync(),
        [":sockit 441 bob alice #ops :They aren't on that channel"]
    );
    // WHO, WHOIS, LIST, LUSERS, VERSION, TIME, AWAY, MOTD.
    b.send("AWAY :lunch\r\nWHOIS alice\r\nWHO #ops\r\nLIST\r\n");
    let got = b.sync().join("\n");
    for want in [
        " 306 bob :You have been marked as being away",
        " 311 bob alice alice sockit * :alice",
        " 319 bob alice :@#b @#c",
        " 318 bob alice :End of /WHOIS list",
        " 352 bob #ops bob sockit sockit bob G@ :0 bob",
        " 315 bob #ops :End of /WHO list",
        " 322 bob #ops 1 :the topic",
        " 323 bob :End of /LIST",
    ] {
        assert!(got.contains(want), "{want} in\n{got}");
    }
    b.send("LUSERS\r\nVERSION\r\nTIME\r\nMOTD\r\nAWAY\r\n");
    let got = b.sync().join("\n");
    for want in [
        " 251 bob ",
        " 351 bob ",
        " 391 bob sockit :20",
        " 422 bob ",
        " 305 bob ",
    ] {
        assert!(got.contains(want), "{want} in\n{got}");
    }
    // JOIN 0 parts everything.
    a.send("JOIN 0\r\n");
    a.expect("PART #b");
    a.expect("PART #c");
    a.send("WHOIS alice\r\n");
    assert!(!a.sync().join("\n").contains(" 319 "));
}

#[test]
fn parameter_edge_cases_and_tags() {
    let (_srv, _line, addr) = irc_serve(&[]);
    let mut a = Irc::registered(&addr, "alice");
    let mut b = Irc::registered(&addr, "bob");
    a.send("JOIN #e\r\n");
    a.expect(" 366 ");
    b.send("JOIN #e\r\n");
    b.expect(" 366 ");
    a.sync();
    // Tags from a client are accepted (and not relayed); several spaces
    // count as one; the 15th parameter takes the rest; a bare LF ends a line.
    b.send("@+typing=active;label=x   PRIVMSG   #e   :with  spaces \nprivmsg #e :\x02bold\x02 \x0304red\r\n");
    a.expect(":bob!bob@sockit PRIVMSG #e :with  spaces ");
    a.expect(":bob!bob@sockit PRIVMSG #e :bold red");
    b.send("PRIVMSG #e notrailing\r\nPRIVMSG #e ::colon\r\n");
    a.expect(":bob!bob@sockit PRIVMSG #e :notrailing");
    a.expect(":bob!bob@sockit PRIVMSG #e ::colon");
    b.send("USERHOST a b c d e f g h i j k l m n o p q\r\nISON 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :alice bob\r\n");
    let got = b.sync();
    assert_eq!(got[0], ":sockit 302 bob :");
    assert_eq!(got[1], ":sockit 303 bob :alice bob");
    // Casemapping ascii: nicks and channels ignore ASCII case only.
    b.send("PRIVMSG ALICE :upper\r\nPRIVMSG #E :upper chan\r\nNICK {bob}\r\nNICK [BOB]\r\n");
    a.expect("PRIVMSG alice :upper");
    a.expect("PRIVMSG #e :upper chan");
    a.expect(":bob!bob@sockit NICK :{bob}");
    a.expect(":{bob}!{bob}@sockit NICK :[BOB]");
    let mut c = Irc::connect(&addr);
    c.send("NICK [bob]\r\nUSER c 0 * :c\r\n");
    assert_eq!(
        c.line().unwrap(),
        ":sockit 433 * [bob] :Nickname is already in use"
    );
}

#[test]
fn hostile_input_gets_clear_numerics_and_bounded_memory() {
    let (srv, line_addr, addr) = irc_serve(&["--rate", "0"]);
    let mut bystander = ChatClient::named(&line_addr, "calm");
    let mut h = Irc::registered(&addr, "hostile");
    h.send(&format!("PRIVMSG #lobby :{}\r\n", "x".repeat(600)));
    assert_eq!(h.sync(), [":sockit 417 hostile :Input line was too long"]);
    h.send(&format!("{}\r\n", "y".repeat(20_000)));
    assert_eq!(h.sync(), [":sockit 417 hostile :Input line was too long"]);
    h.send("PRIVMSG #lobby :a\0b\r\nPRIVMSG #lobby :a\rb\r\n");
    let got = h.sync();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter().all(|l| l.contains("FAIL * INVALID_LINE")),
        "{got:?}"
    );
    // 10,000 channels joined (50 allowed by default), 10,000 NAMES, a nick flood.
    let batch: String = (0..10_000).map(|i| format!("JOIN #c{i}\r\n")).collect();
    let n = h.flood(batch);
    assert!(n >= 9_950, "{n} lines");
    assert!(h.seen.iter().any(|l| l.contains(" 405 hostile #c9999 ")));
    let batch: String = (0..10_000).map(|_| "NAMES #c1\r\n".to_string()).collect();
    assert!(h.flood(batch) >= 20_000);
    let batch: String = (0..10_000).map(|i| format!("NICK n{i}\r\n")).collect();
    assert!(h.flood(batch) >= 10_000);
    // Everyone else is unaffected.
    let mut other = Irc::registered(&addr, "other");
    other.send("JOIN #lobby\r\nPRIVMSG #lobby :still fine\r\n");
    bystander.expect("<other> still fine");
    let hwm = status_kib(srv.child.id(), "VmHWM:");
    assert!(hwm < 200 * 1024, "VmHWM {hwm} KiB");
    // Flood control from the line protocol applies to IRC too.
    let (_srv2, _l2, addr2) = irc_serve(&["--rate", "5", "--burst", "5"]);
    let mut f = Irc::registered(&addr2, "flood");
    let mut batch = String::new();
    for i in 0..400 {
        batch.push_str(&format!("NICK f{i}\r\n"));
    }
    let _ = f.s.write_all(batch.as_bytes());
    f.expect("slow down");
    f.expect("ERROR :Closing link: excess flood");
}

#[test]
fn idle_clients_are_pinged_and_dropped() {
    let (_srv, _line, addr) = irc_serve(&["--irc-ping", "1"]);
    let mut a = Irc::registered(&addr, "sleepy");
    assert_eq!(a.expect("PING"), ":sockit PING :sockit");
    a.expect("ERROR :Closing link: ping timeout");
    let mut b = Irc::registered(&addr, "awake");
    b.expect("PING :sockit");
    b.send("PONG :sockit\r\n");
    b.expect("PING :sockit");
    // Registration is bounded by the same time.
    let mut c = Irc::connect(&addr);
    c.expect("ERROR :Closing link: registration timed out");
}

#[test]
fn over_the_client_cap_an_irc_client_gets_an_error_line() {
    let (_srv, _line, addr) = irc_serve(&["--max-clients", "1"]);
    let _a = Irc::registered(&addr, "first");
    let mut b = Irc::connect(&addr);
    assert_eq!(
        b.line().unwrap(),
        "ERROR :server full (1 client), try again later"
    );
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}
