//! `fanzha serve` end to end on real sockets: HTTP on a real port, SIP over UDP and TCP, a
//! ledger write through the API blocking the next SIP call, SIPp as the real peer, config
//! validation, graceful shutdown on SIGTERM.

mod common;

use common::{fanzha_cmd as fanzha, import_example};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SIPP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sipp");

struct Service {
    child: Child,
    http: SocketAddr,
    /// A bearer token per role the tests use, made with `fanzha auth add-token` before the
    /// service started.
    tokens: std::collections::HashMap<&'static str, String>,
    sip_udp: SocketAddr,
    sip_tcp: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bearer token made with the CLI.
fn add_token(data: &Path, global: &[&str], name: &str, role: &str) -> String {
    let o = fanzha(data)
        .args(global)
        .args(["auth", "add-token", name, "--role", role])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["token"].as_str().unwrap().to_string()
}

const ROLES: [&str; 6] = [
    "gateway",
    "system_admin",
    "monitoring",
    "ingest",
    "analyst",
    "supervisor",
];

fn start(data: &Path, extra: &[&str]) -> Service {
    start_with(data, &[], extra)
}

/// `fanzha GLOBAL… serve …EXTRA`, tokens made first with the same global flags.
fn start_with(data: &Path, global: &[&str], extra: &[&str]) -> Service {
    let tokens = ROLES
        .iter()
        .map(|&r| (r, add_token(data, global, &format!("t-{r}"), r)))
        .collect();
    let mut child = fanzha(data)
        .args(global)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--sip",
            "127.0.0.1:0",
            "--trunk-map",
            "127.0.0.0/8=intl-a",
        ])
        .args(extra)
        .env("FANZHA_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .parse()
            .unwrap()
    };
    Service {
        tokens,
        http: field("http"),
        sip_udp: field("sip_udp"),
        sip_tcp: field("sip_tcp"),
        child,
    }
}

impl Service {
    /// A request with the token of the role the path needs (`/healthz`: none).
    fn http(&self, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
        let role = match path {
            p if p.starts_with("/v1/screen") => Some("gateway"),
            p if p.starts_with("/v1/ledger/") && method == "POST" => Some("system_admin"),
            p if p.starts_with("/v1/ledger/") => Some("analyst"),
            p if p.starts_with("/metrics") => Some("monitoring"),
            p if p.starts_with("/v1/cdr") => Some("ingest"),
            _ => None,
        };
        let token = role.map(|r| self.tokens[r].as_str());
        http(self.http, token, method, path, content_type, body)
    }
}

fn http(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: fanzha\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn invite(caller: &str, call_id: &str, transport: &str) -> String {
    format!(
        "INVITE sip:13912345678@fanzha.invalid SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:5999;branch=z9hG4bK{call_id}\r\nFrom: <sip:{caller}@127.0.0.1>;tag=1\r\nTo: <sip:13912345678@fanzha.invalid>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn sip_udp(addr: SocketAddr, msg: &str) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(msg.as_bytes(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn http_and_sip_share_one_engine_and_ledger_writes_block_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let svc = start(dir.path(), &[]);
    let (s, body) = svc.http("GET", "/healthz", "application/json", "");
    assert_eq!(s, 200, "{body}");
    let (s, body) = svc.http(
        "POST",
        "/v1/screen",
        "application/json",
        r#"{"id":"h1","ts":"2026-11-30T09:00:00+08:00","trunk":"intl-a","caller":"+8613500001111","callee":"13912345678"}"#,
    );
    assert_eq!(s, 200);
    assert!(body.contains("intl-domestic-cli"), "{body}");
    // SIP over UDP and TCP.
    let r = sip_udp(svc.sip_udp, &invite("+85291234567", "u1", "UDP"));
    assert!(r.starts_with("SIP/2.0 302"), "{r}");
    let mut t = TcpStream::connect(svc.sip_tcp).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t.write_all(invite("+8613500001111", "t1", "TCP").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = t.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 608"));
    // A fraud number added through the API is blocked on the next call.
    let csv = "number,source,reason,added_at,expires_at\n+85261234567,detection,涉诈,,\n";
    let (s, body) = svc.http("POST", "/v1/ledger/blocklist", "text/csv", csv);
    assert_eq!(s, 200, "{body}");
    let started = std::time::Instant::now();
    let r = sip_udp(svc.sip_udp, &invite("+85261234567", "u2", "UDP"));
    assert!(r.starts_with("SIP/2.0 608"), "{r}");
    assert!(r.contains("number-blocklisted"));
    assert!(started.elapsed() < Duration::from_secs(1));
    let (_, metrics) = svc.http("GET", "/metrics", "text/plain", "");
    assert!(
        metrics.contains(
            "fanzha_verdict_rules_total{rule=\"number-blocklisted\",requirement=\"R15.3\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let mut svc = start(dir.path(), &[]);
    let _ = sip_udp(svc.sip_udp, &invite("+85291234567", "g1", "UDP"));
    let pid = svc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = svc.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let v = fanzha(dir.path())
        .args(["decisions", "verify"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("\"records\":1"),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
}

#[test]
fn config_errors_are_all_reported_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[sip]\nlisten = \"nowhere\"\nudp_threads = 0\ntrunk_map = [\"10.0.0.0/99=x\"]\n[screening]\nshadow = [\"no-such-rule\"]\n[bogus]\n[monitor]\nmodel = \"/no/such/model.json\"\nrules = \"/no/such/rules.toml\"\n[kafka]\ntopic = \"\"\n").unwrap();
    let o = fanzha(dir.path())
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for needle in [
        "sip.listen",
        "sip.udp_threads",
        "prefix length",
        "no-such-rule",
        "unknown section [bogus]",
        "monitor.model: /no/such/model.json is not a readable file",
        "monitor.rules: /no/such/rules.toml",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    // The shipped example is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/serve.example.toml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("0.0.0.0:5060", "127.0.0.1:0")
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let ok_cfg = dir.path().join("ok.toml");
    std::fs::write(&ok_cfg, text).unwrap();
    let mut child = fanzha(dir.path())
        .args(["serve", "--config", ok_cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("fanzha serve: http="), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// SIPp (Debian package sip-tester) against the server: allowed (302 + ACK), blocked (608),
/// anonymous (433), OPTIONS (200). `scripts/test.sh` installs SIPp.
#[test]
fn sipp_interop() {
    let sipp = which("sipp")
        .expect("SIPp is not installed: run the tests with scripts/test.sh (installs sip-tester)");
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let svc = start(dir.path(), &[]);
    let template = std::fs::read_to_string(format!("{SIPP}/invite.xml")).unwrap();
    let cases = [
        ("allowed", "+85291234567", "", "302"),
        ("blocked", "+8613500001111", "", "608"),
        ("anonymous", "+85291234567", "      Privacy: id\n", "433"),
    ];
    for (name, caller, extra, expect) in cases {
        let path = dir.path().join(format!("{name}.xml"));
        std::fs::write(
            &path,
            template
                .replace("{CALLER}", caller)
                .replace("{EXTRA}", extra)
                .replace("{EXPECT}", expect),
        )
        .unwrap();
        run_sipp(&sipp, &path, svc.sip_udp, dir.path(), name);
    }
    run_sipp(
        &sipp,
        Path::new(&format!("{SIPP}/options.xml")),
        svc.sip_udp,
        dir.path(),
        "options",
    );
}

fn run_sipp(sipp: &Path, scenario: &Path, target: SocketAddr, dir: &Path, name: &str) {
    let o = Command::new(sipp)
        .current_dir(dir)
        .args([
            "-sf",
            scenario.to_str().unwrap(),
            "-s",
            "13912345678",
            "-i",
            "127.0.0.1",
            "-m",
            "3",
            "-r",
            "10",
            "-timeout",
            "15s",
            "-nostdin",
            "-trace_err",
        ])
        .arg(target.to_string())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "SIPp {name} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// The burst dialler of the monitor tests: 20 calls in 40 s from `caller`, native CSV rows.
fn burst_rows(caller: &str) -> Vec<String> {
    (0..20)
        .map(|i| {
            format!(
                "2026-11-30T10:00:{:02}+08:00,{caller},+86139{:08},0,ic-telecom,,",
                i * 2,
                i * 7919
            )
        })
        .collect()
}

fn screen_interconnect(svc: &Service, caller: &str) -> String {
    let (s, body) = svc.http(
        "POST",
        "/v1/screen",
        "application/json",
        &format!(
            r#"{{"id":"k","ts":"2026-11-30T11:00:00+08:00","trunk":"ic-telecom","caller":"{caller}","callee":"13912345678"}}"#
        ),
    );
    assert_eq!(s, 200, "{body}");
    body
}

#[test]
fn call_records_over_http_dispose_and_block_on_a_real_port() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let svc = start(dir.path(), &[]);
    let caller = "+8618900000001";
    assert!(screen_interconnect(&svc, caller).contains("\"allow\""));
    let body = format!(
        "start,caller,callee,duration_s,trunk,imei,cell\n{}\n",
        burst_rows(caller).join("\n")
    );
    let (s, report) = svc.http("POST", "/v1/cdr", "text/csv", &body);
    assert_eq!(s, 200, "{report}");
    assert!(report.contains("\"disposals\":1"), "{report}");
    let verdict = screen_interconnect(&svc, caller);
    assert!(verdict.contains("number-blocklisted"), "{verdict}");
    // The disposal is an audited ledger event.
    let o = common::fanzha_in(dir.path(), &["ledger", "history", "blocklist", caller]);
    let history = String::from_utf8_lossy(&o.stdout);
    assert!(history.contains("dispose_block"), "{history}");
}

/// Tansu, the Kafka-compatible broker CI starts (scripts/test.sh); the test is required
/// there (`FANZHA_REQUIRE_KAFKA=1`) and skipped with a notice on a machine without it.
fn tansu() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("FANZHA_TANSU")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| which("tansu"))
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(Path::new(&home).join(".cargo/bin/tansu")).filter(|p| p.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("FANZHA_REQUIRE_KAFKA").is_none(),
            "FANZHA_REQUIRE_KAFKA is set but no tansu binary was found"
        );
        eprintln!("skipped: no tansu broker on this machine (scripts/test.sh installs it)");
    }
    found
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kafka_records_in_disposal_visible_in_screening() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let Some(tansu) = tansu() else { return };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("tcp://127.0.0.1:{port}");
    let _broker = Broker(
        Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let brokers = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&brokers).is_err() {
        assert!(std::time::Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let created = Command::new(&tansu)
        .args([
            "topic",
            "create",
            "cdr",
            "--partitions",
            "2",
            "--broker",
            &url,
        ])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let svc = start(
        dir.path(),
        &["--kafka-brokers", &brokers, "--kafka-topic", "cdr"],
    );
    let caller = "+8618900000002";
    assert!(screen_interconnect(&svc, caller).contains("\"allow\""));
    // The producer side of the contract: one record per message, keyed by the caller so one
    // number's records stay in one partition (and reach one monitor instance).
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut rows = burst_rows(caller);
    rows.insert(3, "not,a,record".into());
    for row in &rows {
        producer
            .send(BaseRecord::to("cdr").key(caller).payload(row))
            .unwrap();
    }
    producer.flush(Duration::from_secs(20)).unwrap();
    // Joining the consumer group takes Tansu ~23 s; then disposal → snapshot → block.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let verdict = screen_interconnect(&svc, caller);
        if verdict.contains("number-blocklisted") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not blocked after 120 s: {verdict}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (_, metrics) = svc.http("GET", "/metrics", "text/plain", "");
    assert!(
        metrics.contains("fanzha_monitor_records_total{outcome=\"processed\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fanzha_monitor_records_total{outcome=\"bad\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fanzha_monitor_disposals_total 1"),
        "{metrics}"
    );
}

/// The attacks that worked before there was a door (issue #15), on a real port: each now
/// gets 401 without a credential and 403 with the wrong role; a revocation made with the
/// CLI while the service runs counts within a second.
#[test]
fn the_door_on_a_real_port_refuses_what_anyone_could_do_before() {
    let dir = tempfile::tempdir().unwrap();
    import_example(dir.path());
    let svc = start(dir.path(), &[]);
    let gw = Some(svc.tokens["gateway"].as_str());
    let analyst = Some(svc.tokens["analyst"].as_str());
    let supervisor = Some(svc.tokens["supervisor"].as_str());
    // 1. Re-classify the international trunk as access: refused.
    let trunk = "trunk_id,kind,owner_uscc,peer,contracted_numbers,forwarding_approved,state\nintl-a,access,,,,false,active\n";
    let (s, body) = http(
        svc.http,
        None,
        "POST",
        "/v1/ledger/trunks",
        "text/csv",
        trunk,
    );
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("\"unauthenticated\""), "{body}");
    let (s, _) = http(svc.http, gw, "POST", "/v1/ledger/trunks", "text/csv", trunk);
    assert_eq!(s, 403);
    // 2. Reveal an ID number with an empty actor header: refused; an analyst: refused; a
    // supervisor without a purpose: 400; with one: in clear, and audited.
    let reveal = "/v1/ledger/subscribers/13500001111?reveal=true";
    let (s, _) = http(svc.http, None, "GET", reveal, "", "");
    assert_eq!(s, 401);
    let (s, body) = http(svc.http, analyst, "GET", reveal, "", "");
    assert_eq!(s, 403, "{body}");
    let (s, body) = http(svc.http, supervisor, "GET", reveal, "", "");
    assert_eq!(s, 400, "{body}");
    let (s, body) = http(
        svc.http,
        supervisor,
        "GET",
        &format!("{reveal}&purpose=case-1"),
        "",
        "",
    );
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("412723199010050012"), "{body}");
    // 3. Walk subscribers through /v1/numbers: refused without a credential; masked for an
    // analyst.
    let (s, _) = http(svc.http, None, "GET", "/v1/numbers/13500001111", "", "");
    assert_eq!(s, 401);
    let (s, body) = http(svc.http, analyst, "GET", "/v1/numbers/13500001111", "", "");
    assert_eq!(s, 200);
    assert!(
        body.contains("412723********0012") && !body.contains("412723199010050012"),
        "{body}"
    );
    // 4. Fake call records to get a number suspended: refused.
    let cdr = format!(
        "start,caller,callee,duration_s,trunk,imei,cell\n{}\n",
        burst_rows("+8618900000001").join("\n")
    );
    let (s, _) = http(svc.http, None, "POST", "/v1/cdr", "text/csv", &cdr);
    assert_eq!(s, 401);
    let (s, _) = http(svc.http, gw, "POST", "/v1/cdr", "text/csv", &cdr);
    assert_eq!(s, 403);
    // Health stays open.
    assert_eq!(http(svc.http, None, "GET", "/healthz", "", "").0, 200);
    // A revocation by the CLI counts within a second on the running service.
    let call = r#"{"id":"r","ts":"2026-11-30T09:00:00+08:00","trunk":"intl-a","caller":"+85291234567","callee":"13912345678"}"#;
    assert_eq!(
        http(svc.http, gw, "POST", "/v1/screen", "application/json", call).0,
        200
    );
    let o = fanzha(dir.path())
        .args(["auth", "revoke", "t-gateway"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let revoked = std::time::Instant::now();
    loop {
        let (s, _) = http(svc.http, gw, "POST", "/v1/screen", "application/json", call);
        if s == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every one of these is on record, with the client's address.
    drop(svc);
    let o = fanzha(dir.path())
        .args(["audit", "export"])
        .output()
        .unwrap();
    let trail: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reveal = trail
        .iter()
        .find(|r| r["action"] == "reveal" && r["outcome"] == "success")
        .unwrap();
    assert_eq!(reveal["principal"], "t-supervisor");
    assert!(
        reveal["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{reveal}"
    );
    assert!(
        trail
            .iter()
            .filter(|r| r["action"] == "authenticate")
            .count()
            >= 5
    );
    assert!(trail
        .iter()
        .any(|r| r["action"] == "authorize" && r["principal"] == "t-gateway"));
    let o = fanzha(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

/// HTTPS when `[http] tls_cert`/`tls_key` are set (rustls): a client that trusts the
/// certificate gets answers; the session cookie is marked Secure.
#[test]
fn https_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let svc = start(&data, &["--config", config.to_str().unwrap()]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let https = |method: &str, path: &str, token: Option<&str>| -> String {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
        let sock = TcpStream::connect(svc.http).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            tls,
            "{method} {path} HTTP/1.1\r\nHost: fanzha\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = tls.read_to_string(&mut out);
        out
    };
    assert!(https("GET", "/healthz", None).starts_with("HTTP/1.1 200"));
    let metrics = https("GET", "/metrics", Some(&svc.tokens["monitoring"]));
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(https("GET", "/metrics", None).starts_with("HTTP/1.1 401"));
    // Plain HTTP on the TLS port gets no answer.
    let mut plain = TcpStream::connect(svc.http).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: fanzha\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

/// The door on the PostgreSQL backend: principals and the audit trail in the server, a
/// revocation by the CLI (another connection) refused by the running service within a
/// second, and the trail verifying.
#[test]
fn the_door_on_postgresql() {
    use fanzha_ledger_postgres::PgStore;
    let url = std::env::var("FANZHA_TEST_DATABASE_URL")
        .expect("FANZHA_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh");
    let schema = format!("door_{}", std::process::id());
    PgStore::drop_schema(&url, &schema).unwrap();
    drop(PgStore::connect_in_schema(&url, Some(&schema)).unwrap());
    let in_schema = format!("{url}?options=-csearch_path%3D{schema}");
    let global = ["--database-url", in_schema.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let svc = start_with(dir.path(), &global, &[]);
    let gw = Some(svc.tokens["gateway"].as_str());
    let call = r#"{"id":"p","ts":"2026-11-30T09:00:00+08:00","trunk":"intl-a","caller":"+85291234567","callee":"13912345678"}"#;
    let (s, body) = http(svc.http, gw, "POST", "/v1/screen", "application/json", call);
    assert_eq!(s, 200, "{body}");
    let analyst = Some(svc.tokens["analyst"].as_str());
    let (s, _) = http(
        svc.http,
        analyst,
        "GET",
        "/v1/ledger/subscribers/13500001111?reveal=true&purpose=x",
        "",
        "",
    );
    assert_eq!(s, 403);
    let o = fanzha(dir.path())
        .args(global)
        .args(["auth", "revoke", "t-gateway"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let revoked = std::time::Instant::now();
    while http(svc.http, gw, "POST", "/v1/screen", "application/json", call).0 != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(svc);
    let o = fanzha(dir.path())
        .args(global)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["records"].as_u64().unwrap() >= 8, "{v}");
    PgStore::drop_schema(&url, &schema).unwrap();
}
