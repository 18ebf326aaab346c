//! A TCP listener that holds at most a set number of connections: past it, new connections
//! wait in the kernel's backlog until one closes, instead of each costing the service memory
//! and a task.

use axum::serve::Listener;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// [`TcpListener`] with a cap on open connections.
pub struct Limited {
    inner: TcpListener,
    slots: Arc<Semaphore>,
}

impl Limited {
    /// At most `max` connections open at once.
    pub fn new(inner: TcpListener, max: usize) -> Limited {
        Limited {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

/// A connection holding its slot until it is dropped.
pub struct Slotted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Listener for Limited {
    type Io = Slotted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Slotted, SocketAddr) {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        Slotted {
                            stream,
                            _slot: slot,
                        },
                        addr,
                    );
                }
                // Out of descriptors or a connection reset before accept: wait, try again.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Slotted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::ListenerExt;

    /// The third connection is not served while two are open, and is once one closes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_past_the_cap_wait_for_a_slot() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = Limited::new(tcp, 2).tap_io(|_| ());
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let get = |s: &mut std::net::TcpStream| {
            use std::io::{Read, Write};
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 256];
            s.read(&mut buf).unwrap_or(0)
        };
        let t = tokio::task::spawn_blocking(move || {
            let mut a = std::net::TcpStream::connect(addr).unwrap();
            let mut b = std::net::TcpStream::connect(addr).unwrap();
            assert!(get(&mut a) > 0 && get(&mut b) > 0);
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_millis(500)))
                .unwrap();
            assert_eq!(get(&mut c), 0, "waits while two are open");
            drop(a);
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            use std::io::Read;
            let mut buf = [0u8; 256];
            assert!(c.read(&mut buf).unwrap() > 0, "served once a slot is free");
        });
        t.await.unwrap();
    }
}
