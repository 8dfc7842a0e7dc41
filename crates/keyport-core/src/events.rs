//! Session events: what caches of validated sessions must hear about at once.
//!
//! The use cases publish an event after every change that ends a session or
//! alters a user; the server fans them out to `WatchSessionEvents` streams
//! (and, on PostgreSQL, to the other replicas).

use uuid::Uuid;

use crate::{api_key::ApiKeyId, token::SessionId, user::UserId};

/// How a user changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserChange {
    /// Profile fields changed.
    Profile,
    /// The password changed and the other sessions ended.
    Password,
    /// Roles changed.
    Roles,
    /// The user was banned.
    Banned,
    /// The user's ban was lifted.
    Unbanned,
    /// The user was deleted with all their sessions.
    Deleted,
    /// Several sessions of the user ended at once.
    SessionsRevoked,
    /// A second factor was turned on or off, or a session of the user
    /// changed its assurance level.
    SecondFactor,
    /// A membership of the user was added, removed or given another role,
    /// an organization of theirs was deleted, or a session of theirs chose
    /// another active organization.
    Organizations,
}

impl UserChange {
    /// Stable name, for the wire between replicas.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Password => "password",
            Self::Roles => "roles",
            Self::Banned => "banned",
            Self::Unbanned => "unbanned",
            Self::Deleted => "deleted",
            Self::SessionsRevoked => "sessions_revoked",
            Self::SecondFactor => "second_factor",
            Self::Organizations => "organizations",
        }
    }

    /// Reads a name written by [`UserChange::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Profile,
            Self::Password,
            Self::Roles,
            Self::Banned,
            Self::Unbanned,
            Self::Deleted,
            Self::SessionsRevoked,
            Self::SecondFactor,
            Self::Organizations,
        ]
        .into_iter()
        .find(|change| change.as_str() == name)
    }
}

/// Something a session cache must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// One session ended early.
    SessionRevoked {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
    },
    /// A user changed; every cached session of theirs is stale.
    UserChanged {
        /// The user.
        user_id: UserId,
        /// What changed.
        change: UserChange,
    },
    /// The grants of the run-time roles changed: every cached decision is
    /// stale (sessions are not).
    RolesChanged,
    /// API keys were revoked, or their owner changed: every cached answer
    /// for them is stale.
    ApiKeysChanged {
        /// The user or service account whose keys changed.
        owner_id: Uuid,
        /// The one key that changed; `None` for every key of the owner.
        key_id: Option<ApiKeyId>,
    },
}

/// Where the use cases send events.
pub trait EventPublisher: Send + Sync + 'static {
    /// Publishes `event`. Must not block; delivery is best effort, and
    /// subscribers that miss events are told to resynchronise.
    fn publish(&self, event: SessionEvent);
}

/// Drops every event: for tools that change nothing watched.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventPublisher for NoEvents {
    fn publish(&self, _event: SessionEvent) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_changes_round_trip_by_name() {
        for change in [
            UserChange::Profile,
            UserChange::Password,
            UserChange::Roles,
            UserChange::Banned,
            UserChange::Unbanned,
            UserChange::Deleted,
            UserChange::SessionsRevoked,
            UserChange::SecondFactor,
            UserChange::Organizations,
        ] {
            assert_eq!(UserChange::parse(change.as_str()), Some(change));
        }
        assert_eq!(UserChange::parse("nope"), None);
    }
}
