//! Error types and exit codes, in one place.
//!
//! The library returns [`Error`]; only `main` turns it into words on stderr and an
//! exit status. Each variant belongs to one [`Class`], and each class has its own
//! exit code so scripts can tell "refused" from "timed out" from "bad flags".

use std::fmt;
use std::io;
use std::time::Duration;

/// What kind of failure happened; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// I/O failure while moving data, or anything not covered below.
    Io,
    /// Bad flags or a malformed endpoint.
    Usage,
    /// A host name did not resolve.
    Resolve,
    /// The peer refused, or the network could not reach it.
    Refused,
    /// A connect, idle or reply timeout expired.
    Timeout,
    /// The local address is already in use.
    AddrInUse,
    /// The operating system denied the operation (low port, file mode, raw socket).
    Permission,
    /// TLS setup, handshake or certificate verification failed.
    Tls,
}

impl Class {
    /// The process exit code for this class.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Io => 1,
            Class::Usage => 2,
            Class::Resolve => 3,
            Class::Refused => 4,
            Class::Timeout => 5,
            Class::AddrInUse => 6,
            Class::Permission => 7,
            Class::Tls => 8,
        }
    }

    /// Every class, in exit-code order (for help text and docs).
    pub const ALL: [Class; 8] = [
        Class::Io,
        Class::Usage,
        Class::Resolve,
        Class::Refused,
        Class::Timeout,
        Class::AddrInUse,
        Class::Permission,
        Class::Tls,
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
        }
    }
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
    /// An HTTP exchange failed (`sockit http`); its kind carries a curl-style exit code.
    #[error("{0}")]
    Http(#[from] crate::http::Error),
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
            Error::Io { source, .. } => io_class(source),
            Error::Transfer { .. } => Class::Io,
            Error::Http(e) => match e.kind {
                crate::http::Kind::BadUrl | crate::http::Kind::UnsupportedProtocol => Class::Usage,
                crate::http::Kind::Timeout => Class::Timeout,
                _ => Class::Io,
            },
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
            match e.get_ref() {
                Some(inner) => inner.to_string(),
                None => e.to_string(),
            }
        }
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
