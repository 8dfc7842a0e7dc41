package keyport

import (
	"net/http"
	"time"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// Passkeys (WebAuthn): every ceremony is two calls. A Start... RPC answers
// the WebAuthn options, JSON for the browser's navigator.credentials.create
// or .get, and a ceremony ("kpk_..."); the finishing RPC takes the ceremony
// back with the browser's answer (its PublicKeyCredential's toJSON(), as a
// string). Each ceremony works once, for 5 minutes.
//
// A passkey sign-in (StartPasskeySignIn, then FinishPasskeySignIn on
// [Client.Sessions]) has no session yet to bind its ceremony to, so it is
// bound to the browser, in the cookie the Python and TypeScript SDKs and the
// Rust middleware use. Registration ([Client.Passkeys]) and step-up
// (StartPasskeyStepUp on [Client.TwoFactor]) ceremonies are bound to the
// calling session, so the page may carry those in a form field.

// PasskeyCeremonyCookieName is the name of the cookie that
// [PasskeyCeremonyCookie] writes and [PasskeyCeremonyFromCookie] reads; the
// Python and TypeScript SDKs and the Rust SDK's middleware use the same
// one. The __Host- prefix makes browsers insist on Secure, Path=/ and no
// Domain.
const PasskeyCeremonyCookieName = "__Host-keyport_passkey"

// maxPasskeyCeremony is the longest the ceremony cookie lasts: a ceremony
// works for 5 minutes, and the Rust middleware's cookie lasts that long.
const maxPasskeyCeremony = 5 * time.Minute

// PasskeyCeremonyCookie returns the cookie that keeps a passkey sign-in's
// ceremony (of StartPasskeySignIn) in the browser that started it, for
// http.SetCookie before answering the options to the page: HttpOnly,
// Secure, SameSite=Lax, Path=/, until start's expires_at (at most 5
// minutes). The finishing request reads it back with
// [PasskeyCeremonyFromCookie]; FinishPasskeySignIn refuses an answer
// without the ceremony it was asked with.
//
// Secure cookies need HTTPS; browsers make an exception for
// http://localhost only.
func PasskeyCeremonyCookie(start *keyportv1.StartPasskeySignInResponse) *http.Cookie {
	lifetime := maxPasskeyCeremony
	if start.GetExpiresAt() != nil {
		lifetime = min(time.Until(start.GetExpiresAt().AsTime()), maxPasskeyCeremony)
	}
	return &http.Cookie{
		Name:     PasskeyCeremonyCookieName,
		Value:    start.GetCeremony(),
		Path:     "/",
		MaxAge:   max(int((lifetime+time.Second-1)/time.Second), 1),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// ClearPasskeyCeremonyCookie returns the cookie that deletes the one of
// [PasskeyCeremonyCookie], for http.SetCookie with the answer of
// FinishPasskeySignIn, whatever it was: the call uses the ceremony up,
// right or wrong.
func ClearPasskeyCeremonyCookie() *http.Cookie {
	return &http.Cookie{
		Name:     PasskeyCeremonyCookieName,
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// PasskeyCeremonyFromCookie returns the ceremony that
// [PasskeyCeremonyCookie] stored in the browser that sent r, for
// FinishPasskeySignIn, or "" when r has no such cookie: the sign-in started
// in another browser, or more than 5 minutes ago. FinishPasskeySignIn
// answers [ReasonPasskeyInvalid] to an empty ceremony, like to an unknown
// one.
func PasskeyCeremonyFromCookie(r *http.Request) string {
	c, err := r.Cookie(PasskeyCeremonyCookieName)
	if err != nil {
		return ""
	}
	return c.Value
}
