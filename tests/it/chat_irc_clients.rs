//! `chat serve --irc` with real IRC clients from Debian: a bot written with
//! the Python `irc` library (python3-irc), irssi driven in tmux, and ii
//! (files and FIFOs).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::chat_irc::{irc_serve, Irc};
use crate::util::*;

/// The bot: joins #bots, answers `!ping` with `pong`, prints what happens.
const BOT: &str = r##"
import sys, irc.bot
class Bot(irc.bot.SingleServerIRCBot):
    def on_welcome(self, c, e):
        print("WELCOME", flush=True)
        c.join("#bots")
    def on_join(self, c, e):
        if e.source.nick == c.get_nickname():
            print("JOINED", e.target, flush=True)
    def on_pubmsg(self, c, e):
        if e.arguments[0] == "!ping":
            c.privmsg(e.target, "pong to " + e.source.nick)
    def on_kick(self, c, e):
        print("KICKED", e.target, e.arguments[0], e.source.nick, flush=True)
        self.die("kicked")
host, port = sys.argv[1].rsplit(":", 1)
Bot([(host, int(port))], "pybot", "pybot").start()
"##;

#[test]
fn a_python_irc_bot_joins_answers_and_is_kicked() {
    let py = "/usr/bin/python3";
    let ok = Command::new(py)
        .args(["-c", "import irc.bot"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return skipped("python irc bot", "python3-irc is not installed");
    }
    let (_srv, line_addr, addr) = irc_serve(&[]);
    let mut op = Irc::registered(&addr, "opal");
    op.send("JOIN #bots\r\n");
    op.expect(" 353 opal = #bots :@opal");
    let mut cmd = Command::new(py);
    cmd.args(["-c", BOT, &addr]);
    let bot = Proc::spawn(cmd);
    bot.wait_stdout(b"JOINED #bots");
    op.expect(":pybot!pybot@sockit JOIN #bots");
    // A line user in the same room talks to the bot.
    let mut nc = ChatClient::named(&line_addr, "liner");
    nc.send("/join bots\n");
    nc.expect("you are now in bots");
    nc.send("!ping\n");
    nc.expect("<pybot> pong to liner");
    op.expect("PRIVMSG #bots :pong to liner");
    op.send("KICK #bots pybot :bye bot\r\n");
    bot.wait_stdout(b"KICKED #bots pybot opal");
    nc.expect("* pybot left (put out of bots by opal: bye bot)");
    let (status, _, _) = bot.wait_exit();
    assert!(status.success(), "{status}");
}

/// A tmux session running irssi, killed on drop.
struct Tmux {
    name: String,
}

impl Tmux {
    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.capture();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {needle:?} on\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .unwrap();
        assert!(ok.success());
        Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "Enter"])
            .status()
            .unwrap();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn irssi_registers_joins_talks_with_nc_and_sees_names() {
    if !have("irssi") || !have("tmux") {
        return skipped("irssi", "irssi or tmux is not installed");
    }
    let (_srv, line_addr, addr) = irc_serve(&[]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let home = tempfile::tempdir().unwrap();
    let name = format!("sockit-irssi-{}", std::process::id());
    let cmdline = format!(
        "irssi --home={} -n irssiuser -c {host} -p {port}",
        home.path().display()
    );
    let st = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            &name,
            &cmdline,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Tmux { name };
    t.wait_for("Welcome to the sockit chat");
    let mut nc = ChatClient::named(&line_addr, "ncuser");
    t.keys("/join #lobby");
    nc.expect("* irssiuser joined lobby");
    // irssi shows the NAMES it got on joining.
    t.wait_for("ncuser");
    nc.send("hello from nc\n");
    t.wait_for("hello from nc");
    t.keys("hello from irssi");
    nc.expect("<irssiuser> hello from irssi");
    t.keys("/names");
    t.wait_for("Total of 2 nicks");
    t.keys("/quit leaving");
    nc.expect("* irssiuser left (quit: leaving)");
}

/// Waits until the file at `path` contains `needle`; returns its text.
fn wait_file(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes one line into one of ii's FIFOs once ii has made it.
fn fifo_line(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "ii made no {}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Opening a FIFO for writing waits for its reader: ii holds it open.
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(format!("{text}\n").as_bytes()).unwrap();
}

#[test]
fn ii_registers_joins_and_talks_with_nc() {
    if !have("ii") {
        return skipped("ii", "ii is not installed");
    }
    let (_srv, line_addr, addr) = irc_serve(&[]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("ii");
    cmd.args([
        "-s", host, "-p", port, "-n", "iiuser", "-f", "ii user", "-i",
    ])
    .arg(dir.path());
    let _ii = Proc::spawn_with_stdin(cmd, Stdio::null());
    let server = dir.path().join(host);
    wait_file(&server.join("out"), "Welcome to the sockit chat");
    let mut nc = ChatClient::named(&line_addr, "ncuser");
    fifo_line(&server.join("in"), "/j #lobby");
    nc.expect("* iiuser joined lobby");
    let lobby = server.join("#lobby");
    nc.send("hello from nc\n");
    wait_file(&lobby.join("out"), "<ncuser> hello from nc");
    fifo_line(&lobby.join("in"), "hello from ii");
    nc.expect("<iiuser> hello from ii");
    nc.send("/me waves\n");
    wait_file(&lobby.join("out"), "waves");
    // ii has no /me: a raw command to the server.
    fifo_line(&server.join("in"), "/PRIVMSG #lobby :\x01ACTION nods\x01");
    nc.expect("+ iiuser nods");
    nc.send("/msg iiuser psst\n");
    wait_file(&server.join("ncuser").join("out"), "<ncuser> psst");
    fifo_line(&server.join("in"), "/q leaving now");
    nc.expect("* iiuser left (quit: leaving now)");
}
