//! The operator console: the server's own stdin is a chat participant.
//!
//! A line-protocol member with its own front-end: stdin lines are parsed as
//! a line client's, and it sees events as lines. Its lines go to its room (the lobby at first) and it may `/kick`; everything
//! the operator's member receives (its room's traffic, every join and leave)
//! is printed on stdout. With stdin closed or not a terminal the console keeps
//! printing and simply never speaks.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::front::line;
use super::hub::{ChatHub, ChatMember, Flow, Notice};
use super::sanitize::sanitize;

/// Runs the console until stdout fails; stdin EOF only ends the input side.
pub async fn run(hub: Arc<ChatHub>, m: ChatMember, read_stdin: bool) {
    let id = m.id;
    let input = async {
        if !read_stdin {
            return std::future::pending::<()>().await;
        }
        let mut lines = BufReader::new(tokio::io::stdin()).split(b'\n');
        while let Ok(Some(mut line)) = lines.next_segment().await {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            if let Flow::Quit(_) = line::input(&hub, id, &sanitize(&line)) {
                hub.notice(id, Notice::ConsoleStays);
            }
        }
        tracing::debug!("operator stdin closed; the console only prints from now on");
        std::future::pending::<()>().await
    };
    let output = async {
        let mut stdout = tokio::io::stdout();
        let mut batch: Vec<Bytes> = Vec::new();
        while m.out.take(&mut batch, 256).await > 0 {
            let bytes: usize = batch.iter().map(Bytes::len).sum();
            let mut joined = Vec::with_capacity(bytes);
            for b in batch.drain(..) {
                joined.extend_from_slice(&b);
            }
            if stdout.write_all(&joined).await.is_err() || stdout.flush().await.is_err() {
                tracing::info!("operator stdout closed");
                return;
            }
            m.out.written(bytes);
        }
    };
    tokio::select! {
        _ = input => {}
        _ = output => {}
        _ = m.kill.cancelled() => {}
    }
    hub.leave(id, "console closed");
}
