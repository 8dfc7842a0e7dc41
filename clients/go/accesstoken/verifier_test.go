package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// These tests sign tokens with keys of their own and serve the key set
// from a real HTTP server; live_test.go checks Keyport's own tokens.

// keyServer serves a JWKS of the keys it holds and counts its fetches.
type keyServer struct {
	mu      sync.Mutex
	keys    []jwkset.JWKMarshal
	fetches atomic.Int32
	srv     *httptest.Server
}

func newKeyServer(t *testing.T) *keyServer {
	k := &keyServer{}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		k.fetches.Add(1)
		k.mu.Lock()
		defer k.mu.Unlock()
		json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: k.keys})
	}))
	t.Cleanup(k.srv.Close)
	return k
}

// add publishes pub as kid.
func (k *keyServer) add(t *testing.T, kid string, pub any) {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = append(k.keys, jwk.Marshal())
}

const (
	issuer   = "https://keyport.test"
	audience = "orders"
)

func validClaims() jwt.MapClaims { return claimsAt(time.Now()) }

// claimsAt are valid claims issued at now.
func claimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": issuer, "sub": "user-1", "aud": audience, "sid": "session-1",
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "j1",
		"roles": []string{"user"}, "permissions": []string{"posts:read"},
	}
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "at+jwt"
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t *testing.T, k *keyServer, tweak ...func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{JWKSURL: k.srv.URL, Issuer: issuer, Audience: audience}
	for _, f := range tweak {
		f(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifiesEdDSAAndES256(t *testing.T) {
	k := newKeyServer(t)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k.add(t, "ed", edPub)
	k.add(t, "ec", &ecKey.PublicKey)
	v := newVerifier(t, k)
	impersonated := validClaims()
	impersonated["act"] = map[string]any{"sub": "admin-1"}
	c, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodEdDSA, "ed", edKey, impersonated))
	if err != nil || c.ImpersonatorID != "admin-1" {
		t.Errorf("an impersonation token: %+v, %v", c, err)
	}
	for name, token := range map[string]string{
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, "ed", edKey, validClaims()),
		"ES256": sign(t, jwt.SigningMethodES256, "ec", ecKey, validClaims()),
	} {
		c, err := v.Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.ImpersonatorID != "" {
			t.Errorf("%s: an impersonator in a plain token: %q", name, c.ImpersonatorID)
		}
		if c.Subject != "user-1" || c.SessionID != "session-1" || c.Audience != audience || c.Roles[0] != "user" ||
			c.Permissions[0] != "posts:read" || c.ID != "j1" || time.Until(c.ExpiresAt) < 14*time.Minute {
			t.Errorf("%s: claims %+v", name, c)
		}
	}
	if n := k.fetches.Load(); n != 1 {
		t.Errorf("%d fetches of the key set, want 1", n)
	}
}

func TestRefusesBadTokens(t *testing.T) {
	k := newKeyServer(t)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	k.add(t, "ed", edPub)
	k.add(t, "ec", &ecKey.PublicKey)
	k.add(t, "ec384", &ec384.PublicKey)
	k.add(t, "rsa", &rsaKey.PublicKey)
	v := newVerifier(t, k)
	good := sign(t, jwt.SigningMethodEdDSA, "ed", edKey, validClaims())
	parts := strings.Split(good, ".")
	with := func(change func(jwt.MapClaims)) string {
		c := validClaims()
		change(c)
		return sign(t, jwt.SigningMethodEdDSA, "ed", edKey, c)
	}
	// The public key as an HMAC secret: the classic confusion attack.
	edPubDER, _ := x509.MarshalPKIXPublicKey(edPub)
	hs := sign(t, jwt.SigningMethodHS256, "ed", edPubDER, validClaims())
	hsRaw := sign(t, jwt.SigningMethodHS256, "ed", []byte(edPub), validClaims())
	none := sign(t, jwt.SigningMethodNone, "ed", jwt.UnsafeAllowNoneSignatureType, validClaims())
	payload, _ := json.Marshal(map[string]any{"iss": issuer, "sub": "admin", "aud": audience, "sid": "s", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	wrongTyp := jwt.NewWithClaims(jwt.SigningMethodEdDSA, validClaims())
	wrongTyp.Header["kid"] = "ed"
	wrongTyp.Header["typ"] = "JWT"
	wrongTypToken, _ := wrongTyp.SignedString(edKey)

	for name, token := range map[string]string{
		"empty":                           "",
		"garbage":                         "not.a.jwt",
		"oversized":                       strings.Repeat("a", 100_000),
		"tampered payload":                parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2],
		"tampered signature":              parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"expired":                         with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
		"no exp":                          with(func(c jwt.MapClaims) { delete(c, "exp") }),
		"not yet valid":                   with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"wrong audience":                  with(func(c jwt.MapClaims) { c["aud"] = "billing" }),
		"wrong issuer":                    with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"no sid":                          with(func(c jwt.MapClaims) { delete(c, "sid") }),
		"alg none":                        none,
		"HS256 with the public key (DER)": hs,
		"HS256 with the public key (raw)": hsRaw,
		"RS256":                           sign(t, jwt.SigningMethodRS256, "rsa", rsaKey, validClaims()),
		"ES256 header on the Ed25519 key": sign(t, jwt.SigningMethodES256, "ed", ecKey, validClaims()),
		"EdDSA header on the P-256 key":   sign(t, jwt.SigningMethodEdDSA, "ec", edKey, validClaims()),
		"ES384 key":                       sign(t, jwt.SigningMethodES384, "ec384", ec384, validClaims()),
		"ES256 header on the P-384 key":   sign(t, jwt.SigningMethodES256, "ec384", ecKey, validClaims()),
		"no kid":                          sign(t, jwt.SigningMethodEdDSA, "", edKey, validClaims()),
		"typ JWT":                         wrongTypToken,
	} {
		if _, err := v.Verify(t.Context(), token); err == nil {
			t.Errorf("%s: verified", name)
		} else if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := v.Verify(t.Context(), good); err != nil {
		t.Errorf("the good token: %v", err)
	}
}

func TestUnknownKidRefetchesAtMostOncePerInterval(t *testing.T) {
	k := newKeyServer(t)
	oldPub, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	k.add(t, "old", oldPub)
	v := newVerifier(t, k, func(c *Config) { c.MinRefetchInterval = time.Hour })
	clock := time.Now()
	v.now = func() time.Time { return clock }
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodEdDSA, "old", oldKey, validClaims())); err != nil {
		t.Fatal(err)
	}
	// Forged kids within the interval cost no fetch.
	_, forgedKey, _ := ed25519.GenerateKey(rand.Reader)
	for i := range 5 {
		_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodEdDSA, "forged-"+string(rune('a'+i)), forgedKey, validClaims()))
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("a forged kid: %v, want ErrUnknownKey", err)
		}
	}
	if n := k.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1: the first fetch is under an hour old", n)
	}

	// Rotation: a new key appears; once the interval has passed, its first
	// token refetches once, and the old key's tokens still verify.
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	k.add(t, "new", newPub)
	clock = clock.Add(time.Hour)
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodEdDSA, "new", newKey, claimsAt(clock))); err != nil {
		t.Fatalf("the new key's token: %v", err)
	}
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodEdDSA, "old", oldKey, claimsAt(clock))); err != nil {
		t.Fatalf("the old key's token after rotation: %v", err)
	}
	if n := k.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestKeySetUnavailableFailsClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	v, err := NewVerifier(Config{JWKSURL: srv.URL, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	for range 3 {
		if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, "k", key, validClaims())); !errors.Is(err, ErrKeySetUnavailable) {
			t.Fatalf("%v, want ErrKeySetUnavailable", err)
		}
	}
	if _, err := NewVerifier(Config{Issuer: issuer, Audience: audience}); err == nil {
		t.Error("a verifier without a key set source")
	}
	if _, err := NewVerifier(Config{JWKSURL: srv.URL, Audience: audience}); err == nil {
		t.Error("a verifier without an issuer")
	}
}

func TestVerifiesInParallel(t *testing.T) {
	k := newKeyServer(t)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	k.add(t, "k", pub)
	v := newVerifier(t, k)
	token := sign(t, jwt.SigningMethodEdDSA, "k", key, validClaims())
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(t.Context(), token); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := k.fetches.Load(); n != 1 {
		t.Errorf("16 parallel first verifications fetched %d times, want 1", n)
	}
}
