//! Error types and exit codes, in one place.
//!
//! The library returns [`Error`]; only `main` turns it into words on stderr and an
//! exit status. Each variant belongs to one [`Class`], and each class has its own
//! exit code so scripts can tell "refused" from "timed out" from "bad flags".

use std::fmt;
use std::io;
use std::time::Duration;

/// What kind of failure happened; decides the process exit code. This enum
/// is the numbering (each variant's value is its exit code): the `--help`
/// table and the README's are generated from or checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// I/O failure while moving data, or anything not covered below.
    Io = 1,
    /// Bad flags or a malformed endpoint.
    Usage = 2,
    /// A host name did not resolve.
    Resolve = 3,
    /// The peer refused, or the network could not reach it.
    Refused = 4,
    /// A connect, idle or reply timeout expired.
    Timeout = 5,
    /// The local address is already in use.
    AddrInUse = 6,
    /// The operating system denied the operation (low port, file mode, raw socket).
    Permission = 7,
    /// TLS setup, handshake or certificate verification failed.
    Tls = 8,
    /// A TLS peer closed without close_notify: what arrived may be cut short.
    Truncated = 9,
    /// A proxy refused the credentials or the target, or did not speak its protocol.
    Proxy = 10,
}

impl Class {
    /// The process exit code for this class.
    pub fn exit_code(self) -> u8 {
        self as u8
    }

    /// Every class, in exit-code order (for help text and docs).
    pub const ALL: [Class; 10] = [
        Class::Io,
        Class::Usage,
        Class::Resolve,
        Class::Refused,
        Class::Timeout,
        Class::AddrInUse,
        Class::Permission,
        Class::Tls,
        Class::Truncated,
        Class::Proxy,
    ];

    /// A few words saying what the class means.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Io => "I/O error while transferring, or another runtime failure",
            Class::Usage => "usage error: bad flag or malformed endpoint",
            Class::Resolve => "host name could not be resolved",
            Class::Refused => "connection refused or network unreachable",
            Class::Timeout => "timed out (connect -w, idle -i)",
            Class::AddrInUse => "address already in use",
            Class::Permission => "permission denied",
            Class::Tls => "TLS handshake or certificate verification failed",
            Class::Truncated => "TLS peer closed without close_notify: data may be truncated",
            Class::Proxy => "proxy refused (credentials, target) or sent a bad reply",
        }
    }
}

/// Which part of TLS failed (curl, for one, numbers them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// Building the configuration: files, keys, names.
    Setup,
    /// The handshake itself (alerts, protocol errors, a closed connection).
    Handshake,
    /// The peer's certificate was not accepted (chain, name, pin, CA file).
    Certificate,
}

/// Which part of going through a proxy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFailure {
    /// The proxy's own name did not resolve (curl's exit 5).
    Resolve,
    /// The proxy refused the credentials, or wants some.
    Auth,
    /// The proxy refused the target, or could not reach it.
    Refused,
    /// The reply was not the proxy protocol, or the proxy hung up.
    Reply,
    /// An HTTP proxy answered CONNECT with this status (407: credentials).
    Status(u16),
}

/// An error from a protocol layered on the sockets (HTTP). It knows its own
/// class; the command that speaks the protocol can downcast it (see
/// [`Error::protocol`]) for a numbering of its own. This keeps `error`
/// from naming the protocol's types.
pub trait ProtocolError: std::error::Error + Send + Sync + 'static {
    /// The class, for commands that use sockit's numbering.
    fn class(&self) -> Class;
}

/// The library's error type: what was being done, and why it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or an endpoint could not be understood.
    #[error("{0}")]
    Usage(String),
    /// Name resolution failed.
    #[error("cannot resolve {host} ({})", describe_resolve(.source))]
    Resolve {
        /// The name that did not resolve.
        host: String,
        /// Resolver error.
        source: io::Error,
    },
    /// A system call failed while doing `what`.
    #[error("{what} ({})", describe_io(.source))]
    Io {
        /// What was being attempted, e.g. "cannot connect to 127.0.0.1:9".
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Something took longer than its limit.
    #[error("{what} (timed out after {})", fmt_duration(*.after))]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The limit that expired.
        after: Duration,
    },
    /// TLS configuration or handshake failure.
    #[error("{what} ({reason})")]
    Tls {
        /// What was being attempted.
        what: String,
        /// Why it failed, e.g. the certificate error.
        reason: String,
        /// Which part failed.
        failure: TlsFailure,
    },
    /// A TLS peer closed the connection without close_notify: an attacker or
    /// a crash may have cut the data short.
    #[error("connection with {peer} closed without TLS close_notify after {received} bytes received (the data may be truncated)")]
    Truncated {
        /// The peer, as `-v` shows it.
        peer: String,
        /// Bytes received before the close.
        received: u64,
    },
    /// The connection broke while data was moving: the peer reset it, or
    /// stopped reading before everything was sent. The transfer is truncated.
    #[error("connection with {peer} broke after {sent} bytes sent and {received} received ({})", describe_io(.source))]
    Transfer {
        /// The peer, as `-v` shows it.
        peer: String,
        /// Bytes handed to the socket before it broke.
        sent: u64,
        /// Bytes received before it broke.
        received: u64,
        /// The operating system's error (ECONNRESET, EPIPE...).
        source: io::Error,
    },
    /// Going through a proxy failed (`-x`).
    #[error("{what} ({reason})")]
    Proxy {
        /// What was being attempted, naming the proxy and the target.
        what: String,
        /// Why, in the proxy's words where it gave some.
        reason: String,
        /// Which part failed.
        failure: ProxyFailure,
    },
    /// A protocol layered on the sockets failed (`sockit http`).
    #[error("{0}")]
    Protocol(Box<dyn ProtocolError>),
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The class this error belongs to.
    pub fn class(&self) -> Class {
        match self {
            Error::Usage(_) => Class::Usage,
            Error::Resolve { .. } => Class::Resolve,
            Error::Timeout { .. } => Class::Timeout,
            Error::Tls { .. } => Class::Tls,
            Error::Truncated { .. } => Class::Truncated,
            Error::Io { source, .. } => io_class(source),
            Error::Transfer { .. } => Class::Io,
            Error::Proxy {
                failure: ProxyFailure::Resolve,
                ..
            } => Class::Resolve,
            Error::Proxy { .. } => Class::Proxy,
            Error::Protocol(e) => e.class(),
        }
    }

    /// The protocol error inside, when it is a `T`.
    pub fn protocol<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            Error::Protocol(e) => (&**e as &(dyn std::error::Error + 'static)).downcast_ref(),
            _ => None,
        }
    }
}

/// Convenience alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_class(e: &io::Error) -> Class {
    use io::ErrorKind as K;
    if let Some(code) = e.raw_os_error() {
        return match code {
            libc::ECONNREFUSED
            | libc::ENETUNREACH
            | libc::EHOSTUNREACH
            | libc::ECONNRESET
            | libc::ENETDOWN
            | libc::EHOSTDOWN => Class::Refused,
            libc::ETIMEDOUT => Class::Timeout,
            libc::EADDRINUSE => Class::AddrInUse,
            libc::EACCES | libc::EPERM => Class::Permission,
            libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT => Class::Usage,
            _ => Class::Io,
        };
    }
    match e.kind() {
        K::ConnectionRefused | K::ConnectionReset => Class::Refused,
        K::TimedOut => Class::Timeout,
        K::AddrInUse => Class::AddrInUse,
        K::PermissionDenied => Class::Permission,
        K::InvalidInput => Class::Usage,
        _ => Class::Io,
    }
}

/// "connection refused, ECONNREFUSED": the errno's meaning in lower case, then its name.
pub fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let name = format!("{:?}", nix::errno::Errno::from_raw(code));
            let mut text = nix::errno::Errno::from_raw(code).desc().to_string();
            if let Some(first) = text.get(0..1) {
                let lower = first.to_lowercase();
                text.replace_range(0..1, &lower);
            }
            if name.starts_with('E') && name != "UnknownErrno" {
                format!("{text}, {name}")
            } else {
                text
            }
        }
        None => {
            // Errors built by libraries (e.g. rustls inside an io::Error) carry their
            // useful text in the inner error.
            let text = match e.get_ref() {
                Some(inner) => inner.to_string(),
                None => e.to_string(),
            };
            for_people(text)
        }
    }
}

/// A library's error text as a person can use it: rustls's "peer closed
/// connection without sending TLS close_notify: https://docs.rs/..." says
/// what happened and what it means instead, and links to library API docs
/// (docs.rs) are cut off, since they explain the library, not the problem.
fn for_people(text: String) -> String {
    if text.starts_with("peer closed connection without sending TLS close_notify") {
        return "the peer closed the TCP connection without ending TLS (no close_notify: \
                what came last may be cut short)"
            .into();
    }
    match text.find("https://docs.rs/") {
        Some(at) => text[..at]
            .trim_end_matches([' ', ':', '(', '-', ';', ','])
            .to_string(),
        None => text,
    }
}

fn describe_resolve(e: &io::Error) -> String {
    // getaddrinfo failures arrive as io::Error with a message but no errno.
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    let mut text = text.to_string();
    if let Some(first) = text.get(0..1) {
        let lower = first.to_lowercase();
        text.replace_range(0..1, &lower);
    }
    text
}

/// "10s", "1.5s", "250ms".
pub fn fmt_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// Exit-code table for `--help`.
pub fn exit_code_help() -> String {
    let mut s =
        String::from("Exit status:\n  0  success (also when stdout closes early, e.g. | head)\n");
    for c in Class::ALL {
        s.push_str(&format!("  {}  {}\n", c.exit_code(), c.describe()));
    }
    s
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn library_doc_links_are_not_shown() {
        let rustls = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        let text = describe_io(&rustls);
        assert!(!text.contains("docs.rs"), "{text}");
        assert!(text.contains("close_notify"), "{text}");
        let other = io::Error::other("bad thing: https://docs.rs/x/latest/x/");
        assert_eq!(describe_io(&other), "bad thing");
    }

    use super::*;

    #[test]
    fn help_table_is_generated_from_the_classes() {
        let help = exit_code_help();
        let rows: Vec<&str> = help.lines().skip(2).collect();
        assert_eq!(rows.len(), Class::ALL.len());
        for (row, class) in rows.iter().zip(Class::ALL) {
            assert_eq!(*row, format!("  {}  {}", class as u8, class.describe()));
        }
    }

    #[test]
    fn readme_lists_every_class() {
        let readme = include_str!("../README.md");
        for class in Class::ALL {
            let row = format!("\n| {} | {}", class.exit_code(), class.describe());
            assert!(readme.contains(&row), "README lacks {row:?}");
        }
    }
}
