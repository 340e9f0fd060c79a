//! switchboard-loadtests: see `--help` and docs/performance.md.
use clap::Parser;
use switchboard_loadtests::cli::{self, Cli, Cmd};
use switchboard_loadtests::orchestrate;

/// The runtime is built by hand, after pinning: `all` pins this process
/// (and so its children) to the generator's core before any thread
/// starts, and a process pinned to one core gets one thread. Tokio's
/// default runtime sizes itself to the machine's cores, which gave the
/// generator two worker threads and its main thread on one core: they
/// took turns at the core in slices of up to 7 ms and handed wake-ups to
/// each other (docs/performance.md, change 42).
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::All(a) = &cli.cmd {
        // Before pinning, which narrows the cores this process may use to
        // the one the check would compare --server-core with.
        a.check(&std::env::current_exe()?)?;
        orchestrate::pin_generator(a.generator_core)?;
    }
    // While this process has one thread, growing the table costs nothing;
    // later, each doubling stopped the generator for a grace period in
    // the middle of a measurement (docs/performance.md, change 57).
    if let Err(e) = switchboard::fd_table::reserve() {
        eprintln!("cannot grow the table of open files in advance: {e}");
    }
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let runtime = if one_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(cli::main(cli))
}
