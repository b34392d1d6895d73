//! The outbox and the worker on both databases, delivering to a real SMTP server
//! (`aiosmtpd`, see `test_support::SmtpSink`) and to `.eml` files.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail::{
    Address, FileTransport, Locale, MailKind, MailWorker, Message, Outbox, Outgoing, PublicUrls,
    SendError, Sender, SmtpConfig, SmtpTransport, Status, Transport, WorkerSettings,
};
use test_support::{Backend, ScratchDb, SmtpSink, TestEnv, header};
use uuid::Uuid;

/// One test's database.
struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        ScratchDb::open(backend, "ptoc_mail", 8).await.map(Self)
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env;
    a_committed_change_has_its_message_and_a_rolled_back_one_none,
    the_worker_delivers_to_a_real_smtp_server,
    a_worker_stopped_before_sending_loses_nothing_and_sends_nothing_twice,
    a_crash_between_send_and_mark_resends_once_with_the_same_message_id,
    failures_back_off_and_end_in_failed,
    the_file_transport_writes_eml_files,
    concurrent_workers_send_each_message_once,
    finished_messages_are_purged_and_unfinished_ones_kept,
);

fn urls() -> PublicUrls {
    PublicUrls::new("http://localhost:8080").expect("valid base")
}

fn settings() -> WorkerSettings {
    WorkerSettings::new(Sender::parse("PTO Connect <no-reply@pto.test>").expect("valid"))
}

fn invitation(to: &str, locale: Locale, token: &str) -> Message {
    Message::new(
        Address::parse(to).expect("address"),
        locale,
        MailKind::Invitation {
            org_name: "Lincoln PTO".into(),
            inviter: "Ana".into(),
            link: urls().invitation(token),
        },
    )
}

fn smtp(sink: &SmtpSink) -> Arc<dyn Transport> {
    Arc::new(SmtpTransport::new(&SmtpConfig::parse(&sink.url()).expect("url")).expect("transport"))
}

/// Decodes quoted-printable soft breaks and escapes (enough to read a text part).
fn unqp(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(b) = joined
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records what it is asked to send.
#[derive(Default)]
struct Recorder(Mutex<Vec<Uuid>>);

#[async_trait::async_trait]
impl Transport for Recorder {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        self.0.lock().expect("lock").push(message.id);
        Ok(())
    }
    fn name(&self) -> &'static str {
        "recorder"
    }
}

impl Recorder {
    fn sent(&self) -> Vec<Uuid> {
        self.0.lock().expect("lock").clone()
    }
}

async fn a_committed_change_has_its_message_and_a_rolled_back_one_none(env: &Env) {
    let db = &env.0.db;
    let org = Uuid::now_v7();
    env.0.org(org, None, None).await;

    let kept = invitation("kept@example.org", Locale::En, "t1");
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue(&tx, &kept).await.expect("enqueue");
    tx.commit().await.expect("commit");

    let rolled_back = invitation("gone@example.org", Locale::En, "t2");
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue(&tx, &rolled_back).await.expect("enqueue");
    tx.rollback().await.expect("rollback");

    let dropped = invitation("dropped@example.org", Locale::En, "t3");
    {
        let tx = db.begin_write().await.expect("begin");
        Outbox::enqueue(&tx, &dropped).await.expect("enqueue");
        // Dropped without commit: rolled back.
    }

    // A tenant-scoped transaction with a message of its org.
    let of_org = invitation("member@example.org", Locale::Es, "t4").for_org(org);
    let batch: Vec<Message> = (0..3)
        .map(|i| invitation(&format!("b{i}@example.org"), Locale::En, "tb").for_org(org))
        .collect();
    let tx = db.begin_for_org(org).await.expect("begin");
    Outbox::enqueue(&tx, &of_org).await.expect("enqueue");
    Outbox::enqueue_all(&tx, &batch)
        .await
        .expect("enqueue batch");
    tx.commit().await.expect("commit");

    for m in [&kept, &of_org] {
        let state = Outbox::state(db, m.id)
            .await
            .expect("state")
            .expect("queued");
        assert_eq!(state.status, Status::Pending);
        assert_eq!(state.attempts, 0);
    }
    for m in [&rolled_back, &dropped] {
        assert_eq!(Outbox::state(db, m.id).await.expect("state"), None);
    }

    let recorder = Arc::new(Recorder::default());
    let worker = MailWorker::new(db.clone(), recorder.clone(), settings());
    let done = worker.drain().await.expect("drain");
    assert_eq!((done.claimed, done.sent, done.failed), (5, 5, 0));
    let mut sent = recorder.sent();
    sent.sort();
    let mut expected: Vec<Uuid> = [kept.id, of_org.id]
        .into_iter()
        .chain(batch.iter().map(|m| m.id))
        .collect();
    expected.sort();
    assert_eq!(sent, expected, "only the committed messages are sent");
    // Sent messages keep no variables (links with tokens) at rest.
    let with_payload = env
        .0
        .count(
            "SELECT COUNT(*) AS n FROM mail_outbox WHERE payload <> ''",
            vec![],
        )
        .await;
    assert_eq!(with_payload, 0);
    assert_eq!(
        Outbox::state(db, kept.id)
            .await
            .expect("state")
            .map(|s| s.status),
        Some(Status::Sent)
    );
}

async fn the_worker_delivers_to_a_real_smtp_server(env: &Env) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let db = &env.0.db;
    let en = invitation("parent@example.org", Locale::En, "tok-en_1");
    let es = invitation("madre@example.org", Locale::Es, "tok-es_2");
    let reset = Message::new(
        Address::parse("padre@example.org").expect("address"),
        Locale::from_tag("es-MX"),
        MailKind::PasswordReset {
            link: urls().password_reset("r3set"),
        },
    );
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue_all(&tx, &[en.clone(), es.clone(), reset.clone()])
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");

    let worker = MailWorker::new(db.clone(), smtp(&sink), settings());
    let done = worker.drain().await.expect("drain");
    assert_eq!((done.sent, done.retried, done.failed), (3, 0, 0));

    let received = sink.messages();
    assert_eq!(received.len(), 3);
    let find = |id: Uuid| {
        received
            .iter()
            .find(|m| header(m, "Message-ID").as_deref() == Some(&format!("<{id}@pto.test>")))
            .unwrap_or_else(|| panic!("message {id} not received"))
            .clone()
    };
    let got_en = find(en.id);
    assert_eq!(header(&got_en, "To").as_deref(), Some("parent@example.org"));
    assert_eq!(
        header(&got_en, "From").as_deref(),
        Some("\"PTO Connect\" <no-reply@pto.test>")
    );
    assert_eq!(
        header(&got_en, "Subject").as_deref(),
        Some("You're invited to join Lincoln PTO")
    );
    assert!(
        header(&got_en, "Content-Type").is_some_and(|c| c.starts_with("multipart/alternative")),
        "{got_en}"
    );
    let body = unqp(&got_en);
    assert!(
        body.contains("Ana invited you to join Lincoln PTO"),
        "{body}"
    );
    assert!(body.contains("http://localhost:8080/invitations/accept?token=tok-en_1"));
    assert!(body.contains("<!DOCTYPE html>"));

    let got_es = find(es.id);
    assert_eq!(
        header(&got_es, "Subject").as_deref(),
        Some("Le invitan a unirse a Lincoln PTO")
    );
    let body = unqp(&got_es);
    assert!(
        body.contains("Ana le ha invitado a unirse a Lincoln PTO"),
        "{body}"
    );
    assert!(body.contains("Aceptar la invitaci"));
    assert!(body.contains("token=tok-es_2"));

    let got_reset = unqp(&find(reset.id));
    assert!(got_reset.contains("http://localhost:8080/reset-password?token=r3set"));
    assert!(
        got_reset.contains("Elegir una contrase"),
        "Spanish for es-MX"
    );
}

async fn a_worker_stopped_before_sending_loses_nothing_and_sends_nothing_twice(env: &Env) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let db = &env.0.db;
    let messages: Vec<Message> = (0..5)
        .map(|i| invitation(&format!("p{i}@example.org"), Locale::En, &format!("k{i}")))
        .collect();
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue_all(&tx, &messages).await.expect("enqueue");
    tx.commit().await.expect("commit");

    // The process that committed dies before its worker ran.
    let first = MailWorker::new(db.clone(), smtp(&sink), settings());
    drop(first);
    assert_eq!(sink.count(), 0);

    // A restart delivers every message once.
    let second = MailWorker::new(db.clone(), smtp(&sink), settings());
    second.drain().await.expect("drain");
    let again = second.drain().await.expect("drain again");
    assert_eq!(again.claimed, 0, "nothing left to send");
    let received = sink.messages();
    let mut ids: Vec<String> = received
        .iter()
        .map(|m| header(m, "Message-ID").expect("Message-ID"))
        .collect();
    ids.sort();
    let mut expected: Vec<String> = messages
        .iter()
        .map(|m| format!("<{}@pto.test>", m.id))
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "every message exactly once");
    for m in &messages {
        let state = Outbox::state(db, m.id).await.expect("state").expect("row");
        assert_eq!(state.status, Status::Sent);
    }
}

/// Delivers through SMTP, then never returns (the process "dies" before marking).
struct HangAfterSend {
    inner: Arc<dyn Transport>,
    delivered: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[async_trait::async_trait]
impl Transport for HangAfterSend {
    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        self.inner.send(message).await?;
        if let Some(tx) = self.delivered.lock().expect("lock").take() {
            let _ = tx.send(());
        }
        std::future::pending::<()>().await;
        Ok(())
    }
    fn name(&self) -> &'static str {
        "hang"
    }
}

async fn a_crash_between_send_and_mark_resends_once_with_the_same_message_id(env: &Env) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let db = &env.0.db;
    let m = invitation("once@example.org", Locale::En, "crash");
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue(&tx, &m).await.expect("enqueue");
    tx.commit().await.expect("commit");

    let (tx_done, rx_done) = tokio::sync::oneshot::channel();
    let hang = Arc::new(HangAfterSend {
        inner: smtp(&sink),
        delivered: Mutex::new(Some(tx_done)),
    });
    // A lease of zero: the claim runs out at once, as it would after the lease time.
    let mut crashing = settings();
    crashing.lease = Duration::ZERO;
    let first = MailWorker::new(db.clone(), hang, crashing);
    let task = tokio::spawn(async move { first.run_once().await });
    rx_done.await.expect("the first worker sent");
    task.abort(); // the crash: sent, not marked
    let _ = task.await;
    assert_eq!(sink.count(), 1);
    assert_eq!(
        Outbox::state(db, m.id)
            .await
            .expect("state")
            .map(|s| s.status),
        Some(Status::Sending)
    );

    let second = MailWorker::new(db.clone(), smtp(&sink), settings());
    let done = second.drain().await.expect("drain");
    assert_eq!(done.sent, 1, "the unmarked message is sent again");
    assert_eq!(second.drain().await.expect("drain").claimed, 0);
    let received = sink.messages();
    assert_eq!(
        received.len(),
        2,
        "at least once: one duplicate after the crash"
    );
    let expected = format!("<{}@pto.test>", m.id);
    for raw in &received {
        assert_eq!(
            header(raw, "Message-ID").as_deref(),
            Some(expected.as_str())
        );
    }
    let state = Outbox::state(db, m.id).await.expect("state").expect("row");
    assert_eq!((state.status, state.attempts), (Status::Sent, 2));
}

/// Fails every send, transiently or for good, counting the calls.
struct Failing {
    permanent: bool,
    calls: Mutex<u32>,
}

#[async_trait::async_trait]
impl Transport for Failing {
    async fn send(&self, _: &Outgoing) -> Result<(), SendError> {
        *self.calls.lock().expect("lock") += 1;
        let mut e = SendError::transient("refused", std::io::Error::other("421 try later"));
        e.permanent = self.permanent;
        Err(e)
    }
    fn name(&self) -> &'static str {
        "failing"
    }
}

async fn failures_back_off_and_end_in_failed(env: &Env) {
    let db = &env.0.db;
    let queue = |m: Message| async move {
        let tx = db.begin_write().await.expect("begin");
        Outbox::enqueue(&tx, &m).await.expect("enqueue");
        tx.commit().await.expect("commit");
        m
    };
    // With a real back-off, a failed attempt waits: the drain ends after one try.
    let waiting = queue(invitation("w@example.org", Locale::En, "w")).await;
    let failing = Arc::new(Failing {
        permanent: false,
        calls: Mutex::new(0),
    });
    let worker = MailWorker::new(db.clone(), failing.clone(), settings());
    let done = worker.drain().await.expect("drain");
    assert_eq!((done.claimed, done.retried, done.failed), (1, 1, 0));
    let state = Outbox::state(db, waiting.id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((state.status, state.attempts), (Status::Pending, 1));
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("421 try later"))
    );

    // With no wait, the bounded attempts run out: failed after exactly `max_attempts`.
    let mut quick = settings();
    quick.backoff_base = Duration::ZERO;
    quick.max_attempts = 3;
    env.0
        .exec("UPDATE mail_outbox SET due_ms = 0", vec![])
        .await;
    let failing = Arc::new(Failing {
        permanent: false,
        calls: Mutex::new(0),
    });
    let worker = MailWorker::new(db.clone(), failing.clone(), quick.clone());
    let done = worker.drain().await.expect("drain");
    assert_eq!(done.failed, 1);
    assert_eq!(*failing.calls.lock().expect("lock"), 2, "attempts 2 and 3");
    let state = Outbox::state(db, waiting.id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((state.status, state.attempts), (Status::Failed, 3));
    assert_eq!(
        worker.drain().await.expect("drain").claimed,
        0,
        "never again"
    );

    // A permanent refusal gives up at once.
    let refused = queue(invitation("r@example.org", Locale::En, "r")).await;
    let permanent = Arc::new(Failing {
        permanent: true,
        calls: Mutex::new(0),
    });
    let worker = MailWorker::new(db.clone(), permanent.clone(), quick);
    let done = worker.drain().await.expect("drain");
    assert_eq!((done.claimed, done.failed), (1, 1));
    let state = Outbox::state(db, refused.id)
        .await
        .expect("state")
        .expect("row");
    assert_eq!((state.status, state.attempts), (Status::Failed, 1));
    let with_payload = env
        .0
        .count(
            "SELECT COUNT(*) AS n FROM mail_outbox WHERE payload <> ''",
            vec![],
        )
        .await;
    assert_eq!(with_payload, 0, "failed messages keep no tokens either");
}

async fn the_file_transport_writes_eml_files(env: &Env) {
    let db = &env.0.db;
    let dir = env.0.dir.join("outbox");
    let m = invitation("file@example.org", Locale::Es, "f1le");
    let notice = Message::new(
        Address::parse("file@example.org").expect("address"),
        Locale::En,
        MailKind::NewSignIn {
            when: time::OffsetDateTime::now_utc(),
            address: "203.0.113.9".into(),
            user_agent: "curl/8".into(),
        },
    );
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue_all(&tx, &[m.clone(), notice.clone()])
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    let worker = MailWorker::new(db.clone(), Arc::new(FileTransport::new(&dir)), settings());
    assert_eq!(worker.drain().await.expect("drain").sent, 2);

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("outbox dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![format!("{}.eml", m.id), format!("{}.eml", notice.id)];
    expected.sort();
    assert_eq!(
        names, expected,
        "one file per message, no temporary files left"
    );

    let raw = std::fs::read_to_string(dir.join(format!("{}.eml", m.id))).expect("read");
    assert!(
        raw.contains("\r\n\r\n"),
        "headers end with an empty CRLF line"
    );
    assert_eq!(
        header(&raw, "Message-ID"),
        Some(format!("<{}@pto.test>", m.id))
    );
    assert_eq!(header(&raw, "To").as_deref(), Some("file@example.org"));
    assert_eq!(header(&raw, "MIME-Version").as_deref(), Some("1.0"));
    let content_type = header(&raw, "Content-Type").expect("Content-Type");
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .trim_matches('"')
        .to_owned();
    let parts: Vec<&str> = raw.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 4, "preamble, text, html, closing");
    assert!(parts[1].contains("text/plain"));
    assert!(parts[2].contains("text/html"));
    assert!(parts[3].starts_with("--"), "closing delimiter");
    assert!(unqp(parts[1]).contains("http://localhost:8080/invitations/accept?token=f1le"));

    let raw = std::fs::read_to_string(dir.join(format!("{}.eml", notice.id))).expect("read");
    assert_eq!(
        header(&raw, "Subject").as_deref(),
        Some("New sign-in to your account")
    );
    assert!(unqp(&raw).contains("203.0.113.9"));
}

async fn concurrent_workers_send_each_message_once(env: &Env) {
    let db = &env.0.db;
    let messages: Vec<Message> = (0..60)
        .map(|i| invitation(&format!("c{i}@example.org"), Locale::En, "c"))
        .collect();
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue_all(&tx, &messages).await.expect("enqueue");
    tx.commit().await.expect("commit");

    let recorder = Arc::new(Recorder::default());
    let mut small = settings();
    small.batch = 7;
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let w = MailWorker::new(db.clone(), recorder.clone(), small.clone());
            tokio::spawn(async move { w.drain().await })
        })
        .collect();
    for w in workers {
        w.await.expect("join").expect("drain");
    }
    let mut sent = recorder.sent();
    sent.sort();
    let mut expected: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    expected.sort();
    assert_eq!(
        sent, expected,
        "each message sent once by one of the workers"
    );
}

async fn finished_messages_are_purged_and_unfinished_ones_kept(env: &Env) {
    let db = &env.0.db;
    let messages: Vec<Message> = (0..4)
        .map(|i| invitation(&format!("x{i}@example.org"), Locale::En, "x"))
        .collect();
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue_all(&tx, &messages[..3])
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    let recorder = Arc::new(Recorder::default());
    MailWorker::new(db.clone(), recorder, settings())
        .drain()
        .await
        .expect("drain");
    let tx = db.begin_write().await.expect("begin");
    Outbox::enqueue(&tx, &messages[3]).await.expect("enqueue");
    tx.commit().await.expect("commit");

    let past = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    assert_eq!(Outbox::purge_finished(db, past).await.expect("purge"), 0);
    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
    assert_eq!(Outbox::purge_finished(db, later).await.expect("purge"), 3);
    for m in &messages[..3] {
        assert_eq!(Outbox::state(db, m.id).await.expect("state"), None);
    }
    assert_eq!(
        Outbox::state(db, messages[3].id)
            .await
            .expect("state")
            .map(|s| s.status),
        Some(Status::Pending),
        "a pending message is never purged"
    );
}
