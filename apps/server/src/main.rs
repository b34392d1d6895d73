//! Server entry point: load configuration, start telemetry, serve.

use pto_server::config::Settings;
use pto_server::startup::{Application, HashingCost};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(2);
        }
    };
    let _telemetry = pto_server::telemetry::init(&settings)?;
    let app = Application::build(settings.clone(), HashingCost::Recommended).await?;
    tracing::info!(
        addr = %settings.bind_addr,
        port = app.port(),
        docs = "/docs",
        "pto-server listening"
    );
    app.run_until_stopped().await?;
    Ok(())
}
