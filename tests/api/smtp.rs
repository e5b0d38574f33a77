//! A real SMTP server for the tests: tests/support/smtp_sink.py (aiosmtpd) over TCP on
//! 127.0.0.1, in the venv tests/support/venv.sh makes. Each message it accepts is a file the
//! test reads back and parses (mailparse), so tests see exactly what a mailbox would.

use std::{path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{
    certs::TestCa,
    helpers::{TestApp, eventually, spawn_app_with},
};

/// The venv's python (made once per test binary).
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/venv.sh"
            ))
            .output()
            .expect("bash runs tests/support/venv.sh");
        assert!(
            out.status.success(),
            "tests/support/venv.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    // Closing its stdin (dropping the child) stops the server; kill_on_drop makes sure.
    _child: Child,
}

/// A message as received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The line of the text part that is a link (alone on its line, as API.md promises).
    pub fn link(&self) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("http://") || l.starts_with("https://"))
            .unwrap_or_else(|| panic!("no link line in {}", self.text))
            .to_owned()
    }

    /// The token in the link's fragment.
    pub fn token(&self) -> String {
        let link = self.link();
        link.split_once("#token=")
            .unwrap_or_else(|| panic!("no #token= in {link}"))
            .1
            .to_owned()
    }

    /// The line of the text part that is a 6-digit code.
    pub fn code(&self) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code line in {}", self.text))
            .to_owned()
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with(None, &[]).await
    }

    /// `port`: a given one (None: any free one); `args`: more sink flags (`--fail-first N`).
    pub async fn start_with(port: Option<u16>, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("authd-sink-{}", uuid::Uuid::new_v4()));
        let mut cmd = Command::new(python());
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smtp_sink.py"
        ))
        .arg("--dir")
        .arg(&dir)
        .arg("--port")
        .arg(port.unwrap_or(0).to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        let mut child = cmd.spawn().expect("the SMTP sink starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP sink says ready")
            .unwrap()
            .expect("the SMTP sink printed a line");
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected sink output {line}"));
        Self {
            port,
            dir,
            _child: child,
        }
    }

    /// A sink speaking TLS (`"starttls"`, required before any mail, or `"implicit"`) with a
    /// certificate for 127.0.0.1 issued by a fresh private CA (made by the openssl command),
    /// requiring AUTH as `user:pass` over it. Returns the sink and the CA certificate's path
    /// (what authd must trust).
    pub async fn start_tls(mode: &str, auth: &str) -> (Self, PathBuf) {
        let dir = std::env::temp_dir().join(format!("authd-sink-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new(&dir, "ca");
        let (cert, key) = ca.issue("leaf", "IP:127.0.0.1,DNS:localhost");
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let sink = Self::start_with(
            None,
            &[
                "--tls",
                mode,
                "--tls-cert",
                cert,
                "--tls-key",
                key,
                "--auth",
                auth,
            ],
        )
        .await;
        (sink, ca.cert)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "eml").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// The messages to `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Mail> {
        self.messages().into_iter().filter(|m| m.to == to).collect()
    }

    /// Waits (up to 10 s) until `to` has received `n` messages; returns the `n`th.
    pub async fn nth_to(&self, to: &str, n: usize) -> Mail {
        let arrived = eventually(Duration::from_secs(10), || async {
            self.messages_to(to).len() >= n
        })
        .await;
        assert!(
            arrived,
            "message {n} to {to} arrived (have {:?})",
            self.messages()
        );
        self.messages_to(to).swap_remove(n - 1)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses a received message (MIME, quoted-printable) into its parts.
pub fn parse(raw: &[u8]) -> Mail {
    use mailparse::MailHeaderMap;
    let m = mailparse::parse_mail(raw).expect("a parsable message");
    let mut text = String::new();
    let mut html = String::new();
    for part in m.parts() {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = part.get_body().unwrap(),
            "text/html" => html = part.get_body().unwrap(),
            _ => {}
        }
    }
    Mail {
        to: m.headers.get_first_value("To").unwrap_or_default(),
        subject: m.headers.get_first_value("Subject").unwrap_or_default(),
        text,
        html,
    }
}

/// An app that mails through `sink`.
pub async fn spawn_with_sink(
    sink: &SmtpSink,
    customize: impl FnOnce(&mut authd::config::Config),
) -> TestApp {
    let url = sink.url();
    spawn_app_with(|c| {
        c.smtp_url = Some(authd::mail::SmtpUrl::parse(&url).unwrap());
        customize(c);
    })
    .await
}
