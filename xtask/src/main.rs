//! `cargo xtask`: project automation. Run `cargo xtask --help`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a CLI reports on the terminal"
)]

mod audit;
mod bench;
mod bench_directory;
mod bench_http;
mod bench_large;
mod bench_member_io;
mod bench_mix;
mod bench_search;
mod bench_streams;
mod bench_webhooks;
mod ci;
mod migrate;
mod modgraph;
mod monitoring;
mod openapi;
mod purity;
mod replica;
mod schemathesis;
mod seed;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project automation for PTO Connect")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Database migrations against DATABASE_URL (default: the embedded SQLite file in DATA_DIR).
    Migrate {
        #[command(subcommand)]
        action: migrate::Action,
    },
    /// Write docs/openapi.json from the code; with --check, fail if it is stale.
    Openapi {
        /// Compare instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Run the test suite (cargo-nextest when installed, else cargo test).
    Test,
    /// Static checks: fmt, clippy, domain purity, no import cycle in the app, cargo-deny (when installed), OpenAPI freshness, the dashboard's and alert rules' metric names.
    Lint,
    /// Everything CI checks: `lint`, then `test`.
    Ci,
    /// Run the benchmarks (release builds; see docs/benchmarks.md).
    Bench,
    /// The HTTP targets (check load with wrk, cold checks, cross-instance propagation)
    /// against the release server on PostgreSQL + Redis.
    BenchHttp {
        /// Only the edge routes as browsers ask for them (`Accept-Encoding: gzip, br`).
        #[arg(long)]
        edge: bool,
    },
    /// The member-directory targets (list, search, fuzzy search) on the enterprise seed,
    /// PostgreSQL.
    BenchDirectory,
    /// The member import/export targets (10k-row import time; memory of 10k vs 40k-row
    /// imports and 10k vs 100k-member CSV exports) against the release server on
    /// PostgreSQL + Redis.
    BenchMemberIo,
    /// The member search targets (relevance against a brute-force reference, searches/s
    /// and p99 at 20,000 and 100,000 members, freshness across instances, index memory)
    /// against the release server on PostgreSQL and SQLite, with Redis.
    BenchSearch {
        /// A smoke run on small orgs (2,000 and 5,000 members, short loads) that
        /// enforces no target.
        #[arg(long)]
        quick: bool,
    },
    /// The stream targets: 10,000 members of one org each holding its event stream, on
    /// one instance and over two sharing Redis (time to open, server memory, fan-out
    /// latency of an event to every stream), on the release server with PostgreSQL.
    BenchStreams {
        /// A smoke run with 200 streams that enforces no target.
        #[arg(long)]
        quick: bool,
    },
    /// The large dataset of issue 20 (`seed --enterprise --large`: 40,000 orgs, 1,000,000
    /// members, ≥ 1,000,000 settings): server start and memory, cold and warm permission
    /// checks, member lists and searches, on the release server with PostgreSQL + Redis.
    BenchLarge {
        /// A smoke run on a small seed that enforces no target.
        #[arg(long)]
        quick: bool,
    },
    /// The webhook targets: 1,000 events to 10 endpoints delivered and verified by a local
    /// receiver (p99 from commit ≤ 1 s), and a receiver down for a minute that gets every
    /// event afterwards, once; on the release server with PostgreSQL and Redis.
    BenchWebhooks {
        /// A smoke run (100 events, a 10 s outage) that enforces no target.
        #[arg(long)]
        quick: bool,
    },
    /// The mixed load of issue 20: 1,000 virtual users (permission checks, member lists and
    /// searches, profile and settings reads, audit pages, member and settings writes,
    /// background imports) from an open-loop generator in its own process, on the
    /// enterprise seed; throughput, p50/p95/p99 per route class, the server's CPU and
    /// memory, and the check's throughput against `GET /health`.
    BenchMix {
        /// A smoke run on a small seed at a low rate that enforces no target.
        #[arg(long)]
        quick: bool,
        /// The database the server runs on (with Redis either way).
        #[arg(long, value_enum, default_value = "postgres")]
        backend: bench_mix::Backend,
        /// Also run each class of the mix alone and print its CPU cost per request (a
        /// diagnostic, no target).
        #[arg(long)]
        per_class: bool,
    },
    /// The load generator of `bench-mix` (run by it, in its own process).
    #[command(hide = true)]
    BenchMixLoad {
        /// The plan (JSON) the benchmark wrote.
        #[arg(long)]
        plan: std::path::PathBuf,
    },
    /// The bare event-stream server of `bench-streams` (the floor; run by it, in its own
    /// process): prints its address, then writes one frame to every connection per line
    /// read from stdin.
    #[command(hide = true)]
    BenchStreamsBare,
    /// The mail delivery target: 10,000 queued messages delivered to a local SMTP server
    /// (aiosmtpd) at ≥ 200 messages/s with flat memory (SQLite; PostgreSQL too with
    /// `TEST_DATABASE_URL`).
    BenchMail,
    /// Check that the domain crates depend on no framework, database or cache crate.
    CheckPurity,
    /// Check that the import graph of apps/server/src has no cycle (part of `lint`).
    Modgraph,
    /// Audit chains: verify them (or an archive directory), or archive expired events.
    Audit {
        #[command(subcommand)]
        action: audit::Action,
    },
    /// Sample data on the configured database (migrated first): a demo tenant with
    /// printed sign-ins (--demo), or the bulk benchmark dataset (--enterprise [--large]).
    Seed(seed::Args),
    /// Schemathesis against the served OpenAPI document (debug server, temp SQLite).
    Schemathesis(schemathesis::Args),
    /// A local streaming read replica of the local PostgreSQL (setup, status, teardown).
    Replica {
        #[command(subcommand)]
        action: replica::Action,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate { action } => migrate::run(action),
        Command::Openapi { check } => openapi::run(check),
        Command::Test => ci::test(),
        Command::Lint => ci::lint(),
        Command::Ci => ci::lint().and_then(|()| ci::test()),
        Command::CheckPurity => purity::run(),
        Command::Modgraph => modgraph::run(),
        Command::Bench => bench::run_all(),
        Command::BenchHttp { edge: false } => bench_http::run(),
        Command::BenchHttp { edge: true } => bench_http::run_edge(),
        Command::BenchDirectory => bench_directory::run(),
        Command::BenchMemberIo => bench_member_io::run(),
        Command::BenchSearch { quick } => bench_search::run(quick),
        Command::BenchStreams { quick } => bench_streams::run(quick),
        Command::BenchLarge { quick } => bench_large::run(quick),
        Command::BenchWebhooks { quick } => bench_webhooks::run(quick),
        Command::BenchMix {
            quick,
            backend,
            per_class,
        } => bench_mix::run(quick, backend, per_class),
        Command::BenchMixLoad { plan } => bench_mix::load::run(&plan),
        Command::BenchStreamsBare => bench_streams::bare_server(),
        Command::BenchMail => bench::mail(),
        Command::Seed(args) => seed::run(&args),
        Command::Audit { action } => audit::run(action),
        Command::Replica { action } => replica::run(&action),
        Command::Schemathesis(args) => schemathesis::run(&args),
    }
}

/// A `cargo` command without the package variables `cargo run` gave this process
/// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, …). Build scripts such as ring's rerun when
/// those change, so a nested build that inherited them rebuilt ring and everything above
/// it (rustls, sqlx, sea-orm, …), and the next build from a shell rebuilt them again.
pub(crate) fn cargo() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "OUT_DIR"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}
