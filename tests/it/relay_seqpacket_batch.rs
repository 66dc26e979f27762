//! Unix seqpacket relays carry many messages per system call (`sendmmsg` on
//! the way out, `recvmmsg` + one `writev` on the way in): a few MiB through
//! the real binary must keep every message boundary (one message per line,
//! or per `--datagram-size` bytes), every byte, and their order.

use std::io::Write;
use std::net::Shutdown;
use std::process::Stdio;
use std::thread;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::util::*;

/// The largest message a line is cut into (`relay::MAX_DATAGRAM`).
const MAX_DATAGRAM: usize = 65507;

/// About `total` bytes of lines: empty lines, short and long ones (some
/// past the largest message), binary bytes (NUL, CR, 0xff) but the newline
/// only where a line ends, and a last line without a newline.
fn varied_lines(total: usize, seed: u64) -> Vec<u8> {
    let noise = random_bytes(total + 200_000, seed);
    let mut out = Vec::with_capacity(total + 200_000);
    let mut at = 0;
    let mut i = 0u64;
    while out.len() < total {
        let len = match i % 64 {
            0 | 1 => 0,
            2 => 70_000,
            3 => MAX_DATAGRAM - 1,
            4 => MAX_DATAGRAM,
            5 => 2 * MAX_DATAGRAM + 5,
            _ => (noise[at] as usize) * 3 + (noise[at + 1] as usize % 7),
        };
        out.extend(
            noise[at..at + len]
                .iter()
                .map(|&b| if b == b'\n' { 0 } else { b }),
        );
        out.push(b'\n');
        at = (at + len + 2) % 100_000;
        i += 1;
    }
    out.extend_from_slice(b"\0last line\r\xff without a newline");
    out
}

/// The messages `data` must arrive as in line mode: each line with its
/// newline, a line longer than the largest message cut into pieces of
/// that size, and the rest at EOF as a last message.
fn as_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(MAX_DATAGRAM)];
        let n = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |i| i + 1);
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// `data` in a file, as `connect`'s stdin (read(2) in large pieces, so each
/// read completes many messages at once).
fn stdin_file(data: &[u8]) -> (tempfile::NamedTempFile, Stdio) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    let stdin = Stdio::from(f.reopen().unwrap());
    (f, stdin)
}

fn seqpacket_server(path: &str) -> Socket {
    let srv = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    srv.bind(&SockAddr::unix(path).unwrap()).unwrap();
    srv.listen(1).unwrap();
    // SO_RCVTIMEO bounds accept(2) as well as recv(2).
    srv.set_read_timeout(Some(WAIT)).unwrap();
    srv
}

/// Every message on `conn` until the peer's end-of-stream.
fn recv_all(conn: &Socket) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut msgs = Vec::new();
    loop {
        let n = no_eintr(|| std::io::Read::read(&mut &*conn, &mut buf)).expect("recv");
        if n == 0 {
            return msgs;
        }
        msgs.push(buf[..n].to_vec());
    }
}

/// Compares message lists without printing megabytes on failure.
fn assert_messages(got: &[Vec<u8>], want: &[&[u8]]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "message {i} of {}: got {} bytes, want {} ({:?}... vs {:?}...)",
            want.len(),
            got[i].len(),
            want[i].len(),
            String::from_utf8_lossy(&got[i][..got[i].len().min(16)]),
            String::from_utf8_lossy(&want[i][..want[i].len().min(16)]),
        );
    }
    assert_eq!(got.len(), want.len(), "message count");
}

/// `connect` against a seqpacket server in the test, both ways at once:
/// stdin goes out as `want` messages while the server sends `back`, which
/// must come out on stdout whole and in order.
fn connect_both_ways(args: &[&str], input: &[u8], want: &[&[u8]], back: &[Vec<u8>]) {
    let (_dir, path) = sock_path("batch.sock");
    let srv = seqpacket_server(&path);
    let (_file, stdin) = stdin_file(input);
    let mut cmd = sockit();
    cmd.arg("connect")
        .args(args)
        .arg(format!("unix-seqpacket:{path}"));
    let c = Proc::spawn_with_stdin(cmd, stdin);
    let (conn, _) = no_eintr(|| srv.accept()).expect("client connects");
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.set_write_timeout(Some(WAIT)).unwrap();
    let got = thread::scope(|s| {
        let reader = s.spawn(|| recv_all(&conn));
        for m in back {
            no_eintr(|| conn.send(m)).expect("send to the client");
        }
        // The receive batch has 64 MiB of address space, but only the pages
        // messages land in may become resident.
        c.wait_stdout_len(back.iter().map(Vec::len).sum());
        let hwm = vm_hwm_kib(c.child.id());
        assert!(hwm < 48 * 1024, "connect's peak RSS {hwm} KiB");
        conn.shutdown(Shutdown::Write).unwrap();
        reader.join().unwrap()
    });
    assert_messages(&got, want);
    let (st, out, err) = c.wait_exit();
    assert!(st.success(), "{err}");
    assert_same("connect's stdout", &out, &back.concat());
}

/// Peak resident memory of process `pid` (VmHWM), in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Messages of many sizes for the receiving side: 1 byte to 150,000 bytes
/// (more than the largest line message), binary, about `total` bytes.
fn varied_messages(total: usize, seed: u64) -> Vec<Vec<u8>> {
    let noise = random_bytes(total + 200_000, seed);
    let (mut msgs, mut sum, mut i) = (Vec::new(), 0, 0usize);
    while sum < total {
        let len = match i % 100 {
            0 => 150_000,
            1 => MAX_DATAGRAM,
            _ => 1 + noise[i % 100_000] as usize * 2,
        };
        let at = (i * 7919) % 50_000;
        msgs.push(noise[at..at + len].to_vec());
        sum += len;
        i += 1;
    }
    msgs
}

#[test]
fn seqpacket_lines_keep_boundaries_both_ways() {
    let input = varied_lines(4 << 20, 7);
    let want = as_lines(&input);
    assert!(want.iter().any(|m| m == b"\n"), "empty lines in the input");
    assert!(want.iter().any(|m| m.len() == MAX_DATAGRAM), "cut lines");
    let back = varied_messages(3 << 20, 8);
    connect_both_ways(&[], &input, &want, &back);
}

#[test]
fn seqpacket_datagram_size_keeps_boundaries_both_ways() {
    let input = random_bytes((3 << 20) + 777, 9);
    for size in [1000usize, MAX_DATAGRAM] {
        let want: Vec<&[u8]> = input.chunks(size).collect();
        let back = varied_messages(1 << 20, size as u64);
        let size = size.to_string();
        connect_both_ways(&["--datagram-size", &size], &input, &want, &back);
    }
}

/// `sockit connect < file` into `sockit listen > out`, line mode and
/// `--datagram-size`: every byte arrives, in order.
#[test]
fn seqpacket_connect_into_listen_keeps_every_byte() {
    let input = varied_lines(4 << 20, 11);
    for args in [&[][..], &["--datagram-size", "65507"][..]] {
        let (_dir, path) = sock_path("pair.sock");
        let (mut l, addr) = listen(&[&format!("unix-seqpacket:{path}")]);
        l.close_stdin();
        let (_file, stdin) = stdin_file(&input);
        let mut cmd = sockit();
        cmd.arg("connect")
            .args(args)
            .arg(format!("unix-seqpacket:{addr}"));
        let c = Proc::spawn_with_stdin(cmd, stdin);
        let (st, _, err) = c.wait_exit();
        assert!(st.success(), "connect {args:?}: {err}");
        let (st, out, err) = l.wait_exit();
        assert!(st.success(), "listen {args:?}: {err}");
        assert_same(&format!("listen's stdout ({args:?})"), &out, &input);
        assert!(
            err.contains(&format!("{} bytes received", input.len())),
            "{err}"
        );
    }
}
