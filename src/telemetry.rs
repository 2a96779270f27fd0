//! Logging set-up: `tracing` with an `EnvFilter` read from `RUST_LOG` (default `info`).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber writing to `sink`; tests pass `std::io::sink`
/// unless `TEST_LOG` is set. Calling it twice is harmless (the second is ignored).
pub fn init<W>(sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(sink).try_init();
}
