//! The site's pages, as plain HTML strings.
//!
//! Everything that comes from a user or from Keyport (emails, names, session
//! details, error messages, the return path) goes through [`escape`].

use std::{fmt::Write as _, time::SystemTime};

use keyport_client::{
    ApiKeyInfo, CreatedApiKey, Error, FactorStatus, InvitationInfo, Member, OrganizationInfo, Passkey, PasskeyCeremony,
    Principal, Reason, SessionSummary, TotpEnrollment,
};

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
.providers { margin-top: 1.5rem; border-top: 1px solid #d0d7de; padding-top: .5rem; }
.providers form { margin: .25rem 0; }
.reason { color: #57606a; font-size: .9rem; }
";

/// A configured sign-in provider: (id, display name), from `ListProviders`.
pub(crate) type Provider = (String, String);

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
<nav><a href="/">Home</a><a href="/dashboard">Dashboard</a><a href="/sessions">Sessions</a><a href="/organizations">Organizations</a><a href="/api-keys">API keys</a><a href="/admin">Admin</a>{who}</nav>
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
    /// "Sign in with ..." buttons, one per provider.
    pub(crate) providers: &'a [Provider],
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
{providers}
<p>Already have an account? <a href="/sign-in">Sign in</a>.</p>"#,
        error = message("error", form.error),
        providers = provider_buttons(form.providers),
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
    /// "Sign in with ..." buttons, one per provider.
    pub(crate) providers: &'a [Provider],
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
{providers}
<form method="post" action="/sign-in/passkey/start" class="providers">
<div><button type="submit">Sign in with a passkey</button></div>
</form>
<p><a href="/forgot-password">Forgot your password?</a></p>
<form method="post" action="/sign-in/email/start" class="providers">
<label for="code-email">Or get a sign-in code by mail</label>
<input id="code-email" name="email" type="email" autocomplete="username" required>
<div><button type="submit">Email me a code</button></div>
</form>
<p>No account yet? <a href="/sign-up">Sign up</a>.</p>"#,
        notice = message("notice", form.notice),
        providers = provider_buttons(form.providers),
        error = message("error", form.error),
        email = escape(form.email),
    );
    page("Sign in", user, &body)
}

/// "Sign in with ..." buttons for the sign-in and sign-up pages.
fn provider_buttons(providers: &[Provider]) -> String {
    let intro = "<p>Or use an account you have elsewhere (the first time, it creates your account here):</p>";
    provider_forms(providers, intro, "/oauth/start", "Sign in with")
}

/// After `intro`, one form per provider posting to `{action}/{id}`, its
/// button saying `{label} {name}`. Starting a flow sets a cookie, so it is
/// a `POST` (and the middleware's origin check applies), not a link.
fn provider_forms(providers: &[Provider], intro: &str, action: &str, label: &str) -> String {
    if providers.is_empty() {
        return String::new();
    }
    let mut out = format!("<div class=\"providers\">\n{intro}\n");
    for (id, name) in providers {
        let _ = writeln!(
            out,
            r#"<form method="post" action="{action}/{id}"><button type="submit">{label} {name}</button></form>"#,
            id = escape(id),
            name = escape(name),
        );
    }
    out.push_str("</div>");
    out
}

/// The display name of provider `id`, or the id itself.
pub(crate) fn provider_name<'a>(providers: &'a [Provider], id: &'a str) -> &'a str {
    providers.iter().find(|(known, _)| known == id).map_or(id, |(_, name)| name)
}

fn display_name(user: &Principal) -> &str {
    if user.name.is_empty() { &user.email } else { &user.name }
}

pub(crate) fn dashboard(user: &Principal, providers: &[Provider], notice: Option<&str>) -> String {
    let roles = if user.roles.is_empty() {
        "none".to_owned()
    } else {
        user.roles.iter().map(|role| format!("<code>{}</code>", escape(role))).collect::<Vec<_>>().join(" ")
    };
    let intro = "<h2>Sign-in methods</h2>\n<p>Link an account you have elsewhere to sign in here with it too.</p>";
    let link = provider_forms(providers, intro, "/oauth/link", "Link");
    let body = format!(
        r#"{notice}
<p>Hello, {name}. This page needs a session.</p>
<dl>
<dt>Email</dt><dd id="email">{email}</dd>
<dt>Email verified</dt><dd id="email-verified">{verified}</dd>
<dt>Name</dt><dd id="name">{name_or_dash}</dd>
<dt>Roles</dt><dd id="roles">{roles}</dd>
<dt>User id</dt><dd><code id="user-id">{user_id}</code></dd>
<dt>Session id</dt><dd><code id="session-id">{session_id}</code></dd>
<dt>Session expires unless used</dt><dd>{expires}</dd>
<dt>Two-step verification</dt><dd id="two-factor">{two_factor}</dd>
</dl>
<p><a href="/sessions">Manage your sessions</a> · <a href="/two-factor">Two-step verification</a></p>
{link}"#,
        notice = message("notice", notice),
        name = escape(display_name(user)),
        email = escape(&user.email),
        verified = if user.email_verified {
            "yes".to_owned()
        } else {
            r#"no <form class="inline" method="post" action="/verify-email/send"><button type="submit">Send me a verification link</button></form>"#.to_owned()
        },
        name_or_dash = if user.name.is_empty() { "—".to_owned() } else { escape(&user.name) },
        user_id = escape(&user.user_id),
        session_id = escape(&user.session_id),
        expires = date(user.expires_at),
        two_factor = match (user.two_factor_enabled, user.assurance) {
            (false, _) => "off",
            (true, keyport_client::Assurance::Aal2) => "on (this session passed it)",
            (true, _) => "on",
        },
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
/// `GET /forgot-password`, and the same form again after a refusal.
pub(crate) fn forgot_password(user: Option<&Principal>, email: &str, error: Option<&str>) -> String {
    let body = format!(
        r#"{error}
<p>Enter the email you sign in with. If an account has it, we mail it a link to choose a new password.</p>
<form method="post" action="/forgot-password">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{email}">
<div><button type="submit">Send me a link</button></div>
</form>"#,
        error = message("error", error),
        email = escape(email),
    );
    page("Forgot your password?", user, &body)
}

/// What `POST /forgot-password` answers for every address, known or not.
pub(crate) fn reset_link_sent(user: Option<&Principal>) -> String {
    let body = r#"<p class="notice" role="status">If an account has this address, a link to choose a new password is on its way. It works once, for an hour.</p>
<p><a href="/sign-in">Back to sign-in</a></p>"#;
    page("Check your mail", user, body)
}

/// `GET /reset-password?token=...`: the new-password form, carrying the token.
pub(crate) fn reset_password(user: Option<&Principal>, token: &str, error: Option<&str>) -> String {
    let body = format!(
        r#"{error}
<form method="post" action="/reset-password">
<input type="hidden" name="token" value="{token}">
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="8">
<div><button type="submit">Set my new password</button></div>
</form>
<p>Setting it signs you out everywhere.</p>"#,
        error = message("error", error),
        token = escape(token),
    );
    page("Choose a new password", user, &body)
}

/// `GET /sign-in/email`: the code form, after `StartEmailSignIn`.
pub(crate) fn email_code(user: Option<&Principal>, error: Option<&str>) -> String {
    let body = format!(
        r#"{error}
<p>If an account has this address, a six-digit code and a link are on their way. Enter the code here, or open the link in this browser. Both work once, for 10 minutes.</p>
<form method="post" action="/sign-in/email">
<label for="code">Code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
<div><button type="submit">Sign in with the code</button></div>
</form>"#,
        error = message("error", error),
    );
    page("Check your mail", user, &body)
}

/// The second step of a sign-in: the authenticator app's code or a backup code.
pub(crate) fn second_factor(user: Option<&Principal>, passkey_options: Option<&str>, error: Option<&str>) -> String {
    // The passkey answers the challenge's own request, carried in its cookie.
    let passkey = passkey_options
        .map(|options| {
            format!(
                r#"<form method="post" action="/sign-in/second-factor" class="providers">
<input type="hidden" name="credential">
<div><button type="button" data-passkey="get" data-options="{options}">Use a passkey</button></div>
</form>{PASSKEY_SCRIPT}"#,
                options = escape(options),
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"{error}{problem}
<p>Your account has two-step verification. Enter the six-digit code your authenticator app shows, or one of your backup codes.</p>
<form method="post" action="/sign-in/second-factor">
<label for="code">Code</label>
<input id="code" name="code" type="text" autocomplete="one-time-code" required>
<div><button type="submit">Continue</button></div>
</form>{passkey}"#,
        error = message("error", error),
        problem = PASSKEY_PROBLEM,
    );
    page("Two-step verification", user, &body)
}

/// `/two-factor`: whether the authenticator app is on, and the button to
/// change that.
pub(crate) fn two_factor(user: &Principal, status: &FactorStatus) -> String {
    let body = if status.totp_enabled {
        format!(
            r#"<p id="two-factor-status">On. {left} backup codes left.</p>
<form method="post" action="/two-factor/disable"><button type="submit">Turn two-step verification off</button></form>"#,
            left = status.backup_codes_left
        )
    } else {
        r#"<p id="two-factor-status">Off.</p>
<form method="post" action="/two-factor/enroll"><button type="submit">Set up an authenticator app</button></form>"#
            .to_owned()
    };
    let passkeys =
        format!(r#"<p id="passkey-count">Passkeys: {}. <a href="/passkeys">Manage passkeys</a></p>"#, status.passkeys);
    page("Two-step verification", Some(user), &format!("{body}{passkeys}"))
}

/// The QR code of a started enrolment and the form for its first code.
pub(crate) fn totp_enrollment(user: &Principal, enrollment: &TotpEnrollment, error: Option<&str>) -> String {
    use base64::Engine as _;
    let svg = base64::engine::general_purpose::STANDARD.encode(&enrollment.qr_code_svg);
    let body = format!(
        r#"{error}
<p>Scan this code with your authenticator app, or type the key by hand.</p>
<p><img id="totp-qr" alt="QR code of the key" width="200" height="200" src="data:image/svg+xml;base64,{svg}"></p>
<p>Key: <code id="totp-secret">{secret}</code></p>
<form method="post" action="/two-factor/confirm">
<label for="code">The six-digit code the app shows</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
<div><button type="submit">Turn on</button></div>
</form>"#,
        error = message("error", error),
        secret = escape(&enrollment.secret),
    );
    page("Set up an authenticator app", Some(user), &body)
}

/// The backup codes, shown once.
pub(crate) fn backup_codes(user: &Principal, codes: &[String]) -> String {
    let items: String = codes.iter().map(|code| format!("<li><code>{}</code></li>", escape(code))).collect();
    let body = format!(
        r#"<p>Two-step verification is on. Keep these backup codes somewhere safe: each signs you in once if you lose your phone. They are not shown again.</p>
<ul id="backup-codes">{items}</ul>
<p><a href="/dashboard">Dashboard</a></p>"#
    );
    page("Your backup codes", Some(user), &body)
}

/// The step-up form: a code again before a sensitive page.
pub(crate) fn step_up(user: &Principal, return_to: Option<&str>, error: Option<&str>) -> String {
    let body = format!(
        r#"{error}
<p>This needs a fresh two-step verification. Enter the code your authenticator app shows, or a backup code.</p>
<form method="post" action="/sign-in/step-up">
<input type="hidden" name="return_to" value="{return_to}">
<label for="code">Code</label>
<input id="code" name="code" type="text" autocomplete="one-time-code" required>
<div><button type="submit">Continue</button></div>
</form>
<form method="post" action="/sign-in/step-up/passkey" class="providers">
<input type="hidden" name="return_to" value="{return_to}">
<div><button type="submit">Use a passkey instead</button></div>
</form>"#,
        error = message("error", error),
        return_to = escape(return_to.unwrap_or_default()),
    );
    page("Verify it is you", Some(user), &body)
}

/// A started passkey step-up: the button that asks the passkey.
pub(crate) fn step_up_passkey(user: &Principal, return_to: Option<&str>, ceremony: &PasskeyCeremony) -> String {
    let body = format!(
        r#"{problem}<p>Confirm it is you with one of your passkeys.</p>
<form method="post" action="/sign-in/step-up">
<input type="hidden" name="return_to" value="{return_to}">
<input type="hidden" name="ceremony" value="{ceremony}">
<input type="hidden" name="credential">
<div><button type="button" data-passkey="get" data-options="{options}">Use my passkey</button></div>
</form>{PASSKEY_SCRIPT}"#,
        problem = PASSKEY_PROBLEM,
        return_to = escape(return_to.unwrap_or_default()),
        ceremony = escape(&ceremony.ceremony),
        options = escape(&ceremony.options),
    );
    page("Verify it is you", Some(user), &body)
}

/// A started passkey sign-in: the button that asks for any passkey of this
/// site (the ceremony is in a cookie).
pub(crate) fn passkey_sign_in(user: Option<&Principal>, options: &str) -> String {
    let body = format!(
        r#"{problem}<p>Pick one of your passkeys for this site; no email or password needed.</p>
<form method="post" action="/sign-in/passkey">
<input type="hidden" name="credential">
<div><button type="button" data-passkey="get" data-options="{options}">Continue with a passkey</button></div>
</form>
<p><a href="/sign-in">Back to the other ways to sign in</a></p>{PASSKEY_SCRIPT}"#,
        problem = PASSKEY_PROBLEM,
        options = escape(options),
    );
    page("Sign in with a passkey", user, &body)
}

/// `/passkeys`: the user's passkeys, with rename and delete forms, and the
/// button that adds one.
pub(crate) fn passkeys(user: &Principal, passkeys: &[Passkey], notice: Option<&str>) -> String {
    let rows: String = passkeys
        .iter()
        .map(|passkey| {
            let used = passkey.last_used_at.map_or("never".to_owned(), date);
            format!(
                r#"<li class="passkey"><strong>{name}</strong> (last used: {used}{synced})
<form class="inline" method="post" action="/passkeys/rename"><input type="hidden" name="id" value="{id}"><input name="name" aria-label="New name for {name}" required maxlength="64"><button type="submit">Rename</button></form>
<form class="inline" method="post" action="/passkeys/delete"><input type="hidden" name="id" value="{id}"><button type="submit">Delete {name}</button></form></li>"#,
                name = escape(&passkey.name),
                id = escape(&passkey.id),
                synced = if passkey.backed_up { ", synced" } else { "" },
            )
        })
        .collect();
    let list = if rows.is_empty() {
        "<p id=\"no-passkeys\">No passkeys yet.</p>".to_owned()
    } else {
        format!("<ul id=\"passkeys\">{rows}</ul>")
    };
    let body = format!(
        r#"{notice}{list}
<form method="post" action="/passkeys/start"><button type="submit">Add a passkey</button></form>
<p><a href="/two-factor">Two-step verification</a></p>"#,
        notice = message("notice", notice),
    );
    page("Passkeys", Some(user), &body)
}

/// A started registration: a name, and the button that creates the passkey.
pub(crate) fn passkey_registration(user: &Principal, ceremony: &PasskeyCeremony) -> String {
    let body = format!(
        r#"{problem}<form method="post" action="/passkeys">
<input type="hidden" name="ceremony" value="{ceremony}">
<input type="hidden" name="credential">
<label for="passkey-name">Name (optional)</label>
<input id="passkey-name" name="name" maxlength="64" placeholder="Laptop">
<div><button type="button" data-passkey="create" data-options="{options}">Create the passkey</button></div>
</form>{PASSKEY_SCRIPT}"#,
        problem = PASSKEY_PROBLEM,
        ceremony = escape(&ceremony.ceremony),
        options = escape(&ceremony.options),
    );
    page("Add a passkey", Some(user), &body)
}

/// Where the passkey script says the browser refused.
const PASSKEY_PROBLEM: &str = r#"<p id="passkey-error" class="error" role="alert" hidden></p>"#;

/// Runs a ceremony on a `data-passkey` button's click: the server's options
/// (`data-options`, WebAuthn's JSON form) to the browser, and the browser's
/// answer (`toJSON()`) into the form's `credential` field, which it submits.
const PASSKEY_SCRIPT: &str = r#"
<script>
for (const button of document.querySelectorAll('[data-passkey]')) {
  button.addEventListener('click', async () => {
    const form = button.closest('form');
    // webauthn-rs writes absent members as null; WebAuthn wants them absent.
    const options = JSON.parse(button.dataset.options, (key, value) => (value === null ? undefined : value));
    try {
      const credential = button.dataset.passkey === 'create'
        ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
        : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
      form.elements.credential.value = JSON.stringify(credential.toJSON());
      form.submit();
    } catch (error) {
      const problem = document.getElementById('passkey-error');
      problem.textContent = `The passkey did not answer (${error.name}). Try again.`;
      problem.hidden = false;
    }
  });
}
</script>"#;

/// A page saying something went well.
pub(crate) fn done(user: Option<&Principal>, title: &str, text: &str) -> String {
    let body = format!(r#"{}<p><a href="/dashboard">Dashboard</a></p>"#, message("notice", Some(text)));
    page(title, user, &body)
}

/// A problem page with a link to what to do next.
pub(crate) fn problem_with_link(user: Option<&Principal>, title: &str, text: &str, href: &str, how: &str) -> String {
    let body = format!(r#"<p>{}</p><p><a href="{}">{}</a></p>"#, escape(text), escape(href), escape(&capitalised(how)));
    page(title, user, &body)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub(crate) fn problem(user: Option<&Principal>, title: &str, text: &str) -> String {
    let body = format!(r#"{}<p><a href="/">Home</a></p>"#, message("error", Some(text)));
    page(title, user, &body)
}

/// A social sign-in (or link) that failed: why, for people, and what to do.
/// Returns the HTTP status and the page.
///
/// `provider_said` is the callback's `error` parameter, if any;
/// `callback` is this site's redirect URI (named when Keyport refuses it).
pub(crate) fn oauth_failed(
    user: Option<&Principal>,
    error: &Error,
    provider_said: Option<&str>,
    callback: &str,
) -> (u16, String) {
    let code = match error.reason() {
        Reason::SessionExpired => "UNAUTHENTICATED",
        Reason::ResourceExhausted => "UNAVAILABLE",
        reason => reason.as_str(),
    };
    let (status, text) = match code {
        "OAUTH_PROVIDER_ERROR" => match provider_said.filter(|said| !said.is_empty()) {
            Some(said) => (403, format!("The provider did not sign you in: it answered \u{201c}{said}\u{201d}.")),
            None => (502, "The provider could not confirm who you are. Try again.".to_owned()),
        },
        "OAUTH_STATE_INVALID" => (
            400,
            "This sign-in expired, was already used, or was started in another browser (or at another address of \
             this site). Start again."
                .to_owned(),
        ),
        "OAUTH_ID_TOKEN_INVALID" => {
            (502, "The provider's answer could not be verified, so nobody was signed in. Try again.".to_owned())
        }
        "ACCOUNT_LINK_REFUSED" => (
            409,
            "An account with this email already exists here. Sign in to it with your password, then link the \
             provider from your dashboard."
                .to_owned(),
        ),
        "ALREADY_LINKED" => (409, "That account at the provider is already linked to another user here.".to_owned()),
        "OAUTH_PROVIDER_UNKNOWN" => (404, "There is no such sign-in provider.".to_owned()),
        "REDIRECT_URI_NOT_ALLOWED" => (
            500,
            format!(
                "Keyport does not allow this site's callback URL {callback}: add it to redirect_uris in the [oauth] \
                 section of Keyport's configuration (or set PUBLIC_URL to the address the site is served at)."
            ),
        ),
        "UNAUTHENTICATED" => (401, "Your session ended. Sign in again.".to_owned()),
        "RATE_LIMITED" => (429, "Too many attempts. Wait a little and try again.".to_owned()),
        _ => (503, "Signing in is unavailable right now. Try again shortly.".to_owned()),
    };
    let back = if user.is_some() {
        r#"<a href="/dashboard">Back to your dashboard</a>"#
    } else {
        r#"<a href="/sign-in">Back to sign in</a>"#
    };
    let reason = if code.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="reason">Reason: <code id="reason">{}</code></p>"#, escape(code))
    };
    let body = format!("{}{reason}<p>{back}</p>", message("error", Some(&text)));
    (status, page("Sign-in failed", user, &body))
}

/// The caller's API keys, a form to make one, and, just made, its secret.
pub(crate) fn api_keys(
    user: &Principal,
    keys: &[ApiKeyInfo],
    created: Option<&CreatedApiKey>,
    error: Option<&str>,
) -> String {
    let rows: String = keys
        .iter()
        .map(|key| {
            let used = key.last_used_at.map_or("never".to_owned(), date);
            let expires = key.expires_at.map_or("never".to_owned(), date);
            format!(
                r#"<tr class="api-key"><td>{name}</td><td><code>{scopes}</code></td><td>{used}</td><td>{expires}</td>
<td><form class="inline" method="post" action="/api-keys/revoke"><input type="hidden" name="id" value="{id}"><button type="submit">Revoke {name}</button></form></td></tr>"#,
                name = escape(&key.name),
                scopes = escape(&key.scopes.join(" ")),
                id = escape(&key.id),
            )
        })
        .collect();
    let list = if rows.is_empty() {
        "<p id=\"no-api-keys\">No API keys yet.</p>".to_owned()
    } else {
        format!(
            "<table id=\"api-keys\"><tr><th>Name</th><th>Scopes</th><th>Last used</th><th>Expires</th><th></th></tr>{rows}</table>"
        )
    };
    let shown = created
        .map(|created| {
            format!(
                r#"<p class="notice" role="alert">Key <strong>{name}</strong> created. Copy it now: it is shown only once.</p>
<p><code id="api-key-secret">{secret}</code></p>"#,
                name = escape(&created.key.name),
                secret = escape(&created.secret),
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"{problem}{shown}{list}
<h2>New key</h2>
<form method="post" action="/api-keys">
<label for="key-name">Name</label><input type="text" id="key-name" name="name" required maxlength="64">
<label for="key-scope">Scope</label><select id="key-scope" name="scope"><option value="notes:read">notes:read</option><option value="notes:write">notes:write</option></select>
<button type="submit">Create key</button>
</form>
<p>Use a key as <code>Authorization: Bearer kpa_...</code> on <code>/api/notes</code>.</p>"#,
        problem = message("error", error),
    );
    page("API keys", Some(user), &body)
}

/// The caller's organizations, the active one, and the forms to make one,
/// switch, and accept an invitation.
pub(crate) fn organizations(
    user: &Principal,
    organizations: &[OrganizationInfo],
    invitation: &str,
    error: Option<&str>,
) -> String {
    let active = user.active_organization_id.as_deref();
    let rows: String = organizations
        .iter()
        .map(|organization| {
            let current = active == Some(organization.id.as_str());
            let switch = if current {
                "<strong class=\"active\">active</strong>".to_owned()
            } else {
                format!(
                    r#"<form class="inline" method="post" action="/organizations/switch"><input type="hidden" name="id" value="{id}"><button type="submit">Switch to {name}</button></form>"#,
                    id = escape(&organization.id),
                    name = escape(&organization.name),
                )
            };
            format!(
                r#"<tr class="organization"><td><a href="/organizations/members?id={id}">{name}</a></td><td>{role}</td><td>{switch}</td></tr>"#,
                id = escape(&organization.id),
                name = escape(&organization.name),
                role = escape(&organization.role),
            )
        })
        .collect();
    let list = if rows.is_empty() {
        "<p id=\"no-organizations\">No organizations yet.</p>".to_owned()
    } else {
        format!("<table id=\"organizations\"><tr><th>Organization</th><th>Your role</th><th></th></tr>{rows}</table>")
    };
    let body = format!(
        r#"{problem}{list}
<h2>New organization</h2>
<form method="post" action="/organizations">
<label for="org-name">Name</label><input type="text" id="org-name" name="name" required maxlength="64">
<label for="org-slug">Slug</label><input type="text" id="org-slug" name="slug" required maxlength="64">
<button type="submit">Create organization</button>
</form>
<h2>Accept an invitation</h2>
<form method="post" action="/invitations/accept">
<label for="invitation-id">Invitation id</label><input type="text" id="invitation-id" name="id" value="{invitation}" required>
<button type="submit">Accept invitation</button>
</form>"#,
        problem = message("error", error),
        invitation = escape(invitation),
    );
    page("Organizations", Some(user), &body)
}

/// An organization's members and, for its managers, the pending
/// invitations and the form to invite.
pub(crate) fn members(
    user: &Principal,
    organization_id: &str,
    members: &[Member],
    invitations: Option<&[InvitationInfo]>,
    notice: Option<&str>,
) -> String {
    let rows: String = members
        .iter()
        .map(|member| {
            format!(
                r#"<tr class="member"><td>{email}</td><td>{role}</td></tr>"#,
                email = escape(&member.email),
                role = escape(&member.role)
            )
        })
        .collect();
    let invitations = invitations
        .map(|invitations| {
            let pending: String = invitations
                .iter()
                .map(|invitation| {
                    format!(
                        r#"<li class="invitation">{email} as {role}: <code>{id}</code> (until {until})</li>"#,
                        email = escape(&invitation.email),
                        role = escape(&invitation.role),
                        id = escape(&invitation.id),
                        until = date(invitation.expires_at),
                    )
                })
                .collect();
            format!(
                r#"<h2>Invitations</h2><ul id="invitations">{pending}</ul>
<form method="post" action="/organizations/invite">
<input type="hidden" name="organization" value="{organization}">
<label for="invite-email">Email</label><input type="email" id="invite-email" name="email" required>
<label for="invite-role">Role</label><select id="invite-role" name="role"><option value="member">member</option><option value="admin">admin</option></select>
<button type="submit">Invite</button>
</form>"#,
                organization = escape(organization_id),
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"{notice}<table id="members"><tr><th>Member</th><th>Role</th></tr>{rows}</table>{invitations}
<p><a href="/organizations">All organizations</a></p>"#,
        notice = message("notice", notice),
    );
    page("Members", Some(user), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
