//! `--echo`: RFC 862. Streams get their bytes back; message sockets get each
//! message back as one message.

use std::io;

use crate::conn::{Chunk, Conn};
use crate::relay::{Activity, BUF_SIZE};

/// Echoes until the client closes, then half-closes.
pub async fn serve(conn: Conn, activity: &Activity) -> io::Result<()> {
    let (mut rd, mut wr) = conn.split();
    let mut buf = vec![0u8; BUF_SIZE];
    while let Chunk::Data(n) = rd.read(&mut buf).await? {
        activity.touch();
        wr.write(&buf[..n]).await?;
    }
    wr.shutdown().await
}
