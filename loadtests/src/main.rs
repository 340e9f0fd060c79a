//! switchboard-loadtests: see `--help` and docs/performance.md.
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_loadtests::cli::main(switchboard_loadtests::cli::Cli::parse()).await
}
