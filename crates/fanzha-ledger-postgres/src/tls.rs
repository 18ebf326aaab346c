//! PostgreSQL over TLS when the URL asks for it: `sslmode=require` (or `verify-ca`,
//! `verify-full`) with `sslrootcert=FILE`, the CA that signed the server's certificate.
//! The server's certificate is always verified, chain and address: unlike libpq's
//! `require`, an unverified TLS connection is refused, since it would trust whatever
//! answers on the network.

use fanzha_ledger::StoreError;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::Database(msg.into())
}

/// The URL as tokio-postgres reads it (our TLS parameters taken out) and the TLS connector
/// it asks for, if any.
pub fn parse(url: &str) -> Result<(String, Option<MakeRustlsConnect>), StoreError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => return Ok((url.to_string(), None)),
    };
    let mut kept = Vec::new();
    let (mut mode, mut root) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(v.to_string()),
            "sslrootcert" => root = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
    }
    let encrypt = match mode.as_deref() {
        None | Some("disable") => false,
        Some("require" | "verify-ca" | "verify-full") => true,
        Some("prefer" | "allow") => {
            return Err(bad(
                "sslmode=prefer/allow would fall back to an unencrypted connection: use sslmode=require with sslrootcert=FILE, or sslmode=disable",
            ))
        }
        Some(other) => return Err(bad(format!("sslmode={other} is not disable, require, verify-ca or verify-full"))),
    };
    if !encrypt {
        if root.is_some() {
            return Err(bad("sslrootcert is given but sslmode is not require"));
        }
        let mut u = base.to_string();
        if !kept.is_empty() {
            u.push('?');
            u.push_str(&kept.join("&"));
        }
        return Ok((u, None));
    }
    let Some(root) = root else {
        return Err(bad(
            "sslmode=require needs sslrootcert=FILE (the CA of the server's certificate): fanzha verifies the server it sends the ledger to",
        ));
    };
    let pem = std::fs::read(&root).map_err(|e| bad(format!("sslrootcert {root}: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| bad(format!("sslrootcert {root}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("sslrootcert {root}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad(format!("sslrootcert {root} holds no PEM certificate")));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth();
    kept.push("sslmode=require");
    Ok((
        format!("{base}?{}", kept.join("&")),
        Some(MakeRustlsConnect::new(config)),
    ))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_pass_through() {
        let (u, tls) = parse("postgres://u@h:5432/db").unwrap();
        assert_eq!(u, "postgres://u@h:5432/db");
        assert!(tls.is_none());
        let (u, tls) = parse("postgres://u@h/db?sslmode=disable&application_name=x").unwrap();
        assert_eq!(u, "postgres://u@h/db?application_name=x");
        assert!(tls.is_none());
    }

    #[test]
    fn tls_needs_a_root_certificate_and_never_falls_back() {
        let e = parse("postgres://u@h/db?sslmode=require").err().unwrap();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let e = parse("postgres://u@h/db?sslmode=prefer").err().unwrap();
        assert!(e.to_string().contains("unencrypted"), "{e}");
        let e = parse("postgres://u@h/db?sslmode=require&sslrootcert=/nonexistent")
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
        assert_eq!(percent_decode("%2Ftmp%2Fca.crt"), "/tmp/ca.crt");
    }
}
