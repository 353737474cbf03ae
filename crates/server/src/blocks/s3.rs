//! The block store on S3 or an S3-compatible server, and the write-once puts it uses.
//!
//! Everything else (reads, ranged reads, listing, deletion) is the shared
//! [`ObjectBlockStore`] code over `object_store`'s `AmazonS3`, which retries 5xx answers,
//! throttling and failed connections with exponential backoff on its own.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutMode, PutOptions, RetryConfig};

use super::{BlockError, BlockResult, ObjectBlockStore};

/// Region used when neither the configuration nor `AWS_DEFAULT_REGION` names one (what
/// self-hosted servers expect in the signature).
pub const DEFAULT_REGION: &str = "us-east-1";
/// The name `object_store`'s S3 client gives its errors (`Error::Generic { store, .. }`).
pub(super) const STORE_NAME: &str = "S3";
/// How long one request is retried by default before it fails what sent it: long enough to
/// ride out a restart of the server or a burst of throttling, short enough that an API
/// request waiting on an unreachable store is answered within a client's patience.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a conditional put is sent when its answer is lost in transit.
const CREATE_ATTEMPTS: u32 = 3;
/// Wait before sending a conditional put again; doubled for each further attempt.
const CREATE_RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// Packs longer than this are uploaded in parts. The command-line client's batches make
/// packs of about 8 MiB, which stay one conditional PUT (one request, write-once); only
/// larger batches (an upload may be up to 32 MiB) are split, so that no single stream
/// limits them.
pub const MULTIPART_THRESHOLD_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of each part but the last (S3 wants at least 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one upload sent at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Where an S3 block store lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Folder inside the bucket that holds everything (`a/b`, no slash at either end);
    /// empty for the bucket's root.
    pub prefix: String,
    /// Base URL of a self-hosted server (addressed path-style: `ENDPOINT/BUCKET/KEY`);
    /// `None` for AWS itself (addressed virtual-host style).
    pub endpoint: Option<String>,
    /// `None`: `AWS_DEFAULT_REGION` or `AWS_REGION`, else [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// Whether a plain `http://` endpoint is accepted; never implied by the environment.
    pub allow_http: bool,
    /// `None`: the standard `AWS_*` variables (or an instance or container role).
    pub credentials: Option<S3Credentials>,
    /// How long one request is retried (with exponential backoff) before it fails.
    pub retry_timeout: Duration,
}

/// A static access key. Its `Debug` form hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// A blocks URL that names no S3 location.
#[derive(Debug, thiserror::Error)]
#[error("{url:?} is not s3://BUCKET[/PREFIX]: {reason}")]
pub struct BadS3Url {
    pub url: String,
    pub reason: &'static str,
}

impl S3Config {
    /// The bucket and prefix of `s3://BUCKET[/PREFIX]`, every other setting at its default.
    pub fn from_url(url: &str) -> Result<S3Config, BadS3Url> {
        let bad = |reason| BadS3Url {
            url: url.to_owned(),
            reason,
        };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let is_bucket_name = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'));
        if !is_bucket_name {
            return Err(bad("a bucket name is 3 to 63 of a-z, 0-9, '.' and '-'"));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && ObjectPath::parse(prefix).is_err() {
            return Err(bad("the prefix has an empty, '.' or '..' segment"));
        }
        Ok(S3Config {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            region: None,
            allow_http: false,
            credentials: None,
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
        })
    }

    /// The store this configuration names. Nothing is sent yet: a wrong endpoint or key
    /// shows on the first request.
    pub fn open(&self) -> BlockResult<ObjectBlockStore> {
        let retry = RetryConfig {
            retry_timeout: self.retry_timeout,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_allow_http(self.allow_http)
            .with_retry(retry);
        let region_in_env = std::env::var("AWS_DEFAULT_REGION")
            .or_else(|_| std::env::var("AWS_REGION"))
            .ok();
        let region = self.region.clone().or(region_in_env);
        builder = builder.with_region(region.as_deref().unwrap_or(DEFAULT_REGION));
        builder = match &self.endpoint {
            Some(endpoint) => builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false),
            None => builder.with_virtual_hosted_style_request(true),
        };
        if let Some(credentials) = &self.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
        }
        let s3 = builder.build()?;
        let store: Arc<dyn ObjectStore> = if self.prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, self.prefix.as_str()))
        };
        Ok(ObjectBlockStore::write_once(store))
    }
}

/// Writes `bytes` at `path` unless an object is there already: a put with
/// `If-None-Match: *`. The name is the hash of the content, so an object found there of
/// the same size is taken as this one (a HEAD, not a read back: reading back would double
/// the traffic of every pack two writers race for, and each chunk is verified on every read
/// anyway). One of another size is damaged, and is replaced by a plain put.
///
/// A store without conditional puts (`object_store` answers `NotImplemented`) gets a plain
/// put: racing writers then write the same bytes, and each PUT is atomic. A conditional put
/// whose answer was lost in transit (a timeout, a reset connection) is not retried by
/// `object_store`, as it is not idempotent; it is sent again here, up to
/// [`CREATE_ATTEMPTS`] times, and finds its own object if the first one arrived.
pub(super) async fn put_once(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: Bytes,
) -> BlockResult<()> {
    let mut attempt = 1;
    loop {
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match store.put_opts(path, bytes.clone().into(), create).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                return keep_or_replace(store, path, bytes).await
            }
            Err(object_store::Error::NotImplemented) => {
                store.put(path, bytes.into()).await?;
                return Ok(());
            }
            Err(err) if attempt < CREATE_ATTEMPTS && is_lost_in_transit(&err) => {
                tracing::warn!(object = %path, attempt, error = %err, "a conditional put was cut off; sending it again");
                tokio::time::sleep(CREATE_RETRY_BACKOFF * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Writes `bytes` at `path` in parts of [`PART_BYTES`], [`PARTS_IN_FLIGHT`] at a time,
/// unless an object of that size is there already.
///
/// `object_store` completes a multipart upload unconditionally (no `If-None-Match` on
/// `CompleteMultipartUpload`), so the write-once check is a HEAD before the upload. Two
/// writers racing past it both complete, and the second completion replaces the object
/// with the same bytes, atomically: the name is the hash of the content, so every reader
/// sees one complete, identical object either way, which is what "write once" is for. A
/// failed upload is aborted, so no parts are left behind to be billed.
pub(super) async fn put_once_in_parts(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: Bytes,
) -> BlockResult<()> {
    use futures::{StreamExt, TryStreamExt};

    match store.head(path).await {
        Ok(meta) if meta.size == bytes.len() as u64 => return Ok(()),
        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    let mut upload = store.put_multipart(path).await?;
    let parts: Vec<_> = (0..bytes.len())
        .step_by(PART_BYTES)
        .map(|at| upload.put_part(bytes.slice(at..(at + PART_BYTES).min(bytes.len())).into()))
        .collect();
    let sent = futures::stream::iter(parts)
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await;
    let done = match sent {
        Ok(_) => upload.complete().await.map(|_| ()),
        Err(err) => Err(err),
    };
    if let Err(err) = done {
        if let Err(abort) = upload.abort().await {
            tracing::warn!(object = %path, error = %abort, "a failed multipart upload could not be aborted; the bucket's lifecycle rule must clean it up");
        }
        return Err(err.into());
    }
    Ok(())
}

async fn keep_or_replace(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: Bytes,
) -> BlockResult<()> {
    let expected = bytes.len() as u64;
    match store.head(path).await {
        Ok(meta) if meta.size == expected => Ok(()),
        Ok(meta) => {
            tracing::warn!(object = %path, size_bytes = meta.size, expected_bytes = expected, "replacing a content-addressed object of the wrong size");
            store.put(path, bytes.into()).await?;
            Ok(())
        }
        // Deleted between the two requests (by the garbage collector): write it anew.
        Err(object_store::Error::NotFound { .. }) => {
            store.put(path, bytes.into()).await?;
            Ok(())
        }
        Err(err) => Err(BlockError::from(err)),
    }
}

/// Whether a request failed after it may have reached the server: a timeout or a
/// connection that broke while it was under way (`object_store` retries the others).
fn is_lost_in_transit(err: &object_store::Error) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(cause) = source {
        if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
            if e.is_timeout() {
                return true;
            }
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// Names an S3-compatible server the block store's tests also run against, as its endpoint
/// (`http://127.0.0.1:8333`); unset, those runs are skipped. The bucket is
/// `REWIND_TEST_S3_BUCKET` (default `rewind`), the keys the standard `AWS_*` variables.
#[cfg(test)]
pub(crate) const TEST_ENDPOINT_VAR: &str = "REWIND_TEST_S3_ENDPOINT";

/// A store on the test server under a fresh random prefix, so tests never see each
/// other's objects; `None` (with a note on stderr) when no server is configured.
#[cfg(test)]
pub(crate) fn test_store(test: &str) -> Option<ObjectBlockStore> {
    let Ok(endpoint) = std::env::var(TEST_ENDPOINT_VAR) else {
        eprintln!("{TEST_ENDPOINT_VAR} names no S3 server: {test} skipped on S3");
        return None;
    };
    let bucket = std::env::var("REWIND_TEST_S3_BUCKET").unwrap_or_else(|_| "rewind".into());
    let config = S3Config {
        prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        allow_http: endpoint.starts_with("http://"),
        endpoint: Some(endpoint),
        ..S3Config::from_url(&format!("s3://{bucket}")).expect("a test bucket name")
    };
    Some(config.open().expect("open the test S3 store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_names_a_bucket_and_an_optional_prefix() {
        let config = S3Config::from_url("s3://rewind-backups/site-a/blocks/").expect("url");
        assert_eq!(config.bucket, "rewind-backups");
        assert_eq!(config.prefix, "site-a/blocks");
        assert!(!config.allow_http);
        assert_eq!(S3Config::from_url("s3://rewind").expect("url").prefix, "");
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Upper/x",
            "s3://b_b/x",
            "https://rewind/x",
            "s3://rewind/a//b",
            "s3://rewind/../b",
        ] {
            assert!(S3Config::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_credentials_keep_the_secret_out_of_their_debug_form() {
        let credentials = S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr"),
            "{shown}"
        );
    }
}
