//! Message-oriented sockets (UDP, `unix-dgram`, `unix-seqpacket`) on tokio's `AsyncFd`.
//!
//! tokio has no `SOCK_SEQPACKET` type, and its datagram types cannot reply to an
//! abstract Unix address; one wrapper over a socket2 `Socket` covers all three kinds
//! with the same `send`/`recv`/`sendto`/`recvfrom`.

use crate::util::as_uninit;
use std::io;

use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};

/// A non-blocking message socket registered with tokio.
#[derive(Debug)]
pub struct PacketSock {
    fd: AsyncFd<Socket>,
}

fn register(sock: Socket) -> Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its fd and always returns that same fd, which stays
    // open until the `AsyncFd` (and with it the `Socket`) is dropped.
    unsafe { AsyncFd::register(sock) }
        .map_err(|e| Error::io("cannot register socket", io::Error::other(e.to_string())))
}

impl PacketSock {
    /// Registers `sock` (made non-blocking here) with the runtime.
    pub fn new(sock: Socket) -> Result<Self> {
        sock.set_nonblocking(true)
            .map_err(|e| Error::io("cannot make socket non-blocking", e))?;
        let fd = register(sock)?;
        Ok(PacketSock { fd })
    }

    /// Deregisters the socket from the runtime and hands it back (still
    /// non-blocking), e.g. for a relay on threads of its own.
    pub fn into_socket(self) -> Socket {
        self.fd.into_inner()
    }

    /// The underlying socket.
    pub fn socket(&self) -> &Socket {
        self.fd.get_ref()
    }

    /// Receives one message from the connected peer; `Ok(0)` on a stream-like EOF
    /// (seqpacket) or an empty datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // ERROR too: an ICMP error on a connected UDP socket (port unreachable)
        // raises only EPOLLERR, and recv(2) is what reports it.
        self.fd
            .async_io(Interest::READABLE | Interest::ERROR, |s| {
                s.recv(as_uninit(buf))
            })
            .await
    }

    /// Receives one message if one is already queued, without waiting:
    /// `WouldBlock` when none is.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.get_ref().recv(as_uninit(buf))
    }

    /// Receives one message and its sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
        self.fd
            .async_io(Interest::READABLE, |s| s.recv_from(as_uninit(buf)))
            .await
    }

    /// Sends one message to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.async_io(Interest::WRITABLE, |s| s.send(buf)).await
    }

    /// Sends one message to `addr`.
    pub async fn send_to(&self, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
        self.fd
            .async_io(Interest::WRITABLE, |s| s.send_to(buf, addr))
            .await
    }

    /// Half-closes the sending side (seqpacket peers then read EOF).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.fd.get_ref().shutdown(std::net::Shutdown::Write)
    }

    /// `getsockname`.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        self.fd.get_ref().local_addr()
    }

    /// `getpeername`.
    pub fn peer_addr(&self) -> io::Result<SockAddr> {
        self.fd.get_ref().peer_addr()
    }
}

/// A listening `SOCK_SEQPACKET` socket; each accepted connection is a [`PacketSock`].
#[derive(Debug)]
pub struct PacketListener {
    fd: AsyncFd<Socket>,
}

impl PacketListener {
    /// Registers a bound, listening socket with the runtime.
    pub fn new(sock: Socket) -> Result<Self> {
        sock.set_nonblocking(true)
            .map_err(|e| Error::io("cannot make socket non-blocking", e))?;
        let fd = register(sock)?;
        Ok(PacketListener { fd })
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<(PacketSock, SockAddr)> {
        let (sock, addr) = self.fd.async_io(Interest::READABLE, |s| s.accept()).await?;
        let sock = PacketSock::new(sock).map_err(|e| io::Error::other(e.to_string()))?;
        Ok((sock, addr))
    }

    /// `getsockname`.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        self.fd.get_ref().local_addr()
    }
}
