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
    let mut fields = DirectiveSlots::default();
    let mut unknown: Vec<String> = Vec::new();
    let mut cursor = Cursor(rest.as_bytes());
    loop {
        cursor.skip(|b| matches!(b, b' ' | b'\t' | b','));
        if cursor.0.is_empty() {
            break;
        }
        let name = cursor.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        cursor.skip(|b| matches!(b, b' ' | b'\t'));
        if name.is_empty() || cursor.next() != Some(b'=') {
            return Err(DigestParseError::Malformed);
        }
        cursor.skip(|b| matches!(b, b' ' | b'\t'));
        let value = cursor.value()?;
        cursor.skip(|b| matches!(b, b' ' | b'\t'));
        if !matches!(cursor.0.first(), None | Some(b',')) {
            return Err(DigestParseError::Malformed);
        }
        let lower = || String::from_utf8_lossy(name).to_ascii_lowercase();
        let slot = match fields.slot(name) {
            Some(slot) => slot,
            None => {
                let name = lower();
                if unknown.contains(&name) {
                    return Err(DigestParseError::Duplicate(name));
                }
                unknown.push(name);
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(DigestParseError::Duplicate(lower()));
        }
    }
    let required = |v: Option<String>, name: &'static str| v.ok_or(DigestParseError::Missing(name));
    Ok(DigestCredentials {
        username: required(fields.username, "username")?,
        realm: required(fields.realm, "realm")?,
        nonce: required(fields.nonce, "nonce")?,
        uri: required(fields.uri, "uri")?,
        response: required(fields.response, "response")?,
        algorithm: fields.algorithm,
        qop: fields.qop,
        nc: fields.nc,
        cnonce: fields.cnonce,
        opaque: fields.opaque,
    })
}

/// The directives of a Digest header that Rewind reads, as they are parsed.
#[derive(Default)]
struct DirectiveSlots {
    username: Option<String>,
    realm: Option<String>,
    nonce: Option<String>,
    uri: Option<String>,
    response: Option<String>,
    algorithm: Option<String>,
    qop: Option<String>,
    nc: Option<String>,
    cnonce: Option<String>,
    opaque: Option<String>,
}

impl DirectiveSlots {
    /// The slot of directive `name` (ASCII, any case); `None` for one Rewind ignores.
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<String>> {
        let slots = [
            (&b"username"[..], &mut self.username),
            (b"realm", &mut self.realm),
            (b"nonce", &mut self.nonce),
            (b"uri", &mut self.uri),
            (b"response", &mut self.response),
            (b"algorithm", &mut self.algorithm),
            (b"qop", &mut self.qop),
            (b"nc", &mut self.nc),
            (b"cnonce", &mut self.cnonce),
            (b"opaque", &mut self.opaque),
        ];
        slots
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, slot)| slot)
    }
}

/// The unread rest of a header. Hand-written rather than a parser crate: the grammar is
/// RFC 7616's few lines of `name=token` / `name="quoted"` pairs, and this runs on every
/// authenticated request.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        self.take_while(pred);
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let end = self
            .0
            .iter()
            .position(|&b| !pred(b))
            .unwrap_or(self.0.len());
        let (taken, rest) = self.0.split_at(end);
        self.0 = rest;
        taken
    }

    /// A quoted string (with `\` escapes) or a token up to the next separator.
    fn value(&mut self) -> Result<String, DigestParseError> {
        let mut value = Vec::new();
        if self.0.first() == Some(&b'"') {
            self.next();
            loop {
                match self.next() {
                    Some(b'"') => break,
                    Some(b'\\') => value.push(self.next().ok_or(DigestParseError::Malformed)?),
                    Some(b) => value.push(b),
                    None => return Err(DigestParseError::Malformed),
                }
            }
        } else {
            let token = self.take_while(|b| !matches!(b, b',' | b' ' | b'\t'));
            if token.contains(&b'"') {
                return Err(DigestParseError::Malformed);
            }
            value.extend_from_slice(token);
        }
        // The header was a `&str` and quotes and backslashes are ASCII, so cutting at them
        // keeps UTF-8 intact; an escape before a multi-byte character cannot split it either,
        // because only the escaped byte moves.
        String::from_utf8(value).map_err(|_| DigestParseError::Malformed)
    }
}

/// Lower-case hex of an MD5 over `parts`, without building the joined string.
fn md5_hex(parts: &[&[u8]]) -> [u8; 32] {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part);
    }
    let mut hex = [0u8; 32];
    // 16 bytes always fit 32 hex digits.
    let _ = hex::encode_to_slice(md5.finalize(), &mut hex);
    hex
}

/// The response a client knowing the key must send, for `qop=auth` (lower-case hex).
pub fn expected_response(
    ha1: &str,
    creds: &DigestCredentials,
    method: &str,
    nc: &str,
    cnonce: &str,
) -> [u8; 32] {
    let ha2 = md5_hex(&[method.as_bytes(), b":", creds.uri.as_bytes()]);
    md5_hex(&[
        ha1.as_bytes(),
        b":",
        creds.nonce.as_bytes(),
        b":",
        nc.as_bytes(),
        b":",
        cnonce.as_bytes(),
        b":auth:",
        &ha2,
    ])
}

/// Compares a response digest with the one a client sent (hex in either case), without
/// leaking where they differ.
pub fn responses_match(expected: &[u8; 32], given: &str) -> bool {
    let Ok(given) = <[u8; 32]>::try_from(given.as_bytes()) else {
        return false;
    };
    expected
        .ct_eq(&given.map(|b| b.to_ascii_lowercase()))
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
/// Nonces carry their own issue time, the issuing process's epoch and a signature, so they
/// are verified without a lookup. The replay ledger lives in this process's memory, so a
/// nonce is only accepted by the process that issued it: one from before a restart (or from
/// another process holding the same secret) is answered `stale=true`, and the client simply
/// asks for a fresh one. That is what keeps a captured header from being replayed after a
/// restart, at the cost of one comparison per request and one extra challenge per client
/// and restart.
pub struct NonceService {
    /// HMAC-SHA256 already keyed with the server secret; cloned for each tag, which saves
    /// re-deriving the key pads on every request.
    keyed: Hmac<Sha256>,
    lifetime_secs: i64,
    /// Random per process: nonces issued by another process carry another one.
    epoch: [u8; EPOCH_BYTES],
    ledger: Mutex<HashMap<String, (i64, u32)>>,
}

/// A nonce's parts, in order: issue time, the issuer's epoch, random bits; then the tag.
/// 32 bytes in all, 64 hex characters, as nonces were before they carried an epoch. A
/// 96-bit tag leaves forging to 2^96 online guesses; a 32-bit epoch makes two processes
/// sharing one a 1-in-4-billion chance.
const TIME_BYTES: usize = 8;
const EPOCH_BYTES: usize = 4;
const RANDOM_BYTES: usize = 8;
const BODY_BYTES: usize = TIME_BYTES + EPOCH_BYTES + RANDOM_BYTES;
const TAG_BYTES: usize = 12;

impl NonceService {
    pub fn new(secret: Vec<u8>, lifetime_secs: i64) -> Self {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC takes any key length");
        let mut epoch = [0u8; EPOCH_BYTES];
        rand::thread_rng().fill_bytes(&mut epoch);
        NonceService {
            keyed,
            lifetime_secs,
            epoch,
            ledger: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.keyed.clone();
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// A fresh nonce: 64 hex characters encoding issue time, this process's epoch, 64
    /// random bits and a 96-bit tag.
    pub fn issue(&self, now: i64) -> String {
        let mut raw = [0u8; BODY_BYTES + TAG_BYTES];
        raw[..TIME_BYTES].copy_from_slice(&now.to_be_bytes());
        raw[TIME_BYTES..TIME_BYTES + EPOCH_BYTES].copy_from_slice(&self.epoch);
        rand::thread_rng().fill_bytes(&mut raw[TIME_BYTES + EPOCH_BYTES..BODY_BYTES]);
        let tag = self.tag(&raw[..BODY_BYTES]);
        raw[BODY_BYTES..].copy_from_slice(&tag);
        hex::encode(raw)
    }

    /// Checks a nonce's signature, issuer and age without touching the replay ledger.
    pub fn check_signature(&self, nonce: &str, now: i64) -> NonceVerdict {
        let mut raw = [0u8; BODY_BYTES + TAG_BYTES];
        if hex::decode_to_slice(nonce, &mut raw).is_err() {
            return NonceVerdict::Forged;
        }
        let (body, tag) = raw.split_at(BODY_BYTES);
        let tag_ok: bool = self.tag(body).ct_eq(tag).into();
        if !tag_ok {
            return NonceVerdict::Forged;
        }
        let (time, rest) = body.split_at(TIME_BYTES);
        // Ours, but from another process: this one's ledger knows nothing of its counters.
        if rest[..EPOCH_BYTES] != self.epoch {
            return NonceVerdict::Stale;
        }
        let mut issued = [0u8; TIME_BYTES];
        issued.copy_from_slice(time);
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
    fn unescapes_quoted_values_ignores_unknown_directives_and_folds_name_case() {
        let c = parse_authorization(
            r#"Digest USERNAME="a\"b\\c", Realm="r", x-extra=1, nonce="n", uri="/é", response="r", userhash=false"#,
        )
        .unwrap();
        assert_eq!(c.username, r#"a"b\c"#);
        assert_eq!(c.uri, "/é");
        assert_eq!(
            parse_authorization(
                r#"Digest x=1, X=2, username="u", realm="r", nonce="n", uri="/", response="r""#
            ),
            Err(DigestParseError::Duplicate("x".into()))
        );
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
        let restarted = NonceService::new(b"secret".to_vec(), 300);
        assert_eq!(
            restarted.check_signature(&nonce, 1000),
            NonceVerdict::Stale,
            "a nonce of an earlier process is stale: its counters are not known here"
        );
        assert_eq!(
            restarted.check_signature(&restarted.issue(1000), 1000),
            NonceVerdict::Accepted
        );
        assert_eq!(svc.check_signature("zz", 1000), NonceVerdict::Forged);
        assert_eq!(svc.record_use(&nonce, 1, 1000), NonceVerdict::Accepted);
        assert_eq!(svc.record_use(&nonce, 1, 1000), NonceVerdict::Replayed);
        assert_eq!(svc.record_use(&nonce, 2, 1000), NonceVerdict::Accepted);
        assert_eq!(svc.record_use(&nonce, 2, 1000), NonceVerdict::Replayed);
    }

    #[test]
    fn rfc_2617_example_response_is_reproduced() {
        // RFC 2617 §3.5 example (realm differs, so compute HA1 directly).
        let ha1 = md5_hex(&[b"Mufasa:testrealm@host.com:Circle Of Life"]);
        let ha1 = std::str::from_utf8(&ha1).unwrap();
        let creds = DigestCredentials {
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            ..Default::default()
        };
        let expected = expected_response(ha1, &creds, "GET", "00000001", "0a4f113b");
        assert_eq!(&expected, b"6629fae49393a05397450978507c4ef1");
        assert!(responses_match(
            &expected,
            "6629FAE49393a05397450978507c4ef1"
        ));
        assert!(!responses_match(
            &expected,
            "6629fae49393a05397450978507c4ef"
        ));
        assert!(!responses_match(
            &expected,
            "7629fae49393a05397450978507c4ef1"
        ));
    }
}
