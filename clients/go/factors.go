package keyport

import (
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// Second factors (docs/second-factors.md): a user with an authenticator
// app on gets no session from a first factor alone. SignIn,
// FinishEmailSignIn and FinishOAuth answer a SignInChallenge, and
// CompleteSignIn with the challenge and a TOTP or backup code issues the
// (AAL2) session. These helpers tell the answers apart and build the
// CompleteSignIn request; the RPCs stay the generated ones on
// [Client.Sessions] and [Client.TwoFactor].

// ChallengeResponse is a sign-in's answer that may be a second-factor
// challenge: *keyportv1.SignInResponse,
// *keyportv1.FinishEmailSignInResponse and *keyportv1.FinishOAuthResponse.
type ChallengeResponse interface {
	GetChallenge() *keyportv1.SignInChallenge
}

// SignInChallenge returns the second-factor challenge of a sign-in's
// answer (SignIn, FinishEmailSignIn or FinishOAuth), and reports whether
// it is one: then the user has a second factor, and the sign-in finishes
// with CompleteSignIn (see [CompleteSignInWithTotp] and
// [CompleteSignInWithBackupCode]). Keep the challenge ("kpc_...") where
// only this browser has it, such as an HttpOnly cookie: it stands for the
// passed first factor.
//
// It reports false for an answer that holds a session (or, for
// FinishOAuth, a linked account), and for a nil one.
func SignInChallenge(resp ChallengeResponse) (*keyportv1.SignInChallenge, bool) {
	if resp == nil {
		return nil, false
	}
	challenge := resp.GetChallenge()
	return challenge, challenge != nil
}

// CompleteSignInWithTotp returns the CompleteSignIn request that answers
// challenge (the Challenge of a [SignInChallenge]) with the six-digit code
// of the authenticator app (spaces are ignored).
func CompleteSignInWithTotp(challenge, code string) *keyportv1.CompleteSignInRequest {
	return &keyportv1.CompleteSignInRequest{
		Challenge: challenge,
		Answer:    &keyportv1.CompleteSignInRequest_TotpCode{TotpCode: code},
	}
}

// CompleteSignInWithBackupCode returns the CompleteSignIn request that
// answers challenge with one of the user's backup codes
// ("xxxx-xxxx-xxxx-xxxx"; case, spaces and dashes are ignored). Each works
// once.
func CompleteSignInWithBackupCode(challenge, code string) *keyportv1.CompleteSignInRequest {
	return &keyportv1.CompleteSignInRequest{
		Challenge: challenge,
		Answer:    &keyportv1.CompleteSignInRequest_BackupCode{BackupCode: code},
	}
}
