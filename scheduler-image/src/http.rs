//! The HTTP endpoint (port `http`, 8080 by default): `/metrics` for Prometheus, `/healthz`
//! for the liveness probe, `/readyz` for the readiness probe, and, with the log archive on,
//! `/archive/logs/<namespace>/<workflow>/<run>/<task>/<attempt>`: an archived task log,
//! streamed from S3 (what `kubectl datajump workflow logs` reads through the API server's
//! service proxy once a pod is gone). Any replica serves it, leader or not.
//!
//! Liveness means the process serves requests. Readiness means the replica has talked to the
//! API server successfully: as leader with its caches synced, or as a standby follower.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::archive::{LogArchive, LogKey};
use crate::metrics::Metrics;

/// Shared health state.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the replica ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the replica is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    archive: Option<Arc<LogArchive>>,
}

/// The path segments of an archived log: namespace, workflow, run, task, attempt.
type LogPath = (String, String, String, String, String);

/// A plain-text answer.
fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// An archived task log, streamed from the archive as it arrives (never held whole).
async fn archived_log(
    State(s): State<AppState>,
    Path((ns, workflow, run, task, attempt)): Path<LogPath>,
) -> Response {
    let Some(archive) = &s.archive else {
        return text(
            StatusCode::NOT_FOUND,
            "this scheduler keeps no log archive (scheduler.logArchive.enabled is false)\n".into(),
        );
    };
    let key = attempt
        .parse::<u32>()
        .map_err(|_| format!("attempt {attempt:?} is not a number"))
        .and_then(|n| LogKey::new(&ns, &workflow, &run, &task, n).map_err(|e| e.to_string()));
    let key = match key {
        Ok(key) => key,
        Err(message) => return text(StatusCode::BAD_REQUEST, format!("{message}\n")),
    };
    match archive.open(&key).await {
        Ok(Some((len, body))) => {
            let mut response = Response::new(Body::new(body));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            if let Some(len) = len {
                headers.insert(header::CONTENT_LENGTH, len.into());
            }
            response
        }
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            format!("no archived log at {}\n", archive.url(&key)),
        ),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The router serving the endpoints; archived logs from `archive`, when there is one.
pub fn router(
    metrics_: Arc<Metrics>,
    health: Arc<Health>,
    archive: Option<Arc<LogArchive>>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/archive/logs/{namespace}/{workflow}/{run}/{task}/{attempt}",
            get(archived_log),
        )
        .with_state(AppState {
            metrics: metrics_,
            health,
            archive,
        })
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_path(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let metrics = Arc::new(Metrics::new());
        metrics.running_tasks.set(3);
        let health = Arc::new(Health::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(metrics, health.clone(), None);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        assert!(get_path(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get_path(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get_path(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let body = get_path(addr, "/metrics").await;
        assert!(body.contains("scheduler_running_tasks 3"), "{body}");
        assert!(body.contains("# TYPE task counter"), "{body}");
        server.abort();
    }

    /// Serves `archive` on a free port; returns its address and the server task.
    async fn serve_archive(
        archive: Option<Arc<LogArchive>>,
    ) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(
            Arc::new(Metrics::new()),
            Arc::new(Health::default()),
            archive,
        );
        (
            addr,
            tokio::spawn(async move { axum::serve(listener, app).await }),
        )
    }

    #[tokio::test]
    async fn archived_logs_say_why_they_cannot_be_served() {
        // No archive configured: not found, and why.
        let (addr, server) = serve_archive(None).await;
        let answer = get_path(addr, "/archive/logs/data/etl/etl-1/load/1").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(answer.contains("keeps no log archive"), "{answer}");
        server.abort();

        // An archive whose endpoint does not answer: a path that is no key is refused before
        // any request; a valid one is a bad gateway naming the object.
        let bucket = crate::archive::Bucket::new(
            "http://127.0.0.1:9",
            "logs",
            "us-east-1",
            crate::archive::CredentialSource::Fixed(crate::archive::sigv4::Credentials {
                access_key: "a".into(),
                secret_key: "s".into(),
            }),
            None,
        )
        .expect("bucket");
        let archive = Arc::new(LogArchive::with_bucket(bucket, "dj"));
        let (addr, server) = serve_archive(Some(archive)).await;
        let answer = get_path(addr, "/archive/logs/data/etl/Etl-1/load/1").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.contains("run \"Etl-1\" is not a Kubernetes name"),
            "{answer}"
        );
        let answer = get_path(addr, "/archive/logs/data/etl/etl-1/load/first").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let answer = get_path(addr, "/archive/logs/data/etl/etl-1/load/2").await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
        assert!(
            answer.contains("reading s3://logs/dj/data/etl/etl-1/load/2.log"),
            "{answer}"
        );
        server.abort();
    }
}
