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
    encode(ev, false, out)
}

/// Appends `ev`, replayed from history: the same event with `"history": true`.
pub fn encode_history(ev: &RoomEvent, out: &mut Vec<u8>) {
    encode(ev, true, out)
}

fn encode(ev: &RoomEvent, history: bool, out: &mut Vec<u8>) {
    let from = &*ev.from;
    let in_room = ev.seq > 0;
    let mut wire = |kind: WireKind<'_>, room: Option<&str>, out: &mut Vec<u8>| {
        WireEvent {
            kind,
            room,
            seq: if in_room { Some(ev.seq) } else { None },
            prev: in_room.then_some(ev.prev),
            ts_ms: ev.ts,
            history,
        }
        .encode(out)
    };
    let room = Some(&*ev.room);
    match &ev.kind {
        EventKind::Notice(Notice::Cursor { room, epoch, seq }) => WireEvent {
            kind: WireKind::Cursor { epoch },
            room: Some(room),
            seq: Some(*seq),
            prev: None,
            ts_ms: ev.ts,
            history: false,
        }
        .encode(out),
        EventKind::Notice(Notice::Gap { room, reason }) => {
            let text = format!("gap: reload {room} ({reason})");
            wire(WireKind::Gap { text: &text }, Some(room), out)
        }
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

/// Appends a room batch as web members receive it (see
/// [`Protocol::encode_batch`](super::Protocol::encode_batch)): each event as
/// [`encode_event`] does, except that two or more joins in a row become one
/// `joins` object.
pub fn encode_batch(events: &[RoomEvent], out: &mut Vec<u8>, ends: &mut Vec<usize>) {
    let mut i = 0;
    while i < events.len() {
        let run = events[i..]
            .iter()
            .take_while(|e| matches!(e.kind, EventKind::Join) && e.seq > 0)
            .count();
        if run < 2 {
            encode_event(&events[i], out);
            ends.push(out.len());
            i += 1;
            continue;
        }
        let joins = &events[i..i + run];
        let start = out.len();
        let nicks: Vec<&str> = joins.iter().map(|e| &*e.from).collect();
        let (first, last) = (&joins[0], &joins[run - 1]);
        WireEvent {
            kind: WireKind::Joins {
                nicks: &nicks,
                last_seq: last.seq,
            },
            room: Some(&first.room),
            seq: Some(first.seq),
            prev: Some(first.prev),
            ts_ms: last.ts,
            history: false,
        }
        .encode(out);
        ends.extend(std::iter::repeat_n(start, run - 1));
        ends.push(out.len());
        i += run;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::front::Protocol;
    use serde_json::Value;
    use std::sync::Arc;

    fn ev(seq: u64, from: &str, kind: EventKind) -> RoomEvent {
        RoomEvent {
            room: Arc::from("lobby"),
            seq,
            prev: 0,
            ts: 951_782_400_123 + seq,
            from: Arc::from(from),
            kind,
        }
    }

    /// The JSON objects in `bytes` (unmasked text frames, short lengths).
    fn objects(mut b: &[u8]) -> Vec<Value> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let (len, off) = match b[1] {
                126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                n => (n as usize, 2),
            };
            v.push(serde_json::from_slice(&b[off..off + len]).unwrap());
            b = &b[off + len..];
        }
        v
    }

    #[test]
    fn a_run_of_joins_is_one_object_and_arrivals_get_the_whole_run() {
        let events = [
            ev(1, "ann", EventKind::Message { text: "hi".into() }),
            ev(2, "bob", EventKind::Join),
            ev(3, "cat", EventKind::Join),
            ev(4, "dan", EventKind::Join),
            ev(5, "ann", EventKind::Message { text: "yo".into() }),
            ev(6, "eve", EventKind::Join),
        ];
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        Protocol::Web.encode_batch(&events, &mut out, &mut ends);
        assert_eq!(ends.len(), events.len());
        let all = objects(&out);
        assert_eq!(all.len(), 4, "{all:?}");
        assert_eq!(all[1]["type"], "joins");
        assert_eq!(all[1]["nicks"], serde_json::json!(["bob", "cat", "dan"]));
        assert_eq!(
            (all[1]["seq"].as_u64(), all[1]["last_seq"].as_u64()),
            (Some(2), Some(4))
        );
        assert_eq!(all[1]["room"], "lobby");
        // A single join stays a `join`.
        assert_eq!(all[3]["type"], "join");
        assert_eq!(all[3]["nick"], "eve");
        // Whoever arrived at bob's, cat's or dan's join gets the whole run.
        let at = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
        assert_eq!(at(1), at(2));
        assert_eq!(at(2), at(3));
        assert_eq!(objects(&out[at(2)..])[0]["type"], "joins");
        assert_eq!(objects(&out[at(4)..])[0]["text"], "yo");
        assert!(ends.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*ends.last().unwrap(), out.len());
        // The line protocol is untouched: one line per join.
        let (mut line, mut line_ends) = (Vec::new(), Vec::new());
        Protocol::Line.encode_batch(&events, &mut line, &mut line_ends);
        let text = String::from_utf8(line).unwrap();
        assert_eq!(text.matches(" joined ").count(), 4, "{text}");
    }

    #[test]
    fn a_join_storm_costs_a_name_per_join() {
        let events: Vec<RoomEvent> = (1..=64)
            .map(|i| ev(i, &format!("guest{i:05}"), EventKind::Join))
            .collect();
        let (mut one_by_one, mut coalesced) = (Vec::new(), Vec::new());
        for e in &events {
            encode_event(e, &mut one_by_one);
        }
        Protocol::Web.encode_batch(&events, &mut coalesced, &mut Vec::new());
        assert!(
            coalesced.len() * 4 < one_by_one.len(),
            "{} vs {}",
            coalesced.len(),
            one_by_one.len()
        );
    }
}
