//! `datajump-scheduler`: wires flags, logging, the HTTP endpoint and the controllers together.
//! All logic lives in the `datajump_scheduler` library.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use datajump_scheduler::config::{Cli, LogFormat};
use datajump_scheduler::controller;
use datajump_scheduler::http::{self, Health};
use datajump_scheduler::metrics::Metrics;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        termination().await;
        tracing::info!("termination signal received; shutting down");
        let _ = shutdown_tx.send(true);
    });

    let mut http_shutdown = shutdown_rx.clone();
    let router = http::router(metrics.clone(), health.clone());
    let listener_addr = cli.http_addr;
    let server = tokio::spawn(async move {
        http::serve(listener_addr, router, async move {
            let _ = http_shutdown.wait_for(|s| *s).await;
        })
        .await
    });

    let result = controller::run(&cli, metrics, health, shutdown_rx).await;
    server.abort();
    result.context("scheduler stopped")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}
