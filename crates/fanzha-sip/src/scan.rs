//! A strict, zero-copy scanner that extracts from a SIP request only what a screening
//! decision and a stateless answer need. Everything it returns borrows from the datagram.
//! It never panics on any input (property-tested and fuzzed).

/// Most Via header values kept for the response (Max-Forwards starts at 70, so a request
/// cannot have passed more proxies); more is refused as malformed.
pub const MAX_VIA: usize = 70;

/// Why a message cannot be handled.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Request line malformed (or a response, or not SIP at all).
    StartLine,
    /// A header line is malformed.
    HeaderSyntax,
    /// Body cannot be delimited (Content-Length missing on a stream, larger than the data,
    /// negative, repeated with different values), or the header section is unterminated.
    Framing,
    /// A required header is missing or repeated (Via, From, To, Call-ID, CSeq).
    Missing(&'static str),
    /// Not SIP/2.0.
    Version,
    /// CSeq method differs from the request method, or CSeq number is out of range.
    CSeq,
}

/// What was extracted from a request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Method (e.g. `INVITE`).
    pub method: &'a [u8],
    /// Request-URI.
    pub uri: &'a [u8],
    /// Via values, top first.
    pub via: [&'a [u8]; MAX_VIA],
    /// How many Via values.
    pub via_count: usize,
    /// From value.
    pub from: &'a [u8],
    /// To value.
    pub to: &'a [u8],
    /// Call-ID value.
    pub call_id: &'a [u8],
    /// CSeq value.
    pub cseq: &'a [u8],
    /// P-Asserted-Identity (first).
    pub pai: Option<&'a [u8]>,
    /// Privacy.
    pub privacy: Option<&'a [u8]>,
    /// Diversion or History-Info present.
    pub diversion: Option<&'a [u8]>,
    /// The configured generic-number header.
    pub generic_number: Option<&'a [u8]>,
    /// Contact (first).
    pub contact: Option<&'a [u8]>,
    /// Length of the whole message (head + body) within the input (for streams).
    pub len: usize,
}

impl<'a> Request<'a> {
    /// A request with only its start line known; the scanners fill in the headers.
    pub(crate) fn blank(method: &'a [u8], uri: &'a [u8], len: usize) -> Request<'a> {
        Request {
            method,
            uri,
            via: [&[][..]; MAX_VIA],
            via_count: 0,
            from: &[],
            to: &[],
            call_id: &[],
            cseq: &[],
            pai: None,
            privacy: None,
            diversion: None,
            generic_number: None,
            contact: None,
            len,
        }
    }

    /// The Via values in order.
    pub fn vias(&self) -> &[&'a [u8]] {
        &self.via[..self.via_count]
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if matches!(first, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if matches!(last, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn eq_name(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Scans one request. `stream` = from TCP (Content-Length is then mandatory and the message
/// may be followed by others); `generic_header` names the generic-number header.
pub fn scan<'a>(
    msg: &'a [u8],
    stream: bool,
    generic_header: &str,
) -> Result<Request<'a>, ScanError> {
    let Some(head_end) = find(msg, b"\r\n\r\n") else {
        return Err(ScanError::Framing);
    };
    let head = &msg[..head_end + 2];
    let body_start = head_end + 4;
    let line_end = find(head, b"\r\n").ok_or(ScanError::StartLine)?;
    let line = &head[..line_end];
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces.
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ScanError::StartLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) || uri.is_empty() || uri[0] == b'<'
    {
        return Err(ScanError::StartLine);
    }
    if version.starts_with(b"SIP/") && version != b"SIP/2.0" {
        return Err(ScanError::Version);
    }
    if version != b"SIP/2.0" {
        return Err(ScanError::StartLine);
    }
    if !uri.contains(&b':') || uri.iter().any(|b| b.is_ascii_control()) {
        return Err(ScanError::StartLine);
    }
    let mut req = Request::blank(method, uri, msg.len());
    let mut content_length: Option<usize> = None;
    let (mut from_n, mut to_n, mut cid_n, mut cseq_n) = (0, 0, 0, 0);
    let mut pos = line_end + 2;
    while pos < head.len() {
        // A logical header: this line plus continuation lines starting with SP/HT.
        let mut end = pos + find(&head[pos..], b"\r\n").ok_or(ScanError::HeaderSyntax)?;
        while end + 2 < head.len() && matches!(head[end + 2], b' ' | b'\t') {
            end = end + 2 + find(&head[end + 2..], b"\r\n").ok_or(ScanError::HeaderSyntax)?;
        }
        let header = &head[pos..end];
        pos = end + 2;
        let colon = header
            .iter()
            .position(|&b| b == b':')
            .ok_or(ScanError::HeaderSyntax)?;
        let name = trim(&header[..colon]);
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(ScanError::HeaderSyntax);
        }
        let value = trim(&header[colon + 1..]);
        match name {
            n if eq_name(n, "via") || eq_name(n, "v") => {
                // One header line may carry several comma-separated Via values.
                for v in split_commas(value) {
                    if req.via_count == MAX_VIA {
                        return Err(ScanError::HeaderSyntax);
                    }
                    let v = trim(v);
                    if v.is_empty() {
                        return Err(ScanError::HeaderSyntax);
                    }
                    req.via[req.via_count] = v;
                    req.via_count += 1;
                }
            }
            n if eq_name(n, "from") || eq_name(n, "f") => {
                req.from = value;
                from_n += 1;
            }
            n if eq_name(n, "to") || eq_name(n, "t") => {
                req.to = value;
                to_n += 1;
            }
            n if eq_name(n, "call-id") || eq_name(n, "i") => {
                req.call_id = value;
                cid_n += 1;
            }
            n if eq_name(n, "cseq") => {
                req.cseq = value;
                cseq_n += 1;
            }
            n if eq_name(n, "content-length") || eq_name(n, "l") => {
                let s = std::str::from_utf8(value).map_err(|_| ScanError::Framing)?;
                let v: usize = s.trim().parse().map_err(|_| ScanError::Framing)?;
                if content_length.is_some_and(|c| c != v) {
                    return Err(ScanError::Framing);
                }
                content_length = Some(v);
            }
            n if eq_name(n, "p-asserted-identity") => {
                req.pai.get_or_insert(value);
            }
            n if eq_name(n, "privacy") => req.privacy = Some(value),
            n if eq_name(n, "diversion") || eq_name(n, "history-info") => {
                req.diversion.get_or_insert(value);
            }
            n if eq_name(n, "contact") || eq_name(n, "m") => {
                req.contact.get_or_insert(value);
            }
            n if eq_name(n, generic_header) => req.generic_number = Some(value),
            _ => {}
        }
    }
    if req.via_count == 0 {
        return Err(ScanError::Missing("Via"));
    }
    for (n, name) in [
        (from_n, "From"),
        (to_n, "To"),
        (cid_n, "Call-ID"),
        (cseq_n, "CSeq"),
    ] {
        if n != 1 {
            return Err(ScanError::Missing(name));
        }
    }
    // CSeq = number SP method, number < 2^31, method equal to the request's.
    let mut cs = req.cseq.splitn(2, |b| b.is_ascii_whitespace());
    let (Some(num), Some(m)) = (cs.next(), cs.next()) else {
        return Err(ScanError::CSeq);
    };
    let num_ok = !num.is_empty()
        && num.len() <= 10
        && num.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(num)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|n| n < 1 << 31);
    if !num_ok || trim(m) != method {
        return Err(ScanError::CSeq);
    }
    let available = msg.len() - body_start;
    match content_length {
        Some(cl) if cl > available => return Err(ScanError::Framing),
        Some(cl) => req.len = body_start + cl,
        None if stream => return Err(ScanError::Framing),
        None => req.len = msg.len(),
    }
    Ok(req)
}

/// Splits on commas outside quotes and angle brackets.
fn split_commas(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut depth = 0i32;
    let mut quoted = false;
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'"' => quoted = !quoted,
            b'\\' if quoted => i += 1,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            b',' if !quoted && depth <= 0 => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&v[start.min(v.len())..]);
    out.into_iter()
}

/// The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1`) or an addr-spec (`sip:bob@x;tag=1`).
pub fn addr_uri(value: &[u8]) -> &[u8] {
    if let Some(open) = value.iter().position(|&b| b == b'<') {
        let rest = &value[open + 1..];
        let close = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        return &rest[..close];
    }
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    trim(&value[..end])
}

/// The number a URI names: the user part of `sip:`/`sips:` (before `@`, without user
/// parameters), or the subscriber of `tel:`. `None` for other schemes and `anonymous`.
pub fn uri_number(uri: &[u8]) -> Option<&[u8]> {
    let lower_starts =
        |p: &str| uri.len() >= p.len() && uri[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let user = if lower_starts("sip:") || lower_starts("sips:") {
        let rest = &uri[uri.iter().position(|&b| b == b':')? + 1..];
        let at = rest.iter().position(|&b| b == b'@')?;
        &rest[..at]
    } else if lower_starts("tel:") {
        &uri[4..]
    } else {
        return None;
    };
    let end = user
        .iter()
        .position(|&b| b == b';' || b == b'?')
        .unwrap_or(user.len());
    let user = &user[..end];
    if user.is_empty() || user.eq_ignore_ascii_case(b"anonymous") {
        return None;
    }
    Some(user)
}

/// A URI parameter's value (`;tgrp=TG-1` → `TG-1`), searched in the whole URI.
pub fn uri_param<'a>(uri: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut i = 0;
    while i < uri.len() {
        if uri[i] == b';' {
            let rest = &uri[i + 1..];
            if rest.len() > name.len()
                && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && rest[name.len()] == b'='
            {
                let v = &rest[name.len() + 1..];
                let end = v
                    .iter()
                    .position(|&b| b == b';' || b == b'@' || b == b'?' || b == b'>')
                    .unwrap_or(v.len());
                return Some(&v[..end]);
            }
        }
        i += 1;
    }
    None
}

/// The IMEI of a `+sip.instance="<urn:gsma:imei:…>"` Contact parameter, digits only.
pub fn contact_imei(contact: &[u8]) -> Option<&[u8]> {
    let lower: Vec<u8> = contact.to_ascii_lowercase();
    let start = find(&lower, b"urn:gsma:imei:")? + b"urn:gsma:imei:".len();
    let rest = &contact[start..];
    let end = rest
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'-'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether a `Privacy` value requests identity privacy (`id`, or `header`/`user`).
pub fn privacy_restricts(v: &[u8]) -> bool {
    v.split(|&b| b == b';' || b == b',').map(trim).any(|t| {
        t.eq_ignore_ascii_case(b"id")
            || t.eq_ignore_ascii_case(b"user")
            || t.eq_ignore_ascii_case(b"header")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:+8613912345678@fanzha.example;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\r\n\
v: SIP/2.0/TCP 192.0.2.3;branch=z9hG4bK3\r\n\
From: \"Alice\" <sip:+8613500001111@a.example;user=phone>;tag=1\r\n\
To: <sip:+8613912345678@b.example>\r\n\
Call-ID: abc@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
P-Asserted-Identity: <tel:+8613500002222>\r\n\
Privacy: id\r\n\
Contact: <sip:a@192.0.2.1>;+sip.instance=\"<urn:gsma:imei:35209900-176148-1>\"\r\n\
Subject: folded\r\n  continues\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn extracts_what_a_decision_needs() {
        let r = scan(INVITE, false, "P-Generic-Number").unwrap();
        assert_eq!(r.method, b"INVITE");
        assert_eq!(r.vias().len(), 3);
        assert_eq!(
            uri_number(addr_uri(r.pai.unwrap())),
            Some(&b"+8613500002222"[..])
        );
        assert_eq!(uri_number(addr_uri(r.from)), Some(&b"+8613500001111"[..]));
        assert_eq!(uri_number(r.uri), Some(&b"+8613912345678"[..]));
        assert!(privacy_restricts(r.privacy.unwrap()));
        assert_eq!(
            contact_imei(r.contact.unwrap()),
            Some(&b"35209900-176148-1"[..])
        );
        assert_eq!(r.len, INVITE.len());
    }

    #[test]
    fn tgrp_and_anonymous() {
        assert_eq!(
            uri_param(b"tel:+8613912345678;tgrp=intl-a;trunk-context=x", "tgrp"),
            Some(&b"intl-a"[..])
        );
        assert_eq!(
            uri_param(b"sip:+86139;tgrp=vl-1;trunk-context=x@h;user=phone", "tgrp"),
            Some(&b"vl-1"[..])
        );
        assert_eq!(
            uri_number(addr_uri(
                b"\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=9"
            )),
            None
        );
    }

    #[test]
    fn malformed_requests_are_refused_specifically() {
        assert_eq!(
            scan(b"INVITE sip:a@b SIP/2.0\r\n", false, "x").unwrap_err(),
            ScanError::Framing
        );
        assert_eq!(
            scan(b"INVITE  sip:a@b SIP/2.0\r\n\r\n", false, "x").unwrap_err(),
            ScanError::StartLine
        );
        assert_eq!(
            scan(b"INVITE sip:a@b SIP/7.0\r\nVia: x\r\n\r\n", false, "x").unwrap_err(),
            ScanError::Version
        );
        let no_cseq = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: 1\r\n\r\n";
        assert_eq!(
            scan(no_cseq, false, "x").unwrap_err(),
            ScanError::Missing("CSeq")
        );
    }
}
