//! Accepting connections: HTTP/1.1 over TCP with the limits a public listener needs.
//!
//! Written out rather than `axum::serve`, which offers no header read timeout: a client
//! that sends part of its headers and stalls would hold its connection (and a task) for as
//! long as it likes. Here hyper's own connection builder gets a timer and a deadline for
//! the headers; everything else is what `axum::serve` does (connection info for each
//! request, graceful shutdown that lets in-flight requests finish).

use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send a request's line and headers. hyper starts the
/// clock when it waits for a request, so this is also how long an idle keep-alive
/// connection stays open.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (say, out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
/// A connection whose request line and headers take longer than `header_timeout` is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = TaskTracker::new();
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service =
            TowerToHyperService::new(app.clone().map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            }));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        // Once the server is stopping, the connection finishes its current request and closes.
        connections.spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(peer = %remote, error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which happens only once the server has stopped.
    let _ = stop.wait_for(|stopping| *stopping).await;
}
