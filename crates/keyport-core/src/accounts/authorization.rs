//! The one authorization call: a credential and the permissions a request
//! needs, answered with a decision per permission and who is asking.

use super::Accounts;
use crate::{
    error::{Error, FieldViolation, Result},
    session::Principal,
};

/// A decided check.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Who is asking: the session and its user (roles included).
    pub principal: Principal,
    /// Per asked permission, in order: allowed or not.
    pub decisions: Vec<bool>,
    /// Every permission the principal's roles grant, sorted.
    pub granted: Vec<String>,
}

impl Authorization {
    /// Whether every asked permission is allowed.
    pub fn allowed(&self) -> bool {
        self.decisions.iter().all(|allowed| *allowed)
    }
}

impl Accounts {
    /// Decides `permissions` for the holder of the session `token`. The
    /// names are checked before the token, so a typo fails the same for
    /// everyone; the session is read as `authenticate` reads it (through
    /// the validated cache, sliding its expiry when due).
    pub async fn authorize(&self, token: &str, permissions: &[String], organization: &str) -> Result<Authorization> {
        if !organization.is_empty() {
            let violation = FieldViolation::new("organization_id", "organizations are not built yet: leave it empty");
            return Err(Error::InvalidArgument(vec![violation]));
        }
        let roles = self.config.roles.current();
        roles.check(permissions)?;
        let principal = self.authenticate(token).await?;
        let decisions = roles.decisions(&principal.user.roles, permissions);
        let granted = roles.granted(&principal.user.roles).into_iter().map(str::to_owned).collect();
        Ok(Authorization { principal, decisions, granted })
    }
}
