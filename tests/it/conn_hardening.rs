//! The client path under a misbehaving peer: transfers the peer cuts short are
//! errors (never exit 0), a stalled TLS handshake is bounded by `-w` and
//! interruptible, an unclean TLS close has its own exit code.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::util::*;

/// Bigger than every socket and pipe buffer on the way, so a peer that stops
/// reading always leaves data unsent.
const BIG: usize = 16 << 20;

/// A temporary file of `n` bytes, opened for reading (connect's stdin).
fn big_input(n: usize) -> (tempfile::NamedTempFile, std::fs::File) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let chunk = random_bytes(1 << 20, 7);
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        f.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    f.flush().unwrap();
    let r = std::fs::File::open(f.path()).unwrap();
    (f, r)
}

/// `sockit connect ARGS...` with `stdin` as its standard input.
fn connect_with(args: &[&str], stdin: Stdio) -> Proc {
    let mut cmd = sockit();
    cmd.arg("connect").args(args);
    Proc::spawn_with_stdin(cmd, stdin)
}

/// The exit of a connect whose transfer was cut short: exit 1 and one error
/// line that says how many bytes went each way.
fn assert_truncated(p: Proc, what: &str) {
    let (st, _, err) = p.wait_exit();
    assert_eq!(st.code(), Some(1), "{what}: exit status; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: stderr: {err:?}");
    assert!(
        err.starts_with("sockit: error: connection with ")
            && err.contains(" bytes sent and ")
            && err.contains(" received ("),
        "{what}: stderr: {err:?}"
    );
}

/// The three stream-like kinds a receiver can be, each accepting one client.
enum Server {
    Tcp(std::net::TcpListener),
    Unix(UnixListener, #[allow(dead_code)] tempfile::TempDir),
    SeqPacket(Socket, #[allow(dead_code)] tempfile::TempDir),
}

/// One accepted connection of any kind, as plain blocking I/O.
enum Peer {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
    SeqPacket(Socket),
}

impl Server {
    fn new(kind: &str) -> (Server, String) {
        match kind {
            "tcp" => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap().to_string();
                (Server::Tcp(l), addr)
            }
            "unix" => {
                let (dir, path) = sock_path("s.sock");
                let l = UnixListener::bind(&path).unwrap();
                (Server::Unix(l, dir), format!("unix:{path}"))
            }
            _ => {
                let (dir, path) = sock_path("sp.sock");
                let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
                s.bind(&SockAddr::unix(&path).unwrap()).unwrap();
                s.listen(4).unwrap();
                (Server::SeqPacket(s, dir), format!("unix-seqpacket:{path}"))
            }
        }
    }

    fn accept(&self) -> Peer {
        match self {
            Server::Tcp(l) => Peer::Tcp(accept_one(l).0),
            Server::Unix(l, _) => Peer::Unix(accept_unix(l)),
            Server::SeqPacket(s, _) => {
                s.set_nonblocking(true).unwrap();
                let deadline = Instant::now() + WAIT;
                let c = loop {
                    match s.accept() {
                        Ok((c, _)) => break c,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            assert!(Instant::now() < deadline, "no connection arrived");
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(WAIT)).unwrap();
                c.set_write_timeout(Some(WAIT)).unwrap();
                Peer::SeqPacket(c)
            }
        }
    }
}

impl Peer {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        no_eintr(|| match self {
            Peer::Tcp(s) => s.read(buf),
            Peer::Unix(s) => s.read(buf),
            Peer::SeqPacket(s) => s.read(buf),
        })
        .unwrap()
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Peer::Tcp(s) => s.write_all(data),
            Peer::Unix(s) => s.write_all(data),
            Peer::SeqPacket(s) => s.send(data).map(drop),
        }
    }

    /// Reads until EOF; returns the byte count.
    fn read_to_end(&mut self) -> usize {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match self.read(&mut buf) {
                0 => return total,
                n => total += n,
            }
        }
    }

    /// Closes so the kernel resets: TCP with a zero linger; Unix kinds reset
    /// when closed with unread data.
    fn reset(self) {
        if let Peer::Tcp(s) = &self {
            socket2::SockRef::from(s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
    }
}

const KINDS: [&str; 3] = ["tcp", "unix", "seqpacket"];

/// With and without `-i` (which takes the async relay instead of splice).
const PATHS: [&[&str]; 2] = [&[], &["-i", "60"]];

#[test]
fn receiver_that_closes_early_is_an_error() {
    for kind in KINDS {
        for extra in PATHS {
            let (srv, addr) = Server::new(kind);
            let (_f, input) = big_input(BIG);
            let mut args = extra.to_vec();
            args.push(&addr);
            let p = connect_with(&args, input.into());
            let mut peer = srv.accept();
            let mut buf = vec![0u8; 1000];
            assert!(peer.read(&mut buf) > 0);
            // Unread data in the receive queue: closing resets the connection.
            drop(peer);
            assert_truncated(p, &format!("{kind} {extra:?}"));
        }
    }
}

#[test]
fn killed_receiver_is_an_error() {
    for kind in KINDS {
        let (_dir, path) = sock_path("k.sock");
        let ep = match kind {
            "tcp" => "127.0.0.1:0".to_string(),
            "unix" => format!("unix:{path}"),
            _ => format!("unix-seqpacket:{path}"),
        };
        // A receiver whose stdout nobody reads: it soon stops reading the socket.
        let mut cmd = sockit();
        cmd.args(["listen", "-v", &ep]);
        let l = PipedStdout::spawn(cmd);
        let err = l.wait_stderr("listening on ");
        let addr = err
            .lines()
            .find_map(|l| l.split("listening on ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .to_string();
        let addr = match kind {
            "tcp" => addr,
            "unix" => format!("unix:{addr}"),
            _ => format!("unix-seqpacket:{addr}"),
        };
        let (_f, input) = big_input(BIG);
        let p = connect_with(&[&addr], input.into());
        l.wait_stderr("connection from");
        drop(l); // SIGKILL
        assert_truncated(p, kind);
    }
}

#[test]
fn server_that_resets_while_sending_is_an_error() {
    for kind in KINDS {
        for extra in PATHS {
            let (srv, addr) = Server::new(kind);
            let mut args = extra.to_vec();
            args.push(&addr);
            let mut p = connect_with(&args, Stdio::piped());
            p.write(b"request\n");
            let mut peer = srv.accept();
            peer.write(b"part of the answer\n").unwrap();
            p.wait_stdout(b"part of the answer\n");
            // "request" is still unread: closing now resets (TCP: linger 0).
            peer.reset();
            assert_truncated(p, &format!("{kind} {extra:?}"));
        }
    }
}

#[test]
fn orderly_ends_stay_exit_zero() {
    for kind in KINDS {
        for extra in PATHS {
            // The peer reads everything, answers, and closes.
            let (srv, addr) = Server::new(kind);
            let (_f, input) = big_input(1 << 20);
            let mut args = extra.to_vec();
            args.push(&addr);
            let p = connect_with(&args, input.into());
            let mut peer = srv.accept();
            let n = peer.read_to_end();
            assert_eq!(n, 1 << 20, "{kind} {extra:?}");
            peer.write(b"done\n").unwrap();
            drop(peer);
            let (st, out, err) = p.wait_exit();
            assert!(st.success(), "{kind} {extra:?}: {err}");
            assert_eq!(out, b"done\n");

            // The peer closes first, cleanly, and stdin has nothing more.
            let (srv, addr) = Server::new(kind);
            let mut args = extra.to_vec();
            args.push(&addr);
            let mut p = connect_with(&args, Stdio::piped());
            p.write(b"hello\n");
            let mut peer = srv.accept();
            let mut buf = [0u8; 64];
            assert_eq!(peer.read(&mut buf), 6);
            peer.write(b"bye\n").unwrap();
            drop(peer);
            p.wait_stdout(b"bye\n");
            p.close_stdin();
            let (st, _, err) = p.wait_exit();
            assert!(st.success(), "{kind} {extra:?}: {err}");
        }
    }
}

#[test]
fn stdout_closing_early_stays_quiet_success() {
    let (srv, addr) = Server::new("tcp");
    let mut cmd = sockit();
    cmd.args(["connect", &addr]);
    let mut p = PipedStdout::spawn(cmd);
    let mut peer = srv.accept();
    let writer = thread::spawn(move || {
        let chunk = vec![b'y'; 1 << 16];
        // Ends when the client goes away.
        while peer.write(&chunk).is_ok() {}
    });
    p.read_then_close(1000);
    let (st, err) = p.wait_exit();
    assert!(st.success(), "{err}");
    assert!(err.is_empty(), "{err}");
    writer.join().unwrap();
}

/// A TCP listener that accepts and never says a word.
fn silent_listener() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

/// Waits until the client's first TLS record (the ClientHello) arrives.
fn wait_client_hello(s: &mut std::net::TcpStream) {
    let mut b = [0u8; 1];
    no_eintr(|| s.read_exact(&mut b)).unwrap();
    assert_eq!(b[0], 0x16, "not a TLS handshake record");
}

#[test]
fn tls_handshake_is_bounded_by_w() {
    for sub in [
        &["connect", "--tls", "--insecure"][..],
        &["chat", "join", "--tls", "--insecure"],
    ] {
        let (l, addr) = silent_listener();
        let mut cmd = sockit();
        cmd.args(sub).args(["-w", "1", &addr]);
        let start = Instant::now();
        let p = Proc::spawn_with_stdin(cmd, Stdio::null());
        let (mut s, _) = accept_one(&l);
        wait_client_hello(&mut s);
        let (st, _, err) = p.wait_exit();
        let took = start.elapsed();
        assert_eq!(st.code(), Some(5), "{sub:?}: stderr: {err}");
        assert!(
            err.contains(&format!("TLS handshake with {addr} (timed out after 1s)")),
            "{sub:?}: stderr: {err}"
        );
        assert!(took < Duration::from_secs(4), "{sub:?}: took {took:?}");
    }
}

#[test]
fn signals_end_a_stalled_tls_handshake() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let (l, addr) = silent_listener();
        let mut cmd = sockit();
        cmd.args(["connect", "--tls", "--insecure", "-w", "600", &addr]);
        let p = Proc::spawn_with_stdin(cmd, Stdio::null());
        let (mut s, _) = accept_one(&l);
        wait_client_hello(&mut s);
        let start = Instant::now();
        p.signal(sig);
        let (st, _, err) = p.wait_exit();
        assert_eq!(st.code(), Some(code), "signal {sig}: stderr: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "signal {sig}: took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn signals_end_dial_and_transfer() {
    // During the transfer (stdin open, the peer silent).
    let (l, addr) = silent_listener();
    let mut p = connect_with(&[&addr], Stdio::piped());
    let (_s, _) = accept_one(&l);
    p.write(b"x");
    let start = Instant::now();
    p.signal(libc::SIGTERM);
    let (st, _, err) = p.wait_exit();
    assert_eq!(st.code(), Some(143), "stderr: {err}");
    assert!(start.elapsed() < Duration::from_secs(3));

    // While connecting: a listener whose backlog is full drops the SYN, so
    // connect(2) waits (SYN_SENT) for as long as -w allows.
    let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    full.bind(&any.into()).unwrap();
    full.listen(0).unwrap();
    let target = full.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        c.set_nonblocking(true).unwrap();
        let _ = c.connect(&target.into());
        fillers.push(c);
    }
    let p = connect_with(&["-w", "600", &target.to_string()], Stdio::null());
    let deadline = Instant::now() + WAIT;
    while !in_syn_sent(p.child.id()) {
        assert!(Instant::now() < deadline, "connect never reached SYN_SENT");
        thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    p.signal(libc::SIGINT);
    let (st, _, err) = p.wait_exit();
    assert_eq!(st.code(), Some(130), "stderr: {err}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// True when process `pid` holds a TCP socket in SYN_SENT.
fn in_syn_sent(pid: u32) -> bool {
    let mut inodes = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            if let Ok(link) = std::fs::read_link(e.path()) {
                let link = link.to_string_lossy().into_owned();
                if let Some(ino) = link.strip_prefix("socket:[") {
                    inodes.push(ino.trim_end_matches(']').to_string());
                }
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 9 && f[3] == "02" && inodes.iter().any(|i| i == f[9])
    })
}

/// A TLS server (rustls, in this process) that answers one client with
/// `data`, then closes the TCP connection without close_notify.
fn tls_server_without_close_notify(data: &'static [u8]) -> (String, thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let config = self_signed_server_config();
    let t = thread::spawn(move || {
        let (tcp, _) = accept_one(&l);
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(data).unwrap();
        tls.flush().unwrap();
        // An orderly TCP close without close_notify: FIN, then read what the
        // client still sends (its own close_notify) so the close is no reset.
        let mut tcp = tls.sock;
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let _ = std::io::copy(&mut tcp, &mut std::io::sink());
    });
    (addr, t)
}

#[test]
fn tls_close_without_close_notify_is_its_own_class() {
    let (addr, t) = tls_server_without_close_notify(b"all of it?\n");
    let p = connect_with(&["--tls", "--insecure", &addr], Stdio::null());
    let (st, out, err) = p.wait_exit();
    t.join().unwrap();
    assert_eq!(st.code(), Some(9), "stderr: {err}");
    assert_eq!(out, b"all of it?\n");
    assert_eq!(
        err,
        format!(
            "sockit: error: connection with {addr} closed without TLS close_notify after 11 bytes \
             received (the data may be truncated)\n"
        )
    );
}

#[test]
fn a_stalled_hex_dump_does_not_stall_the_runtime() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    // The dump goes to stderr, a pipe nobody reads: it fills at once.
    let mut child = sockit()
        .args(["connect", "--hex-dump", "-", &addr])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stderr = child.stderr.take();
    let (mut s, _) = accept_one(&l);
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0usize;
        while s.write_all(&chunk).is_ok() {
            sent += chunk.len();
            if sent == 1 << 20 {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(WAIT).expect("the client took 1 MiB");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = exit_within(&mut child, Duration::from_secs(5))
        .expect("connect ignored SIGTERM while its hex dump was stalled");
    assert_eq!(status.code(), Some(143));
}

#[test]
fn w_bounds_a_unix_connect_to_a_full_backlog() {
    for kind in ["unix", "unix-seqpacket"] {
        let (_dir, path) = sock_path("full.sock");
        let ty = if kind == "unix" {
            Type::STREAM
        } else {
            Type::SEQPACKET
        };
        let l = Socket::new(Domain::UNIX, ty, None).unwrap();
        l.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        l.listen(0).unwrap();
        // Fill the backlog: non-blocking clients until the kernel says EAGAIN.
        let mut fillers = Vec::new();
        loop {
            let c = Socket::new(Domain::UNIX, ty, None).unwrap();
            c.set_nonblocking(true).unwrap();
            match c.connect(&SockAddr::unix(&path).unwrap()) {
                Ok(()) => fillers.push(c),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filler connect: {e}"),
            }
            assert!(fillers.len() < 64, "the backlog never filled");
        }
        let start = Instant::now();
        let p = connect_with(&["-w", "1", &format!("{kind}:{path}")], Stdio::null());
        let (st, _, err) = p.wait_exit();
        assert_eq!(st.code(), Some(5), "{kind}: stderr: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{kind}: took {:?}",
            start.elapsed()
        );
    }
}
