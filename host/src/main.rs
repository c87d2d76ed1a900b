//! The `wasmrtc` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasmrtc::runtime::{Runtime, RuntimeConfig};

#[derive(Parser)]
#[command(
    name = "wasmrtc",
    version,
    about = "Real-time media streams handled by sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a handler component, check it and print its stream spec.
    Check {
        /// The handler component (.wasm, built for wasm32-wasip2).
        handler: PathBuf,
        /// Print the spec as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "wasmrtc=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { handler, json } => {
            let runtime = Runtime::new(RuntimeConfig::default())?;
            let name = handler
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match runtime.load_file(&name, &handler).await {
                Ok(component) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(component.spec())?);
                    } else {
                        print!(
                            "{}",
                            wasmrtc::runtime::spec::describe_text(component.spec())
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: rejected: {e}", handler.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
