//! One IRC connection: registration (CAP, PASS, NICK, USER), then a chat
//! member of one of the IRC encodings, whose commands become hub commands
//! and whose queries are answered from the hub's views.
//!
//! Before registration the connection is not a member: replies are written
//! straight to it. After, it is an ordinary member: the same halves, outbox,
//! flood control ([`Flood`]) and writer ([`session::serve_member`]) as line
//! clients; replies go through its outbox, in order with the hub's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::{escape, LineError, Message, MAX_CLIENT_TAGS, MAX_REST, MAX_TAGS};
use super::{chan, names, user, SERVER, TOPICLEN};
use crate::chat::front::Protocol;
use crate::chat::hub::{
    ChatHub, ChatMember, Echo, Flow, HubCommand, ModeChangeRequest, Refusal, Style,
};
use crate::chat::protocol::{check_nick, check_room, Frame, LineFramer, MAX_NAME};
use crate::chat::session::{self, Flood, FloodVerdict, Reader, SessionLimits, Writer};
use crate::conn::Conn;
use crate::util::sleep_until;

/// How the `--irc` listeners serve.
#[derive(Debug, Clone)]
pub struct IrcSettings {
    /// `PASS` clients must give (`--irc-password`).
    pub password: Option<String>,
    /// The message of the day (`--motd FILE`), line by line.
    pub motd: Option<Arc<Vec<String>>>,
    /// Ping a client silent this long; drop it when it stays silent as long
    /// again (`--irc-ping`; `None`: never). Also the time to register.
    pub ping: Option<Duration>,
    /// Most channels per member (`--irc-max-channels`).
    pub max_channels: usize,
}

impl Default for IrcSettings {
    fn default() -> Self {
        IrcSettings {
            password: None,
            motd: None,
            ping: Some(Duration::from_secs(120)),
            max_channels: crate::chat::hub::DEFAULT_MAX_ROOMS,
        }
    }
}

/// Capabilities this server offers, as `CAP LS` lists them.
const CAPS: &[&str] = &[
    "away-notify",
    "cap-notify",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
];

/// Capabilities a client enabled.
#[derive(Debug, Default, Clone, Copy)]
struct Caps {
    time: bool,
    echo: bool,
    away: bool,
    tags: bool,
    /// Enabled, though they change nothing here: NAMES and WHO show the
    /// one prefix there is, and capabilities never change.
    multi_prefix: bool,
    cap_notify: bool,
}

impl Caps {
    fn set(&mut self, cap: &str, on: bool) {
        match cap {
            "server-time" => self.time = on,
            "echo-message" => self.echo = on,
            "away-notify" => self.away = on,
            "message-tags" => self.tags = on,
            "multi-prefix" => self.multi_prefix = on,
            "cap-notify" => self.cap_notify = on,
            _ => {}
        }
    }

    fn enabled(&self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.away, "away-notify"),
            (self.cap_notify, "cap-notify"),
            (self.echo, "echo-message"),
            (self.tags, "message-tags"),
            (self.multi_prefix, "multi-prefix"),
            (self.time, "server-time"),
        ] {
            if on {
                v.push(name);
            }
        }
        v.join(" ")
    }

    fn protocol(&self) -> Protocol {
        Protocol::irc(self.time, self.away, self.tags)
    }

    fn echo(&self) -> Echo {
        if self.echo {
            Echo::Talk
        } else {
            Echo::None
        }
    }
}

/// A parameter as it may appear in a reply: one word, not too long.
fn tok(s: &str) -> &str {
    let s = s.split(' ').next().unwrap_or("");
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        "*"
    } else {
        &s[..end]
    }
}

/// `#room` to the room's name, if it is one.
fn room_of(target: &str) -> Option<&str> {
    let room = target.strip_prefix('#')?;
    check_room(room).ok().map(|_| room)
}

/// Text without IRC formatting codes (bold, colours...): the hub would show
/// them as `^B`, `^C` to everyone.
fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x02' | '\x0f' | '\x11' | '\x16' | '\x1d' | '\x1e' | '\x1f' => {}
            '\x03' => {
                for _ in 0..2 {
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                }
                if chars.peek() == Some(&',') {
                    let mut look = chars.clone();
                    look.next();
                    if look.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        for _ in 0..2 {
                            if chars.peek().is_some_and(char::is_ascii_digit) {
                                chars.next();
                            }
                        }
                    }
                }
            }
            '\x04' => {
                for _ in 0..6 {
                    if chars.peek().is_some_and(char::is_ascii_hexdigit) {
                        chars.next();
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A line for the client.
fn line(source: &str, rest: &str) -> String {
    format!(":{source} {rest}\r\n")
}

/// A numeric for `me`.
fn num(code: &str, me: &str, rest: &str) -> String {
    line(SERVER, &format!("{code} {me} {rest}"))
}

/// What registration gathered.
struct Registration {
    nick: String,
    caps: Caps,
    frames: Vec<Frame>,
}

/// Serves one admitted connection of an `--irc` listener until it ends.
pub async fn run(
    conn: Conn,
    irc: &IrcSettings,
    hub: Arc<ChatHub>,
    limits: &SessionLimits,
    stop_reading: CancellationToken,
    hard_stop: CancellationToken,
) {
    let peer = conn.peer.clone();
    let (mut reader, mut writer, sink) = match session::split(conn, Bytes::new()) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::info!("{peer}: {e}");
            return;
        }
    };
    let mut framer = LineFramer::new(MAX_TAGS + MAX_REST + 1);
    let mut flood = Flood::new(limits);
    let reg = tokio::select! {
        r = register(&mut reader, &mut writer, &mut framer, &mut flood, irc, &hub) => r,
        _ = stop_reading.cancelled() => {
            let _ = writer
                .write_all_vectored(&[Bytes::from_static(b"ERROR :Closing link: server shutting down\r\n")])
                .await;
            None
        }
    };
    let Some(reg) = reg else {
        return;
    };
    let joined = hub.register(
        reg.caps.protocol(),
        &reg.nick,
        sink,
        stop_reading.child_token(),
        hard_stop.child_token(),
    );
    let m = match joined {
        Ok(m) => m,
        Err(_) => {
            let _ = writer
                .write_all_vectored(&[Bytes::from_static(
                    b"ERROR :Closing link: cannot register now\r\n",
                )])
                .await;
            return;
        }
    };
    tracing::info!("{peer} joined as {} (irc)", reg.nick);
    if reg.caps.echo {
        hub.set_style(m.id, reg.caps.protocol(), reg.caps.echo());
    }
    let mut s = Member {
        hub: &hub,
        m: &m,
        irc,
        caps: reg.caps,
        modes: String::new(),
    };
    s.welcome(&reg.nick);
    let read = s.read_loop(&mut reader, &mut framer, &mut flood, limits, reg.frames);
    session::serve_member(&hub, &m, &mut writer, limits, read).await;
}

/// Reads until the client has registered (or gave up: `None`).
async fn register(
    reader: &mut Reader,
    writer: &mut Writer,
    framer: &mut LineFramer,
    flood: &mut Flood,
    irc: &IrcSettings,
    hub: &ChatHub,
) -> Option<Registration> {
    let deadline = irc.ping.map(|d| Instant::now() + d);
    let mut nick: Option<String> = None;
    let mut user = false;
    let mut pass_ok = irc.password.is_none();
    let mut negotiating = false;
    let mut caps = Caps::default();
    let mut frames = Vec::new();
    loop {
        let read = reader.read_with(|data| framer.push(data, &mut frames));
        let eof = tokio::select! {
            r = read => !matches!(r, Ok(n) if n > 0),
            _ = sleep_until(deadline) => {
                let _ = send(writer, "ERROR :Closing link: registration timed out\r\n".into()).await;
                return None;
            }
        };
        if eof {
            return None;
        }
        let mut out = String::new();
        let mut it = std::mem::take(&mut frames).into_iter();
        for frame in it.by_ref() {
            let me = nick.clone().unwrap_or_else(|| "*".into());
            if let FloodVerdict::Disconnect = flood.judge() {
                out.push_str("ERROR :Closing link: excess flood\r\n");
                let _ = send(writer, out).await;
                return None;
            }
            let msg = match parse(&frame) {
                Ok(m) => m,
                Err(Some(reply)) => {
                    out.push_str(&reply.replace("{me}", &me));
                    continue;
                }
                Err(None) => continue,
            };
            let p = |i| msg.param(i).unwrap_or("");
            match msg.command.as_str() {
                "CAP" => {
                    negotiating |= !matches!(p(0).to_ascii_uppercase().as_str(), "END");
                    if p(0).eq_ignore_ascii_case("END") {
                        negotiating = false;
                    }
                    out.push_str(&cap(&msg, &me, &mut caps));
                }
                "PASS" => match &irc.password {
                    _ if msg.params.is_empty() => {
                        out.push_str(&num("461", &me, "PASS :Not enough parameters"))
                    }
                    Some(pw) => pass_ok = p(0) == pw,
                    None => {}
                },
                "NICK" => {
                    let new = p(0);
                    if new.is_empty() {
                        out.push_str(&num("431", &me, ":No nickname given"));
                    } else if check_nick(new).is_err() {
                        out.push_str(&num(
                            "432",
                            &me,
                            &format!("{} :Erroneous nickname", tok(new)),
                        ));
                    } else if !hub.nick_free(new) {
                        out.push_str(&num(
                            "433",
                            &me,
                            &format!("{new} :Nickname is already in use"),
                        ));
                    } else {
                        nick = Some(new.to_string());
                    }
                }
                "USER" => {
                    if msg.params.len() < 4 || p(0).is_empty() {
                        out.push_str(&num("461", &me, "USER :Not enough parameters"));
                    } else {
                        user = true;
                    }
                }
                "PING" => match msg.params.first() {
                    Some(t) => out.push_str(&line(SERVER, &format!("PONG {SERVER} :{t}"))),
                    None => out.push_str(&num("409", &me, ":No origin specified")),
                },
                "PONG" => {}
                "QUIT" => {
                    out.push_str("ERROR :Closing link: quit\r\n");
                    let _ = send(writer, out).await;
                    return None;
                }
                other => out.push_str(&num(
                    "451",
                    &me,
                    &format!("{} :You have not registered", tok(other)),
                )),
            }
            if let (Some(n), true, false) = (&nick, user, negotiating) {
                if !pass_ok {
                    out.push_str(&num("464", n, ":Password incorrect"));
                    out.push_str("ERROR :Closing link: bad password\r\n");
                    let _ = send(writer, out).await;
                    return None;
                }
                if hub.nick_free(n) {
                    if send(writer, out).await.is_err() {
                        return None;
                    }
                    return Some(Registration {
                        nick: n.clone(),
                        caps,
                        frames: it.collect(),
                    });
                }
                out.push_str(&num(
                    "433",
                    "*",
                    &format!("{n} :Nickname is already in use"),
                ));
                nick = None;
            }
        }
        if !out.is_empty() && send(writer, out).await.is_err() {
            return None;
        }
        framer.shrink();
    }
}

async fn send(writer: &mut Writer, text: String) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    writer.write_all_vectored(&[Bytes::from(text)]).await
}

/// A frame as a message, or the reply that refuses it (`{me}` for the
/// nick), or `None` to ignore it (an empty line).
fn parse(frame: &Frame) -> Result<Message, Option<String>> {
    let bytes = match frame {
        Frame::Line(b) => b,
        Frame::TooLong => return Err(Some(num("417", "{me}", ":Input line was too long"))),
    };
    // message-tags: at most 4094 bytes of tag data from a client.
    if bytes.first() == Some(&b'@') {
        let data = memchr::memchr(b' ', bytes).unwrap_or(bytes.len()) - 1;
        if data > MAX_CLIENT_TAGS {
            return Err(Some(num("417", "{me}", ":Input line was too long")));
        }
    }
    match Message::parse(bytes) {
        Ok(m) => Ok(m),
        Err(LineError::Empty) => Err(None),
        Err(LineError::TooLong | LineError::TagsTooLong) => {
            Err(Some(num("417", "{me}", ":Input line was too long")))
        }
        Err(LineError::Forbidden) => Err(Some(line(
            SERVER,
            "FAIL * INVALID_LINE :Line dropped: it holds a NUL or a CR",
        ))),
        Err(LineError::NoCommand) => Err(Some(line(
            SERVER,
            "FAIL * INVALID_LINE :Line dropped: no command",
        ))),
    }
}

/// `CAP` at any time: the replies.
fn cap(msg: &Message, me: &str, caps: &mut Caps) -> String {
    let p = |i| msg.param(i).unwrap_or("");
    match p(0).to_ascii_uppercase().as_str() {
        "LS" => line(SERVER, &format!("CAP {me} LS :{}", CAPS.join(" "))),
        "LIST" => line(SERVER, &format!("CAP {me} LIST :{}", caps.enabled())),
        "REQ" => {
            let asked: Vec<&str> = p(1).split(' ').filter(|c| !c.is_empty()).collect();
            let known = asked
                .iter()
                .all(|c| CAPS.contains(&c.strip_prefix('-').unwrap_or(c)));
            if !known || asked.is_empty() {
                return line(SERVER, &format!("CAP {me} NAK :{}", p(1)));
            }
            for c in &asked {
                match c.strip_prefix('-') {
                    Some(off) => caps.set(off, false),
                    None => caps.set(c, true),
                }
            }
            line(SERVER, &format!("CAP {me} ACK :{}", asked.join(" ")))
        }
        "END" => String::new(),
        other => num("410", me, &format!("{} :Invalid CAP command", tok(other))),
    }
}

/// A registered member's side.
struct Member<'a> {
    hub: &'a ChatHub,
    m: &'a ChatMember,
    irc: &'a IrcSettings,
    caps: Caps,
    /// User modes set (`i`, `w`): kept and shown, nothing more.
    modes: String,
}

/// How a command ended the member's reading.
enum End {
    Quit(String),
}

impl Member<'_> {
    fn me(&self) -> String {
        self.hub.nick(self.m.id).unwrap_or_else(|| "*".into())
    }

    fn send(&self, text: String) {
        if !text.is_empty() {
            let _ = self.m.out.push(&[Bytes::from(text)]);
        }
    }

    fn command(&self, cmd: HubCommand) -> Flow {
        self.hub.command(self.m.id, cmd)
    }

    /// 001-005, LUSERS and the MOTD.
    fn welcome(&self, me: &str) {
        let mut o = String::new();
        o += &num(
            "001",
            me,
            &format!(":Welcome to the sockit chat, {}", user(me)),
        );
        o += &num(
            "002",
            me,
            &format!(
                ":Your host is {SERVER}, running sockit {}",
                env!("CARGO_PKG_VERSION")
            ),
        );
        o += &num("003", me, ":This server was started by sockit chat serve");
        o += &num(
            "004",
            me,
            &format!("{SERVER} sockit-{} iw ntO o", env!("CARGO_PKG_VERSION")),
        );
        o += &self.isupport(me);
        o += &self.lusers(me);
        o += &self.motd(me);
        self.send(o);
    }

    fn isupport(&self, me: &str) -> String {
        num(
            "005",
            me,
            &format!(
                "CHANTYPES=# PREFIX=(o)@ NETWORK=sockit CASEMAPPING=ascii NICKLEN={MAX_NAME} \
                 CHANNELLEN={} TOPICLEN={TOPICLEN} CHANMODES=,,,nt CHANLIMIT=#:{} \
                 MODES=4 :are supported by this server",
                MAX_NAME + 1,
                self.irc.max_channels
            ),
        )
    }

    fn lusers(&self, me: &str) -> String {
        let (users, rooms, ops) = self.hub.counts();
        let mut o = num(
            "251",
            me,
            &format!(":There are {users} users and 0 invisible on 1 servers"),
        );
        if ops > 0 {
            o += &num("252", me, &format!("{ops} :operator(s) online"));
        }
        o += &num("254", me, &format!("{rooms} :channels formed"));
        o += &num("255", me, &format!(":I have {users} clients and 0 servers"));
        o
    }

    fn motd(&self, me: &str) -> String {
        let Some(motd) = &self.irc.motd else {
            return num("422", me, ":MOTD File is missing");
        };
        let mut o = num("375", me, &format!(":- {SERVER} Message of the day - "));
        for l in motd.iter() {
            o += &num("372", me, &format!(":- {l}"));
        }
        o += &num("376", me, ":End of /MOTD command.");
        o
    }

    /// Reads commands until the member leaves; the reason to announce, or
    /// `None` when the hub removed it.
    async fn read_loop(
        &mut self,
        reader: &mut Reader,
        framer: &mut LineFramer,
        flood: &mut Flood,
        limits: &SessionLimits,
        first: Vec<Frame>,
    ) -> Option<String> {
        let mut frames = first;
        let mut last_input = Instant::now();
        let mut pinged = false;
        loop {
            for frame in std::mem::take(&mut frames) {
                match flood.judge() {
                    FloodVerdict::Pass => {}
                    FloodVerdict::Drop { warn } => {
                        if warn {
                            self.hub.refuse(self.m.id, Refusal::SlowDown(limits.rate));
                        }
                        continue;
                    }
                    FloodVerdict::Disconnect => {
                        self.send("ERROR :Closing link: excess flood\r\n".into());
                        return Some("flooding".into());
                    }
                }
                match parse(&frame) {
                    Ok(msg) => {
                        if let Some(End::Quit(reason)) = self.handle(&msg) {
                            self.send(format!("ERROR :Closing link: {reason}\r\n"));
                            return Some(reason);
                        }
                    }
                    Err(Some(reply)) => self.send(reply.replace("{me}", &self.me())),
                    Err(None) => {}
                }
            }
            framer.shrink();
            self.hub.backpressure().await;
            tokio::task::yield_now().await;
            let ping_at = self.irc.ping.map(|d| last_input + d);
            let drop_at = self.irc.ping.map(|d| last_input + d * 2);
            let idle_at = limits.idle.map(|d| last_input + d);
            let read = reader.read_with(|data| framer.push(data, &mut frames));
            tokio::select! {
                biased;
                _ = self.m.removed.cancelled() => return None,
                r = read => match r {
                    Ok(0) => return Some("connection closed".into()),
                    Ok(_) => {
                        last_input = Instant::now();
                        pinged = false;
                    }
                    Err(e) => return Some(crate::error::describe_io(&e)),
                },
                _ = sleep_until(ping_at.filter(|_| !pinged)) => {
                    pinged = true;
                    self.send(line(SERVER, &format!("PING :{SERVER}")));
                }
                _ = sleep_until(drop_at.filter(|_| pinged)) => {
                    let secs = self.irc.ping.map_or(0, |d| d.as_secs() * 2);
                    let reason = format!("ping timeout: {secs} seconds");
                    self.send(format!("ERROR :Closing link: {reason}\r\n"));
                    return Some(reason);
                }
                _ = sleep_until(idle_at) => return Some("idle timeout".into()),
            }
        }
    }

    /// One command.
    fn handle(&mut self, msg: &Message) -> Option<End> {
        let me = self.me();
        let p = |i: usize| msg.param(i).unwrap_or("");
        let need = |n: usize| -> bool {
            if msg.params.len() < n || (n > 0 && msg.params[0].is_empty()) {
                self.send(num(
                    "461",
                    &me,
                    &format!("{} :Not enough parameters", msg.command),
                ));
                return false;
            }
            true
        };
        match msg.command.as_str() {
            "PING" => match msg.params.first() {
                Some(t) => {
                    // What the rooms hold for this member comes first: a
                    // PONG then tells a client that everything said
                    // before its PING has reached it.
                    self.hub.flush();
                    self.send(line(SERVER, &format!("PONG {SERVER} :{t}")))
                }
                None => self.send(num("409", &me, ":No origin specified")),
            },
            "PONG" => {}
            "CAP" => {
                let before = self.caps;
                let reply = cap(msg, &me, &mut self.caps);
                self.send(reply);
                let c = self.caps;
                let key = |c: Caps| (c.time, c.echo, c.away, c.tags);
                if key(c) != key(before) {
                    self.hub.set_style(self.m.id, c.protocol(), c.echo());
                }
            }
            "USER" | "PASS" => self.send(num("462", &me, ":You may not reregister")),
            "NICK" => {
                let new = p(0);
                if new.is_empty() {
                    self.send(num("431", &me, ":No nickname given"));
                } else if check_nick(new).is_err() {
                    self.send(num(
                        "432",
                        &me,
                        &format!("{} :Erroneous nickname", tok(new)),
                    ));
                } else if new != me {
                    self.command(HubCommand::Nick(new.to_string()));
                }
            }
            "QUIT" => {
                let reason = match msg.params.first() {
                    Some(r) if !r.is_empty() => format!("quit: {}", strip_formatting(r)),
                    _ => "quit".to_string(),
                };
                return Some(End::Quit(reason));
            }
            "JOIN" if need(1) => {
                if p(0) == "0" {
                    self.command(HubCommand::PartAll);
                    return None;
                }
                for target in p(0).split(',').filter(|t| !t.is_empty()) {
                    match room_of(target) {
                        Some(room) => {
                            self.command(HubCommand::Enter(room.to_string()));
                        }
                        None => self.send(num(
                            "403",
                            &me,
                            &format!("{} :No such channel", tok(target)),
                        )),
                    }
                }
            }
            "PART" if need(1) => {
                let reason = msg.params.get(1).map(|r| strip_formatting(r));
                for target in p(0).split(',').filter(|t| !t.is_empty()) {
                    match room_of(target) {
                        Some(room) => {
                            self.command(HubCommand::Part {
                                room: room.to_string(),
                                reason: reason.clone().filter(|r| !r.is_empty()),
                            });
                        }
                        None => self.send(num(
                            "403",
                            &me,
                            &format!("{} :No such channel", tok(target)),
                        )),
                    }
                }
            }
            "PRIVMSG" | "NOTICE" => self.talk(msg, &me),
            "TOPIC" if need(1) => match room_of(p(0)) {
                Some(room) => {
                    let text = msg.params.get(1).map(|t| {
                        let mut t = strip_formatting(t);
                        let mut end = t.len().min(TOPICLEN);
                        while !t.is_char_boundary(end) {
                            end -= 1;
                        }
                        t.truncate(end);
                        t
                    });
                    self.command(HubCommand::Topic {
                        room: room.to_string(),
                        text,
                    });
                }
                None => self.send(num("403", &me, &format!("{} :No such channel", tok(p(0))))),
            },
            "NAMES" => {
                if msg.params.is_empty() {
                    self.send(num("366", &me, "* :End of /NAMES list"));
                }
                for target in p(0).split(',').filter(|t| !t.is_empty()).take(10) {
                    let view = room_of(target).and_then(|r| self.hub.room_view(r, usize::MAX));
                    let mut out = Vec::new();
                    match view {
                        Some(v) => names(
                            &mut out,
                            None,
                            &me,
                            &chan(&v.name),
                            v.members.iter().map(|(n, op, _)| (n.as_str(), *op)),
                        ),
                        None => out.extend_from_slice(
                            num("366", &me, &format!("{} :End of /NAMES list", tok(target)))
                                .as_bytes(),
                        ),
                    }
                    self.send(String::from_utf8_lossy(&out).into_owned());
                }
            }
            "WHO" => self.who(p(0), &me),
            "WHOIS" if msg.params.is_empty() => self.send(num("431", &me, ":No nickname given")),
            "WHOIS" => {
                let target = msg.params.last().map_or("", String::as_str);
                self.whois(target, &me);
            }
            "LIST" => {
                let mut o = num("321", &me, "Channel :Users  Name");
                let (_, rooms) = self.hub.rooms_view(10_000);
                let only: Vec<String> = p(0)
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .filter_map(|t| room_of(t).map(str::to_ascii_lowercase))
                    .collect();
                for (name, count, topic) in rooms {
                    if !only.is_empty() && !only.contains(&name.to_ascii_lowercase()) {
                        continue;
                    }
                    let topic = topic.unwrap_or_default();
                    o += &num("322", &me, &format!("{} {count} :{topic}", chan(&name)));
                }
                o += &num("323", &me, ":End of /LIST");
                self.send(o);
            }
            "MODE" if need(1) => self.mode(msg, &me),
            "KICK" if need(2) => match room_of(p(0)) {
                Some(room) => {
                    let reason = msg.params.get(2).map(|r| strip_formatting(r));
                    for nick in p(1).split(',').filter(|n| !n.is_empty()).take(4) {
                        self.command(HubCommand::KickFrom {
                            room: room.to_string(),
                            nick: nick.to_string(),
                            reason: reason.clone().filter(|r| !r.is_empty()),
                        });
                    }
                }
                None => self.send(num("403", &me, &format!("{} :No such channel", tok(p(0))))),
            },
            "AWAY" => {
                let text = msg.params.first().map(|t| strip_formatting(t));
                self.command(HubCommand::Away(text.filter(|t| !t.is_empty())));
            }
            "MOTD" => self.send(self.motd(&me)),
            "LUSERS" => self.send(self.lusers(&me)),
            "VERSION" => {
                let v = env!("CARGO_PKG_VERSION");
                let mut o = num("351", &me, &format!("sockit-{v} {SERVER} :sockit chat"));
                o += &self.isupport(&me);
                self.send(o);
            }
            "TIME" => {
                let now = crate::chat::event::rfc3339(std::time::SystemTime::now());
                self.send(num("391", &me, &format!("{SERVER} :{now}")));
            }
            "USERHOST" if need(1) => {
                let found: Vec<String> = msg
                    .params
                    .iter()
                    .take(5)
                    .filter_map(|n| self.hub.member_view(n))
                    .map(|v| {
                        let op = if v.operator { "*" } else { "" };
                        let away = if v.away.is_some() { '-' } else { '+' };
                        format!("{}{op}={away}{}@{}", v.nick, v.nick, super::HOST)
                    })
                    .collect();
                self.send(num("302", &me, &format!(":{}", found.join(" "))));
            }
            "ISON" if need(1) => {
                let found: Vec<String> = msg
                    .params
                    .iter()
                    .flat_map(|p| p.split(' '))
                    .filter(|n| !n.is_empty())
                    .take(50)
                    .filter_map(|n| self.hub.member_view(n).map(|v| v.nick.to_string()))
                    .collect();
                self.send(num("303", &me, &format!(":{}", found.join(" "))));
            }
            "TAGMSG" if need(1) => self.tagmsg(msg),
            "JOIN" | "PART" | "TOPIC" | "MODE" | "KICK" | "USERHOST" | "ISON" | "TAGMSG" => {}
            other => self.send(num("421", &me, &format!("{} :Unknown command", tok(other)))),
        }
        None
    }

    /// PRIVMSG and NOTICE (which never gets an error back).
    fn talk(&self, msg: &Message, me: &str) {
        let notice = msg.command == "NOTICE";
        let Some(targets) = msg.params.first().filter(|t| !t.is_empty()) else {
            if !notice {
                self.send(num(
                    "411",
                    me,
                    &format!(":No recipient given ({})", msg.command),
                ));
            }
            return;
        };
        let Some(raw) = msg.params.get(1).filter(|t| !t.is_empty()) else {
            if !notice {
                self.send(num("412", me, ":No text to send"));
            }
            return;
        };
        // CTCP: \x01COMMAND args\x01 (the closing \x01 may be missing).
        let (text, style) = match raw.strip_prefix('\x01') {
            Some(body) => {
                let body = body.strip_suffix('\x01').unwrap_or(body);
                match body.strip_prefix("ACTION") {
                    Some(a) if a.is_empty() || a.starts_with(' ') => {
                        (a.trim_start_matches(' ').to_string(), Some(Style::Action))
                    }
                    _ if notice => (body.to_string(), Some(Style::CtcpReply)),
                    _ => (body.to_string(), Some(Style::Ctcp)),
                }
            }
            None if notice => (raw.clone(), Some(Style::Notice)),
            None => (raw.clone(), None),
        };
        let text = strip_formatting(&text);
        let tags = self.client_tags(msg);
        for target in targets.split(',').filter(|t| !t.is_empty()).take(4) {
            if let Some(rest) = target.strip_prefix('#') {
                let Some(room) = room_of(target) else {
                    if !notice {
                        self.send(num("403", me, &format!("{} :No such channel", tok(target))));
                    }
                    continue;
                };
                let _ = rest;
                if notice && !self.may_talk_in(room) {
                    continue;
                }
                self.command(self.with_tags(
                    HubCommand::SayTo {
                        room: room.to_string(),
                        text: text.clone(),
                        style,
                    },
                    &tags,
                ));
                continue;
            }
            if notice && self.hub.member_view(target).is_none() {
                continue;
            }
            let cmd = match style {
                None => HubCommand::Msg {
                    to: target.to_string(),
                    text: text.clone(),
                },
                Some(style) => HubCommand::MsgStyled {
                    to: target.to_string(),
                    text: text.clone(),
                    style,
                },
            };
            self.command(self.with_tags(cmd, &tags));
        }
    }

    /// The client-only tags of `msg` (`+name`), escaped for relaying, when
    /// this member negotiated message-tags and sent some.
    fn client_tags(&self, msg: &Message) -> Option<String> {
        if !self.caps.tags {
            return None;
        }
        let mut s = String::new();
        for (k, v) in &msg.tags {
            let Some(name) = k.strip_prefix('+') else {
                continue;
            };
            let fine = |b: u8| b.is_ascii_alphanumeric() || b"-./".contains(&b);
            if name.is_empty() || !name.bytes().all(fine) {
                continue;
            }
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str(k);
            if !v.is_empty() {
                s.push('=');
                escape(v, &mut s);
            }
        }
        (!s.is_empty()).then_some(s)
    }

    /// `cmd` with the message's client-only tags, if any.
    fn with_tags(&self, cmd: HubCommand, tags: &Option<String>) -> HubCommand {
        match tags {
            Some(t) => HubCommand::Tagged {
                tags: t.clone(),
                cmd: Box::new(cmd),
            },
            None => cmd,
        }
    }

    /// TAGMSG: client-only tags alone, to channels or nicks.
    fn tagmsg(&self, msg: &Message) {
        let Some(tags) = self.client_tags(msg) else {
            return;
        };
        for target in msg.params[0].split(',').filter(|t| !t.is_empty()).take(4) {
            let room = if target.starts_with('#') {
                match room_of(target) {
                    Some(r) => Some(r.to_string()),
                    None => {
                        let me = self.me();
                        self.send(num(
                            "403",
                            &me,
                            &format!("{} :No such channel", tok(target)),
                        ));
                        continue;
                    }
                }
            } else {
                None
            };
            self.command(HubCommand::TagsOnly {
                room,
                to: target.to_string(),
                tags: tags.clone(),
            });
        }
    }

    fn may_talk_in(&self, room: &str) -> bool {
        match self.hub.room_view(room, 0) {
            Some(v) => !v.no_outside || self.in_room(&v.name),
            None => false,
        }
    }

    fn in_room(&self, room: &str) -> bool {
        self.hub.rooms_of(self.m.id).iter().any(|r| &**r == room)
    }

    fn who(&self, mask: &str, me: &str) {
        let mut o = String::new();
        let mut row = |chan_name: &str, nick: &str, op: bool, away: bool| {
            let here = if away { 'G' } else { 'H' };
            let at = if op { "@" } else { "" };
            o += &num(
                "352",
                me,
                &format!(
                    "{chan_name} {nick} {} {SERVER} {nick} {here}{at} :0 {nick}",
                    super::HOST
                ),
            );
        };
        if let Some(room) = room_of(mask) {
            if let Some(v) = self.hub.room_view(room, usize::MAX) {
                let c = chan(&v.name);
                for (nick, op, away) in &v.members {
                    row(&c, nick, *op, *away);
                }
            }
        } else if let Some(v) = self.hub.member_view(mask) {
            row("*", &v.nick, v.operator, v.away.is_some());
        }
        o += &num("315", me, &format!("{} :End of /WHO list", tok(mask)));
        self.send(o);
    }

    fn whois(&self, target: &str, me: &str) {
        let first = target.split(',').next().unwrap_or("");
        let Some(v) = self.hub.member_view(first) else {
            let mut o = num("401", me, &format!("{} :No such nick/channel", tok(first)));
            o += &num("318", me, &format!("{} :End of /WHOIS list", tok(first)));
            return self.send(o);
        };
        let n = &v.nick;
        let mut o = num("311", me, &format!("{n} {n} {} * :{n}", super::HOST));
        if !v.rooms.is_empty() {
            let list: Vec<String> = v
                .rooms
                .iter()
                .map(|(r, op)| format!("{}{}", if *op { "@" } else { "" }, chan(r)))
                .collect();
            o += &num("319", me, &format!("{n} :{}", list.join(" ")));
        }
        let via = match v.protocol {
            Protocol::Line => "line",
            Protocol::Web => "web",
            _ => "irc",
        };
        o += &num("312", me, &format!("{n} {SERVER} :sockit chat ({via})"));
        if v.operator {
            o += &num("313", me, &format!("{n} :is the server operator"));
        }
        if let Some(away) = &v.away {
            o += &num("301", me, &format!("{n} :{away}"));
        }
        o += &num(
            "317",
            me,
            &format!("{n} 0 {} :seconds idle, signon time", v.since / 1000),
        );
        o += &num("318", me, &format!("{n} :End of /WHOIS list"));
        self.send(o);
    }

    fn mode(&mut self, msg: &Message, me: &str) {
        let target = msg.param(0).unwrap_or("");
        let Some(room) = target.strip_prefix('#').map(|_| room_of(target)) else {
            return self.user_mode(msg, me, target);
        };
        let Some(view) = room.and_then(|r| self.hub.room_view(r, 0)) else {
            return self.send(num("403", me, &format!("{} :No such channel", tok(target))));
        };
        let c = chan(&view.name);
        let Some(modes) = msg.param(1) else {
            let mut m = String::from("+");
            if view.no_outside {
                m.push('n');
            }
            if view.topic_lock {
                m.push('t');
            }
            return self.send(num("324", me, &format!("{c} {m}")));
        };
        let mut args = msg.params.iter().skip(2);
        let mut on = true;
        for ch in modes.chars().take(16) {
            let change = match ch {
                '+' => {
                    on = true;
                    continue;
                }
                '-' => {
                    on = false;
                    continue;
                }
                't' => ModeChangeRequest::TopicLock(on),
                'n' => ModeChangeRequest::NoOutside(on),
                'o' => match args.next() {
                    Some(nick) => ModeChangeRequest::Operator {
                        nick: nick.clone(),
                        on,
                    },
                    None => {
                        self.send(num("461", me, "MODE :Not enough parameters"));
                        continue;
                    }
                },
                // Ban, exception and invite lists: always empty here.
                'b' => {
                    self.send(num("368", me, &format!("{c} :End of channel ban list")));
                    continue;
                }
                'e' => {
                    self.send(num(
                        "349",
                        me,
                        &format!("{c} :End of channel exception list"),
                    ));
                    continue;
                }
                'I' => {
                    self.send(num("347", me, &format!("{c} :End of channel invite list")));
                    continue;
                }
                other => {
                    self.send(num(
                        "472",
                        me,
                        &format!("{other} :is unknown mode char to me"),
                    ));
                    continue;
                }
            };
            self.command(HubCommand::Mode {
                room: view.name.to_string(),
                change,
            });
        }
    }

    fn user_mode(&mut self, msg: &Message, me: &str, target: &str) {
        if !target.eq_ignore_ascii_case(me) {
            return match self.hub.member_view(target) {
                Some(_) => self.send(num("502", me, ":Can't change mode for other users")),
                None => self.send(num(
                    "401",
                    me,
                    &format!("{} :No such nick/channel", tok(target)),
                )),
            };
        }
        let Some(modes) = msg.param(1) else {
            return self.send(num("221", me, &format!("+{}", self.modes)));
        };
        let mut on = true;
        let mut changed = String::new();
        let mut sign = ' ';
        for ch in modes.chars().take(16) {
            match ch {
                '+' => on = true,
                '-' => on = false,
                'i' | 'w' => {
                    let has = self.modes.contains(ch);
                    if on != has {
                        if on {
                            self.modes.push(ch);
                        } else {
                            self.modes.retain(|c| c != ch);
                        }
                        let s = if on { '+' } else { '-' };
                        if s != sign {
                            changed.push(s);
                            sign = s;
                        }
                        changed.push(ch);
                    }
                }
                _ => self.send(num("501", me, ":Unknown MODE flag")),
            }
        }
        if !changed.is_empty() {
            self.send(line(&user(me), &format!("MODE {me} :{changed}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_codes_are_stripped() {
        assert_eq!(
            strip_formatting("\x02bold\x02 \x0304,12red\x03 x\x1funder"),
            "bold red xunder"
        );
        assert_eq!(strip_formatting("\x03,x"), ",x");
        assert_eq!(strip_formatting("\x04ff00ffhex"), "hex");
    }

    #[test]
    fn reply_tokens_are_one_word() {
        assert_eq!(tok("a b"), "a");
        assert_eq!(tok(""), "*");
        assert_eq!(tok(&"é".repeat(40)).len(), 64);
    }

    #[test]
    fn caps_pick_one_of_four_encodings() {
        let mut c = Caps::default();
        assert_eq!(c.protocol(), Protocol::Irc);
        let m = Message::parse(b"CAP REQ :server-time away-notify echo-message").unwrap();
        assert!(cap(&m, "*", &mut c).contains("ACK"));
        assert_eq!(c.protocol(), Protocol::IrcTimeAway);
        assert_eq!(c.echo(), Echo::Talk);
        let m = Message::parse(b"CAP REQ :sasl").unwrap();
        assert!(cap(&m, "*", &mut c).contains("NAK :sasl"));
    }
}
