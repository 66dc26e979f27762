//! sockit: a socket toolkit. Client and server over every socket kind, in one
//! library and one binary.
//!
//! # Layout
//! - [`cli`]: clap argument groups shared by subcommands, and value parsers.
//! - [`cmd`]: the top-level parser, and one module per subcommand (`connect`, `listen`,
//!   `chat`, `http`, `ping`), each `Args` + `run`. The rest of the library never imports
//!   from `cmd`.
//! - [`error`]: the error type and the exit code of each error class.
//! - [`endpoint`]: endpoint strings (`tcp://`, `udp://`, `unix-seqpacket:`...) and resolution.
//! - [`sock`]: socket creation and options on socket2 (bind, listen, connect, setsockopt).
//! - [`dial`]: endpoint to connected [`conn::Conn`], TLS included.
//! - [`conn`]: a connected socket of any kind, split into reader and writer halves.
//! - [`tls`]: rustls client and server configs, self-signed certificates, pinning.
//! - [`shutdown`]: the shutdown token each command makes and passes down (signals, races).
//! - [`relay`]: stdin/stdout to and from a connection: splice fast path, hex dump, half-close.
//! - [`http`]: HTTP/1.1 client: URLs, requests, sans-IO response parser, decoding, pool,
//!   redirects, and the transfer engine ([`http::client`]) with its output thread.
//! - [`serve`]: per-connection services for `listen`: stdio, greet, echo, broker, exec.
//! - [`chat`]: the chat server (hub, sessions, protocol, sanitizer, console) and client.
//! - [`icmp`]: ICMP echo for `ping`: packets, checksums, bookkeeping, raw and datagram
//!   sockets, and the send/receive loop ([`icmp::pinger`]).

pub mod chat;
pub mod cli;
pub mod cmd;
pub mod conn;
pub mod dial;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod icmp;
pub mod relay;
pub mod serve;
pub mod shutdown;
pub mod sock;
pub mod tls;
pub(crate) mod util;
