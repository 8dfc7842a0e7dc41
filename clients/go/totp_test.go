package keyport_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The authenticator app, for the tests: RFC 6238 TOTP codes (HMAC-SHA-1,
// 30-second steps, six digits) from the base32 secret of EnrollTotp. The
// server runs on the real clock, so a test confirms with the current
// step's code and completes a sign-in with the next step's ([nextTotp]):
// Keyport accepts one step of drift and refuses a step already used.

const totpStep = 30 * time.Second

// totp returns the code the app shows at t.
func totp(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(strings.ToUpper(secret), "="))
	if err != nil {
		t.Fatalf("the secret %q is not base32: %v", secret, err)
	}
	var counter [8]byte
	binary.BigEndian.PutUint64(counter[:], uint64(at.Unix())/uint64(totpStep/time.Second))
	mac := hmac.New(sha1.New, key)
	mac.Write(counter[:])
	sum := mac.Sum(nil)
	offset := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", code%1_000_000)
}

// nextTotp returns the code of the next step, computed now: what
// CompleteSignIn takes after ConfirmTotp used the current one.
func nextTotp(t *testing.T, secret string) string {
	t.Helper()
	return totp(t, secret, time.Now().Add(totpStep))
}

// wrongTotp returns a six-digit code that is none of the codes of the
// steps around now.
func wrongTotp(t *testing.T, secret string) string {
	t.Helper()
	near := map[string]bool{}
	for offset := -2; offset <= 2; offset++ {
		near[totp(t, secret, time.Now().Add(time.Duration(offset)*totpStep))] = true
	}
	for _, code := range []string{"000000", "111111", "222222", "333333", "444444", "555555"} {
		if !near[code] {
			return code
		}
	}
	panic("unreachable: six candidates, at most five near codes")
}

// The test's app computes the codes of RFC 6238's SHA-1 test vectors.
func TestTotpTestVectors(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // base32 of "12345678901234567890"
	for secs, want := range map[int64]string{
		59: "287082", 1111111109: "081804", 1111111111: "050471", 1234567890: "005924", 2000000000: "279037",
	} {
		if got := totp(t, secret, time.Unix(secs, 0)); got != want {
			t.Errorf("totp at %d = %s, want %s", secs, got, want)
		}
	}
}
