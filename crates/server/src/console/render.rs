//! Rendering pages: the templates, embedded in the binary and autoescaped as HTML, and the
//! headers every console response carries.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

/// The policy of every console page: nothing but this server's own scripts, styles, forms
/// and images (the timeline is inline SVG), and no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("templates/", $name)))),*]
    };
}

/// Every template, by the name pages render it by.
const TEMPLATES: &[(&str, &str)] = templates![
    "layout.html",
    "macros.html",
    "signin.html",
    "error.html",
    "projects.html",
    "cluster.html",
    "restore.html",
    "jobs.html",
    "job.html",
    "keys.html",
];

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        // Templates are part of the binary; one that does not parse is a build defect,
        // caught by the test below before it can ship.
        for (name, source) in TEMPLATES {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, %err, "console template does not parse");
            }
        }
        // The wire views leave out unset optional fields, as the API does: a page reads them as
        // empty rather than failing.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        // A size not known yet (absent from the JSON the page reuses) reads "?", as the
        // page's script shows it.
        env.add_filter("bytes", |n: Option<u64>| {
            n.map_or_else(|| "?".to_owned(), super::pages::bytes_text)
        });
        env
    })
}

/// Adds the headers every console response carries: its security policy, no caching (pages
/// show live state and a session's CSRF token), no content sniffing, no referrer outside.
pub fn with_console_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Renders template `name` with `context` as an HTML response with `status`.
pub fn page<C: Serialize>(status: StatusCode, name: &str, context: C) -> Response {
    let rendered = environment()
        .get_template(name)
        .and_then(|template| template.render(context));
    let response = match rendered {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(template = name, %err, "console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be rendered; the server's log says why.",
            )
                .into_response()
        }
    };
    with_console_headers(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name)
                .unwrap_or_else(|err| panic!("{name}: {err:#}"));
        }
    }

    #[test]
    fn a_size_not_known_yet_reads_as_a_question_mark() {
        let env = environment();
        let shown = |context: minijinja::Value| {
            env.render_str("{{ p.bytesExpected | bytes }}", context)
                .unwrap()
        };
        assert_eq!(
            shown(minijinja::context! { p => minijinja::context! {} }),
            "?"
        );
        let none: Option<u64> = None;
        assert_eq!(
            shown(minijinja::context! { p => minijinja::context! { bytesExpected => none } }),
            "?"
        );
        assert_eq!(
            shown(minijinja::context! { p => minijinja::context! { bytesExpected => 1536 } }),
            "1.5 KiB"
        );
    }
}
