//! The `switchboard` binary: read the configuration, start, stop on a signal.

use switchboard::config::Config;
use switchboard::startup::Application;
use switchboard::{shutdown, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_args();
    telemetry::init(std::io::stdout);
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown::signal()).await
}
