package keyport

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// GuardConfig says how a [Guard] reads requests.
type GuardConfig struct {
	// Cookie is the session cookie (zero value: the secure default).
	Cookie SessionCookie
	// TrustForwardedFor takes the client's address from the right-most
	// X-Forwarded-For entry (the one your own proxy appended) instead of
	// the TCP peer. Only set it behind a proxy that appends it.
	TrustForwardedFor bool
	// AllowedOrigins are the origins ("https://app.example.com") allowed to
	// send cookie-authenticated unsafe requests (POST, PUT, ...); empty
	// means the request's own Host only.
	AllowedOrigins []string
}

// Guard authenticates requests against Keyport through a [SessionCache]:
// a bearer token (Authorization: Bearer <token>) or the session cookie,
// checked with GetSession (or Authorize when permissions are required),
// with the end user's address and user agent forwarded. It fails closed:
// when Keyport cannot be asked, the request is refused, never let through.
//
// The HTTP adapters are [Guard.Middleware], [Guard.OptionalMiddleware] and
// [Guard.RequirePermissions]; the gRPC ones [Guard.UnaryServerInterceptor]
// and [Guard.StreamServerInterceptor]. A Guard is safe for concurrent use.
type Guard struct {
	cache *SessionCache
	cfg   GuardConfig
}

// NewGuard returns a guard checking tokens through cache.
func NewGuard(cache *SessionCache, cfg GuardConfig) *Guard {
	return &Guard{cache: cache, cfg: cfg}
}

// Cache is the guard's session cache.
func (g *Guard) Cache() *SessionCache { return g.cache }

// Request is what the guard reads of an incoming request: its credentials
// and the end user's details to forward to Keyport.
type Request struct {
	// Authorization is the Authorization header ("Bearer <token>").
	Authorization string
	// Cookie is the Cookie header, where the session cookie may be.
	Cookie string
	// ClientIP is the end user's address.
	ClientIP string
	// UserAgent is the end user's user agent.
	UserAgent string
}

// RequestFromHTTP reads r's credentials, client address (the TCP peer, or
// X-Forwarded-For with TrustForwardedFor) and user agent.
func (g *Guard) RequestFromHTTP(r *http.Request) Request {
	return Request{
		Authorization: r.Header.Get("Authorization"),
		Cookie:        strings.Join(r.Header.Values("Cookie"), "; "),
		ClientIP:      g.clientIP(r),
		UserAgent:     r.UserAgent(),
	}
}

func (g *Guard) clientIP(r *http.Request) string {
	if g.cfg.TrustForwardedFor {
		if values := r.Header.Values("X-Forwarded-For"); len(values) > 0 {
			last := values[len(values)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip := strings.TrimSpace(last); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Outcome is the guard's decision about one request.
type Outcome struct {
	// Principal is who is calling; nil when refused.
	Principal *Principal
	// Refusal says why the request is refused; nil when allowed.
	Refusal *Refusal
	// SetCookie, when not empty, is a Set-Cookie value to send with the
	// answer: the cookie re-issued because Keyport pushed the session's
	// expiry forward, or deleted because its session is dead.
	SetCookie string
}

// RefusalKind is the kind of a [Refusal].
type RefusalKind int

// The kinds of refusal.
const (
	// RefusalMissing: no bearer token and no session cookie (401).
	RefusalMissing RefusalKind = iota + 1
	// RefusalInvalid: Keyport refused the token: malformed, unknown,
	// revoked or expired, or an API key where a session is needed (401).
	RefusalInvalid
	// RefusalForbidden: a valid caller without a required permission (403).
	RefusalForbidden
	// RefusalUnavailable: Keyport could not be asked (down, overloaded, or
	// no answer in time). The guard fails closed (503).
	RefusalUnavailable
	// RefusalMisconfigured: the app requires a permission outside
	// Keyport's catalogue ([ReasonPermissionUnknown]): a bug to fix (500).
	RefusalMisconfigured
	// RefusalCrossSite: a cookie-authenticated unsafe request from
	// another origin (CSRF), refused by the HTTP middleware (403).
	RefusalCrossSite
)

// Refusal is why the guard refused a request. It is an error; Err is
// Keyport's error behind it, if any.
type Refusal struct {
	Kind RefusalKind
	// Reason is stable, sent in JSON bodies and gRPC ErrorInfo:
	// UNAUTHENTICATED, SESSION_EXPIRED, API_KEY_NOT_ACCEPTED, FORBIDDEN,
	// AUTH_UNAVAILABLE, PERMISSION_UNKNOWN or CSRF_REJECTED (the reasons
	// of Keyport's Rust middleware).
	Reason string
	// Err is the error Keyport (or the connection to it) answered.
	Err error
}

// Refusal reasons that are the guard's own (the others are Keyport's).
const (
	RefusalReasonForbidden   = "FORBIDDEN"
	RefusalReasonUnavailable = "AUTH_UNAVAILABLE"
	RefusalReasonCrossSite   = "CSRF_REJECTED"
)

// Error says why, with Keyport's error if there is one.
func (r *Refusal) Error() string {
	if r.Err != nil {
		return fmt.Sprintf("keyport guard: %s: %s: %v", r.Reason, r.Message(), r.Err)
	}
	return fmt.Sprintf("keyport guard: %s: %s", r.Reason, r.Message())
}

// Unwrap returns Keyport's error, for errors.Is with the sentinels.
func (r *Refusal) Unwrap() error { return r.Err }

// Message is a short text for the caller.
func (r *Refusal) Message() string {
	switch r.Kind {
	case RefusalMissing:
		return "sign in first"
	case RefusalInvalid:
		return "the session is not valid"
	case RefusalForbidden:
		return "missing permission"
	case RefusalUnavailable:
		return "authentication is unavailable"
	case RefusalMisconfigured:
		return "the route requires a permission Keyport does not know"
	case RefusalCrossSite:
		return "cross-origin request refused"
	}
	return "refused"
}

// HTTPStatus is the HTTP status the refusal is answered with.
func (r *Refusal) HTTPStatus() int {
	switch r.Kind {
	case RefusalMissing, RefusalInvalid:
		return http.StatusUnauthorized
	case RefusalForbidden, RefusalCrossSite:
		return http.StatusForbidden
	case RefusalUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// maxTokenLength bounds what is sent to Keyport: a real token is about 70
// characters, and anything far longer is junk that costs nothing to refuse.
const maxTokenLength = 1024

// Authenticate checks req's session (bearer token first, then the session
// cookie) through the cache. An API key is refused
// ([ReasonAPIKeyNotAccepted]): keys are for permission checks only.
func (g *Guard) Authenticate(ctx context.Context, req Request) Outcome {
	return g.Authorize(ctx, req)
}

// Authorize is [Guard.Authenticate] that also requires every one of
// permissions ("resource:action"), decided by Keyport's Authorize and
// cached with the session. With permissions, a bearer API key is accepted
// (its scopes and owner's roles decide); a key in the cookie never is.
func (g *Guard) Authorize(ctx context.Context, req Request, permissions ...string) Outcome {
	token, fromCookie := g.token(req)
	if token == "" {
		return Outcome{Refusal: &Refusal{Kind: RefusalMissing, Reason: ReasonUnauthenticated}}
	}
	out := g.check(ctx, token, ClientInfo{IP: req.ClientIP, UserAgent: req.UserAgent}, permissions)
	switch {
	case !fromCookie:
		out.SetCookie = "" // a bearer token has no cookie to re-issue
	case out.Refusal != nil && out.Refusal.Kind == RefusalInvalid:
		out.SetCookie = g.cfg.Cookie.Clear()
	}
	return out
}

// check decides token; SetCookie is set when the expiry slid.
func (g *Guard) check(ctx context.Context, token string, info ClientInfo, permissions []string) Outcome {
	if len(permissions) == 0 {
		if IsAPIKey(token) {
			return Outcome{Refusal: &Refusal{Kind: RefusalInvalid, Reason: ReasonAPIKeyNotAccepted}}
		}
		// A hit first: a cached token is one Keyport accepted, so the
		// checks below would only cost time.
		if p := g.cache.Lookup(token); p != nil {
			return Outcome{Principal: p}
		}
	} else if d := g.cache.DecideCached(token, permissions); d != nil {
		return g.decided(token, d)
	}
	if !plausibleToken(token) {
		return Outcome{Refusal: &Refusal{Kind: RefusalInvalid, Reason: ReasonUnauthenticated}}
	}
	if len(permissions) == 0 {
		p, refreshed, err := g.cache.GetSession(ctx, token, info)
		if err != nil {
			return Outcome{Refusal: refusalFor(err)}
		}
		return g.allowed(token, p, refreshed)
	}
	d, err := g.cache.Authorize(ctx, token, permissions, info)
	if err != nil {
		return Outcome{Refusal: refusalFor(err)}
	}
	return g.decided(token, d)
}

// decided is the outcome of a permission decision.
func (g *Guard) decided(token string, d *Decision) Outcome {
	if !d.All() {
		return Outcome{Refusal: &Refusal{Kind: RefusalForbidden, Reason: RefusalReasonForbidden}}
	}
	return g.allowed(token, d.Principal, d.Refreshed)
}

// plausibleToken: short printable ASCII. Anything else is junk that costs
// nothing to refuse here (and would fail in gRPC metadata).
func plausibleToken(token string) bool {
	if len(token) > maxTokenLength {
		return false
	}
	for i := range len(token) {
		if c := token[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// allowed is the outcome of a valid principal; a slid expiry re-issues the cookie.
func (g *Guard) allowed(token string, p *Principal, refreshed bool) Outcome {
	out := Outcome{Principal: p}
	if refreshed && p.Session != nil {
		out.SetCookie = g.cfg.Cookie.Issue(token, p.Session.GetExpiresAt().AsTime())
	}
	return out
}

// token is req's bearer token, else its session cookie (never an API key
// there: a key in a cookie would be an ambient credential).
func (g *Guard) token(req Request) (token string, fromCookie bool) {
	if t := bearer(req.Authorization); t != "" {
		return t, false
	}
	t := g.cfg.Cookie.Read(req.Cookie)
	if t == "" || IsAPIKey(t) {
		return "", false
	}
	return t, true
}

// bearer is the token of an "Authorization: Bearer <token>" value, or "".
func bearer(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// refusalFor is the refusal of a request whose check failed with err.
func refusalFor(err error) *Refusal {
	reason := ErrorReason(err)
	switch {
	case reason == ReasonPermissionUnknown:
		return &Refusal{Kind: RefusalMisconfigured, Reason: ReasonPermissionUnknown, Err: err}
	case reason == ReasonSessionExpired || reason == ReasonAPIKeyNotAccepted || reason == ReasonAPIKeyExpired:
		return &Refusal{Kind: RefusalInvalid, Reason: reason, Err: err}
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.InvalidArgument, codes.PermissionDenied:
		return &Refusal{Kind: RefusalInvalid, Reason: ReasonUnauthenticated, Err: err}
	}
	// Down, overloaded, out of time, or an internal error: nothing says
	// the token is good, so fail closed.
	return &Refusal{Kind: RefusalUnavailable, Reason: RefusalReasonUnavailable, Err: err}
}

// RevokeSession revokes one of the sessions of token's user (sessionID,
// from ListSessions) and drops it from the cache at once, so the very next
// request with it is refused, before Keyport's event arrives.
func (g *Guard) RevokeSession(ctx context.Context, token, sessionID string) error {
	_, err := g.cache.client.Sessions.RevokeSession(WithToken(ctx, token), &keyportv1.RevokeSessionRequest{SessionId: sessionID})
	g.cache.ForgetSession(sessionID)
	return err
}

// SignOut ends token's session, drops it from the cache, and returns the
// Set-Cookie value that deletes the session cookie. A session already gone
// is not an error.
func (g *Guard) SignOut(ctx context.Context, token string) (clearCookie string, err error) {
	if id, ok := entryKey(token); ok {
		g.cache.ForgetSession(id)
	}
	_, err = g.cache.client.Sessions.SignOut(WithToken(ctx, token), &keyportv1.SignOutRequest{})
	if r := ErrorReason(err); r == ReasonUnauthenticated || r == ReasonSessionExpired {
		err = nil
	}
	return g.cfg.Cookie.Clear(), err
}
