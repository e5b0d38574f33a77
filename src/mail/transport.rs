//! Where messages go: an SMTP server (lettre, with STARTTLS or implicit TLS through rustls and
//! optional AUTH), or, without AUTHD_SMTP_URL, an outbox directory of `.eml` files (development
//! only).

use std::{fmt, path::Path, time::Duration};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

/// How long one SMTP conversation may take before it counts as a failed attempt.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A parsed AUTHD_SMTP_URL. `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct SmtpUrl {
    host: String,
    port: u16,
    tls: TlsMode,
    credentials: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsMode {
    /// `smtp://` without `tls=`: STARTTLS when the server offers it (RFC 3207).
    Opportunistic,
    /// `smtp://…?tls=required`: STARTTLS or fail.
    Required,
    /// `smtp://…?tls=none`: plain text (a local relay).
    None,
    /// `smtps://`: TLS from the first byte (RFC 8314).
    Implicit,
}

impl SmtpUrl {
    /// Parses `smtp://[user:pass@]host[:port][?tls=required|opportunistic|none]` or
    /// `smtps://[user:pass@]host[:port]`. Errors name what is wrong, never the password.
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        if let Some((k, _)) = url.query_pairs().find(|(k, _)| k != "tls") {
            return Err(format!("unknown parameter `{k}` (only `tls` is known)"));
        }
        let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None | Some("opportunistic")) => (TlsMode::Opportunistic, 25),
            ("smtp", Some("required")) => (TlsMode::Required, 587),
            ("smtp", Some("none")) => (TlsMode::None, 25),
            ("smtps", None) => (TlsMode::Implicit, 465),
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!(
                    "tls={other} is not one of required, opportunistic, none"
                ));
            }
            (scheme, _) => return Err(format!("scheme `{scheme}` is not smtp or smtps")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("has no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let credentials = match url.password() {
            Some(p) => Some((decode(url.username()), decode(p))),
            None if !url.username().is_empty() => {
                return Err("has a user name but no password".into());
            }
            None => None,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            credentials,
        })
    }
}

/// The clap parser of AUTHD_SMTP_URL: its errors never repeat the value (it may hold a
/// password), unlike clap's own "invalid value '…'" message.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmtpUrlParser;

impl clap::builder::TypedValueParser for SmtpUrlParser {
    type Value = SmtpUrl;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SmtpUrl, clap::Error> {
        let fail = |e: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("AUTHD_SMTP_URL is not usable: {e}\n"),
            )
        };
        let s = value.to_str().ok_or_else(|| fail("not UTF-8".into()))?;
        SmtpUrl::parse(s).map_err(fail)
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls == TlsMode::Implicit {
            "smtps"
        } else {
            "smtp"
        };
        let user = match &self.credentials {
            Some((u, _)) => format!("{u}:***@"),
            None => String::new(),
        };
        write!(
            f,
            "{scheme}://{user}{}:{} ({:?} TLS)",
            self.host, self.port, self.tls
        )
    }
}

/// A delivery failure: `permanent` ones (an SMTP 5xx, an unusable message) are not retried.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

/// Where messages are delivered.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

impl Transport {
    /// An SMTP transport (connections are pooled and opened on first use). `ca_file`: PEM CA
    /// certificates trusted besides the system's. Errors: an unreadable or invalid CA file, a
    /// TLS setup failure.
    pub fn smtp(url: &SmtpUrl, ca_file: Option<&Path>) -> Result<Self, String> {
        let ca = match ca_file {
            Some(path) => {
                let what =
                    |e: &dyn fmt::Display| format!("AUTHD_SMTP_CA_FILE={}: {e}", path.display());
                let pem = std::fs::read(path).map_err(|e| what(&e))?;
                Some(Certificate::from_pem(&pem).map_err(|e| what(&e))?)
            }
            None => None,
        };
        let params = || {
            let mut builder = TlsParameters::builder(url.host.clone());
            if let Some(ca) = &ca {
                builder = builder.add_root_certificate(ca.clone());
            }
            builder
                .build()
                .map_err(|e| format!("AUTHD_SMTP_URL: TLS setup failed: {e}"))
        };
        let tls = match url.tls {
            TlsMode::Opportunistic => Tls::Opportunistic(params()?),
            TlsMode::Required => Tls::Required(params()?),
            TlsMode::Implicit => Tls::Wrapper(params()?),
            TlsMode::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
            .port(url.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, pass)) = &url.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Self::Smtp(builder.build()))
    }

    /// The development outbox: the directory is created if missing. Errors: it cannot be.
    pub fn outbox(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("AUTHD_EMAIL_OUTBOX={}: {e}", dir.display()))?;
        Ok(Self::Outbox(AsyncFileTransport::new(dir)))
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(t) => t
                .send(message.clone())
                .await
                .map(drop)
                .map_err(|e| SendError {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                }),
            Self::Outbox(t) => t
                .send(message.clone())
                .await
                .map(drop)
                .map_err(|e| SendError {
                    permanent: false,
                    message: e.to_string(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = SmtpUrl::parse("smtp://mail.example.com").unwrap();
        assert_eq!((u.port, u.tls), (25, TlsMode::Opportunistic));
        let u = SmtpUrl::parse("smtp://mail.example.com:2525?tls=required").unwrap();
        assert_eq!((u.port, u.tls), (2525, TlsMode::Required));
        let u = SmtpUrl::parse("smtps://ann:s%40cret@mail.example.com").unwrap();
        assert_eq!((u.port, u.tls), (465, TlsMode::Implicit));
        assert_eq!(u.credentials, Some(("ann".into(), "s@cret".into())));
        assert!(!format!("{u} {u:?}").contains("cret"));
        for bad in [
            "http://x",
            "smtp://x?tls=maybe",
            "smtp://x?foo=1",
            "smtp://ann@x",
            "smtps://x?tls=none",
            "nonsense",
        ] {
            let err = SmtpUrl::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }
}
