#![warn(missing_docs)]
//! sockit: a socket toolkit. Client and server over every socket kind, in one
//! library and one binary.
//!
//! # Layout
//! The public modules are what a program embedding sockit uses; the others
//! (`cli`, `sock`, `icmp`, `util`) are internal.
//! - [`endpoint`]: endpoint strings (`tcp://`, `udp://`, `unix-seqpacket:`...) and resolution.
//! - [`dial`]: endpoint to connected [`conn::Conn`], TLS included; callers race it
//!   against a [`shutdown::Shutdown`].
//! - [`proxy`]: proxy URLs (`-x`), the SOCKS and HTTP CONNECT handshakes, `no_proxy`.
//! - [`conn`]: a connected socket of any kind, split into reader and writer halves.
//! - [`tls`]: rustls client and server configs, self-signed certificates, pinning.
//! - [`shutdown`]: the shutdown value each command makes and passes down (signals, races).
//! - [`relay`]: stdin/stdout to and from a connection: splice fast path, hex dump, half-close.
//! - [`forward`]: the two-endpoint relay (port forward) of `relay`.
//! - [`serve`]: `listen`'s side: binding, the one accept loop (`serve::accept`, shared with
//!   the chat), access lists, TLS handshakes, and the per-connection services (stdio,
//!   greet, echo, broker, exec) and datagram server.
//! - [`http`]: HTTP/1.1 client: URLs, requests, the sans-IO response parser, decoding, the
//!   connection pool, redirects, and the transfer engine ([`http::client`]).
//! - [`chat`]: the chat server ([`chat::server`]: listeners, client cap, shutdown) over the
//!   hub (`chat::hub`: rooms, members, fan-out of structured events) and its front-ends
//!   (`chat::front`: one per protocol), history ([`chat::history`]: SQLite, one writer
//!   thread, cursors), sessions, line protocol, sanitizer and console; and the client ([`chat::client`], `chat join`).
//! - [`error`]: the error type and the exit code of each error class.
//! - [`cmd`]: the top-level parser, and one module per subcommand (`connect`, `listen`,
//!   `relay`, `chat`, `http`, `ping`), each `Args` + `run`. The rest of the library never imports
//!   from `cmd`, and `cmd` files do not import each other.
//! - `cli` (internal): clap argument groups shared by subcommands, and value parsers.
//! - `sock` (internal): socket creation and options on socket2 (bind, listen, connect,
//!   setsockopt, Unix paths, message sockets); [`raise_nofile_limit`] is re-exported.
//! - `icmp` (internal): ICMP echo for `ping`: packets, checksums, bookkeeping, raw and
//!   datagram sockets, and the send/receive loop (`icmp::pinger`).
//! - `util` (internal): one copy of each small helper (poison-ignoring lock, optional
//!   deadline sleep, uninitialised-buffer view).

pub mod chat;
pub(crate) mod cli;
// The flags' doc comments are clap help text, not rustdoc: `[::]:PORT` is not a link.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
pub mod cmd;
pub mod conn;
pub mod dial;
pub mod endpoint;
pub mod error;
pub mod forward;
pub mod http;
pub(crate) mod icmp;
pub mod proxy;
pub mod relay;
pub mod serve;
pub mod shutdown;
pub(crate) mod sock;
pub mod tls;

pub use sock::raise_nofile_limit;
pub(crate) mod util;
