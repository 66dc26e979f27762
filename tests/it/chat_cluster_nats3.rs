//! Three nodes on a three-server NATS cluster (JetStream clustered, the
//! buckets and the room log kept in three copies): one NATS server is
//! killed and the members keep talking.

use crate::chat_cluster::free_port;
use crate::util::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three nats-server processes routed into one cluster; killed on drop.
struct NatsCluster {
    servers: Vec<Option<Child>>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    fn start() -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut servers = Vec::new();
        for i in 0..3 {
            let others: Vec<String> = (0..3)
                .filter(|&j| j != i)
                .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
                .collect();
            let store = dir.path().join(format!("s{i}"));
            let child = Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &ports[i].to_string()])
                .args(["-n", &format!("s{i}"), "--cluster_name", "sockit"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                .args(["--routes", &others.join(",")])
                .arg("-sd")
                .arg(&store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            servers.push(Some(child));
        }
        for p in &ports {
            wait_tcp_listening(*p);
        }
        NatsCluster {
            servers,
            ports,
            _dir: dir,
        }
    }

    /// All three URLs, starting with server `first`.
    fn urls(&self, first: usize) -> String {
        (0..3)
            .map(|k| format!("nats://127.0.0.1:{}", self.ports[(first + k) % 3]))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}

/// Sends `say` from `from` until `to` sees it; bounded.
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
fn three_nodes_keep_talking_when_one_nats_server_dies() {
    if !have("nats-server") {
        skipped("nats_cluster", "nats-server is not installed");
        return;
    }
    let mut nats = NatsCluster::start();
    let mut nodes = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let urls = nats.urls(i);
        let op = format!("op-{name}");
        // A fresh NATS cluster elects its JetStream leader first: wait long.
        let (p, addr) = chat_serve(&[
            "127.0.0.1:0",
            "--cluster",
            &urls,
            "--node",
            name,
            "--cluster-replicas",
            "3",
            "--cluster-timeout",
            "60",
            "--cluster-lease",
            "5",
            "--rate",
            "0",
            "--operator-nick",
            &op,
        ]);
        p.wait_stderr(&format!("cluster: node {name} ready"));
        nodes.push((p, addr));
    }
    let mut ann = ChatClient::named(&nodes[0].1, "ann");
    let mut bob = ChatClient::named(&nodes[1].1, "bob");
    let mut cat = ChatClient::named(&nodes[2].1, "cat");
    let limit = Duration::from_secs(30);
    until_seen(&mut ann, &mut bob, "before a-b", limit);
    until_seen(&mut bob, &mut cat, "before b-c", limit);
    until_seen(&mut cat, &mut ann, "before c-a", limit);

    // Node a is on server 0 (its first URL): it loses NATS and moves.
    nats.kill(0);
    nodes[0].0.wait_stderr("cluster: lost NATS");
    until_seen(&mut ann, &mut bob, "after a-b", limit);
    until_seen(&mut bob, &mut cat, "after b-c", limit);
    until_seen(&mut cat, &mut ann, "after c-a", limit);
    // The nick bucket still answers with two of its three copies.
    ann.send("/nick anna\n");
    bob.expect("ann is now anna");
    cat.send("/nick anna\n");
    cat.expect("! the nick anna is taken");
    cat.send("/msg anna still here\n");
    ann.expect("*cat* still here");
}
