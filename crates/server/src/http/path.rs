//! Reading path segments: `ApiPath<(GroupId, ClusterId, JobId)>` hands a handler its ids
//! already parsed, and a malformed id answers `404` with its own `INVALID_*_ID` code.
//!
//! The table of which id answers which code, and with which noun, is `path_ids!` below; a
//! handler never parses an id from a path itself.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;

use super::error::ApiError;
use crate::domain::ErrorCode;
use crate::ids::{ApiKeyId, CheckpointId, ClusterId, GroupId, JobId, OrgId, SnapshotId};

/// An id the API takes in a path: how its text parses and how a malformed one is answered.
pub trait PathId: Sized {
    /// The noun of the error detail: "An invalid {NOUN} ID {text} was specified."
    const NOUN: &'static str;
    /// The `INVALID_*_ID` code of a malformed one.
    const INVALID: ErrorCode;

    /// Parses the canonical text; `None` when it is not an id of this kind.
    fn parse_text(text: &str) -> Option<Self>;
}

macro_rules! path_ids {
    ($($ty:ty => $code:ident, $noun:literal;)*) => {
        $(
            impl PathId for $ty {
                const NOUN: &'static str = $noun;
                const INVALID: ErrorCode = ErrorCode::$code;

                fn parse_text(text: &str) -> Option<Self> {
                    <$ty>::parse(text)
                }
            }
        )*
    };
}

path_ids! {
    OrgId => InvalidOrgId, "organization";
    GroupId => InvalidGroupId, "group";
    ClusterId => InvalidClusterId, "cluster";
    ApiKeyId => InvalidApiKeyId, "API key";
    SnapshotId => InvalidSnapshotId, "snapshot";
    CheckpointId => InvalidCheckpointId, "checkpoint";
    JobId => InvalidJobId, "restore job";
}

/// The answer for `text` that is not an id of kind `T`: `404`, `T`'s code, `text` echoed.
pub fn invalid_id<T: PathId>(text: &str) -> ApiError {
    ApiError::new(
        T::INVALID,
        format!("An invalid {} ID {text} was specified.", T::NOUN),
        vec![text.to_owned()],
    )
}

/// Parses an id given as text; a malformed one is `T`'s `INVALID_*_ID` answer. Also for the
/// body fields the API answers the same way (a new project's `orgId`).
pub fn parse_id<T: PathId>(text: &str) -> Result<T, ApiError> {
    T::parse_text(text).ok_or_else(|| invalid_id::<T>(text))
}

/// What one path segment can become: an id (see [`PathId`]) or a `String` taken as given.
pub trait Segment: Sized {
    /// From the percent-decoded segment.
    fn from_text(text: &str) -> Result<Self, ApiError>;

    /// The answer for a segment that does not percent-decode to UTF-8, given its raw
    /// (still encoded) text; `None` leaves it to the generic `RESOURCE_NOT_FOUND`.
    fn undecodable(raw: &str) -> Option<ApiError>;
}

impl Segment for String {
    fn from_text(text: &str) -> Result<Self, ApiError> {
        Ok(text.to_owned())
    }

    fn undecodable(_raw: &str) -> Option<ApiError> {
        None
    }
}

impl<T: PathId> Segment for T {
    fn from_text(text: &str) -> Result<Self, ApiError> {
        parse_id(text)
    }

    fn undecodable(raw: &str) -> Option<ApiError> {
        Some(invalid_id::<T>(raw))
    }
}

/// What a route's segments can become: one [`Segment`], or a tuple of them in the order the
/// route names them.
pub trait PathParams: Sized {
    /// From the decoded segments in route order; `None` when their count is not this type's.
    fn from_texts(texts: &[&str]) -> Option<Result<Self, ApiError>>;

    /// The answer for the segment at `index` that does not decode (see [`Segment`]).
    fn undecodable(index: usize, raw: &str) -> Option<ApiError>;
}

impl<T: Segment> PathParams for T {
    fn from_texts(texts: &[&str]) -> Option<Result<Self, ApiError>> {
        match texts {
            [text] => Some(T::from_text(text)),
            _ => None,
        }
    }

    fn undecodable(index: usize, raw: &str) -> Option<ApiError> {
        (index == 0).then(|| T::undecodable(raw)).flatten()
    }
}

macro_rules! tuple_params {
    ($($ty:ident $text:ident $index:tt),+) => {
        impl<$($ty: Segment),+> PathParams for ($($ty,)+) {
            fn from_texts(texts: &[&str]) -> Option<Result<Self, ApiError>> {
                let &[$($text),+] = texts else {
                    return None;
                };
                // Left to right: the first malformed segment is the one answered.
                let parsed = || Ok(($($ty::from_text($text)?,)+));
                Some(parsed())
            }

            fn undecodable(index: usize, raw: &str) -> Option<ApiError> {
                match index {
                    $($index => $ty::undecodable(raw),)+
                    _ => None,
                }
            }
        }
    };
}

tuple_params!(A a 0, B b 1);
tuple_params!(A a 0, B b 1, C c 2);
tuple_params!(A a 0, B b 1, C c 2, D d 3);

/// `Path` for the API: segments become ids or strings (see [`PathParams`]), and every
/// refusal is the API's error body.
///
/// axum decodes every segment before any is parsed, so a segment that percent-decodes to
/// invalid UTF-8 (`%ff%fe`) is answered before a malformed one to its left: an id with its
/// `INVALID_*_ID` code echoing the raw segment, a string segment with `RESOURCE_NOT_FOUND`
/// (axum's own `Path` would answer a plain-text `400`).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: PathParams + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = match Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Path(params)) => params,
            Err(rejection) => return Err(undecodable::<T>(parts, rejection)),
        };
        let texts: Vec<&str> = params.iter().map(|(_, text)| text.as_str()).collect();
        match T::from_texts(&texts) {
            Some(parsed) => parsed.map(ApiPath),
            None => {
                tracing::error!(
                    segments = texts.len(),
                    "path parameters do not fit the route"
                );
                Err(unexpected())
            }
        }
    }
}

fn unexpected() -> ApiError {
    ApiError::new(ErrorCode::UnexpectedError, "Unexpected error.", vec![])
}

/// The answer for a path axum could not decode: the undecodable segment's own answer.
fn undecodable<T: PathParams>(parts: &Parts, rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let key = match &rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
            _ => None,
        },
        _ => None,
    };
    let Some(key) = key else {
        tracing::error!(error = %rejection, "path parameters do not fit the route");
        return unexpected();
    };
    let path = parts.uri.path().to_owned();
    // The route's template and the request's path have their segments at the same places.
    let template = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let segments = template.unwrap_or_default().split('/').zip(path.split('/'));
    let params = segments.filter(|(name, _)| name.starts_with('{'));
    let wanted = format!("{{{key}}}");
    let answer = params
        .enumerate()
        .find(|(_, (name, _))| *name == wanted)
        .and_then(|(index, (_, raw))| T::undecodable(index, raw));
    answer.unwrap_or_else(|| {
        ApiError::new(
            ErrorCode::ResourceNotFound,
            format!("Cannot find resource {path}."),
            vec![path],
        )
    })
}

/// The project id of a route whose path names `{group}`, answered as [`ApiPath`] answers a
/// malformed one; `None` when the path does not decode at all, which the handler's own
/// [`ApiPath`] then answers segment by segment.
pub async fn group_of<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Option<GroupId>, ApiError> {
    let Ok(Path(params)) = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await
    else {
        return Ok(None);
    };
    match params.iter().find(|(name, _)| name == "group") {
        Some((_, text)) => parse_id(text).map(Some),
        None => {
            tracing::error!("a backup administration route without a group segment");
            Err(unexpected())
        }
    }
}
