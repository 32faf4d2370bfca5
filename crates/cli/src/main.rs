//! The `stencila` binary: parse, run, report the error chain, exit non-zero on failure.

use clap::Parser;

fn main() {
    // actix logs each malformed request from a client at ERROR; that is the client's
    // fault and answered with a 4xx, so it stays out of the default log.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,actix_http::h1::dispatcher=off"),
    )
    .format_timestamp_millis()
    .init();
    if let Err(error) = stencila_cli::run(stencila_cli::args::Cli::parse()) {
        eprintln!("stencila: {error:#}");
        std::process::exit(1);
    }
}
