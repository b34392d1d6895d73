//! A real SMTP server for tests: Python's `aiosmtpd` (installed by `.ci/run`), started
//! on a free local port, storing what it receives in a Maildir the test reads.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::in_ci;

/// A running `aiosmtpd` (stopped, and its Maildir removed, when dropped).
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    dir: PathBuf,
    port: u16,
}

fn aiosmtpd_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl SmtpSink {
    /// Starts a server; `None` (with a note) when `python3 -m aiosmtpd` is unavailable.
    ///
    /// # Panics
    /// When it is unavailable under `CI=true` (`.ci/run` installs it), or does not
    /// start listening within 15 seconds.
    #[must_use]
    pub fn start() -> Option<Self> {
        if !aiosmtpd_available() {
            assert!(
                !in_ci(),
                "python3 -m aiosmtpd must be available under CI=true (pip install aiosmtpd)"
            );
            eprintln!("aiosmtpd unavailable (pip install aiosmtpd): SMTP test skipped");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("smtp-sink-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create the Maildir directory");
        // The free port is picked, then released for aiosmtpd: another process may take
        // it in between, so a server that exits at start is tried again on a new port.
        for _ in 0..5 {
            if let Some(sink) = Self::spawn(&dir) {
                return Some(sink);
            }
        }
        panic!("aiosmtpd exited at start five times");
    }

    fn spawn(dir: &std::path::Path) -> Option<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut sink = Self {
            child,
            dir: dir.to_owned(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(_)) = sink.child.try_wait() {
                // Exited (the port was taken meanwhile): keep the directory for the retry.
                sink.dir = PathBuf::new();
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(sink)
    }

    /// Its port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>` (plain: the server offers no STARTTLS).
    #[must_use]
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw (headers and body), oldest first. A message
    /// the server acknowledged (`250` after `DATA`) is already here.
    ///
    /// # Panics
    /// When the Maildir cannot be read.
    #[must_use]
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.join("maildir").join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(&p).expect("read a received message"))
            .collect()
    }

    /// How many messages were received.
    #[must_use]
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.join("maildir").join("new")).map_or(0, |d| d.count())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The value of header `name` in a raw message (first occurrence, unfolded).
#[must_use]
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let head = head.split("\n\n").next().unwrap_or(head);
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case(name)
        {
            let mut value = v.trim().to_owned();
            while let Some(next) = lines.peek()
                && next.starts_with([' ', '\t'])
            {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}
