package keyport

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// Second factors (docs/second-factors.md): a user with an authenticator
// app or a passkey gets no session from a first factor alone. SignIn,
// FinishEmailSignIn and FinishOAuth answer a SignInChallenge, and
// CompleteSignIn with the challenge and a TOTP code, a backup code or a
// passkey's answer issues the (AAL2) session. These helpers tell the
// answers apart, keep the challenge in the browser that signed in (in the
// cookie the Python and TypeScript SDKs and the Rust middleware use) and
// build the CompleteSignIn request; the RPCs stay the generated ones on
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
// with CompleteSignIn (see [CompleteSignInWithTotp],
// [CompleteSignInWithBackupCode] and [CompleteSignInWithPasskey]). When its
// factors have SECOND_FACTOR_PASSKEY, its passkey_options are the WebAuthn
// request options for the browser's navigator.credentials.get (empty
// otherwise). Keep the challenge ("kpc_...") where only this browser has
// it, the cookie of [ChallengeCookie]: it stands for the passed first
// factor.
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

// ChallengeCookieName is the name of the cookie that [ChallengeCookie]
// writes and [ChallengeFromCookie] reads; the Python and TypeScript SDKs
// and the Rust SDK's middleware use the same one. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain.
const ChallengeCookieName = "__Host-keyport_challenge"

// maxChallenge is the longest the challenge cookie lasts, as in the Rust
// middleware (a challenge works for 5 minutes).
const maxChallenge = 10 * time.Minute

// ChallengeCookie returns the cookie that keeps a sign-in's second-factor
// challenge (of [SignInChallenge]) in the browser that signed in, for
// http.SetCookie before sending it to the code page: HttpOnly, Secure,
// SameSite=Lax, Path=/, until challenge's expires_at (at most 10 minutes).
// The code page reads it back with [ChallengeFromCookie]. The challenge
// stands for the passed first factor: keep it in this cookie, never in a
// page or a URL. When the user has a passkey, the cookie also carries the
// challenge's passkey_options for the code page
// ([ChallengePasskeyOptionsFromCookie]), after a "." in base64url, as the
// Rust middleware writes it.
//
// Secure cookies need HTTPS; browsers make an exception for
// http://localhost only.
func ChallengeCookie(challenge *keyportv1.SignInChallenge) *http.Cookie {
	lifetime := maxChallenge
	if challenge.GetExpiresAt() != nil {
		lifetime = min(time.Until(challenge.GetExpiresAt().AsTime()), maxChallenge)
	}
	value := challenge.GetChallenge()
	if options := challenge.GetPasskeyOptions(); options != "" {
		value += "." + base64.RawURLEncoding.EncodeToString([]byte(options))
	}
	return &http.Cookie{
		Name:     ChallengeCookieName,
		Value:    value,
		Path:     "/",
		MaxAge:   max(int((lifetime+time.Second-1)/time.Second), 1),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// ClearChallengeCookie returns the cookie that deletes the one of
// [ChallengeCookie], for http.SetCookie once CompleteSignIn succeeded (or
// answered [ReasonSignInChallengeInvalid]): the challenge is spent.
func ClearChallengeCookie() *http.Cookie {
	return &http.Cookie{
		Name:     ChallengeCookieName,
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// ChallengeFromCookie returns the challenge that [ChallengeCookie] stored
// in the browser that sent r, for the code page's CompleteSignIn, or ""
// when r has no such cookie: this browser did not sign in, or the cookie
// expired with the challenge. Send the user back to sign in;
// CompleteSignIn answers [ReasonSignInChallengeInvalid] to an empty
// challenge, like to an unknown one.
func ChallengeFromCookie(r *http.Request) string {
	c, err := r.Cookie(ChallengeCookieName)
	if err != nil {
		return ""
	}
	challenge, _, _ := strings.Cut(c.Value, ".")
	return challenge
}

// ChallengePasskeyOptionsFromCookie returns the passkey request options
// that [ChallengeCookie] stored with the challenge in the browser that sent
// r, for the code page to offer the user's passkeys: it passes them to
// navigator.credentials.get (PublicKeyCredential.parseRequestOptionsFromJSON),
// and the answer's toJSON() to [CompleteSignInWithPasskey]. It returns ""
// when r has no challenge cookie or the challenge has no passkey (its
// passkey_options were empty): ask for a code only.
func ChallengePasskeyOptionsFromCookie(r *http.Request) string {
	c, err := r.Cookie(ChallengeCookieName)
	if err != nil {
		return ""
	}
	_, encoded, _ := strings.Cut(c.Value, ".")
	options, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil || !utf8.Valid(options) {
		return "" // not written by ChallengeCookie
	}
	return string(options)
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

// CompleteSignInWithPasskey returns the CompleteSignIn request that
// answers challenge with a passkey: credential is the PublicKeyCredential
// (its toJSON(), as a string) that navigator.credentials.get answered to
// the challenge's passkey_options.
func CompleteSignInWithPasskey(challenge, credential string) *keyportv1.CompleteSignInRequest {
	return &keyportv1.CompleteSignInRequest{
		Challenge: challenge,
		Answer:    &keyportv1.CompleteSignInRequest_PasskeyCredential{PasskeyCredential: credential},
	}
}
