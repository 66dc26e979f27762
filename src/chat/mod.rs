//! `sockit chat`: a multi-user chat. The hub (rooms, members, nicks, fan-out
//! of structured events), the front-ends (one per protocol: input to hub
//! commands, events to bytes), the session (one line client's socket), the
//! line grammar (framing, commands, line formats), the sanitizer (text safe
//! for terminals) and the operator console; and the client (`chat join`):
//! server lines as events, and its I/O.

pub mod client;
pub mod cluster;
pub(crate) mod console;
pub(crate) mod event;
pub(crate) mod front;
pub mod history;
pub(crate) mod hub;
pub(crate) mod outbox;
pub(crate) mod protocol;
pub(crate) mod sanitize;
pub mod server;
pub(crate) mod session;

pub use front::Protocol;
pub use session::SessionLimits;
