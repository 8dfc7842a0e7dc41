//! Error reasons on the wire: `google.rpc.ErrorInfo.reason` is the name of a
//! [`ErrorReason`] value without its `ERROR_REASON_` prefix.

use crate::v1::ErrorReason;

/// `google.rpc.ErrorInfo.domain` of every Keyport error.
pub const ERROR_DOMAIN: &str = "keyport.dev";

const PREFIX: &str = "ERROR_REASON_";

/// The reason as sent in `ErrorInfo.reason`: `ErrorReason::EmailTaken` is
/// `"EMAIL_TAKEN"`.
pub fn wire_name(reason: ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix(PREFIX).unwrap_or(name)
}

/// The reason a wire string names, if this build knows it. The unspecified
/// value is never sent, so it is never parsed either.
pub fn parse(wire: &str) -> Option<ErrorReason> {
    every().find(|reason| wire_name(*reason) == wire)
}

/// Every reason that can be sent, in proto order (all but `UNSPECIFIED`).
pub fn every() -> impl Iterator<Item = ErrorReason> {
    // Far past the last value, so a reserved gap in the numbers hides nothing.
    (1..=1024).filter_map(|value| ErrorReason::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_drop_the_prefix_and_parse_back() {
        assert_eq!(wire_name(ErrorReason::EmailTaken), "EMAIL_TAKEN");
        let all: Vec<_> = every().collect();
        assert!(all.len() > 20, "{all:?}");
        assert!(!all.contains(&ErrorReason::Unspecified));
        for reason in all {
            assert!(!wire_name(reason).starts_with(PREFIX));
            assert_eq!(parse(wire_name(reason)), Some(reason));
        }
        for unknown in ["", "UNSPECIFIED", "ERROR_REASON_EMAIL_TAKEN", "email_taken", "NOT_A_REASON"] {
            assert_eq!(parse(unknown), None, "{unknown}");
        }
    }
}
