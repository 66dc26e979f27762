//! One connection of the `--web` listener: HTTP (the page, or the WebSocket
//! handshake), then a chat member of [`Protocol::Web`].
//!
//! After the upgrade the connection is an ordinary chat member: the same
//! [`session::split`] halves, the same outbox (the hub writes the shared
//! frames of each batch straight to the socket), the same flood control and
//! the same writer ([`session::serve_member`]). Only the reading differs:
//! [`WsReader`] turns bytes into messages (with `--max-line` as the message
//! limit), each message is one JSON command ([`WebCommand`]), and what the
//! reader must send back (pongs, the close reply, a failure's close frame)
//! goes into the member's outbox in the order it arose.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::http::{echo_member, serve_web_conn, WebConfig, WebMember};
use super::json::{WebCommand, WireEvent, WireKind};
use super::ws::{status, WsInput, WsReader};
use crate::chat::front::Protocol;
use crate::chat::hub::{now_ms, ChatHub, ChatMember, Flow, HubCommand, Refusal};
use crate::chat::session::{self, Flood, FloodVerdict, SessionLimits};
use crate::conn::{BoxStream, Conn, Link};

/// How the `--web` listener serves.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// HTTP and handshake rules (origins, head size, handshake time).
    pub config: WebConfig,
    /// `/ws` echoes messages instead of joining the chat (the Autobahn
    /// conformance cases; hidden `--web-echo`).
    pub echo: bool,
}

/// Serves one admitted connection of the `--web` listener until it ends.
pub async fn run(
    conn: Conn,
    web: &WebSettings,
    hub: Arc<ChatHub>,
    limits: &SessionLimits,
    stop_reading: CancellationToken,
    hard_stop: CancellationToken,
) {
    let remote: SocketAddr = conn
        .peer
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let Conn {
        link,
        local,
        peer,
        proto,
        peer_cert,
    } = conn;
    let rebuild = |link: Link| Conn {
        link,
        local: local.clone(),
        peer: peer.clone(),
        proto: proto.clone(),
        peer_cert: peer_cert.clone(),
    };
    let cfg = &web.config;
    let served = match link {
        Link::Tcp(s) => {
            serve_web_conn(s, remote, cfg, |m: WebMember<tokio::net::TcpStream>| {
                tracing::info!("{}: WebSocket member (origin {})", m.remote, m.origin);
                let (stream, ahead) = (m.stream, m.read_ahead);
                member(
                    rebuild(Link::Tcp(stream)),
                    ahead,
                    web.echo,
                    hub.clone(),
                    limits,
                    stop_reading.clone(),
                    hard_stop.clone(),
                )
            })
            .await
        }
        Link::Stream(s) => {
            serve_web_conn(s, remote, cfg, |m: WebMember<BoxStream>| {
                tracing::info!("{}: WebSocket member (origin {})", m.remote, m.origin);
                let (stream, ahead) = (m.stream, m.read_ahead);
                member(
                    rebuild(Link::Stream(stream)),
                    ahead,
                    web.echo,
                    hub.clone(),
                    limits,
                    stop_reading.clone(),
                    hard_stop.clone(),
                )
            })
            .await
        }
        _ => {
            tracing::info!("{peer}: the web front-end needs TCP");
            return;
        }
    };
    if let Err(e) = served {
        tracing::debug!("{peer}: {e}");
    }
}

/// A connection that completed the WebSocket handshake: a chat member (or,
/// with `echo`, the Autobahn echo endpoint).
async fn member(
    conn: Conn,
    read_ahead: Vec<u8>,
    echo: bool,
    hub: Arc<ChatHub>,
    limits: &SessionLimits,
    stop_reading: CancellationToken,
    hard_stop: CancellationToken,
) {
    let peer = conn.peer.clone();
    if echo {
        let r = match conn.link {
            Link::Tcp(s) => echo_member(web_member(s, read_ahead, &peer), limits.max_line).await,
            Link::Stream(s) => echo_member(web_member(s, read_ahead, &peer), limits.max_line).await,
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!("{peer}: {}", crate::error::describe_io(&e));
        }
        return;
    }
    let Some((mut reader, mut writer, m)) =
        session::enter(conn, &hub, Protocol::Web, stop_reading, hard_stop).await
    else {
        return;
    };
    let read = read_loop(&mut reader, &hub, &m, limits, read_ahead);
    session::serve_member(&hub, &m, &mut writer, limits, read).await;
}

fn web_member<T>(stream: T, read_ahead: Vec<u8>, peer: &str) -> WebMember<T> {
    WebMember {
        stream,
        read_ahead,
        remote: peer
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        origin: String::new(),
    }
}

/// What one wait for input brought.
enum Got {
    Data,
    Eof,
    Idle,
}

/// How a member's reading ended, decided while feeding the reader.
enum End {
    /// The peer closed, or broke the protocol: the reason to announce.
    Gone(String),
    /// The member asked to leave (`quit`): close normally.
    Quit(String),
    /// Flood control gave up on the member.
    Flooding,
}

/// Reads WebSocket messages into hub commands. Returns the reason to
/// announce, or `None` when the hub removed the member (kick, shutdown: the
/// close frame came with the hub's last event).
async fn read_loop(
    reader: &mut session::Reader,
    hub: &ChatHub,
    m: &ChatMember,
    limits: &SessionLimits,
    read_ahead: Vec<u8>,
) -> Option<String> {
    let mut ws = WsReader::with_read_ahead(Vec::new(), limits.max_line);
    let mut flood = Flood::new(limits);
    let mut out = Vec::new();
    let mut end: Option<End> = None;
    let mut last_input = Instant::now();
    let mut first = Some(read_ahead);
    loop {
        let mut on_input = |input: WsInput, out: &mut Vec<u8>| {
            if end.is_some() {
                return;
            }
            match input {
                WsInput::Text(text) => {
                    // What the reader queued so far (pongs) goes first.
                    flush(m, out);
                    end = command(hub, m.id, &text, limits, &mut flood, out);
                }
                WsInput::Closed { .. } => end = Some(End::Gone("connection closed".into())),
                WsInput::Failed { code, reason } => {
                    tracing::debug!("web member {}: {reason}", m.id);
                    end = Some(End::Gone(failure(code).into()));
                }
                WsInput::Pong | WsInput::Binary(_) => {}
            }
        };
        if let Some(ahead) = first.take() {
            if !ahead.is_empty() {
                ws.feed(&ahead, &mut out, &mut on_input);
            }
        } else {
            let idle_at = limits.idle.map(|d| last_input + d);
            let read = reader.read_with(|data| ws.feed(data, &mut out, &mut on_input));
            let got = tokio::select! {
                r = read => match r {
                    Ok(0) => Got::Eof,
                    Ok(_) => Got::Data,
                    Err(e) => return Some(crate::error::describe_io(&e)),
                },
                _ = sleep_until(idle_at) => Got::Idle,
                _ = m.removed.cancelled() => return None,
            };
            if let Got::Idle = got {
                ws.close(status::POLICY, "idle timeout", &mut out);
                flush(m, &mut out);
                return Some("idle timeout".into());
            }
            let eof = matches!(got, Got::Eof);
            last_input = Instant::now();
            if eof && end.is_none() {
                end = Some(End::Gone("connection closed".into()));
            }
        }
        match end.take() {
            None => {}
            Some(End::Gone(reason)) => {
                flush(m, &mut out);
                return Some(reason);
            }
            Some(End::Quit(reason)) => {
                flush(m, &mut out);
                ws.close(status::NORMAL, "bye", &mut out);
                flush(m, &mut out);
                return Some(reason);
            }
            Some(End::Flooding) => {
                flush(m, &mut out);
                ws.close(status::POLICY, "flooding", &mut out);
                flush(m, &mut out);
                return Some("flooding".into());
            }
        }
        flush(m, &mut out);
        // Read no faster than the hub fans out, and let other readers add
        // their lines to this turn's fan-out before reading more.
        hub.backpressure().await;
        tokio::task::yield_now().await;
    }
}

/// Sends what the reader produced (pongs, a close frame, an error event)
/// through the member's outbox, behind anything the hub queued before.
fn flush(m: &ChatMember, out: &mut Vec<u8>) {
    if !out.is_empty() {
        let _ = m.out.push(&[Bytes::from(std::mem::take(out))]);
    }
}

/// The reason announced when a member's WebSocket failed with `code`.
fn failure(code: u16) -> &'static str {
    match code {
        status::UNSUPPORTED => "sent binary data",
        status::INVALID_UTF8 => "sent invalid UTF-8",
        status::TOO_BIG => "sent a message over --max-line",
        _ => "WebSocket protocol error",
    }
}

/// One text message: flood control, then the command it carries.
fn command(
    hub: &ChatHub,
    id: u64,
    text: &str,
    limits: &SessionLimits,
    flood: &mut Flood,
    out: &mut Vec<u8>,
) -> Option<End> {
    match flood.judge() {
        FloodVerdict::Pass => {}
        FloodVerdict::Drop { warn } => {
            if warn {
                hub.refuse(id, Refusal::SlowDown(limits.rate));
            }
            return None;
        }
        FloodVerdict::Disconnect => return Some(End::Flooding),
    }
    let cmd = match WebCommand::parse(text) {
        Ok(c) => c,
        Err(e) => {
            let text = e.to_string();
            WireEvent {
                kind: WireKind::Error { text: &text },
                room: None,
                seq: None,
                prev: None,
                ts_ms: now_ms(),
                history: false,
            }
            .encode(out);
            return None;
        }
    };
    let cmd = match cmd {
        WebCommand::Say(t) => HubCommand::Say(t),
        WebCommand::Me(t) => HubCommand::Action(t),
        WebCommand::Nick(n) => HubCommand::Nick(n),
        WebCommand::Join(r) => HubCommand::Join(r),
        WebCommand::Msg { to, text } => HubCommand::Msg { to, text },
        WebCommand::Who => HubCommand::Who,
        WebCommand::Rooms => HubCommand::Rooms,
        WebCommand::Quit(r) => HubCommand::Quit(r),
        WebCommand::History(n) => HubCommand::History(n),
        WebCommand::Resume { room, epoch, after } => HubCommand::Resume { room, epoch, after },
    };
    match hub.command(id, cmd) {
        Flow::Continue => None,
        Flow::Quit(reason) => Some(End::Quit(reason)),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
