//! Tokens never reach the logs: every log line of a delivery that fails, is retried,
//! gives up and succeeds (SMTP to aiosmtpd when available, else a recording transport),
//! captured at trace level, is searched for the token.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail::{
    Address, Locale, MailKind, MailWorker, Message, Outbox, Outgoing, PublicUrls, SendError,
    Sender, SmtpConfig, SmtpTransport, Transport, WorkerSettings,
};
use test_support::{Backend, ScratchDb, SmtpSink};

const TOKEN: &str = "SeCrEtToKeN-4f1d9a";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fails once (transiently), then once for good.
struct Flaky(Mutex<u32>);

#[async_trait::async_trait]
impl Transport for Flaky {
    async fn send(&self, _: &Outgoing) -> Result<(), SendError> {
        let mut calls = self.0.lock().expect("lock");
        *calls += 1;
        let mut e = SendError::transient("refused", std::io::Error::other("451 later"));
        e.permanent = *calls > 1;
        Err(e)
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}

#[tokio::test]
async fn no_log_line_carries_a_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let scratch = ScratchDb::open(Backend::Sqlite, "ptoc_mail_logs", 2)
        .await
        .expect("sqlite");
    let urls = PublicUrls::new("https://pto.example.org").expect("valid");
    let message = |kind| {
        Message::new(
            Address::parse("parent@example.org").expect("address"),
            Locale::En,
            kind,
        )
    };
    let tx = scratch.db.begin_write().await.expect("begin");
    Outbox::enqueue(
        &tx,
        &message(MailKind::PasswordReset {
            link: urls.password_reset(TOKEN),
        }),
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    tracing::info!(message = ?MailKind::VerifyEmail { link: urls.verify_email(TOKEN) }, "a kind logged by mistake");

    let mut settings = WorkerSettings::new(Sender::parse("PTO <pto@example.org>").expect("sender"));
    settings.backoff_base = Duration::ZERO;
    let flaky = MailWorker::new(
        scratch.db.clone(),
        Arc::new(Flaky(Mutex::new(0))),
        settings.clone(),
    );
    let done = flaky.drain().await.expect("drain");
    assert_eq!((done.retried, done.failed), (1, 1));

    let sink = SmtpSink::start();
    if let Some(sink) = &sink {
        let tx = scratch.db.begin_write().await.expect("begin");
        Outbox::enqueue(
            &tx,
            &message(MailKind::Invitation {
                org_name: "PTO".into(),
                inviter: "Ana".into(),
                link: urls.invitation(TOKEN),
            }),
        )
        .await
        .expect("enqueue");
        tx.commit().await.expect("commit");
        let smtp = SmtpTransport::new(&SmtpConfig::parse(&sink.url()).expect("url")).expect("smtp");
        let worker = MailWorker::new(scratch.db.clone(), Arc::new(smtp), settings);
        assert_eq!(worker.drain().await.expect("drain").sent, 1);
        assert!(
            sink.messages()[0].contains(TOKEN),
            "the message itself carries the token"
        );
    }
    scratch.finish().await;

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logs.contains("will retry"), "the capture works: {logs}");
    assert!(logs.contains("giving up"), "{logs}");
    assert!(
        logs.contains("token=***"),
        "a logged link is redacted: {logs}"
    );
    assert!(!logs.contains(TOKEN), "a token in the logs: {logs}");
}
