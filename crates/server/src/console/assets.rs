//! The console's own stylesheet and scripts, embedded in the binary: nothing is fetched
//! from elsewhere, at build time or at run time.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
    (
        "timeline.css",
        "text/css; charset=utf-8",
        include_str!("assets/timeline.css"),
    ),
    (
        "timeline.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/timeline.js"),
    ),
];

/// `GET /console/assets/{name}`. Assets change only with the binary, so a browser may keep
/// them for an hour.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "No such asset.").into_response(),
    }
}
