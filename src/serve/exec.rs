//! `-e/--exec` and `--sh-exec`: each client is served by a child process whose
//! stdin and stdout are the connection.
//!
//! The child talks to pipes and sockit relays them, so the same code serves plain
//! TCP, Unix, seqpacket and TLS connections.

use std::io;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::conn::{Chunk, Conn};
use crate::error::{Error, Result};
use crate::relay::{Activity, BUF_SIZE};

/// The program to run per client.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
}

impl ExecSpec {
    /// `-e "prog arg 'quoted arg'"`: split like a shell would, but run without one.
    pub fn direct(cmd: &str) -> Result<Self> {
        let argv = shlex::split(cmd)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Usage(format!("invalid --exec command '{cmd}'")))?;
        Ok(ExecSpec { argv })
    }

    /// `--sh-exec "cmd | other"`: run through `/bin/sh -c`.
    pub fn shell(cmd: &str) -> Self {
        ExecSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
        }
    }
}

/// Runs the child for one connection and relays until it finishes.
pub async fn serve(conn: Conn, spec: &ExecSpec, activity: &Activity) -> io::Result<()> {
    let mut child = Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .env("SOCKIT_PEER_ADDR", &conn.peer)
        .env("SOCKIT_LOCAL_ADDR", &conn.local)
        .env("SOCKIT_PROTO", &conn.proto)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", spec.argv[0])))?;
    let mut child_in = child.stdin.take().expect("stdin is piped");
    let mut child_out = child.stdout.take().expect("stdout is piped");
    let (mut rd, mut wr) = conn.split();

    let to_child = async {
        let mut buf = vec![0u8; BUF_SIZE];
        while let Ok(Chunk::Data(n)) = rd.read(&mut buf).await {
            activity.touch();
            if child_in.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        drop(child_in);
    };
    let from_child = async {
        let mut buf = vec![0u8; BUF_SIZE];
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
    tokio::pin!(to_child, from_child);
    let mut in_done = false;
    let res = loop {
        tokio::select! {
            _ = &mut to_child, if !in_done => in_done = true,
            r = &mut from_child => break r,
        }
    };
    let status = child.wait().await?;
    tracing::debug!("{} exited: {status}", spec.argv[0]);
    match res {
        Err(e) if crate::relay::splice::is_peer_gone(&e) => Ok(()),
        other => other,
    }
}
