//! A connected socket of any kind, as handed from `connect`/`accept` to the relay
//! and the services: a byte stream (TCP, Unix, TLS over either) or a message
//! socket (connected UDP, `unix-dgram`, `unix-seqpacket`).

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UnixStream};

use crate::sock::PacketSock;

/// Anything that carries a byte stream.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A boxed byte stream (plain or TLS).
pub type BoxStream = Box<dyn AsyncStream>;

/// The transport under a [`Conn`].
pub enum Link {
    /// Plain TCP: eligible for the zero-copy relay.
    Tcp(TcpStream),
    /// Plain Unix stream: eligible for the zero-copy relay.
    Unix(UnixStream),
    /// Any other byte stream (TLS).
    Stream(BoxStream),
    /// A message socket; `eof_on_empty` is true for seqpacket, where a
    /// zero-length read means the peer closed.
    Packet {
        /// The socket.
        sock: PacketSock,
        /// Whether an empty message is end-of-stream.
        eof_on_empty: bool,
    },
}

/// A connection plus what `-v` and `--exec` want to know about it.
pub struct Conn {
    /// The transport.
    pub link: Link,
    /// `getsockname`, formatted.
    pub local: String,
    /// `getpeername`, formatted.
    pub peer: String,
    /// `tcp`, `udp`, `unix`, `unix-dgram`, `unix-seqpacket`, `tls`...
    pub proto: String,
    /// The subject of the peer's verified client certificate (`--tls-client-ca`).
    pub peer_cert: Option<String>,
}

impl Conn {
    /// True when the transport keeps message boundaries.
    pub fn is_packet(&self) -> bool {
        matches!(self.link, Link::Packet { .. })
    }

    /// Splits into independently usable halves.
    pub fn split(self) -> (ConnReader, ConnWriter) {
        let boxed: BoxStream = match self.link {
            Link::Tcp(s) => Box::new(s),
            Link::Unix(s) => Box::new(s),
            Link::Stream(s) => s,
            Link::Packet { sock, eof_on_empty } => {
                let sock = Arc::new(sock);
                return (
                    ConnReader::Packet {
                        sock: sock.clone(),
                        eof_on_empty,
                    },
                    ConnWriter::Packet(sock),
                );
            }
        };
        let (r, w) = tokio::io::split(boxed);
        (ConnReader::Stream(r), ConnWriter::Stream(w))
    }
}

/// Receiving half of a [`Conn`].
pub enum ConnReader {
    /// Byte stream.
    Stream(ReadHalf<BoxStream>),
    /// Message socket.
    Packet {
        /// The shared socket.
        sock: Arc<PacketSock>,
        /// Whether an empty message is end-of-stream.
        eof_on_empty: bool,
    },
}

/// What one read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// This many bytes (one message, for message sockets).
    Data(usize),
    /// The peer closed its sending side.
    Eof,
}

impl ConnReader {
    /// Reads some bytes (a stream) or one message.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<Chunk> {
        match self {
            ConnReader::Stream(r) => match r.read(buf).await? {
                0 => Ok(Chunk::Eof),
                n => Ok(Chunk::Data(n)),
            },
            ConnReader::Packet { sock, eof_on_empty } => match sock.recv(buf).await? {
                0 if *eof_on_empty => Ok(Chunk::Eof),
                n => Ok(Chunk::Data(n)),
            },
        }
    }

    /// True when reads return whole messages.
    pub fn is_packet(&self) -> bool {
        matches!(self, ConnReader::Packet { .. })
    }
}

/// Sending half of a [`Conn`].
pub enum ConnWriter {
    /// Byte stream.
    Stream(WriteHalf<BoxStream>),
    /// Message socket.
    Packet(Arc<PacketSock>),
}

impl ConnWriter {
    /// Writes all of `buf` (a stream) or sends it as one message.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            ConnWriter::Stream(w) => {
                w.write_all(buf).await?;
                w.flush().await
            }
            ConnWriter::Packet(s) => s.send(buf).await.map(drop),
        }
    }

    /// Half-closes: `shutdown(SHUT_WR)`, or TLS close_notify then `SHUT_WR`.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ConnWriter::Stream(w) => w.shutdown().await,
            ConnWriter::Packet(s) => match s.shutdown_write() {
                // Connectionless datagram sockets have nothing to half-close.
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
                other => other,
            },
        }
    }
}
