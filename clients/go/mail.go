package keyport

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
)

// The flows through the user's mailbox (docs/mail.md): Keyport mails a link
// (public_base_url + a page's path + "?token=kpm_...") and, for email
// sign-in and some other flows, a six-digit code. The web app's pages take
// the token or the code and call Keyport. These helpers cover the parts
// every such page repeats.

// TokenFromLink returns the token of a link Keyport mailed: the value of
// its "token" query parameter, such as "kpm_...". link may be absolute
// ("https://app.example.com/reset-password?token=kpm_...") or just the
// path and query of a request, as in a handler's r.URL.String(); spaces
// around it (from a link pasted into a form) are ignored.
//
// It reports false when link does not parse, or has no token, an empty one
// or more than one. It does not check the token itself: Keyport does, and
// answers [ReasonEmailTokenInvalid] for one that is malformed, unknown,
// used, replaced or expired.
func TokenFromLink(link string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil {
		return "", false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", false
	}
	tokens := q["token"]
	if len(tokens) != 1 || strings.TrimSpace(tokens[0]) == "" {
		return "", false
	}
	return strings.TrimSpace(tokens[0]), true
}

// EmailSignInWithCode returns the FinishEmailSignIn request that finishes
// an email sign-in with the six-digit code the user typed (spaces are
// ignored) and the binding of the browser that started it (see
// [EmailSignInBinding]).
func EmailSignInWithCode(binding, code string) *keyportv1.FinishEmailSignInRequest {
	return &keyportv1.FinishEmailSignInRequest{
		Binding: binding,
		Proof:   &keyportv1.FinishEmailSignInRequest_Code{Code: code},
	}
}

// EmailSignInWithToken returns the FinishEmailSignIn request that finishes
// an email sign-in with the token of the mailed link (see [TokenFromLink])
// and the binding of the browser that started it (see
// [EmailSignInBinding]).
func EmailSignInWithToken(binding, token string) *keyportv1.FinishEmailSignInRequest {
	return &keyportv1.FinishEmailSignInRequest{
		Binding: binding,
		Proof:   &keyportv1.FinishEmailSignInRequest_Token{Token: token},
	}
}

// EmailSignInCookieName is the name of the cookie that [EmailSignInCookie]
// writes and [EmailSignInBinding] reads; the Rust SDK's middleware uses the
// same one. The __Host- prefix makes browsers insist on Secure, Path=/ and
// no Domain.
const EmailSignInCookieName = "__Host-keyport_email"

// maxEmailSignIn is the longest an email sign-in's link and code work.
const maxEmailSignIn = 10 * time.Minute

// EmailSignInCookie returns the cookie that keeps an email sign-in's
// binding in the browser that started it, for http.SetCookie:
// HttpOnly, Secure, SameSite=Lax (Strict would not be sent when the user
// opens the mailed link from their mail client), Path=/, until start's
// expires_at (at most 10 minutes). FinishEmailSignIn refuses the link and
// the code without this binding, so a forwarded or phished link signs in
// no other browser.
//
// Secure cookies need HTTPS; browsers make an exception for
// http://localhost only.
func EmailSignInCookie(start *keyportv1.StartEmailSignInResponse) *http.Cookie {
	lifetime := maxEmailSignIn
	if start.GetExpiresAt() != nil {
		lifetime = min(time.Until(start.GetExpiresAt().AsTime()), maxEmailSignIn)
	}
	return &http.Cookie{
		Name:     EmailSignInCookieName,
		Value:    start.GetBinding(),
		Path:     "/",
		MaxAge:   max(int((lifetime+time.Second-1)/time.Second), 1),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// ClearEmailSignInCookie returns the cookie that deletes the one of
// [EmailSignInCookie], for http.SetCookie once the sign-in finished.
func ClearEmailSignInCookie() *http.Cookie {
	return &http.Cookie{
		Name:     EmailSignInCookieName,
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// EmailSignInBinding returns the binding that [EmailSignInCookie] stored
// in the browser that sent r, or "" when r has no such cookie: the link was
// opened, or the code typed, in another browser. FinishEmailSignIn answers
// [ReasonEmailTokenInvalid] to an empty binding, like to a wrong one.
func EmailSignInBinding(r *http.Request) string {
	c, err := r.Cookie(EmailSignInCookieName)
	if err != nil {
		return ""
	}
	return c.Value
}
