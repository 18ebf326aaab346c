//! A full, allocating SIP request parser: every header (folding unfolded, compact names
//! expanded, comma-separated values split where the grammar allows), the body by
//! Content-Length. It is for audit paths and, above all, the differential oracle of the
//! strict hot-path extractor in [`crate::scan`]: whatever a decision reads from a message
//! must be the same through both.

use crate::scan::{self, addr_uri, contact_imei, privacy_restricts, uri_number, uri_param};

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullRequest {
    /// Method.
    pub method: String,
    /// Request-URI.
    pub uri: String,
    /// Headers in order: canonical (long-form, lower-case) name and unfolded value.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

fn canonical(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        other => other,
    }
    .to_string()
}

/// Parses a request (datagram form: the body is what Content-Length says, or the rest).
pub fn parse(msg: &[u8]) -> Result<FullRequest, String> {
    let text_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&msg[..text_end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split("\r\n") {
        if raw.starts_with(' ') || raw.starts_with('\t') {
            let last = lines.last_mut().ok_or("continuation before any header")?;
            last.push(' ');
            last.push_str(raw.trim());
        } else {
            lines.push(raw.to_string());
        }
    }
    let mut it = lines.into_iter();
    let start = it.next().ok_or("empty")?;
    let parts: Vec<&str> = start.split(' ').collect();
    if parts.len() != 3 || parts[2] != "SIP/2.0" || parts[0].is_empty() || parts[1].is_empty() {
        return Err(format!("bad request line {start:?}"));
    }
    let mut headers = Vec::new();
    for line in it {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header without colon: {line:?}"))?;
        let name = canonical(name.trim());
        if name.is_empty() || name.contains(' ') {
            return Err(format!("bad header name in {line:?}"));
        }
        let value = value.trim().to_string();
        if name == "via" {
            for v in split_outside_quotes(&value) {
                headers.push((name.clone(), v.trim().to_string()));
            }
        } else {
            headers.push((name, value));
        }
    }
    let body_start = text_end + 4;
    let cl = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().map_err(|_| "bad Content-Length"))
        .transpose()?;
    let body = match cl {
        Some(n) if body_start + n <= msg.len() => msg[body_start..body_start + n].to_vec(),
        Some(_) => return Err("Content-Length larger than the message".into()),
        None => msg[body_start..].to_vec(),
    };
    Ok(FullRequest {
        method: parts[0].to_string(),
        uri: parts[1].to_string(),
        headers,
        body,
    })
}

fn split_outside_quotes(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut depth) = (0, false, 0i32);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

impl FullRequest {
    /// The first value of a header (canonical name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a screening decision reads from a request, as plain values (for comparison).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionView {
    /// Method.
    pub method: String,
    /// Caller (PAI, else From) number.
    pub caller: Option<String>,
    /// Callee number.
    pub callee: Option<String>,
    /// Privacy restricts identity.
    pub restricted: bool,
    /// Diversion / History-Info present.
    pub diverted: bool,
    /// Generic number header present.
    pub generic: bool,
    /// IMEI from the Contact instance.
    pub imei: Option<String>,
    /// Trunk group.
    pub tgrp: Option<String>,
    /// Number of Via values.
    pub vias: usize,
    /// Call-ID.
    pub call_id: String,
}

fn s(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The decision view through the full parser.
pub fn decision_view(r: &FullRequest, generic_header: &str) -> DecisionView {
    let identity = r
        .header("p-asserted-identity")
        .or(r.header("from"))
        .unwrap_or("");
    DecisionView {
        method: r.method.clone(),
        caller: s(uri_number(addr_uri(identity.as_bytes()))),
        callee: s(uri_number(r.uri.as_bytes())),
        restricted: r
            .header("privacy")
            .is_some_and(|p| privacy_restricts(p.as_bytes())),
        diverted: r.header("diversion").is_some() || r.header("history-info").is_some(),
        generic: r.header(&generic_header.to_ascii_lowercase()).is_some(),
        imei: r
            .header("contact")
            .and_then(|c| s(contact_imei(c.as_bytes()))),
        tgrp: s(uri_param(r.uri.as_bytes(), "tgrp")),
        vias: r.headers.iter().filter(|(n, _)| n == "via").count(),
        call_id: r.header("call-id").unwrap_or("").to_string(),
    }
}

/// The decision view through the strict extractor.
pub fn decision_view_of_scan(r: &scan::Request<'_>) -> DecisionView {
    let identity = r.pai.unwrap_or(r.from);
    DecisionView {
        method: String::from_utf8_lossy(r.method).into_owned(),
        caller: s(uri_number(addr_uri(identity))),
        callee: s(uri_number(r.uri)),
        restricted: r.privacy.is_some_and(privacy_restricts),
        diverted: r.diversion.is_some(),
        generic: r.generic_number.is_some(),
        imei: r.contact.and_then(|c| s(contact_imei(c))),
        tgrp: s(uri_param(r.uri, "tgrp")),
        vias: r.via_count,
        call_id: String::from_utf8_lossy(r.call_id).into_owned(),
    }
}
