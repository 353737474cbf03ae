//! The download endpoint: `GET /backup/restore/v2/pull/{JOB}/{TOKEN}/{FILE}.tar.gz`.
//!
//! No Digest authentication: the unguessable token in the path is the credential, as in
//! Cloud Manager. A download that starts takes one of `maxDownloads`; a request with a
//! `Range` starting past byte 0 resumes a started download instead. The body is streamed
//! from the block store; memory stays flat whatever the archive's size.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream};

use super::ApiPath;
use crate::blocks::BlockError;
use crate::domain::{ErrorCode, Services};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::JobId;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/backup/restore/v2/pull/{job}/{token}/{file}",
        get(download),
    )
}

/// A parsed single `Range: bytes=START-[END]`; `None` for no or unusable ranges (the
/// whole file is sent, as RFC 9110 allows).
fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end) {
        (Ok(s), "") => (s, len),
        (Ok(s), e) => match e.parse::<u64>() {
            Ok(e) if e >= s => (s, e.saturating_add(1).min(len)),
            _ => return Ok(None),
        },
        (Err(_), _) if start.is_empty() => match end.parse::<u64>() {
            Ok(suffix) if suffix > 0 => (len.saturating_sub(suffix), len),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}

async fn download(
    State(state): State<AppState>,
    ApiPath((job, token, file)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::ResourceNotFound,
            "Cannot find resource: no download with that address exists.",
            vec![],
        )
    };
    let job = JobId::parse(&job).ok_or_else(not_found)?;
    let services = state.services.clone();
    let plan_len = {
        let record = services
            .meta
            .get_job_by_id(job)
            .await
            .map_err(crate::domain::DomainError::from)?
            .ok_or_else(not_found)?;
        record.archive_bytes.ok_or_else(not_found)?
    };
    let range = match parse_range(&headers, plan_len) {
        Ok(r) => r,
        Err(()) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{plan_len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let dl = services
        .open_download(job, &token, &file, range.map(|r| r.0))
        .await?;
    let (start, end) = range.unwrap_or((0, dl.end));
    let total = dl.plan.len();
    let body = dl.plan.clone().stream(services.blocks.clone(), start, end);
    let tracked = TrackedBody {
        inner: body,
        remaining: end - start,
        reaches_end: end == total,
        job,
        services: Some(services),
    };
    let mut response = Response::new(Body::from_stream(tracked));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", dl.file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// The response body, which records when a transfer delivered the archive's last byte
/// (a completed download) or was dropped before its end (an interrupted one).
struct TrackedBody {
    inner: BoxStream<'static, Result<Bytes, BlockError>>,
    remaining: u64,
    reaches_end: bool,
    job: JobId,
    /// Taken when the outcome is recorded, so it is recorded once.
    services: Option<Arc<Services>>,
}

impl TrackedBody {
    fn record(&mut self, completed: bool) {
        let Some(services) = self.services.take() else {
            return;
        };
        let job = self.job;
        let reaches_end = self.reaches_end;
        tokio::spawn(async move {
            let result = match (completed, reaches_end) {
                (true, true) => services.meta.complete_download(job).await,
                (true, false) => Ok(()),
                (false, _) => services.meta.interrupt_download(job).await,
            };
            if let Err(err) = result {
                tracing::error!(job.id = %job, error = %err, "could not record a download's outcome");
            }
        });
    }
}

impl Stream for TrackedBody {
    type Item = Result<Bytes, BlockError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
                // The server stops polling once `Content-Length` bytes went out, so the
                // last byte, not the end of the stream, marks a complete transfer.
                if self.remaining == 0 {
                    self.record(true);
                }
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::error!(job.id = %self.job, error = %err, "download aborted: the archive could not be read");
                self.record(false);
            }
            Poll::Ready(None) => {
                let completed = self.remaining == 0;
                self.record(completed);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.record(false);
    }
}
