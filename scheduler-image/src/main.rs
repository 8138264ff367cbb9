//! `datajump-scheduler`: wires flags, logging, the HTTP endpoint and the controllers together.
//! All logic lives in the `datajump_scheduler` library.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use datajump_scheduler::archive::LogArchive;
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

    let archive = match cli.log_archive_config() {
        Ok(Some(config)) => Some(Arc::new(
            LogArchive::new(&config).context("setting up the log archive")?,
        )),
        Ok(None) => None,
        Err(message) => anyhow::bail!("{message}"),
    };
    if let Some(archive) = &archive {
        tracing::info!(
            ?archive,
            "finished task pods' logs are archived before the pods go"
        );
    }
    let mut http_shutdown = shutdown_rx.clone();
    let router = http::router(metrics.clone(), health.clone(), archive.clone());
    let listener_addr = cli.http_addr;
    let server = tokio::spawn(async move {
        http::serve(listener_addr, router, async move {
            let _ = http_shutdown.wait_for(|s| *s).await;
        })
        .await
    });

    // After the signal, the controllers finish in-flight writes and release the Lease; if the
    // API server does not answer (unreachable, namespace gone) that could wait forever, so the
    // process exits once the grace period is over. The Lease then simply expires.
    let mut config = cli.controller_config();
    config.log_archive = archive;
    let mut signalled = shutdown_rx.clone();
    let deadline = async move {
        let _ = signalled.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let result = tokio::select! {
        result = controller::run(&config, metrics, health, shutdown_rx) => result,
        () = deadline => {
            tracing::warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "shutdown did not finish in time (API server not answering?); exiting without releasing the Lease"
            );
            Ok(())
        }
    };
    server.abort();
    result.context("scheduler stopped")
}

/// How long a clean shutdown may take after SIGTERM: well inside Kubernetes' default
/// 30 s termination grace period, so the process always ends on its own terms.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
    let result = runtime.block_on(run(cli));
    // Tasks still waiting on the network are dropped, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}
