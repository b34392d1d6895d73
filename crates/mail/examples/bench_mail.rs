//! Mail delivery benchmark (`cargo xtask bench-mail`, part of `cargo xtask bench`):
//! enqueues 10,000 messages (in transactions of 500, as an import would) and measures
//! how fast one worker delivers them to a local SMTP server (`aiosmtpd`) and the
//! process's memory while it does. SQLite always; PostgreSQL too when
//! `TEST_DATABASE_URL` is set. Target: ≥ 200 messages/s with flat memory.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary"
)]

use std::sync::Arc;
use std::time::Instant;

use mail::{
    Address, Locale, MailKind, MailWorker, Message, Outbox, PublicUrls, Sender, SmtpConfig,
    SmtpTransport, WorkerSettings,
};
use test_support::{Backend, ScratchDb, SmtpSink};

const MESSAGES: usize = 10_000;
const PER_TX: usize = 500;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn run(backend: Backend) -> Option<(String, bool)> {
    let scratch = ScratchDb::open(backend, "ptoc_bench_mail", 8).await?;
    let sink = SmtpSink::start().expect("aiosmtpd is needed: pip install aiosmtpd");
    let urls = PublicUrls::new("http://localhost:8080").unwrap();
    let db = scratch.db.clone();

    let started = Instant::now();
    for chunk in 0..MESSAGES / PER_TX {
        let messages: Vec<Message> = (0..PER_TX)
            .map(|i| {
                let n = chunk * PER_TX + i;
                Message::new(
                    Address::parse(&format!("parent{n}@example.org")).unwrap(),
                    if n.is_multiple_of(3) {
                        Locale::Es
                    } else {
                        Locale::En
                    },
                    MailKind::Invitation {
                        org_name: "Lincoln Elementary PTO".into(),
                        inviter: "Ana López".into(),
                        link: urls.invitation(&format!("token-{n}-abcdefghijklmnopqrstuv")),
                    },
                )
            })
            .collect();
        let tx = db.begin_write().await.unwrap();
        Outbox::enqueue_all(&tx, &messages).await.unwrap();
        tx.commit().await.unwrap();
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    let transport = Arc::new(SmtpTransport::new(&SmtpConfig::parse(&sink.url()).unwrap()).unwrap());
    let worker = MailWorker::new(
        db.clone(),
        transport,
        WorkerSettings::new(Sender::parse("PTO Connect <no-reply@localhost>").unwrap()),
    );
    let rss_start = status_kib("VmRSS:");
    let mut samples = Vec::new();
    let mut sent = 0;
    let started = Instant::now();
    loop {
        let pass = worker.run_once().await.unwrap();
        if pass.claimed == 0 {
            break;
        }
        assert_eq!(pass.sent, pass.claimed, "every message accepted: {pass:?}");
        let before = sent;
        sent += pass.sent;
        if before / 2_000 != sent / 2_000 {
            samples.push((sent, status_kib("VmRSS:")));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let received = sink.count();
    assert_eq!(
        received, MESSAGES,
        "the SMTP server received every message once"
    );
    let peak = status_kib("VmHWM:");
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = MESSAGES as f64 / secs;
    let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    let rss: Vec<String> = samples
        .iter()
        .map(|(n, k)| format!("{n}: {} MiB", mib(*k)))
        .collect();
    let line = format!(
        "| {backend:?} | {MESSAGES} | {enqueue_secs:.2} s | {secs:.2} s | {rate:.0} msg/s {} | {} MiB | {} | {} MiB |",
        if rate >= 200.0 {
            "(PASS ≥ 200)"
        } else {
            "(FAIL < 200)"
        },
        mib(rss_start),
        rss.join(", "),
        mib(peak),
    );
    drop(sink);
    scratch.finish().await;
    Some((line, rate >= 200.0))
}

#[tokio::main]
async fn main() {
    println!(
        "| database | messages | enqueue (20 tx) | delivery | rate | RSS at start | RSS while sending (after n sent) | peak RSS (VmHWM) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    let mut passed = true;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some((line, pass)) = run(backend).await {
            println!("{line}");
            passed &= pass;
        }
    }
    if !passed {
        println!("target missed: fewer than 200 messages/s");
        std::process::exit(1);
    }
}
