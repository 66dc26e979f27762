//! `sockit ping` with the iputils habits: `-n`, `-D`, `-O`, `-f`, `-I`, `-a`,
//! `-p`, `-M`, and `ts` in `--json`; against 127.0.0.1 and ::1, next to
//! iputils `ping` run the same way where the output can be compared.
//!
//! As in `ping.rs`, these run as root and hold the ping tests' lock (some
//! change `icmp_echo_ignore_all`).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ping::{
    finish, json_lines, nobody, nobody_can_run_the_binary, ping, replies, serial, totals, Ran, Raw,
    Sysctl,
};
use crate::util::*;

/// iputils `ping` with `args`, or `None` (said as skipped) when it is missing.
fn iputils(args: &[&str]) -> Option<Ran> {
    if !have("ping") {
        skipped(
            "ping_habits (iputils comparison)",
            "iputils ping is missing (apt-get install iputils-ping)",
        );
        return None;
    }
    let mut c = Command::new("ping");
    c.args(args);
    Some(finish(c))
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The `[1732960000.123456] ` prefix of a `-D` line: its time, and the rest.
fn stamped(line: &str) -> (f64, &str) {
    let (stamp, rest) = line
        .strip_prefix('[')
        .and_then(|l| l.split_once("] "))
        .unwrap_or_else(|| panic!("no [timestamp] on {line:?}"));
    let (secs, micros) = stamp.split_once('.').expect("seconds.micros");
    assert_eq!(micros.len(), 6, "six decimals, as iputils: {line:?}");
    assert!(secs
        .bytes()
        .chain(micros.bytes())
        .all(|b| b.is_ascii_digit()));
    (stamp.parse().unwrap(), rest)
}

/// A reply line with its numbers blanked, to compare shapes: `64 bytes from
/// localhost (127.0.0.1): icmp_seq=N ttl=N time=N ms`.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for c in line.chars() {
        if c.is_ascii_digit() || (in_num && c == '.') {
            if !in_num {
                out.push('N');
                in_num = true;
            }
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn names_unless_numeric_as_iputils() {
    let _s = serial();
    // A name pinged: replies name their sender; -n: the address only.
    let named = ping(&["-4", "-c", "1", "localhost"]);
    assert_eq!(named.status.code(), Some(0), "{}", named.stderr);
    let r = replies(&named.stdout);
    assert_eq!(r[0].from, "localhost (127.0.0.1)", "{}", named.stdout);
    let numeric = ping(&["-4", "-n", "-c", "1", "localhost"]);
    assert_eq!(replies(&numeric.stdout)[0].from, "127.0.0.1");
    // An address pinged: never a name, as iputils.
    let addr = ping(&["-c", "1", "127.0.0.1"]);
    assert_eq!(replies(&addr.stdout)[0].from, "127.0.0.1");
    for (ours, args) in [
        (&named, &["-4", "-c", "1", "localhost"][..]),
        (&numeric, &["-4", "-n", "-c", "1", "localhost"][..]),
    ] {
        if let Some(theirs) = iputils(args) {
            let line = |r: &Ran| {
                r.stdout
                    .lines()
                    .find(|l| l.contains(" bytes from "))
                    .map(shape)
                    .unwrap_or_default()
            };
            assert_eq!(line(ours), line(&theirs), "{args:?}");
        }
    }
}

#[test]
fn timestamps_before_each_line_and_ts_in_json() {
    let _s = serial();
    let t0 = epoch();
    let r = ping(&["-D", "-c", "2", "-i", "0.2", "127.0.0.1"]);
    let t1 = epoch();
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("bytes from"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    let mut last = 0.0;
    for l in &lines {
        let (t, rest) = stamped(l);
        assert!(t >= t0 - 0.01 && t <= t1 + 0.01, "{t} not in [{t0}, {t1}]");
        assert!(t >= last);
        last = t;
        assert!(
            rest.starts_with("64 bytes from 127.0.0.1: icmp_seq="),
            "{l}"
        );
    }
    // The header and the statistics are not stamped, as in iputils.
    assert!(r.stdout.starts_with("PING 127.0.0.1 "));
    if let Some(theirs) = iputils(&["-D", "-c", "2", "-i", "0.2", "127.0.0.1"]) {
        let their: Vec<String> = theirs
            .stdout
            .lines()
            .filter(|l| l.contains("bytes from"))
            .map(|l| shape(stamped(l).1))
            .collect();
        let ours: Vec<String> = lines.iter().map(|l| shape(stamped(l).1)).collect();
        assert_eq!(ours, their);
    }

    // --json: every object has a `ts` (seconds since the epoch, as -D).
    let t0 = epoch();
    let r = ping(&["--json", "-c", "2", "-i", "0.2", "127.0.0.1"]);
    let t1 = epoch();
    let lines = json_lines(&r.stdout);
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    for l in &lines {
        let ts: f64 = l
            .split("\"ts\":")
            .nth(1)
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or_else(|| panic!("no ts last in {l}"))
            .parse()
            .unwrap();
        assert!(ts >= t0 - 0.01 && ts <= t1 + 0.01, "{l}");
    }
}

#[test]
fn outstanding_requests_are_reported() {
    let _s = serial();
    let Some(_quiet) = Sysctl::set("net.ipv4.icmp_echo_ignore_all", "1") else {
        return;
    };
    let args = ["-O", "-c", "3", "-i", "0.2", "-W", "0.3", "127.0.0.1"];
    let r = ping(&args);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    let ours: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("no answer"))
        .collect();
    assert_eq!(
        ours,
        [
            "no answer yet for icmp_seq=1",
            "no answer yet for icmp_seq=2"
        ],
        "{}",
        r.stdout
    );
    if let Some(theirs) = iputils(&args) {
        let their: Vec<&str> = theirs
            .stdout
            .lines()
            .filter(|l| l.starts_with("no answer"))
            .collect();
        assert_eq!(ours, their);
    }
    // With -D the line is stamped; with --json it is an object.
    let r = ping(&["-D", "-O", "-c", "2", "-i", "0.2", "-W", "0.3", "127.0.0.1"]);
    let line = r.stdout.lines().find(|l| l.contains("no answer")).unwrap();
    assert_eq!(stamped(line).1, "no answer yet for icmp_seq=1");
    let r = ping(&[
        "--json",
        "-O",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "0.3",
        "127.0.0.1",
    ]);
    let lines = json_lines(&r.stdout);
    assert!(
        lines[0].starts_with("{\"type\":\"no_answer\",\"icmp_seq\":1,\"ts\":"),
        "{}",
        r.stdout
    );
    // Answered requests are not reported.
    drop(_quiet);
    let r = ping(&["-O", "-c", "3", "-i", "0.2", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("no answer"), "{}", r.stdout);
}

#[test]
fn flood_prints_dots_and_backspaces_and_is_root_only() {
    let _s = serial();
    let r = ping(&["-f", "-c", "200", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    let t = totals(&r.stdout);
    assert_eq!((t.transmitted, t.received), (200, 200), "{}", r.stdout);
    let flood = r.stdout.lines().nth(1).unwrap();
    assert_eq!(flood.matches('.').count(), 200, "{flood:?}");
    assert_eq!(flood.matches("\u{8} \u{8}").count(), 200, "{flood:?}");
    let rtt = r.stdout.lines().find(|l| l.starts_with("rtt ")).unwrap();
    assert!(rtt.contains(" ms, ipg/ewma "), "{rtt}");
    if let Some(theirs) = iputils(&["-f", "-c", "200", "127.0.0.1"]) {
        let lines = |s: &str| s.lines().map(shape).collect::<Vec<_>>();
        // Same header, and the dots' line ends where the statistics start
        // (no empty line between), numbers aside.
        let (ours, their) = (lines(&r.stdout), lines(&theirs.stdout));
        assert_eq!(ours[0], their[0]);
        let stats = |l: &[String]| l[l.len() - 3..].to_vec();
        assert_eq!(stats(&ours), stats(&their), "{ours:?}\n{their:?}");
        assert!(ours[ours.len() - 4].ends_with("\u{8} \u{8}"), "{ours:?}");
    }
    // Not for other users at the default (zero) interval: exit 2, as iputils.
    if nobody_can_run_the_binary() {
        let c = nobody(&["ping", "-f", "-c", "3", "127.0.0.1"]).unwrap();
        let r = finish(c);
        assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
        assert!(
            r.stderr.starts_with("sockit: error: cannot flood"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn interface_or_source_address() {
    let _s = serial();
    let r = ping(&["-I", "lo", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let r = ping(&["-I", "::1", "-c", "1", "::1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    // The source address is the one asked for, on the wire.
    let mut raw = Raw::open();
    let p = Proc::spawn({
        let mut c = sockit();
        c.args([
            "ping",
            "-I",
            "127.0.0.2",
            "-c",
            "1",
            "-s",
            "61",
            "127.0.0.1",
        ]);
        c
    });
    let (ip, _) = raw.next_request(61, WAIT).expect("saw the request");
    let (st, _, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(&ip[12..16], &[127, 0, 0, 2], "source address");
    // An interface that does not exist, an address of the other family.
    let r = ping(&["-I", "nosuchif0", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        r.stderr.contains("SO_BINDTODEVICE nosuchif0"),
        "{}",
        r.stderr
    );
    let r = ping(&["-I", "::1", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("same family"), "{}", r.stderr);
}

#[test]
fn audible_pattern_and_mtu_discovery() {
    let _s = serial();
    // -a: a bell at the end of each reply line, as iputils.
    let r = ping(&["-a", "-c", "2", "-i", "0.2", "127.0.0.1"]);
    let bells: Vec<&str> = r.stdout.lines().filter(|l| l.ends_with('\u{7}')).collect();
    assert_eq!(bells.len(), 2, "{:?}", r.stdout);
    if let Some(theirs) = iputils(&["-a", "-c", "2", "-i", "0.2", "127.0.0.1"]) {
        assert_eq!(theirs.stdout.matches('\u{7}').count(), 2);
        assert!(theirs
            .stdout
            .lines()
            .filter(|l| l.contains("bytes from"))
            .all(|l| l.ends_with('\u{7}')));
    }

    // -p: the pattern line first, the pad bytes on the wire.
    let mut raw = Raw::open();
    let p = Proc::spawn({
        let mut c = sockit();
        c.args(["ping", "-p", "ff00", "-s", "24", "-c", "1", "127.0.0.1"]);
        c
    });
    let (_, icmp) = raw.next_request(24, WAIT).expect("saw the request");
    let (st, out, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out.lines().next(), Some("PATTERN: 0xff00"));
    // After the ICMP header (8) and the run's nonce (8): the pattern.
    assert_eq!(
        &icmp[16..],
        &[0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0]
    );
    if let Some(theirs) = iputils(&["-p", "ff00", "-c", "1", "127.0.0.1"]) {
        assert_eq!(theirs.stdout.lines().next(), Some("PATTERN: 0xff00"));
    }
    let r = ping(&["-p", "zz", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);

    // -M do sets DF, -M dont clears it.
    for (mode, df) in [("do", true), ("dont", false)] {
        let p = Proc::spawn({
            let mut c = sockit();
            c.args(["ping", "-M", mode, "-s", "33", "-c", "1", "127.0.0.1"]);
            c
        });
        let (ip, _) = raw.next_request(33, WAIT).expect("saw the request");
        let (st, _, err) = p.wait_exit();
        assert_eq!(st.code(), Some(0), "{err}");
        assert_eq!(ip[6] & 0x40 != 0, df, "-M {mode}");
    }
    let r = ping(&["-M", "want", "-c", "1", "::1"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let r = ping(&["-M", "maybe", "-c", "1", "127.0.0.1"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("do, dont or want"), "{}", r.stderr);
}
