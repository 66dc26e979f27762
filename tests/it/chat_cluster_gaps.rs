//! The room log: a node that misses events from core NATS (here a node
//! told to drop every fourth event that arrives) fetches them from the
//! JetStream stream and its members see every line, in order.

use crate::chat_cluster::Nats;
use crate::util::*;
use std::time::{Duration, Instant};

fn node(nats: &Nats, name: &str, more: &[&str]) -> (Proc, String) {
    let url = nats.url();
    let op = format!("op-{name}");
    let mut args = vec![
        "127.0.0.1:0",
        "--cluster",
        &url,
        "--node",
        name,
        "--rate",
        "0",
        "--operator-nick",
        &op,
    ];
    args.extend_from_slice(more);
    let (p, addr) = chat_serve(&args);
    p.wait_stderr(&format!("cluster: node {name} ready"));
    (p, addr)
}

#[test]
fn events_lost_on_the_way_are_repaired_from_the_room_log_in_order() {
    let Some(nats) = Nats::start("gap_repair") else {
        return;
    };
    let (_a, addr_a) = node(&nats, "a", &[]);
    let (b, addr_b) = node(&nats, "b", &["--cluster-drop-every", "4"]);
    let mut bob = ChatClient::named(&addr_b, "bob");
    let mut ann = ChatClient::named(&addr_a, "ann");
    // The first events may race node b's view of node a: wait until a line crosses.
    let deadline = Instant::now() + Duration::from_secs(20);
    'warm: for n in 0.. {
        assert!(Instant::now() < deadline, "nothing crossed from a to b");
        ann.send(&format!("warm {n}\n"));
        while let Some(l) = bob.line_within(Duration::from_millis(300)) {
            if l.starts_with("<ann> warm") {
                break 'warm;
            }
        }
    }
    for i in 0..40 {
        ann.send(&format!("m{i}\n"));
    }
    // Every fourth event reaching b is dropped there: b finds each in the
    // room log when the next one shows the room's chain broken.
    for next in 0..40 {
        let l = bob.line_within(Duration::from_secs(20));
        let l = l.unwrap_or_else(|| panic!("stuck before m{next}"));
        assert_eq!(l, format!("<ann> m{next}"), "out of order or lost");
    }
    // One at a time, each awaited before the next: one of four is dropped
    // with nothing after it, and the drop's report alone sends b to the log.
    for i in 0..4 {
        ann.send(&format!("alone {i}\n"));
        let l = bob.line_within(Duration::from_secs(20));
        assert_eq!(l.as_deref(), Some(format!("<ann> alone {i}").as_str()));
    }
    let log = b.wait_stderr("repaired from the room log");
    assert!(!log.contains("could be repaired"), "{log}");
}
