package keyport_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
)

func TestSessionCookieHasSecureDefaults(t *testing.T) {
	var c keyport.SessionCookie
	set := c.Issue("kp_a.b", time.Now().Add(time.Hour))
	if set != "__Host-keyport_session=kp_a.b; Path=/; Max-Age=3599; HttpOnly; Secure; SameSite=Lax" &&
		set != "__Host-keyport_session=kp_a.b; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax" {
		t.Errorf("Issue = %q", set)
	}
	if got := c.Clear(); got != "__Host-keyport_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax" {
		t.Errorf("Clear = %q", got)
	}
	if got := c.Issue("kp_a.b", time.Now().Add(-time.Hour)); !strings.Contains(got, "Max-Age=0;") {
		t.Errorf("an expiry in the past: %q", got)
	}
	// The __Host- prefix is void without Secure and Path=/: enforced.
	forced := keyport.SessionCookie{Insecure: true, Path: "/app"}
	if got := forced.ClearCookie(); !got.Secure || got.Path != "/" {
		t.Errorf("a __Host- cookie without its rules: %q", got)
	}
	dev := keyport.SessionCookie{Name: "session", Insecure: true, Path: "/app", SameSite: http.SameSiteStrictMode}
	if got := dev.Clear(); got != "session=; Path=/app; Max-Age=0; HttpOnly; SameSite=Strict" {
		t.Errorf("a development cookie: %q", got)
	}
}

func TestSessionCookieReadsItsOwnCookieOnly(t *testing.T) {
	var c keyport.SessionCookie
	for header, want := range map[string]string{
		"a=1; __Host-keyport_session=kp_x.y; b=2":        "kp_x.y",
		`__Host-keyport_session="kp_x.y"`:                "kp_x.y",
		"broken; théme=é; __Host-keyport_session=kp_x.y": "kp_x.y",
		"keyport_session=kp_x.y":                         "",
		"__Host-keyport_session=":                        "",
		"":                                               "",
	} {
		if got := c.Read(header); got != want {
			t.Errorf("Read(%q) = %q, want %q", header, got, want)
		}
	}
}
