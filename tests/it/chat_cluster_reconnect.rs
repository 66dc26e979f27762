//! `chat join --reconnect` with several nodes: when its node is killed, a
//! client moves to the next node and takes its nick back there.

use crate::chat_cluster::Nats;
use crate::util::*;

/// A node on `nats` with a nick lease of `lease` seconds.
fn node(nats: &Nats, name: &str, lease: &str) -> (Proc, String) {
    let url = nats.url();
    let op = format!("op-{name}");
    let (p, addr) = chat_serve(&[
        "127.0.0.1:0",
        "--cluster",
        &url,
        "--node",
        name,
        "--cluster-lease",
        lease,
        "--operator-nick",
        &op,
    ]);
    p.wait_stderr(&format!("cluster: node {name} ready"));
    (p, addr)
}

#[test]
fn a_killed_nodes_clients_come_back_on_another_node_with_their_nick() {
    let Some(nats) = Nats::start("reconnect_to_another_node") else {
        return;
    };
    // A lease long enough that ann's nick cannot simply expire meanwhile:
    // node b takes it over because node a is gone from NATS.
    let (a, addr_a) = node(&nats, "a", "6");
    let (b, addr_b) = node(&nats, "b", "6");
    let mut cmd = sockit();
    cmd.args(["chat", "join", "-v", "--reconnect", "--nick", "ann"])
        .arg(format!("{addr_a},{addr_b}"));
    let mut ann = Proc::spawn(cmd);
    ann.wait_stdout(b"is now ann");
    let mut bob = ChatClient::named(&addr_b, "bob");
    ann.write(b"hello from a\n");
    bob.expect("<ann> hello from a");

    a.signal(libc::SIGKILL);
    ann.wait_stderr(&format!("reconnected to {addr_b}"));
    // The nick came back on node b, taken over from the lost node.
    bob.expect(" is now ann");
    b.wait_stderr("nick ann taken over from lost node a");
    ann.write(b"back on b\n");
    bob.expect("<ann> back on b");

    // When node a's lease runs out, b announces a's members as lost, but
    // not ann, who is b's own member now.
    b.wait_stderr("cluster: node a lost");
    bob.send("/who\n");
    loop {
        let l = bob.line();
        assert!(!l.contains("ann left"), "{l}");
        if l.starts_with("* lobby (") {
            assert!(l.contains("ann") && l.contains("bob"), "{l}");
            break;
        }
    }
}

/// The messages (`text`) from `nick` in `out` (`chat join --json` lines),
/// with whether each came as history.
fn said_by(out: &[u8], nick: &str) -> Vec<(String, bool)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "message" && v["nick"] == nick)
        .map(|v| {
            let text = v["text"].as_str().unwrap_or_default().to_string();
            (text, v["history"] == true)
        })
        .collect()
}

#[test]
fn a_killed_nodes_client_resumes_on_another_node_without_loss_or_repeats() {
    let Some(nats) = Nats::start("resume_on_another_node") else {
        return;
    };
    let (a, addr_a) = node(&nats, "a", "6");
    let (_b, addr_b) = node(&nats, "b", "6");
    let mut bob = ChatClient::named(&addr_b, "bob");
    let mut cmd = sockit();
    cmd.args([
        "chat",
        "join",
        "-v",
        "--json",
        "--reconnect",
        "--nick",
        "ann",
    ])
    .arg(format!("{addr_a},{addr_b}"));
    let ann = Proc::spawn(cmd);
    ann.wait_stdout(b"\"new\":\"ann\"");
    bob.expect("is now ann");
    bob.send("m1\n");
    ann.wait_stdout(b"\"text\":\"m1\"");

    // Node a dies; what bob says before ann is back on b is not lost: ann
    // resumes from its cursor, which is a place in the shared room log.
    a.signal(libc::SIGKILL);
    bob.send("m2\nm3\n");
    ann.wait_stderr(&format!("reconnected to {addr_b}"));
    let out = ann.wait_stdout(b"\"text\":\"m3\"");
    bob.expect(" is now ann");
    bob.send("m4\n");
    drop(out);
    let out = ann.wait_stdout(b"\"text\":\"m4\"");
    let said = said_by(&out, "bob");
    let texts: Vec<&str> = said.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["m1", "m2", "m3", "m4"],
        "{}",
        String::from_utf8_lossy(&out)
    );
    // m2 and m3 were said while ann was away: they came from the resume.
    assert!(said[1].1 && said[2].1, "{said:?}");
    assert!(!said[0].1 && !said[3].1, "{said:?}");
}
