//! Mail templates: a subject, a text body and an HTML body per
//! [`MailKind`], built in and overridable file by file from a directory.
//!
//! Templates are [MiniJinja](https://docs.rs/minijinja) (Jinja2 syntax).
//! Files are named `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`
//! (`verify_email.html`, ...); values are HTML-escaped in `.html` files.
//! Every template sees the same variables, so an override can use any of
//! them:
//!
//! | variable | value |
//! |---|---|
//! | `app_name` | the configured product name |
//! | `email` | the recipient's address |
//! | `name` | the user's display name (may be empty) |
//! | `link` | the link to follow (empty for notices) |
//! | `code` | the sign-in code (empty but for `sign_in`) |
//! | `expires_in` | how long the link works, in words ("1 hour") |
//! | `organization` | the organization an invitation is to (empty for other mails) |
//!
//! Loading renders every template once with sample values, so a broken
//! override stops the server at start, not at the first mail. An unknown
//! variable is an error, not an empty string.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use minijinja::{Environment, UndefinedBehavior, Value};

use super::MailKind;

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An override file exists but cannot be read.
    #[error("mail template {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A template does not parse or render.
    #[error("mail template {name}: {source}")]
    Template {
        /// The template's file name.
        name: String,
        /// What MiniJinja said.
        source: minijinja::Error,
    },
}

/// The built-in templates, by file name.
const BUILT_IN: [(&str, &str); 27] = [
    ("verify_email.subject.txt", include_str!("../../templates/mail/verify_email.subject.txt")),
    ("verify_email.txt", include_str!("../../templates/mail/verify_email.txt")),
    ("verify_email.html", include_str!("../../templates/mail/verify_email.html")),
    ("reset_password.subject.txt", include_str!("../../templates/mail/reset_password.subject.txt")),
    ("reset_password.txt", include_str!("../../templates/mail/reset_password.txt")),
    ("reset_password.html", include_str!("../../templates/mail/reset_password.html")),
    ("password_changed.subject.txt", include_str!("../../templates/mail/password_changed.subject.txt")),
    ("password_changed.txt", include_str!("../../templates/mail/password_changed.txt")),
    ("password_changed.html", include_str!("../../templates/mail/password_changed.html")),
    ("account_exists.subject.txt", include_str!("../../templates/mail/account_exists.subject.txt")),
    ("account_exists.txt", include_str!("../../templates/mail/account_exists.txt")),
    ("account_exists.html", include_str!("../../templates/mail/account_exists.html")),
    ("sign_in.subject.txt", include_str!("../../templates/mail/sign_in.subject.txt")),
    ("sign_in.txt", include_str!("../../templates/mail/sign_in.txt")),
    ("sign_in.html", include_str!("../../templates/mail/sign_in.html")),
    ("change_email.subject.txt", include_str!("../../templates/mail/change_email.subject.txt")),
    ("change_email.txt", include_str!("../../templates/mail/change_email.txt")),
    ("change_email.html", include_str!("../../templates/mail/change_email.html")),
    ("email_change_requested.subject.txt", include_str!("../../templates/mail/email_change_requested.subject.txt")),
    ("email_change_requested.txt", include_str!("../../templates/mail/email_change_requested.txt")),
    ("email_change_requested.html", include_str!("../../templates/mail/email_change_requested.html")),
    ("password_setup.subject.txt", include_str!("../../templates/mail/password_setup.subject.txt")),
    ("password_setup.txt", include_str!("../../templates/mail/password_setup.txt")),
    ("password_setup.html", include_str!("../../templates/mail/password_setup.html")),
    ("invitation.subject.txt", include_str!("../../templates/mail/invitation.subject.txt")),
    ("invitation.txt", include_str!("../../templates/mail/invitation.txt")),
    ("invitation.html", include_str!("../../templates/mail/invitation.html")),
];

/// What a rendered message says, before it gets an id and a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line, on one line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct MailContext<'a> {
    /// The recipient.
    pub email: &'a str,
    /// The user's display name.
    pub name: &'a str,
    /// The link to follow; empty for notices.
    pub link: &'a str,
    /// The code to type; empty but for sign-in mails.
    pub code: &'a str,
    /// How long the link works.
    pub expires_in: Duration,
    /// The organization an invitation is to; empty for other mails.
    pub organization: &'a str,
}

/// Every kind's templates, parsed and checked.
#[derive(Clone)]
pub struct MailTemplates {
    env: Arc<Environment<'static>>,
    app_name: String,
}

impl std::fmt::Debug for MailTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailTemplates").field("app_name", &self.app_name).finish_non_exhaustive()
    }
}

impl MailTemplates {
    /// The built-in templates, with files in `overrides` (when given)
    /// replacing those of the same name. `app_name` is what mails call the
    /// product.
    pub fn load(overrides: Option<&Path>, app_name: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, built_in) in BUILT_IN {
            let source = match overrides.map(|dir| dir.join(name)) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?,
                _ => built_in.to_owned(),
            };
            env.add_template_owned(name, source)
                .map_err(|source| TemplateError::Template { name: name.to_owned(), source })?;
        }
        let templates = Self { env: Arc::new(env), app_name: app_name.to_owned() };
        let sample = MailContext {
            organization: "Acme",
            email: "ann@example.com",
            name: "Ann",
            link: "https://app.example.com/x?token=kpm_sample",
            code: "123456",
            expires_in: Duration::from_secs(3600),
        };
        for kind in MailKind::ALL {
            templates.render(kind, &sample)?;
        }
        Ok(templates)
    }

    /// Renders `kind` with `context`.
    pub fn render(&self, kind: MailKind, context: &MailContext<'_>) -> Result<Rendered, TemplateError> {
        let values = Value::from(BTreeMap::from([
            (Value::from("app_name"), Value::from(self.app_name.as_str())),
            (Value::from("email"), Value::from(context.email)),
            (Value::from("name"), Value::from(context.name)),
            (Value::from("link"), Value::from(context.link)),
            (Value::from("code"), Value::from(context.code)),
            (Value::from("expires_in"), Value::from(in_words(context.expires_in))),
            (Value::from("organization"), Value::from(context.organization)),
        ]));
        let part = |suffix: &str| {
            let name = format!("{}.{suffix}", kind.as_str());
            self.env
                .get_template(&name)
                .and_then(|template| template.render(&values))
                .map_err(|source| TemplateError::Template { name, source })
        };
        // A header is one line: a template cannot add headers.
        let subject = part("subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered { subject, text: part("txt")?, html: part("html")? })
    }
}

/// "1 hour", "24 hours", "15 minutes".
fn in_words(duration: Duration) -> String {
    let minutes = duration.as_secs().div_ceil(60).max(1);
    let (count, unit) = if minutes.is_multiple_of(60) { (minutes / 60, "hour") } else { (minutes, "minute") };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(link: &'a str, name: &'a str) -> MailContext<'a> {
        MailContext {
            organization: "",
            email: "ann@example.com",
            name,
            link,
            code: "",
            expires_in: Duration::from_secs(3600),
        }
    }

    #[test]
    fn built_in_templates_carry_the_link_and_the_lifetime() {
        let templates = MailTemplates::load(None, "Acme").unwrap();
        let link = "https://app.example.com/reset-password?token=kpm_abc";
        let mail = templates.render(MailKind::ResetPassword, &context(link, "Ann")).unwrap();
        assert!(mail.subject.contains("Acme"), "{}", mail.subject);
        assert!(mail.text.contains(link) && mail.text.contains("1 hour"), "{}", mail.text);
        // HTML-escaped (`/` is `&#x2f;`), which mail readers decode.
        assert!(mail.html.contains("token=kpm_abc"), "{}", mail.html);
    }

    #[test]
    fn html_escapes_values_and_subjects_stay_on_one_line() {
        let templates = MailTemplates::load(None, "Acme\r\nBcc: x@evil.test").unwrap();
        let mail =
            templates.render(MailKind::VerifyEmail, &context("https://a.test/v?t=1", "<script>x</script>")).unwrap();
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'), "{:?}", mail.subject);
    }

    #[test]
    fn overrides_replace_files_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verify_email.subject.txt"), "Confirm {{ email }}").unwrap();
        let templates = MailTemplates::load(Some(dir.path()), "Acme").unwrap();
        let mail = templates.render(MailKind::VerifyEmail, &context("https://a.test/v", "")).unwrap();
        assert_eq!(mail.subject, "Confirm ann@example.com");
        // The other files are still the built-in ones.
        assert!(mail.text.contains("https://a.test/v"));
    }

    #[test]
    fn a_broken_override_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("reset_password.html"), "{{ link").unwrap();
        assert!(matches!(MailTemplates::load(Some(dir.path()), "Acme"), Err(TemplateError::Template { .. })));
        std::fs::write(dir.path().join("reset_password.html"), "{{ no_such_variable }}").unwrap();
        assert!(matches!(MailTemplates::load(Some(dir.path()), "Acme"), Err(TemplateError::Template { .. })));
    }

    #[test]
    fn lifetimes_read_as_words() {
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(in_words(Duration::from_secs(15 * 60)), "15 minutes");
        assert_eq!(in_words(Duration::from_secs(30)), "1 minute");
    }
}
