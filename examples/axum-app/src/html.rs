//! The site's pages, as plain HTML strings.
//!
//! Everything that comes from a user or from Keyport (emails, names, session
//! details, error messages, the return path) goes through [`escape`].

use std::{fmt::Write as _, time::SystemTime};

use keyport_client::{Principal, SessionSummary};

/// Escapes text for an HTML element or a double-quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; }
nav { display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid #d0d7de; padding-bottom: .75rem; }
nav .who { margin-left: auto; color: #57606a; }
form.inline { display: inline; }
label { display: block; margin: .75rem 0 .25rem; }
input[type=email], input[type=password], input[type=text] { width: 20rem; padding: .35rem; }
button { margin-top: .75rem; padding: .35rem .9rem; cursor: pointer; }
nav button { margin-top: 0; }
.error { background: #ffebe9; border: 1px solid #ff8182; padding: .5rem .75rem; border-radius: 6px; }
.notice { background: #dafbe1; border: 1px solid #4ac26b; padding: .5rem .75rem; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
table { font-size: .9rem; }
td code { white-space: nowrap; }
dt { font-weight: 600; margin-top: .5rem; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }
";

/// A whole page: head, navigation (with who is signed in), then `body`.
pub(crate) fn page(title: &str, user: Option<&Principal>, body: &str) -> String {
    let who = match user {
        Some(user) => format!(
            r#"<span class="who">Signed in as <strong>{}</strong></span>
<form class="inline" method="post" action="/sign-out"><button type="submit">Sign out</button></form>"#,
            escape(&user.email)
        ),
        None => {
            r#"<span class="who"><a href="/sign-in">Sign in</a> · <a href="/sign-up">Sign up</a></span>"#.to_owned()
        }
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Keyport example</title>
<style>{STYLE}</style>
</head>
<body>
<nav><a href="/">Home</a><a href="/dashboard">Dashboard</a><a href="/sessions">Sessions</a><a href="/admin">Admin</a>{who}</nav>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

fn message(class: &str, text: Option<&str>) -> String {
    text.map(|text| format!(r#"<p class="{class}" role="alert">{}</p>"#, escape(text))).unwrap_or_default()
}

pub(crate) fn home(user: Option<&Principal>) -> String {
    let body = match user {
        Some(user) => format!(
            r#"<p>Welcome back, {}.</p>
<ul>
<li><a href="/dashboard">Your dashboard</a></li>
<li><a href="/sessions">Your sessions</a>: where you are signed in</li>
<li><a href="/admin">Admin</a> (needs the <code>admin</code> role)</li>
</ul>"#,
            escape(display_name(user))
        ),
        None => r#"<p>A small site whose accounts and sessions live in Keyport.</p>
<ul>
<li><a href="/sign-up">Create an account</a></li>
<li><a href="/sign-in">Sign in</a></li>
<li><a href="/dashboard">Dashboard</a> (sends you to sign in first)</li>
</ul>"#
            .to_owned(),
    };
    page("Keyport example", user, &body)
}

/// What the sign-up form shows again after a failed attempt.
#[derive(Debug, Default)]
pub(crate) struct SignUpForm<'a> {
    pub(crate) email: &'a str,
    pub(crate) name: &'a str,
    pub(crate) error: Option<&'a str>,
}

pub(crate) fn sign_up(user: Option<&Principal>, form: &SignUpForm<'_>) -> String {
    let body = format!(
        r#"{error}
<form method="post" action="/sign-up">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" required value="{email}">
<label for="name">Name</label>
<input id="name" name="name" type="text" autocomplete="name" value="{name}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required>
<div><button type="submit">Create account</button></div>
</form>
<p>Already have an account? <a href="/sign-in">Sign in</a>.</p>"#,
        error = message("error", form.error),
        email = escape(form.email),
        name = escape(form.name),
    );
    page("Sign up", user, &body)
}

/// What the sign-in form shows.
#[derive(Debug, Default)]
pub(crate) struct SignInForm<'a> {
    pub(crate) email: &'a str,
    /// A validated return path, carried through the form.
    pub(crate) return_to: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    pub(crate) notice: Option<&'a str>,
}

pub(crate) fn sign_in(user: Option<&Principal>, form: &SignInForm<'_>) -> String {
    let return_to = form
        .return_to
        .map(|path| format!(r#"<input type="hidden" name="return_to" value="{}">"#, escape(path)))
        .unwrap_or_default();
    let already = user
        .map(|user| {
            format!(
                "<p>You are already signed in as {}. Signing in again replaces that session in this browser.</p>",
                escape(&user.email)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"{notice}{error}{already}
<form method="post" action="/sign-in">
{return_to}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{email}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<div><button type="submit">Sign in</button></div>
</form>
<p>No account yet? <a href="/sign-up">Sign up</a>.</p>"#,
        notice = message("notice", form.notice),
        error = message("error", form.error),
        email = escape(form.email),
    );
    page("Sign in", user, &body)
}

fn display_name(user: &Principal) -> &str {
    if user.name.is_empty() { &user.email } else { &user.name }
}

pub(crate) fn dashboard(user: &Principal) -> String {
    let roles = if user.roles.is_empty() {
        "none".to_owned()
    } else {
        user.roles.iter().map(|role| format!("<code>{}</code>", escape(role))).collect::<Vec<_>>().join(" ")
    };
    let body = format!(
        r#"<p>Hello, {name}. This page needs a session.</p>
<dl>
<dt>Email</dt><dd id="email">{email}</dd>
<dt>Name</dt><dd id="name">{name_or_dash}</dd>
<dt>Roles</dt><dd id="roles">{roles}</dd>
<dt>User id</dt><dd><code>{user_id}</code></dd>
<dt>Session id</dt><dd><code id="session-id">{session_id}</code></dd>
<dt>Session expires unless used</dt><dd>{expires}</dd>
</dl>
<p><a href="/sessions">Manage your sessions</a></p>"#,
        name = escape(display_name(user)),
        email = escape(&user.email),
        name_or_dash = if user.name.is_empty() { "—".to_owned() } else { escape(&user.name) },
        user_id = escape(&user.user_id),
        session_id = escape(&user.session_id),
        expires = date(user.expires_at),
    );
    page("Dashboard", Some(user), &body)
}

pub(crate) fn sessions(user: &Principal, sessions: &[SessionSummary], notice: Option<&str>) -> String {
    let mut rows = String::new();
    for session in sessions {
        let action = if session.current {
            "<strong>This browser</strong>".to_owned()
        } else {
            format!(
                r#"<form class="inline" method="post" action="/sessions/revoke">
<input type="hidden" name="session_id" value="{id}">
<button type="submit">Revoke</button></form>"#,
                id = escape(&session.id)
            )
        };
        let _ = writeln!(
            rows,
            r#"<tr data-session-id="{id}"><td><code>{id}</code></td><td>{created}</td><td>{ip}</td><td>{agent}</td><td>{action}</td></tr>"#,
            id = escape(&session.id),
            created = date(session.created_at),
            ip = escape(if session.ip_address.is_empty() { "—" } else { &session.ip_address }),
            agent = escape(if session.user_agent.is_empty() { "—" } else { &session.user_agent }),
        );
    }
    let others = sessions.iter().filter(|session| !session.current).count();
    let everywhere_else = if others > 0 {
        r#"<form method="post" action="/sessions/revoke-others"><button type="submit">Sign out everywhere else</button></form>"#
    } else {
        "<p>You are signed in nowhere else.</p>"
    };
    let body = format!(
        r#"{notice}
<p>You have {count} active session{plural}.</p>
<table>
<thead><tr><th>Session</th><th>Signed in</th><th>Address</th><th>Browser</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
{everywhere_else}"#,
        notice = message("notice", notice),
        count = sessions.len(),
        plural = if sessions.len() == 1 { "" } else { "s" },
    );
    page("Your sessions", Some(user), &body)
}

pub(crate) fn admin(user: &Principal) -> String {
    let body = format!(
        "<p>Hello, {}. Only users with the <code>admin</code> role see this page.</p>",
        escape(display_name(user))
    );
    page("Admin", Some(user), &body)
}

/// A page for a failure that has no form to go back to.
pub(crate) fn problem(user: Option<&Principal>, title: &str, text: &str) -> String {
    let body = format!(r#"{}<p><a href="/">Home</a></p>"#, message("error", Some(text)));
    page(title, user, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
