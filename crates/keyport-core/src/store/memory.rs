//! [`MemoryStore`]: every storage area in one process's memory.
//!
//! For unit tests of the use cases (with a [`ManualClock`](crate::ManualClock))
//! and for examples; it keeps nothing across restarts and shares nothing
//! between processes. It keeps the rules the SQL store's schema and
//! transactions keep: emails and linked identities are unique, an OAuth flow
//! is taken once, deleting a user deletes their password, sessions and
//! linked accounts, and writes about a user who is gone are refused. Every
//! call holds one lock for its whole work, which makes it one transaction.
//!
//! Session events are not sent anywhere: there are no other replicas to
//! tell, and [`crate::Accounts`] applies and publishes them itself.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;

use super::{
    Acceptance, ApiKeyStore, AuditQuery, AuditStore, CreateRefusal, Credentials, EmailChange, EmailSignInStore,
    EmailTokenStore, FactorStore, KeyRefusal, MailStore, MemberChange, OAuthStore, OrganizationStore, PasskeyStore,
    RoleStore, SessionBasis, SessionStore, SigningKeyStore, Store, StoreError, StoreResult, StoredAudit, StoredRole,
    TotpFactor, UnlinkOutcome, UserQuery, UserStore,
};
use crate::{
    access_token::StoredSigningKey,
    api_key::{ApiKey, ApiKeyId, KeyHolder, KeyOwner, ServiceAccount, ServiceAccountId},
    audit::AuditEvent,
    clock::Timestamp,
    email::Email,
    events::SessionEvent,
    mail::{EmailToken, Mail, QueuedMail, TokenPurpose, sign_in::EmailSignIn},
    oauth::{LinkedAccount, OAuthFlow},
    organization::{ADMIN, Invitation, InvitationId, Membership, OWNER, Organization, OrganizationId},
    second_factor::{
        Assurance, Ceremony, CeremonyPurpose, FactorUse, PasskeyId, PasskeyUse, SealedSecret, SignInChallenge,
        StoredPasskey, TotpStep,
    },
    session::Session,
    token::SessionId,
    user::{Ban, User, UserId},
};

/// Most sessions [`SessionStore::list_sessions`] returns, as in the SQL store.
const LIST_SESSIONS_LIMIT: usize = 1000;

/// Users, sessions, OAuth flows, linked accounts and the audit trail in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    users: HashMap<UserId, User>,
    passwords: HashMap<UserId, String>,
    sessions: HashMap<SessionId, Session>,
    accounts: Vec<LinkedAccount>,
    flows: HashMap<[u8; 32], OAuthFlow>,
    email_tokens: HashMap<[u8; 32], EmailToken>,
    email_sign_ins: HashMap<[u8; 32], EmailSignIn>,
    totp: HashMap<UserId, TotpFactor>,
    /// Backup code hashes by user; a used one is gone.
    backup_codes: HashMap<UserId, Vec<[u8; 32]>>,
    challenges: HashMap<[u8; 32], SignInChallenge>,
    /// Passkeys in registration order.
    passkeys: Vec<StoredPasskey>,
    roles: std::collections::BTreeMap<String, StoredRole>,
    ceremonies: HashMap<[u8; 32], Ceremony>,
    /// API keys in creation order.
    api_keys: Vec<ApiKey>,
    service_accounts: HashMap<ServiceAccountId, ServiceAccount>,
    organizations: HashMap<OrganizationId, Organization>,
    /// (organization, member, role, joined at), in join order.
    memberships: Vec<(OrganizationId, UserId, String, Timestamp)>,
    invitations: Vec<Invitation>,
    signing_keys: Vec<StoredSigningKey>,
    outbox: Vec<OutboxEntry>,
    audit: Vec<AuditEvent>,
}

/// A queued message and where its delivery stands.
#[derive(Debug, Clone)]
struct OutboxEntry {
    mail: Mail,
    status: MailStatus,
    attempts: u32,
    next_attempt_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MailStatus {
    Pending,
    Sent,
    Failed,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message queued so far, oldest first: what a test inspects.
    pub fn outbox(&self) -> StoreResult<Vec<Mail>> {
        Ok(self.tables()?.outbox.iter().map(|entry| entry.mail.clone()).collect())
    }

    /// The audit trail so far, oldest first: what a test inspects.
    pub fn audit_trail(&self) -> StoreResult<Vec<AuditEvent>> {
        Ok(self.tables()?.audit.clone())
    }

    fn tables(&self) -> StoreResult<MutexGuard<'_, Tables>> {
        // A panic while the lock was held may have left a write half done.
        self.tables.lock().map_err(|_| StoreError::Other("the memory store was poisoned".into()))
    }
}

impl Tables {
    fn user_by_email(&self, email: &Email) -> Option<&User> {
        self.users.values().find(|user| user.email == *email)
    }

    fn ensure_email_free(&self, email: &Email) -> StoreResult<()> {
        match self.user_by_email(email) {
            Some(_) => Err(StoreError::Conflict(format!("email {email} is taken"))),
            None => Ok(()),
        }
    }

    fn ensure_identity_free(&self, account: &LinkedAccount) -> StoreResult<()> {
        let taken = self.accounts.iter().any(|a| a.provider_id == account.provider_id && a.subject == account.subject);
        if taken {
            return Err(StoreError::Conflict(format!("{}:{} is linked", account.provider_id, account.subject)));
        }
        Ok(())
    }

    /// Checked before a write starts, so that a refusal leaves nothing half
    /// written, as a rolled-back transaction would.
    fn ensure_session_free(&self, session: &Session) -> StoreResult<()> {
        if self.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict(format!("session {} exists", session.id)));
        }
        Ok(())
    }

    fn queue(&mut self, mail: &Mail) {
        let entry = OutboxEntry {
            mail: mail.clone(),
            status: MailStatus::Pending,
            attempts: 0,
            next_attempt_at: mail.created_at,
        };
        self.outbox.push(entry);
    }

    fn delete_tokens_of(&mut self, user_id: UserId, purpose: TokenPurpose) {
        self.email_tokens.retain(|_, token| token.user_id != user_id || token.purpose != purpose);
    }

    /// Takes `user_id`'s unexpired token with this hash and purpose, if the
    /// user still has the address it was sent to.
    fn take_token(
        &mut self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        user_id: UserId,
        now: Timestamp,
    ) -> Option<EmailToken> {
        let token = self
            .email_tokens
            .get(hash)
            .filter(|t| t.purpose == purpose && t.user_id == user_id && t.expires_at > now)?;
        let token = token.clone();
        let current = self.users.get(&token.user_id).is_some_and(|user| user.email == token.email);
        current.then(|| self.email_tokens.remove(hash)).flatten()
    }

    /// Whether what a session or challenge of `user_id` is granted on still
    /// holds; applies its side effects, as the SQL store's transaction does.
    /// Whether a session (or challenge) created at `now` on `basis` may be
    /// stored: the user exists, is not banned, and the basis still holds.
    fn holds(&mut self, user_id: UserId, basis: SessionBasis<'_>, now: Timestamp) -> bool {
        if self.users.get(&user_id).is_none_or(|user| user.ban_at(now).is_some()) {
            return false;
        }
        match basis {
            SessionBasis::User => true,
            SessionBasis::Mailbox { email } => match self.users.get_mut(&user_id) {
                Some(user) if user.email == *email => {
                    user.email_verified = true;
                    true
                }
                _ => false,
            },
            SessionBasis::Challenge { hash, factor } => {
                let owned = self.challenges.get(hash).is_some_and(|challenge| challenge.user_id == user_id);
                // One lock for both: the factor is used up only with the challenge.
                owned && self.use_factor(user_id, factor) && self.challenges.remove(hash).is_some()
            }
            SessionBasis::Passkey { factor } => self.use_passkey(user_id, factor),
            SessionBasis::Password { verified_hash, rehash } => {
                let Some(current) = self.passwords.get_mut(&user_id) else { return false };
                if current != verified_hash {
                    return false;
                }
                if let Some(rehash) = rehash {
                    rehash.clone_into(current);
                }
                true
            }
        }
    }

    /// Uses up `factor` of `user_id`, if it is still unused.
    fn use_factor(&mut self, user_id: UserId, factor: &FactorUse) -> bool {
        match *factor {
            FactorUse::TotpStep(step) => {
                let Some(totp) = self.totp.get_mut(&user_id).filter(|totp| totp.enabled_at.is_some()) else {
                    return false;
                };
                if totp.last_used_step.is_some_and(|last| last >= step) {
                    return false;
                }
                totp.last_used_step = Some(step);
                true
            }
            FactorUse::BackupCode { hash, .. } => {
                let Some(codes) = self.backup_codes.get_mut(&user_id) else { return false };
                let before = codes.len();
                codes.retain(|code| *code != hash);
                codes.len() < before
            }
            FactorUse::Passkey(ref answer) => self.use_passkey(user_id, answer),
        }
    }

    /// Moves `user_id`'s passkey to `answer`'s counter and flags, if its
    /// counter is still below the answer's ([`PasskeyUse::moves`]).
    fn use_passkey(&mut self, user_id: UserId, answer: &PasskeyUse) -> bool {
        let passkey = self.passkeys.iter_mut().find(|passkey| passkey.id == answer.id && passkey.user_id == user_id);
        let Some(passkey) = passkey.filter(|passkey| answer.moves(passkey.sign_count)) else {
            return false;
        };
        passkey.sign_count = answer.sign_count;
        passkey.credential.clone_from(&answer.credential);
        passkey.backed_up = answer.backed_up;
        passkey.last_used_at = Some(answer.at);
        true
    }

    /// Whether the user has a second factor on.
    fn has_second_factor(&self, user_id: UserId) -> bool {
        self.totp.get(&user_id).is_some_and(|totp| totp.enabled_at.is_some())
            || self.passkeys.iter().any(|passkey| passkey.user_id == user_id)
    }

    /// After a factor went: clears the user's flag and lowers `session` to
    /// AAL1 if it was their last one.
    fn lower_if_no_factor(&mut self, user_id: UserId, session: &SessionId) {
        if self.has_second_factor(user_id) {
            return;
        }
        if let Some(user) = self.users.get_mut(&user_id) {
            user.two_factor_enabled = false;
        }
        if let Some(current) = self.sessions.get_mut(session) {
            current.assurance = Assurance::Aal1;
        }
    }

    fn delete_sessions_except(&mut self, user_id: UserId, keep: &SessionId) -> u64 {
        self.delete_sessions(user_id, Some(keep))
    }

    /// Deletes a user's sessions, all or all but `keep`; returns how many.
    fn delete_sessions(&mut self, user_id: UserId, keep: Option<&SessionId>) -> u64 {
        let before = self.sessions.len();
        self.sessions.retain(|id, session| session.user_id != user_id || Some(id) == keep);
        count(before - self.sessions.len())
    }
}

/// Whether `user` is one `query` lists.
fn matches(query: &UserQuery, user: &User, now: Timestamp) -> bool {
    user.email.as_str().starts_with(&query.email_prefix)
        && query.created_after.is_none_or(|after| user.created_at >= after)
        && query.created_before.is_none_or(|before| user.created_at < before)
        && query.role.as_ref().is_none_or(|role| user.roles.contains(role))
        && query.banned.is_none_or(|banned| user.ban_at(now).is_some() == banned)
        && query.before.is_none_or(|before| user.id < before)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        self.tables().map(drop)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.ensure_email_free(&user.email)?;
        tables.ensure_session_free(session)?;
        tables.users.insert(user.id, user.clone());
        tables.passwords.insert(user.id, password_hash.to_owned());
        tables.sessions.insert(session.id.clone(), session.clone());
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn create_unverified_user(
        &self,
        user: &User,
        password_hash: &str,
        token: &EmailToken,
        mail: &Mail,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.ensure_email_free(&user.email)?;
        tables.users.insert(user.id, user.clone());
        tables.passwords.insert(user.id, password_hash.to_owned());
        tables.email_tokens.insert(token.hash, token.clone());
        tables.queue(mail);
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn insert_user(&self, user: &User, password_hash: Option<&str>, audit: &AuditEvent) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.ensure_email_free(&user.email)?;
        tables.users.insert(user.id, user.clone());
        if let Some(hash) = password_hash {
            tables.passwords.insert(user.id, hash.to_owned());
        }
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn create_mailbox_user(&self, user: &User, session: &Session, audit: &AuditEvent) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.ensure_email_free(&user.email)?;
        tables.ensure_session_free(session)?;
        tables.users.insert(user.id, user.clone());
        tables.sessions.insert(session.id.clone(), session.clone());
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn find_credentials_by_email(&self, email: &Email) -> StoreResult<Option<Credentials>> {
        let tables = self.tables()?;
        let Some(user) = tables.user_by_email(email) else { return Ok(None) };
        let Some(password_hash) = tables.passwords.get(&user.id) else { return Ok(None) };
        Ok(Some(Credentials { user: user.clone(), password_hash: password_hash.clone() }))
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        Ok(self.tables()?.user_by_email(email).cloned())
    }

    async fn find_user(&self, user_id: UserId) -> StoreResult<Option<User>> {
        Ok(self.tables()?.users.get(&user_id).cloned())
    }

    async fn list_users(&self, query: &UserQuery, now: Timestamp, limit: u64) -> StoreResult<Vec<User>> {
        let tables = self.tables()?;
        let mut users: Vec<User> = tables.users.values().filter(|user| matches(query, user, now)).cloned().collect();
        users.sort_by_key(|user| std::cmp::Reverse(user.id));
        users.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(users)
    }

    async fn find_password_hash(&self, user_id: UserId) -> StoreResult<Option<String>> {
        Ok(self.tables()?.passwords.get(&user_id).cloned())
    }

    async fn update_user_name(
        &self,
        user_id: UserId,
        name: &str,
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<User> {
        let mut tables = self.tables()?;
        let user = tables.users.get_mut(&user_id).ok_or(StoreError::NotFound)?;
        name.clone_into(&mut user.name);
        user.updated_at = now;
        let user = user.clone();
        tables.audit.push(audit.clone());
        Ok(user)
    }

    async fn set_roles(
        &self,
        user_id: UserId,
        roles: &[String],
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<User>> {
        let mut tables = self.tables()?;
        let Some(user) = tables.users.get_mut(&user_id) else { return Ok(None) };
        roles.clone_into(&mut user.roles);
        user.updated_at = now;
        let user = user.clone();
        tables.audit.push(audit.clone());
        Ok(Some(user))
    }

    async fn set_ban(
        &self,
        user_id: UserId,
        ban: Option<&Ban>,
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<(User, u64)>> {
        let mut tables = self.tables()?;
        let Some(user) = tables.users.get_mut(&user_id) else { return Ok(None) };
        user.ban = ban.cloned();
        user.updated_at = now;
        let user = user.clone();
        let ended = match ban {
            Some(_) => {
                tables.challenges.retain(|_, challenge| challenge.user_id != user_id);
                tables.delete_sessions(user_id, None)
            }
            None => 0,
        };
        tables.audit.push(audit.clone().revoked(ended));
        Ok(Some((user, ended)))
    }

    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep: &SessionId,
        _now: Timestamp,
        notice: Option<&Mail>,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        if !tables.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        // Replaces a password, never adds one: the SQL store updates the row.
        if let Some(hash) = tables.passwords.get_mut(&user_id) {
            password_hash.clone_into(hash);
        }
        let deleted = tables.delete_sessions_except(user_id, keep);
        tables.challenges.retain(|_, challenge| challenge.user_id != user_id);
        tables.delete_tokens_of(user_id, TokenPurpose::ResetPassword);
        if let Some(notice) = notice {
            tables.queue(notice);
        }
        tables.audit.push(audit.clone().detail(format!("revoked:{deleted}")));
        Ok(deleted)
    }

    async fn delete_user(&self, user_id: UserId, audit: &AuditEvent, _event: &SessionEvent) -> StoreResult<()> {
        let mut tables = self.tables()?;
        if tables.users.remove(&user_id).is_none() {
            return Err(StoreError::NotFound);
        }
        tables.passwords.remove(&user_id);
        tables.sessions.retain(|_, session| session.user_id != user_id);
        tables.accounts.retain(|account| account.user_id != user_id);
        tables.email_tokens.retain(|_, token| token.user_id != user_id);
        tables.totp.remove(&user_id);
        tables.backup_codes.remove(&user_id);
        tables.challenges.retain(|_, challenge| challenge.user_id != user_id);
        tables.passkeys.retain(|passkey| passkey.user_id != user_id);
        tables.api_keys.retain(|key| key.owner != KeyOwner::User(user_id));
        tables.memberships.retain(|(_, member, _, _)| *member != user_id);
        tables.audit.push(audit.clone());
        Ok(())
    }
}

#[async_trait]
impl EmailTokenStore for MemoryStore {
    async fn issue_email_tokens(&self, tokens: &[EmailToken], mails: &[Mail], audit: &AuditEvent) -> StoreResult<()> {
        let mut tables = self.tables()?;
        if tokens.iter().any(|token| !tables.users.contains_key(&token.user_id)) {
            return Err(StoreError::NotFound);
        }
        for token in tokens {
            tables.delete_tokens_of(token.user_id, token.purpose);
        }
        for token in tokens {
            tables.email_tokens.insert(token.hash, token.clone());
        }
        for mail in mails {
            tables.queue(mail);
        }
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn find_email_token(
        &self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<EmailToken>> {
        let tables = self.tables()?;
        Ok(tables.email_tokens.get(hash).filter(|t| t.purpose == purpose && t.expires_at > now).cloned())
    }

    async fn verify_email(
        &self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        user_id: UserId,
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<User>> {
        let mut tables = self.tables()?;
        let Some(token) = tables.take_token(hash, purpose, user_id, now) else { return Ok(None) };
        let Some(user) = tables.users.get_mut(&token.user_id) else { return Ok(None) };
        user.email_verified = true;
        user.updated_at = now;
        let user = user.clone();
        tables.audit.push(audit.clone());
        Ok(Some(user))
    }

    async fn reset_password(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        password_hash: &str,
        now: Timestamp,
        notice: &Mail,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let mut tables = self.tables()?;
        if tables.take_token(hash, TokenPurpose::ResetPassword, user_id, now).is_none() {
            return Ok(None);
        }
        let Some(user) = tables.users.get_mut(&user_id) else { return Ok(None) };
        user.email_verified = true;
        user.updated_at = now;
        tables.passwords.insert(user_id, password_hash.to_owned());
        let before = tables.sessions.len();
        tables.sessions.retain(|_, session| session.user_id != user_id);
        let ended = count(before - tables.sessions.len());
        tables.challenges.retain(|_, challenge| challenge.user_id != user_id);
        tables.delete_tokens_of(user_id, TokenPurpose::ResetPassword);
        tables.queue(notice);
        tables.audit.push(audit.clone().revoked(ended));
        Ok(Some(ended))
    }

    async fn change_email(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        now: Timestamp,
        end_sessions: bool,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<EmailChange> {
        let mut tables = self.tables()?;
        let token = tables
            .email_tokens
            .get(hash)
            .filter(|t| t.purpose == TokenPurpose::ChangeEmail && t.user_id == user_id && t.expires_at > now);
        let Some(token) = token.cloned() else { return Ok(EmailChange::TokenInvalid) };
        if tables.user_by_email(&token.email).is_some() {
            return Ok(EmailChange::EmailTaken);
        }
        tables.email_tokens.remove(hash);
        let Some(user) = tables.users.get_mut(&user_id) else { return Ok(EmailChange::TokenInvalid) };
        user.email = token.email.clone();
        user.email_verified = true;
        user.updated_at = now;
        let user = user.clone();
        let mut ended = 0;
        if end_sessions {
            let before = tables.sessions.len();
            tables.sessions.retain(|_, session| session.user_id != user_id);
            ended = count(before - tables.sessions.len());
            tables.challenges.retain(|_, challenge| challenge.user_id != user_id);
        }
        tables.audit.push(audit.clone());
        Ok(EmailChange::Changed { user, ended })
    }

    async fn set_first_password(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        password_hash: &str,
        now: Timestamp,
        notice: &Mail,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if tables.passwords.contains_key(&user_id) {
            return Ok(false);
        }
        if tables.take_token(hash, TokenPurpose::SetPassword, user_id, now).is_none() {
            return Ok(false);
        }
        tables.passwords.insert(user_id, password_hash.to_owned());
        tables.queue(notice);
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn delete_expired_email_tokens(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let before = tables.email_tokens.len();
        tables.email_tokens.retain(|_, token| token.expires_at > now);
        Ok(count(before - tables.email_tokens.len()))
    }
}

#[async_trait]
impl EmailSignInStore for MemoryStore {
    async fn create_email_sign_in(&self, sign_in: &EmailSignIn, mail: &Mail) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.email_sign_ins.retain(|_, other| other.email != sign_in.email);
        tables.email_sign_ins.insert(sign_in.binding_hash, sign_in.clone());
        tables.queue(mail);
        Ok(())
    }

    async fn reserve_email_sign_in_attempt(
        &self,
        binding_hash: &[u8; 32],
        max_attempts: u32,
        now: Timestamp,
    ) -> StoreResult<Option<EmailSignIn>> {
        let mut tables = self.tables()?;
        let Some(sign_in) = tables.email_sign_ins.get_mut(binding_hash) else { return Ok(None) };
        if sign_in.expires_at <= now || sign_in.attempts >= max_attempts {
            return Ok(None);
        }
        sign_in.attempts += 1;
        Ok(Some(sign_in.clone()))
    }

    async fn take_email_sign_in(&self, binding_hash: &[u8; 32]) -> StoreResult<Option<EmailSignIn>> {
        Ok(self.tables()?.email_sign_ins.remove(binding_hash))
    }

    async fn delete_expired_email_sign_ins(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let before = tables.email_sign_ins.len();
        tables.email_sign_ins.retain(|_, sign_in| sign_in.expires_at > now);
        Ok(count(before - tables.email_sign_ins.len()))
    }
}

#[async_trait]
impl MailStore for MemoryStore {
    async fn queue_mail(&self, mail: &Mail) -> StoreResult<()> {
        self.tables()?.queue(mail);
        Ok(())
    }

    async fn claim_mail(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> StoreResult<Vec<QueuedMail>> {
        let mut tables = self.tables()?;
        let due = tables
            .outbox
            .iter_mut()
            .filter(|entry| entry.status == MailStatus::Pending && entry.next_attempt_at <= now)
            .take(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(due
            .map(|entry| {
                entry.next_attempt_at = lease_until;
                let queued = QueuedMail {
                    id: entry.mail.id,
                    to: entry.mail.to.to_string(),
                    subject: entry.mail.subject.clone(),
                    text: entry.mail.text.clone(),
                    html: entry.mail.html.clone(),
                    attempts: entry.attempts,
                };
                entry.attempts += 1;
                queued
            })
            .collect())
    }

    async fn mark_mail_sent(&self, id: uuid::Uuid, _at: Timestamp) -> StoreResult<()> {
        if let Some(entry) = self.tables()?.outbox.iter_mut().find(|entry| entry.mail.id == id) {
            entry.status = MailStatus::Sent;
        }
        Ok(())
    }

    async fn mark_mail_failed(&self, id: uuid::Uuid, _error: &str, retry_at: Option<Timestamp>) -> StoreResult<()> {
        if let Some(entry) = self.tables()?.outbox.iter_mut().find(|entry| entry.mail.id == id) {
            match retry_at {
                Some(at) => entry.next_attempt_at = at,
                None => entry.status = MailStatus::Failed,
            }
        }
        Ok(())
    }

    async fn count_pending_mail(&self) -> StoreResult<u64> {
        Ok(count(self.tables()?.outbox.iter().filter(|entry| entry.status == MailStatus::Pending).count()))
    }

    async fn delete_mail_before(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let len = tables.outbox.len();
        tables.outbox.retain(|entry| entry.status == MailStatus::Pending || entry.mail.created_at >= before);
        Ok(count(len - tables.outbox.len()))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(
        &self,
        session: &Session,
        basis: SessionBasis<'_>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        tables.ensure_session_free(session)?;
        if !tables.holds(session.user_id, basis, session.created_at) {
            return Ok(false);
        }
        tables.sessions.insert(session.id.clone(), session.clone());
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn find_session(&self, id: &SessionId) -> StoreResult<Option<(Session, User)>> {
        let tables = self.tables()?;
        let Some(session) = tables.sessions.get(id) else { return Ok(None) };
        Ok(tables.users.get(&session.user_id).map(|user| (session.clone(), user.clone())))
    }

    async fn refresh_session(
        &self,
        id: &SessionId,
        expires_at: Timestamp,
        refreshed_at: Timestamp,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let Some(session) = tables.sessions.get_mut(id) else { return Ok(false) };
        session.expires_at = expires_at;
        session.refreshed_at = refreshed_at;
        Ok(true)
    }

    async fn list_sessions(&self, user_id: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        let tables = self.tables()?;
        let mut live: Vec<Session> = tables
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && s.expires_at > now && s.absolute_expires_at > now)
            .cloned()
            .collect();
        live.sort_by_key(|session| std::cmp::Reverse(session.created_at));
        live.truncate(LIST_SESSIONS_LIMIT);
        Ok(live)
    }

    async fn delete_session(
        &self,
        user_id: UserId,
        id: &SessionId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if tables.sessions.get(id).is_none_or(|session| session.user_id != user_id) {
            return Ok(false);
        }
        tables.sessions.remove(id);
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn delete_other_sessions(
        &self,
        user_id: UserId,
        keep: Option<&SessionId>,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let deleted = tables.delete_sessions(user_id, keep);
        tables.audit.push(audit.clone().detail(format!("revoked:{deleted}")));
        Ok(deleted)
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let before = tables.sessions.len();
        tables.sessions.retain(|_, session| session.expires_at > now && session.absolute_expires_at > now);
        Ok(count(before - tables.sessions.len()))
    }
}

#[async_trait]
impl FactorStore for MemoryStore {
    async fn put_pending_totp(&self, user_id: UserId, sealed: &SealedSecret, now: Timestamp) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if !tables.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        if tables.totp.get(&user_id).is_some_and(|totp| totp.enabled_at.is_some()) {
            return Ok(false);
        }
        let pending = TotpFactor { sealed: sealed.clone(), created_at: now, enabled_at: None, last_used_step: None };
        tables.totp.insert(user_id, pending);
        Ok(true)
    }

    async fn find_totp(&self, user_id: UserId) -> StoreResult<Option<TotpFactor>> {
        Ok(self.tables()?.totp.get(&user_id).cloned())
    }

    async fn enable_totp(
        &self,
        user_id: UserId,
        enrolled_at: Timestamp,
        step: TotpStep,
        backup_codes: &[[u8; 32]],
        session: &SessionId,
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let mut tables = self.tables()?;
        let pending = tables.totp.get(&user_id).is_some_and(|t| t.enabled_at.is_none() && t.created_at == enrolled_at);
        if !pending || !tables.users.contains_key(&user_id) {
            return Ok(None);
        }
        if let Some(totp) = tables.totp.get_mut(&user_id) {
            totp.enabled_at = Some(now);
            totp.last_used_step = Some(step);
        }
        tables.backup_codes.insert(user_id, backup_codes.to_vec());
        if let Some(user) = tables.users.get_mut(&user_id) {
            user.two_factor_enabled = true;
        }
        if let Some(current) = tables.sessions.get_mut(session) {
            current.assurance = Assurance::Aal2;
            current.authenticated_at = now;
        }
        let ended = tables.delete_sessions_except(user_id, session);
        tables.audit.push(audit.clone().revoked(ended));
        Ok(Some(ended))
    }

    async fn disable_totp(
        &self,
        user_id: UserId,
        session: &SessionId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let mut tables = self.tables()?;
        if tables.totp.get(&user_id).is_none_or(|totp| totp.enabled_at.is_none()) {
            return Ok(None);
        }
        tables.totp.remove(&user_id);
        tables.backup_codes.remove(&user_id);
        tables.lower_if_no_factor(user_id, session);
        let ended = tables.delete_sessions_except(user_id, session);
        tables.audit.push(audit.clone().revoked(ended));
        Ok(Some(ended))
    }

    async fn reseal_totp(&self, user_id: UserId, old: &SealedSecret, new: &SealedSecret) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let Some(totp) = tables.totp.get_mut(&user_id).filter(|totp| totp.sealed == *old) else { return Ok(false) };
        totp.sealed = new.clone();
        Ok(true)
    }

    async fn has_backup_code(&self, user_id: UserId, hash: &[u8; 32]) -> StoreResult<bool> {
        Ok(self.tables()?.backup_codes.get(&user_id).is_some_and(|codes| codes.contains(hash)))
    }

    async fn count_backup_codes(&self, user_id: UserId) -> StoreResult<u32> {
        let tables = self.tables()?;
        Ok(tables.backup_codes.get(&user_id).map_or(0, |codes| u32::try_from(codes.len()).unwrap_or(u32::MAX)))
    }

    async fn replace_backup_codes(
        &self,
        user_id: UserId,
        hashes: &[[u8; 32]],
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if tables.totp.get(&user_id).is_none_or(|totp| totp.enabled_at.is_none()) {
            return Ok(false);
        }
        tables.backup_codes.insert(user_id, hashes.to_vec());
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn step_up_session(
        &self,
        user_id: UserId,
        session: &SessionId,
        factor: &FactorUse,
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if tables.sessions.get(session).is_none_or(|s| s.user_id != user_id) || !tables.use_factor(user_id, factor) {
            return Ok(false);
        }
        let Some(current) = tables.sessions.get_mut(session) else { return Ok(false) };
        current.assurance = Assurance::Aal2;
        current.authenticated_at = now;
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn create_challenge(&self, challenge: &SignInChallenge, basis: SessionBasis<'_>) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if !tables.holds(challenge.user_id, basis, challenge.created_at) {
            return Ok(false);
        }
        tables.challenges.insert(challenge.hash, challenge.clone());
        Ok(true)
    }

    async fn reserve_challenge_answer(
        &self,
        hash: &[u8; 32],
        max_answers: u32,
        now: Timestamp,
    ) -> StoreResult<Option<(SignInChallenge, User)>> {
        let mut tables = self.tables()?;
        let Some(challenge) = tables.challenges.get_mut(hash) else { return Ok(None) };
        if challenge.expires_at <= now || challenge.attempts >= max_answers {
            return Ok(None);
        }
        challenge.attempts += 1;
        let challenge = challenge.clone();
        Ok(tables.users.get(&challenge.user_id).map(|user| (challenge, user.clone())))
    }

    async fn delete_expired_challenges(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let before = tables.challenges.len();
        tables.challenges.retain(|_, challenge| challenge.expires_at > now);
        Ok(count(before - tables.challenges.len()))
    }
}

#[async_trait]
impl RoleStore for MemoryStore {
    async fn list_roles(&self) -> StoreResult<Vec<StoredRole>> {
        Ok(self.tables()?.roles.values().cloned().collect())
    }

    async fn put_role(&self, role: &StoredRole, audit: &AuditEvent, _event: &SessionEvent) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.roles.insert(role.name.clone(), role.clone());
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn delete_role(&self, name: &str, audit: &AuditEvent, _event: &SessionEvent) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if tables.roles.remove(name).is_none() {
            return Ok(false);
        }
        tables.audit.push(audit.clone());
        Ok(true)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert_api_key(
        &self,
        key: &ApiKey,
        max_per_owner: u64,
        audit: &AuditEvent,
    ) -> StoreResult<Result<(), KeyRefusal>> {
        let mut tables = self.tables()?;
        let owner_here = match key.owner {
            KeyOwner::User(id) => tables.users.get(&id).is_some_and(|user| user.ban_at(key.created_at).is_none()),
            KeyOwner::ServiceAccount(id) => tables.service_accounts.contains_key(&id),
        };
        if !owner_here {
            return Ok(Err(KeyRefusal::OwnerGone));
        }
        let owned = tables.api_keys.iter().filter(|stored| stored.owner == key.owner).count();
        if u64::try_from(owned).unwrap_or(u64::MAX) >= max_per_owner {
            return Ok(Err(KeyRefusal::TooMany));
        }
        tables.api_keys.push(key.clone());
        tables.audit.push(audit.clone());
        Ok(Ok(()))
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<(ApiKey, KeyHolder)>> {
        let tables = self.tables()?;
        let Some(key) = tables.api_keys.iter().find(|key| key.id == *id) else { return Ok(None) };
        let holder = match key.owner {
            KeyOwner::User(owner) => tables.users.get(&owner).cloned().map(KeyHolder::User),
            KeyOwner::ServiceAccount(owner) => {
                tables.service_accounts.get(&owner).cloned().map(KeyHolder::ServiceAccount)
            }
        };
        Ok(holder.map(|holder| (key.clone(), holder)))
    }

    async fn list_api_keys(&self, owner: KeyOwner) -> StoreResult<Vec<ApiKey>> {
        let tables = self.tables()?;
        Ok(tables.api_keys.iter().rev().filter(|key| key.owner == owner).cloned().collect())
    }

    async fn delete_api_key(
        &self,
        owner: KeyOwner,
        id: &ApiKeyId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let before = tables.api_keys.len();
        tables.api_keys.retain(|key| !(key.owner == owner && key.id == *id));
        if tables.api_keys.len() == before {
            return Ok(false);
        }
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn rotate_api_key(
        &self,
        owner: KeyOwner,
        old: &ApiKeyId,
        old_expires_at: Option<Timestamp>,
        new: &ApiKey,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<ApiKey>> {
        let mut tables = self.tables()?;
        let Some(at) = tables.api_keys.iter().position(|key| key.owner == owner && key.id == *old) else {
            return Ok(None);
        };
        let replaced = match old_expires_at {
            Some(expires_at) => {
                tables.api_keys[at].expires_at = Some(expires_at);
                tables.api_keys[at].replaced_by = Some(new.id.clone());
                tables.api_keys[at].clone()
            }
            None => tables.api_keys.remove(at),
        };
        tables.api_keys.push(new.clone());
        tables.audit.push(audit.clone());
        Ok(Some(replaced))
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp, since: Timestamp) -> StoreResult<()> {
        let mut tables = self.tables()?;
        if let Some(key) = tables.api_keys.iter_mut().find(|key| key.id == *id)
            && key.last_used_at.is_none_or(|at| at <= since)
        {
            key.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn delete_api_keys_expired_before(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let count = tables.api_keys.len();
        tables.api_keys.retain(|key| key.expires_at.is_none_or(|at| at >= before));
        Ok(u64::try_from(count - tables.api_keys.len()).unwrap_or(u64::MAX))
    }

    async fn insert_service_account(&self, account: &ServiceAccount, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        if tables.service_accounts.values().any(|existing| existing.name == account.name) {
            return Ok(false);
        }
        tables.service_accounts.insert(account.id, account.clone());
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn find_service_account(&self, id: ServiceAccountId) -> StoreResult<Option<ServiceAccount>> {
        Ok(self.tables()?.service_accounts.get(&id).cloned())
    }

    async fn list_service_accounts(&self) -> StoreResult<Vec<ServiceAccount>> {
        let mut accounts: Vec<ServiceAccount> = self.tables()?.service_accounts.values().cloned().collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(accounts)
    }

    async fn set_service_account_roles(
        &self,
        id: ServiceAccountId,
        roles: &[String],
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let Some(account) = tables.service_accounts.get_mut(&id) else { return Ok(false) };
        account.roles = roles.to_vec();
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn delete_service_account(
        &self,
        id: ServiceAccountId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let mut tables = self.tables()?;
        if tables.service_accounts.remove(&id).is_none() {
            return Ok(None);
        }
        let count = tables.api_keys.len();
        tables.api_keys.retain(|key| key.owner != KeyOwner::ServiceAccount(id));
        tables.audit.push(audit.clone());
        Ok(Some(u64::try_from(count - tables.api_keys.len()).unwrap_or(u64::MAX)))
    }
}

impl Tables {
    fn membership(&self, id: OrganizationId, user: UserId) -> Option<(Organization, String, Timestamp)> {
        let organization = self.organizations.get(&id)?;
        self.memberships
            .iter()
            .find(|(of, member, _, _)| *of == id && *member == user)
            .map(|(_, _, role, joined)| (organization.clone(), role.clone(), *joined))
    }

    fn membership_at(&self, id: OrganizationId, user: UserId) -> Option<usize> {
        self.memberships.iter().position(|(of, member, _, _)| *of == id && *member == user)
    }
}

#[async_trait]
impl SigningKeyStore for MemoryStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let mut keys = self.tables()?.signing_keys.clone();
        keys.sort_by_key(|key| key.generation);
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<bool> {
        let mut t = self.tables()?;
        if t.signing_keys.iter().any(|stored| stored.generation == key.generation || stored.kid == key.kid) {
            return Ok(false);
        }
        t.signing_keys.push(key.clone());
        Ok(true)
    }

    async fn delete_signing_keys_below(&self, generation: i64) -> StoreResult<u64> {
        let mut t = self.tables()?;
        let before = t.signing_keys.len();
        t.signing_keys.retain(|key| key.generation >= generation);
        Ok(count(before - t.signing_keys.len()))
    }
}

#[async_trait]
impl OrganizationStore for MemoryStore {
    async fn insert_organization(
        &self,
        organization: &Organization,
        owner: UserId,
        max_owned: u64,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Result<(), CreateRefusal>> {
        let mut tables = self.tables()?;
        if !tables.users.contains_key(&owner) {
            return Ok(Err(CreateRefusal::OwnerGone));
        }
        if tables.organizations.values().any(|existing| existing.slug == organization.slug) {
            return Ok(Err(CreateRefusal::SlugTaken));
        }
        let owned = tables.memberships.iter().filter(|(_, member, role, _)| *member == owner && role == OWNER).count();
        if u64::try_from(owned).unwrap_or(u64::MAX) >= max_owned {
            return Ok(Err(CreateRefusal::TooMany));
        }
        tables.organizations.insert(organization.id, organization.clone());
        tables.memberships.push((organization.id, owner, OWNER.to_owned(), organization.created_at));
        tables.audit.push(audit.clone());
        Ok(Ok(()))
    }

    async fn find_membership(
        &self,
        id: OrganizationId,
        user: UserId,
    ) -> StoreResult<Option<(Organization, String, Timestamp)>> {
        Ok(self.tables()?.membership(id, user))
    }

    async fn list_memberships(&self, user: &User) -> StoreResult<Vec<Membership>> {
        let tables = self.tables()?;
        let mut memberships: Vec<Membership> = tables
            .memberships
            .iter()
            .filter(|(_, member, _, _)| *member == user.id)
            .filter_map(|(of, _, role, joined_at)| {
                let organization = tables.organizations.get(of)?.clone();
                Some(Membership { organization, user: user.clone(), role: role.clone(), joined_at: *joined_at })
            })
            .collect();
        memberships.sort_by(|a, b| a.organization.name.cmp(&b.organization.name));
        Ok(memberships)
    }

    async fn list_members(&self, organization: &Organization) -> StoreResult<Vec<Membership>> {
        let tables = self.tables()?;
        let mut members: Vec<Membership> = tables
            .memberships
            .iter()
            .filter(|(of, _, _, _)| *of == organization.id)
            .filter_map(|(_, member, role, joined_at)| {
                let user = tables.users.get(member)?.clone();
                Some(Membership { organization: organization.clone(), user, role: role.clone(), joined_at: *joined_at })
            })
            .collect();
        members.sort_by(|a, b| a.user.email.as_str().cmp(b.user.email.as_str()));
        Ok(members)
    }

    async fn rename_organization(&self, id: OrganizationId, name: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let Some(organization) = tables.organizations.get_mut(&id) else { return Ok(false) };
        organization.name = name.to_owned();
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn delete_organization(&self, id: OrganizationId, audit: &AuditEvent) -> StoreResult<Option<Vec<UserId>>> {
        let mut tables = self.tables()?;
        if tables.organizations.remove(&id).is_none() {
            return Ok(None);
        }
        let members =
            tables.memberships.iter().filter(|(of, _, _, _)| *of == id).map(|(_, user, _, _)| *user).collect();
        tables.memberships.retain(|(of, _, _, _)| *of != id);
        tables.invitations.retain(|invitation| invitation.organization_id != id);
        for session in tables.sessions.values_mut().filter(|session| session.active_organization == Some(id)) {
            session.active_organization = None;
        }
        tables.audit.push(audit.clone());
        Ok(Some(members))
    }

    async fn set_member_role(
        &self,
        id: OrganizationId,
        user: UserId,
        role: &str,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<MemberChange> {
        let mut tables = self.tables()?;
        let Some(at) = tables.membership_at(id, user) else { return Ok(MemberChange::NotMember) };
        if tables.memberships[at].2 == OWNER {
            return Ok(MemberChange::Owner);
        }
        tables.memberships[at].2 = role.to_owned();
        tables.audit.push(audit.clone());
        Ok(MemberChange::Changed)
    }

    async fn remove_member(
        &self,
        id: OrganizationId,
        user: UserId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<MemberChange> {
        let mut tables = self.tables()?;
        let Some(at) = tables.membership_at(id, user) else { return Ok(MemberChange::NotMember) };
        if tables.memberships[at].2 == OWNER {
            return Ok(MemberChange::Owner);
        }
        tables.memberships.remove(at);
        for session in tables.sessions.values_mut() {
            if session.user_id == user && session.active_organization == Some(id) {
                session.active_organization = None;
            }
        }
        tables.audit.push(audit.clone());
        Ok(MemberChange::Changed)
    }

    async fn transfer_ownership(
        &self,
        id: OrganizationId,
        from: UserId,
        to: UserId,
        audit: &AuditEvent,
        _events: &[SessionEvent; 2],
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let (Some(owner), Some(next)) = (tables.membership_at(id, from), tables.membership_at(id, to)) else {
            return Ok(false);
        };
        if tables.memberships[owner].2 != OWNER {
            return Ok(false);
        }
        tables.memberships[owner].2 = ADMIN.to_owned();
        tables.memberships[next].2 = OWNER.to_owned();
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn insert_invitation(
        &self,
        invitation: &Invitation,
        mail: Option<&Mail>,
        max_pending: u64,
        now: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let of = invitation.organization_id;
        let pending = tables.invitations.iter().filter(|i| i.organization_id == of && i.expires_at > now).count();
        if u64::try_from(pending).unwrap_or(u64::MAX) >= max_pending || !tables.organizations.contains_key(&of) {
            return Ok(false);
        }
        tables.invitations.push(invitation.clone());
        if let Some(mail) = mail {
            tables.queue(mail);
        }
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn list_invitations(&self, id: OrganizationId, now: Timestamp) -> StoreResult<Vec<Invitation>> {
        let tables = self.tables()?;
        Ok(tables.invitations.iter().rev().filter(|i| i.organization_id == id && i.expires_at > now).cloned().collect())
    }

    async fn delete_invitation(
        &self,
        id: OrganizationId,
        invitation: InvitationId,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        let before = tables.invitations.len();
        tables.invitations.retain(|i| !(i.organization_id == id && i.id == invitation));
        if tables.invitations.len() == before {
            return Ok(false);
        }
        tables.audit.push(audit.clone());
        Ok(true)
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        user: &User,
        email: &Email,
        now: Timestamp,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Acceptance> {
        let mut tables = self.tables()?;
        let Some(at) = tables.invitations.iter().position(|i| i.id == id && i.email == *email && i.expires_at > now)
        else {
            return Ok(Acceptance::Invalid);
        };
        let of = tables.invitations[at].organization_id;
        if tables.membership_at(of, user.id).is_some() {
            return Ok(Acceptance::AlreadyMember);
        }
        let Some(organization) = tables.organizations.get(&of).cloned() else { return Ok(Acceptance::Invalid) };
        let invitation = tables.invitations.remove(at);
        tables.memberships.push((of, user.id, invitation.role.clone(), now));
        tables.audit.push(audit.clone());
        let membership = Membership { organization, user: user.clone(), role: invitation.role, joined_at: now };
        Ok(Acceptance::Joined(Box::new(membership)))
    }

    async fn set_active_organization(
        &self,
        session: &SessionId,
        user: UserId,
        organization: Option<OrganizationId>,
        _event: &SessionEvent,
    ) -> StoreResult<bool> {
        let mut tables = self.tables()?;
        match tables.sessions.get_mut(session) {
            Some(found) if found.user_id == user => {
                found.active_organization = organization;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_invitations_expired_before(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let count = tables.invitations.len();
        tables.invitations.retain(|invitation| invitation.expires_at >= before);
        Ok(u64::try_from(count - tables.invitations.len()).unwrap_or(u64::MAX))
    }
}

#[async_trait]
impl PasskeyStore for MemoryStore {
    async fn list_passkeys(&self, user_id: UserId) -> StoreResult<Vec<StoredPasskey>> {
        let tables = self.tables()?;
        Ok(tables.passkeys.iter().filter(|passkey| passkey.user_id == user_id).cloned().collect())
    }

    async fn find_passkey_by_credential(&self, credential_id: &[u8]) -> StoreResult<Option<(StoredPasskey, User)>> {
        let tables = self.tables()?;
        let passkey = tables.passkeys.iter().find(|passkey| passkey.credential_id == credential_id);
        Ok(passkey.and_then(|passkey| Some((passkey.clone(), tables.users.get(&passkey.user_id)?.clone()))))
    }

    async fn create_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()> {
        self.tables()?.ceremonies.insert(ceremony.hash, ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: &[u8; 32],
        purpose: CeremonyPurpose,
        session: Option<&SessionId>,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>> {
        let mut tables = self.tables()?;
        let matches = tables.ceremonies.get(hash).is_some_and(|ceremony| {
            ceremony.purpose == purpose && ceremony.session_id.as_ref() == session && ceremony.expires_at > now
        });
        Ok(if matches { tables.ceremonies.remove(hash) } else { None })
    }

    async fn add_passkey(
        &self,
        passkey: &StoredPasskey,
        session: &SessionId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let mut tables = self.tables()?;
        let taken = tables.passkeys.iter().any(|other| other.credential_id == passkey.credential_id);
        let live = tables.sessions.get(session).is_some_and(|current| current.user_id == passkey.user_id);
        if taken || !live {
            return Ok(None);
        }
        tables.passkeys.push(passkey.clone());
        if let Some(user) = tables.users.get_mut(&passkey.user_id) {
            user.two_factor_enabled = true;
        }
        if let Some(current) = tables.sessions.get_mut(session) {
            current.assurance = Assurance::Aal2;
            current.authenticated_at = passkey.created_at;
        }
        let ended = tables.delete_sessions_except(passkey.user_id, session);
        tables.audit.push(audit.clone().revoked(ended));
        Ok(Some(ended))
    }

    async fn rename_passkey(&self, user_id: UserId, id: PasskeyId, name: &str) -> StoreResult<Option<StoredPasskey>> {
        let mut tables = self.tables()?;
        let Some(passkey) = tables.passkeys.iter_mut().find(|p| p.id == id && p.user_id == user_id) else {
            return Ok(None);
        };
        name.clone_into(&mut passkey.name);
        Ok(Some(passkey.clone()))
    }

    async fn delete_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
        session: &SessionId,
        audit: &AuditEvent,
        _event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let mut tables = self.tables()?;
        let before = tables.passkeys.len();
        tables.passkeys.retain(|passkey| passkey.id != id || passkey.user_id != user_id);
        if tables.passkeys.len() == before {
            return Ok(None);
        }
        tables.lower_if_no_factor(user_id, session);
        let ended = tables.delete_sessions_except(user_id, session);
        tables.audit.push(audit.clone().revoked(ended));
        Ok(Some(ended))
    }

    async fn delete_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let before = tables.ceremonies.len();
        tables.ceremonies.retain(|_, ceremony| ceremony.expires_at > now);
        Ok(count(before - tables.ceremonies.len()))
    }
}

#[async_trait]
impl OAuthStore for MemoryStore {
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()> {
        let mut tables = self.tables()?;
        if tables.flows.contains_key(&flow.state_hash) {
            return Err(StoreError::Conflict("an OAuth flow with this state exists".into()));
        }
        tables.flows.insert(flow.state_hash, flow.clone());
        Ok(())
    }

    async fn take_oauth_flow(&self, state_hash: &[u8; 32]) -> StoreResult<Option<OAuthFlow>> {
        Ok(self.tables()?.flows.remove(state_hash))
    }

    async fn delete_expired_oauth_flows(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let before = tables.flows.len();
        tables.flows.retain(|_, flow| flow.expires_at > now);
        Ok(count(before - tables.flows.len()))
    }

    async fn find_linked_account(
        &self,
        provider_id: &str,
        subject: &str,
    ) -> StoreResult<Option<(LinkedAccount, User)>> {
        let tables = self.tables()?;
        let account = tables.accounts.iter().find(|a| a.provider_id == provider_id && a.subject == subject);
        let Some(account) = account else { return Ok(None) };
        Ok(tables.users.get(&account.user_id).map(|user| (account.clone(), user.clone())))
    }

    async fn create_oauth_user(
        &self,
        user: &User,
        account: &LinkedAccount,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tables = self.tables()?;
        tables.ensure_email_free(&user.email)?;
        tables.ensure_identity_free(account)?;
        tables.ensure_session_free(session)?;
        tables.users.insert(user.id, user.clone());
        tables.accounts.push(account.clone());
        tables.sessions.insert(session.id.clone(), session.clone());
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn link_account(&self, account: &LinkedAccount, audit: &AuditEvent) -> StoreResult<()> {
        let mut tables = self.tables()?;
        if !tables.users.contains_key(&account.user_id) {
            return Err(StoreError::NotFound);
        }
        tables.ensure_identity_free(account)?;
        tables.accounts.push(account.clone());
        tables.audit.push(audit.clone());
        Ok(())
    }

    async fn list_linked_accounts(&self, user_id: UserId) -> StoreResult<Vec<LinkedAccount>> {
        let tables = self.tables()?;
        let mut accounts: Vec<LinkedAccount> =
            tables.accounts.iter().filter(|account| account.user_id == user_id).cloned().collect();
        accounts.sort_by_key(|account| account.linked_at);
        Ok(accounts)
    }

    async fn unlink_account(
        &self,
        user_id: UserId,
        provider_id: &str,
        subject: &str,
        audit: &AuditEvent,
    ) -> StoreResult<UnlinkOutcome> {
        let mut tables = self.tables()?;
        if !tables.users.contains_key(&user_id) {
            return Ok(UnlinkOutcome::NotFound);
        }
        let theirs = |a: &LinkedAccount| a.user_id == user_id;
        let target =
            tables.accounts.iter().position(|a| theirs(a) && a.provider_id == provider_id && a.subject == subject);
        let Some(target) = target else { return Ok(UnlinkOutcome::NotFound) };
        let has_password = tables.passwords.contains_key(&user_id);
        if !has_password && tables.accounts.iter().filter(|a| theirs(a)).count() <= 1 {
            return Ok(UnlinkOutcome::LastSignInMethod);
        }
        tables.accounts.remove(target);
        tables.audit.push(audit.clone());
        Ok(UnlinkOutcome::Unlinked)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.tables()?.audit.push(event.clone());
        Ok(())
    }

    async fn list_audit_events(&self, query: &AuditQuery, limit: u64) -> StoreResult<Vec<StoredAudit>> {
        let tables = self.tables()?;
        let mut events: Vec<StoredAudit> = tables
            .audit
            .iter()
            .filter(|event| {
                query.user_id.is_none_or(|user_id| event.user_id == Some(user_id) || event.target == Some(user_id))
                    && query.kind.as_ref().is_none_or(|kind| event.kind.as_str() == kind)
                    && query.after.is_none_or(|after| event.at >= after)
                    && query.before.is_none_or(|before| event.at < before)
                    && query.before_id.is_none_or(|before_id| event.id < before_id)
            })
            .map(StoredAudit::from)
            .collect();
        events.sort_by_key(|event| std::cmp::Reverse(event.id));
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(events)
    }

    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64> {
        let mut tables = self.tables()?;
        let kept_before = tables.audit.len();
        tables.audit.retain(|event| event.at >= before);
        Ok(count(kept_before - tables.audit.len()))
    }
}
