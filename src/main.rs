//! The `switchboard` binary: read the configuration, start, stop on a signal.

use switchboard::config::Launch;
use switchboard::startup::Application;
use switchboard::{shutdown, telemetry};

/// jemalloc instead of the system allocator: with glibc's, memory freed when
/// 10,000 sockets close stayed with the process and RSS climbed 27 % over five
/// connect/close cycles (BENCHMARKS.md, "Connections"); jemalloc returns it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: freed memory goes back to the system from a background
/// thread once it has been unused for a while, not only when the program next
/// allocates — after a burst of conversations closed and archived, an idle
/// server gave nothing back until its next request (BENCHMARKS.md, "History").
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
static malloc_conf: &[u8; 40] = b"background_thread:true,muzzy_decay_ms:0\0";

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
