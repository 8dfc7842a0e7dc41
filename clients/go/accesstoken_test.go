package keyport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	keyport "github.com/keyport/keyport/clients/go"
	"github.com/keyport/keyport/clients/go/accesstoken"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
)

// Keyport's own access tokens, verified by package accesstoken.

const accessIssuer = "https://keyport.test"

// accessTokenServer starts a keyport issuing access tokens for "orders"
// (the default) and "billing", with the extra environment env.
func accessTokenServer(t *testing.T, env ...string) (*keyport.Client, string) {
	t.Helper()
	srv := startOwnServer(t, append([]string{
		"KEYPORT_ACCESS_TOKENS__ISSUER=" + accessIssuer,
		`KEYPORT_ACCESS_TOKENS__AUDIENCES=["orders","billing"]`,
	}, env...)...)
	c, err := keyport.Dial(srv.addr, keyport.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	requireAccessTokens(t, c)
	return c, srv.addr
}

// requireAccessTokens fails the test when the server under test cannot
// serve the keys: these tests must never pass by not running.
func requireAccessTokens(t *testing.T, c *keyport.Client) {
	t.Helper()
	if _, err := c.Sessions.GetJwks(t.Context(), &keyportv1.GetJwksRequest{}); err != nil {
		t.Fatalf("GetJwks on the test server: %v", err)
	}
}

// countingFetch is GetJwks through c, counted.
func countingFetch(c *keyport.Client, n *atomic.Int32) accesstoken.FetchFunc {
	fetch := accesstoken.FromClient(c)
	return func(ctx context.Context) ([]byte, error) {
		n.Add(1)
		return fetch(ctx)
	}
}

func issue(t *testing.T, c *keyport.Client, session, audience string) string {
	t.Helper()
	resp, err := c.Sessions.IssueAccessToken(t.Context(), &keyportv1.IssueAccessTokenRequest{Token: session, Audience: audience})
	if err != nil {
		t.Fatalf("IssueAccessToken(%q): %v (reason %q)", audience, err, keyport.ErrorReason(err))
	}
	if time.Until(resp.GetExpiresAt().AsTime()) <= 0 {
		t.Errorf("expires_at %v is not in the future", resp.GetExpiresAt().AsTime())
	}
	return resp.GetAccessToken()
}

func TestAccessTokensVerify(t *testing.T) {
	c, addr := accessTokenServer(t, "KEYPORT_ACCESS_TOKENS__INCLUDE_PERMISSIONS=true")
	_, up := signUp(t, c)
	token := issue(t, c, up.GetSession().GetToken(), "")

	var fetches atomic.Int32
	byURL, err := accesstoken.NewVerifier(accesstoken.Config{JWKSURL: "http://" + addr + "/.well-known/jwks.json", Issuer: accessIssuer, Audience: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	byRPC, err := accesstoken.NewVerifier(accesstoken.Config{Fetch: countingFetch(c, &fetches), Issuer: accessIssuer, Audience: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*accesstoken.Verifier{"jwks.json": byURL, "GetJwks": byRPC} {
		claims, err := v.Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if claims.Subject != up.GetUser().GetId() || claims.SessionID != up.GetSession().GetSession().GetId() ||
			claims.Issuer != accessIssuer || claims.Audience != "orders" || claims.ID == "" {
			t.Errorf("%s: claims %+v", name, claims)
		}
		if !containsString(claims.Roles, "user") || !containsString(claims.Permissions, "posts:read") {
			t.Errorf("%s: roles %v, permissions %v", name, claims.Roles, claims.Permissions)
		}
		if d := time.Until(claims.ExpiresAt); d <= 14*time.Minute || d > 15*time.Minute {
			t.Errorf("%s: expires in %v, want the default 900 s", name, d)
		}
	}

	// Tampered, forged and misdirected tokens.
	header, payload, signature := splitJWT(t, token)
	var body map[string]any
	if err := json.Unmarshal(decodeSegment(t, payload), &body); err != nil {
		t.Fatal(err)
	}
	body["sub"] = "someone-else"
	forgedPayload, _ := json.Marshal(body)
	flipped := []byte(decodeSegment(t, signature))
	flipped[0] ^= 1
	billing := issue(t, c, up.GetSession().GetToken(), "billing")
	for name, bad := range map[string]string{
		"tampered payload":                    header + "." + base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + signature,
		"tampered signature":                  header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(flipped),
		"another audience":                    billing,
		"alg none":                            forgeNone(t, body),
		"HS256 with the public key as secret": forgeHS256(t, c, body),
		"a session token":                     up.GetSession().GetToken(),
	} {
		if _, err := byRPC.Verify(t.Context(), bad); !errors.Is(err, accesstoken.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	otherIssuer, _ := accesstoken.NewVerifier(accesstoken.Config{Fetch: accesstoken.FromClient(c), Issuer: "https://evil.example", Audience: "orders"})
	if _, err := otherIssuer.Verify(t.Context(), token); !errors.Is(err, accesstoken.ErrInvalid) {
		t.Errorf("another issuer: %v, want ErrInvalid", err)
	}

	// An unknown kid refetches once MinRefetchInterval has passed since the
	// last fetch, and only once however many arrive; within it, never.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	unknownKid := func() error {
		forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(body))
		forged.Header["typ"], forged.Header["kid"] = "at+jwt", "not-a-keyport-key"
		signed, _ := forged.SignedString(stranger)
		_, err := byRPC.Verify(t.Context(), signed)
		return err
	}
	before := fetches.Load()
	if err := unknownKid(); !errors.Is(err, accesstoken.ErrUnknownKey) {
		t.Errorf("an unknown kid: %v, want ErrUnknownKey", err)
	}
	if got := fetches.Load() - before; got != 0 {
		t.Errorf("an unknown kid within 30 s of the last fetch fetched %d times, want 0", got)
	}
	quick, err := accesstoken.NewVerifier(accesstoken.Config{Fetch: countingFetch(c, &fetches), Issuer: accessIssuer, Audience: "orders", MinRefetchInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quick.Verify(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	byRPC = quick
	time.Sleep(350 * time.Millisecond)
	before = fetches.Load()
	for range 3 {
		if err := unknownKid(); !errors.Is(err, accesstoken.ErrUnknownKey) {
			t.Errorf("an unknown kid: %v, want ErrUnknownKey", err)
		}
	}
	if got := fetches.Load() - before; got != 1 {
		t.Errorf("3 tokens of an unknown kid fetched the key set %d times, want 1", got)
	}

	// Keyport's own refusals.
	_, err = c.Sessions.IssueAccessToken(t.Context(), &keyportv1.IssueAccessTokenRequest{Token: up.GetSession().GetToken(), Audience: "nope"})
	wantError(t, "an audience not configured", err, codes.InvalidArgument, keyport.ReasonAudienceNotAllowed)
	_, err = c.Sessions.IssueAccessToken(t.Context(), &keyportv1.IssueAccessTokenRequest{Token: "kp_nope.nope"})
	wantError(t, "a bad session", err, codes.Unauthenticated, keyport.ReasonUnauthenticated)
}

func TestAccessTokensExpire(t *testing.T) {
	c, _ := accessTokenServer(t, "KEYPORT_ACCESS_TOKENS__TTL_SECS=1", "KEYPORT_ACCESS_TOKENS__ALGORITHM=ES256")
	_, up := signUp(t, c)
	token := issue(t, c, up.GetSession().GetToken(), "orders")
	v, err := accesstoken.NewVerifier(accesstoken.Config{Fetch: accesstoken.FromClient(c), Issuer: accessIssuer, Audience: "orders", Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatalf("a fresh ES256 token: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := v.Verify(t.Context(), token); !errors.Is(err, accesstoken.ErrInvalid) || !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("an expired token: %v, want ErrInvalid and jwt.ErrTokenExpired", err)
	}
}

func TestAccessTokensSurviveKeyRotation(t *testing.T) {
	c, _ := accessTokenServer(t, "KEYPORT_ACCESS_TOKENS__ROTATE_AFTER_SECS=1", "KEYPORT_ACCESS_TOKENS__JWKS_MAX_AGE_SECS=1")
	_, up := signUp(t, c)
	var fetches atomic.Int32
	v, err := accesstoken.NewVerifier(accesstoken.Config{
		Fetch: countingFetch(c, &fetches), Issuer: accessIssuer, Audience: "orders", MinRefetchInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	old := issue(t, c, up.GetSession().GetToken(), "")
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	oldKid := kidOf(t, old)
	var rotated string
	deadline := time.Now().Add(15 * time.Second)
	for rotated == "" {
		if time.Now().After(deadline) {
			t.Fatal("no token signed by a new key within 15 s of rotate_after_secs = 1")
		}
		time.Sleep(200 * time.Millisecond)
		if token := issue(t, c, up.GetSession().GetToken(), ""); kidOf(t, token) != oldKid {
			rotated = token
		}
	}
	if _, err := v.Verify(t.Context(), rotated); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Errorf("a token of the old key after the rotation: %v", err)
	}
	if fetches.Load() < 2 {
		t.Errorf("the new key was verified without a refetch (%d fetches)", fetches.Load())
	}
}

func TestAccessTokensDisabled(t *testing.T) {
	c := newClient(t)
	_, up := signUp(t, c)
	_, err := c.Sessions.IssueAccessToken(t.Context(), &keyportv1.IssueAccessTokenRequest{Token: up.GetSession().GetToken()})
	wantError(t, "IssueAccessToken without [access_tokens]", err, codes.FailedPrecondition, keyport.ReasonAccessTokensDisabled)
	_, err = c.Sessions.GetJwks(t.Context(), &keyportv1.GetJwksRequest{})
	wantError(t, "GetJwks without [access_tokens]", err, codes.FailedPrecondition, keyport.ReasonAccessTokensDisabled)
}

func splitJWT(t *testing.T, token string) (header, payload, signature string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact token: %q", token)
	}
	return parts[0], parts[1], parts[2]
}

func decodeSegment(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	header, _, _ := splitJWT(t, token)
	var h struct{ Kid, Typ, Alg string }
	if err := json.Unmarshal(decodeSegment(t, header), &h); err != nil {
		t.Fatal(err)
	}
	if h.Typ != "at+jwt" || h.Kid == "" {
		t.Errorf("header %+v, want typ at+jwt and a kid", h)
	}
	return h.Kid
}

func forgeNone(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims))
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forgeHS256 signs claims with HS256, the first key of Keyport's key set
// (its "x", the raw public key) as the secret, under that key's kid.
func forgeHS256(t *testing.T, c *keyport.Client, claims map[string]any) string {
	t.Helper()
	resp, err := c.Sessions.GetJwks(t.Context(), &keyportv1.GetJwksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []struct{ Kid, X string } }
	if err := json.Unmarshal([]byte(resp.GetJwks()), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("key set %q: %v", resp.GetJwks(), err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	tok.Header["typ"], tok.Header["kid"] = "at+jwt", set.Keys[0].Kid
	s, err := tok.SignedString(decodeSegment(t, set.Keys[0].X))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
