//! `chat serve` history through the real binary: restarts, replay marks,
//! retention at its edges, resume (inside and outside retention, another
//! epoch), kill -9 mid-flood, bad databases, a full database, and
//! `chat join --reconnect` resuming.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chat_web::Web;
use crate::util::*;

fn serve(db: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--no-console", "--history-db", db.to_str().unwrap()];
    args.extend_from_slice(extra);
    chat_serve(&args)
}

/// SIGTERM, then a clean exit.
fn stop(srv: Proc) {
    srv.signal(libc::SIGTERM);
    let (st, _, err) = srv.wait_exit();
    assert!(st.success(), "server exit {st:?}: {err}");
}

/// `/cursors`, then the cursor line: (epoch, seq).
fn cursors(c: &mut ChatClient) -> (String, u64) {
    c.send("/cursors\n");
    let l = c.expect(" epoch=");
    cursor_of(&l)
}

fn cursor_of(l: &str) -> (String, u64) {
    let (mark, epoch) = l.split_once(" epoch=").unwrap();
    let seq = mark.rsplit_once('#').unwrap().1.parse().unwrap();
    (epoch.to_string(), seq)
}

/// `=ROOM#SEQ TIME LINE` -> (room, seq, LINE).
fn history_line(l: &str) -> Option<(String, u64, String)> {
    let rest = l.strip_prefix('=')?;
    let (mark, rest) = rest.split_once(' ')?;
    let (room, seq) = mark.rsplit_once('#')?;
    let (time, line) = rest.split_once(' ')?;
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "history time {time:?} in {l:?}"
    );
    Some((room.to_string(), seq.parse().ok()?, line.to_string()))
}

/// Sends `/history N` after `/cursors` and returns the history lines, read
/// up to the cursor line that ends the answer.
fn history(c: &mut ChatClient, n: usize) -> Vec<(String, u64, String)> {
    c.send(&format!("/history {n}\n"));
    let mut out = Vec::new();
    loop {
        let l = c.line();
        if l.contains(" epoch=") && l.starts_with('@') {
            return out;
        }
        if let Some(h) = history_line(&l) {
            out.push(h);
        }
    }
}

fn texts(h: &[(String, u64, String)]) -> Vec<String> {
    h.iter().map(|x| x.2.clone()).collect()
}

/// A member in cursor mode who said `text` and saw it come back: its seq.
fn say_marked(c: &mut ChatClient, text: &str) -> u64 {
    c.send(&format!("{text}\n"));
    let l = c.expect(&format!("> {text}"));
    let mark = l.strip_prefix('@').unwrap().split(' ').next().unwrap();
    mark.rsplit_once('#').unwrap().1.parse().unwrap()
}

#[test]
fn history_survives_a_restart_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (srv, addr) = serve(&db, &[]);
    let mut a = ChatClient::named(&addr, "ann");
    cursors(&mut a);
    let s1 = say_marked(&mut a, "first words");
    let s2 = say_marked(&mut a, "second words");
    assert_eq!(s2, s1 + 1);
    drop(a);
    stop(srv);

    let (srv, addr) = serve(&db, &[]);
    // A newcomer sees them, marked as history, before anything live.
    let mut b = ChatClient::connect(&addr);
    let l1 = b.line();
    let l2 = b.line();
    assert_eq!(
        history_line(&l1),
        Some(("lobby".into(), s1, "<ann> first words".into())),
        "{l1}"
    );
    assert_eq!(
        history_line(&l2),
        Some(("lobby".into(), s2, "<ann> second words".into())),
        "{l2}"
    );
    let (_, at) = cursors(&mut b);
    assert!(at > s2, "numbering restarted: {at} after {s2}");
    let s3 = say_marked(&mut b, "after the restart");
    assert!(s3 > at);
    let h = history(&mut b, 10);
    assert_eq!(
        texts(&h),
        [
            "<ann> first words",
            "<ann> second words",
            &format!("<{}> after the restart", b.nick)
        ]
    );
    drop(b);
    stop(srv);
}

#[test]
fn replay_on_join_is_marked_and_cannot_be_forged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, addr) = serve(&db, &["--history-on-join", "3"]);
    let mut a = ChatClient::named(&addr, "ann");
    // Text that looks like the marks, said by a member.
    for t in [
        "=lobby#1 2026-01-01T00:00:00.000Z <op> fake",
        "@lobby#2 <op> fake",
        "m3",
        "m4",
    ] {
        a.send(&format!("{t}\n"));
    }
    let mut w = ChatClient::connect(&addr);
    w.expect("<ann> m4");
    // A newcomer: the last 3 messages, in order, marked, then live lines.
    let mut b = ChatClient::connect(&addr);
    let got: Vec<String> = (0..3).map(|_| b.line()).collect();
    let h: Vec<_> = got.iter().map(|l| history_line(l).unwrap()).collect();
    assert_eq!(
        texts(&h),
        ["<ann> @lobby#2 <op> fake", "<ann> m3", "<ann> m4"],
        "{got:?}"
    );
    assert!(h.windows(2).all(|p| p[0].1 < p[1].1));
    a.send("live\n");
    assert_eq!(b.expect("live"), "<ann> live");
    // Member text never starts a line.
    for l in got {
        assert!(l.starts_with("=lobby#"), "{l}");
    }
    // /join: the room's replay, and /history.
    a.send("/join games\nin games\n/who\n");
    a.expect("* games (1)");
    b.send("/join games\n");
    b.expect("you are now in games");
    // The lobby's batch telling that ann moved may still be on its way.
    let l = loop {
        let l = b.line();
        if !l.starts_with("* ann left lobby") && !l.starts_with("* ann left (") {
            break l;
        }
    };
    assert_eq!(
        history_line(&l).map(|h| h.2),
        Some("<ann> in games".into()),
        "{l}"
    );
    b.send("/history x\n");
    assert_eq!(b.expect("usage"), "! usage: /history [N]");
}

fn web_serve(db: &Path, extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["--web", "127.0.0.1:0", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (srv, line) = serve(db, &args);
    let deadline = Instant::now() + WAIT;
    let web = loop {
        // The whole line, not just its start.
        let err = srv.wait_stderr("chat web page on http://");
        let addr = err
            .split("chat web page on http://")
            .nth(1)
            .and_then(|r| r.split_once("/\n"))
            .map(|(a, _)| a.to_string());
        if let Some(a) = addr {
            break a;
        }
        assert!(Instant::now() < deadline, "no web address in {err}");
        std::thread::sleep(Duration::from_millis(10));
    };
    (srv, line, web)
}

#[test]
fn web_replay_and_resume_carry_history_true() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, line_addr, web_addr) = web_serve(&db, &[]);
    let mut a = ChatClient::named(&line_addr, "ann");
    a.send("hello web\n");
    let mut w = ChatClient::connect(&line_addr);
    w.expect("<ann> hello web");
    let mut web = Web::connect(&web_addr);
    // Entering a room: its cursor (the epoch first), then its history.
    let cur = web.until("cursor", |e| e["type"] == "cursor");
    assert_eq!(cur["room"], "lobby");
    let epoch = cur["epoch"].as_str().unwrap().to_string();
    let h = web.event();
    assert_eq!(h["type"], "message", "{h}");
    assert_eq!(h["history"], true, "{h}");
    assert_eq!(h["text"], "hello web");
    assert_eq!(h["room"], "lobby");
    let seq = h["seq"].as_u64().unwrap();
    assert!(cur["seq"].as_u64().unwrap() >= seq);
    a.send("live one\n");
    let live = web.until("live", |e| e["type"] == "message");
    assert_eq!(live["text"], "live one");
    assert!(live.get("history").is_none(), "{live}");
    // Resume after the first message: what came after it, as history.
    web.send(serde_json::json!({"type":"resume","room":"lobby","epoch":epoch,"after":seq}));
    let r = web.until("resumed message", |e| e["type"] == "message");
    assert_eq!(
        (r["text"].as_str(), r["history"].as_bool()),
        (Some("live one"), Some(true))
    );
    web.until("cursor after resume", |e| e["type"] == "cursor");
    // Another epoch: a gap.
    web.send(serde_json::json!({"type":"resume","room":"lobby","epoch":"0000","after":seq}));
    let g = web.until("gap", |e| e["type"] == "gap");
    assert!(
        g["text"].as_str().unwrap().starts_with("gap: reload lobby"),
        "{g}"
    );
    web.send(serde_json::json!({"type":"history","n":1}));
    let h = web.until("history", |e| e["type"] == "message");
    assert_eq!(
        (h["text"].as_str(), h["history"].as_bool()),
        (Some("live one"), Some(true))
    );
}

/// Polls `/history` until `done` holds (bounded); returns the last answer.
fn history_until(
    c: &mut ChatClient,
    what: &str,
    done: impl Fn(&[(String, u64, String)]) -> bool,
) -> Vec<(String, u64, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let h = history(c, 100);
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what}: {h:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn per_room_count_pruning_keeps_exactly_the_last_n() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, addr) = serve(&db, &["--history-max-per-room", "5", "--rate", "0"]);
    let mut a = ChatClient::named(&addr, "ann");
    a.send("/join quiet\n");
    a.expect("you are now in quiet");
    cursors(&mut a);
    // Room events: ann's join (1), m1..m8 (2..9): the last 5 are m4..m8.
    for i in 1..=8 {
        say_marked(&mut a, &format!("m{i}"));
    }
    let h = history_until(&mut a, "pruned to 5", |h| h.len() <= 5);
    assert_eq!(
        texts(&h),
        ["<ann> m4", "<ann> m5", "<ann> m6", "<ann> m7", "<ann> m8"]
    );
    assert_eq!(h.iter().map(|x| x.1).collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
}

#[test]
fn age_pruning_drops_old_events_and_keeps_young_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, addr) = serve(&db, &["--history-max-age", "4s"]);
    let mut a = ChatClient::named(&addr, "ann");
    cursors(&mut a);
    let t0 = Instant::now();
    say_marked(&mut a, "old");
    std::thread::sleep(Duration::from_secs(2));
    say_marked(&mut a, "young");
    assert_eq!(texts(&history(&mut a, 10)), ["<ann> old", "<ann> young"]);
    // "old" goes once 4 s old; "young" is then 2 s younger and stays.
    let h = history_until(&mut a, "old pruned", |h| {
        !h.iter().any(|x| x.2 == "<ann> old")
    });
    assert!(t0.elapsed() >= Duration::from_secs(4), "pruned too early");
    assert_eq!(texts(&h), ["<ann> young"]);
}

#[test]
fn resume_inside_retention_returns_exactly_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, addr) = serve(&db, &[]);
    let mut a = ChatClient::named(&addr, "ann");
    let (epoch, _) = cursors(&mut a);
    let mut b = ChatClient::named(&addr, "bob");
    let last = say_marked(&mut a, "before the drop");
    drop(a);
    b.expect("ann left");
    for i in 1..=3 {
        b.send(&format!("missed {i}\n"));
    }
    let mut w = ChatClient::connect(&addr);
    w.expect("<bob> missed 3");
    let mut a = ChatClient::connect(&addr);
    let (_, now) = cursors(&mut a);
    a.send(&format!("/resume lobby {epoch} {last}\n"));
    let mut got = Vec::new();
    loop {
        let l = a.line();
        if l.starts_with('@') && l.contains(" epoch=") {
            break;
        }
        if let Some(h) = history_line(&l) {
            got.push(h);
        }
    }
    let seqs: Vec<u64> = got.iter().map(|x| x.1).collect();
    assert_eq!(seqs, ((last + 1)..=now).collect::<Vec<_>>(), "{got:?}");
    let t = texts(&got);
    for want in [
        "* ann left (connection closed)",
        "<bob> missed 1",
        "<bob> missed 2",
        "<bob> missed 3",
    ] {
        assert!(t.iter().any(|x| x == want), "{want} not in {t:?}");
    }
    // Nothing missed: an empty answer, no gap.
    let (_, now) = cursors(&mut a);
    a.send(&format!("/resume lobby {epoch} {now}\n"));
    let l = a.line();
    assert!(l.starts_with("@lobby#") && l.contains(" epoch="), "{l}");
}

#[test]
fn resume_past_pruned_events_says_gap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, addr) = serve(&db, &["--history-max-per-room", "3", "--rate", "0"]);
    let mut a = ChatClient::named(&addr, "ann");
    let (epoch, _) = cursors(&mut a);
    let last = say_marked(&mut a, "before");
    drop(a);
    let mut b = ChatClient::named(&addr, "bob");
    cursors(&mut b);
    for i in 1..=10 {
        say_marked(&mut b, &format!("m{i}"));
    }
    history_until(&mut b, "pruned to 3", |h| h.len() <= 3);
    let mut a = ChatClient::connect(&addr);
    a.send(&format!("/resume lobby {epoch} {last}\n"));
    let l = a.expect("gap");
    assert!(
        l.starts_with("* gap: reload lobby (events before ") && l.ends_with(" are no longer kept)"),
        "{l}"
    );
    // A cursor ahead of the room is a gap too.
    a.send(&format!("/resume lobby {epoch} 999999\n"));
    assert!(a.expect("gap").contains("ahead of the room"));
}

#[test]
fn another_epoch_says_gap_and_the_epoch_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db1 = dir.path().join("one.db");
    let db2 = dir.path().join("two.db");
    let (srv, addr) = serve(&db1, &[]);
    let mut a = ChatClient::connect(&addr);
    let (e1, s) = cursors(&mut a);
    drop(a);
    stop(srv);
    let (srv, addr) = serve(&db1, &[]);
    let mut a = ChatClient::connect(&addr);
    assert_eq!(cursors(&mut a).0, e1, "the epoch changed on restart");
    drop(a);
    stop(srv);
    let (_srv, addr) = serve(&db2, &[]);
    let mut a = ChatClient::connect(&addr);
    let (e2, _) = cursors(&mut a);
    assert_ne!(e1, e2);
    assert_eq!(e2.len(), 16);
    a.send(&format!("/resume lobby {e1} {s}\n"));
    assert_eq!(
        a.expect("gap"),
        "* gap: reload lobby (the server's history was reset (another epoch))"
    );
}

#[test]
fn kill_9_mid_flood_keeps_an_ordered_prefix() {
    const N: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (srv, addr) = serve(&db, &["--rate", "0", "--history-max-per-room", "0"]);
    let mut flood = ChatClient::named(&addr, "flood");
    let writer = std::thread::spawn(move || {
        for chunk in 0..N / 100 {
            let lines: String = (chunk * 100 + 1..=chunk * 100 + 100)
                .map(|i| format!("m{i:05}\n"))
                .collect();
            if flood.try_send_bytes(lines.as_bytes()).is_err() {
                return chunk * 100;
            }
        }
        N
    });
    // Mid-flood, once some of it is committed: that much must survive.
    let committed = {
        let c = read_only(&db);
        let deadline = Instant::now() + WAIT;
        loop {
            let n = flood_rows(&c).len();
            if n >= 1000 {
                break n;
            }
            assert!(Instant::now() < deadline, "only {n} lines committed");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    srv.signal(libc::SIGKILL);
    drop(srv);
    let sent = writer.join().unwrap();
    let (srv, addr) = serve(&db, &[]);
    srv.wait_stderr("was not closed cleanly");
    let rows = flood_rows(&read_only(&db));
    assert!(
        rows.len() >= committed,
        "{} lines kept, {committed} were committed before the kill",
        rows.len()
    );
    // A prefix of what was sent, in order, without holes.
    for (i, (seq, text)) in rows.iter().enumerate() {
        assert_eq!(text, &format!("m{:05}", i + 1), "row {i}");
        if i > 0 {
            assert_eq!(*seq, rows[i - 1].0 + 1, "hole before {text}");
        }
    }
    let max = rows.last().unwrap().0 as u64;
    eprintln!(
        "kill -9 with {committed} lines committed ({sent} of {N} sent): {} kept",
        rows.len()
    );
    // Numbering goes on past a gap, so no cursor is reused.
    let mut a = ChatClient::connect(&addr);
    let (_, now) = cursors(&mut a);
    assert!(now > max + (1 << 20), "{now} vs {max}");
}

fn read_only(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// The flooder's messages as stored: (seq, text) in seq order.
fn flood_rows(c: &rusqlite::Connection) -> Vec<(i64, String)> {
    let mut st = c
        .prepare(
            "SELECT seq, text FROM events \
             WHERE room='lobby' AND nick='flood' AND kind=1 ORDER BY seq",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn sockit_run(args: &[&str]) -> std::process::Output {
    sockit()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sockit")
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "these are my notes, not a database\n".repeat(200)).unwrap();
    let out = sockit_run(&[
        "chat",
        "serve",
        "--no-console",
        "--history-db",
        db.to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let l = error_line(&out, 2);
    assert!(l.contains("is not a SQLite database"), "{l}");
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "these are my notes, not a database\n".repeat(200),
        "the file was changed"
    );
}

#[test]
fn a_read_only_database_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.path().join("chat.db");
    let (srv, _) = serve(&db, &[]);
    stop(srv);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    // root writes anyway: run the server as nobody.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_sockit"));
        c
    } else {
        sockit()
    };
    cmd.args([
        "chat",
        "serve",
        "--no-console",
        "--history-db",
        db.to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let l = error_line(&out, 7);
    assert!(
        l.contains("cannot open history database") && l.contains("permission denied"),
        "{l}"
    );
}

#[test]
fn a_database_in_use_by_another_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (_srv, _) = serve(&db, &[]);
    let out = sockit_run(&[
        "chat",
        "serve",
        "--no-console",
        "--history-db",
        db.to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let l = error_line(&out, 2);
    assert!(l.contains("is in use by another chat server"), "{l}");
}

#[test]
fn a_full_database_pauses_history_and_chat_goes_on() {
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (srv, addr) = serve(
        &db,
        &[
            "--history-max-size",
            "64K",
            "--rate",
            "0",
            "--history-max-per-room",
            "0",
        ],
    );
    let mut watch = ChatClient::connect(&addr);
    let mut flood = ChatClient::named(&addr, "flood");
    let pad = "x".repeat(100);
    let lines: String = (1..=N).map(|i| format!("m{i:05} {pad}\n")).collect();
    flood.send(&lines);
    // Every line is delivered although history cannot keep them.
    for i in 1..=N {
        let l = watch.expect("<flood> m");
        assert!(l.starts_with(&format!("<flood> m{i:05} ")), "{l}");
    }
    let err = srv.wait_stderr("history paused");
    assert!(err.contains("database or disk is full"), "{err}");
    // Still serving.
    let mut late = ChatClient::connect(&addr);
    late.send("/who\n");
    late.expect("* lobby (3)");
    assert!(std::fs::metadata(&db).unwrap().len() <= 64 * 1024);
}

#[test]
fn chat_join_reconnect_resumes_without_loss_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (srv, addr) = serve(&db, &[]);
    let mut cmd = sockit();
    cmd.args([
        "chat",
        "join",
        "--reconnect",
        "--json",
        "--nick",
        "ann",
        &addr,
    ]);
    let join = Proc::spawn(cmd);
    let mut b = ChatClient::named(&addr, "bob");
    b.send("/join games\n");
    b.expect("you are now in games");
    // ann goes to games too and is resumed there.
    let mut ann_in = join;
    ann_in.write(b"/join games\n");
    b.expect("ann joined games");
    b.send("m1\n");
    ann_in.wait_stdout(b"\"text\":\"m1\"");
    stop(srv);
    let port = addr.rsplit_once(':').unwrap().1;
    let (srv, addr) = serve(&db, &[&format!("127.0.0.1:{port}")]);
    // Said while ann is away (its first retry waits at least 0.375 s).
    let mut b = ChatClient::named(&addr, "bob");
    b.send("/join games\nm2\nm3\n");
    ann_in.wait_stdout(b"\"text\":\"m3\"");
    b.send("m4\n");
    let out = ann_in.wait_stdout(b"\"text\":\"m4\"");
    let out = String::from_utf8(out).unwrap();
    let said: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "message" && v["nick"] == "bob")
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(said, ["m1", "m2", "m3", "m4"], "{out}");
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["type"] == "message" {
            assert_eq!(v["room"], "games", "{l}");
        }
    }
    drop(ann_in);
    stop(srv);
}

/// Whether the browser harness can run here (as `chat_web`'s test asks).
fn browser_missing() -> Option<String> {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} is missing (apt-get install chromium chromium-driver)"
            ));
        }
    }
    match Command::new("python3")
        .args(["-c", "import selenium"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        _ => Some("python3 cannot import selenium (pip install selenium)".into()),
    }
}

#[test]
fn the_page_shows_history_after_reload_and_resumes_after_a_restart() {
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if let Some(why) = browser_missing() {
        assert!(!in_ci, "CI is set, so the browser test must run: {why}");
        skipped("chat_history::the_page_shows_history_after_reload", &why);
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = format!("{root}/target/browser");
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (srv, line_addr, web_addr) = web_serve(&db, &["--rate", "0", "--drain-timeout", "0.2"]);
    let pid_file = dir.path().join("pid");
    let restart = format!(
        "kill -TERM {pid}; sleep 1.5; \
         {bin} chat serve --no-console --history-db {db} --web {web_addr} {line_addr} \
         </dev/null >/dev/null 2>&1 & echo $! > {pid_file}",
        pid = srv.child.id(),
        bin = env!("CARGO_BIN_EXE_sockit"),
        db = db.display(),
        pid_file = pid_file.display(),
    );
    let run = Command::new("python3")
        .arg(format!("{root}/tests/browser/chat_history_browser.py"))
        .args(["--url", &format!("http://{web_addr}/")])
        .args(["--tcp", &line_addr])
        .args(["--out", &out])
        .args(["--restart-cmd", &restart])
        .output()
        .expect("run python3");
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) on the server the restart command started.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    drop(srv);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}");
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("browser: "))
        .unwrap_or_else(|| panic!("no summary from the browser script:\n{stdout}\n{stderr}"));
    assert!(
        run.status.success() && summary.ends_with(" 0 failed") && !summary.contains(" 0 passed"),
        "{summary}\n{stdout}\n{stderr}"
    );
}

#[test]
fn chat_join_reconnect_shows_live_lines_after_history_that_ends_before_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (srv, addr) = serve(&db, &[]);
    let mut ann = ChatClient::named(&addr, "ann");
    ann.send("before\n");
    // A join after the last message: the room is ahead of its history.
    let _bob = ChatClient::named(&addr, "bob");
    ann.expect("is now bob");
    let mut cmd = sockit();
    cmd.args(["chat", "join", "--reconnect", "--nick", "cat", &addr]);
    let cat = Proc::spawn(cmd);
    cat.wait_stdout(b"<ann> before");
    ann.expect("is now cat");
    ann.send("live after\n");
    cat.wait_stdout(b"<ann> live after");
    drop(cat);
    stop(srv);
}
