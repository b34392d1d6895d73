//! E-mail delivery through the running server: its mail worker sends what a committed
//! transaction put in the outbox — as `.eml` files under `DATA_DIR/outbox/` by default,
//! to a real SMTP server (`aiosmtpd`) with `SMTP_URL`.

use std::time::{Duration, Instant};

use pto_server::startup::{Application, HashingCost};
use test_support::{SmtpSink, header};

use crate::helpers::{Backend, TestContext};

/// Enqueues one message in a committed transaction; returns its id.
async fn enqueue(ctx: &TestContext) -> uuid::Uuid {
    let msg = mail::Message::new(
        mail::Address::parse("parent@example.org").unwrap(),
        mail::Locale::En,
        mail::MailKind::VerifyEmail {
            link: ctx.state.mail_urls.verify_email("v3rify"),
        },
    );
    let tx = ctx.state.db.begin_write().await.unwrap();
    mail::Outbox::enqueue(&tx, &msg).await.unwrap();
    tx.commit().await.unwrap();
    msg.id
}

/// Runs the server until `done` holds (at most 30 s: the worker polls every 2 s).
async fn serve_until(ctx: &TestContext, done: impl Fn() -> bool) {
    let app = Application::build(ctx.settings.clone(), HashingCost::FastForTests)
        .await
        .unwrap();
    let handle = app.handle();
    let server = actix_web::rt::spawn(app.run_until_stopped());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.stop(true).await;
    server.await.unwrap().unwrap();
}

async fn the_embedded_default_writes_eml_files(backend: Backend) {
    let Some(ctx) = TestContext::new(backend).await else {
        return;
    };
    let id = enqueue(&ctx).await;
    let file = ctx
        .settings
        .data_dir
        .join("outbox")
        .join(format!("{id}.eml"));
    let probe = file.clone();
    serve_until(&ctx, move || probe.exists()).await;
    let raw = std::fs::read_to_string(&file).expect("the .eml file was written");
    assert_eq!(
        header(&raw, "Message-ID"),
        Some(format!("<{id}@localhost>"))
    );
    assert_eq!(
        header(&raw, "Subject").as_deref(),
        Some("Confirm your e-mail address")
    );
    // PUBLIC_BASE_URL defaults to this server's own address.
    assert!(
        raw.contains("verify-email?token=3Dv3rify") || raw.contains("verify-email?token=v3rify"),
        "{raw}"
    );
}

async fn smtp_url_delivers_to_the_smtp_server(backend: Backend) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let url = sink.url();
    let Some(ctx) = TestContext::with_env(
        backend,
        &[
            ("SMTP_URL", url.as_str()),
            ("MAIL_FROM", "PTO Test <pto@school.test>"),
            ("PUBLIC_BASE_URL", "https://pto.school.test"),
        ],
    )
    .await
    else {
        return;
    };
    let id = enqueue(&ctx).await;
    serve_until(&ctx, || sink.count() >= 1).await;
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(
        header(&received[0], "Message-ID"),
        Some(format!("<{id}@school.test>"))
    );
    assert!(
        received[0].contains("https://pto.school.test/verify-email?token="),
        "links use PUBLIC_BASE_URL"
    );
    assert!(
        !ctx.settings.data_dir.join("outbox").exists(),
        "no files with SMTP"
    );
}

mod sqlite {
    use super::*;

    #[actix_web::test]
    async fn the_embedded_default_writes_eml_files() {
        super::the_embedded_default_writes_eml_files(Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn smtp_url_delivers_to_the_smtp_server() {
        super::smtp_url_delivers_to_the_smtp_server(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[actix_web::test]
    async fn the_embedded_default_writes_eml_files() {
        super::the_embedded_default_writes_eml_files(Backend::Postgres).await;
    }

    #[actix_web::test]
    async fn smtp_url_delivers_to_the_smtp_server() {
        super::smtp_url_delivers_to_the_smtp_server(Backend::Postgres).await;
    }
}
