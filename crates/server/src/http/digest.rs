//! HTTP Digest authentication (RFC 7616, MD5, `qop=auth`) as Cloud Manager's clients speak it.
//!
//! Hand-written on purpose: the Rust Digest crates are client-side, and the server needs
//! things none of them do: signed, expiring nonces; per-nonce `nc` tracking against replay;
//! and a parser tolerant of what real clients send (quoted or bare `qop`/`algorithm`, `,`
//! with or without spaces) yet strict about everything else.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::keys::DIGEST_REALM;

/// How long a nonce stays valid after the server issued it.
pub const DEFAULT_NONCE_LIFETIME_SECS: i64 = 300;
/// Longest `Authorization` header considered at all.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;
/// Nonces tracked before expired ones are swept out of the replay ledger.
const LEDGER_SWEEP_THRESHOLD: usize = 100_000;

/// The exact challenge the official Go client accepts: these directives, in this order,
/// separated by `", "`.
pub fn challenge_header(nonce: &str, stale: bool) -> String {
    format!(
        "Digest realm=\"{DIGEST_REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
    )
}

/// The fields of a client's `Authorization: Digest ...` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// Why an `Authorization` header was not even considered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("not a Digest authorization")]
    NotDigest,
    #[error("authorization header too long")]
    TooLong,
    #[error("malformed authorization header")]
    Malformed,
    #[error("missing directive {0}")]
    Missing(&'static str),
    #[error("directive {0} given twice")]
    Duplicate(String),
}

/// Parses `Digest k=v, k="v", ...`. Unknown directives are ignored (RFC 7616 §3.4); each
/// known one may appear once.
pub fn parse_authorization(header: &str) -> Result<DigestCredentials, DigestParseError> {
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(DigestParseError::TooLong);
    }
    let rest = match header.split_once([' ', '\t']) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("Digest") => rest,
        _ => return Err(DigestParseError::NotDigest),
    };
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ' | '\t' | ',')) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                name.push(c.to_ascii_lowercase());
                chars.next();
            } else {
                break;
            }
        }
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(DigestParseError::Malformed);
        }
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or(DigestParseError::Malformed)?),
                    Some(c) => value.push(c),
                    None => return Err(DigestParseError::Malformed),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c == ' ' || c == '\t' {
                    break;
                }
                if c == '"' {
                    return Err(DigestParseError::Malformed);
                }
                value.push(c);
                chars.next();
            }
        }
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => return Err(DigestParseError::Malformed),
        }
        if fields.insert(name.clone(), value).is_some() {
            return Err(DigestParseError::Duplicate(name));
        }
    }
    let mut take = |name: &'static str| fields.remove(name);
    let required = |v: Option<String>, name: &'static str| v.ok_or(DigestParseError::Missing(name));
    Ok(DigestCredentials {
        username: required(take("username"), "username")?,
        realm: required(take("realm"), "realm")?,
        nonce: required(take("nonce"), "nonce")?,
        uri: required(take("uri"), "uri")?,
        response: required(take("response"), "response")?,
        algorithm: take("algorithm"),
        qop: take("qop"),
        nc: take("nc"),
        cnonce: take("cnonce"),
        opaque: take("opaque"),
    })
}

fn md5_hex(input: &str) -> String {
    hex::encode(Md5::digest(input.as_bytes()))
}

/// The response a client knowing the key must send, for `qop=auth`.
pub fn expected_response(
    ha1: &str,
    creds: &DigestCredentials,
    method: &str,
    nc: &str,
    cnonce: &str,
) -> String {
    let ha2 = md5_hex(&format!("{method}:{}", creds.uri));
    md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", creds.nonce))
}

/// Compares two response digests without leaking where they differ.
pub fn responses_match(expected: &str, given: &str) -> bool {
    expected
        .as_bytes()
        .ct_eq(given.to_ascii_lowercase().as_bytes())
        .into()
}

/// What the nonce service thinks of a nonce and its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceVerdict {
    /// Issued by us, unexpired, and this `nc` is higher than any seen with it.
    Accepted,
    /// Issued by us but expired: the client should retry with a fresh one (`stale=true`).
    Stale,
    /// Not issued by us, or unreadable.
    Forged,
    /// Issued by us, but this `nc` was already used: a replay.
    Replayed,
}

/// Issues HMAC-signed, time-stamped nonces and remembers the highest `nc` used with each.
///
/// Nonces carry their own issue time and signature, so any node holding the shared secret
/// can verify them without a lookup; only replay tracking is per node, so a client that
/// reuses one nonce should keep talking to the same node (clients do: they reuse the
/// keep-alive connection).
pub struct NonceService {
    secret: Vec<u8>,
    lifetime_secs: i64,
    ledger: Mutex<HashMap<String, (i64, u32)>>,
}

impl NonceService {
    pub fn new(secret: Vec<u8>, lifetime_secs: i64) -> Self {
        NonceService {
            secret,
            lifetime_secs,
            ledger: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; 16] {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// A fresh nonce: 64 hex characters encoding issue time, 64 random bits and a 128-bit tag.
    pub fn issue(&self, now: i64) -> String {
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&now.to_be_bytes());
        rand::thread_rng().fill_bytes(&mut body[8..]);
        let tag = self.tag(&body);
        let mut raw = body.to_vec();
        raw.extend_from_slice(&tag);
        hex::encode(raw)
    }

    /// Checks a nonce's signature and age without touching the replay ledger.
    pub fn check_signature(&self, nonce: &str, now: i64) -> NonceVerdict {
        let raw = match hex::decode(nonce) {
            Ok(raw) if raw.len() == 32 => raw,
            _ => return NonceVerdict::Forged,
        };
        let tag_ok: bool = self.tag(&raw[..16]).ct_eq(&raw[16..]).into();
        if !tag_ok {
            return NonceVerdict::Forged;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&raw[..8]);
        let issued = i64::from_be_bytes(issued);
        if now < issued || now - issued > self.lifetime_secs {
            return NonceVerdict::Stale;
        }
        NonceVerdict::Accepted
    }

    /// Records `nc` for a verified nonce; refuses a counter not above the last one seen.
    pub fn record_use(&self, nonce: &str, nc: u32, now: i64) -> NonceVerdict {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if ledger.len() >= LEDGER_SWEEP_THRESHOLD {
            ledger.retain(|_, (expires, _)| *expires >= now);
        }
        match ledger.get_mut(nonce) {
            Some((_, last)) if nc <= *last => NonceVerdict::Replayed,
            Some((_, last)) => {
                *last = nc;
                NonceVerdict::Accepted
            }
            None => {
                ledger.insert(nonce.to_owned(), (now + self.lifetime_secs, nc));
                NonceVerdict::Accepted
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_CLIENT_HEADER: &str = r#"Digest username="abcdefgh", realm="MMS Public API", nonce="n1", uri="/api/public/v1.0/groups?pretty=true", response="0123", algorithm="MD5", qop=auth, nc=00000001, cnonce="0a4f113b""#;

    #[test]
    fn parses_the_go_client_header() {
        let c = parse_authorization(GO_CLIENT_HEADER).unwrap();
        assert_eq!(c.username, "abcdefgh");
        assert_eq!(c.uri, "/api/public/v1.0/groups?pretty=true");
        assert_eq!(c.algorithm.as_deref(), Some("MD5"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
    }

    #[test]
    fn accepts_commas_without_spaces_and_quoted_qop() {
        let c = parse_authorization(r#"Digest username="k",realm="MMS Public API",nonce="n",uri="/",response="r",qop="auth",nc=1,cnonce="c""#).unwrap();
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.algorithm, None);
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "Basic abc",
            "Digest",
            "Digest username",
            r#"Digest username="unterminated"#,
            r#"Digest username="a", username="b", realm="r", nonce="n", uri="/", response="r""#,
            r#"Digest username=a"b", realm="r", nonce="n", uri="/", response="r""#,
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_authorization(r#"Digest realm="r", nonce="n", uri="/", response="r""#),
            Err(DigestParseError::Missing("username"))
        );
    }

    #[test]
    fn challenge_matches_the_contract_exactly() {
        assert_eq!(
            challenge_header("abc", false),
            r#"Digest realm="MMS Public API", domain="", nonce="abc", algorithm=MD5, qop="auth", stale=false"#
        );
    }

    #[test]
    fn nonces_are_signed_expire_and_refuse_replays() {
        let svc = NonceService::new(b"secret".to_vec(), 300);
        let nonce = svc.issue(1000);
        assert_eq!(svc.check_signature(&nonce, 1000), NonceVerdict::Accepted);
        assert_eq!(svc.check_signature(&nonce, 1301), NonceVerdict::Stale);
        let other = NonceService::new(b"other".to_vec(), 300);
        assert_eq!(other.check_signature(&nonce, 1000), NonceVerdict::Forged);
        assert_eq!(svc.check_signature("zz", 1000), NonceVerdict::Forged);
        assert_eq!(svc.record_use(&nonce, 1, 1000), NonceVerdict::Accepted);
        assert_eq!(svc.record_use(&nonce, 1, 1000), NonceVerdict::Replayed);
        assert_eq!(svc.record_use(&nonce, 2, 1000), NonceVerdict::Accepted);
        assert_eq!(svc.record_use(&nonce, 2, 1000), NonceVerdict::Replayed);
    }

    #[test]
    fn rfc_2617_example_response_is_reproduced() {
        // RFC 2617 §3.5 example (realm differs, so compute HA1 directly).
        let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
        let creds = DigestCredentials {
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            ..Default::default()
        };
        assert_eq!(
            expected_response(&ha1, &creds, "GET", "00000001", "0a4f113b"),
            "6629fae49393a05397450978507c4ef1"
        );
    }
}
