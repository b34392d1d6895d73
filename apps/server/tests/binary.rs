//! The shipped binary with no configuration: serves `/health` on the embedded default
//! within seconds, and shuts down gracefully on SIGTERM.

#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn embedded_default_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("ptoc-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pto-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", &dir)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let mut port = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if line["message"] == "pto-server listening" {
            port = line["port"].as_u64();
            break;
        }
    }
    let port = u16::try_from(port.expect("server announced its port")).unwrap();
    let response = http_get(port, "/health");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"success\":true"), "{response}");
    assert!(
        dir.join("pto.sqlite3").exists(),
        "SQLite file created in DATA_DIR"
    );
    assert!(
        dir.join("signing_key.pem").exists(),
        "signing key created in DATA_DIR"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stopped = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if line["message"] == "server stopped; closing connections" {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "graceful shutdown was logged");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_is_reported_line_by_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_pto-server"))
        .env_clear()
        .env("BIND_ADDR", "nowhere")
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.contains("BIND_ADDR")), "{err}");
    assert!(err.lines().any(|l| l.contains("LOG_FORMAT")), "{err}");
}
