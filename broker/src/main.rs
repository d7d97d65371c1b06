//! The `herald` binary: parse flags, load the config, run the broker until
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use herald::config::Config;
use herald::server::Server;
use tracing_subscriber::EnvFilter;

/// Herald: a highly-available MQTT 3.1 / 3.1.1 / 5.0 broker.
///
/// With no arguments it listens on 127.0.0.1:1883 with data under ./data.
/// Settings come from the defaults, then the config file, then these flags
/// (each also settable through its HERALD_* environment variable). Logging
/// is controlled by RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about)]
struct Cli {
    /// TOML config file (see --print-default-config for every key).
    #[arg(long, env = "HERALD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// MQTT listener address, e.g. 0.0.0.0:1883.
    #[arg(long, env = "HERALD_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for durable state (created if missing, locked while running).
    #[arg(long, env = "HERALD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Admin HTTP address (/metrics, /health/live, /health/ready).
    #[arg(long, env = "HERALD_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Print the default configuration as TOML and exit.
    #[arg(long, env = "HERALD_PRINT_DEFAULT_CONFIG")]
    print_default_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", Config::default_toml());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("herald: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(addr) = cli.admin_listen {
        config.admin.listen = addr;
    }
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
