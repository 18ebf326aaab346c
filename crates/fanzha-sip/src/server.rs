//! The redirect server on real sockets: UDP (several threads on one socket) and TCP (a
//! thread per connection, messages framed by Content-Length). Stops when `stop` is set,
//! within the sockets' 100 ms read timeout.

use crate::{Handler, Outcome};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Unix seconds now (the server is where the clock is read for SIP calls).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Running server threads.
pub struct Server {
    /// Bound UDP address.
    pub udp_addr: SocketAddr,
    /// Bound TCP address.
    pub tcp_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds UDP and TCP on `addr` (port 0 picks one; TCP then uses UDP's port when free)
    /// and starts `udp_threads` UDP workers.
    pub fn start(
        addr: SocketAddr,
        handler: Arc<Handler>,
        udp_threads: usize,
    ) -> std::io::Result<Server> {
        let udp = UdpSocket::bind(addr)?;
        let udp_addr = udp.local_addr()?;
        let tcp = TcpListener::bind(SocketAddr::new(addr.ip(), udp_addr.port()))
            .or_else(|_| TcpListener::bind(addr))?;
        let tcp_addr = tcp.local_addr()?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        set_buffers(&udp, 16 << 20);
        tcp.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..udp_threads.max(1) {
            let sock = udp.try_clone()?;
            let h = handler.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sip-udp-{i}"))
                    .spawn(move || udp_loop(sock, h, stop))?,
            );
        }
        {
            let h = handler.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sip-tcp".into())
                    .spawn(move || tcp_accept(tcp, h, stop))?,
            );
        }
        Ok(Server {
            udp_addr,
            tcp_addr,
            threads,
            stop,
        })
    }

    /// Stops accepting, lets in-flight messages finish, joins the threads.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn udp_loop(sock: UdpSocket, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    #[cfg(target_os = "linux")]
    {
        // Batched: one recvmmsg for up to 64 INVITEs. A small batch (the server keeps up)
        // is answered REPLY_CHUNK at a time, so its first INVITE does not wait for its last;
        // a large batch (the server is behind) is answered with one sendmmsg, because then
        // system calls, not batching, decide how far behind it falls.
        const REPLY_CHUNK: usize = 8;
        const SMALL_BATCH: usize = 16;
        let mut batch = crate::mmsg::RecvBatch::new();
        let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(crate::mmsg::BATCH);
        while !stop.load(Ordering::Relaxed) {
            let n = match batch.recv(&sock) {
                Ok(n) => n,
                Err(_) => continue, // timeout (stop check) or a transient error
            };
            let t = now();
            replies.clear();
            for i in 0..n {
                let (data, src) = batch.get(i);
                let Some(src) = src else { continue };
                if let Outcome::Reply(r) = handler.handle_datagram(data, src, t) {
                    replies.push((r, src));
                    if n <= SMALL_BATCH && replies.len() == REPLY_CHUNK {
                        let _ = crate::mmsg::send_batch(&sock, &replies);
                        replies.clear();
                    }
                }
            }
            if !replies.is_empty() {
                let _ = crate::mmsg::send_batch(&sock, &replies);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, src)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if let Outcome::Reply(r) = handler.handle_datagram(&buf[..n], src, now()) {
                let _ = sock.send_to(&r, src);
            }
        }
    }
}

/// Enlarges a socket's kernel buffers (bursts of tens of thousands of datagrams).
pub fn set_buffers(sock: &UdpSocket, bytes: i32) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // SAFETY: setsockopt with a valid fd and a pointer to an int of the right size.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const i32).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                );
            }
        }
    }
}

fn tcp_accept(listener: TcpListener, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, src)) => {
                let h = handler.clone();
                let stop = stop.clone();
                if let Ok(t) = std::thread::Builder::new()
                    .name("sip-tcp-conn".into())
                    .spawn(move || tcp_conn(stream, src, h, stop))
                {
                    conns.push(t);
                }
                conns.retain(|t| !t.is_finished());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for t in conns {
        let _ = t.join();
    }
}

fn tcp_conn(mut stream: TcpStream, src: SocketAddr, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        loop {
            // Keep-alive CRLFs between messages (RFC 5626) are skipped.
            let skip = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            buf.drain(..skip);
            if buf.is_empty() {
                break;
            }
            let (used, outcome) = handler.handle_stream(&buf, src, now());
            if used == 0 {
                break;
            }
            if let Outcome::Reply(r) = outcome {
                if stream.write_all(&r).is_err() {
                    return;
                }
            }
            buf.drain(..used.min(buf.len()));
        }
    }
}
