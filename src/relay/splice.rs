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

/// Messages per `sendmmsg(2)`/`recvmmsg(2)`. A peer's send buffer (212992
/// bytes by default) holds about 250 small messages, so a batch takes in what
/// is queued; 256 is also well under `IOV_MAX` for the `writev(2)` after it.
const BATCH: usize = 256;

fn eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A `msghdr` for one buffer, everything else empty.
fn one_buffer(iov: *mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: msghdr and mmsghdr are plain C structs for which all zeroes
    // (null pointers, zero lengths) is a valid value.
    let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
    h.msg_hdr.msg_iov = iov;
    h.msg_hdr.msg_iovlen = 1;
    h
}

/// stdin to a blocking message socket: one message per line (or per `size`
/// bytes), the rest at EOF as a last message. The messages each read
/// completes go out in batches of [`BATCH`] per `sendmmsg(2)`.
fn send_messages(
    src: BorrowedFd<'_>,
    sock: BorrowedFd<'_>,
    size: Option<usize>,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut buf = vec![0u8; MESSAGE_ROOM];
    let mut cut = crate::relay::Messages::new(size);
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    loop {
        let n =
            retry(|| nix::unistd::read(src.as_raw_fd(), &mut buf), src, src).map_err(errno_io)?;
        let msgs = if n == 0 {
            cut.finish()
        } else {
            cut.push(&buf[..n])
        };
        let mut msgs = msgs.iter().peekable();
        while msgs.peek().is_some() {
            iovs.clear();
            iovs.extend(msgs.by_ref().take(BATCH).map(|m| libc::iovec {
                iov_base: m.as_ptr() as *mut libc::c_void,
                iov_len: m.len(),
            }));
            hdrs.clear();
            hdrs.extend(iovs.iter_mut().map(|iov| one_buffer(iov)));
            let mut done = 0;
            while done < hdrs.len() {
                let rest = &mut hdrs[done..];
                // SAFETY: every header points at one iovec in `iovs`, each
                // describing a message inside `buf`/`cut`, all alive and
                // unmoved for the call; the kernel only reads them.
                let rc = eintr(|| {
                    let rc = unsafe {
                        libc::sendmmsg(
                            sock.as_raw_fd(),
                            rest.as_mut_ptr(),
                            rest.len() as libc::c_uint,
                            libc::MSG_NOSIGNAL,
                        )
                    };
                    if rc < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(rc as usize)
                    }
                })?;
                if rc == 0 {
                    return Err(io::Error::from(io::ErrorKind::WriteZero));
                }
                let bytes: usize = iovs[done..done + rc].iter().map(|v| v.iov_len).sum();
                counter.fetch_add(bytes as u64, Ordering::Relaxed);
                done += rc;
            }
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// A blocking message socket to `dst` until an empty message (EOF). One
/// `recvmmsg(2)` waits for a message and takes every one already queued
/// behind it (up to [`BATCH`], each with [`MESSAGE_ROOM`] of room); one
/// `writev(2)` hands them all to `dst`.
fn recv_messages(sock: BorrowedFd<'_>, dst: BorrowedFd<'_>, counter: &AtomicU64) -> io::Result<()> {
    // 64 MiB of address space, but a page is only touched where a message
    // lands: small messages use a page per slot, and the peer's send buffer
    // bounds how many large ones can be queued at once.
    let mut buf = vec![0u8; BATCH * MESSAGE_ROOM];
    let base = buf.as_mut_ptr();
    let mut iovs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec {
            // SAFETY: i * MESSAGE_ROOM + MESSAGE_ROOM <= buf.len().
            iov_base: unsafe { base.add(i * MESSAGE_ROOM) } as *mut libc::c_void,
            iov_len: MESSAGE_ROOM,
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs.iter_mut().map(|iov| one_buffer(iov)).collect();
    let mut out: Vec<io::IoSlice<'_>> = Vec::with_capacity(BATCH);
    loop {
        // SAFETY: each header points at its own iovec, which describes its
        // own MESSAGE_ROOM bytes of `buf`; all outlive the call and nothing
        // else touches `buf` meanwhile.
        let got = eintr(|| {
            let rc = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(rc as usize)
            }
        })?;
        // An empty message is the peer's EOF (and fills the rest of the batch).
        let full = hdrs[..got].iter().take_while(|h| h.msg_len > 0).count();
        let eof = full < got || got == 0;
        out.clear();
        out.extend(hdrs[..full].iter().enumerate().map(|(i, h)| {
            // SAFETY: the kernel wrote msg_len <= MESSAGE_ROOM bytes into slot i.
            let m = unsafe {
                std::slice::from_raw_parts(base.add(i * MESSAGE_ROOM), h.msg_len as usize)
            };
            io::IoSlice::new(m)
        }));
        let bytes = write_all_vectored(dst, &mut out)?;
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
        if eof {
            return Ok(());
        }
    }
}

/// Writes every slice, in order, with as few `writev(2)` calls as `dst` allows.
/// Returns the bytes written.
fn write_all_vectored(
    dst: BorrowedFd<'_>,
    mut slices: &mut [io::IoSlice<'_>],
) -> io::Result<usize> {
    let total = slices.iter().map(|s| s.len()).sum();
    while !slices.is_empty() {
        let cnt = slices.len().min(1024) as libc::c_int;
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix, and the slices
        // borrow live memory for the call.
        let r = retry(
            || {
                let rc = unsafe {
                    libc::writev(dst.as_raw_fd(), slices.as_ptr() as *const libc::iovec, cnt)
                };
                Errno::result(rc)
            },
            dst,
            dst,
        );
        match r {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n as usize),
            Err(e) => return Err(errno_io(e)),
        }
    }
    Ok(total)
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
