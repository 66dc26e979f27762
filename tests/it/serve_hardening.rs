//! `listen` under attack, through the real binary: access lists on every kind of
//! listener (UDP datagrams, IPv4-mapped forms), memory per connection bounded
//! whatever the input shape, slow fan-out members, exec children that outlive
//! their client.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};

use crate::util::*;

fn udp_from(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).expect("datagram within the time limit");
    buf[..n].to_vec()
}

/// Asserts nothing is waiting on `s` (call once the server has provably moved on).
fn nothing_waiting(s: &UdpSocket) {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    match s.recv(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected nothing, got {other:?}"),
    }
    s.set_nonblocking(false).unwrap();
}

// ---- access lists on datagram listeners ----

#[test]
fn udp_echo_drops_datagrams_from_denied_peers() {
    let (l, addr) = listen(&["-u", "--echo", "--deny", "127.0.0.1", "127.0.0.1:0"]);
    let denied = udp_from("127.0.0.1");
    denied.send_to(b"evil", &addr).unwrap();
    l.wait_stderr(&format!(
        "dropped 4 bytes from {} (access list)",
        denied.local_addr().unwrap()
    ));
    let allowed = udp_from("127.0.0.2");
    allowed.send_to(b"good", &addr).unwrap();
    assert_eq!(recv(&allowed), b"good");
    // The denied datagram came first: any reply to it would be here by now.
    nothing_waiting(&denied);
}

#[test]
fn udp_stdio_prints_only_allowed_peers() {
    let (mut l, addr) = listen(&["-u", "--allow", "127.0.0.2", "127.0.0.1:0"]);
    let denied = udp_from("127.0.0.1");
    denied.send_to(b"secret\n", &addr).unwrap();
    l.wait_stderr("(access list)");
    let allowed = udp_from("127.0.0.2");
    allowed.send_to(b"public\n", &addr).unwrap();
    l.wait_stdout(b"public\n");
    // stdin replies go to the last allowed sender, never to the denied one.
    l.write(b"reply\n");
    assert_eq!(recv(&allowed), b"reply\n");
    nothing_waiting(&denied);
    assert_eq!(l.stdout_now(), b"public\n");
}

#[test]
fn udp_broker_obeys_the_access_list_and_caps_its_fan_out() {
    let (l, addr) = listen(&[
        "-u",
        "--broker",
        "--udp-broker-peers",
        "2",
        "--deny",
        "127.0.0.4",
        "127.0.0.1:0",
    ]);
    let a = udp_from("127.0.0.1");
    let b = udp_from("127.0.0.2");
    let c = udp_from("127.0.0.3");
    let denied = udp_from("127.0.0.4");
    // a and b join: a hears b.
    a.send_to(b"a1", &addr).unwrap();
    b.send_to(b"b1", &addr).unwrap();
    assert_eq!(recv(&a), b"b1");
    // The list is full: c's datagram goes nowhere, and c gets nothing.
    c.send_to(b"c1", &addr).unwrap();
    l.wait_stderr("peers already (--udp-broker-peers)");
    denied.send_to(b"d1", &addr).unwrap();
    l.wait_stderr("(access list)");
    a.send_to(b"a2", &addr).unwrap();
    assert_eq!(recv(&b), b"a2");
    b.send_to(b"b2", &addr).unwrap();
    // a's next datagram is b2: neither c1 nor d1 was forwarded.
    assert_eq!(recv(&a), b"b2");
    nothing_waiting(&c);
    nothing_waiting(&denied);
}

// ---- IPv4-mapped rules on a dual-stack listener ----

/// A dual-stack `[::]` listener, or why there is none.
fn dual_stack() -> Result<(), String> {
    let l = TcpListener::bind("[::]:0").map_err(|e| format!("no IPv6: {e}"))?;
    let port = l.local_addr().unwrap().port();
    TcpStream::connect(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| format!("[::] is not dual-stack here: {e}"))
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap().to_string()
}

#[test]
fn mapped_rules_match_ipv4_clients_of_a_dual_stack_listener() {
    if let Err(why) = dual_stack() {
        println!("skipped: {why}");
        return;
    }
    // A mapped deny rule refuses the plain IPv4 client.
    let (l, addr) = listen(&["-k", "--deny", "::ffff:127.0.0.1/128", "[::]:0"]);
    let v4 = format!("127.0.0.1:{}", port_of(&addr));
    let mut bad = tcp(&v4);
    let _ = bad.write_all(b"secret\n");
    l.wait_stderr("(access list)");
    let mut got = Vec::new();
    match bad.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("refused client: {e}"),
    }
    assert_eq!(got, b"");
    assert_eq!(l.stdout_now(), b"");
    drop(l);

    // A mapped allow network lets it in.
    let (l, addr) = listen(&["-k", "--allow", "::ffff:127.0.0.0/104", "[::]:0"]);
    let mut good = tcp(&format!("127.0.0.1:{}", port_of(&addr)));
    good.write_all(b"served\n").unwrap();
    l.wait_stdout(b"served\n");
    assert!(!l.stderr_now().contains("(access list)"));
}
