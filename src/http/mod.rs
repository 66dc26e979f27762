//! An HTTP/1.1 client on sockit's own sockets: URLs, request writing, the sans-IO
//! response parser, body decoding, connection reuse and redirects.
//!
//! # Layout
//! - [`client`]: the transfer engine: fetch a URL, follow redirects, reuse connections.
//! - [`parse`]: response parser and RFC 9112 body framing (bytes in, events out).
//! - [`request`]: the request to send, and its bytes on the wire.
//! - [`target`]: URL handling (default scheme, IDNA, `Host`, request target, `-O` names).
//! - [`redirect`]: what a 3xx turns the next request into.
//! - `decode`: content and transfer decoding (gzip, deflate, brotli) as the body streams.
//! - [`pool`]: new connections through [`crate::dial`] (TCP or Unix, TLS with ALPN), and one idle connection per origin.
//! - `exchange`: one request/response over a pooled connection, the body piece by piece.
//! - [`cookie`]: the cookie engine (RFC 6265 rules, curl's Netscape jar format).
//! - [`multipart`]: `multipart/form-data` bodies for `-F`.
//! - [`netrc`]: `.netrc` credentials.
//! - `writer`: the thread that decodes bodies and writes them to stdout or files.
//!
//! Nothing here prints or decides exit codes; `cmd::http` does. Sockets come from
//! `sock` and TLS from `tls`; this module only moves HTTP over them.

pub mod client;
pub mod cookie;
pub(crate) mod decode;
pub(crate) mod exchange;
pub mod multipart;
pub mod netrc;
pub mod parse;
pub mod pool;
pub mod redirect;
pub mod request;
pub mod target;
pub(crate) mod writer;

use std::fmt;

/// User or peer text for a message or a trace line, made safe for a terminal by
/// the crate's one sanitizer.
pub(crate) fn shown(text: &[u8]) -> String {
    crate::chat::sanitize::sanitize(text)
}

/// What kind of HTTP failure happened; each has a curl-compatible exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The URL's scheme is not `http` or `https` (curl 1).
    UnsupportedProtocol,
    /// The URL could not be parsed (curl 3).
    BadUrl,
    /// The response broke the HTTP grammar or framing rules (curl 8).
    Malformed,
    /// The connection closed before the body was complete (curl 18).
    Partial,
    /// `-C`: the server ignored the range, so the download cannot resume (curl 33).
    RangeError,
    /// `-f`: the server answered with status 400 or above (curl 22).
    HttpStatus,
    /// Writing the output (stdout or a file) failed (curl 23).
    Write,
    /// Reading a local file (`-d @file`) failed (curl 26).
    ReadFile,
    /// `-m/--max-time` expired (curl 28).
    Timeout,
    /// More redirects than `--max-redirs` (curl 47).
    TooManyRedirects,
    /// The server closed without sending anything (curl 52).
    EmptyReply,
    /// Sending the request failed (curl 55).
    Send,
    /// Receiving the response failed (curl 56).
    Recv,
    /// The body's content or transfer coding is unknown or corrupt (curl 61).
    BadEncoding,
    /// The response head exceeded a limit (curl 100).
    TooLarge,
}

impl Kind {
    /// The exit code, numbered like curl's.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::UnsupportedProtocol => 1,
            Kind::BadUrl => 3,
            Kind::Malformed => 8,
            Kind::Partial => 18,
            Kind::HttpStatus => 22,
            Kind::RangeError => 33,
            Kind::Write => 23,
            Kind::ReadFile => 26,
            Kind::Timeout => 28,
            Kind::TooManyRedirects => 47,
            Kind::EmptyReply => 52,
            Kind::Send => 55,
            Kind::Recv => 56,
            Kind::BadEncoding => 61,
            Kind::TooLarge => 100,
        }
    }
}

/// An HTTP-level failure: its kind, what was being done, and why.
#[derive(Debug)]
pub struct Error {
    /// The kind (decides the exit code).
    pub kind: Kind,
    /// What was being attempted or what went wrong, e.g. "malformed response from 127.0.0.1:80".
    pub what: String,
    /// The cause, shown in parentheses; may be empty.
    pub cause: String,
}

impl Error {
    /// Builds an error.
    pub fn new(kind: Kind, what: impl Into<String>, cause: impl Into<String>) -> Self {
        Error {
            kind,
            what: what.into(),
            cause: cause.into(),
        }
    }

    /// Turns a parser error into an HTTP error about the response from `peer`.
    pub fn from_parse(e: &parse::ParseError, peer: &str) -> Self {
        use parse::ParseError as P;
        let kind = match e {
            P::Malformed { .. } => Kind::Malformed,
            P::HeadTooLarge { .. } | P::TooManyHeaders { .. } | P::TooManyInterim { .. } => {
                Kind::TooLarge
            }
            P::Truncated { .. } => Kind::Partial,
            P::Empty => Kind::EmptyReply,
        };
        let what = match kind {
            Kind::Partial => format!("incomplete response from {peer}"),
            Kind::EmptyReply => format!("no response from {peer}"),
            _ => format!("malformed response from {peer}"),
        };
        Error::new(kind, what, e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cause.is_empty() {
            f.write_str(&self.what)
        } else {
            write!(f, "{} ({})", self.what, self.cause)
        }
    }
}

impl std::error::Error for Error {}

impl crate::error::ProtocolError for Error {
    fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self.kind {
            Kind::BadUrl | Kind::UnsupportedProtocol => Class::Usage,
            Kind::Timeout => Class::Timeout,
            _ => Class::Io,
        }
    }
}

impl From<Error> for crate::error::Error {
    fn from(e: Error) -> Self {
        crate::error::Error::Protocol(Box::new(e))
    }
}

/// Every HTTP exit code with its meaning, for `--help` and the README.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "success (an HTTP error status is success too, unless -f)",
    ),
    (1, "unsupported protocol (only http:// and https://)"),
    (2, "usage error: bad flag or value"),
    (3, "malformed URL"),
    (5, "the proxy's host name could not be resolved"),
    (6, "host name could not be resolved"),
    (7, "could not connect (refused, unreachable)"),
    (8, "malformed response (what and at which byte)"),
    (18, "partial body: the connection closed before the end"),
    (22, "-f, --fail-with-body: the server answered 400 or above"),
    (23, "cannot write the output"),
    (
        26,
        "cannot read a local file (-d @file, -F, -T, --netrc, --cacert)",
    ),
    (28, "timed out (--connect-timeout, -m)"),
    (
        33,
        "-C: the server does not support byte ranges, cannot resume",
    ),
    (35, "TLS handshake failed"),
    (47, "too many redirects (--max-redirs)"),
    (52, "empty reply from server"),
    (55, "failed sending the request"),
    (
        56,
        "failed receiving the response (reset), or the proxy refused CONNECT",
    ),
    (60, "the server certificate could not be verified"),
    (
        61,
        "unknown or corrupt content/transfer encoding, or more codings than --max-codings",
    ),
    (
        97,
        "a SOCKS proxy refused (credentials, target), or a proxy's reply was bad",
    ),
    (
        100,
        "response head over a limit (--max-header-bytes, --max-headers)",
    ),
];
