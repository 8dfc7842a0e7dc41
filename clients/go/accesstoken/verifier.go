// Package accesstoken verifies Keyport's JWT access tokens (RFC 9068
// "at+jwt") offline, against the JSON Web Key Set Keyport publishes: no call
// to Keyport per request, only a key-set fetch now and then.
//
// Keyport issues them with SessionService.IssueAccessToken on a server
// with [access_tokens] configured; the key set is served at
// /.well-known/jwks.json on its gRPC port (and by SessionService.GetJwks).
//
//	v, err := accesstoken.NewVerifier(accesstoken.Config{
//		JWKSURL:  "http://keyport.internal:50051/.well-known/jwks.json",
//		Issuer:   "https://keyport.example.com",
//		Audience: "orders",
//	})
//	claims, err := v.Verify(ctx, token) // claims.Subject, claims.SessionID, claims.Roles ...
//
// Only EdDSA (Ed25519) and ES256 (P-256) signatures are accepted, each only
// with a key of its own type: never "none", HS* or RS*. A token is checked
// for its signature, issuer, audience, expiry, not-before (with a small
// leeway) and type. Unlike a session check, a verified access token stays
// valid until it expires, whatever happens to its session meanwhile: keep
// their lifetime short.
package accesstoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Algorithms are the signature algorithms accepted.
var Algorithms = []string{"EdDSA", "ES256"}

// Errors of [Verifier.Verify]; each wraps the cause. A refused token
// matches ErrInvalid.
var (
	// ErrInvalid: the token is malformed, forged, expired, not yet valid,
	// or for another issuer, audience or type.
	ErrInvalid = errors.New("accesstoken: invalid token")
	// ErrUnknownKey: signed by a key the key set does not have, even after
	// refetching it (which happens at most once per MinRefetchInterval).
	ErrUnknownKey = errors.New("accesstoken: unknown signing key")
	// ErrKeySetUnavailable: the key set could not be fetched yet.
	ErrKeySetUnavailable = errors.New("accesstoken: key set unavailable")
)

// FetchFunc returns the JSON Web Key Set document (for example from
// Keyport's GetJwks).
type FetchFunc func(ctx context.Context) ([]byte, error)

// Config says what a [Verifier] accepts.
type Config struct {
	// JWKSURL is where the key set is fetched from
	// ("http://keyport:50051/.well-known/jwks.json"); or set Fetch.
	JWKSURL string
	// Fetch returns the key set, instead of a GET of JWKSURL.
	Fetch FetchFunc
	// HTTPClient fetches JWKSURL (default: a client with a 5 s timeout).
	HTTPClient *http.Client
	// Issuer is the iss every token must have (Keyport's access_tokens.issuer).
	Issuer string
	// Audience is the aud every token must have (one of Keyport's
	// access_tokens.audiences: this service's name).
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 30 s;
	// negative for none).
	Leeway time.Duration
	// MinRefetchInterval is the least time between two fetches of the key
	// set (default 30 s): a token with an unknown kid triggers one, rate
	// limited, so forged kids cannot make the verifier hammer Keyport.
	MinRefetchInterval time.Duration
	// RefreshInterval is how old the key set may get before the next
	// verification refetches it (default 5 min), so a key Keyport dropped
	// stops being accepted.
	RefreshInterval time.Duration
}

// Claims are a verified token's claims.
type Claims struct {
	// Subject is the user id (sub).
	Subject string
	// SessionID is the session the token was issued for (sid).
	SessionID string
	// Roles are the user's roles when it was issued.
	Roles []string
	// Permissions are what the roles granted, when the server includes them.
	Permissions []string
	// ImpersonatorID is the admin acting as the user (act.sub), for a token
	// of an impersonation session; empty otherwise.
	ImpersonatorID string
	// Issuer (iss), Audience (aud) and ID (jti).
	Issuer, Audience, ID string
	// ExpiresAt (exp), IssuedAt (iat) and NotBefore (nbf).
	ExpiresAt, IssuedAt, NotBefore time.Time
}

// claims is the token's JSON payload.
type claims struct {
	jwt.RegisteredClaims
	SessionID   string   `json:"sid"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	Actor       struct {
		Subject string `json:"sub"`
	} `json:"act"`
}

// Verifier verifies access tokens; it is safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	now    func() time.Time

	fetchMu sync.Mutex // one fetch at a time

	mu          sync.RWMutex
	keys        map[string]crypto.PublicKey // by kid; guarded by mu
	fetchedAt   time.Time                   // last successful fetch; guarded by mu
	attemptedAt time.Time                   // last fetch attempt; guarded by mu
	fetches     int                         // guarded by mu
}

// NewVerifier returns a verifier for cfg. The key set is fetched on the
// first verification.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("accesstoken: Config needs an Issuer and an Audience")
	}
	if cfg.Fetch == nil {
		if cfg.JWKSURL == "" {
			return nil, errors.New("accesstoken: Config needs a JWKSURL or a Fetch")
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 5 * time.Second}
		}
		cfg.Fetch = httpFetch(client, cfg.JWKSURL)
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = 30 * time.Second
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.MinRefetchInterval == 0 {
		cfg.MinRefetchInterval = 30 * time.Second
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 5 * time.Minute
	}
	v := &Verifier{cfg: cfg, now: time.Now}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v, nil
}

// Verify checks token and returns its claims. A refused token's error
// matches [ErrInvalid] or [ErrUnknownKey]; [ErrKeySetUnavailable] means the
// key set could not be fetched (fail closed: refuse the request).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	var c claims
	parsed, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		for _, sentinel := range []error{ErrUnknownKey, ErrKeySetUnavailable} {
			if errors.Is(err, sentinel) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if typ, _ := parsed.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: typ %q, want at+jwt", ErrInvalid, typ)
	}
	if c.Subject == "" || c.SessionID == "" {
		return nil, fmt.Errorf("%w: no sub or sid", ErrInvalid)
	}
	out := &Claims{
		Subject: c.Subject, SessionID: c.SessionID, Roles: c.Roles, Permissions: c.Permissions, ImpersonatorID: c.Actor.Subject,
		Issuer: c.Issuer, ID: c.ID, ExpiresAt: c.ExpiresAt.Time,
	}
	if len(c.Audience) > 0 {
		out.Audience = c.Audience[0]
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.NotBefore != nil {
		out.NotBefore = c.NotBefore.Time
	}
	return out, nil
}

// Fetches is how many times the key set was fetched (for metrics and tests).
func (v *Verifier) Fetches() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.fetches
}

// keyFor is the public key of t's kid, if it fits t's algorithm.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrInvalid)
	}
	key, err := v.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	// The algorithm must be the key's own: a key is never reinterpreted.
	switch k := key.(type) {
	case ed25519.PublicKey:
		if t.Method.Alg() == "EdDSA" {
			return k, nil
		}
	case *ecdsa.PublicKey:
		if t.Method.Alg() == "ES256" && k.Curve == elliptic.P256() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: alg %s does not fit the key %q (%T)", ErrInvalid, t.Method.Alg(), kid, key)
}

// lookup is the key of kid: from the key set held, refetched if it is
// stale, or if kid is unknown and the last attempt is MinRefetchInterval old.
func (v *Verifier) lookup(ctx context.Context, kid string) (crypto.PublicKey, error) {
	v.mu.RLock()
	key, known := v.keys[kid]
	fresh := v.now().Sub(v.fetchedAt) < v.cfg.RefreshInterval
	v.mu.RUnlock()
	if known && fresh {
		return key, nil
	}
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	v.mu.RLock()
	key, known = v.keys[kid]
	fresh = v.now().Sub(v.fetchedAt) < v.cfg.RefreshInterval
	mayFetch := v.attemptedAt.IsZero() || v.now().Sub(v.attemptedAt) >= v.cfg.MinRefetchInterval
	hasKeys := v.keys != nil
	v.mu.RUnlock()
	switch {
	case known && fresh:
		return key, nil
	case !mayFetch && known:
		return key, nil
	case !mayFetch && !hasKeys:
		return nil, fmt.Errorf("%w: the last fetch failed less than %v ago", ErrKeySetUnavailable, v.cfg.MinRefetchInterval)
	case !mayFetch:
		return nil, fmt.Errorf("%w %q (the key set was fetched less than %v ago)", ErrUnknownKey, kid, v.cfg.MinRefetchInterval)
	}
	err := v.refetch(ctx)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if key, ok := v.keys[kid]; ok {
		return key, nil // a failed refresh keeps the keys it had
	}
	if err != nil && v.keys == nil {
		return nil, fmt.Errorf("%w: %w", ErrKeySetUnavailable, err)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}

// refetch fetches the key set and, if it parses, replaces the one held.
func (v *Verifier) refetch(ctx context.Context) error {
	v.mu.Lock()
	v.attemptedAt = v.now()
	v.mu.Unlock()
	raw, err := v.cfg.Fetch(ctx)
	if err != nil {
		return err
	}
	keys, err := parseKeySet(raw)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.keys, v.fetchedAt = keys, v.now()
	v.fetches++
	v.mu.Unlock()
	return nil
}

// parseKeySet reads a JWKS document's public signing keys by kid.
func parseKeySet(raw []byte) (map[string]crypto.PublicKey, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("accesstoken: the key set is not JSON: %w", err)
	}
	jwks, err := set.JWKSlice()
	if err != nil {
		return nil, fmt.Errorf("accesstoken: the key set does not parse: %w", err)
	}
	keys := make(map[string]crypto.PublicKey, len(jwks))
	for _, jwk := range jwks {
		m := jwk.Marshal()
		if m.KID == "" || (m.USE != "" && m.USE != jwkset.UseSig) {
			continue
		}
		key := jwk.Key()
		// A set must carry public keys only; never sign with what it holds.
		if private, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = private.Public()
		}
		keys[m.KID] = key
	}
	return keys, nil
}

// httpFetch GETs url.
func httpFetch(client *http.Client, url string) FetchFunc {
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
}
