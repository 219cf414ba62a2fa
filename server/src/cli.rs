//! The `canvas-server` command line: configuration from flags and environment, logs,
//! start, and a clean stop on ctrl-c or SIGTERM.

use crate::config::LogFormat;
use crate::{Config, open_state, serve};
use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
    // Colour codes only for a person at a terminal: a pipe or a file gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let subscriber = log_subscriber(&config.log, config.log_format, std::io::stderr, ansi);
    if let Err(cause) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("cannot set up logging: {cause}");
    }

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
    let shutdown = shutdown_signal();
    tracing::info!(data_dir = %data_dir.display(), "canvas-server listening on http://{addr}");
    println!("canvas-server listening on http://{addr}");
    match serve(listener, state, shutdown).await {
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

/// The log subscriber `canvas-server` installs: `filter` in `EnvFilter` syntax (`info` if it
/// does not parse), lines in `format` to `writer`, with colour codes only if `ansi` (never in
/// JSON).
pub fn log_subscriber<W>(
    filter: &str,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

/// Completes on ctrl-c (SIGINT) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a SIGTERM sent right after the server said
/// it listens shuts it down cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
            tracing::info!("shutting down: flushing rooms");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: flushing rooms");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_log::Captured;

    fn logged(format: LogFormat, ansi: bool) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = log_subscriber("info", format, move || sink.clone(), ansi);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("room", canvas = "c-1");
            let _entered = span.enter();
            tracing::warn!(bytes = 42, "sending a \"large\" frame");
            tracing::debug!("filtered out");
        });
        let bytes = captured.0.lock().expect("log").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn json_logs_are_one_object_per_line_with_the_fields_and_spans() {
        let log = logged(LogFormat::Json, true);
        assert!(!log.contains('\u{1b}'), "no escape codes in JSON: {log}");
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "sending a \"large\" frame");
        assert_eq!(line["bytes"], 42);
        assert_eq!(line["span"]["name"], "room");
        assert_eq!(line["span"]["canvas"], "c-1");
        assert!(line["timestamp"].is_string(), "{line}");
    }

    #[test]
    fn text_logs_have_colour_only_when_asked() {
        let plain = logged(LogFormat::Text, false);
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        assert!(plain.contains("room{canvas=\"c-1\"}"), "{plain}");
        assert!(plain.contains("bytes=42"), "{plain}");
        let coloured = logged(LogFormat::Text, true);
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
    }
}
