//! The web front-end (`chat serve --web ADDR`): the page, HTTP and WebSocket
//! on one listener, JSON events.
//!
//! - [`http`]: hyper serves the embedded page and upgrades `/ws`, then hands
//!   the raw stream to the chat ([`http::serve_web_conn`] -> [`http::WebMember`]).
//! - [`ws`]: WebSocket frames, sans-IO: [`ws::encode_text`] for the shared
//!   fan-out bytes, [`ws::WsReader`] for what a member sends.
//! - [`json`]: the wire format, [`json::WebCommand`] in and [`json::WireEvent`] out.
//! - [`page`]: the page itself (HTML, script, style), embedded at build time.
//!
//! Wiring, per accepted connection of the `--web` listener (TCP or TLS stream):
//!
//! ```text
//! serve_web_conn(stream, peer, &cfg, |m: WebMember<S>| async move {
//!     let mut reader = WsReader::with_read_ahead(m.read_ahead, max_line);
//!     // register m.stream's write half with the hub (its Outbox), then loop:
//!     //   read bytes -> reader.feed(&bytes, &mut out, |input, out| match input {
//!     //       WsInput::Text(t) => match WebCommand::parse(&t) {
//!     //           Ok(cmd) => /* hub command; sanitize peer text as the line protocol does */,
//!     //           Err(e) => WireEvent { kind: WireKind::Error { text: &e.to_string() }, .. }.encode(out),
//!     //       },
//!     //       WsInput::Closed { .. } | WsInput::Failed { .. } => /* leave after flushing out */,
//!     //       WsInput::Pong | WsInput::Binary(_) => {}
//!     //   });
//!     //   push `out` (pongs, close, errors) into the member's Outbox, in that order.
//!     // Fan-out: per batch, WireEvent::encode each event into one Vec<u8>, shared
//!     // by every web member. Kick/shutdown: reader.close(status::POLICY / GOING_AWAY, ..).
//! }).await
//! ```

pub mod http;
pub mod json;
pub mod session;
pub mod ws;

use crate::chat::front::line;
use crate::chat::hub::{EventKind, Notice, Refusal, RoomEvent};
use json::{RoomCount, WireEvent, WireKind};

/// Appends `ev` as a web member receives it: one complete, unmasked
/// WebSocket text frame per JSON object (see [`json`]). A kick and the
/// server's shutdown also append the close frame (1008, 1001) after their
/// notice, so the close follows the last event on the wire.
pub fn encode_event(ev: &RoomEvent, out: &mut Vec<u8>) {
    let from = &*ev.from;
    let in_room = ev.seq > 0;
    let mut wire = |kind: WireKind<'_>, room: Option<&str>, out: &mut Vec<u8>| {
        WireEvent {
            kind,
            room,
            seq: if in_room { Some(ev.seq) } else { None },
            ts_ms: ev.ts,
            history: false,
        }
        .encode(out)
    };
    let room = Some(&*ev.room);
    match &ev.kind {
        EventKind::Message { text } => wire(WireKind::Message { nick: from, text }, room, out),
        EventKind::Action { text } => wire(WireKind::Action { nick: from, text }, room, out),
        EventKind::Private { to, text, echo } => match echo {
            false => wire(WireKind::Private { from, text }, None, out),
            true => wire(WireKind::PrivateSent { to, text }, None, out),
        },
        EventKind::Join => wire(WireKind::Join { nick: from }, room, out),
        EventKind::Leave { reason } => wire(WireKind::Leave { nick: from, reason }, room, out),
        EventKind::Nick { new } => wire(WireKind::Nick { old: from, new }, room, out),
        EventKind::Part { reason } => wire(WireKind::Leave { nick: from, reason }, room, out),
        EventKind::Kick { .. }
        | EventKind::Topic { .. }
        | EventKind::Mode(_)
        | EventKind::Away { .. }
        | EventKind::Styled { .. }
        | EventKind::PrivateStyled { .. } => system_lines(ev, &mut wire, out),
        // Client-only tags are for IRC clients that take them.
        EventKind::Tagged { event, .. } => encode_event(
            &RoomEvent {
                kind: (**event).clone(),
                ..ev.clone()
            },
            out,
        ),
        EventKind::TagsOnly { .. } => {}
        EventKind::Notice(Notice::Welcome { nick, room, .. }) => {
            wire(WireKind::Welcome { nick }, Some(room), out);
            system_lines(ev, &mut wire, out);
        }
        EventKind::Notice(Notice::Who { room, nicks, .. }) => {
            wire(WireKind::Members { nicks }, Some(room), out)
        }
        EventKind::Notice(Notice::Rooms { rooms, .. }) => {
            let rooms: Vec<RoomCount> = rooms
                .iter()
                .map(|(name, members)| RoomCount {
                    name: name.clone(),
                    members: *members,
                })
                .collect();
            wire(WireKind::Rooms { rooms: &rooms }, None, out)
        }
        EventKind::Notice(Notice::ShuttingDown) => {
            system_lines(ev, &mut wire, out);
            ws::encode_close(ws::status::GOING_AWAY, "server shutting down", out);
        }
        EventKind::Notice(_) => system_lines(ev, &mut wire, out),
        EventKind::Error(e @ Refusal::Kicked { .. }) => {
            let text = e.to_string();
            wire(WireKind::Error { text: &text }, None, out);
            ws::encode_close(ws::status::POLICY, &text, out);
        }
        EventKind::Error(e) => wire(
            WireKind::Error {
                text: &e.to_string(),
            },
            None,
            out,
        ),
    }
}

/// A notice as `system` events, one per line of its line-protocol text (the
/// same English everywhere), without the line protocol's `* `.
fn system_lines(
    ev: &RoomEvent,
    wire: &mut impl FnMut(WireKind<'_>, Option<&str>, &mut Vec<u8>),
    out: &mut Vec<u8>,
) {
    let mut lines = Vec::new();
    line::encode_event(ev, &mut lines);
    for l in String::from_utf8_lossy(&lines).lines() {
        let text = l.strip_prefix("* ").unwrap_or(l);
        wire(WireKind::System { text }, None, out);
    }
}

/// The page, embedded in the binary: no build step, no CDN, works offline.
pub mod page {
    /// `GET /`.
    pub const INDEX_HTML: &str = include_str!("page/index.html");
    /// `GET /chat.js`.
    pub const CHAT_JS: &str = include_str!("page/chat.js");
    /// `GET /chat.css`.
    pub const CHAT_CSS: &str = include_str!("page/chat.css");
    /// `GET /favicon.svg` (and `/favicon.ico`, which browsers ask for anyway).
    pub const FAVICON_SVG: &str = include_str!("page/favicon.svg");
}
