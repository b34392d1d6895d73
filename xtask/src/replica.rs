//! `cargo xtask replica setup|status|teardown`: a second local PostgreSQL 15 cluster
//! streaming from the local one (`pg_basebackup -R`, then `pg_ctl start` on another
//! port), to try `DATABASE_READ_URL` and run the replica test against a real replica.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// What to do with the replica.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Create and start the replica (fails if its directory exists; see `teardown`).
    Setup(Options),
    /// Show whether the replica runs and streams.
    Status(Options),
    /// Stop the replica and delete its directory.
    Teardown(Options),
}

/// Where the primary and the replica live.
#[derive(clap::Args)]
pub struct Options {
    /// Port of the local primary.
    #[arg(long, default_value_t = 5432)]
    primary_port: u16,
    /// Port for the replica.
    #[arg(long, default_value_t = 5433)]
    port: u16,
    /// Data directory of the replica (default: <temp dir>/ptoc-replica).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// PostgreSQL binaries.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    bin: PathBuf,
    /// Superuser of the primary.
    #[arg(long, default_value = "postgres")]
    user: String,
    /// If the primary's pg_hba.conf has no replication entry for 127.0.0.1, append
    /// `host replication <user> 127.0.0.1/32 trust` and reload (local development only).
    #[arg(long)]
    allow_replication: bool,
}

impl Options {
    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ptoc-replica"))
    }
}

/// Runs `action`.
pub fn run(action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Setup(o) => setup(o),
        Action::Status(o) => status(o),
        Action::Teardown(o) => teardown(o),
    }
}

/// A command run as the `postgres` OS user when we are root (PostgreSQL refuses to run
/// as root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn psql(o: &Options, port: u16, sql: &str) -> anyhow::Result<String> {
    let out = Command::new(o.bin.join("psql"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", &o.user])
        .args(["-d", "postgres", "-tAc", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn check(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn ensure_replication_allowed(o: &Options) -> anyhow::Result<()> {
    let rules = psql(
        o,
        o.primary_port,
        "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) AND (address IS NULL OR address IN ('127.0.0.1', '0.0.0.0'))",
    )?;
    if rules != "0" {
        return Ok(());
    }
    let line = format!("host replication {} 127.0.0.1/32 trust", o.user);
    if !o.allow_replication {
        bail!(
            "the primary's pg_hba.conf allows no replication connections from 127.0.0.1;\n\
             add `{line}` and reload, or rerun with --allow-replication"
        );
    }
    let hba = psql(o, o.primary_port, "SHOW hba_file")?;
    let mut text = std::fs::read_to_string(&hba).with_context(|| format!("reading {hba}"))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("# added by cargo xtask replica setup\n{line}\n"));
    std::fs::write(&hba, text).with_context(|| format!("writing {hba}"))?;
    psql(o, o.primary_port, "SELECT pg_reload_conf()")?;
    println!("replica: allowed replication from 127.0.0.1 in {hba}");
    Ok(())
}

fn setup(o: &Options) -> anyhow::Result<()> {
    let dir = o.dir();
    if dir.exists() {
        bail!(
            "{} exists; run `cargo xtask replica teardown` first",
            dir.display()
        );
    }
    ensure_replication_allowed(o)?;
    std::fs::create_dir_all(&dir)?;
    // PostgreSQL insists on a private data directory.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    check(
        Command::new("chown").args(["postgres:postgres"]).arg(&dir),
        "chown",
    )
    .ok();
    check(
        as_postgres(&o.bin.join("pg_basebackup"))
            .args(["-h", "127.0.0.1", "-p", &o.primary_port.to_string()])
            .args(["-U", &o.user, "-D"])
            .arg(&dir)
            .args(["-R", "-X", "stream", "-c", "fast"]),
        "pg_basebackup",
    )?;
    // Debian-style clusters keep their configuration outside the data directory, so
    // the copy gets its own: a hot standby on `port`, local trust as on the primary.
    // (`-R` wrote primary_conninfo to postgresql.auto.conf and standby.signal.)
    std::fs::write(
        dir.join("postgresql.conf"),
        format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nhot_standby = on\n",
            o.port,
            dir.display()
        ),
    )?;
    std::fs::write(
        dir.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )?;
    check(
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.join("postgresql.conf"))
            .arg(dir.join("pg_hba.conf")),
        "chown",
    )
    .ok();
    check(
        as_postgres(&o.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&dir)
            .arg("-l")
            .arg(dir.join("replica.log"))
            .args(["-w", "start"]),
        "pg_ctl start",
    )?;
    status(o)?;
    println!(
        "replica: ready. Try it:\n  DATABASE_READ_URL=postgres://<app role>@127.0.0.1:{port}/<db> (next to DATABASE_URL)\n  TEST_REPLICA_URL=postgres://{user}@127.0.0.1:{port}/postgres cargo nextest run -p pto-server replica",
        port = o.port,
        user = o.user
    );
    Ok(())
}

fn status(o: &Options) -> anyhow::Result<()> {
    let recovering =
        psql(o, o.port, "SELECT pg_is_in_recovery()").context("the replica does not answer")?;
    let streaming = psql(
        o,
        o.primary_port,
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
    )?;
    println!(
        "replica: port {} in recovery = {recovering}; streaming replicas of the primary = {streaming}",
        o.port
    );
    if recovering != "t" {
        bail!("the server on port {} is not a standby", o.port);
    }
    Ok(())
}

fn teardown(o: &Options) -> anyhow::Result<()> {
    let dir = o.dir();
    if dir.join("postmaster.pid").exists() {
        check(
            as_postgres(&o.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&dir)
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    println!("replica: removed {}", dir.display());
    Ok(())
}
