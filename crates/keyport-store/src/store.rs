//! [`SeaStore`]: the SeaORM implementation of the storage contract.

use std::time::Duration;

use async_trait::async_trait;
use keyport_core::{
    Clock, SystemClock, Timestamp,
    audit::AuditEvent,
    email::Email,
    events::SessionEvent,
    oauth::{LinkedAccount, OAuthFlow},
    session::Session,
    store::{Credentials, Expired, SessionBasis, Store, StoreError, StoreResult, UnlinkOutcome},
    token::SessionId,
    user::{User, UserId},
};
use keyport_migration::Migrator;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Condition, Expr},
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;

use crate::{
    convert::{classify, session_from_row, user_from_row, user_to_row},
    entity::{account, audit_event, password, session, user},
    oauth,
    session_lookup::SessionLookup,
    write::{begin, insert_audit, insert_session, lock_user, notify},
};

/// Which database a [`SeaStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if it is one Keyport supports.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Pooled connections at most.
    pub max_connections: u32,
    /// How long to wait for a connection before giving up.
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    /// Defaults measured to suit each backend on a small machine.
    pub fn for_backend(backend: Backend) -> Self {
        Self {
            // SQLite serialises writers anyway; a few readers double throughput.
            max_connections: match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            },
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Users, sessions and the audit trail in a SeaORM database.
#[derive(Debug, Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    backend: Backend,
    sessions: SessionLookup,
    /// Marks this process's own event notifications, which it has applied
    /// already, so its relay can skip them.
    origin: String,
}

impl SeaStore {
    /// Opens a pool on `url` (`sqlite://path?mode=rwc` or `postgres://...`).
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let backend = Backend::of_url(url)
            .ok_or_else(|| StoreError::Other("database URL must be sqlite: or postgres://".into()))?;
        let mut connect = ConnectOptions::new(url);
        connect
            .max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            .sqlx_logging(false);
        match backend {
            Backend::Sqlite => {
                // A local file does not drop connections: skip the per-acquire ping.
                connect.test_before_acquire(false).map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                        .create_if_missing(true)
                });
            }
            Backend::Postgres => {
                // Connections die when the server restarts; check them before use.
                connect.test_before_acquire(true);
            }
        }
        let db = Database::connect(connect).await.map_err(classify)?;
        let sessions = SessionLookup::new(&db, backend);
        Ok(Self { db, backend, sessions, origin: SystemClock.now().uuid_v7().simple().to_string() })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        Migrator::up(&self.db, None).await.map_err(classify)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The tag this process's event notifications carry.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The underlying connection, for tests and admin tooling.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Closes the pool.
    pub async fn close(self) -> StoreResult<()> {
        self.db.close().await.map_err(classify)
    }
}

#[async_trait]
impl Store for SeaStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await.map_err(classify)
    }

    async fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        user::Entity::insert(user_to_row(user)).exec_without_returning(&txn).await.map_err(classify)?;
        let password = password::ActiveModel {
            user_id: Set(user.id.to_string()),
            hash: Set(password_hash.to_owned()),
            updated_at: Set(user.created_at.unix_millis()),
        };
        password::Entity::insert(password).exec_without_returning(&txn).await.map_err(classify)?;
        insert_session(&txn, session).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn find_credentials_by_email(&self, email: &Email) -> StoreResult<Option<Credentials>> {
        let Some(row) = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .all(&self.db)
            .await
            .map_err(classify)?
            .pop()
        else {
            return Ok(None);
        };
        let user = user_from_row(row)?;
        let Some(password_hash) = self.find_password_hash(user.id).await? else {
            return Ok(None);
        };
        Ok(Some(Credentials { user, password_hash }))
    }

    async fn find_password_hash(&self, user_id: UserId) -> StoreResult<Option<String>> {
        // `.all()` rather than `.one()`: `.one()` binds its LIMIT, which makes
        // SQLite re-prepare the statement on every call.
        let rows = password::Entity::find_by_id(user_id.to_string()).all(&self.db).await.map_err(classify)?;
        Ok(rows.into_iter().next().map(|row| row.hash))
    }

    async fn create_session(
        &self,
        session: &Session,
        basis: SessionBasis<'_>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        // The user's row lock orders this against a concurrent password
        // change or deletion: either they see this session and end it, or
        // this sees their change and refuses.
        if !lock_user(&txn, session.user_id).await? {
            return Ok(false);
        }
        if let SessionBasis::Password { verified_hash, rehash } = basis {
            let owner = session.user_id.to_string();
            let current = password::Entity::find_by_id(owner.clone()).all(&txn).await.map_err(classify)?.pop();
            if current.is_none_or(|row| row.hash != verified_hash) {
                return Ok(false);
            }
            if let Some(rehash) = rehash {
                password::Entity::update_many()
                    .col_expr(password::Column::Hash, Expr::value(rehash))
                    .filter(password::Column::UserId.eq(owner))
                    .exec(&txn)
                    .await
                    .map_err(classify)?;
            }
        }
        insert_session(&txn, session).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn find_session(&self, id: &SessionId) -> StoreResult<Option<(Session, User)>> {
        self.sessions.find(id).await
    }

    async fn refresh_session(
        &self,
        id: &SessionId,
        expires_at: Timestamp,
        refreshed_at: Timestamp,
    ) -> StoreResult<bool> {
        let updated = session::Entity::update_many()
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at.unix_millis()))
            .col_expr(session::Column::RefreshedAt, Expr::value(refreshed_at.unix_millis()))
            .filter(session::Column::Id.eq(id.as_str()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(updated.rows_affected > 0)
    }

    async fn list_sessions(&self, user_id: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .filter(session::Column::ExpiresAt.gt(now.unix_millis()))
            .filter(session::Column::AbsoluteExpiresAt.gt(now.unix_millis()))
            .order_by_desc(session::Column::CreatedAt)
            .limit(1000)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(session_from_row).collect()
    }

    async fn delete_session(
        &self,
        user_id: UserId,
        id: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let deleted = session::Entity::delete_many()
            .filter(session::Column::Id.eq(id.as_str()))
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?
            .rows_affected;
        if deleted > 0 {
            insert_audit(&txn, audit).await?;
            notify(&txn, &self.origin, event).await?;
        }
        txn.commit().await.map_err(classify)?;
        Ok(deleted > 0)
    }

    async fn delete_other_sessions(
        &self,
        user_id: UserId,
        keep: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64> {
        let txn = begin(&self.db).await?;
        let deleted = delete_sessions_except(&txn, user_id, keep).await?;
        insert_audit(&txn, &audit.clone().detail(format!("revoked:{deleted}"))).await?;
        if deleted > 0 {
            notify(&txn, &self.origin, event).await?;
        }
        txn.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn update_user_name(
        &self,
        user_id: UserId,
        name: &str,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<User> {
        let txn = begin(&self.db).await?;
        user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value(name))
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let row = user::Entity::find_by_id(user_id.to_string()).all(&txn).await.map_err(classify)?.pop();
        // Deleted meanwhile: the caller's session went with the user.
        let Some(row) = row else { return Err(StoreError::NotFound) };
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        user_from_row(row)
    }

    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep: &SessionId,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Err(StoreError::NotFound);
        }
        password::Entity::update_many()
            .col_expr(password::Column::Hash, Expr::value(password_hash))
            .col_expr(password::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(password::Column::UserId.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let deleted = delete_sessions_except(&txn, user_id, keep).await?;
        insert_audit(&txn, &audit.clone().detail(format!("revoked:{deleted}"))).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn delete_user(&self, user_id: UserId, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<()> {
        let id = user_id.to_string();
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Err(StoreError::NotFound);
        }
        // Explicit deletes rather than relying on ON DELETE CASCADE, which
        // SQLite honours only when foreign keys are switched on.
        session::Entity::delete_many().filter(session::Column::UserId.eq(&id)).exec(&txn).await.map_err(classify)?;
        account::Entity::delete_many().filter(account::Column::UserId.eq(&id)).exec(&txn).await.map_err(classify)?;
        password::Entity::delete_many().filter(password::Column::UserId.eq(&id)).exec(&txn).await.map_err(classify)?;
        user::Entity::delete_many().filter(user::Column::Id.eq(&id)).exec(&txn).await.map_err(classify)?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)
    }

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        insert_audit(&self.db, event).await
    }

    async fn delete_expired(&self, now: Timestamp, audit_before: Timestamp) -> StoreResult<Expired> {
        let sessions = session::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(session::Column::ExpiresAt.lte(now.unix_millis()))
                    .add(session::Column::AbsoluteExpiresAt.lte(now.unix_millis())),
            )
            .exec(&self.db)
            .await
            .map_err(classify)?
            .rows_affected;
        let oauth_flows = oauth::delete_expired_flows(&self.db, now).await?;
        let audit_events = audit_event::Entity::delete_many()
            .filter(audit_event::Column::At.lt(audit_before.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?
            .rows_affected;
        Ok(Expired { sessions, oauth_flows, audit_events })
    }

    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()> {
        oauth::create_flow(&self.db, flow).await
    }

    async fn take_oauth_flow(&self, state_hash: &[u8; 32]) -> StoreResult<Option<OAuthFlow>> {
        oauth::take_flow(&self.db, state_hash).await
    }

    async fn find_linked_account(
        &self,
        provider_id: &str,
        subject: &str,
    ) -> StoreResult<Option<(LinkedAccount, User)>> {
        oauth::find_account(&self.db, provider_id, subject).await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        oauth::find_user_by_email(&self.db, email).await
    }

    async fn create_oauth_user(
        &self,
        user: &User,
        account: &LinkedAccount,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        oauth::create_oauth_user(&self.db, user, account, session, audit).await
    }

    async fn link_account(&self, account: &LinkedAccount, audit: &AuditEvent) -> StoreResult<()> {
        oauth::link_account(&self.db, account, audit).await
    }

    async fn list_linked_accounts(&self, user_id: UserId) -> StoreResult<Vec<LinkedAccount>> {
        oauth::list_accounts(&self.db, user_id).await
    }

    async fn unlink_account(
        &self,
        user_id: UserId,
        provider_id: &str,
        subject: &str,
        audit: &AuditEvent,
    ) -> StoreResult<UnlinkOutcome> {
        oauth::unlink_account(&self.db, user_id, provider_id, subject, audit).await
    }
}

async fn delete_sessions_except(db: &impl ConnectionTrait, user_id: UserId, keep: &SessionId) -> StoreResult<u64> {
    let result = session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id.to_string()))
        .filter(session::Column::Id.ne(keep.as_str()))
        .exec(db)
        .await
        .map_err(classify)?;
    Ok(result.rows_affected)
}
