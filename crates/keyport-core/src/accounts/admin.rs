//! Administration: what a caller whose roles grant the admin permissions
//! may do to other users (roles, bans, their sessions, impersonation) and
//! the audit trail. Run-time roles are in `roles.rs`.
//!
//! Every call checks the caller's permission first, acts only on the user
//! its `user_id` names (never on a user found through another field), and
//! writes its audit entry and event in the transaction of the change.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use super::{Accounts, collect_violations, user_changed};
use crate::{
    api_key::{KeyHolder, KeyPrincipal},
    audit::{AuditEvent, AuditKind},
    authorization::{BUILT_IN_PERMISSIONS, Roles, USER_ROLE},
    clock::Timestamp,
    email::Email,
    error::{Error, FieldViolation, Result},
    events::UserChange,
    oauth::LinkedAccount,
    session::Session,
    session::{ClientInfo, Principal, SessionGrant},
    store::{AuditQuery, SessionBasis, StoreError, StoredAudit, UserQuery},
    user::{Ban, User, UserId, parse_name},
};

/// Longest ban reason accepted, in characters.
pub const MAX_BAN_REASON_CHARS: usize = 512;
/// Users in a page of [`Accounts::list_users`] when the caller names no size.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Most users in one page of [`Accounts::list_users`].
pub const MAX_PAGE_SIZE: u32 = 200;

/// Who makes an admin call.
#[derive(Debug, Clone, Copy)]
pub enum Admin<'a> {
    /// A signed-in user, allowed what their roles grant.
    Session(&'a Principal),
    /// An API key (a service account's, for automation), allowed what its
    /// scopes and its owner's roles both grant.
    Key(&'a KeyPrincipal),
    /// The operator at the `keyport admin` command line: whoever can open
    /// the database may do all of it.
    Operator,
}

impl Admin<'_> {
    /// Whether the call is about the caller's own account.
    fn is(&self, user_id: UserId) -> bool {
        match self {
            Self::Session(caller) => caller.user.id == user_id,
            Self::Key(caller) => matches!(&caller.holder, KeyHolder::User(owner) if owner.id == user_id),
            Self::Operator => false,
        }
    }

    /// Whether the caller may use `permission`; the operator may use all.
    fn allows(&self, roles: &Roles, permission: &str) -> bool {
        match self {
            Self::Session(caller) => roles.grants(&caller.user.roles, permission),
            Self::Key(caller) => key_allows(roles, caller, permission),
            Self::Operator => true,
        }
    }
}

/// Whether `caller`'s key may use `permission`: in its scopes, and granted
/// by its owner's roles now.
pub(super) fn key_allows(roles: &Roles, caller: &KeyPrincipal, permission: &str) -> bool {
    caller.key.scopes.binary_search_by(|scope| scope.as_str().cmp(permission)).is_ok()
        && roles.grants(caller.holder.roles(), permission)
}

/// What an admin filters [`Accounts::list_users`] by.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Users whose email starts with this (normalised as emails are).
    pub email_prefix: String,
    /// Users created at or after this time.
    pub created_after: Option<Timestamp>,
    /// Users created before this time.
    pub created_before: Option<Timestamp>,
    /// Users with this role; empty for all.
    pub role: String,
    /// Users with (`true`) or without (`false`) a ban in force.
    pub banned: Option<bool>,
}

/// What an admin filters [`Accounts::list_audit_events`] by.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Entries by or about this user: their own, and admins' actions on
    /// them; empty for all.
    pub user_id: String,
    /// Entries of this kind (`sign_in_failed`, ...); empty for all.
    pub kind: String,
    /// Entries at or after this time.
    pub after: Option<Timestamp>,
    /// Entries before this time.
    pub before: Option<Timestamp>,
}

/// A page of audit entries.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The entries, newest first.
    pub events: Vec<StoredAudit>,
    /// The token of the next page; `None` on the last.
    pub next_page_token: Option<String>,
}

/// A page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The users, newest first.
    pub users: Vec<User>,
    /// The token of the next page; `None` on the last.
    pub next_page_token: Option<String>,
}

/// One user as an admin inspects them.
#[derive(Debug, Clone)]
pub struct UserDetails {
    /// The user.
    pub user: User,
    /// Their live sessions, newest first.
    pub sessions: Vec<Session>,
    /// Their linked external accounts.
    pub linked_accounts: Vec<LinkedAccount>,
}

impl Accounts {
    /// Refuses a caller whose roles do not grant `permission`, and any
    /// impersonation session: an admin acting as a user administers nothing.
    pub(super) fn require(&self, admin: Admin<'_>, permission: &str) -> Result<()> {
        let impersonating = matches!(admin, Admin::Session(caller) if caller.session.impersonator.is_some());
        if impersonating || !admin.allows(&self.config.roles.current(), permission) {
            return Err(Error::PermissionDenied);
        }
        Ok(())
    }

    /// Opens a session as the user `user_id` for `caller`, an admin whose
    /// roles grant `users:impersonate`: to see what the user sees. The
    /// session records who opened it (`impersonator`, shown by
    /// `GetSession`), lasts at most [`ImpersonationPolicy::ttl`], changes no
    /// credential of the user ([`Accounts::refuse_impersonated`]), and ends
    /// with a sign-out. Not oneself, not from an impersonation session, and
    /// not a user whose roles grant any built-in administration permission
    /// unless [`ImpersonationPolicy::admins`] allows it.
    ///
    /// [`ImpersonationPolicy::ttl`]: super::ImpersonationPolicy::ttl
    /// [`ImpersonationPolicy::admins`]: super::ImpersonationPolicy::admins
    pub async fn impersonate(&self, caller: &Principal, user_id: &str, client: &ClientInfo) -> Result<SessionGrant> {
        self.require(Admin::Session(caller), "users:impersonate")?;
        let target = parse_user_id(user_id)?;
        if target == caller.user.id {
            return Err(Error::invalid("user_id", "an admin cannot impersonate themselves"));
        }
        let user = self.user_within_reach(Admin::Session(caller), target).await?;
        let roles = self.config.roles.current();
        let is_admin = BUILT_IN_PERMISSIONS.iter().any(|permission| roles.grants(&user.roles, permission));
        if is_admin && !self.config.impersonation.admins {
            return Err(Error::PermissionDenied);
        }
        let (token, mut session) = self.new_session(&user, client)?;
        let ends_at = session.created_at.saturating_add(self.config.impersonation.ttl);
        session.absolute_expires_at = session.absolute_expires_at.min(ends_at);
        session.expires_at = session.expires_at.min(ends_at);
        session.impersonator = Some(caller.user.id);
        let audit = self
            .admin_audit(
                Admin::Session(caller),
                AuditKind::ImpersonationStarted,
                client,
                format!("{target}:{}", session.id),
            )
            .target(target);
        let created = {
            let (accounts, session) = (self.clone(), session.clone());
            self.to_completion(async move {
                Ok(accounts.session_store().create_session(&session, SessionBasis::User, &audit).await?)
            })
            .await?
        };
        if !created {
            return Err(self.refused_sign_in(target, Error::UserNotFound).await?);
        }
        Ok(SessionGrant { token: token.expose(), session, user })
    }

    /// Refuses to let `admin` reach beyond their own permissions: every
    /// permission of `permissions` must be one their roles grant. So a role
    /// with `users:write` alone cannot grant `admin`, define a role with
    /// `*`, or ban, delete or demote someone who has more than it. The
    /// operator may do all.
    pub(super) fn within_reach<'p>(
        &self,
        admin: Admin<'_>,
        mut permissions: impl Iterator<Item = &'p str>,
    ) -> Result<()> {
        let roles = self.config.roles.current();
        if permissions.all(|permission| admin.allows(&roles, permission)) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// As [`Accounts::within_reach`], for what `roles` grant.
    pub(super) fn roles_within_reach(&self, admin: Admin<'_>, roles: &[String]) -> Result<()> {
        let defined = self.config.roles.current();
        self.within_reach(admin, defined.granted(roles).into_iter())
    }

    /// The user `target`, who must exist and hold nothing beyond `admin`'s
    /// reach.
    async fn user_within_reach(&self, admin: Admin<'_>, target: UserId) -> Result<User> {
        let user = self.user_store().find_user(target).await?.ok_or(Error::UserNotFound)?;
        self.roles_within_reach(admin, &user.roles)?;
        Ok(user)
    }

    /// The audit entry of an admin call: the row's user and session are the
    /// admin's (none for the operator), its detail names the target.
    pub(super) fn admin_audit(
        &self,
        admin: Admin<'_>,
        kind: AuditKind,
        client: &ClientInfo,
        detail: String,
    ) -> AuditEvent {
        let audit = AuditEvent::new(kind, self.clock.now(), client).detail(detail);
        match admin {
            Admin::Session(caller) => audit.user(caller.user.id).session(&caller.session.id),
            Admin::Key(caller) => key_audit(audit, caller),
            Admin::Operator => audit,
        }
    }

    /// Replaces the roles of the user `user_id` (`user` is always kept), for
    /// a caller whose roles grant `users:write`. The user's cached sessions
    /// everywhere drop at once ([`UserChange::Roles`]), so the next check
    /// sees the new roles.
    pub async fn set_user_roles(
        &self,
        admin: Admin<'_>,
        user_id: &str,
        roles: &[String],
        client: &ClientInfo,
    ) -> Result<User> {
        self.require(admin, "users:write")?;
        let target = parse_user_id(user_id)?;
        let wanted = self.defined_roles(roles)?;
        self.user_within_reach(admin, target).await?;
        self.roles_within_reach(admin, &wanted)?;
        let now = self.clock.now();
        let audit = self
            .admin_audit(admin, AuditKind::RolesChanged, client, format!("{target}:{}", wanted.join(" ")))
            .target(target);
        let event = user_changed(target, UserChange::Roles);
        let updated = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.user_store().set_roles(target, &wanted, now, &audit, &event).await?)
            })
            .await?;
        updated.ok_or(Error::UserNotFound)
    }

    /// Bans the user `user_id` until `expires_at` (or until lifted), for a
    /// caller whose roles grant `users:write`: every session of theirs ends
    /// at once, everywhere ([`UserChange::Banned`]), and each sign-in is
    /// refused with [`Error::UserBanned`] while the ban lasts. Banning again
    /// replaces the ban. Callers cannot ban themselves.
    pub async fn ban_user(
        &self,
        admin: Admin<'_>,
        user_id: &str,
        reason: &str,
        expires_at: Option<Timestamp>,
        client: &ClientInfo,
    ) -> Result<User> {
        self.require(admin, "users:write")?;
        let target = parse_user_id(user_id)?;
        if admin.is(target) {
            return Err(Error::invalid("user_id", "an admin cannot ban themselves"));
        }
        let reason = parse_ban_reason(reason)?;
        let now = self.clock.now();
        if expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        self.user_within_reach(admin, target).await?;
        let ban = Ban { reason, banned_at: now, expires_at };
        let audit = self.admin_audit(admin, AuditKind::UserBanned, client, target.to_string()).target(target);
        let event = user_changed(target, UserChange::Banned);
        let updated = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.user_store().set_ban(target, Some(&ban), now, &audit, &event).await?)
            })
            .await?;
        updated.map(|(user, _ended)| user).ok_or(Error::UserNotFound)
    }

    /// Lifts the ban of the user `user_id`, for a caller whose roles grant
    /// `users:write`; a user who is not banned stays as they are.
    pub async fn unban_user(&self, admin: Admin<'_>, user_id: &str, client: &ClientInfo) -> Result<User> {
        self.require(admin, "users:write")?;
        let target = parse_user_id(user_id)?;
        self.user_within_reach(admin, target).await?;
        let now = self.clock.now();
        let audit = self.admin_audit(admin, AuditKind::UserUnbanned, client, target.to_string()).target(target);
        let event = user_changed(target, UserChange::Unbanned);
        let updated = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.user_store().set_ban(target, None, now, &audit, &event).await?)
            })
            .await?;
        updated.map(|(user, _ended)| user).ok_or(Error::UserNotFound)
    }

    /// Ends every session of the user `user_id` (the caller's own too, when
    /// it is theirs), for a caller whose roles grant `sessions:revoke`;
    /// returns how many ended.
    pub async fn revoke_user_sessions(&self, admin: Admin<'_>, user_id: &str, client: &ClientInfo) -> Result<u64> {
        self.require(admin, "sessions:revoke")?;
        let target = parse_user_id(user_id)?;
        self.user_within_reach(admin, target).await?;
        let audit = self.admin_audit(admin, AuditKind::UserSessionsRevoked, client, target.to_string()).target(target);
        let event = user_changed(target, UserChange::SessionsRevoked);
        self.write_and_publish(event, move |accounts, event| async move {
            Ok(accounts.session_store().delete_other_sessions(target, None, &audit, &event).await?)
        })
        .await
    }
}

/// A user an admin creates.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Their email address.
    pub email: String,
    /// Their display name; may be empty.
    pub name: String,
    /// Their password; `None` for an account that signs in another way
    /// (a provider, a mailed code or link, a password reset).
    pub password: Option<String>,
    /// Whether the admin vouches for the address (no verification mail).
    pub email_verified: bool,
    /// Roles besides `user`, each defined in the configuration.
    pub roles: Vec<String>,
}

impl Accounts {
    /// Creates a user without signing them in, for a caller whose roles
    /// grant `users:write` (or the operator, for the first admin). The
    /// password, when given, meets the same policy as at sign-up.
    pub async fn create_user(&self, admin: Admin<'_>, new: NewUser, client: &ClientInfo) -> Result<User> {
        self.require(admin, "users:write")?;
        let (email, name) = collect_violations(Email::parse("email", &new.email), parse_name(&new.name))?;
        let roles = self.defined_roles(&new.roles)?;
        self.roles_within_reach(admin, &roles)?;
        let password_hash = match new.password {
            Some(password) => {
                let password = self.config.passwords.new_password("password", &password, &email)?;
                Some(self.hasher.hash(password).await?)
            }
            None => None,
        };
        let now = self.clock.now();
        let user = User {
            id: UserId::generate(now),
            email,
            name,
            email_verified: new.email_verified,
            roles,
            created_at: now,
            updated_at: now,
            two_factor_enabled: false,
            ban: None,
        };
        let audit = self.admin_audit(admin, AuditKind::UserCreated, client, user.id.to_string()).target(user.id);
        match self.user_store().insert_user(&user, password_hash.as_deref(), &audit).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(Error::EmailTaken),
            Err(other) => Err(other.into()),
        }
    }

    /// `roles` with `user`, sorted and unique; each must be defined (by the
    /// configuration or at run time).
    fn defined_roles(&self, roles: &[String]) -> Result<Vec<String>> {
        let defined = self.config.roles.current();
        if let Some(unknown) = roles.iter().find(|role| !defined.has_role(role)) {
            let violation = FieldViolation::new("roles", format!("{unknown:?} is not a defined role"));
            return Err(Error::InvalidArgument(vec![violation]));
        }
        let mut wanted: Vec<String> = roles.iter().cloned().chain([USER_ROLE.to_owned()]).collect();
        wanted.sort();
        wanted.dedup();
        Ok(wanted)
    }

    /// The user with this email (normalised as at sign-up), for the
    /// operator's tools, which name users by address.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = Email::parse("email", email)?;
        Ok(self.user_store().find_user_by_email(&email).await?)
    }

    /// A page of users matching `filter`, newest first, for a caller whose
    /// roles grant `users:read`. `page_size` 0 means
    /// [`DEFAULT_PAGE_SIZE`]; `page_token` is the previous page's
    /// `next_page_token`, or empty for the first page.
    pub async fn list_users(
        &self,
        admin: Admin<'_>,
        filter: UserFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<UserPage> {
        self.require(admin, "users:read")?;
        let page_size = checked_page_size(page_size)?;
        let role = match filter.role.as_str() {
            "" => None,
            role if self.config.roles.current().has_role(role) => Some(filter.role),
            _ => return Err(Error::invalid("role", "must be a defined role")),
        };
        if filter.email_prefix.len() > crate::email::MAX_EMAIL_BYTES {
            return Err(Error::invalid("email_prefix", "is longer than any email"));
        }
        let query = UserQuery {
            email_prefix: crate::email::normalize_prefix(&filter.email_prefix),
            created_after: filter.created_after,
            created_before: filter.created_before,
            role,
            banned: filter.banned,
            before: parse_page_token(page_token)?.map(UserId),
        };
        let mut users = self.user_store().list_users(&query, self.clock.now(), u64::from(page_size) + 1).await?;
        let next_page_token = next_page(&mut users, page_size, |user| user.id.0);
        Ok(UserPage { users, next_page_token })
    }

    /// A page of the audit trail matching `filter`, newest first, for a
    /// caller whose roles grant `audit:read`. Pages as
    /// [`Accounts::list_users`] does.
    pub async fn list_audit_events(
        &self,
        admin: Admin<'_>,
        filter: AuditFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<AuditPage> {
        self.require(admin, "audit:read")?;
        let page_size = checked_page_size(page_size)?;
        let user_id = match filter.user_id.as_str() {
            "" => None,
            raw => Some(parse_user_id(raw)?),
        };
        let kind = match filter.kind.as_str() {
            "" => None,
            kind if (1..=64).contains(&kind.len()) && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                Some(filter.kind)
            }
            _ => return Err(Error::invalid("kind", "must be an audit kind, e.g. sign_in_failed")),
        };
        let query = AuditQuery {
            user_id,
            kind,
            after: filter.after,
            before: filter.before,
            before_id: parse_page_token(page_token)?,
        };
        let mut events = self.audit_store().list_audit_events(&query, u64::from(page_size) + 1).await?;
        let next_page_token = next_page(&mut events, page_size, |event| event.id);
        Ok(AuditPage { events, next_page_token })
    }

    /// The user `user_id` with their live sessions and linked accounts, for
    /// a caller whose roles grant `users:read`.
    pub async fn get_user(&self, admin: Admin<'_>, user_id: &str) -> Result<UserDetails> {
        self.require(admin, "users:read")?;
        let target = parse_user_id(user_id)?;
        let user = self.user_store().find_user(target).await?.ok_or(Error::UserNotFound)?;
        let sessions = self.session_store().list_sessions(target, self.clock.now()).await?;
        let linked_accounts = self.oauth_store().list_linked_accounts(target).await?;
        Ok(UserDetails { user, sessions, linked_accounts })
    }

    /// Deletes the user `user_id` with everything that is theirs, for a
    /// caller whose roles grant `users:write`; not the caller themselves
    /// (they have [`Accounts::delete_current_user`], which asks for their
    /// password).
    pub async fn delete_user(&self, admin: Admin<'_>, user_id: &str, client: &ClientInfo) -> Result<()> {
        self.require(admin, "users:write")?;
        let target = parse_user_id(user_id)?;
        if admin.is(target) {
            return Err(Error::invalid("user_id", "delete your own account with DeleteCurrentUser"));
        }
        self.user_within_reach(admin, target).await?;
        let audit =
            self.admin_audit(admin, AuditKind::UserDeleted, client, format!("by_admin:{target}")).target(target);
        let event = user_changed(target, UserChange::Deleted);
        let deleted = self
            .write_and_publish(event, move |accounts, event| async move {
                match accounts.user_store().delete_user(target, &audit, &event).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::NotFound) => Ok(false),
                    Err(other) => Err(other.into()),
                }
            })
            .await?;
        if deleted { Ok(()) } else { Err(Error::UserNotFound) }
    }
}

/// `page_size` in range, 0 meaning [`DEFAULT_PAGE_SIZE`].
/// `audit` as made with the key `caller`: the owner's user, if a user's,
/// and the key's id in the detail.
pub(super) fn key_audit(audit: AuditEvent, caller: &KeyPrincipal) -> AuditEvent {
    let detail = format!("api_key={} {}", caller.key.id, audit.detail.as_deref().unwrap_or_default());
    let audit = audit.detail(detail.trim_end().to_owned());
    match &caller.holder {
        KeyHolder::User(owner) => audit.user(owner.id),
        KeyHolder::ServiceAccount(_) => audit,
    }
}

fn checked_page_size(page_size: u32) -> Result<u32> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=MAX_PAGE_SIZE => Ok(page_size),
        _ => Err(Error::invalid("page_size", "must be at most 200")),
    }
}

/// Trims `rows` (fetched one past the page, so that the extra one says a
/// next page exists) to `page_size`; the next page's token when there is
/// one: the id of the page's last row.
fn next_page<T>(rows: &mut Vec<T>, page_size: u32, id: impl Fn(&T) -> Uuid) -> Option<String> {
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    rows.last().filter(|_| more).map(|last| URL_SAFE_NO_PAD.encode(id(last).as_bytes()))
}

/// The id a page token names: the last of the previous page.
fn parse_page_token(token: &str) -> Result<Option<Uuid>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok().and_then(|bytes| <[u8; 16]>::try_from(bytes).ok());
    bytes
        .map(|bytes| Some(Uuid::from_bytes(bytes)))
        .ok_or_else(|| Error::invalid("page_token", "not a page token of this server"))
}

/// The user an admin call names, in the one form Keyport writes ids
/// (lower-case, hyphenated): malformed is invalid input; whether such a
/// user exists is for the store to say.
pub(super) fn parse_user_id(raw: &str) -> Result<UserId> {
    let malformed = || Error::invalid("user_id", "must be a user id (a hyphenated lower-case UUID)");
    let id = Uuid::try_parse(raw).map_err(|_| malformed())?;
    if id.hyphenated().to_string() != raw {
        return Err(malformed());
    }
    Ok(UserId(id))
}

/// A ban's reason: trimmed, 1 to [`MAX_BAN_REASON_CHARS`] characters, no
/// control characters.
fn parse_ban_reason(raw: &str) -> Result<String> {
    let reason = raw.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "must say why"));
    }
    if reason.chars().count() > MAX_BAN_REASON_CHARS {
        return Err(Error::invalid("reason", "must be at most 512 characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err(Error::invalid("reason", "must not contain control characters"));
    }
    Ok(reason.to_owned())
}
