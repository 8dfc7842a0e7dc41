//! `keyport`: run the identity server, migrate its database, or administer
//! its users from the command line.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use keyport_core::SystemClock;
use keyport_server::{
    Config, Keyport,
    admin_cli::{self, AdminCommand},
    backup_cli,
    config::{LogFormat, Overrides},
    health_probe, telemetry,
};
use tokio::net::TcpListener;
use tonic_health::pb::health_check_response::ServingStatus;

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
    /// Copy the SQLite database to PATH, a new file, consistently, while
    /// the server may be serving from it (PostgreSQL: use pg_dump).
    Backup {
        /// Where to write the copy; must not exist.
        path: PathBuf,
    },
    /// Put the backup at PATH in place as the SQLite database, which must
    /// not exist: stop the server and move the old files aside first.
    Restore {
        /// The backup to restore (from `keyport backup`).
        path: PathBuf,
    },
    /// Ask the server on the configured `listen` address (or `--listen`)
    /// whether it is serving: exit 0 when it is, 1 when not (for container
    /// health checks). Plaintext only.
    Health,
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
    if let command @ (Command::Serve | Command::Migrate) = cli.command {
        let telemetry = match telemetry::init(config.log_format, &config.tracing) {
            Ok(telemetry) => telemetry,
            Err(error) => {
                eprintln!("keyport: invalid configuration: {error}");
                return ExitCode::from(2);
            }
        };
        let outcome = run(command, config).await;
        if let Err(error) = &outcome {
            tracing::error!(%error, "keyport stopped");
        }
        telemetry.shutdown();
        return if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    telemetry::init_for_tools();
    match cli.command {
        Command::Health => check_health(config.listen).await,
        Command::Backup { path } => answer("backup", backup_cli::backup(&config, &path).await),
        Command::Restore { path } => answer("restore", backup_cli::restore(&config, &path).await),
        Command::Admin { command } => administer(command, config).await,
        Command::Serve | Command::Migrate => ExitCode::SUCCESS,
    }
}

/// Prints a tool's answer, or why it failed.
fn answer(tool: &str, outcome: Result<String, impl std::fmt::Display>) -> ExitCode {
    match outcome {
        Ok(answer) => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("keyport {tool}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Probes the server's health service; prints the status.
async fn check_health(listen: std::net::SocketAddr) -> ExitCode {
    let address = health_probe::probe_address(listen);
    match health_probe::probe(address).await {
        Ok(status) => {
            println!("{}", status.as_str_name());
            if status == ServingStatus::Serving { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("keyport health: {error}");
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
    answer("admin", admin_cli::run(keyport.accounts(), command, std::io::stdin().lock()).await)
}

async fn run(command: Command, config: Config) -> Result<(), keyport_server::StartError> {
    let listen = config.listen;
    let mut keyport = Keyport::open(config, Arc::new(SystemClock)).await?;
    match command {
        // Keyport::open migrated (and said what it did).
        Command::Migrate => Ok(()),
        Command::Admin { .. } | Command::Health | Command::Backup { .. } | Command::Restore { .. } => Ok(()),
        Command::Serve => {
            let listener = TcpListener::bind(listen).await?;
            if let Some(address) = keyport.bind_metrics().await? {
                tracing::info!(%address, path = keyport_server::prometheus::METRICS_PATH, "serving metrics");
            }
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
