//! Reading request bodies: content type, size limit, JSON syntax, then field by field with
//! the API's error codes (`INVALID_JSON`, `INVALID_JSON_ATTRIBUTE`, `MISSING_ATTRIBUTE`,
//! `INVALID_ATTRIBUTE` for unknown fields).

use axum::body::to_bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::domain::ErrorCode;

/// Largest JSON request body accepted by the API, in bytes.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// Most bytes of a refused request's body read and thrown away, and for how long: twice the
/// largest body any route accepts (a 32 MiB oplog push or chunk batch), so that a client
/// sending one slightly too large still reads its 413 rather than a reset connection.
pub const MAX_DISCARDED_BODY_BYTES: usize = 64 * 1024 * 1024;
const DISCARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and throws away the body of a request that was answered without it.
///
/// The answer (a 401 challenge, a 413, a 415) goes out at once; this only keeps the
/// connection reading meanwhile. Without it the connection is closed with the client's bytes
/// still unread, the kernel resets it, and a client still sending its body (Digest clients
/// send it with the unauthenticated probe) sees a broken pipe instead of the answer. Bounded
/// in bytes and time, so a client cannot hold the task; past either bound the connection is
/// closed as before.
pub fn discard_body(body: axum::body::Body) {
    use futures::StreamExt;
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut seen = 0usize;
        let drain = async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > MAX_DISCARDED_BODY_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_TIMEOUT, drain).await;
    });
}

/// Refuses a request whose declared or actual body exceeds `limit` bytes (`413`).
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTooLarge,
        format!("The request body exceeds the limit of {limit} bytes."),
        vec![],
    )
}

/// Checks the `Content-Type` is `want` (parameters such as `charset` allowed).
pub fn require_content_type(req: &Request, want: &str) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = given.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("The request body must be sent with Content-Type: {want}."),
            vec!["Content-Type".into()],
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes up front (by `Content-Length`)
/// or while reading.
pub async fn read_limited(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        discard_body(req.into_body());
        return Err(too_large(limit));
    }
    to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| too_large(limit))
}

/// A JSON request body, already checked for content type, size and syntax.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, MAX_JSON_BODY_BYTES).await.map(JsonBody)
    }
}

/// Reads a JSON body of at most `limit` bytes straight into `T`; a body that does not fit
/// `T` is `INVALID_JSON` with serde's explanation.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request,
    limit: usize,
) -> Result<T, ApiError> {
    if let Err(refusal) = require_content_type(&req, "application/json") {
        discard_body(req.into_body());
        return Err(refusal);
    }
    let bytes = read_limited(req, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("Received JSON does not match expected format: {e}."),
            vec![],
        )
    })
}

fn wrong_type(path: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidJsonAttribute,
        format!("Received JSON for the {path} attribute does not match expected format: expected {expected}."),
        vec![path.to_owned()],
    )
}

/// Walks one JSON object field by field; whatever is left at `finish` is an unknown field.
pub struct Fields {
    map: Map<String, Value>,
    prefix: String,
}

impl Fields {
    /// The body as an object; any other JSON type is `INVALID_JSON`.
    pub fn from_body(value: Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                prefix: String::new(),
            }),
            _ => Err(ApiError::new(
                ErrorCode::InvalidJson,
                "Received JSON does not match expected format: expected an object.",
                vec![],
            )),
        }
    }

    /// The dotted name of a field, as `parameters` reports it (`delivery.maxDownloads`).
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Removes a field; JSON `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    pub fn missing(&self, name: &str) -> ApiError {
        let path = self.path(name);
        ApiError::new(
            ErrorCode::MissingAttribute,
            format!("The required attribute {path} was not specified."),
            vec![path],
        )
    }

    pub fn opt_str(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(&self.path(name), "a string")),
        }
    }

    pub fn req_str(&mut self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(wrong_type(&self.path(name), "true or false")),
        }
    }

    /// An integer given as a JSON number or a numeric string (`1`, `"1"`). A fraction is
    /// `INVALID_ATTRIBUTE`; anything non-numeric `INVALID_JSON_ATTRIBUTE`.
    pub fn opt_int(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        let path = self.path(name);
        let fraction = || {
            ApiError::new(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute {path} specified: it must be a whole number."),
                vec![path.clone()],
            )
        };
        let number = match self.take(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n,
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s.trim()) {
                Ok(Value::Number(n)) if !s.trim().is_empty() => n,
                _ => return Err(wrong_type(&path, "a number")),
            },
            Some(_) => return Err(wrong_type(&path, "a number")),
        };
        if let Some(i) = number.as_i64() {
            return Ok(Some(i));
        }
        match number.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            Some(f) if f.fract() != 0.0 => Err(fraction()),
            _ => Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute {path} specified: the number is out of range."),
                vec![path.clone()],
            )),
        }
    }

    /// A nested object, walked with its own `Fields` (whose unknown fields are reported
    /// with the dotted path).
    pub fn opt_object(&mut self, name: &str) -> Result<Option<Fields>, ApiError> {
        let prefix = format!("{}.", self.path(name));
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields { map, prefix })),
            Some(_) => Err(wrong_type(&self.path(name), "an object")),
        }
    }

    pub fn opt_array(&mut self, name: &str) -> Result<Option<Vec<Value>>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(wrong_type(&self.path(name), "an array")),
        }
    }

    /// Refuses any field not consumed: the API rejects unknown fields rather than ignoring them.
    pub fn finish(self) -> Result<(), ApiError> {
        let mut unknown: Vec<String> = self
            .map
            .into_iter()
            .map(|(k, _)| format!("{}{k}", self.prefix))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute {} specified.", unknown.join(", ")),
            unknown,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        Fields::from_body(v).unwrap()
    }

    #[test]
    fn integers_accept_numbers_and_numeric_strings() {
        let mut f =
            fields(json!({"a": 1, "b": "2", "c": 3.0, "d": "1.5", "e": "x", "f": true, "g": " "}));
        assert_eq!(f.opt_int("a").unwrap(), Some(1));
        assert_eq!(f.opt_int("b").unwrap(), Some(2));
        assert_eq!(f.opt_int("c").unwrap(), Some(3));
        assert_eq!(
            f.opt_int("d").unwrap_err().code,
            ErrorCode::InvalidAttribute
        );
        assert_eq!(
            f.opt_int("e").unwrap_err().code,
            ErrorCode::InvalidJsonAttribute
        );
        assert_eq!(
            f.opt_int("f").unwrap_err().code,
            ErrorCode::InvalidJsonAttribute
        );
        assert_eq!(
            f.opt_int("g").unwrap_err().code,
            ErrorCode::InvalidJsonAttribute
        );
        assert_eq!(f.opt_int("missing").unwrap(), None);
    }

    #[test]
    fn unknown_fields_are_reported_with_their_dotted_path() {
        let mut f = fields(json!({"delivery": {"methodName": "HTTP", "bogus": 1}}));
        let mut d = f.opt_object("delivery").unwrap().unwrap();
        assert_eq!(d.req_str("methodName").unwrap(), "HTTP");
        let err = d.finish().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidAttribute);
        assert_eq!(err.parameters, vec!["delivery.bogus"]);
        assert!(f.finish().is_ok());
    }

    #[test]
    fn missing_and_mistyped_fields_have_their_own_codes() {
        let mut f = fields(json!({"name": 5}));
        assert_eq!(
            f.req_str("name").unwrap_err().code,
            ErrorCode::InvalidJsonAttribute
        );
        assert_eq!(
            f.req_str("other").unwrap_err().code,
            ErrorCode::MissingAttribute
        );
        assert_eq!(
            Fields::from_body(json!([1])).err().unwrap().code,
            ErrorCode::InvalidJson
        );
    }
}
