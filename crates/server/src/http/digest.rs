//! HTTP Digest authentication (RFC 7616, MD5, `qop=auth`) as Cloud Manager's clients speak it.
//!
//! Hand-written on purpose: the Rust Digest crates are client-side, and the server needs
//! things none of them do: signed, expiring nonces; `nc` tracking against replay;
//! and a parser tolerant of what real clients send (quoted or bare `qop`/`algorithm`, `,`
//! with or without spaces) yet strict about everything else.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::keys::DIGEST_REALM;
use crate::domain::replay::ReplayLedger;
use crate::domain::DomainResult;
use crate::meta::NonceUse;
use crate::model::UnixSeconds;

/// How long a nonce stays valid after the server issued it.
pub const DEFAULT_NONCE_LIFETIME_SECS: i64 = 300;
/// Longest `Authorization` header considered at all.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

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
    /// Issued by this deployment, unexpired, and this `nc` was not used with it before.
    Accepted,
    /// Issued by us but expired (or, with a ledger of this process only, issued by another
    /// process): the client should retry with a fresh one (`stale=true`).
    Stale,
    /// Not issued by us, or unreadable.
    Forged,
    /// Issued by us, but this `nc` was already used: a replay.
    Replayed,
}

/// A nonce whose signature, issuer and age were checked: what the replay ledger keys it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedNonce {
    pub expires: UnixSeconds,
    pub tag: i64,
}

/// Issues HMAC-signed nonces that carry their expiry, and records each counter used with
/// them in the [`ReplayLedger`].
///
/// Nonces carry their expiry, the issuing process's epoch, random bits and a signature, so
/// they are verified without a lookup. The key is the deployment's shared secret, so every
/// node verifies every node's nonces; whether it accepts them depends on the ledger. A
/// ledger of this process alone knows nothing of another process's counters: a nonce of
/// another epoch (one from before a restart) is then answered `stale=true`, and the client
/// simply asks for a fresh one; that keeps a captured header from being replayed after a
/// restart. A ledger shared by every node (in the metadata store) makes the epoch
/// irrelevant: any node's nonce is accepted, and a used counter refused, everywhere.
pub struct NonceService {
    /// HMAC-SHA256 already keyed with the server secret; cloned for each tag, which saves
    /// re-deriving the key pads on every request.
    keyed: Hmac<Sha256>,
    lifetime_secs: i64,
    /// Random per process: nonces issued by another process carry another one.
    epoch: [u8; EPOCH_BYTES],
    ledger: ReplayLedger,
}

/// A nonce's parts, in order: expiry, the issuer's epoch, random bits; then the tag.
/// 32 bytes in all, 64 hex characters. A 96-bit tag leaves forging to 2^96 online guesses;
/// a 32-bit epoch makes two processes sharing one a 1-in-4-billion chance; 64 random bits
/// make two nonces of one second the same with odds of about n²/2^65 for n nonces.
const TIME_BYTES: usize = 8;
const EPOCH_BYTES: usize = 4;
const RANDOM_BYTES: usize = 8;
const BODY_BYTES: usize = TIME_BYTES + EPOCH_BYTES + RANDOM_BYTES;
const TAG_BYTES: usize = 12;

impl NonceService {
    pub fn new(secret: Vec<u8>, lifetime_secs: i64, ledger: ReplayLedger) -> Self {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC takes any key length");
        let mut epoch = [0u8; EPOCH_BYTES];
        rand::thread_rng().fill_bytes(&mut epoch);
        NonceService {
            keyed,
            lifetime_secs,
            epoch,
            ledger,
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

    /// A fresh nonce: 64 hex characters encoding its expiry (`now` plus the lifetime),
    /// this process's epoch, 64 random bits and a 96-bit tag.
    pub fn issue(&self, now: i64) -> String {
        let mut raw = [0u8; BODY_BYTES + TAG_BYTES];
        let expires = now.saturating_add(self.lifetime_secs);
        raw[..TIME_BYTES].copy_from_slice(&expires.to_be_bytes());
        raw[TIME_BYTES..TIME_BYTES + EPOCH_BYTES].copy_from_slice(&self.epoch);
        rand::thread_rng().fill_bytes(&mut raw[TIME_BYTES + EPOCH_BYTES..BODY_BYTES]);
        let tag = self.tag(&raw[..BODY_BYTES]);
        raw[BODY_BYTES..].copy_from_slice(&tag);
        hex::encode(raw)
    }

    /// Checks a nonce's signature, issuer and age without touching the replay ledger.
    ///
    /// The expiry the issuing node wrote is the one every node applies, so nodes with
    /// different `--nonce-lifetime-secs` agree about each nonce.
    pub fn check_signature(&self, nonce: &str, now: i64) -> Result<SignedNonce, NonceVerdict> {
        let mut raw = [0u8; BODY_BYTES + TAG_BYTES];
        if hex::decode_to_slice(nonce, &mut raw).is_err() {
            return Err(NonceVerdict::Forged);
        }
        let (body, tag) = raw.split_at(BODY_BYTES);
        let tag_ok: bool = self.tag(body).ct_eq(tag).into();
        if !tag_ok {
            return Err(NonceVerdict::Forged);
        }
        let (time, rest) = body.split_at(TIME_BYTES);
        let (epoch, random) = rest.split_at(EPOCH_BYTES);
        // Ours, but from another process: a ledger of this process knows nothing of its
        // counters.
        if !self.ledger.is_shared() && epoch != self.epoch {
            return Err(NonceVerdict::Stale);
        }
        let expires = i64::from_be_bytes(time.try_into().map_err(|_| NonceVerdict::Forged)?);
        if now > expires {
            return Err(NonceVerdict::Stale);
        }
        let tag = i64::from_be_bytes(random.try_into().map_err(|_| NonceVerdict::Forged)?);
        Ok(SignedNonce { expires, tag })
    }

    /// Records `nc` for a verified nonce: `Accepted` the first time, `Replayed` when the
    /// ledger has seen it (see [`ReplayLedger::record`] for which counters count as seen).
    pub async fn record_use(
        &self,
        nonce: SignedNonce,
        nc: u32,
        now: i64,
    ) -> DomainResult<NonceVerdict> {
        let nonce_use = NonceUse {
            expires: nonce.expires,
            tag: nonce.tag,
            nc,
        };
        Ok(if self.ledger.record(nonce_use, now).await? {
            NonceVerdict::Accepted
        } else {
            NonceVerdict::Replayed
        })
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

    fn in_process(secret: &[u8]) -> NonceService {
        NonceService::new(secret.to_vec(), 300, ReplayLedger::in_process())
    }

    #[tokio::test]
    async fn nonces_are_signed_expire_and_refuse_replays() {
        let svc = in_process(b"secret");
        let nonce = svc.issue(1000);
        let signed = svc.check_signature(&nonce, 1000).unwrap();
        assert_eq!(signed.expires, 1300);
        assert!(
            svc.check_signature(&nonce, 1300).is_ok(),
            "valid to its last second"
        );
        assert_eq!(svc.check_signature(&nonce, 1301), Err(NonceVerdict::Stale));
        let other = in_process(b"other");
        assert_eq!(
            other.check_signature(&nonce, 1000),
            Err(NonceVerdict::Forged)
        );
        let restarted = in_process(b"secret");
        assert_eq!(
            restarted.check_signature(&nonce, 1000),
            Err(NonceVerdict::Stale),
            "a nonce of an earlier process is stale: its counters are not known here"
        );
        assert!(restarted
            .check_signature(&restarted.issue(1000), 1000)
            .is_ok());
        assert_eq!(svc.check_signature("zz", 1000), Err(NonceVerdict::Forged));
        let record = |nc| svc.record_use(signed, nc, 1000);
        assert_eq!(record(1).await.unwrap(), NonceVerdict::Accepted);
        assert_eq!(record(1).await.unwrap(), NonceVerdict::Replayed);
        assert_eq!(record(2).await.unwrap(), NonceVerdict::Accepted);
        assert_eq!(record(2).await.unwrap(), NonceVerdict::Replayed);
        assert_eq!(
            record(1).await.unwrap(),
            NonceVerdict::Replayed,
            "in one process, a counter below the highest one seen is refused"
        );
    }

    #[tokio::test]
    async fn nodes_sharing_a_ledger_accept_each_others_nonces_and_refuse_each_others_uses() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::meta::SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
            .await
            .unwrap();
        let meta: std::sync::Arc<dyn crate::meta::MetaStore> = std::sync::Arc::new(store);
        let node =
            || NonceService::new(b"secret".to_vec(), 300, ReplayLedger::shared(meta.clone()));
        let (a, b) = (node(), node());
        let nonce = a.issue(1000);
        let at_b = b
            .check_signature(&nonce, 1000)
            .expect("A's nonce is valid at B");
        let at_a = a.check_signature(&nonce, 1000).unwrap();
        assert_eq!(
            a.record_use(at_a, 1, 1000).await.unwrap(),
            NonceVerdict::Accepted
        );
        assert_eq!(
            b.record_use(at_b, 1, 1000).await.unwrap(),
            NonceVerdict::Replayed,
            "a counter used at A is refused at B"
        );
        assert_eq!(
            b.record_use(at_b, 3, 1000).await.unwrap(),
            NonceVerdict::Accepted
        );
        assert_eq!(
            a.record_use(at_a, 2, 1000).await.unwrap(),
            NonceVerdict::Accepted,
            "a counter never used is no replay, whatever order it arrives in"
        );
        assert_eq!(
            a.record_use(at_a, 3, 1000).await.unwrap(),
            NonceVerdict::Replayed
        );
        assert_eq!(b.check_signature(&nonce, 1301), Err(NonceVerdict::Stale));
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
