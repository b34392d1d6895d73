//! Rendering a message: the subject, a plain-text body and an HTML body from the
//! templates of its kind and locale (minijinja; the files under `templates/` are
//! compiled into the binary). HTML templates escape every variable; text ones do not.

use minijinja::Environment;
use serde_json::Value;

use crate::message::{Locale, MailKind};

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// Every template file, by name (`<locale>/<template>.<txt|html>`).
const TEMPLATES: &[(&str, &str)] = templates![
    "en/layout.txt",
    "en/layout.html",
    "en/invitation.txt",
    "en/invitation.html",
    "en/verify_email.txt",
    "en/verify_email.html",
    "en/password_reset.txt",
    "en/password_reset.html",
    "en/password_changed.txt",
    "en/password_changed.html",
    "en/new_sign_in.txt",
    "en/new_sign_in.html",
    "en/two_factor_disabled.txt",
    "en/two_factor_disabled.html",
    "en/email_changed.txt",
    "en/email_changed.html",
    "en/notification.txt",
    "en/notification.html",
    "en/notification_digest.txt",
    "en/notification_digest.html",
    "es/layout.txt",
    "es/layout.html",
    "es/invitation.txt",
    "es/invitation.html",
    "es/verify_email.txt",
    "es/verify_email.html",
    "es/password_reset.txt",
    "es/password_reset.html",
    "es/password_changed.txt",
    "es/password_changed.html",
    "es/new_sign_in.txt",
    "es/new_sign_in.html",
    "es/two_factor_disabled.txt",
    "es/two_factor_disabled.html",
    "es/email_changed.txt",
    "es/email_changed.html",
    "es/notification.txt",
    "es/notification.html",
    "es/notification_digest.txt",
    "es/notification_digest.html",
];

/// A rendered message.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bodies carry links with tokens.
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A template failed to render (a bug in a template: the tests render every one).
#[derive(Debug, thiserror::Error)]
#[error("rendering {template} failed")]
pub struct RenderError {
    template: String,
    #[source]
    source: minijinja::Error,
}

/// The template set.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    /// Loads the built-in templates.
    ///
    /// # Panics
    /// Never for the built-in templates (a syntax error in one fails every test).
    #[must_use]
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            #[allow(clippy::expect_used, reason = "compiled-in templates; tested")]
            env.add_template(name, source)
                .expect("the built-in templates parse");
        }
        Self { env }
    }

    /// Renders `kind` in `locale`.
    ///
    /// # Errors
    /// A template error (see [`RenderError`]).
    pub fn render(&self, locale: Locale, kind: &MailKind) -> Result<Rendered, RenderError> {
        let ctx = minijinja::Value::from(minijinja::value::Serde(context(locale, kind)));
        let base = format!("{}/{}", locale.as_str(), kind.template());
        let err = |template: &str| {
            let template = template.to_owned();
            move |source| RenderError { template, source }
        };
        let txt_name = format!("{base}.txt");
        let txt = self.env.get_template(&txt_name).map_err(err(&txt_name))?;
        let mut captured = txt.render_captured(ctx.clone()).map_err(err(&txt_name))?;
        let subject = captured
            .with_state_mut(|state| state.render_block("subject"))
            .map_err(err(&txt_name))?;
        let text = captured.into_output();
        let html_name = format!("{base}.html");
        let html = self
            .env
            .get_template(&html_name)
            .and_then(|t| t.render(ctx))
            .map_err(err(&html_name))?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text,
            html,
        })
    }
}

/// The template variables: the kind's own, with times formatted for people.
fn context(locale: Locale, kind: &MailKind) -> Value {
    let mut vars = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.get("vars").cloned())
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    if let (MailKind::NewSignIn { when, .. }, Value::Object(map)) = (kind, &mut vars) {
        let when = when.to_offset(time::UtcOffset::UTC);
        let formatted = format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            when.year(),
            u8::from(when.month()),
            when.day(),
            when.hour(),
            when.minute()
        );
        map.insert("when".into(), Value::String(formatted));
    }
    if let Value::Object(map) = &mut vars {
        map.insert("locale".into(), Value::String(locale.as_str().into()));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PublicUrls;

    /// One of each kind, with a value that needs HTML escaping.
    pub(crate) fn samples() -> Vec<MailKind> {
        let urls = PublicUrls::new("https://pto.example.org").expect("valid");
        vec![
            MailKind::Invitation {
                org_name: "Lincoln <PTO> & Friends".into(),
                inviter: "Ana López".into(),
                link: urls.invitation("tok-inv"),
            },
            MailKind::VerifyEmail {
                link: urls.verify_email("tok-ver"),
            },
            MailKind::PasswordReset {
                link: urls.password_reset("tok-res"),
            },
            MailKind::PasswordChanged,
            MailKind::NewSignIn {
                when: time::macros::datetime!(2026-12-06 05:30:12 UTC),
                address: "203.0.113.7".into(),
                user_agent: "Firefox on Linux".into(),
            },
            MailKind::TwoFactorDisabled,
            MailKind::EmailChanged {
                new_address: "new@example.org".into(),
            },
            MailKind::Notification {
                title: "Bake <sale> & more".into(),
                body: "Bring cakes.".into(),
            },
            MailKind::NotificationDigest {
                items: vec![crate::message::DigestItem {
                    title: "Field trip".into(),
                    body: "Forms due <Friday>.".into(),
                }],
            },
        ]
    }

    #[test]
    fn every_kind_renders_in_every_locale() {
        let r = Renderer::new();
        for kind in samples() {
            for locale in Locale::ALL {
                let out = r.render(locale, &kind).expect("renders");
                assert!(!out.subject.is_empty(), "{kind:?} {locale:?}");
                assert!(!out.subject.contains('\n'));
                assert!(out.html.starts_with("<!DOCTYPE html>"), "{kind:?}");
                assert!(
                    out.html.contains(&format!("lang=\"{}\"", locale.as_str())),
                    "{kind:?}"
                );
                for link in kind.links() {
                    assert!(
                        out.text.contains(link.expose()),
                        "{kind:?} {locale:?} {}",
                        out.text
                    );
                    assert!(out.html.contains(link.expose()), "{kind:?} {locale:?}");
                }
                // The text body has no template syntax left and no HTML.
                assert!(!out.text.contains("{{") && !out.text.contains("<p>"));
            }
        }
    }

    #[test]
    fn english_and_spanish_differ_and_say_what_they_should() {
        let r = Renderer::new();
        let kind = &samples()[0];
        let en = r.render(Locale::En, kind).expect("en");
        let es = r.render(Locale::Es, kind).expect("es");
        assert_eq!(en.subject, "You're invited to join Lincoln <PTO> & Friends");
        assert_eq!(es.subject, "Le invitan a unirse a Lincoln <PTO> & Friends");
        assert!(
            en.text
                .contains("Ana López invited you to join Lincoln <PTO> & Friends")
        );
        assert!(
            es.text
                .contains("Ana López le ha invitado a unirse a Lincoln <PTO> & Friends")
        );
        assert!(en.html.contains("Accept the invitation"));
        assert!(es.html.contains("Aceptar la invitación"));
        // HTML escapes the variables; text does not.
        assert!(en.html.contains("Lincoln &lt;PTO&gt; &amp; Friends"));
        assert!(!en.html.contains("<PTO>"));
        let sign_in = r.render(Locale::Es, &samples()[4]).expect("es");
        assert!(
            sign_in.text.contains("Cuándo: 2026-12-06 05:30 UTC"),
            "{}",
            sign_in.text
        );
        assert!(sign_in.text.contains("Firefox on Linux"));
    }
}
