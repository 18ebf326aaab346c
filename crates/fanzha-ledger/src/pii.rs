//! Personal data protection (R17.1): ID numbers and names are never stored in clear. A keyed
//! hash (HMAC-SHA256) serves matching and the five-card count; authenticated encryption
//! (AES-256-GCM, unique 96-bit nonce, the field name as associated data) keeps the value for
//! an authorised reveal.
//!
//! A sealed value is text: `r:` and the unpadded URL-safe base64 of nonce ‖ ciphertext ‖ tag
//! (base64, not hex: a third shorter, and every imported row keeps two). The associated
//! data is the record's kind and key and the field ([`PiiVault::seal`]), so a sealed value
//! copied into another record, or another field, does not open. Values sealed before
//! (`g:`, bound to the field only; hex, ChaCha20-Poly1305) open only through
//! [`PiiVault::open_unbound`], which the re-seal of an older ledger uses.
//! AES-256-GCM replaced it for sealing because an import seals two short fields per row, and
//! with AES-NI that costs a tenth of what ChaCha20-Poly1305's vector code spends setting up.

use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the key material: 32 bytes for the HMAC, 32 for the cipher.
pub const KEY_LEN: usize = 64;

/// Errors of the vault.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// Key material of the wrong size.
    #[error("PII key must be {KEY_LEN} bytes, found {0}")]
    KeyLength(usize),
    /// Ciphertext that does not decrypt under this key (tampered, or another key).
    #[error("personal data does not decrypt with this key (tampered or wrong key)")]
    Decrypt,
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

/// Hashing and encryption of personal data under one key.
#[derive(Clone)]
pub struct PiiVault {
    mac: Hmac<Sha256>,
    /// Check value of the whole key (both halves).
    check: String,
    /// A fingerprint of the hashing half alone.
    mac_fingerprint: [u8; 32],
    /// Seals, and opens `g:` values.
    cipher: Aes256Gcm,
    /// Opens values sealed before AES-256-GCM.
    legacy: ChaCha20Poly1305,
    nonces: std::sync::Arc<NonceSource>,
}

/// Unique 96-bit nonces without a system call each: a random 64-bit prefix drawn from the OS
/// per vault, then a 32-bit counter; a fresh prefix is drawn before the counter wraps. Nonce
/// uniqueness under one key is what ChaCha20-Poly1305 needs; prefixes collide between vaults
/// only with probability ~n²/2^65.
struct NonceSource {
    state: std::sync::Mutex<(u64, u32)>,
}

impl NonceSource {
    fn new() -> Result<NonceSource, PiiError> {
        Ok(NonceSource {
            state: std::sync::Mutex::new((random_u64()?, 0)),
        })
    }

    fn next(&self) -> Result<[u8; 12], PiiError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.1 == u32::MAX {
            *s = (random_u64()?, 0);
        }
        s.1 += 1;
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&s.0.to_le_bytes());
        n[8..].copy_from_slice(&s.1.to_le_bytes());
        Ok(n)
    }
}

/// Lower-case hex, as `hex::encode` gives it, without its char-by-char `String` building
/// (measurable on an import: every row hashes once and seals twice).
fn to_hex(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut buf).expect("the buffer is twice the input");
    String::from_utf8(buf).expect("hex digits are ASCII")
}

fn random_u64() -> Result<u64, PiiError> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|e| PiiError::Random(e.to_string()))?;
    Ok(u64::from_le_bytes(b))
}

impl std::fmt::Debug for PiiVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiVault(..)")
    }
}

impl PiiVault {
    /// A vault over 64 bytes of key material.
    pub fn new(key: &[u8]) -> Result<PiiVault, PiiError> {
        if key.len() != KEY_LEN {
            return Err(PiiError::KeyLength(key.len()));
        }
        // The AES key is derived from the cipher key, not the same bytes: one key, one
        // algorithm.
        let mut kdf =
            <Hmac<Sha256> as Mac>::new_from_slice(&key[32..]).expect("any HMAC key length");
        kdf.update(b"fanzha pii sealing: AES-256-GCM");
        let aes_key = kdf.finalize().into_bytes();
        let digest = |parts: &[&[u8]]| -> [u8; 32] {
            let mut h = <Sha256 as sha2::Digest>::new();
            for p in parts {
                sha2::Digest::update(&mut h, p);
            }
            sha2::Digest::finalize(h).into()
        };
        Ok(PiiVault {
            check: to_hex(&digest(&[b"fanzha pii key check value\0", key])[..8]),
            mac_fingerprint: digest(&[b"fanzha pii hashing key\0", &key[..32]]),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&key[..32]).expect("any HMAC key length"),
            cipher: Aes256Gcm::new(&aes_key),
            legacy: ChaCha20Poly1305::new(Key::from_slice(&key[32..])),
            nonces: std::sync::Arc::new(NonceSource::new()?),
        })
    }

    /// Fresh key material from the operating system.
    pub fn generate_key() -> Result<[u8; KEY_LEN], PiiError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::getrandom(&mut k).map_err(|e| PiiError::Random(e.to_string()))?;
        Ok(k)
    }

    /// A check value of the key, kept with the ledger so a store refuses a key that is not
    /// its own (a wrong key would silently break holder matching and the five-card count).
    /// Reveals nothing of the key.
    pub fn check_value(&self) -> String {
        self.check.clone()
    }

    /// Whether `other` hashes as this vault does (the same first half of the key): only
    /// then can it take over a ledger, whose holder hashes and blacklist keys stay.
    pub fn hashes_like(&self, other: &PiiVault) -> bool {
        self.mac_fingerprint == other.mac_fingerprint
    }

    /// Seals personal data bound to its place: record `kind` and `key`, and `field`.
    pub fn seal(
        &self,
        kind: &str,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<String, PiiError> {
        self.encrypt_with(BOUND_PREFIX, &bound_aad(kind, key, field), value)
    }

    /// Opens a value [`PiiVault::seal`]ed for this very place; anything else (a value moved
    /// from another record or field, one sealed before binding, another key's) is an error.
    pub fn open(
        &self,
        kind: &str,
        key: &str,
        field: &str,
        sealed: &str,
    ) -> Result<String, PiiError> {
        let raw = sealed
            .strip_prefix(BOUND_PREFIX)
            .and_then(|rest| URL_SAFE_NO_PAD.decode(rest).ok())
            .ok_or(PiiError::Decrypt)?;
        self.open_raw(true, &raw, &bound_aad(kind, key, field))
    }

    /// Opens a value sealed before values were bound to their record (`g:` or hex, bound
    /// to the field only): for re-sealing an older ledger, never for showing.
    pub fn open_unbound(&self, field: &str, sealed: &str) -> Result<String, PiiError> {
        self.decrypt(field, sealed)
    }

    /// Whether a stored value is sealed bound to its record.
    pub fn is_bound(sealed: &str) -> bool {
        sealed.starts_with(BOUND_PREFIX)
    }

    /// The keyed hash of a (normalised) value, hex: equal values match, the value is not
    /// recoverable without the key.
    pub fn hash(&self, value: &str) -> String {
        let mut m = self.mac.clone();
        m.update(value.as_bytes());
        to_hex(&m.finalize().into_bytes())
    }

    /// Encrypts `value` bound to `field` (a ciphertext of one field cannot be replayed into
    /// another). Output: `g:` and the base64 of nonce ‖ ciphertext ‖ tag.
    pub fn encrypt(&self, field: &str, value: &str) -> Result<String, PiiError> {
        self.encrypt_with(GCM_PREFIX, field.as_bytes(), value)
    }

    fn encrypt_with(&self, prefix: &str, aad: &[u8], value: &str) -> Result<String, PiiError> {
        let nonce = self.nonces.next()?;
        // nonce ‖ ciphertext ‖ tag in one buffer, encrypted in place.
        let mut sealed = Vec::with_capacity(nonce.len() + value.len() + 16);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(value.as_bytes());
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut sealed[nonce.len()..])
            .map_err(|_| PiiError::Decrypt)?;
        sealed.extend_from_slice(&tag);
        let mut out = String::with_capacity(prefix.len() + sealed.len().div_ceil(3) * 4);
        out.push_str(prefix);
        URL_SAFE_NO_PAD.encode_string(&sealed, &mut out);
        Ok(out)
    }

    /// Decrypts what [`PiiVault::encrypt`] produced for the same `field` (and values sealed
    /// with ChaCha20-Poly1305 before).
    pub fn decrypt(&self, field: &str, sealed: &str) -> Result<String, PiiError> {
        let (gcm, raw) = match sealed.strip_prefix(GCM_PREFIX) {
            Some(rest) => (true, URL_SAFE_NO_PAD.decode(rest).ok()),
            None => (false, hex::decode(sealed).ok()),
        };
        let raw = raw.ok_or(PiiError::Decrypt)?;
        self.open_raw(gcm, &raw, field.as_bytes())
    }

    fn open_raw(&self, gcm: bool, raw: &[u8], aad: &[u8]) -> Result<String, PiiError> {
        if raw.len() < 12 + 16 {
            return Err(PiiError::Decrypt);
        }
        let (nonce, msg) = (Nonce::from_slice(&raw[..12]), &raw[12..]);
        let payload = Payload { msg, aad };
        let pt = if gcm {
            self.cipher.decrypt(nonce, payload)
        } else {
            self.legacy.decrypt(nonce, payload)
        }
        .map_err(|_| PiiError::Decrypt)?;
        String::from_utf8(pt).map_err(|_| PiiError::Decrypt)
    }
}

/// The associated data of a bound value: kind, key and field, separated by a byte none of
/// them holds.
fn bound_aad(kind: &str, key: &str, field: &str) -> Vec<u8> {
    [kind.as_bytes(), key.as_bytes(), field.as_bytes()].join(&0x1f)
}

/// Marks a value sealed with AES-256-GCM bound to its record.
const BOUND_PREFIX: &str = "r:";

/// Marks a value sealed with AES-256-GCM.
const GCM_PREFIX: &str = "g:";

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed value opens only in its own record and field: copied into another
    /// subscriber's record it is an error, not that person's ID number (R17.1).
    #[test]
    fn sealed_values_are_bound_to_their_record() {
        let v = PiiVault::new(&[7u8; KEY_LEN]).unwrap();
        let s = v
            .seal(
                "subscribers",
                "+8613500001111",
                "holder_id",
                "110102199101010078",
            )
            .unwrap();
        assert!(PiiVault::is_bound(&s));
        assert_eq!(
            v.open("subscribers", "+8613500001111", "holder_id", &s)
                .unwrap(),
            "110102199101010078"
        );
        assert!(v
            .open("subscribers", "+8613500002222", "holder_id", &s)
            .is_err());
        assert!(v
            .open("subscribers", "+8613500001111", "holder_name", &s)
            .is_err());
        assert!(v.open("units", "+8613500001111", "holder_id", &s).is_err());
        // Values sealed before binding do not open as bound ones.
        let old = v.encrypt("holder_id", "110102199101010078").unwrap();
        assert!(v
            .open("subscribers", "+8613500001111", "holder_id", &old)
            .is_err());
        assert_eq!(
            v.open_unbound("holder_id", &old).unwrap(),
            "110102199101010078"
        );
        // The check value covers both halves of the key; hashing compares the first.
        let mut k = [7u8; KEY_LEN];
        k[40] = 0;
        let w = PiiVault::new(&k).unwrap();
        assert_ne!(v.check_value(), w.check_value());
        assert!(v.hashes_like(&w));
        assert!(!v.hashes_like(&PiiVault::new(&[8u8; KEY_LEN]).unwrap()));
    }

    #[test]
    fn hash_matches_and_encryption_round_trips_bound_to_field() {
        let v = PiiVault::new(&[7u8; KEY_LEN]).unwrap();
        assert_eq!(v.hash("110102199101010078"), v.hash("110102199101010078"));
        assert_ne!(v.hash("110102199101010078"), v.hash("110102199101010079"));
        let other = PiiVault::new(&[8u8; KEY_LEN]).unwrap();
        assert_ne!(v.hash("x"), other.hash("x"));
        let sealed = v.encrypt("holder_id", "110102199101010078").unwrap();
        assert!(!sealed.contains("110102"));
        assert_eq!(
            v.decrypt("holder_id", &sealed).unwrap(),
            "110102199101010078"
        );
        assert!(v.decrypt("holder_name", &sealed).is_err());
        assert!(other.decrypt("holder_id", &sealed).is_err());
        assert_eq!(
            to_hex(&[0x00, 0x9f, 0xa0, 0xff]),
            hex::encode([0x00, 0x9f, 0xa0, 0xff])
        );
        assert!(sealed.starts_with("g:"), "{sealed}");
        // Tampering anywhere is caught.
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
        assert!(v
            .decrypt("holder_id", &String::from_utf8(bytes).unwrap())
            .is_err());
        // A value sealed with ChaCha20-Poly1305 before (no prefix) still opens.
        let nonce = [3u8; 12];
        let old = v
            .legacy
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"110102199101010078",
                    aad: b"holder_id",
                },
            )
            .unwrap();
        let old = hex::encode([&nonce[..], &old].concat());
        assert_eq!(v.decrypt("holder_id", &old).unwrap(), "110102199101010078");
        assert!(v.decrypt("holder_name", &old).is_err());
        // Same value twice: different ciphertexts (unique nonces).
        assert_ne!(
            sealed,
            v.encrypt("holder_id", "110102199101010078").unwrap()
        );
    }
}
