//! `--echo`: RFC 862. Streams get their bytes back; message sockets get each
//! message back as one message.

use std::io;

use crate::conn::{Chunk, Conn};
use crate::relay::{Activity, BUF_SIZE};

/// Bytes read (and held) at a time from a stream client.
const CHUNK: usize = 16 * 1024;

/// Echoes until the client closes, then half-closes. Each read is written back
/// before the next, so a client that does not read stalls only itself.
pub async fn serve(conn: Conn, activity: &Activity) -> io::Result<()> {
    // A message socket needs room for a whole message.
    let size = if conn.is_packet() { BUF_SIZE } else { CHUNK };
    let (mut rd, mut wr) = conn.split();
    let mut buf = vec![0u8; size];
    while let Chunk::Data(n) = rd.read(&mut buf).await? {
        activity.touch();
        wr.write(&buf[..n]).await?;
    }
    wr.shutdown().await
}
