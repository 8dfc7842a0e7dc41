package keyport

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// principalKey is the context key of the request's [Principal].
type principalKey struct{}

// ContextWithPrincipal returns a copy of ctx carrying p, as the guard's
// adapters do (also handy in tests of handlers).
func ContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal the guard put in a request's (or a
// gRPC call's) context, and whether there is one.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Middleware lets through only requests with a valid session: the handler
// finds it with [PrincipalFrom]. Others are answered 401 (no or a dead
// token), 403 (a cookie-authenticated write from another origin) or 503
// (Keyport could not be asked: it fails closed) with a JSON body
// {"error": reason, "message": text}.
//
//	mux.Handle("/api/", guard.Middleware(api))
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return g.RequirePermissions()(next)
}

// RequirePermissions is [Guard.Middleware] that also requires every one of
// permissions ("resource:action"), decided by Keyport and cached with the
// session: a caller without one gets 403 FORBIDDEN. A bearer API key
// ("kpa_...") is accepted here, as Keyport's Authorize decides it.
//
//	mux.Handle("POST /posts", guard.RequirePermissions("posts:write")(createPost))
func (g *Guard) RequirePermissions(permissions ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req := g.RequestFromHTTP(r)
			if g.crossSiteWrite(r, req) {
				writeRefusal(w, &Refusal{Kind: RefusalCrossSite, Reason: RefusalReasonCrossSite}, "")
				return
			}
			out := g.Authorize(r.Context(), req, permissions...)
			if out.Refusal != nil {
				writeRefusal(w, out.Refusal, out.SetCookie)
				return
			}
			if out.SetCookie != "" {
				w.Header().Add("Set-Cookie", out.SetCookie)
			}
			next.ServeHTTP(w, r.WithContext(ContextWithPrincipal(r.Context(), out.Principal)))
		})
	}
}

// OptionalMiddleware lets every request through, with the principal in
// its context when it has a valid session. A dead session cookie is
// deleted; when Keyport cannot be asked the request goes on signed out.
//
//	mux.Handle("/", guard.OptionalMiddleware(home)) // PrincipalFrom says who, if anyone
func (g *Guard) OptionalMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := g.RequestFromHTTP(r)
		out := g.Authenticate(r.Context(), req)
		if out.SetCookie != "" {
			w.Header().Add("Set-Cookie", out.SetCookie)
		}
		if out.Principal != nil && !g.crossSiteWrite(r, req) {
			r = r.WithContext(ContextWithPrincipal(r.Context(), out.Principal))
		}
		next.ServeHTTP(w, r)
	})
}

// writeRefusal answers refusal as JSON, not cached.
func writeRefusal(w http.ResponseWriter, refusal *Refusal, setCookie string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if setCookie != "" {
		h.Add("Set-Cookie", setCookie)
	}
	code := refusal.HTTPStatus()
	switch code {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", "Bearer")
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{refusal.Reason, refusal.Message()})
}

// crossSiteWrite is the CSRF defence (OWASP: verify the origin with
// standard headers): an unsafe request authenticated by the session cookie
// alone is refused unless the browser says it is same-origin, or its
// Origin (else Referer) is an allowed origin. Bearer tokens are not
// ambient, so they skip the check.
func (g *Guard) crossSiteWrite(r *http.Request, req Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	if bearer(req.Authorization) != "" || g.cfg.Cookie.Read(req.Cookie) == "" {
		return false
	}
	// Set by browsers, never by pages.
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		origin = originOf(r.Header.Get("Referer"))
	}
	if origin == "" {
		return true
	}
	origin = strings.TrimSuffix(origin, "/")
	if len(g.cfg.AllowedOrigins) == 0 {
		_, authority, ok := strings.Cut(origin, "://")
		return !ok || r.Host == "" || authority != r.Host
	}
	for _, allowed := range g.cfg.AllowedOrigins {
		if allowed == origin {
			return false
		}
	}
	return true
}

// originOf is scheme://host[:port] of a URL, or "".
func originOf(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}
