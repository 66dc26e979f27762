//! `sockit chat`: a multi-user line chat. The hub (rooms, members, fan-out),
//! the session (one client's socket), the protocol (framing, commands, line
//! formats), the sanitizer (text safe for terminals) and the operator console;
//! and the client (`chat join`): server lines as events, and its I/O.

pub mod client;
pub mod console;
pub mod event;
pub mod front;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod sanitize;
pub mod server;
pub mod session;
