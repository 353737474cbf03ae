//! The download endpoint: `GET` and `HEAD` of `/backup/restore/v2/pull/{JOB}/{TOKEN}/{FILE}`.
//!
//! No Digest authentication: the unguessable token in the path is the credential, as in
//! Cloud Manager. The domain decides everything about a download (token, budget, resume,
//! expiry); this module reads the `Range` header and writes the response. The body is
//! streamed from the block store; memory stays flat whatever the archive's size.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::ApiPath;
use crate::domain::restore::download::{DownloadRequest, RangeHeader};
use crate::domain::{DomainError, ErrorCode};
use crate::http::error::ApiError;
use crate::http::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/backup/restore/v2/pull/{job}/{token}/{file}",
        get(download).head(download),
    )
}

/// Reads the `Range` header: one `bytes=START-[END]` or `bytes=-LENGTH`, or `Malformed`
/// for anything else that is present (including several ranges).
fn range_header(headers: &HeaderMap) -> RangeHeader {
    let Some(value) = headers.get(header::RANGE) else {
        return RangeHeader::Absent;
    };
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .filter(|spec| !spec.contains(','))
        .and_then(|spec| spec.split_once('-'));
    let Some((start, end)) = spec.map(|(s, e)| (s.trim(), e.trim())) else {
        return RangeHeader::Malformed;
    };
    let number = |text: &str| text.parse::<u64>().ok();
    match (start.is_empty(), end.is_empty()) {
        (true, false) => number(end).map_or(RangeHeader::Malformed, RangeHeader::Suffix),
        (false, true) => number(start).map_or(RangeHeader::Malformed, |start| RangeHeader::From {
            start,
            end: None,
        }),
        (false, false) => match (number(start), number(end)) {
            (Some(start), Some(end)) => RangeHeader::From {
                start,
                end: Some(end),
            },
            _ => RangeHeader::Malformed,
        },
        (true, true) => RangeHeader::Malformed,
    }
}

/// A refused range answers 416 with the archive's size in `Content-Range`, which RFC 9110
/// asks for; the domain gives the size as the refusal's one parameter.
fn range_error(err: DomainError) -> ApiError {
    let total = match &err {
        DomainError::Rejected {
            code: ErrorCode::RangeNotSatisfiable,
            parameters,
            ..
        } => parameters.first().cloned(),
        _ => None,
    };
    let error = ApiError::from(err);
    match total.and_then(|t| HeaderValue::from_str(&format!("bytes */{t}")).ok()) {
        Some(value) => error.with_header(header::CONTENT_RANGE, value),
        None => error,
    }
}

async fn download(
    State(state): State<AppState>,
    method: Method,
    ApiPath((job, token, file)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = DownloadRequest {
        job: &job,
        token: &token,
        file: &file,
        range: range_header(&headers),
        wants_body: method != Method::HEAD,
    };
    let download = state
        .services
        .open_download(request)
        .await
        .map_err(range_error)?;
    let mut response = match download.body {
        Some(body) => Response::new(Body::from_stream(body)),
        None => Response::new(Body::empty()),
    };
    let (start, end, total) = (download.start, download.end, download.total_bytes);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    let disposition = format!("attachment; filename=\"{}\"", download.file_name);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if download.is_partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> RangeHeader {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        range_header(&headers)
    }

    #[test]
    fn one_range_of_bytes_is_read_and_anything_else_is_malformed() {
        assert_eq!(range_header(&HeaderMap::new()), RangeHeader::Absent);
        assert_eq!(
            read("bytes=5-"),
            RangeHeader::From {
                start: 5,
                end: None
            }
        );
        assert_eq!(
            read("bytes= 5 - 9 "),
            RangeHeader::From {
                start: 5,
                end: Some(9)
            }
        );
        assert_eq!(read("bytes=-7"), RangeHeader::Suffix(7));
        for bad in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=-",
            "bytes=a-",
            "bytes=1-b",
            "bytes=5",
            "0-1",
        ] {
            assert_eq!(read(bad), RangeHeader::Malformed, "{bad}");
        }
    }
}
