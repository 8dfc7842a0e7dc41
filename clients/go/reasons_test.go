package keyport_test

import (
	"strings"
	"testing"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// TestReasonsMatchTheProtoEnum ties the Reason constants to the one list,
// keyport.v1.ErrorReason: each constant is a value of it without the prefix,
// and there is one constant per value.
func TestReasonsMatchTheProtoEnum(t *testing.T) {
	constants := []string{
		keyport.ReasonInvalidArgument, keyport.ReasonInvalidCredentials, keyport.ReasonEmailTaken,
		keyport.ReasonWeakPassword, keyport.ReasonPasswordTooLong, keyport.ReasonMalformedRequest,
		keyport.ReasonUnauthenticated, keyport.ReasonSessionExpired, keyport.ReasonSessionNotFound,
		keyport.ReasonRateLimited, keyport.ReasonResourceExhausted, keyport.ReasonPermissionDenied,
		keyport.ReasonUnavailable, keyport.ReasonInternal, keyport.ReasonOAuthProviderUnknown,
		keyport.ReasonRedirectURINotAllowed, keyport.ReasonOAuthStateInvalid, keyport.ReasonOAuthProviderError,
		keyport.ReasonOAuthIDTokenInvalid, keyport.ReasonAccountLinkRefused, keyport.ReasonAlreadyLinked,
		keyport.ReasonLinkedAccountNotFound, keyport.ReasonLastSignInMethod, keyport.ReasonEventsLost,
		keyport.ReasonPasswordTooCommon, keyport.ReasonPasswordContainsEmail, keyport.ReasonEmailTokenInvalid,
		keyport.ReasonMailDisabled,
		keyport.ReasonEmailNotVerified,
		keyport.ReasonReauthenticationRequired,
		keyport.ReasonSignInChallengeInvalid, keyport.ReasonSecondFactorInvalid, keyport.ReasonStepUpRequired,
		keyport.ReasonSecondFactorAlreadyEnrolled, keyport.ReasonSecondFactorNotEnrolled,
		keyport.ReasonPasskeysDisabled, keyport.ReasonPasskeyInvalid, keyport.ReasonPasskeyNotFound,
		keyport.ReasonPermissionUnknown, keyport.ReasonUserBanned, keyport.ReasonUserNotFound,
		keyport.ReasonAPIKeyNotFound, keyport.ReasonAPIKeyExpired, keyport.ReasonServiceAccountNotFound,
		keyport.ReasonAPIKeyNotAccepted,
		keyport.ReasonOrganizationNotFound, keyport.ReasonMemberNotFound, keyport.ReasonInvitationInvalid,
		keyport.ReasonLastOwner, keyport.ReasonSlugTaken,
		keyport.ReasonAccessTokensDisabled, keyport.ReasonAudienceNotAllowed,
	}
	seen := map[string]bool{}
	for _, reason := range constants {
		if _, ok := keyportv1.ErrorReason_value["ERROR_REASON_"+reason]; !ok || reason == "UNSPECIFIED" {
			t.Errorf("%q is not a value of keyport.v1.ErrorReason", reason)
		}
		if seen[reason] {
			t.Errorf("%q is listed twice", reason)
		}
		seen[reason] = true
	}
	for name := range keyportv1.ErrorReason_value {
		reason := strings.TrimPrefix(name, "ERROR_REASON_")
		if reason != "UNSPECIFIED" && !seen[reason] {
			t.Errorf("keyport.v1.ErrorReason %s has no Reason constant", name)
		}
	}
}
