//! Web console sessions: signing in with an API key pair, finding who a session cookie
//! belongs to, signing out, and slowing down whoever guesses private keys.
//!
//! A session acts as its API key and nothing more: every request re-reads the key (through
//! the same short-lived cache as Digest authentication) and checks its access list against
//! the request's address, so a deleted key or a removed access-list entry ends its sessions
//! within the same bound as its API use. The store keeps only a hash of the cookie's secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{digest_ha1, KeyService};
use super::{DomainError, DomainResult, ErrorCode, Principal, Services};
use crate::meta::ConsoleSessionRecord;
use crate::model::{ApiKeyRecord, UnixSeconds};

/// How long a console session lasts unless the server is told otherwise: a working night.
pub const DEFAULT_SESSION_SECS: u64 = 8 * 3600;
/// Sign-in attempts from one address that may fail before further ones are refused for a
/// while.
const FREE_FAILURES: u32 = 5;
/// How long the failures of one address are remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// The longest an address is made to wait before its next attempt.
const MAX_LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Every failed attempt's answer is held back this long, so that guessing costs time even
/// below [`FREE_FAILURES`].
pub const FAILED_SIGN_IN_DELAY: Duration = Duration::from_millis(750);
/// Addresses tracked at most; beyond, the oldest entries are forgotten first.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// A session just opened: what the browser's cookie holds and the stored record.
pub struct OpenedSession {
    /// `PUBLICKEY.SECRET`: the key's public half (not a secret: it is the Digest username)
    /// lets a request find its key through the authentication cache; the secret, whose
    /// hash names the session, is known to the browser alone.
    pub cookie_value: String,
    pub record: ConsoleSessionRecord,
}

/// A live session, resolved for one request.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub principal: Principal,
    pub csrf_token: String,
    pub expires: UnixSeconds,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Counts failed sign-ins per client address. Kept in each node's memory: an attacker
/// spreading guesses over nodes gains at most the number of nodes as a factor.
pub struct SignInThrottle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl SignInThrottle {
    /// How long `ip` must still wait before it may try again, if at all: after
    /// [`FREE_FAILURES`] failures, 2 s doubling with each further failure up to
    /// [`MAX_LOCKOUT`], counted from the last failure.
    fn lockout(entry: &Failures, now: Instant) -> Option<Duration> {
        if entry.count < FREE_FAILURES {
            return None;
        }
        let doublings = (entry.count - FREE_FAILURES).min(16);
        let lockout = (Duration::from_secs(2) * 2u32.pow(doublings)).min(MAX_LOCKOUT);
        let since = now.saturating_duration_since(entry.last);
        lockout.checked_sub(since).filter(|d| !d.is_zero())
    }

    /// Lets an attempt from `ip` go ahead, counting it as a failure until
    /// [`SignInThrottle::record_success`] says otherwise, or refuses it with how long to
    /// wait. Counting before the key is checked means that a burst of concurrent guesses
    /// is cut off after [`FREE_FAILURES`] like a sequence of them.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        if let Some(wait) = failures.get(&ip).and_then(|f| Self::lockout(f, now)) {
            return Err(wait);
        }
        failures.retain(|_, f| now.saturating_duration_since(f.last) < FAILURE_MEMORY);
        if failures.len() >= MAX_TRACKED_ADDRESSES {
            if let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(ip, _)| *ip)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        Ok(())
    }

    /// An admitted attempt succeeded: the address starts afresh.
    pub fn record_success(&self, ip: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ip);
        }
    }
}

/// The console's sessions: their lifetime and the sign-in throttle.
pub struct ConsoleSessions {
    pub lifetime_secs: u64,
    pub throttle: SignInThrottle,
}

impl ConsoleSessions {
    pub fn new(lifetime_secs: u64) -> Self {
        ConsoleSessions {
            lifetime_secs,
            throttle: SignInThrottle::default(),
        }
    }
}

/// The hash under which a session's secret is stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn principal_of(key: &ApiKeyRecord) -> Principal {
    Principal {
        key_id: key.id,
        org_id: key.org_id,
        public_key: key.public_key.clone(),
        roles: key.roles.clone(),
    }
}

fn refused_address(ip: IpAddr) -> DomainError {
    DomainError::rejected(
        ErrorCode::IpAddressNotOnAccessList,
        format!("IP address {ip} is not allowed to access this resource."),
        vec![ip.to_string()],
    )
}

impl Services {
    /// Opens a console session for the key pair, as seen from `ip`. A wrong pair is
    /// `USER_UNAUTHORIZED` (which half was wrong is not said); an address the key's access
    /// list does not admit is refused as the API refuses it; an address with too many
    /// recent failures is `RATE_LIMITED` until its lockout passes, whatever it sends.
    pub async fn console_sign_in(
        &self,
        sessions: &ConsoleSessions,
        public_key: &str,
        private_key: &str,
        ip: IpAddr,
        require_access_list: bool,
    ) -> DomainResult<OpenedSession> {
        if let Err(wait) = sessions.throttle.admit(ip, Instant::now()) {
            return Err(DomainError::rejected(
                ErrorCode::RateLimited,
                format!(
                    "Too many failed sign-ins from {ip}; try again in {} s.",
                    wait.as_secs().max(1)
                ),
                vec![ip.to_string()],
            ));
        }
        let key = self.keys.find_for_auth(public_key.trim()).await?;
        let matches = key.as_ref().is_some_and(|key| {
            tokens_match(
                &digest_ha1(&key.public_key, private_key.trim()),
                &key.digest_ha1,
            )
        });
        let Some(key) = key.filter(|_| matches) else {
            tokio::time::sleep(FAILED_SIGN_IN_DELAY).await;
            return Err(DomainError::rejected(
                ErrorCode::UserUnauthorized,
                "The public key and private key do not match any API key.",
                vec![],
            ));
        };
        if !KeyService::admits(&key, ip, require_access_list) {
            return Err(refused_address(ip));
        }
        sessions.throttle.record_success(ip);
        let now = self.clock.now();
        let secret = random_token();
        let lifetime = i64::try_from(sessions.lifetime_secs).unwrap_or(i64::MAX);
        let record = ConsoleSessionRecord {
            id_hash: secret_hash(&secret),
            key_id: key.id,
            csrf_token: random_token(),
            created: now,
            expires: now.saturating_add(lifetime),
        };
        self.meta.insert_console_session(&record).await?;
        tracing::info!(key = %key.public_key, %ip, "console sign-in");
        Ok(OpenedSession {
            cookie_value: format!("{}.{secret}", key.public_key),
            record,
        })
    }

    /// The live session a cookie names, acting as its key from `ip`; `None` when there is
    /// none (never opened, signed out, expired, its key deleted). An address the key's
    /// access list no longer admits is refused.
    pub async fn console_session(
        &self,
        cookie_value: &str,
        ip: IpAddr,
        require_access_list: bool,
    ) -> DomainResult<Option<ConsoleSession>> {
        let Some((public_key, secret)) = cookie_value.rsplit_once('.') else {
            return Ok(None);
        };
        // The key as authentication sees it: deletions and access-list changes made on
        // another node reach it within the key cache's bound.
        let Some(key) = self.keys.find_for_auth(public_key).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let Some(record) = self
            .meta
            .find_console_session(&secret_hash(secret), now)
            .await?
        else {
            return Ok(None);
        };
        if record.key_id != key.id {
            return Ok(None);
        }
        if !KeyService::admits(&key, ip, require_access_list) {
            return Err(refused_address(ip));
        }
        Ok(Some(ConsoleSession {
            principal: principal_of(&key),
            csrf_token: record.csrf_token,
            expires: record.expires,
        }))
    }

    /// Ends the session a cookie names, if any.
    pub async fn console_sign_out(&self, cookie_value: &str) -> DomainResult<()> {
        if let Some((_, secret)) = cookie_value.rsplit_once('.') {
            self.meta
                .delete_console_session(&secret_hash(secret))
                .await?;
        }
        Ok(())
    }

    /// Forgets expired sessions; returns how many.
    pub async fn purge_console_sessions(&self) -> DomainResult<u64> {
        Ok(self.meta.purge_console_sessions(self.clock.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    #[test]
    fn the_first_attempts_are_free_then_the_lockout_doubles() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.admit(ip(), start), Ok(()));
        }
        assert_eq!(throttle.admit(ip(), start), Err(Duration::from_secs(2)));
        let later = start + Duration::from_secs(2);
        assert_eq!(
            throttle.admit(ip(), later),
            Ok(()),
            "the lockout has passed"
        );
        assert_eq!(
            throttle.admit(ip(), later),
            Err(Duration::from_secs(4)),
            "one more failure doubles it"
        );
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(throttle.admit(other, start), Ok(()), "per address");
    }

    #[test]
    fn the_lockout_is_bounded_and_a_success_clears_it() {
        let throttle = SignInThrottle::default();
        let mut at = Instant::now();
        let mut admitted = 0;
        while admitted < 20 {
            match throttle.admit(ip(), at) {
                Ok(()) => admitted += 1,
                Err(wait) => {
                    assert!(wait <= MAX_LOCKOUT);
                    at += wait;
                }
            }
        }
        assert_eq!(throttle.admit(ip(), at), Err(MAX_LOCKOUT));
        throttle.record_success(ip());
        assert_eq!(throttle.admit(ip(), at), Ok(()));
    }

    #[test]
    fn tokens_compare_by_content() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "abcd"));
        assert_eq!(secret_hash("x").len(), 64);
    }
}
