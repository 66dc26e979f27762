//! `sockit chat`: a multi-user chat. The hub (rooms, members, nicks, fan-out
//! of structured events), the front-ends (one per protocol: input to hub
//! commands, events to bytes), the session (one line client's socket), the
//! line grammar (framing, commands, line formats), the sanitizer (text safe
//! for terminals) and the operator console; and the client (`chat join`):
//! server lines as events, and its I/O.

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
