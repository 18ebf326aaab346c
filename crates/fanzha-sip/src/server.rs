//! The redirect server on real sockets: UDP (several threads on one socket) and TCP (a
//! thread per connection, messages framed by Content-Length, connections capped in all and
//! per source, idle and write timeouts). Stops when `stop` is set, within the sockets'
//! 100 ms read timeout, or the write timeout for a peer that does not read.

use crate::{Handler, Outcome};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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

/// Limits of SIP over TCP (`[sip] tcp_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections at once, from everyone.
    pub max_connections: usize,
    /// Connections at once from one address.
    pub max_per_source: usize,
    /// A connection that sends nothing this long is closed (SBCs send CRLF keep-alives).
    pub idle: Duration,
    /// A peer that does not take an answer within this is dropped.
    pub write_timeout: Duration,
    /// Bytes of one unfinished message a connection may hold.
    pub max_message: usize,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits {
            max_connections: 1024,
            max_per_source: 64,
            idle: Duration::from_secs(300),
            write_timeout: Duration::from_secs(5),
            max_message: 65_536,
        }
    }
}

/// Open connections, in all and by source address.
#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// A connection's place among the open ones, given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Slot {
    fn take(open: &Arc<Mutex<Open>>, ip: IpAddr, limits: &TcpLimits) -> Option<Slot> {
        let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = o.by_source.get(&ip).copied().unwrap_or(0);
        if o.total >= limits.max_connections || mine >= limits.max_per_source {
            return None;
        }
        o.total += 1;
        *o.by_source.entry(ip).or_insert(0) += 1;
        Some(Slot {
            open: open.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total -= 1;
        if let Some(n) = o.by_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.by_source.remove(&self.ip);
            }
        }
    }
}

impl Server {
    /// [`Server::start_with`] the default TCP limits.
    pub fn start(
        addr: SocketAddr,
        handler: Arc<Handler>,
        udp_threads: usize,
    ) -> std::io::Result<Server> {
        Server::start_with(addr, handler, udp_threads, TcpLimits::default())
    }

    /// Binds UDP and TCP on `addr` (port 0 picks one; TCP then uses UDP's port when free)
    /// and starts `udp_threads` UDP workers.
    pub fn start_with(
        addr: SocketAddr,
        handler: Arc<Handler>,
        udp_threads: usize,
        limits: TcpLimits,
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
                    .spawn(move || tcp_accept(tcp, h, stop, limits))?,
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

fn tcp_accept(
    listener: TcpListener,
    handler: Arc<Handler>,
    stop: Arc<AtomicBool>,
    limits: TcpLimits,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, src)) => {
                // Over a cap: closed at once, before a thread or a byte is spent on it.
                let Some(slot) = Slot::take(&open, src.ip(), &limits) else {
                    drop(stream);
                    continue;
                };
                let h = handler.clone();
                let stop = stop.clone();
                if let Ok(t) = std::thread::Builder::new()
                    .name("sip-tcp-conn".into())
                    .spawn(move || tcp_conn(stream, src, h, stop, limits, slot))
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

/// Where the next message of a stream can first be complete: framing is found once per
/// byte received, not once per read (a peer sending one byte at a time made the old loop
/// rescan the whole buffer each time: quadratic).
#[derive(Default)]
struct Framer {
    /// Bytes of the buffer already searched for the end of the headers.
    searched: usize,
    /// Once the headers are complete: the message's whole length.
    whole: Option<usize>,
}

impl Framer {
    /// Whether `buf` may now hold a whole message.
    fn ready(&mut self, buf: &[u8]) -> bool {
        if let Some(n) = self.whole {
            return buf.len() >= n;
        }
        let from = self.searched.saturating_sub(3);
        match buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            None => {
                self.searched = buf.len();
                false
            }
            Some(i) => {
                let head_end = from + i;
                self.whole = Some(
                    head_end
                        .saturating_add(4)
                        .saturating_add(declared_length(&buf[..head_end])),
                );
                buf.len() >= self.whole.unwrap_or(usize::MAX)
            }
        }
    }

    fn reset(&mut self) {
        *self = Framer::default();
    }
}

/// The Content-Length of a header block (0 when absent or unreadable: the parser judges).
fn declared_length(head: &[u8]) -> usize {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name == "l" {
            return std::str::from_utf8(&line[colon + 1..])
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn tcp_conn(
    mut stream: TcpStream,
    src: SocketAddr,
    handler: Arc<Handler>,
    stop: Arc<AtomicBool>,
    limits: TcpLimits,
    _slot: Slot,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut framer = Framer::default();
    let mut heard = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                heard = std::time::Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if heard.elapsed() > limits.idle {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        loop {
            // Keep-alive CRLFs between messages (RFC 5626) are skipped.
            let skip = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skip > 0 {
                buf.drain(..skip);
                framer.reset();
            }
            if buf.is_empty() || !framer.ready(&buf) {
                if buf.len() > limits.max_message {
                    // A message that never ends: the peer is broken or hostile.
                    return;
                }
                break;
            }
            let (used, outcome) = handler.handle_stream(&buf, src, now());
            if used == 0 {
                if buf.len() > limits.max_message {
                    return;
                }
                break;
            }
            if let Outcome::Reply(r) = outcome {
                if stream.write_all(&r).is_err() {
                    return;
                }
            }
            buf.drain(..used.min(buf.len()));
            framer.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framer_waits_for_headers_and_body_searching_each_byte_once() {
        let msg = b"INVITE sip:x@y SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
        let mut f = Framer::default();
        for n in 1..msg.len() {
            assert!(!f.ready(&msg[..n]), "{n}");
            assert!(f.searched <= n);
        }
        assert!(f.ready(msg));
        assert_eq!(declared_length(b"A: 1\r\nl: 12"), 12);
        assert_eq!(declared_length(b"Content-Length: x"), 0);
    }
}
