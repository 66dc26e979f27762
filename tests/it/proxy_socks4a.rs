//! `-x socks4a://` through a real SOCKS4a server: OpenSSH's dynamic forward
//! (`ssh -D`, which takes SOCKS4, SOCKS4a and SOCKS5) to a private `sshd`
//! started here on a free loopback port with a temporary host key and
//! authorized key. dante has no SOCKS4a, hence this peer. ssh's log names
//! each forward's target, so it shows that socks4a:// sends the name and
//! socks4:// the address resolved here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts on `port`, or `child` exits (then false).
fn listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen failed");
}

/// `sshd` on a free port (key login for root only, forwarding allowed), and
/// `ssh -D` to it on another: the SOCKS server. `ssh -v` logs to `ssh.log`.
struct SshSocks {
    _sshd: Guard,
    _ssh: Guard,
    dir: tempfile::TempDir,
    port: u16,
}

impl SshSocks {
    fn start() -> SshSocks {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        keygen(&p.join("host"));
        keygen(&p.join("client"));
        std::fs::copy(p.join("client.pub"), p.join("authorized")).unwrap();
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut started = None;
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\n\
                 AuthorizedKeysFile {d}/authorized\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowTcpForwarding yes\n\
                 PidFile {d}/sshd.pid\n",
                d = p.display()
            );
            std::fs::write(p.join("sshd.conf"), conf).unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(p.join("sshd.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sshd");
            if listening(&mut child, port) {
                started = Some((Guard(child), port));
                break;
            }
        }
        let (sshd, sshd_port) = started.expect("sshd did not start after 5 attempts");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("ssh")
                .args(["-F", "/dev/null", "-v", "-E"])
                .arg(p.join("ssh.log"))
                .args(["-N", "-D", &format!("127.0.0.1:{port}"), "-i"])
                .arg(p.join("client"))
                .args(["-o", "StrictHostKeyChecking=no"])
                .args(["-o", "UserKnownHostsFile=/dev/null"])
                .args(["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"])
                .args(["-p", &sshd_port.to_string(), "root@127.0.0.1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ssh");
            if listening(&mut child, port) {
                return SshSocks {
                    _sshd: sshd,
                    _ssh: Guard(child),
                    dir,
                    port,
                };
            }
        }
        panic!("ssh -D did not start after 5 attempts");
    }

    /// Waits until ssh's log has `needle` (it logs a forward when it ends).
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = std::fs::read_to_string(self.dir.path().join("ssh.log")).unwrap_or_default();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in ssh's log:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A server that writes `banner` to each connection and closes it.
fn banner_server(banner: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let _ = c.write_all(banner.as_bytes());
        }
    });
    port
}

/// A one-request HTTP server answering `body` to each connection.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    port
}

#[test]
fn socks4a_through_ssh_dynamic_forwarding() {
    let test = "socks4a_through_ssh_dynamic_forwarding";
    for bin in ["ssh", "ssh-keygen", "/usr/sbin/sshd", "curl"] {
        if !(have(bin) || Path::new(bin).exists()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {bin} is missing (see .ci/run peers)"
            );
            skipped(test, &format!("{bin} is not installed"));
            return;
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skipped(test, "sshd needs root here (privilege separation)");
        return;
    }
    let s = SshSocks::start();
    let proxy = |scheme: &str| format!("{scheme}://127.0.0.1:{}", s.port);

    // connect: the name goes to the proxy with socks4a, the address with socks4.
    let port = banner_server("hello through socks4a\n");
    for (scheme, seen) in [("socks4a", "localhost"), ("socks4", "127.0.0.1")] {
        let mut cmd = sockit();
        cmd.args(["connect", "--recv-only", "-x", &proxy(scheme)])
            .arg(format!("localhost:{port}"))
            .stdin(Stdio::null());
        let out = output_within(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{scheme}: {err}");
        assert_eq!(out.stdout, b"hello through socks4a\n", "{scheme}");
        s.wait_log(&format!("for {seen} port {port},"));
    }

    // http next to curl, and chat join.
    let web = http_server("through socks4a\n");
    let url = format!("http://localhost:{web}/x");
    for prog in ["sockit", "curl"] {
        let mut cmd = if prog == "sockit" {
            let mut c = sockit();
            c.arg("http");
            c
        } else {
            Command::new("curl")
        };
        cmd.args(["-sS", "-x", &proxy("socks4a"), &url])
            .stdin(Stdio::null());
        let out = output_within(cmd);
        assert!(out.status.success(), "{prog}");
        assert_eq!(out.stdout, b"through socks4a\n", "{prog}");
    }
    s.wait_log(&format!("for localhost port {web},"));

    let (chat, addr) = chat_serve(&[]);
    let chat_port = addr.rsplit_once(':').unwrap().1.to_string();
    let mut join = sockit();
    join.args(["chat", "join", "-x", &proxy("socks4a")])
        .arg(format!("localhost:{chat_port}"));
    let mut join = Proc::spawn(join);
    join.wait_stdout(b"welcome");
    join.write(b"/quit\n");
    let (st, _, err) = join.wait_exit();
    assert!(st.success(), "{err}");
    drop(chat);
}
