//! The `stencila` binary: parse, run, report the error chain, exit non-zero on failure.

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    if let Err(error) = stencila_cli::run(stencila_cli::args::Cli::parse()) {
        eprintln!("stencila: {error:#}");
        std::process::exit(1);
    }
}
