package keyport

import (
	"net/http"
	"strings"
	"time"
)

// SessionCookieName is the name of the session cookie web apps keep the
// session token in, as Keyport's Rust middleware does. The __Host- prefix
// makes browsers insist on Secure, Path=/ and no Domain.
const SessionCookieName = "__Host-keyport_session"

// SessionCookie says how the session cookie is named and written.
// The zero value is the secure default: [SessionCookieName], Secure,
// HttpOnly, SameSite=Lax, Path=/.
type SessionCookie struct {
	// Name is the cookie's name (default [SessionCookieName]).
	Name string
	// Insecure drops the Secure attribute (plain-HTTP development only;
	// ignored for a __Host- name, which browsers refuse without it).
	Insecure bool
	// SameSite is the SameSite attribute (default http.SameSiteLaxMode).
	SameSite http.SameSite
	// Path is the cookie's path (default "/"; always "/" for a __Host- name).
	Path string
}

func (c SessionCookie) name() string {
	if c.Name == "" {
		return SessionCookieName
	}
	return c.Name
}

// Cookie is the session cookie carrying token until expiresAt, for
// http.SetCookie.
func (c SessionCookie) Cookie(token string, expiresAt time.Time) *http.Cookie {
	cookie := c.base(token)
	// http.Cookie reads MaxAge 0 as "no Max-Age" and negative as "delete".
	cookie.MaxAge = int(time.Until(expiresAt).Seconds())
	if cookie.MaxAge <= 0 {
		cookie.MaxAge = -1
	}
	return cookie
}

// ClearCookie is the cookie that deletes the session cookie, for http.SetCookie.
func (c SessionCookie) ClearCookie() *http.Cookie {
	cookie := c.base("")
	cookie.MaxAge = -1
	return cookie
}

// Issue is [SessionCookie.Cookie] as a Set-Cookie header value.
func (c SessionCookie) Issue(token string, expiresAt time.Time) string {
	return c.Cookie(token, expiresAt).String()
}

// Clear is [SessionCookie.ClearCookie] as a Set-Cookie header value.
func (c SessionCookie) Clear() string { return c.ClearCookie().String() }

func (c SessionCookie) base(value string) *http.Cookie {
	name := c.name()
	hostOnly := strings.HasPrefix(name, "__Host-")
	cookie := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     c.Path,
		HttpOnly: true,
		// The __Host- prefix is void without Secure and Path=/; enforce them.
		Secure:   !c.Insecure || hostOnly || c.SameSite == http.SameSiteNoneMode,
		SameSite: c.SameSite,
	}
	if cookie.Path == "" || hostOnly {
		cookie.Path = "/"
	}
	if cookie.SameSite == 0 || cookie.SameSite == http.SameSiteDefaultMode {
		cookie.SameSite = http.SameSiteLaxMode
	}
	return cookie
}

// Read is the session cookie's value in a Cookie request header, or "".
// Other cookies, valid or not, are skipped.
func (c SessionCookie) Read(cookieHeader string) string {
	name := c.name()
	for pair := range strings.SplitSeq(cookieHeader, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
