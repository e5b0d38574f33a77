//! Outgoing mail, off the request path.
//!
//! A handler (through `accounts::email`) renders a message from its [`templates`] and hands it
//! to [`Mailer::enqueue`], which only puts it on a bounded queue ([`QUEUE_CAPACITY`]) and
//! returns. Background workers deliver at most [`CONCURRENT_DELIVERIES`] messages at once over
//! the [`transport`] (SMTP, or the development outbox), retrying temporary failures with
//! exponential backoff ([`RetryPolicy`]). So a slow or failing SMTP server never fails or slows
//! an HTTP response: a full queue drops the message (the user can ask again), and a message
//! that cannot be delivered is logged and counted (`authd_emails_total{outcome}` in /metrics),
//! never with its link or code. Queued messages live in memory: a restart loses them, and the
//! user asks again (every link and code is short-lived anyway).

pub mod templates;
pub mod transport;

use std::{sync::Arc, time::Duration};

use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

pub use templates::{Templates, Vars};
pub use transport::{SmtpUrl, SmtpUrlParser, Transport};

use crate::{config::Config, telemetry::metrics::Metrics};

/// Messages waiting for delivery, at most.
pub const QUEUE_CAPACITY: usize = 1024;
/// Messages being delivered (or waiting to retry) at once, at most.
pub const CONCURRENT_DELIVERIES: usize = 8;

/// What a message is for: names its templates (`<template>.subject.txt`, `.txt`, `.html`) and
/// the `kind` label of the mail metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// "Confirm your address": a `/verify-email#token=` link.
    VerifyEmail,
    /// A `/reset-password#token=` link.
    PasswordReset,
    /// A sign-in code and a `/email-sign-in#token=` link (one grant).
    SignInCode,
    /// To the new address: a `/verify-email#token=` link that switches the account to it.
    EmailChange,
    /// To the old address: the change was asked for (no link).
    EmailChangeNotice,
}

impl MessageKind {
    pub const ALL: [Self; 5] = [
        Self::VerifyEmail,
        Self::PasswordReset,
        Self::SignInCode,
        Self::EmailChange,
        Self::EmailChangeNotice,
    ];

    pub fn template(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::SignInCode => "sign_in_code",
            Self::EmailChange => "email_change",
            Self::EmailChangeNotice => "email_change_notice",
        }
    }
}

/// When to try again after a temporary failure: `first`, then doubling up to `max`, for at most
/// `attempts` tries in all (by default 8 tries over about 2 minutes).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based).
    fn backoff(&self, n: u32) -> Duration {
        self.first
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)))
            .min(self.max)
    }
}

/// A composed message on its way.
struct Outgoing {
    kind: MessageKind,
    /// For the log (never the address, link or code).
    user_id: Option<Uuid>,
    message: Message,
}

/// Renders messages and queues them for delivery. Cheap to share (`Arc`).
pub struct Mailer {
    queue: mpsc::Sender<Outgoing>,
    templates: Templates,
    from: Mailbox,
    app_name: String,
    metrics: Arc<Metrics>,
}

impl Mailer {
    /// Loads the templates, sets up the transport from the configuration (warning that mail
    /// only goes to the outbox directory when AUTHD_SMTP_URL is unset) and starts the delivery
    /// workers on the current Tokio runtime. Errors (one line naming the variable): templates
    /// that do not load, an outbox that cannot be created, a TLS setup failure.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, String> {
        let templates = Templates::load(config.email_templates.as_deref())?;
        let transport = match &config.smtp_url {
            Some(url) => {
                tracing::info!(smtp = %url, "mail goes to the SMTP server");
                Transport::smtp(url, config.smtp_ca_file.as_deref())?
            }
            None => {
                tracing::warn!(
                    outbox = %config.email_outbox.display(),
                    "AUTHD_SMTP_URL is unset: mail is written as .eml files to the outbox directory \
                     (development only; nobody receives it)"
                );
                Transport::outbox(&config.email_outbox)?
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(deliver_all(
            rx,
            Arc::new(transport),
            RetryPolicy::default(),
            metrics.clone(),
        ));
        Ok(Arc::new(Self {
            queue: tx,
            templates,
            from: config.mail_from.clone(),
            app_name: config.app_name.clone(),
            metrics,
        }))
    }

    /// The product name templates use (AUTHD_APP_NAME).
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// Renders `kind` for `to` and queues it. Returns whether it was queued: false when the
    /// queue is full, the address is unusable or a template fails (each logged and counted as
    /// `dropped`). Never waits.
    pub fn enqueue(&self, kind: MessageKind, user_id: Option<Uuid>, to: &str, vars: &Vars) -> bool {
        let message = match self.compose(kind, to, vars) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(kind = kind.template(), user_id = ?user_id, error = %e, "mail not composed");
                self.metrics.email(kind, "dropped");
                return false;
            }
        };
        match self.queue.try_send(Outgoing {
            kind,
            user_id,
            message,
        }) {
            Ok(()) => {
                self.metrics.email_queued(1);
                true
            }
            Err(_) => {
                tracing::warn!(kind = kind.template(), user_id = ?user_id, capacity = QUEUE_CAPACITY, "mail queue full; message dropped");
                self.metrics.email(kind, "dropped");
                false
            }
        }
    }

    fn compose(&self, kind: MessageKind, to: &str, vars: &Vars) -> Result<Message, String> {
        let rendered = self.templates.render(kind, vars)?;
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("recipient is not a mailbox: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| e.to_string())
    }
}

/// Takes messages off the queue and delivers each on its own task, at most
/// [`CONCURRENT_DELIVERIES`] at once. Ends when every sender is gone.
async fn deliver_all(
    mut rx: mpsc::Receiver<Outgoing>,
    transport: Arc<Transport>,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(out) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        metrics.email_queued(-1);
        let (transport, metrics) = (transport.clone(), metrics.clone());
        tokio::spawn(async move {
            deliver(&transport, out, policy, &metrics).await;
            drop(slot);
        });
    }
}

async fn deliver(transport: &Transport, out: Outgoing, policy: RetryPolicy, metrics: &Metrics) {
    let kind = out.kind.template();
    for attempt in 1..=policy.attempts {
        match transport.send(&out.message).await {
            Ok(()) => {
                tracing::info!(kind, user_id = ?out.user_id, attempt, "mail sent");
                metrics.email(out.kind, "sent");
                return;
            }
            Err(e) if e.permanent || attempt == policy.attempts => {
                tracing::error!(kind, user_id = ?out.user_id, attempt, permanent = e.permanent, error = %e.message, "mail undeliverable; giving up");
                metrics.email(out.kind, "failed");
                return;
            }
            Err(e) => {
                let wait = policy.backoff(attempt);
                tracing::warn!(kind, user_id = ?out.user_id, attempt, retry_in_ms = wait.as_millis() as u64, error = %e.message, "mail not delivered yet; will retry");
                metrics.email(out.kind, "retried");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=p.attempts).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
