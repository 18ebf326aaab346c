//! Credentials: passwords (argon2id, with the contract's policy), bearer tokens and session
//! ids (256 random bits, stored only as their SHA-256), and TOTP (RFC 6238) for people.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What is wrong with a credential or making one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// A password that does not meet the policy.
    #[error("password refused: {0}")]
    WeakPassword(&'static str),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// A stored hash that is not a PHC string (corruption).
    #[error("stored password hash is unreadable: {0}")]
    BadHash(String),
}

/// The password policy (DESIGN: at least 8 characters of 3 classes: lower case, upper case,
/// digits, others).
pub fn check_password_policy(password: &str) -> Result<(), CredentialError> {
    if password.chars().count() < 8 {
        return Err(CredentialError::WeakPassword(
            "at least 8 characters are required",
        ));
    }
    if password.chars().count() > 1024 {
        return Err(CredentialError::WeakPassword(
            "at most 1024 characters are accepted",
        ));
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password
            .chars()
            .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_ascii_digit()),
    ];
    if classes.iter().filter(|&&c| c).count() < 3 {
        return Err(CredentialError::WeakPassword(
            "characters of at least 3 classes are required (lower case, upper case, digits, others)",
        ));
    }
    Ok(())
}

/// The password's argon2id hash as a PHC string (salt and parameters included).
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| CredentialError::Random(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialError::BadHash(e.to_string()))
}

/// Whether `password` matches the stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, CredentialError> {
    let parsed = PasswordHash::new(phc).map_err(|e| CredentialError::BadHash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CredentialError> {
    getrandom::getrandom(buf).map_err(|e| CredentialError::Random(e.to_string()))
}

/// The prefix of every bearer token, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "fzt_";

/// A new secret of 256 random bits: `prefix` + unpadded URL-safe base64.
pub fn new_secret(prefix: &str) -> Result<String, CredentialError> {
    let mut b = [0u8; 32];
    fill_random(&mut b)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b)))
}

/// How a token or session id is stored and looked up: its SHA-256, hex. The secret has 256
/// random bits, so a fast hash is enough (no dictionary to guess from).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

/// [`secret_hash`] as its 32 bytes (for lookups on every request).
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A TOTP secret (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits, the defaults every
/// authenticator app uses).
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Totp(..)")
    }
}

/// Seconds per TOTP step.
pub const TOTP_STEP: i64 = 30;

impl Totp {
    /// A new random secret of 160 bits (RFC 4226's recommended length).
    pub fn generate() -> Result<Totp, CredentialError> {
        let mut secret = vec![0u8; 20];
        fill_random(&mut secret)?;
        Ok(Totp { secret })
    }

    /// From the secret's bytes.
    pub fn from_bytes(secret: &[u8]) -> Totp {
        Totp {
            secret: secret.to_vec(),
        }
    }

    /// From base32 (as in an otpauth URI; case and padding forgiven).
    pub fn from_base32(s: &str) -> Option<Totp> {
        let clean: String = s
            .chars()
            .filter(|c| *c != '=' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        data_encoding::BASE32_NOPAD
            .decode(clean.as_bytes())
            .ok()
            .map(|secret| Totp { secret })
    }

    /// The secret, base32 without padding.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.secret)
    }

    /// The code for the step holding unix time `t`.
    pub fn code_at(&self, t: i64) -> u32 {
        self.code_for_step(t.div_euclid(TOTP_STEP))
    }

    fn code_for_step(&self, step: i64) -> u32 {
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&self.secret).expect("any length");
        mac.update(&step.to_be_bytes());
        let h = mac.finalize().into_bytes();
        let offset = (h[19] & 0x0f) as usize;
        let bin = u32::from_be_bytes([
            h[offset] & 0x7f,
            h[offset + 1],
            h[offset + 2],
            h[offset + 3],
        ]);
        bin % 1_000_000
    }

    /// Whether `code` (6 digits) is valid at `t`, one step either side allowed for clock
    /// drift. Returns the step it matched, so a caller can refuse a code used twice.
    pub fn verify(&self, code: &str, t: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let want: u32 = code.parse().ok()?;
        let step = t.div_euclid(TOTP_STEP);
        (step - 1..=step + 1).find(|&s| self.code_for_step(s) == want)
    }

    /// The otpauth URI an authenticator app scans (Key URI Format).
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
            percent(issuer),
            percent(account),
            self.base32(),
            percent(issuer)
        )
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy_as_the_contract() {
        assert!(check_password_policy("Abcdefg1").is_ok());
        assert!(check_password_policy("abcdefg1!").is_ok());
        assert_eq!(
            check_password_policy("Abc1!"),
            Err(CredentialError::WeakPassword(
                "at least 8 characters are required"
            ))
        );
        assert!(check_password_policy("abcdefgh1").is_err(), "two classes");
        assert!(check_password_policy("ABCDEFGHIJ").is_err(), "one class");
    }

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let h = hash_password("Secret-pass1").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("Secret-pass1", &h).unwrap());
        assert!(!verify_password("Secret-pass2", &h).unwrap());
        assert_ne!(h, hash_password("Secret-pass1").unwrap());
        assert!(verify_password("x", "not a hash").is_err());
    }

    #[test]
    fn secrets_are_256_bits_and_stored_as_a_hash() {
        let t = new_secret(TOKEN_PREFIX).unwrap();
        assert!(t.starts_with(TOKEN_PREFIX));
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(&t[TOKEN_PREFIX.len()..])
                .unwrap()
                .len(),
            32
        );
        assert_ne!(t, new_secret(TOKEN_PREFIX).unwrap());
        assert_eq!(secret_hash(&t).len(), 64);
        assert!(!secret_hash(&t).contains(&t[4..]));
    }

    /// RFC 6238 appendix B, SHA-1 (the 8-digit codes' last 6 digits).
    #[test]
    fn totp_matches_rfc_6238_vectors() {
        let t = Totp::from_bytes(b"12345678901234567890");
        for (time, code) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(t.code_at(time), code % 1_000_000, "t={time}");
        }
        assert_eq!(t.verify("287082", 59), Some(1));
        assert_eq!(t.verify("287082", 59 + 30), Some(1), "one step late");
        assert_eq!(t.verify("287082", 59 + 60), None, "two steps late");
        assert_eq!(t.verify("28708", 59), None);
        assert_eq!(t.verify("abcdef", 59), None);
    }

    #[test]
    fn totp_uri_and_base32_round_trip() {
        let t = Totp::generate().unwrap();
        let uri = t.uri("fanzha", "ana li");
        assert!(
            uri.starts_with("otpauth://totp/fanzha:ana%20li?secret="),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={}&", t.base32())));
        assert_eq!(Totp::from_base32(&t.base32().to_lowercase()), Some(t));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
