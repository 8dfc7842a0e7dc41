//! Signing in with a link or a code sent to the address, instead of a
//! password.
//!
//! `start_email_sign_in` answers at once with a binding for the browser's
//! cookie, whatever the address; the lookup and the mail happen afterwards
//! (the same answer and time for every address, as for a password reset).
//! `finish_email_sign_in` takes the binding and the link's token or the
//! code: each proof counts one of [`MAX_ATTEMPTS`], reserved before it is
//! checked, and the sign-in is used up by the one call that succeeds.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::Accounts;
use super::SignedIn;
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::Timestamp,
    email::Email,
    error::{Error, Result},
    mail::{
        MailKind, MailToken,
        sign_in::{EmailSignIn, MAX_ATTEMPTS, SignInProof, code_hash, new_code},
        templates::MailContext,
    },
    oauth::secret_hash,
    session::{ClientInfo, SessionGrant},
    store::{SessionBasis, StoreError},
    throttle::budget::PublicAction,
    user::{DEFAULT_ROLE, User, UserId},
};

/// Longest binding accepted; a real one is 43 characters.
const MAX_BINDING_LEN: usize = 64;

/// A started email sign-in, as handed to the web app.
#[derive(Debug, Clone)]
pub struct StartedEmailSignIn {
    /// The secret to keep in a cookie of the browser that asked; the
    /// sign-in finishes only with it.
    pub binding: String,
    /// When the link and the code stop working.
    pub expires_at: Timestamp,
}

/// A finished email sign-in: a session, or a challenge when the user has a
/// second factor.
#[derive(Debug)]
pub struct EmailSignedIn {
    /// The new session, or the challenge.
    pub signed_in: SignedIn,
    /// Whether this sign-in created the account (`[sign_up] by_email`).
    pub new_user: bool,
}

impl Accounts {
    /// Mails `email` a link and a code that sign in, if an account has the
    /// address or sign-up by email is on; answers the same either way.
    pub async fn start_email_sign_in(&self, email: &str, client: &ClientInfo) -> Result<StartedEmailSignIn> {
        let settings = self.mail_settings()?;
        self.admit(PublicAction::StartEmailSignIn, client).await?;
        let email = Email::parse("email", email)?;
        let now = self.clock.now();
        let ttl = settings.sign_in_ttl;
        let binding = random_secret()?;
        let (token, code) = (MailToken::generate()?, new_code()?);
        let started = EmailSignIn {
            binding_hash: secret_hash(&binding),
            email,
            link_hash: token.hash(),
            code_hash: code_hash(&binding, &code),
            attempts: 0,
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        let expires_at = started.expires_at;
        self.detached(client, move |accounts, _client| async move {
            let owner = accounts.user_store().find_user_by_email(&started.email).await?;
            let name = match &owner {
                Some(owner) => owner.name.clone(),
                None if accounts.config.sign_up_by_email => String::new(),
                None => return Ok(()),
            };
            if accounts.throttle.admit_mail_to(&started.email).await.is_err() {
                return Ok(());
            }
            let settings = accounts.mail_settings()?;
            let link = settings.link(&settings.sign_in_path, &token);
            let context = MailContext {
                organization: "",
                email: started.email.as_str(),
                name: &name,
                link: &link,
                code: &code,
                expires_in: ttl,
            };
            let mail = accounts.render(settings, MailKind::SignIn, &started.email, &context)?;
            accounts.email_sign_in_store().create_email_sign_in(&started, &mail).await?;
            accounts.mail_queued.notify_one();
            Ok(())
        })
        .await?;
        Ok(StartedEmailSignIn { binding, expires_at })
    }

    /// Finishes an email sign-in with its `binding` and the link's token or
    /// the code; creates the account first when sign-up by email is on and
    /// the address has none. The address counts as verified from then on.
    pub async fn finish_email_sign_in(
        &self,
        binding: &str,
        proof: SignInProof<'_>,
        client: &ClientInfo,
    ) -> Result<EmailSignedIn> {
        self.admit(PublicAction::UseEmailToken, client).await?;
        if binding.is_empty() || binding.len() > MAX_BINDING_LEN {
            return Err(Error::EmailTokenInvalid);
        }
        let binding_hash = secret_hash(binding);
        let now = self.clock.now();
        let started =
            self.email_sign_in_store().reserve_email_sign_in_attempt(&binding_hash, MAX_ATTEMPTS, now).await?;
        let started = started.ok_or(Error::EmailTokenInvalid)?;
        if !started.accepts(binding, proof) {
            let audit = AuditEvent::new(AuditKind::EmailSignInFailed, now, client)
                .detail(format!("attempt:{}", started.attempts));
            self.audit_store().record_audit(&audit).await?;
            return Err(Error::EmailTokenInvalid);
        }
        // Of parallel calls with the right proof, the one that deletes it wins.
        let taken = self.email_sign_in_store().take_email_sign_in(&binding_hash).await?;
        let taken = taken.ok_or(Error::EmailTokenInvalid)?;
        match self.user_store().find_user_by_email(&taken.email).await? {
            Some(user) => self.mailbox_session(user, &taken.email, client).await,
            None if self.config.sign_up_by_email => self.mailbox_sign_up(taken.email, client).await,
            None => Err(Error::EmailTokenInvalid),
        }
    }

    async fn mailbox_session(&self, user: User, email: &Email, client: &ClientInfo) -> Result<EmailSignedIn> {
        let basis = SessionBasis::Mailbox { email };
        if let Some(challenge) = self.challenge_for(&user, "email", basis, Error::EmailTokenInvalid, client).await? {
            return Ok(EmailSignedIn { signed_in: SignedIn::Challenge(challenge), new_user: false });
        }
        let (token, session) = self.new_session(&user, client)?;
        let audit =
            AuditEvent::new(AuditKind::EmailSignIn, session.created_at, client).user(user.id).session(&session.id);
        // On its own task, as a password sign-in's: a caller that goes away
        // cannot leave the transaction open with the user's row locked.
        let created = {
            let (accounts, session, email) = (self.clone(), session.clone(), email.clone());
            self.to_completion(async move {
                let basis = SessionBasis::Mailbox { email: &email };
                Ok(accounts.session_store().create_session(&session, basis, &audit).await?)
            })
            .await?
        };
        // The user went, or changed address, since the mail was sent.
        if !created {
            return Err(self.refused_sign_in(user.id, Error::EmailTokenInvalid).await?);
        }
        let user = User { email_verified: true, ..user };
        let grant = SessionGrant { token: token.expose(), session, user };
        Ok(EmailSignedIn { signed_in: SignedIn::Session(grant), new_user: false })
    }

    async fn mailbox_sign_up(&self, email: Email, client: &ClientInfo) -> Result<EmailSignedIn> {
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(now),
            email,
            name: String::new(),
            email_verified: true,
            roles: vec![DEFAULT_ROLE.to_owned()],
            created_at: now,
            updated_at: now,
            two_factor_enabled: false,
            ban: None,
        };
        let (token, session) = self.new_session(&user, client)?;
        let audit = AuditEvent::new(AuditKind::EmailSignUp, now, client).user(user.id).session(&session.id);
        match self.user_store().create_mailbox_user(&user, &session, &audit).await {
            Ok(()) => {
                let grant = SessionGrant { token: token.expose(), session, user };
                Ok(EmailSignedIn { signed_in: SignedIn::Session(grant), new_user: true })
            }
            // Someone signed up with the address meanwhile: this mail proves
            // the mailbox of that account too.
            Err(StoreError::Conflict(_)) => {
                let owner = self.user_store().find_user_by_email(&user.email).await?.ok_or(Error::EmailTokenInvalid)?;
                self.mailbox_session(owner, &user.email, client).await
            }
            Err(other) => Err(other.into()),
        }
    }
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
