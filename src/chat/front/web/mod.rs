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

// The hub wiring (a web member's task, its outbox, mapping hub events onto
// `WireEvent`) lands with the protocol-neutral hub; until then only the tests
// use these items.
#![allow(dead_code)]

pub mod http;
pub mod json;
pub mod ws;

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
