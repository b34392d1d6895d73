//! `cargo xtask migrate up|down|status|fresh`.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Subcommand;
use persistence::{Database, DatabaseSettings};

#[derive(Subcommand)]
pub enum Action {
    /// Apply all pending migrations.
    Up,
    /// Roll back the last N migrations (default 1).
    Down {
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Drop everything and re-apply all migrations (destroys data).
    Fresh,
}

pub fn run(action: Action) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = pto_server::config::Settings::from_sources(&env, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let db_settings = match &settings.database_url {
        Some(url) => DatabaseSettings {
            url: url.expose().to_owned(),
            read_url: None,
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(10),
            busy_timeout: std::time::Duration::from_secs(5),
        },
        None => {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            DatabaseSettings::sqlite_in(&settings.data_dir)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let db = Database::connect(&db_settings).await?;
        println!("migrate: {} database", db.backend().as_str());
        match action {
            Action::Up => db.migrate().await?,
            Action::Down { steps } => db.migrate_down(steps).await?,
            Action::Fresh => db.migrate_fresh().await?,
            Action::Status => {}
        }
        for m in db.migration_status().await? {
            println!("  [{}] {}", if m.applied { "x" } else { " " }, m.name);
        }
        db.close().await.ok();
        anyhow::Ok(())
    })
}
