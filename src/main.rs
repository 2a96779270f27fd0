//! The `switchboard` binary: read the configuration, start, stop on a signal.

use switchboard::config::Launch;
use switchboard::startup::Application;
use switchboard::{shutdown, telemetry};

/// jemalloc instead of the system allocator: with glibc's, memory freed when
/// 10,000 sockets close stayed with the process and RSS climbed 27 % over five
/// connect/close cycles (BENCHMARKS.md, "Connections"); jemalloc returns it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config = match Launch::from_args() {
        Launch::Serve(config) => config,
        Launch::Backup { data_dir, to } => {
            let copied = switchboard::backup::run(&data_dir, &to)?;
            println!("backed up {} to {}: {copied:?}", data_dir.display(), to.display());
            return Ok(());
        }
    };
    telemetry::init(std::io::stdout);
    let app = Application::build(*config).await?;
    app.run_until_stopped(shutdown::signal()).await
}
