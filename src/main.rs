use std::process::ExitCode;

use authd::cli::{self, Cli};
use clap::{Parser, error::ErrorKind};

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported by the parse below naming the var.
    let _ = dotenvy::dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One clear line naming the variable (clap's value names are the env var names).
            let rendered = e.render().to_string();
            eprintln!(
                "authd: {}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    if let Err(msg) = cli.config.validate() {
        eprintln!("authd: invalid configuration: {msg}");
        return ExitCode::from(2);
    }
    authd::telemetry::init(cli.config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("authd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
