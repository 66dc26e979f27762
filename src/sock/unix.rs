//! Unix-domain sockets: paths and abstract names, stale-path cleanup, autobind.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::endpoint::{UnixKind, UnixName};
use crate::error::{Error, Result};

fn sock_type(kind: UnixKind) -> Type {
    match kind {
        UnixKind::Stream => Type::STREAM,
        UnixKind::Datagram => Type::DGRAM,
        UnixKind::SeqPacket => Type::SEQPACKET,
    }
}

/// The socket2 address for a path or an abstract name.
pub fn unix_sockaddr(name: &UnixName) -> Result<SockAddr> {
    let res = match name {
        UnixName::Path(p) => SockAddr::unix(p),
        UnixName::Abstract(n) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(n);
            SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
        }
    };
    res.map_err(|e| Error::io(format!("invalid unix address {name}"), e))
}

fn new_socket(kind: UnixKind) -> io::Result<Socket> {
    Socket::new(Domain::UNIX, sock_type(kind).cloexec(), None)
}

/// Connects a Unix socket of `kind` to `name`. Datagram sockets are first bound
/// to an automatic abstract address so the peer can reply.
pub fn connect_unix(kind: UnixKind, name: &UnixName) -> Result<Socket> {
    let what = || format!("cannot connect to {name}");
    let addr = unix_sockaddr(name)?;
    let sock = new_socket(kind).map_err(|e| Error::io(what(), e))?;
    if kind == UnixKind::Datagram {
        autobind(&sock).map_err(|e| Error::io("cannot bind a reply address", e))?;
    }
    sock.connect(&addr).map_err(|e| Error::io(what(), e))?;
    Ok(sock)
}

/// Linux autobind: binding with only the address family (an empty path)
/// picks a unique abstract name.
fn autobind(sock: &Socket) -> io::Result<()> {
    sock.bind(&SockAddr::unix("")?)
}

/// Removes a listener's socket file when dropped.
#[derive(Debug)]
pub struct UnixPathGuard(PathBuf);

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bound Unix socket plus the guard that removes its path.
#[derive(Debug)]
pub struct UnixBound {
    /// The bound (and, for stream kinds, listening) socket.
    pub socket: Socket,
    /// Removes the socket file on drop; `None` for abstract names.
    pub guard: Option<UnixPathGuard>,
}

/// Binds (and for stream/seqpacket, listens on) a Unix address. A leftover socket
/// file nobody listens on is replaced; a live one is "address in use"; a file that
/// is not a socket is never touched.
pub fn bind_unix(kind: UnixKind, name: &UnixName, backlog: u32) -> Result<UnixBound> {
    let what = || format!("cannot bind {name}");
    if let UnixName::Path(path) = name {
        clear_stale(path)?;
    }
    let addr = unix_sockaddr(name)?;
    let sock = new_socket(kind).map_err(|e| Error::io(what(), e))?;
    sock.bind(&addr).map_err(|e| Error::io(what(), e))?;
    let guard = match name {
        UnixName::Path(p) => Some(UnixPathGuard(p.clone())),
        UnixName::Abstract(_) => None,
    };
    if kind != UnixKind::Datagram {
        sock.listen(backlog.min(i32::MAX as u32) as i32)
            .map_err(|e| Error::io(format!("cannot listen on {name}"), e))?;
    }
    Ok(UnixBound {
        socket: sock,
        guard,
    })
}

fn clear_stale(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot bind {}", path.display()), e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::io(
            format!("cannot bind {}", path.display()),
            io::Error::from_raw_os_error(libc::EEXIST),
        ));
    }
    // The probe is a datagram socket, whatever kind is being bound: its
    // connect(2) only looks the path up, while a stream or seqpacket probe
    // would be a real connection, taken by a live listener as a client (a
    // one-client listener would serve it and exit).
    let probe = new_socket(UnixKind::Datagram).map_err(|e| Error::io("cannot create socket", e))?;
    let addr = SockAddr::unix(path).map_err(|e| Error::io("invalid unix path", e))?;
    let in_use = || {
        Err(Error::io(
            format!("cannot bind {}", path.display()),
            io::Error::from_raw_os_error(libc::EADDRINUSE),
        ))
    };
    match probe.connect(&addr) {
        // A live datagram socket.
        Ok(()) => in_use(),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            tracing::info!("removing stale socket {}", path.display());
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("cannot remove stale {}", path.display()), e))
        }
        // A live stream or seqpacket socket (EPROTOTYPE), or a datagram socket
        // connected to another peer (EPERM).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPROTOTYPE | libc::EPERM)) => in_use(),
        Err(e) => Err(Error::io(format!("cannot bind {}", path.display()), e)),
    }
}
