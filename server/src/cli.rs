//! The `canvas-server` command line: configuration from flags and environment, logs,
//! start, and a clean stop on ctrl-c or SIGTERM.

use crate::{Config, open_state, serve};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Runs the server as `canvas-server` does, from the process's arguments and environment.
pub fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(cause) => {
            eprintln!("cannot start the async runtime: {cause}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(Config::parse()))
}

async fn run(config: Config) -> std::process::ExitCode {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let bind = config.bind;
    let data_dir = config.data_dir.clone();
    let state = match open_state(config).await {
        Ok(state) => state,
        Err(cause) => {
            tracing::error!(%cause, data_dir = %data_dir.display(), "cannot open storage");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(cause) => {
            tracing::error!(%cause, %bind, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| bind.to_string());
    tracing::info!(data_dir = %data_dir.display(), "canvas-server listening on http://{addr}");
    println!("canvas-server listening on http://{addr}");
    match serve(listener, state, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            std::process::ExitCode::SUCCESS
        }
        Err(cause) => {
            tracing::error!(%cause, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: flushing rooms");
}
