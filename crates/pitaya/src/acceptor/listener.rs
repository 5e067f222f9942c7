//! The bound TCP listener under both acceptors, with its optional TLS.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream, ToSocketAddrs};

#[cfg(feature = "tls")]
use super::TlsConfig;

/// A listening socket, its address, and the TLS it serves if any.
#[derive(Debug)]
pub(super) struct Listener {
    listener: TcpListener,
    pub(super) local_addr: SocketAddr,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<TlsConfig>,
}

impl Listener {
    /// Returns a listener on the first address `addr` resolves to that can be bound.
    pub(super) async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let listener = listen(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Listener {
            listener,
            local_addr,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Returns whether connections get a TLS handshake first.
    pub(super) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        return false;
    }

    /// Returns the next accepted socket, Nagle off, and its remote address.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as `TcpListener::accept`.
    pub(super) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self.listener.accept().await?;
        set_nodelay(&stream, addr);
        Ok((stream, addr))
    }
}

/// Queue of connections the kernel holds before we accept them (capped by `somaxconn`).
///
/// std and mio listen with 128, which a burst of clients (all of them reconnecting
/// after a restart) overflows; each SYN dropped then costs its client a one-second
/// retransmission. Go, and so Go Pitaya, asks for the kernel maximum.
const BACKLOG: u32 = 4096;

/// Returns a listener on the first address `addr` resolves to that can be bound.
async fn listen(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As std and mio do on Unix: a restarted server can bind its port at once.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
    }))
}

/// Turns Nagle's algorithm off: pushes and heartbeats are small and should leave at once.
fn set_nodelay(stream: &TcpStream, addr: SocketAddr) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(remote_addr = %addr, error = %error, "cannot set TCP_NODELAY");
    }
}
