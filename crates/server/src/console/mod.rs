//! The web console: HTML pages under `/console`, rendered by the server, acting as the API
//! key that signed in. A presentation layer beside the API's: handlers read forms and
//! render pages; what a key may see and do, and every rule of a restore, is decided by the
//! same domain services (and the same request parsing) that serve the API.

mod assets;
mod pages;
mod render;
mod session;
pub mod timeline;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;

/// Every console route, plus `/` sending a browser to the console.
pub fn routes() -> Router<AppState> {
    let cluster = "/console/projects/{group}/clusters/{cluster}";
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(pages::signin::home))
        .route("/console/", get(pages::signin::home))
        .route("/console/assets/{name}", get(assets::asset))
        .route(
            "/console/signin",
            get(pages::signin::form).post(pages::signin::sign_in),
        )
        .route("/console/signout", post(pages::signin::sign_out))
        .route("/console/projects", get(pages::projects::list))
        .route(cluster, get(pages::cluster::show))
        .route(
            &format!("{cluster}/snapshots/{{snapshot}}/delete"),
            post(pages::cluster::delete_snapshot),
        )
        .route(
            &format!("{cluster}/snapshots/{{snapshot}}/retention"),
            post(pages::cluster::set_retention),
        )
        .route(
            &format!("{cluster}/restore"),
            get(pages::restore::wizard).post(pages::restore::start),
        )
        .route(&format!("{cluster}/jobs"), get(pages::jobs::history))
        .route(&format!("{cluster}/jobs/{{job}}"), get(pages::jobs::show))
        .route(
            &format!("{cluster}/jobs/{{job}}/progress"),
            get(pages::jobs::progress),
        )
        .route(
            &format!("{cluster}/jobs/{{job}}/cancel"),
            post(pages::jobs::cancel),
        )
        .route("/console/keys", get(pages::keys::list))
        .route("/console/keys/{key}/access", post(pages::keys::add_access))
        .route(
            "/console/keys/{key}/access/delete",
            post(pages::keys::delete_access),
        )
}
