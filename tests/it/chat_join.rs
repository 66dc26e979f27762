//! `sockit chat join` through the real binary: against `sockit chat serve`, raw
//! line clients, a hostile raw server, TLS, reconnects, and a real terminal (tmux).

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// Starts `sockit chat serve -v --no-console ARGS... [127.0.0.1:0]`; returns it and its address.
fn serve(args: &[&str]) -> (Proc, String) {
    let mut all = vec!["--no-console"];
    all.extend_from_slice(args);
    chat_serve(&all)
}

/// Starts `sockit chat join ARGS...` with piped stdio.
fn join(args: &[&str]) -> Proc {
    let mut cmd = sockit();
    cmd.args(["chat", "join"]).args(args);
    Proc::spawn(cmd)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn piped_lines_go_both_ways_under_the_given_nick() {
    let (_srv, addr) = serve(&[]);
    let mut alice = ChatClient::named(&addr, "alice");
    let mut bob = join(&["--nick", "bob", &addr]);
    bob.wait_stdout(b"* welcome, you are guest");
    bob.wait_stdout(b" is now bob\n");
    assert!(alice.expect("is now bob").ends_with(" is now bob"));
    alice.send("hello bob <carol> fake\n");
    bob.wait_stdout(b"\n<alice> hello bob <carol> fake\n");
    bob.write(b"hi alice\n/me waves\n");
    assert_eq!(alice.line(), "<bob> hi alice");
    assert_eq!(alice.line(), "+ bob waves");
    bob.write(b"/quit see you\n");
    assert_eq!(alice.line(), "* bob left (quit: see you)");
    let (st, out, err) = bob.wait_exit();
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "stderr: {err}");
    // Our own lines are not echoed back by the server.
    assert!(!text(&out).contains("hi alice"), "{}", text(&out));
}

#[test]
fn stdin_eof_half_closes_and_the_replies_are_still_printed() {
    let (_srv, addr) = serve(&[]);
    let mut alice = ChatClient::named(&addr, "alice");
    let out = run(&["chat", "join", &addr], b"hi from a script\n/who\n/quit\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(o.starts_with("* welcome, you are guest"), "{o}");
    assert!(o.contains("* lobby (2): alice, guest"), "{o}");
    assert!(alice
        .expect("from a script")
        .ends_with("> hi from a script"));
    // No /quit: stdin EOF alone ends the session once the server has answered.
    let out = run(&["chat", "join", "--nick", "carol", &addr], b"/who\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("* lobby (2): alice, carol\n"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        alice.expect("carol left"),
        "* carol left (connection closed)"
    );
}

#[test]
fn json_gives_one_typed_object_per_line() {
    let (_srv, addr) = serve(&[]);
    let mut carol = join(&["--json", "--nick", "carol", &addr]);
    carol.wait_stdout(br#""new":"carol""#);
    let mut alice = ChatClient::named(&addr, "alice");
    alice.send("hi <bob> x\n/me waves\n/msg carol psst\n");
    carol.wait_stdout(br#""type":"private""#);
    carol.write(b"/msg alice back\n/bogus\n");
    assert_eq!(alice.expect("*carol* back"), "*carol* back");
    carol.wait_stdout(br#""type":"error""#);
    alice.send("/quit bye\n");
    carol.wait_stdout(br#""type":"leave""#);
    carol.write(b"/quit\n");
    let (st, out, err) = carol.wait_exit();
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    let events: Vec<serde_json::Value> = text(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for e in &events {
        let ts = e["ts"].as_str().unwrap_or_else(|| panic!("no ts: {e}"));
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
    let of =
        |t: &str| -> Vec<&serde_json::Value> { events.iter().filter(|e| e["type"] == t).collect() };
    assert!(of("system")[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("welcome, you are guest"));
    let nicks = of("nick");
    assert_eq!(nicks[0]["new"], "carol");
    assert_eq!(nicks[1]["new"], "alice");
    assert_eq!(of("join")[0]["room"], "lobby");
    assert_eq!(of("join")[0]["nick"], nicks[1]["old"]);
    let msg = of("message");
    assert_eq!(msg.len(), 1, "{events:?}");
    assert_eq!(
        (&msg[0]["nick"], &msg[0]["text"]),
        (&"alice".into(), &"hi <bob> x".into())
    );
    assert_eq!(of("action")[0]["nick"], "alice");
    assert_eq!(of("action")[0]["text"], "waves");
    assert_eq!(of("private")[0]["from"], "alice");
    assert_eq!(of("private")[0]["text"], "psst");
    assert_eq!(of("private_sent")[0]["to"], "alice");
    assert_eq!(of("private_sent")[0]["text"], "back");
    assert_eq!(of("error")[0]["text"], "unknown command /bogus (try /help)");
    assert_eq!(of("leave")[0]["nick"], "alice");
    assert_eq!(of("leave")[0]["reason"], "quit: bye");
    assert!(of("other").is_empty(), "{events:?}");
}

/// A one-shot raw server: accepts one client, reads until the client
/// half-closes, sends `data`, closes; the thread returns what the client sent.
fn raw_server(data: impl Into<Vec<u8>>) -> (String, thread::JoinHandle<Vec<u8>>) {
    let data = data.into();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = thread::spawn(move || {
        let (mut s, _) = accept_one(&l);
        // What the client sends, until its stdin ends and it half-closes.
        let sent = read_all(&mut s);
        s.write_all(&data).unwrap();
        sent
    });
    (addr, t)
}

const HOSTILE: &[u8] = b"\x1b[2J<evil> hi\r\n\
<bob> \x1b]0;owned\x07 \xc2\x9b31m \xe2\x80\xaeevil \xff\r\n\
<bob> <alice> I owe bob $100\n\
* \x1b[31malice joined lobby\n\
no newline at the end \x1b[5m";

#[test]
fn hostile_server_bytes_never_reach_stdout_raw() {
    for args in [
        &["--color", "never"][..],
        &["--color", "always"],
        &["--json"],
    ] {
        let (addr, server) = raw_server(HOSTILE);
        let mut a: Vec<&str> = args.to_vec();
        a.push(&addr);
        let mut cmd = sockit();
        cmd.args(["chat", "join"]).args(&a);
        let p = Proc::spawn_with_stdin(cmd, Stdio::null());
        let (st, out, err) = p.wait_exit();
        assert_eq!(st.code(), Some(0), "{args:?}: {err}");
        server.join().unwrap();
        let o = text(&out);
        assert!(
            !o.contains('\u{9b}') && !o.contains('\u{202e}'),
            "{args:?}: {o:?}"
        );
        if args[0] == "--json" {
            assert!(!out.contains(&0x1b), "{o:?}");
            let ev: Vec<serde_json::Value> = o
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(ev.len(), 5, "{o}");
            assert_eq!(ev[0]["type"], "other");
            assert_eq!(ev[0]["text"], "^[[2J<evil> hi");
            assert_eq!(ev[1]["type"], "message");
            assert_eq!(
                ev[1]["text"],
                "^[]0;owned^G <U+009B>31m <U+202E>evil \u{fffd}"
            );
            assert_eq!(
                (&ev[2]["nick"], &ev[2]["text"]),
                (&"bob".into(), &"<alice> I owe bob $100".into())
            );
            assert_eq!(ev[3]["type"], "system");
            assert_eq!(ev[4]["text"], "no newline at the end ^[[5m");
        } else if args[1] == "never" {
            assert!(!out.contains(&0x1b), "{o:?}");
            assert_eq!(
                o,
                "^[[2J<evil> hi\n\
                 <bob> ^[]0;owned^G <U+009B>31m <U+202E>evil \u{fffd}\n\
                 <bob> <alice> I owe bob $100\n\
                 * ^[[31malice joined lobby\n\
                 no newline at the end ^[[5m\n"
            );
        } else {
            // Only our own colour codes: the server's sequences are visible text.
            let ours = o
                .replace("\x1b[0m", "")
                .replace(&format!("\x1b[{}m", colour_of(&o, "bob")), "");
            assert!(!ours.contains('\x1b'), "{o:?}");
            assert!(o.contains("^[[2J<evil> hi\n"), "{o:?}");
        }
    }
}

/// The SGR number the client painted `nick` with in `out`.
fn colour_of(out: &str, nick: &str) -> String {
    let end = out.find(&format!("m{nick}\x1b[0m")).expect("painted nick");
    let start = out[..end].rfind("\x1b[").unwrap() + 2;
    out[start..end].to_string()
}

#[test]
fn nick_colours_are_stable_and_off_by_default_in_a_pipe() {
    let (addr, server) = raw_server(b"<bob> one\n<alice> two\n<BOB> three\n");
    let out = run(&["chat", "join", "--color", "always", &addr], b"");
    server.join().unwrap();
    let o = text(&out.stdout);
    assert_eq!(colour_of(&o, "bob"), colour_of(&o, "BOB"), "{o:?}");
    assert!(o.contains("> one\n") && o.contains("> two\n"), "{o:?}");
    let (addr, server) = raw_server(b"<bob> one\n! bad\n");
    let out = run(&["chat", "join", &addr], b"");
    server.join().unwrap();
    assert_eq!(text(&out.stdout), "<bob> one\n! bad\n");
}

#[test]
fn max_line_is_enforced_at_its_edge() {
    let ok = format!("<bob> {}", "x".repeat(94));
    assert_eq!(ok.len(), 100);
    let (addr, server) = raw_server(format!("{ok}\n{ok}y\nafter\n"));
    let mut cmd = sockit();
    cmd.args(["chat", "join", "--max-line", "100", &addr]);
    let (st, out, err) = Proc::spawn_with_stdin(cmd, Stdio::null()).wait_exit();
    server.join().unwrap();
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(text(&out), format!("{ok}\nafter\n"));
    assert_eq!(
        err,
        "* dropped a line from the server longer than 100 bytes (--max-line)\n"
    );
    // Input lines over the limit are not sent.
    let (addr, server) = raw_server(b"");
    let input = format!("{}\n{}\nshort\n", "a".repeat(10), "b".repeat(11));
    let out = run(
        &["chat", "join", "--max-line", "10", &addr],
        input.as_bytes(),
    );
    let sent = server.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&sent), format!("{}\nshort\n", "a".repeat(10)));
    assert!(text(&out.stderr).contains("not sent: an input line longer than 10 bytes"));
}

#[test]
fn server_shutdown_ends_the_client_with_status_zero() {
    let (srv, addr) = serve(&[]);
    let mut p = join(&["--nick", "zed", &addr]);
    p.wait_stdout(b"is now zed\n");
    srv.signal(libc::SIGTERM);
    let out = p.wait_stdout(b"* server shutting down\n");
    assert!(text(&out).ends_with("* server shutting down\n"));
    p.close_stdin();
    let (st, _, err) = p.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
}

#[test]
fn connect_errors_are_one_line_with_their_class() {
    let port = closed_port().to_string();
    let out = run(&["chat", "join", &format!("127.0.0.1:{port}")], b"");
    let line = error_line(&out, 4);
    assert!(line.contains("connection refused"), "{line}");
    let out = run(&["chat", "join", "--nick", "<bad>", "127.0.0.1:1"], b"");
    assert!(error_line(&out, 2).contains("invalid --nick '<bad>'"));
    let out = run(&["chat", "join", "udp://127.0.0.1:1"], b"");
    assert!(error_line(&out, 2).contains("stream endpoint"));
}

#[test]
fn reconnect_comes_back_on_the_same_port_with_the_nick() {
    let (srv, addr) = serve(&[]);
    let mut dave = join(&["--reconnect", "--nick", "dave", &addr]);
    dave.wait_stdout(b"is now dave\n");
    drop(srv); // SIGKILL: no goodbye, the connection just drops.
    let err = dave.wait_stderr("* reconnecting in ");
    assert!(
        err.starts_with("* the server closed the connection\n")
            || err.starts_with("* connection lost: "),
        "{err}"
    );
    // The first wait is 0.5 s, jittered upwards by at most a quarter.
    let first = err.split("* reconnecting in ").nth(1).unwrap();
    assert!(
        first.starts_with("0.5s\n") || first.starts_with("0.6s\n"),
        "{err}"
    );
    let (_srv2, addr2) = serve(&[&addr]);
    assert_eq!(addr2, addr);
    dave.wait_stderr(&format!("* reconnected to {addr}"));
    wait_stdout_count(&dave, "is now dave\n", 2);
    let mut erin = ChatClient::named(&addr, "erin");
    dave.write(b"back again\n");
    assert_eq!(erin.expect("back again"), "<dave> back again");
    erin.send("welcome back\n");
    dave.wait_stdout(b"<erin> welcome back\n");
    // Quitting is not a dropped connection: no reconnect.
    dave.write(b"/quit\n");
    let (st, _, err) = dave.wait_exit();
    assert_eq!(st.code(), Some(0), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("* reconnected to "), "{err}");
}

/// Waits until stdout contains `needle` at least `n` times.
fn wait_stdout_count(p: &Proc, needle: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    while count(&text(&p.stdout_now()), needle) < n {
        assert!(
            Instant::now() < deadline,
            "stdout never had {n} x {needle:?}: {}",
            text(&p.stdout_now())
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tls_with_a_pinned_self_signed_certificate() {
    let (srv, addr) = serve(&["--tls-self-signed"]);
    let err = srv.wait_stderr("TLS certificate SHA-256 ");
    let fp = err
        .split("TLS certificate SHA-256 ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let mut tina = join(&["--tls", "--pin-sha256", &fp, "--nick", "tina", &addr]);
    tina.wait_stdout(b"is now tina\n");
    let mut zoe = join(&["--tls", "--insecure", "--nick", "zoe", &addr]);
    zoe.wait_stdout(b"is now zoe\n");
    tina.wait_stdout(b"is now zoe\n");
    tina.write(b"over tls\n");
    zoe.wait_stdout(b"<tina> over tls\n");
    zoe.close_stdin();
    tina.wait_stdout(b"* zoe left (connection closed)\n");
    let (st, _, e) = zoe.wait_exit();
    assert_eq!(st.code(), Some(0), "{e}");
    let wrong = format!("{}00", &fp[..fp.len() - 2]);
    let out = run(
        &["chat", "join", "--tls", "--pin-sha256", &wrong, &addr],
        b"",
    );
    let line = error_line(&out, 8);
    assert!(line.contains("does not match the pinned one"), "{line}");
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        text(&self.cmd(&["capture-pane", "-p", "-t", "chat"]).stdout)
    }

    /// Waits until the screen satisfies `pred`; returns it.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{s}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The screen's lines, trailing blank ones dropped.
fn rows(screen: &str) -> Vec<&str> {
    let mut v: Vec<&str> = screen.lines().map(str::trim_end).collect();
    while v.last() == Some(&"") {
        v.pop();
    }
    v
}

#[test]
fn terminal_mode_prints_above_the_prompt_and_keeps_the_typed_text() {
    require("tmux");
    let (_srv, addr) = serve(&[]);
    let mut alice = ChatClient::named(&addr, "alice");
    let tmux = Tmux {
        socket: abstract_name("tmux"),
    };
    // After the client, the shell reports its exit status and whether the
    // terminal is back in canonical mode with echo, then keeps the pane open
    // (the tmux server is killed on drop).
    let client = format!(
        "{} chat join --nick tess {addr}; echo exit=$?; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo; \
         sleep 60",
        env!("CARGO_BIN_EXE_sockit")
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "chat",
        "-x",
        "100",
        "-y",
        "20",
        &client,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tmux.wait("the nick change and the prompt", |s| {
        s.contains("is now tess") && rows(s).last() == Some(&">")
    });
    alice.expect("is now tess");
    tmux.keys(&["-l", "half a thou"]);
    tmux.wait("the typed text", |s| {
        rows(s).last() == Some(&"> half a thou")
    });
    alice.send("hello tess\n");
    let s = tmux.wait("the incoming line above the prompt", |s| {
        let r = rows(s);
        r.len() >= 2 && r[r.len() - 2] == "<alice> hello tess" && r[r.len() - 1] == "> half a thou"
    });
    assert_eq!(s.matches("half a thou").count(), 1, "{s}");
    tmux.keys(&["-l", "ght"]);
    tmux.keys(&["Enter"]);
    assert_eq!(alice.line(), "<tess> half a thought");
    // History: Up brings the sent line back.
    tmux.wait("a fresh prompt", |s| rows(s).last() == Some(&">"));
    tmux.keys(&["Up"]);
    tmux.wait("the recalled line", |s| {
        rows(s).last() == Some(&"> half a thought")
    });
    tmux.keys(&["C-u"]);
    tmux.wait("a cleared prompt", |s| rows(s).last() == Some(&">"));
    // Ctrl-C leaves at once, with status 0.
    tmux.keys(&["C-c"]);
    assert_eq!(alice.line(), "* tess left (connection closed)");
    let s = tmux.wait("the exit status and terminal mode", |s| {
        s.contains("exit=") && rows(s).last().is_some_and(|l| l.ends_with("echo"))
    });
    let r = rows(&s);
    assert!(r.ends_with(&["exit=0", "icanon", "echo"]), "{s}");
}
