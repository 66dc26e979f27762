//! `chat serve --cluster`: several nodes share rooms through a real
//! nats-server (JetStream on), each test starting its own on a free
//! loopback port with its store in a tempdir.

use crate::util::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server of our own, killed on drop.
pub(crate) struct Nats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nats {
    /// Starts one, or None (skipped, which fails under CI) without nats-server.
    pub(crate) fn start(test: &str) -> Option<Nats> {
        if !have("nats-server") {
            skipped(
                test,
                "nats-server is not installed (apt-get install nats-server)",
            );
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(!ci, "CI must have nats-server (.ci/run installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut n = Nats {
            child: None,
            port: 0,
            dir,
        };
        n.port = free_port();
        n.run();
        Some(n)
    }

    pub(crate) fn run(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_tcp_listening(self.port);
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A chat node on `nats`, with its console on stdin/stdout (operator `op-NAME`).
fn node(nats: &Nats, name: &str) -> (Proc, String) {
    node_with(nats, name, &[])
}

/// [`node`] with more flags.
fn node_with(nats: &Nats, name: &str, more: &[&str]) -> (Proc, String) {
    let op = format!("op-{name}");
    let url = nats.url();
    let mut args = vec![
        "127.0.0.1:0",
        "--cluster",
        &url,
        "--node",
        name,
        "--cluster-lease",
        "3",
        "--operator-nick",
        &op,
    ];
    args.extend_from_slice(more);
    let (p, addr) = chat_serve(&args);
    p.wait_stderr(&format!("cluster: node {name} ready"));
    (p, addr)
}

/// Sends `say` from `from` until `to` sees it (the first lines may race a
/// subscription or a reconnect); bounded.
fn until_seen(from: &mut ChatClient, to: &mut ChatClient, say: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut n = 0;
    loop {
        assert!(Instant::now() < deadline, "{say} never crossed");
        n += 1;
        let line = format!("{say} {n}");
        from.send(&format!("{line}\n"));
        let round = Instant::now() + Duration::from_millis(500);
        while let Some(l) = to.line_within(round.saturating_duration_since(Instant::now())) {
            if l.contains(&line) {
                return;
            }
        }
    }
}

#[test]
fn two_nodes_share_rooms_nicks_private_messages_and_kicks() {
    let Some(nats) = Nats::start("two_nodes") else {
        return;
    };
    let (mut a, addr_a) = node(&nats, "a");
    let (_b, addr_b) = node(&nats, "b");
    let mut ann = ChatClient::named(&addr_a, "ann");
    let mut bob = ChatClient::named(&addr_b, "bob");
    // Join and nick announcements cross.
    ann.expect("is now bob");
    ann.send("hello from a\n");
    bob.expect("<ann> hello from a");
    bob.send("and from b\n");
    ann.expect("<bob> and from b");
    // Members of the other node are listed.
    bob.send("/who\n");
    let who = bob.expect("* lobby (");
    assert!(who.contains("ann") && who.contains("bob"), "{who}");
    // Private messages cross, to the target alone.
    let mut cat = ChatClient::named(&addr_b, "cat");
    bob.send("/msg ann psst\n");
    bob.expect("-> *ann* psst");
    ann.expect("*bob* psst");
    ann.send("/msg bob back\n");
    bob.expect("*ann* back");
    // Nicks are unique across nodes, in any case.
    bob.send("/nick ANN\n");
    bob.expect("! the nick ANN is taken");
    bob.send("/msg nobody hi\n");
    bob.expect("! no such nick: nobody");
    // Rooms: leaving and joining are seen on the other node.
    ann.send("/join games\n");
    bob.expect("* ann left (moved to games)");
    bob.send("/join games\n");
    ann.expect("* bob joined games");
    ann.send("in games\n");
    bob.expect("<ann> in games");
    // cat, still in the lobby, saw nothing of the games room.
    cat.send("/who\n");
    let who = cat.expect("* lobby (");
    assert!(!who.contains("ann") && !who.contains("bob,"), "{who}");
    // Node a's console kicks a member of node b.
    a.write(b"/kick bob spam\n");
    bob.expect("! you were kicked by op-a: spam");
    ann.expect("* bob left (kicked by op-a: spam)");
}

#[test]
fn three_nodes_see_each_other() {
    let Some(nats) = Nats::start("three_nodes") else {
        return;
    };
    let (_a, addr_a) = node(&nats, "a");
    let (_b, addr_b) = node(&nats, "b");
    let (_c, addr_c) = node(&nats, "c");
    let mut ann = ChatClient::named(&addr_a, "ann");
    let mut bob = ChatClient::named(&addr_b, "bob");
    let mut cat = ChatClient::named(&addr_c, "cat");
    ann.expect("is now cat");
    bob.expect("is now cat");
    for (from, n) in [(&mut ann, 0), (&mut bob, 1), (&mut cat, 2)] {
        for i in 0..20 {
            from.send(&format!("m{n}-{i}\n"));
        }
    }
    // Each sender's lines arrive in order on every other node.
    for (me, others) in [(&mut ann, [1, 2]), (&mut bob, [0, 2]), (&mut cat, [0, 1])] {
        let mut next = [0usize; 3];
        while others.iter().any(|o| next[*o] < 20) {
            let l = me.line();
            for o in others {
                if let Some(rest) = l.split(&format!("m{o}-")).nth(1) {
                    assert_eq!(rest, next[o].to_string(), "{l}");
                    next[o] += 1;
                }
            }
        }
    }
    cat.send("/who\n");
    let who = cat.expect("* lobby (");
    for n in ["ann", "bob", "cat"] {
        assert!(who.contains(n), "{who}");
    }
}

#[test]
fn nick_races_across_nodes_have_one_winner() {
    let Some(nats) = Nats::start("nick_races") else {
        return;
    };
    // Flood control off: 100 rounds of /nick come faster than 20 lines/s.
    let (_a, addr_a) = node_with(&nats, "a", &["--rate", "0"]);
    let (_b, addr_b) = node_with(&nats, "b", &["--rate", "0"]);
    let mut one = ChatClient::connect(&addr_a);
    let mut two = ChatClient::connect(&addr_b);
    // Each client's own outcome: `* OLD is now NEW` or `! the nick NEW is taken`.
    fn outcome(c: &mut ChatClient, new: &str) -> bool {
        let mine = format!("* {} is now {new}", c.nick);
        let taken = format!("! the nick {new} is taken");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = c
                .line_within(left)
                .unwrap_or_else(|| panic!("{}: no outcome for /nick {new}", c.nick));
            if l == mine {
                c.nick = new.to_string();
                return true;
            }
            if l == taken {
                return false;
            }
        }
    }
    let mut wins = [0; 2];
    for round in 0..100 {
        let new = format!("race{round}");
        one.send(&format!("/nick {new}\n"));
        two.send(&format!("/nick {new}\n"));
        let (w1, w2) = (outcome(&mut one, &new), outcome(&mut two, &new));
        assert!(w1 != w2, "round {round}: {w1} {w2}: not exactly one owner");
        wins[usize::from(w2)] += 1;
    }
    eprintln!("nick races won: node a {}, node b {}", wins[0], wins[1]);
}

#[test]
fn an_unreachable_cluster_is_a_one_line_error() {
    let port = closed_port();
    let url = format!("nats://alice:s3cret@127.0.0.1:{port}");
    let start = Instant::now();
    let out = run(
        &[
            "chat",
            "serve",
            "127.0.0.1:0",
            "--no-console",
            "--cluster",
            &url,
        ],
        b"",
    );
    let line = error_line(&out, 4);
    assert_eq!(
        line,
        format!("sockit: error: cannot join the cluster at nats://***@127.0.0.1:{port} (connection refused)")
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn nodes_ride_out_a_nats_restart() {
    let Some(mut nats) = Nats::start("nats_restart") else {
        return;
    };
    let (_a, addr_a) = node(&nats, "a");
    let (_b, addr_b) = node(&nats, "b");
    let mut ann = ChatClient::named(&addr_a, "ann");
    let mut bob = ChatClient::named(&addr_b, "bob");
    let mut ada = ChatClient::named(&addr_a, "ada");
    ann.expect("is now bob");
    until_seen(&mut ann, &mut bob, "before", Duration::from_secs(10));
    // NATS away for 5 s: each node keeps serving its own members.
    nats.stop();
    ann.send("local only\n");
    ada.expect("<ann> local only");
    std::thread::sleep(Duration::from_secs(5));
    nats.run();
    // Back: the nodes reconnect and resubscribe, messages cross again.
    until_seen(&mut ann, &mut bob, "after", Duration::from_secs(30));
    until_seen(&mut bob, &mut ann, "reply", Duration::from_secs(10));
}

#[test]
fn a_killed_node_is_announced_and_its_nicks_expire() {
    let Some(nats) = Nats::start("killed_node") else {
        return;
    };
    let (a, addr_a) = node(&nats, "a");
    let (_b, addr_b) = node(&nats, "b");
    let _ann = ChatClient::named(&addr_a, "ann");
    let mut bob = ChatClient::named(&addr_b, "bob");
    // Node b learns of ann's nick when the room log gives it the change.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        bob.send("/who\n");
        let who = bob.expect("* lobby (");
        if who.contains("ann") {
            break;
        }
        assert!(Instant::now() < deadline, "{who}");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.signal(libc::SIGKILL);
    // Lease 3 s: lost within the lease and a check period, bounded generously.
    let start = Instant::now();
    bob.expect("* ann left (node lost)");
    assert!(start.elapsed() < Duration::from_secs(20));
    bob.send("/who\n");
    let who = bob.expect("* lobby (");
    assert!(!who.contains("ann"), "{who}");
    // Its nick is free again.
    let mut ann2 = ChatClient::connect(&addr_b);
    ann2.send("/nick ann\n");
    ann2.expect("is now ann");
}
