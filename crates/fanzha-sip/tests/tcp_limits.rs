//! SIP over TCP under hostile peers, on real sockets: a connection flood is capped per
//! source, a peer sending one byte at a time is answered, a silent connection is closed
//! when idle, and shutdown completes in bounded time with a peer that never reads.

use fanzha_policy::{PatternSet, RuleConfig, Snapshot, Trunk, TrunkKind};
use fanzha_screen::Engine;
use fanzha_sip::server::{Server, TcpLimits};
use fanzha_sip::{Handler, SipConfig, TrunkMapEntry};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn server(limits: TcpLimits) -> Server {
    let mut s = Snapshot::new(1);
    s.add_trunk(Trunk {
        id: "t".into(),
        kind: TrunkKind::Interconnect,
        contracted: PatternSet::default(),
        forwarding_approved: false,
        approvals: vec![],
    });
    let cfg = SipConfig {
        trunk_map: vec![TrunkMapEntry::parse("127.0.0.0/8=t").unwrap()],
        ..SipConfig::default()
    };
    let h = Handler::new(
        Arc::new(Engine::new(s, RuleConfig::default())),
        cfg,
        None,
        None,
    );
    Server::start_with("127.0.0.1:0".parse().unwrap(), Arc::new(h), 1, limits).unwrap()
}

fn options(id: &str) -> String {
    format!("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK{id}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: {id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

fn answer(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether the server closed `s` (a read returns 0 or an error, not a timeout).
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_are_capped_per_source() {
    let srv = server(TcpLimits {
        max_per_source: 3,
        ..TcpLimits::default()
    });
    let mut kept: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(srv.tcp_addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(srv.tcp_addr).unwrap();
    assert!(
        closed(&mut over),
        "the fourth connection from one source is closed"
    );
    kept[0].write_all(options("k0").as_bytes()).unwrap();
    assert!(answer(&mut kept[0]).starts_with("SIP/2.0 200"));
    // A slot freed is a slot again.
    drop(kept.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut again = TcpStream::connect(srv.tcp_addr).unwrap();
    again.write_all(options("a1").as_bytes()).unwrap();
    assert!(answer(&mut again).starts_with("SIP/2.0 200"));
    srv.shutdown();
}

#[test]
fn a_peer_sending_one_byte_at_a_time_is_answered() {
    let srv = server(TcpLimits::default());
    let mut s = TcpStream::connect(srv.tcp_addr).unwrap();
    s.set_nodelay(true).unwrap();
    for b in options("slow").as_bytes() {
        s.write_all(&[*b]).unwrap();
    }
    assert!(answer(&mut s).starts_with("SIP/2.0 200"));
    srv.shutdown();
}

#[test]
fn an_idle_connection_and_an_endless_message_are_closed() {
    let srv = server(TcpLimits {
        idle: Duration::from_millis(500),
        max_message: 4096,
        ..TcpLimits::default()
    });
    let mut idle = TcpStream::connect(srv.tcp_addr).unwrap();
    assert!(closed(&mut idle), "closed after half a second of silence");
    let mut endless = TcpStream::connect(srv.tcp_addr).unwrap();
    let _ = endless.write_all(&[b'A'; 8192]);
    assert!(
        closed(&mut endless),
        "a message past the limit closes the connection"
    );
    srv.shutdown();
}

#[test]
fn shutdown_completes_with_a_peer_that_never_reads() {
    let srv = server(TcpLimits {
        write_timeout: Duration::from_millis(500),
        ..TcpLimits::default()
    });
    let mut s = TcpStream::connect(srv.tcp_addr).unwrap();
    // Requests until the server's answers fill the socket buffers; never read them.
    let many: String = (0..20_000).map(|i| options(&format!("n{i}"))).collect();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(many.as_bytes());
    let t = Instant::now();
    srv.shutdown();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
