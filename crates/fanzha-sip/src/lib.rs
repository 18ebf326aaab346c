//! SIP for fanzha — the only crate that knows SIP. An SBC sends its INVITE here and acts on
//! the answer (RFC 3261 redirect server, stateless): 302 back to the original Request-URI
//! when the call may pass, or the blocking rule's code (403, 433 Anonymity Disallowed per
//! RFC 5079, 608 Rejected per RFC 8688, or 603 Network Blocked, the ATIS "603+").
//!
//! [`scan`] extracts what a decision needs without copying; [`Handler`] turns one message
//! into the answer (pure apart from the engine's counters); [`server`] runs it on UDP and
//! TCP sockets.

pub mod full;
#[cfg(target_os = "linux")]
pub mod mmsg;
pub mod scan;
pub mod server;

use fanzha_policy::{Action, CallAttempt, Caller, Service, Verdict};
use fanzha_screen::decision_log::{DecisionLog, Entry};
use fanzha_screen::wire::VerdictWire;
use fanzha_screen::Engine;
use scan::{addr_uri, contact_imei, privacy_restricts, uri_number, uri_param, Request, ScanError};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// An address range mapped to the trunk its traffic arrives on.
#[derive(Clone, Debug)]
pub struct TrunkMapEntry {
    /// The sources.
    pub net: Cidr,
    /// Trunk id.
    pub trunk: String,
}

impl TrunkMapEntry {
    /// Parses `CIDR=TRUNK` or `IP=TRUNK`.
    pub fn parse(s: &str) -> Result<TrunkMapEntry, String> {
        let (net, trunk) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected CIDR=TRUNK_ID"))?;
        if trunk.trim().is_empty() {
            return Err(format!("{s:?}: empty trunk id"));
        }
        Ok(TrunkMapEntry {
            net: Cidr::parse(net).map_err(|e| format!("{s:?}: {e}"))?,
            trunk: trunk.trim().to_string(),
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(ip)
    }
}

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN` or `ADDR` (a single host).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr: ip, prefix })
    }

    /// Whether `ip` is in it.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// What to do with a request from a source that is neither in the trunk map nor trusted
/// (`[sip] unknown_source`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownSource {
    /// Answer 403 (the default: a misconfigured SBC learns why).
    #[default]
    Reject,
    /// Send nothing (a scanner learns nothing and costs a parse less).
    Drop,
}

/// How the redirect server answers.
#[derive(Clone, Debug)]
pub struct SipConfig {
    /// Header carrying the generic number (通用号码).
    pub generic_header: String,
    /// Source address → trunk (first match wins; a `tgrp` URI parameter overrides).
    pub trunk_map: Vec<TrunkMapEntry>,
    /// Answer blocked calls whose rule code is 608 with 603 Network Blocked + Reason instead.
    pub use_603_plus: bool,
    /// The operator's redress contact for 608's Call-Info (RFC 8688).
    pub redress_uri: String,
    /// The trust domain (RFC 3325): peers whose P-Asserted-Identity is believed and whose
    /// `tgrp` may name the trunk. From anyone else PAI is ignored (the From is screened)
    /// and the trunk comes from the source address only.
    pub trusted: Vec<Cidr>,
    /// Requests from sources in no trunk map entry and not trusted.
    pub unknown_source: UnknownSource,
}

impl Default for SipConfig {
    fn default() -> SipConfig {
        SipConfig {
            generic_header: "P-Generic-Number".into(),
            trunk_map: Vec::new(),
            use_603_plus: false,
            redress_uri: "https://fanzha.invalid/redress".into(),
            trusted: Vec::new(),
            unknown_source: UnknownSource::Reject,
        }
    }
}

impl SipConfig {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    fn mapped(&self, ip: IpAddr) -> Option<&str> {
        self.trunk_map
            .iter()
            .find(|e| e.contains(ip))
            .map(|e| e.trunk.as_str())
    }
}

/// What to do with one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this response.
    Reply(Vec<u8>),
    /// Send nothing (ACK, responses, unaddressable garbage).
    Drop,
}

/// Verdict observer: metrics and logs hook in here.
pub trait Observer: Send + Sync {
    /// Called once per decided INVITE.
    fn verdict(&self, v: &Verdict, nanos: u64);
}

/// Answers SIP messages with screening verdicts.
pub struct Handler {
    engine: Arc<Engine>,
    config: SipConfig,
    log: Option<Arc<DecisionLog>>,
    observer: Option<Arc<dyn Observer>>,
    answered: Mutex<Answered>,
}

/// Recent answers by transaction, so a retransmitted INVITE gets the same answer and is not
/// counted twice. Bounded in entries and in bytes (a 302 repeats the Request-URI, which a
/// peer may make 60 KiB long): the oldest are forgotten first.
struct Answered {
    /// Transaction hash → answer. Allocated at full size up front: growing (rehashing)
    /// under the lock stalled every INVITE behind it for milliseconds.
    map: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    /// Bytes of the answers held.
    bytes: usize,
}

const ANSWERED_MAX: usize = 65_536;
/// Most bytes of answers the retransmission cache holds.
pub const ANSWERED_BYTES: usize = 16 << 20;

impl Answered {
    fn insert(&mut self, key: u64, reply: Vec<u8>) {
        self.bytes += reply.len();
        if let Some(old) = self.map.insert(key, reply) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(key);
        }
        while self.map.len() > ANSWERED_MAX || self.bytes > ANSWERED_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(r) = self.map.remove(&old) {
                self.bytes -= r.len();
            }
        }
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        433 => "Anonymity Disallowed",
        501 => "Not Implemented",
        505 => "Version Not Supported",
        603 => "Network Blocked",
        608 => "Rejected",
        _ => "Unknown",
    }
}

fn tag_for(call_id: &[u8]) -> String {
    // FNV-1a: a deterministic To-tag, identical for every retransmission.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id {
        h ^= b as u64;
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    format!("fz{h:016x}")
}

/// A response to `req` with `code`, copying Via/From/To/Call-ID/CSeq as RFC 3261 §8.2.6
/// requires (To gets a tag when it has none).
fn response(req: &Request<'_>, code: u16, extra: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let _ = write!(Text(&mut out), "SIP/2.0 {code} {}\r\n", reason_phrase(code));
    for v in req.vias() {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in [
        ("From", req.from),
        ("To", req.to),
        ("Call-ID", req.call_id),
        ("CSeq", req.cseq),
    ] {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        if name == "To" && !has_tag(value) {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(tag_for(req.call_id).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"Server: fanzha\r\nContent-Length: 0\r\n\r\n");
    out
}

fn has_tag(to: &[u8]) -> bool {
    let lower = to.to_ascii_lowercase();
    let after = lower
        .iter()
        .rposition(|&b| b == b'>')
        .map(|i| &lower[i..])
        .unwrap_or(&lower[..]);
    after.windows(5).any(|w| w == b";tag=")
}

struct Text<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

const KNOWN_METHODS: &[&[u8]] = &[
    b"BYE",
    b"REGISTER",
    b"INFO",
    b"UPDATE",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"MESSAGE",
    b"REFER",
    b"PUBLISH",
];

impl Handler {
    /// A handler over an engine.
    pub fn new(
        engine: Arc<Engine>,
        config: SipConfig,
        log: Option<Arc<DecisionLog>>,
        observer: Option<Arc<dyn Observer>>,
    ) -> Handler {
        Handler {
            engine,
            config,
            log,
            observer,
            answered: Mutex::new(Answered {
                map: HashMap::with_capacity(ANSWERED_MAX + 1),
                order: VecDeque::with_capacity(ANSWERED_MAX + 1),
                bytes: 0,
            }),
        }
    }

    /// Answers one message received from `src` at unix time `now`. For streams, returns the
    /// number of bytes consumed as well (0 = incomplete, wait for more).
    pub fn handle_stream(&self, buf: &[u8], src: SocketAddr, now: i64) -> (usize, Outcome) {
        match scan::scan(buf, true, &self.config.generic_header) {
            Ok(req) => {
                let len = req.len;
                (len, self.answer(&req, src, now))
            }
            Err(ScanError::Framing)
                if buf.len() < 65_536 && !buf.windows(4).any(|w| w == b"\r\n\r\n") =>
            {
                (0, Outcome::Drop)
            }
            Err(ScanError::Framing) if buf.len() < 65_536 && content_length_exceeds(buf) => {
                (0, Outcome::Drop)
            }
            Err(e) => (buf.len(), self.refuse(buf, e)),
        }
    }

    /// Answers one datagram.
    pub fn handle_datagram(&self, msg: &[u8], src: SocketAddr, now: i64) -> Outcome {
        match scan::scan(msg, false, &self.config.generic_header) {
            Ok(req) => self.answer(&req, src, now),
            Err(e) => self.refuse(msg, e),
        }
    }

    /// A malformed message: 400 (505 for another version) when it can be addressed, else
    /// nothing. Responses are never answered.
    fn refuse(&self, msg: &[u8], e: ScanError) -> Outcome {
        if msg.starts_with(b"SIP/") {
            return Outcome::Drop;
        }
        let Some(req) = addressable(msg) else {
            return Outcome::Drop;
        };
        if req.method == b"ACK" {
            return Outcome::Drop;
        }
        let code = if e == ScanError::Version { 505 } else { 400 };
        let why = match e {
            ScanError::StartLine => "malformed request line".to_string(),
            ScanError::HeaderSyntax => "malformed header".to_string(),
            ScanError::Framing => "bad Content-Length or framing".to_string(),
            ScanError::Missing(h) => format!("missing or repeated {h}"),
            ScanError::Version => "only SIP/2.0 is supported".to_string(),
            ScanError::CSeq => "CSeq number out of range or method mismatch".to_string(),
        };
        Outcome::Reply(response(
            &req,
            code,
            &format!("Warning: 399 fanzha \"{why}\"\r\n"),
        ))
    }

    fn answer(&self, req: &Request<'_>, src: SocketAddr, now: i64) -> Outcome {
        if req.method == b"ACK" {
            return Outcome::Drop;
        }
        if self.config.mapped(src.ip()).is_none() && !self.config.trusts(src.ip()) {
            return match self.config.unknown_source {
                UnknownSource::Drop => Outcome::Drop,
                UnknownSource::Reject => Outcome::Reply(response(
                    req,
                    403,
                    "Warning: 399 fanzha \"source is not a configured peer\"\r\n",
                )),
            };
        }
        match req.method {
            b"INVITE" => self.invite(req, src, now),
            b"ACK" => Outcome::Drop,
            b"OPTIONS" => Outcome::Reply(response(
                req,
                200,
                "Allow: INVITE, ACK, CANCEL, OPTIONS\r\nAccept: application/sdp\r\n",
            )),
            b"CANCEL" => Outcome::Reply(response(req, 200, "")),
            m if KNOWN_METHODS.contains(&m) => Outcome::Reply(response(
                req,
                405,
                "Allow: INVITE, ACK, CANCEL, OPTIONS\r\n",
            )),
            _ => Outcome::Reply(response(req, 501, "")),
        }
    }

    /// The transaction's identity (Call-ID, CSeq, top Via with its branch) as a 64-bit
    /// keyed hash: two live transactions collide with probability ~2^-64 per pair.
    fn transaction_key(req: &Request<'_>) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write(req.call_id);
        h.write_u8(0);
        h.write(req.cseq);
        h.write_u8(0);
        h.write(req.vias()[0]);
        h.finish()
    }

    fn invite(&self, req: &Request<'_>, src: SocketAddr, now: i64) -> Outcome {
        let key = Self::transaction_key(req);
        if let Some(prev) = self
            .answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(&key)
        {
            return Outcome::Reply(prev.clone());
        }
        // No unlogged verdict when the policy says so: the gateway tries another route.
        if self.log.as_ref().is_some_and(|l| l.refusing()) {
            return Outcome::Reply(response(
                req,
                503,
                "Retry-After: 5\r\nWarning: 399 fanzha \"decision log cannot be written\"\r\n",
            ));
        }
        let started = std::time::Instant::now();
        let snapshot = self.engine.snapshot();
        // Only a trusted peer's tgrp may pick the trunk, and only its PAI is the identity.
        let trusted = self.config.trusts(src.ip());
        let trunk_id: Option<&str> = uri_param(req.uri, "tgrp")
            .filter(|_| trusted)
            .and_then(|t| std::str::from_utf8(t).ok())
            .or_else(|| self.config.mapped(src.ip()));
        let Some(trunk) = trunk_id.and_then(|t| snapshot.trunk(t)) else {
            let why = format!(
                "Warning: 399 fanzha \"no trunk for source {} ({})\"\r\n",
                src.ip(),
                trunk_id.unwrap_or_default()
            );
            return Outcome::Reply(response(req, 403, &why));
        };
        let identity = req.pai.filter(|_| trusted).unwrap_or(req.from);
        let caller_text = uri_number(addr_uri(identity))
            .and_then(|u| std::str::from_utf8(u).ok())
            .unwrap_or("");
        let callee_text = uri_number(req.uri)
            .and_then(|u| std::str::from_utf8(u).ok())
            .unwrap_or("");
        let call = CallAttempt {
            ts: now,
            trunk,
            caller: Caller::from_presented(caller_text),
            restricted: req.privacy.is_some_and(privacy_restricts),
            callee: fanzha_model::parse(callee_text).ok(),
            has_generic_number: req.generic_number.is_some_and(|g| !g.is_empty()),
            has_diversion: req.diversion.is_some(),
            service: Service::Voice,
            imei: req
                .contact
                .and_then(contact_imei)
                .and_then(|i| std::str::from_utf8(i).ok())
                .and_then(fanzha_screen::compile::imei_key),
        };
        let verdict = self.engine.decide(&snapshot, &call);
        let reply = self.verdict_response(req, &verdict);
        if let Some(o) = &self.observer {
            o.verdict(&verdict, started.elapsed().as_nanos() as u64);
        }
        if let Some(log) = &self.log {
            let restricted = call.restricted;
            let fields = [
                req.call_id,
                trunk_id.unwrap_or("").as_bytes(),
                caller_text.as_bytes(),
                callee_text.as_bytes(),
            ];
            match pack_decision(now, &verdict, restricted, src, &fields) {
                Some(d) => log.log_deferred(d),
                // Too large to pack (an enormous Call-ID): rendered here instead.
                None => log.log(Entry {
                    ts: now,
                    generation: verdict.generation,
                    call: call_json(&fields, restricted, &src.to_string()),
                    verdict: verdict_json(req.call_id, &verdict),
                }),
            }
        }
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, reply.clone());
        Outcome::Reply(reply)
    }

    fn verdict_response(&self, req: &Request<'_>, v: &Verdict) -> Vec<u8> {
        let rules: Vec<&str> = v.rules.iter().map(|r| r.as_str()).collect();
        let mut extra = format!("X-Fanzha-Generation: {}\r\n", v.generation);
        if !rules.is_empty() {
            let _ = write!(extra, "X-Fanzha-Rules: {}\r\n", rules.join(","));
        }
        match v.action {
            Action::Allow => {
                let uri = String::from_utf8_lossy(req.uri);
                let _ = write!(extra, "Contact: <{uri}>\r\n");
                if v.strip_generic_number {
                    let _ = write!(extra, "X-Fanzha-Strip: {}\r\n", self.config.generic_header);
                }
                response(req, 302, &extra)
            }
            Action::Block => {
                let mut code = v.code;
                if code == 608 && self.config.use_603_plus {
                    code = 603;
                    extra.push_str("Reason: SIP;cause=603;text=\"Network Blocked\"\r\n");
                } else if code == 608 {
                    let _ = write!(
                        extra,
                        "Call-Info: <{}>;purpose=jwscard\r\n",
                        self.config.redress_uri
                    );
                }
                if let Some(first) = v.rules.iter().find(|r| r.code() == Some(v.code)) {
                    let _ = write!(
                        extra,
                        "Warning: 399 fanzha \"{} ({})\"\r\n",
                        first.as_str(),
                        first.requirement()
                    );
                }
                response(req, code, &extra)
            }
        }
    }
}

/// A JSON string literal.
/// Packs what a SIP decision's log entry needs (see [`render_decision`]):
/// action, code, generation, rules, shadow, strip, restricted, then the source address and the four
/// fields (Call-ID, trunk, caller, callee), each with a u16 length.
fn pack_decision(
    now: i64,
    v: &fanzha_policy::Verdict,
    restricted: bool,
    src: SocketAddr,
    fields: &[&[u8]; 4],
) -> Option<fanzha_screen::decision_log::Deferred> {
    use fanzha_screen::decision_log::{Deferred, DEFERRED_BYTES};
    use std::io::Write as _;
    let mut d = Deferred {
        ts: now,
        generation: v.generation,
        data: [0; DEFERRED_BYTES],
        len: 0,
        render: render_decision,
    };
    let mut w = std::io::Cursor::new(&mut d.data[..]);
    let mut put = |bytes: &[u8]| w.write_all(bytes).ok();
    put(&[matches!(v.action, fanzha_policy::Action::Block) as u8])?;
    put(&v.code.to_le_bytes())?;
    put(&v.generation.to_le_bytes())?;
    put(&v.rules.bits().to_le_bytes())?;
    put(&v.shadow.bits().to_le_bytes())?;
    put(&[v.strip_generic_number as u8, restricted as u8])?;
    let mut addr = [0u8; 64];
    let mut a = std::io::Cursor::new(&mut addr[..]);
    write!(a, "{src}").ok()?;
    let addr_len = a.position() as usize;
    for f in std::iter::once(&addr[..addr_len]).chain(fields.iter().copied()) {
        put(&u16::try_from(f.len()).ok()?.to_le_bytes())?;
        put(f)?;
    }
    d.len = w.position() as u16;
    Some(d)
}

/// The writer-side half of [`pack_decision`]: the call and verdict JSON of the entry.
fn render_decision(data: &[u8]) -> (String, String) {
    fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, rest) = data.split_at(n.min(data.len()));
        *data = rest;
        head
    }
    let mut rest = data;
    let block = take(&mut rest, 1) == [1];
    let code = u16::from_le_bytes(take(&mut rest, 2).try_into().unwrap_or_default());
    let generation = u64::from_le_bytes(take(&mut rest, 8).try_into().unwrap_or_default());
    let rules = u32::from_le_bytes(take(&mut rest, 4).try_into().unwrap_or_default());
    let shadow = u32::from_le_bytes(take(&mut rest, 4).try_into().unwrap_or_default());
    let flags = take(&mut rest, 2).to_vec();
    let mut strings: Vec<&[u8]> = Vec::with_capacity(5);
    for _ in 0..5 {
        let n = u16::from_le_bytes(take(&mut rest, 2).try_into().unwrap_or_default());
        strings.push(take(&mut rest, n as usize));
    }
    let verdict = fanzha_policy::Verdict {
        action: if block {
            fanzha_policy::Action::Block
        } else {
            fanzha_policy::Action::Allow
        },
        code,
        rules: fanzha_policy::RuleSet::from_bits(rules),
        shadow: fanzha_policy::RuleSet::from_bits(shadow),
        strip_generic_number: flags.first() == Some(&1),
        generation,
    };
    let fields = [strings[1], strings[2], strings[3], strings[4]];
    (
        call_json(
            &fields,
            flags.get(1) == Some(&1),
            &String::from_utf8_lossy(strings[0]),
        ),
        verdict_json(strings[1], &verdict),
    )
}

/// The call as the decision log records it.
fn call_json(fields: &[&[u8]; 4], restricted: bool, src: &str) -> String {
    let text = |b: &[u8]| json_text(&String::from_utf8_lossy(b));
    format!(
        "{{\"id\":{},\"trunk\":{},\"caller\":{},\"callee\":{},\"presentation\":\"{}\",\"source\":\"{src}\",\"transport\":\"sip\"}}",
        text(fields[0]),
        text(fields[1]),
        text(fields[2]),
        text(fields[3]),
        if restricted { "restricted" } else { "allowed" },
    )
}

/// The verdict as the decision log records it (the HTTP contract's verdict object).
fn verdict_json(call_id: &[u8], v: &fanzha_policy::Verdict) -> String {
    let id = serde_json::Value::String(String::from_utf8_lossy(call_id).into_owned());
    serde_json::to_string(&VerdictWire::new(id, v)).unwrap_or_default()
}

fn json_text(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn content_length_exceeds(buf: &[u8]) -> bool {
    // A stream whose declared body has not fully arrived yet: wait rather than refuse.
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return true;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    for line in head.split("\r\n") {
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case("content-length") || n == "l" {
                if let Ok(cl) = v.trim().parse::<usize>() {
                    // Saturating: a declared length near usize::MAX must not wrap around.
                    return buf.len() < head_end.saturating_add(4).saturating_add(cl);
                }
            }
        }
    }
    false
}

/// The headers needed to address an error response, found leniently in a message the strict
/// scanner refused.
fn addressable(msg: &[u8]) -> Option<Request<'_>> {
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(msg.len());
    let head = &msg[..head_end];
    let first = head.split(|&b| b == b'\n').next()?;
    let method = first
        .split(|&b| b == b' ')
        .next()
        .filter(|m| !m.is_empty())?;
    let mut req = Request::blank(method, b"", msg.len());
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon])
            .trim()
            .to_ascii_lowercase();
        let value = line[colon + 1..].trim_ascii();
        match name.as_str() {
            "via" | "v" if req.via_count < scan::MAX_VIA => {
                req.via[req.via_count] = value;
                req.via_count += 1;
            }
            "from" | "f" => req.from = value,
            "to" | "t" => req.to = value,
            "call-id" | "i" => req.call_id = value,
            "cseq" => req.cseq = value,
            _ => {}
        }
    }
    let complete = req.via_count > 0
        && !req.from.is_empty()
        && !req.to.is_empty()
        && !req.call_id.is_empty()
        && !req.cseq.is_empty();
    complete.then_some(req)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bounds {
    use super::*;

    #[test]
    fn the_retransmission_cache_is_bounded_in_bytes() {
        let mut a = Answered {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        };
        for k in 0..1000u64 {
            a.insert(k, vec![0u8; 60_000]);
        }
        assert!(a.bytes <= ANSWERED_BYTES, "{}", a.bytes);
        assert_eq!(a.bytes, a.map.values().map(Vec::len).sum::<usize>());
        assert_eq!(a.map.len(), a.order.len());
        assert!(a.map.contains_key(&999) && !a.map.contains_key(&0));
        // A key answered again replaces its answer without a second place in the order.
        a.insert(999, vec![0u8; 10]);
        assert_eq!(a.map.len(), a.order.len());
    }

    #[test]
    fn a_declared_length_near_the_maximum_does_not_wrap() {
        let msg = format!(
            "INVITE sip:x@y SIP/2.0\r\nContent-Length: {}\r\n\r\n",
            usize::MAX
        );
        assert!(
            content_length_exceeds(msg.as_bytes()),
            "still waiting for the body"
        );
    }
}
