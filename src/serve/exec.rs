//! `-e/--exec` and `--sh-exec`: each client is served by a child process whose
//! stdin and stdout are the connection.
//!
//! The child talks to pipes and sockit relays them, so the same code serves plain
//! TCP, Unix, seqpacket and TLS connections. A child never outlives its
//! connection by more than twice the grace: when the client's input ends (or
//! the client is gone, or the child closes its output) the child's stdin is
//! closed; a child still running after the grace gets SIGTERM, after another
//! grace SIGKILL, and the connection's `-m` slot is free once it is reaped.
//! The child runs in its own process group, and signals go to the whole group,
//! so what a `--sh-exec` shell started goes too.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::conn::{Chunk, Conn};
use crate::error::{Error, Result};
use crate::relay::{Activity, BUF_SIZE};

/// The program to run per client.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// How long a child may run on after its connection ends, before SIGTERM
    /// (and as long again before SIGKILL).
    pub grace: Duration,
}

/// Bytes relayed at a time each way on a stream.
const CHUNK: usize = 16 * 1024;

/// Default for [`ExecSpec::grace`] (`--exec-grace`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(1);

impl ExecSpec {
    /// `-e "prog arg 'quoted arg'"`: split like a shell would, but run without one.
    pub fn direct(cmd: &str) -> Result<Self> {
        let argv = shlex::split(cmd)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Usage(format!("invalid --exec command '{cmd}'")))?;
        Ok(ExecSpec {
            argv,
            grace: DEFAULT_GRACE,
        })
    }

    /// `--sh-exec "cmd | other"`: run through `/bin/sh -c`.
    pub fn shell(cmd: &str) -> Self {
        ExecSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            grace: DEFAULT_GRACE,
        }
    }

    /// Checks, before serving anyone, that the program exists and may be run,
    /// so a typo fails at start instead of once per client.
    pub fn check(&self) -> Result<()> {
        let prog = &self.argv[0];
        let path = find_program(prog).ok_or_else(|| {
            Error::Usage(if prog.contains('/') {
                format!("cannot run '{prog}' (no such file)")
            } else {
                format!("cannot run '{prog}' (no such program on PATH)")
            })
        })?;
        let mode = std::fs::metadata(&path)
            .map_err(|e| Error::io(format!("cannot run '{prog}'"), e))?
            .permissions()
            .mode();
        if mode & 0o111 == 0 {
            return Err(Error::io(
                format!("cannot run '{prog}'"),
                io::Error::from(io::ErrorKind::PermissionDenied),
            ));
        }
        Ok(())
    }
}

/// Where `prog` would be found: itself if it names a path, else the first
/// regular file of that name in `$PATH`.
fn find_program(prog: &str) -> Option<PathBuf> {
    if prog.contains('/') {
        return Path::new(prog).is_file().then(|| PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(prog))
        .find(|p| p.is_file())
}

/// Kills the child's process group if the connection's task is dropped
/// (shutdown, idle timeout) before the child was reaped.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn signal(&self, sig: Signal) {
        if let Some(pg) = self.0 {
            let _ = killpg(pg, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Runs the child for one connection and relays until it is reaped.
pub async fn serve(conn: Conn, spec: &ExecSpec, activity: &Activity) -> io::Result<()> {
    let mut command = Command::new(&spec.argv[0]);
    if let Some(subject) = &conn.peer_cert {
        command.env("SOCKIT_PEER_CERT", subject);
    }
    let mut child = command
        .args(&spec.argv[1..])
        .env("SOCKIT_PEER_ADDR", &conn.peer)
        .env("SOCKIT_LOCAL_ADDR", &conn.local)
        .env("SOCKIT_PROTO", &conn.proto)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", spec.argv[0])))?;
    let mut group = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));
    let mut child_in = child.stdin.take().expect("stdin is piped");
    let mut child_out = child.stdout.take().expect("stdout is piped");
    // A message socket needs room for a whole message; a stream is relayed
    // in pipe-sized pieces, so a stalled client costs little.
    let size = if conn.is_packet() { BUF_SIZE } else { CHUNK };
    let (mut rd, mut wr) = conn.split();

    // Owns the child's stdin: dropping it closes the pipe.
    let to_child = async move {
        let mut buf = vec![0u8; size];
        while let Ok(Chunk::Data(n)) = rd.read(&mut buf).await {
            activity.touch();
            if child_in.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let from_child = async {
        let mut buf = vec![0u8; size];
        loop {
            match child_out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    activity.touch();
                    wr.write(&buf[..n]).await?;
                }
            }
        }
        wr.shutdown().await
    };
    tokio::pin!(from_child);
    let mut to_child = Some(Box::pin(to_child));
    let mut res = None;
    // Until the client's input ends, or the child's output does.
    tokio::select! {
        _ = to_child.as_mut().expect("set") => {}
        r = &mut from_child => res = Some(r),
    }
    // The connection is ending: the child's stdin closes now, its output is
    // still relayed while it finishes.
    drop(to_child.take());
    let status = {
        let ending = end_child(&mut child, &group, spec);
        tokio::pin!(ending);
        loop {
            tokio::select! {
                r = &mut from_child, if res.is_none() => res = Some(r),
                st = &mut ending => break st,
            }
        }
    };
    // Reaped: its pid may be reused, never signal it again.
    group.0 = None;
    tracing::debug!("{} exited: {status:?}", spec.argv[0]);
    if res.is_none() {
        // What the child wrote before it exited; bounded in case something it
        // left behind keeps the pipe open.
        if let Ok(r) = tokio::time::timeout(spec.grace, &mut from_child).await {
            res = Some(r);
        }
    }
    match res.unwrap_or(Ok(())) {
        Err(e) if crate::relay::splice::is_peer_gone(&e) => Ok(()),
        other => other,
    }
}

/// Waits for the child to exit, asking (SIGTERM) after the grace and
/// insisting (SIGKILL) after another; returns once it is reaped.
async fn end_child(
    child: &mut Child,
    group: &GroupGuard,
    spec: &ExecSpec,
) -> io::Result<std::process::ExitStatus> {
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        if let Ok(st) = tokio::time::timeout(spec.grace, child.wait()).await {
            return st;
        }
        tracing::info!(
            "{} still running {:?} after its connection ended: {sig}",
            spec.argv[0],
            spec.grace
        );
        group.signal(sig);
    }
    child.wait().await
}
