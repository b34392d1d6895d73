//! Server entry point: load configuration, start telemetry, serve.

use pto_server::config::Settings;
use pto_server::startup::{Application, HashingCost};

/// mimalloc, which returns freed memory to the system (glibc's malloc kept hundreds of
/// MiB that blocking threads had freed: argon2id's 19 MiB per hash). Measured in
/// docs/benchmarks.md, reasoned in docs/decisions.md.
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Before any other thread starts.
    allocator::configure();
    actix_web::rt::System::new().block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
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
