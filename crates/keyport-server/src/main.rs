//! `keyport`: run the identity server, migrate its database, or administer
//! its users from the command line.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use keyport_core::SystemClock;
use keyport_server::{
    Config, Keyport,
    admin_cli::{self, AdminCommand},
    config::{LogFormat, Overrides},
    telemetry,
};
use tokio::net::TcpListener;

/// Keyport: sign-up, sign-in and sessions over gRPC.
#[derive(Debug, Parser)]
#[command(name = "keyport", version)]
struct Cli {
    /// TOML configuration file (see keyport.example.toml).
    #[arg(long, global = true, env = "KEYPORT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// Directory of the embedded SQLite database [default: keyport-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL, e.g. postgres://user@host/keyport [default: SQLite in the data directory].
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log format [default: pretty].
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations, then serve gRPC until SIGTERM or Ctrl-C.
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Administer users on the configured database, with the server running
    /// or not: create the first admin, grant and revoke roles, ban, list.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        log_format: cli.log_format,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("keyport: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::Admin { command } = cli.command {
        telemetry::init_for_tools();
        return administer(command, config).await;
    }
    telemetry::init(config.log_format);
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "keyport stopped");
            ExitCode::FAILURE
        }
    }
}

/// Runs one `keyport admin` command; prints its answer, or why it failed.
async fn administer(command: AdminCommand, config: Config) -> ExitCode {
    let keyport = match Keyport::open(config, Arc::new(SystemClock)).await {
        Ok(keyport) => keyport,
        Err(error) => {
            eprintln!("keyport admin: cannot open the database: {error}");
            return ExitCode::FAILURE;
        }
    };
    match admin_cli::run(keyport.accounts(), command, std::io::stdin().lock()).await {
        Ok(answer) => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("keyport admin: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), keyport_server::StartError> {
    let listen = config.listen;
    let keyport = Keyport::open(config, Arc::new(SystemClock)).await?;
    match command {
        Command::Migrate => {
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Admin { .. } => Ok(()),
        Command::Serve => {
            let listener = TcpListener::bind(listen).await?;
            tracing::info!(address = %listener.local_addr()?, "keyport serving gRPC");
            keyport.serve(listener, shutdown_signal()).await?;
            tracing::info!("keyport stopped");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; draining in-flight calls");
}
