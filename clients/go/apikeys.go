package keyport

import "strings"

// API keys: long-lived credentials of machine callers, "kpa_<id>.<secret>".
// The RPCs are the generated ones on [Client.APIKeys] (CreateApiKey,
// ListApiKeys, RevokeApiKey, RotateApiKey), each called with the owner's
// session token on its context ([WithToken]), or an admin's for a service
// account's keys (ServiceAccountId); the service accounts themselves are
// AdminService calls on [Client.Admin] (CreateServiceAccount,
// ListServiceAccounts, SetServiceAccountRoles, DeleteServiceAccount).
//
// A key is checked as a session token is, with Authorize (its Token), and
// may be the bearer of AdminService calls ([WithToken]) when its scopes and
// its owner's roles grant what they need. Every other call wants a session
// and answers [ReasonAPIKeyNotAccepted] to a key; [IsAPIKey] tells the two
// apart before the call.

// APIKeyPrefix is the prefix of every API key ("kpa_<id>.<secret>");
// session tokens start with "kp_".
const APIKeyPrefix = "kpa_"

// IsAPIKey reports whether token looks like an API key rather than a
// session token: what decides which check a bearer credential gets (a key:
// Authorize; a session: GetSession too). It is not a validation: Keyport
// still answers [ReasonUnauthenticated] to a malformed, unknown or revoked
// key.
func IsAPIKey(token string) bool {
	return strings.HasPrefix(token, APIKeyPrefix)
}
