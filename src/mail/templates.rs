//! Mail templates (minijinja): for each [`MessageKind`] a subject, a text/plain and a text/html
//! template. The built-in ones are compiled in; a directory (AUTHD_EMAIL_TEMPLATES) overrides
//! any of them by file name. Every template is parsed and test-rendered at start, so a broken
//! override stops the server with one line naming the file instead of failing a send later.
//!
//! Variables: `app_name`, `email` (the recipient), `link`, `code` (sign-in only), `new_email`
//! (the change notice only), `expires_minutes`. HTML templates are auto-escaped.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::MessageKind;

/// The built-in templates: (file name, source).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "verify_email.subject.txt",
        include_str!("templates/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("templates/verify_email.html"),
    ),
    (
        "password_reset.subject.txt",
        include_str!("templates/password_reset.subject.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("templates/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("templates/password_reset.html"),
    ),
    (
        "sign_in_code.subject.txt",
        include_str!("templates/sign_in_code.subject.txt"),
    ),
    (
        "sign_in_code.txt",
        include_str!("templates/sign_in_code.txt"),
    ),
    (
        "sign_in_code.html",
        include_str!("templates/sign_in_code.html"),
    ),
    (
        "email_change.subject.txt",
        include_str!("templates/email_change.subject.txt"),
    ),
    (
        "email_change.txt",
        include_str!("templates/email_change.txt"),
    ),
    (
        "email_change.html",
        include_str!("templates/email_change.html"),
    ),
    (
        "email_change_notice.subject.txt",
        include_str!("templates/email_change_notice.subject.txt"),
    ),
    (
        "email_change_notice.txt",
        include_str!("templates/email_change_notice.txt"),
    ),
    (
        "email_change_notice.html",
        include_str!("templates/email_change_notice.html"),
    ),
];

/// What a template can use.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Vars {
    pub app_name: String,
    pub email: String,
    pub link: String,
    pub code: String,
    pub new_email: String,
    pub expires_minutes: u64,
}

/// A rendered message.
#[derive(Debug)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, overridden by the files of `dir` with the same names. Errors (one
    /// line each): an unreadable directory or file, a file name that is no template, a syntax
    /// error, a template that does not render with sample values (e.g. an unknown variable).
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in BUILT_IN {
            env.add_template_owned(*name, *source)
                .map_err(|e| format!("built-in mail template {name}: {e}"))?;
        }
        if let Some(dir) = dir {
            let what =
                |e: &dyn std::fmt::Display| format!("AUTHD_EMAIL_TEMPLATES={}: {e}", dir.display());
            for entry in std::fs::read_dir(dir).map_err(|e| what(&e))? {
                let path = entry.map_err(|e| what(&e))?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                if name.starts_with('.') || !path.is_file() {
                    continue;
                }
                if !BUILT_IN.iter().any(|(n, _)| *n == name) {
                    let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    return Err(what(&format!(
                        "{name} is not a template name (known: {})",
                        known.join(", ")
                    )));
                }
                let source =
                    std::fs::read_to_string(&path).map_err(|e| what(&format!("{name}: {e}")))?;
                env.add_template_owned(name.clone(), source)
                    .map_err(|e| what(&format!("{name}: {e}")))?;
            }
        }
        let templates = Self { env };
        let sample = Vars {
            app_name: "authd".into(),
            email: "ada@example.com".into(),
            link: "https://app.example.com/verify-email#token=x".into(),
            code: "123456".into(),
            new_email: "ada@example.org".into(),
            expires_minutes: 10,
        };
        for kind in MessageKind::ALL {
            templates.render(kind, &sample).map_err(|e| match dir {
                Some(d) => format!("AUTHD_EMAIL_TEMPLATES={}: {e}", d.display()),
                None => e,
            })?;
        }
        Ok(templates)
    }

    /// Renders the three parts of `kind`. Errors name the template.
    pub fn render(&self, kind: MessageKind, vars: &Vars) -> Result<Rendered, String> {
        let one = |part: &str| {
            let name = format!("{}.{part}", kind.template());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(minijinja::value::Serde(vars)))
                .map_err(|e| format!("mail template {name}: {e}"))
        };
        let subject = one("subject.txt")?;
        // A subject is one header line: no line breaks, whatever a template does.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered {
            subject,
            text: one("txt")?,
            html: one("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            app_name: "Acme <Corp>".into(),
            email: "ada@example.com".into(),
            link: "https://app.example.com/email-sign-in#token=abc".into(),
            code: "042424".into(),
            new_email: String::new(),
            expires_minutes: 10,
        }
    }

    #[test]
    fn text_has_link_and_code_alone_on_a_line_and_html_is_escaped() {
        let t = Templates::load(None).unwrap();
        let r = t.render(MessageKind::SignInCode, &vars()).unwrap();
        let lines: Vec<&str> = r.text.lines().map(str::trim).collect();
        assert!(lines.contains(&"https://app.example.com/email-sign-in#token=abc"));
        assert!(lines.contains(&"042424"));
        assert!(r.html.contains("Acme &lt;Corp&gt;"), "{}", r.html);
        assert!(r.text.contains("Acme <Corp>"));
        assert!(!r.subject.contains('\n'));
    }

    #[test]
    fn a_directory_overrides_by_name_and_bad_overrides_fail_at_load() {
        let dir = std::env::temp_dir().join(format!("authd-tpl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("verify_email.subject.txt"),
            "Welcome to {{ app_name }}!\n",
        )
        .unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let r = t.render(MessageKind::VerifyEmail, &vars()).unwrap();
        assert_eq!(r.subject, "Welcome to Acme <Corp>!");

        std::fs::write(dir.join("verify_email.txt"), "{{ linq }}").unwrap();
        let err = Templates::load(Some(&dir)).err().unwrap();
        assert!(err.contains("verify_email.txt"), "{err}");
        std::fs::write(dir.join("verify_email.txt"), "{% if %}").unwrap();
        assert!(Templates::load(Some(&dir)).is_err());
        std::fs::remove_file(dir.join("verify_email.txt")).unwrap();
        std::fs::write(dir.join("welcome.txt"), "x").unwrap();
        let err = Templates::load(Some(&dir)).err().unwrap();
        assert!(err.contains("welcome.txt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
