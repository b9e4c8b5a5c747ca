//! Serving the router over HTTP/1.1 with deadlines on every stage of a request.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never runs and
//! nothing bounds a request: a client that promised a body and never sent it held its
//! connection (and the handler waiting on it) forever. Here each connection gets:
//! - the headers within the timeout (hyper's `header_read_timeout`; the connection is
//!   closed otherwise), also between requests on a kept-alive connection;
//! - the body with no pause longer than the timeout (the read fails, the request ends);
//! - the whole answer within the timeout (`408 Request Timeout` otherwise; the handler
//!   is dropped, so an unfinished database transaction rolls back).
//!
//! Shutdown is graceful as before: stop accepting, let requests in flight finish (each
//! bounded by the timeout), close idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// Serves `router` on `listener` until `shutdown` completes, then waits for the
/// connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(RequestBodyTimeoutLayer::new(timeout));
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            timeout,
            closing.clone(),
        ));
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    timeout: Duration,
    closing: CancellationToken,
) {
    // Handlers read the peer as `ConnectInfo`, as under `into_make_service_with_connect_info`.
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let finished = tokio::select! {
        finished = connection.as_mut() => finished,
        () = closing.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = finished {
        // A client gone or too slow: theirs to retry, nothing for us to do.
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}
