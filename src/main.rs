//! The `phoenix` binary: parse the CLI, load config, set up tracing, bind, `phoenix::run`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// glibc malloc dominated ingest profiles (many threads, 10–100 KB batch buffers).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "phoenix", version, about = "Real-time gamification engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short, default_value = "phoenix.example.toml")]
        config: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Run the server with the example config, demo leaderboards and simulated traffic.
    Demo {
        /// The TOML configuration file.
        #[arg(long, short, default_value = "phoenix.example.toml")]
        config: PathBuf,
        /// Simulated events per second, per active tenant.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Print the OpenAPI 3.1 document (the one `GET /openapi.json` serves) and exit.
    Openapi,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format, None),
        Command::Demo {
            config,
            rate,
            log_format,
        } => serve(config, log_format, Some(rate)),
        Command::Openapi => {
            println!("{}", phoenix::openapi::document());
            std::process::ExitCode::SUCCESS
        }
    }
}

fn serve(path: PathBuf, log_format: LogFormat, demo_rate: Option<u64>) -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHOENIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt.json().init(),
    }
    let config = match phoenix::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("phoenix: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match phoenix::server::bind(&config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("phoenix: cannot listen on {}: {e}", config.listen);
                return std::process::ExitCode::from(1);
            }
        };
        let addr = listener.local_addr().expect("bound address");
        println!("phoenix listening on http://{addr}");
        if let Some(rate) = demo_rate {
            println!(
                "demo: dashboard http://{addr}/ (operator token {:?}); {rate} simulated events/s per active tenant; boards ranked, xp, spenders and season (rewards; a window closes every five minutes)",
                config.operator_token.expose()
            );
            println!("demo: watch live with `cargo run --example watch -- --url ws://{addr} --leaderboard ranked`");
            tokio::spawn(phoenix::demo::simulate(config.clone(), format!("http://{addr}"), rate));
        }
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, data_dir = %config.data_dir.display(), tenants = config.tenants.len(), "serving");
        match phoenix::run(config, listener, shutdown_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("phoenix: {e}");
                std::process::ExitCode::from(1)
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
