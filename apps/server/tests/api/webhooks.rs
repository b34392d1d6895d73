//! Webhooks (issue #19): endpoints with secrets shown once, signed deliveries verified by
//! an independent Standard Webhooks verifier (also during a secret rotation), `410`
//! disabling the endpoint, retries after a receiver was down, ping and redelivery, and
//! the receiver-address rules. The receiver is a plain HTTP/1.1 server on 127.0.0.1 in
//! the test; the worker is driven explicitly (`drain`), and a retry is made due by
//! moving its due time, never by sleeping.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::Method;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestContext, create, member_of, new_org, send, signed_up};

macro_rules! webhook_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(ctx) = super::context(crate::helpers::Backend::Sqlite).await {
                        super::$name(ctx).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(ctx) = super::context(crate::helpers::Backend::Postgres).await {
                        super::$name(ctx).await;
                    }
                }
            )*
        }
    };
}

webhook_tests!(
    creating_answers_the_secret_once_and_refuses_unsafe_urls,
    a_change_delivers_a_signed_event_verified_independently_also_during_rotation,
    a_410_disables_the_endpoint,
    a_receiver_down_then_up_gets_the_event_once,
    ping_and_redelivery_send_the_same_message_again,
    two_workers_send_each_event_once_and_a_rebound_name_is_refused,
    after_the_last_attempt_a_delivery_has_failed_and_is_purged_later,
    delivery_metrics_move_with_attempts,
);

/// The app with loopback receivers allowed (tests only; production refuses them).
async fn context(backend: Backend) -> Option<TestContext> {
    TestContext::with_env(backend, &[("WEBHOOK_ALLOW_LOOPBACK", "true")]).await
}

// ---------------------------------------------------------------------------------------
// An independent Standard Webhooks verifier, written from the specification
// (https://www.standardwebhooks.com/): nothing of the server's signing code is used.

/// How far a message's timestamp may be from now.
const TOLERANCE_SECS: i64 = 5 * 60;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `headers` + `body` carry a valid signature under `secret` (`whsec_…`).
fn verify(secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Some(id), Some(ts), Some(sigs)) = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts_num) = ts.parse::<i64>() else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - ts_num).abs() > TOLERANCE_SECS {
        return false;
    }
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| b64.decode(k).ok())
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    sigs.split(' ').any(|sig| {
        sig.split_once(',').is_some_and(|(version, value)| {
            version == "v1"
                && b64
                    .decode(value)
                    .is_ok_and(|given| constant_time_eq(&given, &expected))
        })
    })
}

/// Verifies `messages` with the `standardwebhooks` package from PyPI (a second,
/// independent implementation: `verify_webhooks.py`). Skipped with a note when Python or
/// the package is missing, except under `CI=true` (`.ci/run` installs it).
fn standardwebhooks_verifies(messages: Value) {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let available = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !ci,
            "the standardwebhooks package must be installed under CI=true"
        );
        eprintln!("note: python3 -m pip install standardwebhooks to check the messages with it");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/verify_webhooks.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(json!({ "messages": messages }).to_string().as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("python3 ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "standardwebhooks refused: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn case(msg: &Received, secrets: &[&str], not_secrets: &[&str]) -> Value {
    json!({
        "headers": msg.headers,
        "body": String::from_utf8(msg.body.clone()).expect("a UTF-8 body"),
        "secrets": secrets,
        "not_secrets": not_secrets,
    })
}

// ---------------------------------------------------------------------------------------
// A receiver: a minimal HTTP/1.1 server answering every request with `status`.

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(listener, status)
    }

    async fn on(addr: SocketAddr, status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind again");
        Self::serve(listener, status)
    }

    fn serve(listener: tokio::net::TcpListener, status: u16) -> Self {
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let (g, s) = (Arc::clone(&got), Arc::clone(&status));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                tokio::spawn(async move {
                    let _ = handle(stream, &g, &s).await;
                });
            }
        });
        Self {
            addr,
            got,
            status,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

async fn handle(
    mut stream: tokio::net::TcpStream,
    got: &Mutex<Vec<Received>>,
    status: &AtomicU16,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(request_line.starts_with("POST "), "{request_line}");
    got.lock().expect("lock").push(Received {
        path,
        headers,
        body,
    });
    let code = status.load(Ordering::SeqCst);
    stream
        .write_all(
            format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------

async fn drain(ctx: &TestContext) -> webhooks_store::worker::Pass {
    pto_server::startup::webhook_worker(
        &ctx.state,
        webhooks_store::worker::WorkerSettings::default(),
    )
    .drain()
    .await
    .expect("the worker drains")
}

/// Makes every pending retry due now (the schedule's next step is seconds to hours away).
async fn make_retries_due(ctx: &TestContext) {
    use sea_orm::ConnectionTrait;
    ctx.state
        .db
        .primary()
        .execute_unprepared("UPDATE webhook_deliveries SET due_ms = 0 WHERE status = 'pending'")
        .await
        .expect("update");
}

/// An org with its admin: (org, admin token).
async fn org<S, B>(app: &S, tag: &str) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (_, admin) = signed_up(app, &format!("admin.{tag}@hooks.test")).await;
    let org = new_org(app, &admin, &format!("Hooks {tag}")).await;
    (org, admin)
}

async fn creating_answers_the_secret_once_and_refuses_unsafe_urls(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "create").await;
    let hooks = format!("/api/v2/orgs/{org}/webhooks");
    let (location, created) = create(
        &app,
        &hooks,
        Some(&admin),
        json!({"url": "https://example.org/hook", "events": ["member.joined", "member.joined", "role.created"]}),
    )
    .await;
    let secret = created["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .expect("base64");
    assert!((24..=32).contains(&key.len()));
    let hook = &created["data"]["webhook"];
    assert_eq!(hook["events"], json!(["member.joined", "role.created"]));
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["version"], 1);
    // Never again: not in a read, a list, or the audit trail.
    for uri in [
        location.clone(),
        hooks.clone(),
        format!("/api/v2/orgs/{org}/audit-logs"),
    ] {
        let (status, body) = send(&app, Method::GET, &uri, Some(&admin), None).await;
        assert_eq!(status, 200, "{uri}: {body}");
        assert!(
            !body.to_string().contains(&secret["whsec_".len()..]),
            "{uri}: {body}"
        );
        assert!(body.pointer("/data/secret").is_none());
    }
    let (_, list) = send(&app, Method::GET, &hooks, Some(&admin), None).await;
    assert_eq!(list["meta"]["pagination"]["total"], 1, "{list}");
    // Unsafe receivers and unknown types: 422 naming the field.
    for (body, field, code) in [
        (
            json!({"url": "http://example.org/hook", "events": ["member.joined"]}),
            "url",
            "https_required",
        ),
        (
            json!({"url": "https://10.1.2.3/hook", "events": ["member.joined"]}),
            "url",
            "address_not_allowed",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "events": ["member.joined"]}),
            "url",
            "address_not_allowed",
        ),
        (
            json!({"url": "https://[fd00::1]/hook", "events": ["member.joined"]}),
            "url",
            "address_not_allowed",
        ),
        (
            json!({"url": "https://192.168.0.10/hook", "events": ["member.joined"]}),
            "url",
            "address_not_allowed",
        ),
        (
            json!({"url": "https://user:pw@example.org/hook", "events": ["member.joined"]}),
            "url",
            "credentials_in_url",
        ),
        (
            json!({"url": "https://example.org/hook", "events": ["member.join"]}),
            "events",
            "unknown_event_type",
        ),
        (
            json!({"url": "https://example.org/hook", "events": ["auth.sign_in"]}),
            "events",
            "unknown_event_type",
        ),
    ] {
        let (status, res) =
            send(&app, Method::POST, &hooks, Some(&admin), Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {res}");
        let fields = res["error"]["details"]["fields"]
            .as_array()
            .expect("fields");
        assert!(
            fields
                .iter()
                .any(|f| f["field"] == field && f["code"] == code),
            "{body}: {res}"
        );
    }
    // Only admins manage webhooks.
    let (_, volunteer) = member_of(&app, &admin, &org, "volunteer.create@hooks.test").await;
    let (status, _) = send(&app, Method::GET, &hooks, Some(&volunteer), None).await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &app,
        Method::POST,
        &hooks,
        Some(&volunteer),
        Some(json!({"url": "https://example.org/hook", "events": ["member.joined"]})),
    )
    .await;
    assert_eq!(status, 403);
    // PATCH needs the version; a stale one is 412.
    let (status, _) = send(
        &app,
        Method::PATCH,
        &location,
        Some(&admin),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 428);
    let (status, _) = send(
        &app,
        Method::PATCH,
        &location,
        Some(&admin),
        Some(json!({"version": 7, "enabled": false})),
    )
    .await;
    assert_eq!(status, 412);
    let (status, body) = send(
        &app,
        Method::PATCH,
        &location,
        Some(&admin),
        Some(json!({"version": 1, "enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["enabled"], false);
    assert_eq!(body["data"]["disabled_reason"], "manual");
    let (status, _) = send(&app, Method::DELETE, &location, Some(&admin), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, Method::GET, &location, Some(&admin), None).await;
    assert_eq!(status, 404);
}

async fn a_change_delivers_a_signed_event_verified_independently_also_during_rotation(
    ctx: TestContext,
) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "signed").await;
    let receiver = Receiver::start(200).await;
    let (location, created) = create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": receiver.url(), "events": ["member.joined"]}),
    )
    .await;
    let first_secret = created["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    // Nothing committed before the endpoint existed is sent.
    assert_eq!(drain(&ctx).await.delivered, 0);
    assert!(receiver.received().is_empty());

    let (member, _) = member_of(&app, &admin, &org, "one.signed@hooks.test").await;
    let pass = drain(&ctx).await;
    assert_eq!((pass.queued, pass.delivered), (1, 1), "{pass:?}");
    let got = receiver.received();
    assert_eq!(got.len(), 1, "only member.joined passes the filter");
    let msg = &got[0];
    assert_eq!(msg.path, "/hook");
    assert_eq!(msg.headers["content-type"], "application/json");
    assert!(
        verify(&first_secret, &msg.headers, &msg.body),
        "{:?}",
        msg.headers
    );
    assert!(!verify(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &msg.headers,
        &msg.body
    ));
    let mut tampered = msg.body.clone();
    tampered.push(b' ');
    assert!(!verify(&first_secret, &msg.headers, &tampered));
    let body = msg.json();
    assert_eq!(body["type"], "member.joined");
    assert!(body["timestamp"].is_string());
    assert_eq!(body["data"]["subject"]["id"], member.as_str());
    assert_eq!(body["data"]["tenant"], json!({"type": "org", "id": org}));
    // Its id is an events-API cursor.
    let (status, page) = send(
        &app,
        Method::GET,
        &format!(
            "/api/v2/orgs/{org}/events?after={}",
            body["data"]["id"].as_str().expect("id")
        ),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    // The delivery is listed with status, latency and its attempt.
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "delivered", "{deliveries}");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 200);
    assert!(d["last_latency_ms"].is_u64());
    assert_eq!(d["message_id"], msg.headers["webhook-id"].as_str());
    assert_eq!(d["attempt_log"].as_array().map(Vec::len), Some(1));
    assert_eq!(deliveries["meta"]["pagination"]["total"], 1);

    // Rotation: both secrets sign for 24 h, each signature verifies with its secret.
    let (status, rotated) = send(
        &app,
        Method::POST,
        &format!("{location}/rotate-secret"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let second_secret = rotated["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_ne!(second_secret, first_secret);
    assert!(rotated["data"]["webhook"]["previous_secret_expires_at"].is_string());
    member_of(&app, &admin, &org, "two.signed@hooks.test").await;
    assert_eq!(drain(&ctx).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let msg = &got[1];
    let signatures: Vec<&str> = msg.headers["webhook-signature"].split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    for (secret, signature) in [
        (&second_secret, signatures[0]),
        (&first_secret, signatures[1]),
    ] {
        let mut one = msg.headers.clone();
        one.insert("webhook-signature".into(), signature.to_owned());
        assert!(verify(secret, &one, &msg.body), "{signature}");
    }
    let mut swapped = msg.headers.clone();
    swapped.insert("webhook-signature".into(), signatures[1].to_owned());
    assert!(!verify(&second_secret, &swapped, &msg.body));
    assert!(verify(&first_secret, &msg.headers, &msg.body));
    assert!(verify(&second_secret, &msg.headers, &msg.body));
    assert_ne!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    // The same messages through the `standardwebhooks` package: before the rotation
    // only the first secret verifies; during it, both.
    standardwebhooks_verifies(json!([
        case(&got[0], &[&first_secret], &[&second_secret]),
        case(&got[1], &[&first_secret, &second_secret], &[]),
    ]));
}

async fn a_410_disables_the_endpoint(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "gone").await;
    let receiver = Receiver::start(410).await;
    let (location, _) = create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": receiver.url(), "events": ["member.joined"]}),
    )
    .await;
    member_of(&app, &admin, &org, "one.gone@hooks.test").await;
    let pass = drain(&ctx).await;
    assert_eq!(pass.failed, 1, "{pass:?}");
    let (_, hook) = send(&app, Method::GET, &location, Some(&admin), None).await;
    assert_eq!(hook["data"]["enabled"], false, "{hook}");
    assert_eq!(hook["data"]["disabled_reason"], "gone");
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(deliveries["data"][0]["status"], "failed", "{deliveries}");
    assert_eq!(deliveries["data"][0]["last_status_code"], 410);
    // Audited as the system's change.
    let (_, audit) = send(
        &app,
        Method::GET,
        &format!("/api/v2/orgs/{org}/audit-logs?action=webhook.disable"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{audit}");
    // No more attempts, no new deliveries, no pings.
    member_of(&app, &admin, &org, "two.gone@hooks.test").await;
    let pass = drain(&ctx).await;
    assert_eq!((pass.queued, pass.claimed), (0, 0), "{pass:?}");
    assert_eq!(receiver.received().len(), 1);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{location}/ping"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Enabled again: events from then on.
    let version = hook["data"]["version"].as_i64().expect("version");
    let (status, body) = send(
        &app,
        Method::PATCH,
        &location,
        Some(&admin),
        Some(json!({"version": version, "enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    receiver.answer(204);
    member_of(&app, &admin, &org, "three.gone@hooks.test").await;
    assert_eq!(drain(&ctx).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["data"]["type"], "member.joined");
}

async fn a_receiver_down_then_up_gets_the_event_once(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "down").await;
    // A port nobody listens on (yet).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (location, created) = create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": format!("http://{addr}/hook"), "events": ["member.joined"]}),
    )
    .await;
    let secret = created["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    member_of(&app, &admin, &org, "one.down@hooks.test").await;
    let pass = drain(&ctx).await;
    assert_eq!(
        (pass.queued, pass.retried, pass.delivered),
        (1, 1, 0),
        "{pass:?}"
    );
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "pending", "{deliveries}");
    assert_eq!(d["attempts"], 1);
    assert!(d["last_status_code"].is_null());
    assert!(
        d["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{d}"
    );
    assert!(d["next_attempt_at"].is_string());
    // Not due yet: nothing is attempted.
    assert_eq!(drain(&ctx).await.claimed, 0);
    // The receiver comes up; the retry comes due.
    let receiver = Receiver::on(addr, 200).await;
    make_retries_due(&ctx).await;
    assert_eq!(drain(&ctx).await.delivered, 1);
    make_retries_due(&ctx).await;
    assert_eq!(drain(&ctx).await.claimed, 0);
    let got = receiver.received();
    assert_eq!(got.len(), 1, "once");
    assert!(verify(&secret, &got[0].headers, &got[0].body));
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "delivered", "{deliveries}");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["attempt_log"].as_array().map(Vec::len), Some(2));
    assert!(d["attempt_log"][1]["status_code"].is_null());
    assert_eq!(d["attempt_log"][0]["status_code"], 200);
}

async fn ping_and_redelivery_send_the_same_message_again(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "ping").await;
    let receiver = Receiver::start(200).await;
    let (location, created) = create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": receiver.url(), "events": ["role.created"]}),
    )
    .await;
    let secret = created["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let (_, ping) = create(&app, &format!("{location}/ping"), Some(&admin), json!({})).await;
    let delivery = ping["data"]["delivery_id"].as_str().expect("id").to_owned();
    assert_eq!(drain(&ctx).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(verify(&secret, &got[0].headers, &got[0].body));
    let body = got[0].json();
    assert_eq!(body["type"], "webhook.ping");
    assert_eq!(
        got[0].headers["webhook-id"],
        ping["data"]["message_id"].as_str().expect("id")
    );
    // Redelivered: the same message id and body, once more.
    let (status, redelivered) = send(
        &app,
        Method::POST,
        &format!("{location}/deliveries/{delivery}/redeliver"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{redelivered}");
    assert_eq!(redelivered["data"]["status"], "pending");
    assert_eq!(drain(&ctx).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(got[0].body, got[1].body);
    assert!(verify(&secret, &got[1].headers, &got[1].body));
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(deliveries["data"][0]["attempts"], 2, "{deliveries}");
    assert_eq!(deliveries["data"][0]["status"], "delivered");
    // A failed manual redelivery is one attempt, not a new round of retries.
    receiver.answer(500);
    send(
        &app,
        Method::POST,
        &format!("{location}/deliveries/{delivery}/redeliver"),
        Some(&admin),
        None,
    )
    .await;
    let pass = drain(&ctx).await;
    assert_eq!((pass.claimed, pass.failed), (1, 1), "{pass:?}");
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(deliveries["data"][0]["status"], "failed", "{deliveries}");
    assert_eq!(deliveries["data"][0]["last_status_code"], 500);
    // Unknown deliveries and endpoints: 404.
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("{location}/deliveries/{}/redeliver", uuid::Uuid::now_v7()),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        Method::GET,
        &format!(
            "/api/v2/orgs/{org}/webhooks/{}/deliveries",
            uuid::Uuid::now_v7()
        ),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn two_workers_send_each_event_once_and_a_rebound_name_is_refused(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "two").await;
    let receiver = Receiver::start(200).await;
    let hooks = format!("/api/v2/orgs/{org}/webhooks");
    create(
        &app,
        &hooks,
        Some(&admin),
        json!({"url": receiver.url(), "events": ["member.joined"]}),
    )
    .await;
    // Registered as a public name; at delivery it resolves to a private address.
    let (rebound, _) = create(
        &app,
        &hooks,
        Some(&admin),
        json!({"url": "https://rebind.example/hook", "events": ["member.joined"]}),
    )
    .await;
    for n in 0..5 {
        member_of(&app, &admin, &org, &format!("m{n}.two@hooks.test")).await;
    }
    let worker = || {
        let transport = webhooks_store::transport::HttpTransport::new(
            ctx.state.webhook_policy,
            std::time::Duration::from_secs(10),
        )
        .expect("client")
        .with_hosts(vec![(
            "rebind.example".into(),
            "10.0.0.7".parse().expect("ip"),
        )]);
        webhooks_store::worker::WebhookWorker::new(
            ctx.state.webhooks.clone(),
            audit_store::SeaOrmAuditLog::new(ctx.state.db.clone()),
            Arc::new(transport),
            webhooks_store::worker::WorkerSettings {
                batch: 2,
                ..Default::default()
            },
        )
    };
    let (a, b) = (worker(), worker());
    let (pa, pb) = tokio::join!(a.drain(), b.drain());
    let (pa, pb) = (pa.expect("a drains"), pb.expect("b drains"));
    assert_eq!(pa.queued + pb.queued, 10, "{pa:?} {pb:?}");
    assert_eq!(pa.delivered + pb.delivered, 5, "{pa:?} {pb:?}");
    assert_eq!(pa.retried + pb.retried, 5, "{pa:?} {pb:?}");
    let got = receiver.received();
    let ids: std::collections::BTreeSet<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].as_str())
        .collect();
    assert_eq!((got.len(), ids.len()), (5, 5), "each event once");
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{rebound}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    let items = deliveries["data"].as_array().expect("items");
    assert_eq!(items.len(), 5, "{deliveries}");
    for d in items {
        assert_eq!(d["status"], "pending", "{d}");
        assert!(
            d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("not a public address")),
            "{d}"
        );
    }
}

async fn after_the_last_attempt_a_delivery_has_failed_and_is_purged_later(ctx: TestContext) {
    let app = ctx.service().await;
    let (org, admin) = org(&app, "last").await;
    let receiver = Receiver::start(503).await;
    let (location, _) = create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": receiver.url(), "events": ["member.joined"]}),
    )
    .await;
    create(&app, &format!("{location}/ping"), Some(&admin), json!({})).await;
    let mut failed = 0;
    for _ in 0..webhooks::MAX_ATTEMPTS {
        let pass = drain(&ctx).await;
        assert_eq!(pass.claimed, 1, "{pass:?}");
        failed += pass.failed;
        make_retries_due(&ctx).await;
    }
    assert_eq!(failed, 1);
    assert_eq!(drain(&ctx).await.claimed, 0, "no attempt after the last");
    assert_eq!(receiver.received().len(), webhooks::MAX_ATTEMPTS as usize);
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"], webhooks::MAX_ATTEMPTS);
    assert_eq!(d["last_status_code"], 503);
    assert!(d["next_attempt_at"].is_null());
    assert_eq!(
        d["attempt_log"].as_array().map(Vec::len),
        Some(webhooks::MAX_ATTEMPTS as usize)
    );
    // Finished deliveries go after the retention period (here: anything before now).
    let purged = ctx
        .state
        .webhooks
        .purge_finished(time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    let (_, deliveries) = send(
        &app,
        Method::GET,
        &format!("{location}/deliveries"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(deliveries["meta"]["pagination"]["total"], 0, "{deliveries}");
}

async fn delivery_metrics_move_with_attempts(ctx: TestContext) {
    use crate::observability::{scrape, series};
    let app = ctx.service().await;
    let (org, admin) = org(&app, "metrics").await;
    let total = |text: &str, outcome: &str| {
        series(
            text,
            &format!("ptoc_webhook_deliveries_total{{outcome=\"{outcome}\"}}"),
        )
        .expect("every outcome is listed")
    };
    let pending = |text: &str, state: &str| {
        series(
            text,
            &format!("ptoc_webhook_deliveries_pending{{state=\"{state}\"}}"),
        )
        .expect("the backlog is listed")
    };
    let attempts = |text: &str| series(text, "ptoc_webhook_delivery_seconds_count").expect("count");
    let before = scrape(&app).await;
    for state in ["due", "waiting", "sending"] {
        assert_eq!(pending(&before, state), 0.0, "{state}");
    }
    // A receiver that is down: one attempt, to be retried.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let gone = Receiver::start(410).await;
    create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": format!("http://{addr}/hook"), "events": ["member.joined"]}),
    )
    .await;
    create(
        &app,
        &format!("/api/v2/orgs/{org}/webhooks"),
        Some(&admin),
        json!({"url": gone.url(), "events": ["member.joined"]}),
    )
    .await;
    member_of(&app, &admin, &org, "one.metrics@hooks.test").await;
    let pass = drain(&ctx).await;
    assert_eq!((pass.retried, pass.failed), (1, 1), "{pass:?}");
    let after_first = scrape(&app).await;
    assert!(total(&after_first, "retried") >= total(&before, "retried") + 1.0);
    assert!(total(&after_first, "disabled") >= total(&before, "disabled") + 1.0);
    assert!(attempts(&after_first) >= attempts(&before) + 2.0);
    assert!(
        series(
            &after_first,
            "ptoc_webhook_delivery_seconds_bucket{le=\"+Inf\"}"
        )
        .is_some_and(|n| n >= attempts(&after_first)),
        "{after_first}"
    );
    // Waiting for its retry; the disabled endpoint's delivery is finished.
    assert_eq!(pending(&after_first, "waiting"), 1.0);
    assert_eq!(pending(&after_first, "due"), 0.0);
    make_retries_due(&ctx).await;
    assert_eq!(pending(&scrape(&app).await, "due"), 1.0);
    // The receiver is up: delivered, nothing left.
    let _receiver = Receiver::on(addr, 200).await;
    assert_eq!(drain(&ctx).await.delivered, 1);
    let after = scrape(&app).await;
    assert!(total(&after, "delivered") >= total(&before, "delivered") + 1.0);
    assert!(attempts(&after) >= attempts(&before) + 3.0);
    for state in ["due", "waiting", "sending"] {
        assert_eq!(pending(&after, state), 0.0, "{state}");
    }
}
