//! `keyport admin ...`: bootstrap and break-glass administration from the
//! command line, straight on the configured database, with the server
//! running or not.
//!
//! Whoever can open the database may do all of it, so these commands act as
//! [`Admin::Operator`]: no session, no permission check, audited with no
//! user and the agent [`OPERATOR_AGENT`]. On PostgreSQL the change reaches
//! running replicas, and through them the middleware's caches, at once (its
//! event goes out with the transaction). A running SQLite server has no
//! relay: it sees the change when its own cache entries expire
//! (`sessions.server_cache_ttl_ms`, 5 s), and the middleware's caches when
//! theirs do (`sessions.cache_ttl_secs`, 60 s). For an immediate effect on
//! SQLite, use `AdminService` through the running server.

use std::{fmt::Write as _, io::BufRead, time::Duration};

use clap::{Args, Subcommand};
use keyport_core::{
    Accounts, Error,
    accounts::{Admin, NewUser, UserFilter},
    session::ClientInfo,
    user::User,
};

/// The user agent of the audit entries these commands write.
pub const OPERATOR_AGENT: &str = "keyport admin (command line)";

/// One `keyport admin` command.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user, e.g. the first admin:
    /// `keyport admin create-user --email root@example.com --role admin --password-stdin`.
    CreateUser {
        /// Their email address.
        #[arg(long)]
        email: String,
        /// Their display name.
        #[arg(long, default_value = "")]
        name: String,
        /// A role besides `user` (repeat for more).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input; without
        /// it the user has none (they sign in another way, or reset it).
        #[arg(long)]
        password_stdin: bool,
        /// The address is known to be theirs: no verification needed.
        #[arg(long)]
        email_verified: bool,
    },
    /// Give a user a role.
    Grant(RoleArgs),
    /// Take a role from a user (`user` stays).
    Revoke(RoleArgs),
    /// Ban a user: their sessions end and sign-ins are refused.
    Ban {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// Why (kept for admins and the audit trail).
        #[arg(long)]
        reason: String,
        /// How long, in hours; without it, until `unban`.
        #[arg(long)]
        hours: Option<u64>,
    },
    /// Lift a user's ban.
    Unban {
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
    /// List users, newest first.
    ListUsers {
        /// Only emails starting with this.
        #[arg(long, default_value = "")]
        email_prefix: String,
        /// Only users with this role.
        #[arg(long, default_value = "")]
        role: String,
        /// Only banned users.
        #[arg(long)]
        banned: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// A user and a role.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The user's email address.
    #[arg(long)]
    email: String,
    /// The role, as defined in `[authorization.roles]`.
    #[arg(long)]
    role: String,
}

/// Why a command failed: what to print before exiting non-zero.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The domain refused (bad input, no such user, a taken email).
    #[error("{0}")]
    Refused(#[from] Error),
    /// No user has that email.
    #[error("no user has the email {0:?}")]
    NoSuchUser(String),
    /// Standard input could not be read.
    #[error("cannot read the password from standard input: {0}")]
    Stdin(#[from] std::io::Error),
}

/// Runs `command`; returns what to print on success.
pub async fn run(accounts: &Accounts, command: AdminCommand, stdin: impl BufRead) -> Result<String, AdminError> {
    let client = ClientInfo { ip_address: None, user_agent: Some(OPERATOR_AGENT.to_owned()) };
    let admin = Admin::Operator;
    match command {
        AdminCommand::CreateUser { email, name, roles, password_stdin, email_verified } => {
            let password = if password_stdin { Some(first_line(stdin)?) } else { None };
            let new = NewUser { email, name, password, email_verified, roles };
            let user = accounts.create_user(admin, new, &client).await?;
            Ok(format!("created {}\n", describe(&user)))
        }
        AdminCommand::Grant(RoleArgs { email, role }) => {
            let user = find(accounts, &email).await?;
            let roles: Vec<String> = user.roles.iter().cloned().chain([role]).collect();
            let user = accounts.set_user_roles(admin, &user.id.to_string(), &roles, &client).await?;
            Ok(format!("{}\n", describe(&user)))
        }
        AdminCommand::Revoke(RoleArgs { email, role }) => {
            let user = find(accounts, &email).await?;
            let roles: Vec<String> = user.roles.iter().filter(|held| **held != role).cloned().collect();
            let user = accounts.set_user_roles(admin, &user.id.to_string(), &roles, &client).await?;
            Ok(format!("{}\n", describe(&user)))
        }
        AdminCommand::Ban { email, reason, hours } => {
            let user = find(accounts, &email).await?;
            let expires_at = hours.map(|hours| accounts.now().saturating_add(Duration::from_secs(hours * 3600)));
            let user = accounts.ban_user(admin, &user.id.to_string(), &reason, expires_at, &client).await?;
            Ok(format!("banned {}\n", describe(&user)))
        }
        AdminCommand::Unban { email } => {
            let user = find(accounts, &email).await?;
            let user = accounts.unban_user(admin, &user.id.to_string(), &client).await?;
            Ok(format!("unbanned {}\n", describe(&user)))
        }
        AdminCommand::ListUsers { email_prefix, role, banned, limit } => {
            let filter = UserFilter { email_prefix, role, banned: banned.then_some(true), ..UserFilter::default() };
            let page = accounts.list_users(admin, filter, limit, "").await?;
            let mut out = String::new();
            for user in &page.users {
                let banned = if user.ban_at(accounts.now()).is_some() { " banned" } else { "" };
                let _ = writeln!(out, "{}{banned}", describe(user));
            }
            Ok(out)
        }
    }
}

/// The user with `email`, as the domain normalises addresses.
async fn find(accounts: &Accounts, email: &str) -> Result<User, AdminError> {
    accounts.find_user_by_email(email).await?.ok_or_else(|| AdminError::NoSuchUser(email.to_owned()))
}

/// One line about a user: id, email, roles.
fn describe(user: &User) -> String {
    format!("{} {} roles={}", user.id, user.email, user.roles.join(","))
}

/// The first line of `input`, without its line ending.
fn first_line(mut input: impl BufRead) -> Result<String, AdminError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
