//! The zero-copy relay: `splice(2)`/`sendfile(2)` between stdin/stdout and a plain
//! stream socket, on dedicated threads with blocking I/O.
//!
//! Bytes never enter user space when the fds allow it: a regular file goes out
//! with `sendfile`; a pipe splices straight to or from the socket; anything else
//! splices through a private pipe. Where the kernel refuses (a terminal, say), the
//! copy falls back to `read`/`write` with a large buffer.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, SpliceFFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::{fstat, SFlag};

/// Bytes per splice/sendfile call; also the private pipe's requested size.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdKind {
    File,
    Pipe,
    Socket,
    Other,
}

fn kind(fd: BorrowedFd<'_>) -> FdKind {
    match fstat(fd.as_raw_fd()) {
        Ok(st) => match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => FdKind::File,
            SFlag::S_IFIFO => FdKind::Pipe,
            SFlag::S_IFSOCK => FdKind::Socket,
            _ => FdKind::Other,
        },
        Err(_) => FdKind::Other,
    }
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Waits until one of `fds` is ready, retrying on EINTR; no timeout.
fn wait(fds: &mut [PollFd<'_>]) -> io::Result<()> {
    loop {
        match poll(fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(errno_io(e)),
        }
    }
}

/// Waits until `fd` is readable, for fds that came to us in non-blocking mode.
fn wait_readable(fd: BorrowedFd<'_>) -> io::Result<()> {
    wait(&mut [PollFd::new(fd, PollFlags::POLLIN)])
}

/// Retries a syscall on EINTR and waits out EAGAIN on non-blocking fds.
fn retry<T>(
    mut f: impl FnMut() -> nix::Result<T>,
    fd_in: BorrowedFd<'_>,
    fd_out: BorrowedFd<'_>,
) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                // stdin or stdout may have come to us non-blocking: wait until
                // the source is readable or the destination writable (whichever
                // blocked), in one poll, then try again.
                let _ = wait(&mut [
                    PollFd::new(fd_in, PollFlags::POLLIN),
                    PollFd::new(fd_out, PollFlags::POLLOUT),
                ]);
            }
            other => return other,
        }
    }
}

/// Copies `src` to `dst` until EOF on `src`, counting bytes into `counter`.
pub fn copy(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, counter: &AtomicU64) -> io::Result<()> {
    let (ks, kd) = (kind(src), kind(dst));
    let done = if ks == FdKind::File && kd == FdKind::Socket {
        sendfile_loop(src, dst, counter)?
    } else if ks == FdKind::Pipe || kd == FdKind::Pipe {
        splice_direct(src, dst, counter)?
    } else {
        splice_via_pipe(src, dst, counter)?
    };
    if done {
        Ok(())
    } else {
        read_write(src, dst, counter)
    }
}

/// Ok(false): the kernel refused before any byte moved; use another method.
fn sendfile_loop(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    counter: &AtomicU64,
) -> io::Result<bool> {
    let mut first = true;
    loop {
        let r = retry(
            || nix::sys::sendfile::sendfile(dst, src, None, CHUNK * 16),
            src,
            dst,
        );
        match r {
            Ok(0) => return Ok(true),
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                first = false;
            }
            Err(Errno::EINVAL | Errno::ENOSYS) if first => return Ok(false),
            Err(e) => return Err(errno_io(e)),
        }
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE
}

fn splice_direct(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    counter: &AtomicU64,
) -> io::Result<bool> {
    // Splicing from a socket into a pipe holds the pipe's lock while the socket
    // read sleeps, so whoever reads that pipe (our stdout's reader) could not
    // take the bytes already delivered until more arrived. Waiting for data
    // first means the splice never sleeps on the socket.
    let socket_into_pipe = kind(src) == FdKind::Socket;
    let mut first = true;
    loop {
        if socket_into_pipe {
            wait_readable(src)?;
        }
        let r = retry(|| splice(src, None, dst, None, CHUNK, flags()), src, dst);
        match r {
            Ok(0) => return Ok(true),
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                first = false;
            }
            Err(Errno::EINVAL) if first => return Ok(false),
            Err(e) => return Err(errno_io(e)),
        }
    }
}

fn private_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(errno_io)?;
    // A bigger pipe means fewer syscalls; the kernel caps it at pipe-max-size,
    // and a failure only leaves the default size.
    let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(CHUNK as libc::c_int));
    Ok((r, w))
}

fn splice_via_pipe(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    counter: &AtomicU64,
) -> io::Result<bool> {
    let (pr, pw) = private_pipe()?;
    let (pr, pw) = (pr.as_fd(), pw.as_fd());
    let mut first = true;
    loop {
        let n = match retry(|| splice(src, None, pw, None, CHUNK, flags()), src, pw) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(Errno::EINVAL) if first => return Ok(false),
            Err(e) => return Err(errno_io(e)),
        };
        let mut left = n;
        while left > 0 {
            match retry(|| splice(pr, None, dst, None, left, flags()), pr, dst) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(m) => {
                    left -= m;
                    counter.fetch_add(m as u64, Ordering::Relaxed);
                }
                Err(Errno::EINVAL) if first => {
                    // The destination cannot take splice (e.g. a terminal):
                    // hand over what is already in the pipe, then fall back.
                    drain(pr, dst, left, counter)?;
                    return Ok(false);
                }
                Err(e) => return Err(errno_io(e)),
            }
        }
        first = false;
    }
}

fn drain(
    pr: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    mut left: usize,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = left.min(buf.len());
        let n = retry(
            || nix::unistd::read(pr.as_raw_fd(), &mut buf[..want]),
            pr,
            pr,
        )
        .map_err(errno_io)?;
        write_all(dst, &buf[..n])?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        left -= n;
    }
    Ok(())
}

fn write_all(dst: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match retry(|| nix::unistd::write(dst, data), dst, dst) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => data = &data[n..],
            Err(e) => return Err(errno_io(e)),
        }
    }
    Ok(())
}

fn read_write(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, counter: &AtomicU64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n =
            retry(|| nix::unistd::read(src.as_raw_fd(), &mut buf), src, src).map_err(errno_io)?;
        if n == 0 {
            return Ok(());
        }
        write_all(dst, &buf[..n])?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Reads and throws away everything until EOF (`--send-only`'s receive side).
pub fn discard(src: BorrowedFd<'_>, counter: &AtomicU64) -> io::Result<()> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    copy(src, null.as_fd(), counter)
}

/// Largest message received; also the room each one gets.
const MESSAGE_ROOM: usize = crate::relay::BUF_SIZE;

fn eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// stdin to a blocking message socket: one message per line (or per `size`
/// bytes), the rest at EOF as a last message.
fn send_messages(
    src: BorrowedFd<'_>,
    sock: BorrowedFd<'_>,
    size: Option<usize>,
    counter: &AtomicU64,
) -> io::Result<()> {
    let sock = socket2::SockRef::from(&sock);
    let mut buf = vec![0u8; MESSAGE_ROOM];
    let mut cut = crate::relay::Messages::new(size);
    loop {
        let n =
            retry(|| nix::unistd::read(src.as_raw_fd(), &mut buf), src, src).map_err(errno_io)?;
        let msgs = if n == 0 {
            cut.finish().into_iter().collect()
        } else {
            cut.push(&buf[..n])
        };
        for m in msgs {
            eintr(|| sock.send(&m))?;
            counter.fetch_add(m.len() as u64, Ordering::Relaxed);
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// A blocking message socket to `dst` until an empty message (EOF). The
/// messages already queued behind the first are gathered into one write,
/// each with [`MESSAGE_ROOM`] of room.
fn recv_messages(sock: BorrowedFd<'_>, dst: BorrowedFd<'_>, counter: &AtomicU64) -> io::Result<()> {
    use crate::util::as_uninit;
    let sock = socket2::SockRef::from(&sock);
    let mut buf = vec![0u8; 4 * MESSAGE_ROOM];
    loop {
        let n = eintr(|| sock.recv(as_uninit(&mut buf[..MESSAGE_ROOM])))?;
        if n == 0 {
            return Ok(());
        }
        let (mut filled, mut eof, mut failed) = (n, false, None);
        while buf.len() - filled >= MESSAGE_ROOM {
            let room = as_uninit(&mut buf[filled..filled + MESSAGE_ROOM]);
            match eintr(|| sock.recv_with_flags(room, libc::MSG_DONTWAIT)) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(m) => filled += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        write_all(dst, &buf[..filled])?;
        counter.fetch_add(filled as u64, Ordering::Relaxed);
        if let Some(e) = failed {
            return Err(e);
        }
        if eof {
            return Ok(());
        }
    }
}

/// Byte counters shared between the two directions.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes sent to the peer.
    pub sent: AtomicU64,
    /// Bytes received from the peer.
    pub received: AtomicU64,
}

/// Options for the zero-copy relay.
#[derive(Debug, Clone, Copy)]
pub struct SpliceOpts {
    /// Copy stdin to the socket.
    pub send: bool,
    /// Copy the socket to stdout (otherwise its bytes are discarded).
    pub recv: bool,
    /// `shutdown(SHUT_WR)` after stdin EOF.
    pub shutdown_on_eof: bool,
    /// After the peer's EOF, keep sending until stdin ends (see [`RelayOpts`]).
    ///
    /// [`RelayOpts`]: crate::relay::RelayOpts
    pub wait_for_stdin: bool,
    /// The socket keeps message boundaries (seqpacket): stdin is cut into
    /// messages (lines, or pieces of this many bytes when `Some(Some(n))`),
    /// and the messages received go out to stdout as they are.
    pub messages: Option<Option<usize>>,
}

/// Which way a copy was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// stdin to the socket.
    Up,
    /// The socket to stdout.
    Down,
}

/// A relay that ended on an error, and the direction it happened in: the
/// same errno means the peer went away on the way up (a truncated upload)
/// but stdout closed on the way down (`| head`, a quiet end).
#[derive(Debug)]
pub struct Failed {
    /// The direction that failed.
    pub way: Way,
    /// The operating system's error.
    pub source: io::Error,
}

/// Runs both directions over the blocking socket `sock`; returns when the peer
/// has closed its side and, with `plan.wait_for_stdin`, stdin is finished too.
/// Otherwise a stdin thread still blocked in `read` is left behind.
pub fn relay(sock: OwnedFd, plan: SpliceOpts, counters: Arc<Counters>) -> Result<(), Failed> {
    let sock = Arc::new(sock);
    let up = |source| Failed {
        way: Way::Up,
        source,
    };
    let upload = plan.send.then(|| {
        let sock = sock.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("sockit-upload".into())
            .spawn(move || -> io::Result<()> {
                let stdin = io::stdin();
                match plan.messages {
                    Some(size) => send_messages(stdin.as_fd(), sock.as_fd(), size, &counters.sent)?,
                    None => copy(stdin.as_fd(), sock.as_fd(), &counters.sent)?,
                }
                if plan.shutdown_on_eof {
                    // A peer already gone is seen by the receiving side.
                    let _ = socket2::SockRef::from(&*sock).shutdown(std::net::Shutdown::Write);
                }
                Ok(())
            })
    });
    let upload = upload.transpose().map_err(up)?;
    let stdout = io::stdout();
    let down = match (plan.messages.is_some(), plan.recv) {
        (true, true) => recv_messages(sock.as_fd(), stdout.as_fd(), &counters.received),
        (true, false) => std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .and_then(|null| recv_messages(sock.as_fd(), null.as_fd(), &counters.received)),
        (false, true) => copy(sock.as_fd(), stdout.as_fd(), &counters.received),
        (false, false) => discard(sock.as_fd(), &counters.received),
    };
    down.map_err(|source| Failed {
        way: Way::Down,
        source,
    })?;
    if let Some(handle) = upload {
        if handle.is_finished() || plan.wait_for_stdin {
            match handle.join() {
                Ok(res) => res.map_err(up)?,
                Err(_) => return Err(up(io::Error::other("the upload thread panicked"))),
            }
        }
    }
    Ok(())
}

/// True when stdin is a terminal (an interactive user, nothing queued).
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Errors that only mean the peer went away first.
pub fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN)
    )
}
